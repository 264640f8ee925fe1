//! Fuzz the `ssc87` decoder: arbitrary bytes must give a message or an error, never a panic,
//! and a decoded message must re-encode and decode to the same values.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| schemas_fuzz::decode("ssc87", data));
