#!/usr/bin/env bash
# Installs and starts what the project's tests and demo need on a fresh machine (Debian, root),
# and does nothing that is already done. Called by ops/test.sh; safe to run by hand.
#
#   ops/setup.sh            apt packages + PostgreSQL running + test tools (nextest, tansu)
#   ops/setup.sh demo       apt packages only: what `switch demo` needs to build and run + tools (cargo-nextest, tansu)
#
# Tools that take long to build are cached under $SSC_TOOLS (default /var/cache/ssc/tools), outside
# the checkout, so later runs on the same machine reuse them.
set -euo pipefail

SSC_TOOLS=${SSC_TOOLS:-/var/cache/ssc/tools}
export SSC_TOOLS
mkdir -p "$SSC_TOOLS"

log() { printf '[setup] %s\n' "$*" >&2; }

# ---- Debian packages -------------------------------------------------------------------------
# pcscd + vsmartcard-vpcd + pcsc-tools: the real PC/SC stack the virtual card is reached through.
# libpcsclite-dev + pkg-config: the `pcsc` crate links libpcsclite.
# cmake + libsasl2-dev + libcurl4-openssl-dev + zlib1g-dev: rdkafka builds librdkafka from source
# (its CMake build enables libcurl when it finds the library).
# postgresql: its server binaries (initdb, pg_ctl) start the private TLS-only cluster of
# switch/tests/postgres_tls.rs.
# libxml2-utils: xmllint, which the clearing tests run to validate every camt.053 against the
# ISO 20022 schema (schemas/iso20022/camt.053.001.08.xsd).
# chromium + chromium-driver: the operator console's journeys in a real browser, driven over
# WebDriver (switch/tests/console/); fonts-noto-cjk so its Chinese pages render in screenshots.
APT_PACKAGES=(pcscd vsmartcard-vpcd pcsc-tools libpcsclite-dev pkg-config cmake build-essential
  libsasl2-dev libssl-dev libcurl4-openssl-dev zlib1g-dev postgresql-client postgresql
  libxml2-utils chromium chromium-driver fonts-noto-cjk)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "demo" ]; then
  log "ready (demo)"
  exit 0
fi

# ---- PostgreSQL (127.0.0.1:5432, trust auth, database `test`) ---------------------------------
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { log "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }

# ---- cargo-nextest ---------------------------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
# ---- tansu (Kafka-protocol broker for the clearing tests; started by ops/kafka.sh) -------------
# Built once from crates.io into $SSC_TOOLS; its build directory is kept under /var/cache/ssc so a
# rebuild (new version) reuses what it can.
TANSU_VERSION=0.6.0
if [ ! -x "$SSC_TOOLS/bin/tansu" ]; then
  log "building tansu $TANSU_VERSION (once; takes a while)"
  CARGO_TARGET_DIR=/var/cache/ssc/tansu-target \
    cargo install tansu --locked --version "$TANSU_VERSION" --features libsql,dynostore \
    --root "$SSC_TOOLS"
fi
log "ready"
