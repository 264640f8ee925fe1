#!/usr/bin/env bash
# End-to-end measurement on this machine: starts `switch demo --no-traffic` in a scratch folder,
# drives it with `loadgen`, and reports what loadgen printed plus, per switch thread, context
# switches and CPU microseconds per answered request (from /proc, so no profiler is needed), and
# the bytes the switch wrote per answered request (/proc/PID/io wchar: WAL, checkpoints, sockets), in total and per thread.
# With --postgres in DEMO ARGS it also reports the server's WAL bytes per answered request
# (pg_stat_wal.wal_bytes, cluster-wide: run it with nothing else writing to that server) and the
# CPU of the server's processes per answered request.
#
#   benches/scripts/run.sh "DEMO ARGS" "LOADGEN ARGS"
#   benches/scripts/run.sh "--no-clearing" "--connections 16 --window 16 --duration 25 --prepare-max 200000"
#   benches/scripts/run.sh "" "--connections 16 --rate 3000 --duration 15 --prepare-max 60000"
#
# Env: BIN (folder of release binaries; default $CARGO_TARGET_DIR/release or target/release),
# CPB (cards per bank, default 1000), WARM (seconds between start and load, default 3; use 20
# with --postgres), METRICS (a regex of /metrics lines to print after the run), SCRATCH_IN (where
# the scratch folder goes, e.g. /dev/shm to take the disk out of a measurement).
# Build first (the demo needs the simulators): cargo build --release -p switch -p benches --bins --features switch/demo
set -euo pipefail
BIN=${BIN:-${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}/release}
CPB=${CPB:-1000}
DEMO_ARGS=${1:-}
LOAD_ARGS=${2:---connections 16 --window 16 --duration 20 --prepare-max 150000}
# Another switch on the demo's port would take this run's load and void its numbers.
if (echo > /dev/tcp/127.0.0.1/8583) 2>/dev/null; then
  echo "run.sh: 127.0.0.1:8583 is already in use (another run?); not measuring" >&2
  exit 1
fi
scratch=$(mktemp -d ${SCRATCH_IN:+-p $SCRATCH_IN})
trap 'kill -INT "${switch_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$scratch"' EXIT
cd "$scratch"
# shellcheck disable=SC2086
"$BIN/switch" demo --no-traffic --cards-per-bank "$CPB" $DEMO_ARGS > switch.log 2>&1 &
switch_pid=$!
for _ in $(seq 1 120); do (echo > /dev/tcp/127.0.0.1/8583) 2>/dev/null && break; sleep 0.5; done
sleep "${WARM:-3}"
snapshot() {
  for t in /proc/"$switch_pid"/task/*; do
    printf '%s %s %s %s\n' "$(cat "$t/comm" | tr ' ' '_')-$(basename "$t")" \
      "$(awk '/^(non)?voluntary_ctxt_switches/{s+=$2} END{print s}' "$t/status")" \
      "$(awk '{print $14+$15}' "$t/stat")" \
      "$(awk '/^wchar/{print $2}' "$t/io" 2>/dev/null || echo 0)"
  done | sort
}
pg_url=$(grep -o -- '--postgres [^ ]*' <<<"$DEMO_ARGS" | cut -d" " -f2 || true)
pg_wal() { psql "$pg_url" -Atc "SELECT wal_bytes FROM pg_stat_wal"; }
pg_cpu() { # utime + stime of every postgres process, in ticks
  for p in $(pgrep -x postgres); do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s+=$1} END{print s+0}'
}
if [ -n "$pg_url" ]; then pg_wal > wal1.txt; pg_cpu > pgcpu1.txt; fi
snapshot > before.txt; grep wchar /proc/$switch_pid/io > io1.txt; awk '{print $14+$15}' /proc/$switch_pid/stat > cpu1.txt
# shellcheck disable=SC2086
/usr/bin/time -f "%U %S" -o loadgen.cpu "$BIN/loadgen" --cards-per-bank "$CPB" $LOAD_ARGS 2>&1 | tee loadgen.out | grep -v "^warning"
snapshot > after.txt; grep wchar /proc/$switch_pid/io > io2.txt; awk '{print $14+$15}' /proc/$switch_pid/stat > cpu2.txt
if [ -n "$pg_url" ]; then pg_wal > wal2.txt; pg_cpu > pgcpu2.txt; fi
answered=$(grep -o 'responses [0-9]*' loadgen.out | awk '{print $2}')
tick_us=$((1000000 / $(getconf CLK_TCK)))
echo "per answered request (switch threads, idle ones left out):"
join before.txt after.txt | awk -v n="$answered" -v t="$tick_us" '
  { c = ($5 - $2) / n; u = ($6 - $3) * t / n; w = ($7 - $4) / n; cs += c; us += u; ws += w
    if (u >= 1 || c >= 0.05 || w >= 1) printf "  %-28s ctx %.2f  cpu %4.0f us  wrote %6.0f B\n", $1, c, u, w }
  END { printf "  %-28s ctx %.2f  cpu %4.0f us  wrote %6.0f B\n", "total", cs, us, ws }'
# Threads started during the load (tokio's replacements for a worker in block_in_place) are
# missing from the per-thread lines; the process's own counter includes them.
process_us=$(( ($(cat cpu2.txt) - $(cat cpu1.txt)) * tick_us / answered ))
# The demo's simulated banks run in the switch's process on a runtime of their own (threads
# `bank-sim`): test equipment, counted apart from the switch (issue 27).
banks_us=$(join before.txt after.txt | awk -v n="$answered" -v t="$tick_us" \
  '$1 ~ /^bank-sim/ { u += ($6 - $3) * t } END { printf "%d", u / n }')
echo "  switch process CPU: $process_us us per answered request (all threads)"
echo "    of which the simulated banks (bank-sim threads): $banks_us us; the switch alone: $((process_us - banks_us)) us"
echo "  written by the switch: $(( ($(cut -d" " -f2 io2.txt) - $(cut -d" " -f2 io1.txt)) / answered )) bytes per answered request"
# loadgen is test equipment on the same cores: its CPU (preparation included) is what the
# switch and its banks did not get.
echo "  loadgen CPU (whole run, preparing included): $(awk -v n="$answered" '{ printf "%d", ($1 + $2) * 1000000 / n }' loadgen.cpu) us per answered request"
if [ -n "$pg_url" ]; then
  echo "  PostgreSQL WAL: $(( ($(cat wal2.txt) - $(cat wal1.txt)) / answered )) bytes per answered request (pg_stat_wal)"
  echo "  PostgreSQL server CPU: $(( ($(cat pgcpu2.txt) - $(cat pgcpu1.txt)) * tick_us / answered )) us per answered request (postgres processes)"
fi
if [ -n "${METRICS:-}" ]; then curl -s -H "Authorization: Bearer demo-api-key-0000000000000000000000000000000000000000000000000000" 127.0.0.1:8080/metrics | grep -E "$METRICS" || true; fi
