//! Fuzz the Bcd2 length-header framer (with and without TPDU): never panics, never yields a
//! frame above the configured maximum.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    schemas_fuzz::frame(schemas::iso8583::framing::LengthHeader::Bcd2, data)
});
