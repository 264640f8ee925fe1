//! Fuzz the `moov87` decoder: arbitrary bytes must give a message or an error, never a panic,
//! and a decoded message must re-encode and decode to the same values.
#![cfg_attr(fuzzing, no_main)]
fuzz_replay::fuzz_target!(|data| schemas_fuzz::decode("moov87", data));
