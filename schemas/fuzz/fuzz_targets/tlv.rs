//! Fuzz the BER-TLV reader of field 55: never panics, and what it parses re-serialises to
//! something it parses the same way.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| schemas_fuzz::tlv(data));
