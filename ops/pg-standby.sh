#!/usr/bin/env bash
# A streaming-replication standby of the test PostgreSQL (127.0.0.1:5432) on 127.0.0.1:5433: a
# second cluster on this machine made with pg_basebackup, replicating synchronously, so a commit
# that returned on the primary is also on the standby (synchronous_commit=on, which the switch's
# store sets on every session).
#
#   ops/pg-standby.sh start     base backup, start the standby, then make it synchronous
#   ops/pg-standby.sh status    the primary's pg_stat_replication row and the standby's role
#   ops/pg-standby.sh promote   detach it from the primary (synchronous_standby_names = '') and
#                               promote it to a writable primary on 5433
#   ops/pg-standby.sh stop      synchronous_standby_names = '' on the primary FIRST, then stop and
#                               delete the standby
#   ops/pg-standby.sh check     start, prove a committed row is on the standby and the standby
#                               is synchronous, promote, stop; fails loudly (ops/test.sh runs it)
#
# How the primary is changed: only through SQL, `ALTER SYSTEM SET synchronous_standby_names`
# followed by `pg_reload_conf()` (no restart; wal_level=replica and max_wal_senders=10 are
# PostgreSQL 15's defaults), plus one line `host replication all 127.0.0.1/32 trust` appended to
# the primary's pg_hba.conf (pg_hba has no SQL interface) and a reload; `stop` removes that line.
#
# Careful: while synchronous_standby_names names a standby that is gone, every commit on 5432
# waits forever. `stop` and `promote` therefore reset it before anything else; if this script is
# killed half-way, run `ops/pg-standby.sh stop` (or, by hand:
# psql -h 127.0.0.1 -U postgres -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()").
#
# The server binaries refuse to run as root: as root they run as the `postgres` user (runuser).
set -euo pipefail

PRIMARY_HOST=127.0.0.1
PRIMARY_PORT=${PG_PRIMARY_PORT:-5432}
STANDBY_PORT=${PG_STANDBY_PORT:-5433}
STANDBY_DIR=${PG_STANDBY_DIR:-/var/tmp/ssc-pg-standby}
DATA=$STANDBY_DIR/data
APP_NAME=ssc_standby
HBA_LINE="host replication all 127.0.0.1/32 trust # ops/pg-standby.sh"

log() { printf '[pg-standby] %s\n' "$*" >&2; }
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

primary_sql() { psql -X -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres -d postgres -Atq -v ON_ERROR_STOP=1 "$@"; }
standby_sql() { psql -X -h 127.0.0.1 -p "$STANDBY_PORT" -U postgres -d postgres -Atq -v ON_ERROR_STOP=1 "$@"; }

# Commits on the primary stop waiting for the standby.
primary_async() {
  if pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; then
    primary_sql -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
    log "primary $PRIMARY_HOST:$PRIMARY_PORT: synchronous_standby_names reset"
  else
    log "primary $PRIMARY_HOST:$PRIMARY_PORT is not reachable; synchronous_standby_names left as it is"
  fi
}

hba_allow_replication() {
  local hba
  hba=$(primary_sql -c "SHOW hba_file")
  if ! grep -qF "$HBA_LINE" "$hba"; then
    [ -z "$(tail -c1 "$hba")" ] || printf '\n' >>"$hba"
    printf '%s\n' "$HBA_LINE" >>"$hba"
    log "appended to $hba: $HBA_LINE"
  fi
  primary_sql -c "SELECT pg_reload_conf()" >/dev/null
}

hba_restore() {
  local hba
  pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" || return 0
  hba=$(primary_sql -c "SHOW hba_file")
  if grep -qF "$HBA_LINE" "$hba"; then
    local kept
    kept=$(grep -vF "$HBA_LINE" "$hba")
    printf '%s\n' "$kept" >"$hba"
    primary_sql -c "SELECT pg_reload_conf()" >/dev/null
    log "removed the replication line from $hba"
  fi
}

# Waits until the primary sees the standby with sync_state $1 ('async' matches any state).
wait_for_standby() {
  local want=$1 state
  for _ in $(seq 1 120); do
    state=$(primary_sql -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$APP_NAME' AND state = 'streaming'" || true)
    if [ -n "$state" ] && { [ "$want" = async ] || [ "$state" = "$want" ]; }; then
      return 0
    fi
    sleep 0.5
  done
  die "the standby did not reach sync_state=$want (log: $DATA/server.log)"
}

standby_running() { [ -f "$DATA/postmaster.pid" ] && as_server_user "$(pg_bin pg_ctl)" -D "$DATA" status >/dev/null 2>&1; }

case "${1:-status}" in
  start)
    pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" || die "no primary on $PRIMARY_HOST:$PRIMARY_PORT"
    if standby_running; then
      log "a standby already runs in $DATA"
      exit 0
    fi
    pg_ctl=$(pg_bin pg_ctl)
    basebackup=$(pg_bin pg_basebackup)
    hba_allow_replication
    rm -rf "$STANDBY_DIR"
    mkdir -p "$STANDBY_DIR"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$STANDBY_DIR"
    log "pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT into $DATA"
    as_server_user "$basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres -D "$DATA" \
      -X stream -c fast -R
    # Debian keeps postgresql.conf and pg_hba.conf in /etc: the copy gets its own. The standby
    # names itself to the primary (application_name) and, once promoted, waits for no one.
    as_server_user tee "$DATA/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $STANDBY_PORT
unix_socket_directories = '$STANDBY_DIR'
hot_standby = on
max_connections = 100
primary_conninfo = 'host=$PRIMARY_HOST port=$PRIMARY_PORT user=postgres application_name=$APP_NAME'
EOF
    as_server_user tee "$DATA/pg_hba.conf" >/dev/null <<EOF
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
EOF
    # -R wrote a primary_conninfo without our application_name into postgresql.auto.conf, and
    # the copy may carry the primary's synchronous_standby_names: drop both there.
    as_server_user sed -i -e '/^primary_conninfo/d' -e '/^synchronous_standby_names/d' \
      "$DATA/postgresql.auto.conf"
    as_server_user "$pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start >/dev/null
    wait_for_standby async
    primary_sql -c "ALTER SYSTEM SET synchronous_standby_names = '$APP_NAME'" \
      -c "SELECT pg_reload_conf()" >/dev/null
    wait_for_standby sync
    log "standby streaming synchronously on 127.0.0.1:$STANDBY_PORT (application_name $APP_NAME)"
    ;;
  stop)
    primary_async
    if standby_running; then
      as_server_user "$(pg_bin pg_ctl)" -D "$DATA" -m fast -w stop >/dev/null
      log "standby stopped"
    fi
    rm -rf "$STANDBY_DIR"
    hba_restore
    ;;
  promote)
    standby_running || die "no standby runs in $DATA"
    primary_async
    as_server_user "$(pg_bin pg_ctl)" -D "$DATA" -w promote >/dev/null
    log "promoted: 127.0.0.1:$STANDBY_PORT is a writable primary ($(standby_sql -c 'SELECT pg_is_in_recovery()'))"
    ;;
  status)
    if pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; then
      printf 'primary %s:%s synchronous_standby_names=%s\n' "$PRIMARY_HOST" "$PRIMARY_PORT" \
        "$(primary_sql -c 'SHOW synchronous_standby_names')"
      primary_sql -F ' ' -c "SELECT 'replica', application_name, state, sync_state, replay_lsn FROM pg_stat_replication"
    else
      printf 'primary %s:%s down\n' "$PRIMARY_HOST" "$PRIMARY_PORT"
    fi
    if standby_running; then
      printf 'standby 127.0.0.1:%s in_recovery=%s\n' "$STANDBY_PORT" "$(standby_sql -c 'SELECT pg_is_in_recovery()')"
    else
      printf 'standby 127.0.0.1:%s not running\n' "$STANDBY_PORT"
      exit 3
    fi
    ;;
  check)
    trap '"$0" stop || true' EXIT
    "$0" start
    [ "$(primary_sql -c 'SHOW synchronous_standby_names')" = "$APP_NAME" ] || die "primary not synchronous"
    token="pg-standby-check-$$-$(date +%s%N)"
    primary_sql -c "CREATE TABLE IF NOT EXISTS ssc_standby_check (token text)" \
      -c "INSERT INTO ssc_standby_check VALUES ('$token')"
    # Synchronous: the commit returned once the standby had flushed it; replay follows at once.
    for _ in $(seq 1 50); do
      seen=$(standby_sql -c "SELECT count(*) FROM ssc_standby_check WHERE token = '$token'" 2>/dev/null || true)
      [ "$seen" = 1 ] && break
      sleep 0.1
    done
    [ "$seen" = 1 ] || die "the committed row is not on the standby"
    primary_sql -c "DROP TABLE ssc_standby_check"
    "$0" promote
    [ "$(standby_sql -c 'SELECT pg_is_in_recovery()')" = f ] || die "the standby was not promoted"
    [ -z "$(primary_sql -c 'SHOW synchronous_standby_names')" ] || die "promote left the primary synchronous"
    trap - EXIT
    "$0" stop
    [ -z "$(primary_sql -c 'SHOW synchronous_standby_names')" ] || die "stop left the primary synchronous"
    log "check passed"
    ;;
  *)
    die "usage: $0 start|stop|status|promote|check"
    ;;
esac
