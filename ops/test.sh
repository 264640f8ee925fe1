#!/usr/bin/env bash
# The project's test command (README.md, .ci/run). Installs what the tests need, then runs
# formatting, lints and the whole test suite. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

ops/setup.sh
ops/kafka.sh start

# A test build takes ~10 GB (Cargo.toml keeps debug info small for that reason); a CI run once
# failed linking with the disk full, so say up front how much room there is.
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
echo "== disk: $(df -h --output=avail "$target_dir" | tail -1 | tr -d ' ') free where the build goes ($target_dir)"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== the production switch: no simulators, no clearing"
# The simulators are behind switch's `demo` feature (tests and loadgen turn it on); the library
# and binary a bank deploys build and lint without them.
cargo clippy -p switch --lib --bins --locked -- -D warnings
deps=$(cargo tree -p switch -e normal --locked)
if grep -q clearing <<<"$deps"; then
  echo "switch depends on clearing without the demo feature" >&2
  exit 1
fi

echo "== the PostgreSQL standby (ops/pg-standby.sh: 5433 replicating 5432 synchronously)"
# Before the suite, not during it: while the standby runs, commits on 5432 wait for it. About 5 s.
# The failover drill itself (switch/tests/failover.rs, ~15 s) runs in the suite on its own pair.
ops/pg-standby.sh check

echo "== tests"
# Tests that need PostgreSQL, pcscd or the broker fail (never skip) when those are missing.
# The fuzz crates are workspace members: every fuzz target is built here on stable and replays
# its corpus (each fuzz crate's tests/corpus.rs; schemas/fuzz/README.md).
# Doctests first, so the run closes on nextest's summary line of the whole suite.
cargo test --workspace --locked --doc
cargo nextest run --workspace --locked --no-fail-fast
