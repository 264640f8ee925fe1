//! Fuzz the Binary2 length-header framer (with and without TPDU): never panics, never yields a
//! frame above the configured maximum.
#![cfg_attr(fuzzing, no_main)]
fuzz_replay::fuzz_target!(|data| schemas_fuzz::frame(
    schemas::iso8583::framing::LengthHeader::Binary2,
    data
));
