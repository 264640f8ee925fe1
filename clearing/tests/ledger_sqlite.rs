//! The ledger suite on SQLite.
mod common;
mod ledger_suite;
use common::Harness;
ledger_suite!(Harness::sqlite);
