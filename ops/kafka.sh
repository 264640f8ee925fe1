#!/usr/bin/env bash
# The Kafka-protocol broker the clearing tests and demo use: tansu 0.6.0 on 127.0.0.1:9092
# (IPv4 only), storing its log in a SQLite file so a broker restart keeps its data. Nothing in
# the code is tansu-specific: point --brokers at Apache Kafka or Redpanda instead.
#
#   ops/kafka.sh start    start it unless something already listens on 9092, wait until ready
#   ops/kafka.sh stop     stop the broker this script started
#   ops/kafka.sh status   say whether 127.0.0.1:9092 accepts connections
#
# The binary is built by ops/setup.sh into $SSC_TOOLS/bin; data and log live in $SSC_KAFKA_DIR.
set -euo pipefail

SSC_TOOLS=${SSC_TOOLS:-/var/cache/ssc/tools}
SSC_KAFKA_DIR=${SSC_KAFKA_DIR:-/var/cache/ssc/kafka}
TANSU=${TANSU:-$SSC_TOOLS/bin/tansu}
HOST=127.0.0.1
PORT=9092
PID_FILE=$SSC_KAFKA_DIR/tansu.pid
LOG_FILE=$SSC_KAFKA_DIR/tansu.log

log() { printf '[kafka] %s\n' "$*" >&2; }

listening() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

case "${1:-status}" in
  start)
    if listening; then
      log "a broker already listens on $HOST:$PORT"
      exit 0
    fi
    [ -x "$TANSU" ] || { log "tansu not found at $TANSU (run ops/setup.sh)"; exit 1; }
    mkdir -p "$SSC_KAFKA_DIR"
    cd "$SSC_KAFKA_DIR"
    # The storage URL is relative to the data directory (sqlite://tansu.db).
    nohup "$TANSU" broker \
      --listener-url "tcp://$HOST:$PORT" \
      --advertised-listener-url "tcp://$HOST:$PORT" \
      --storage-engine "sqlite://tansu.db" \
      >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 100); do
      if listening; then
        log "tansu ready on $HOST:$PORT (pid $(cat "$PID_FILE"), log $LOG_FILE)"
        exit 0
      fi
      if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        log "tansu exited; last lines of $LOG_FILE:"
        tail -n 20 "$LOG_FILE" >&2 || true
        exit 1
      fi
      sleep 0.2
    done
    log "tansu did not listen on $HOST:$PORT within 20 s"
    exit 1
    ;;
  stop)
    if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      kill "$(cat "$PID_FILE")"
      rm -f "$PID_FILE"
      log "stopped"
    else
      log "no broker started by this script is running"
    fi
    ;;
  status)
    if listening; then log "up on $HOST:$PORT"; else log "down"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
