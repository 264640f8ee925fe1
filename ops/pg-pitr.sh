#!/usr/bin/env bash
# Backups of the switch's PostgreSQL and point-in-time recovery (PITR): the recipe, runnable.
# A base backup (pg_basebackup) plus the WAL archived since restores the cluster as it was at
# any moment after the backup: a named restore point, a time, or the end of the archive.
# switch/tests/pg_pitr.rs drives every step below on a private cluster and checks the
# restored store with `verify_integrity` (what `switch verify` runs).
#
# 1. Once, on the primary (postgresql.conf; archive_mode needs a restart):
#        wal_level = replica                 # PostgreSQL's default
#        archive_mode = on
#        archive_command = 'test ! -f /srv/pg-archive/%f && cp %p /srv/pg-archive/%f'
#    The archive must live on another disk (or be shipped off the machine: same command with
#    rsync/pgBackRest/wal-g); `test ! -f` refuses to overwrite a segment already archived.
#    `ops/pg-pitr.sh archive-settings ARCHIVE_DIR` prints those lines for a folder.
#
# 2. Regularly (daily, say), under load, no downtime:
#        ops/pg-pitr.sh base-backup HOST PORT BACKUP_DIR
#    pg_basebackup -X stream: the backup holds the WAL it needs to be consistent by itself,
#    and a checksum manifest (pg_verifybackup checks it before a restore).
#
# 3. Before a risky change, a named point to come back to (any time, from any session):
#        psql -h HOST -p PORT -U postgres -c "SELECT pg_create_restore_point('before-change')"
#    and `SELECT pg_switch_wal()` to archive its segment now rather than when it fills.
#
# 4. Restore into a NEW folder and port (never over the damaged cluster, kept for forensics):
#        ops/pg-pitr.sh restore BACKUP_DIR ARCHIVE_DIR NEW_DATA PORT [name:POINT|time:TIMESTAMP]
#    It verifies the backup (pg_verifybackup), copies it to NEW_DATA, sets restore_command to
#    read the archive, the target (none: replay the whole archive), recovery_target_action =
#    promote, and starts the server, which replays the WAL to the target and opens read-write.
#    Then: `switch verify` against it, and point the switch's `[store] url` at it.
#
# The server binaries refuse to run as root: as root they run as the `postgres` user (runuser).
set -euo pipefail

log() { printf '[pg-pitr] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pg_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$found" ] && [ -x "$found/$1" ] || die "PostgreSQL's server binaries ($1) are missing: run ops/setup.sh"
  printf '%s/%s' "$found" "$1"
}

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

give_to_server_user() {
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$@"; fi
}

usage() {
  sed -n '2,31p' "$0" >&2
  exit 2
}

cmd=${1:-}
shift || true
case "$cmd" in
  archive-settings)
    [ $# -eq 1 ] || usage
    printf "wal_level = replica\narchive_mode = on\narchive_command = 'test ! -f %s/%%f && cp %%p %s/%%f'\n" "$1" "$1"
    ;;

  base-backup)
    [ $# -eq 3 ] || usage
    host=$1 port=$2 dest=$3
    [ ! -e "$dest" ] || die "$dest exists: a backup never overwrites"
    mkdir -p "$(dirname "$dest")"
    parent=$(dirname "$dest")
    give_to_server_user "$parent"
    log "base backup of $host:$port into $dest"
    as_server_user "$(pg_bin pg_basebackup)" -h "$host" -p "$port" -U postgres \
      -D "$dest" -Fp -X stream --checkpoint=fast --label "ops/pg-pitr.sh $(date -u +%FT%TZ)"
    as_server_user "$(pg_bin pg_verifybackup)" -q "$dest"
    log "base backup done and verified: $dest"
    ;;

  restore)
    [ $# -ge 4 ] && [ $# -le 5 ] || usage
    backup=$1 archive=$2 data=$3 port=$4 target=${5:-}
    [ -d "$backup" ] || die "no backup at $backup"
    [ -d "$archive" ] || die "no WAL archive at $archive"
    [ ! -e "$data" ] || die "$data exists: restore into a new folder"
    as_server_user "$(pg_bin pg_verifybackup)" -q -n "$backup" \
      || die "$backup does not verify against its manifest"
    mkdir -p "$data"
    cp -a "$backup/." "$data/"
    rm -f "$data/backup_manifest" "$data/postmaster.pid"
    chmod 700 "$data"
    give_to_server_user "$data"
    {
      printf "\n# ops/pg-pitr.sh restore\n"
      printf "port = %s\n" "$port"
      printf "listen_addresses = '127.0.0.1'\n"
      printf "unix_socket_directories = '%s'\n" "$data"
      printf "archive_mode = off\n"
      printf "restore_command = 'cp %s/%%f %%p'\n" "$archive"
      case "$target" in
        "") ;;
        name:*) printf "recovery_target_name = '%s'\n" "${target#name:}" ;;
        time:*) printf "recovery_target_time = '%s'\n" "${target#time:}" ;;
        *) die "target $target: use name:POINT or time:TIMESTAMP" ;;
      esac
      printf "recovery_target_action = 'promote'\n"
    } >>"$data/postgresql.auto.conf"
    as_server_user touch "$data/recovery.signal"
    log "starting the restored cluster on 127.0.0.1:$port (replaying the archive${target:+ to $target})"
    as_server_user "$(pg_bin pg_ctl)" -D "$data" -l "$data/restore.log" -w -t 120 start
    # Recovery ends with a promotion: wait until the cluster takes writes.
    for _ in $(seq 1 240); do
      state=$(as_server_user "$(pg_bin pg_controldata)" -D "$data" | sed -n 's/^Database cluster state: *//p')
      [ "$state" = "in production" ] && { log "restored and promoted: $data"; exit 0; }
      sleep 0.5
    done
    die "the restored cluster did not finish recovery within 120 s (see $data/restore.log)"
    ;;

  *) usage ;;
esac
