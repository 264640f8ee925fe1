#!/usr/bin/env bash
# The project's test command (README.md, .ci/run). Installs what the tests need, then runs
# formatting, lints and the whole test suite. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

ops/setup.sh
ops/kafka.sh start

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
# Tests that need PostgreSQL, pcscd or the broker fail (never skip) when those are missing.
# Doctests first, so the run closes on nextest's summary line of the whole suite.
cargo test --workspace --locked --doc
cargo nextest run --workspace --locked --no-fail-fast
