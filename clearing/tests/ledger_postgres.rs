//! The ledger suite on PostgreSQL (fails when PostgreSQL is unreachable: run ops/setup.sh).
mod common;
mod ledger_suite;
use common::Harness;
ledger_suite!(Harness::postgres);
