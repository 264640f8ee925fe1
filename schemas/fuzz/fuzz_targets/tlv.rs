//! Fuzz the BER-TLV reader of field 55: never panics, and what it parses re-serialises to
//! something it parses the same way.
#![cfg_attr(fuzzing, no_main)]
fuzz_replay::fuzz_target!(|data| schemas_fuzz::tlv(data));
