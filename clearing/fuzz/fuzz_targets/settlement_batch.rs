//! Fuzz clearing's consumer on a batch of settlement-event payloads (one per line): decoding,
//! validation and the ledger rules never panic, and no batch creates or destroys money.
#![cfg_attr(fuzzing, no_main)]
fuzz_replay::fuzz_target!(|data| clearing_fuzz::settlement_batch(data));
