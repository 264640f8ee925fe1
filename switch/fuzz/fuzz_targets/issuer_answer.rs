//! Fuzz what a bank sends on its issuer link (`switch::issuer::answer`, the MUX, field 48):
//! never panics, and every keyed answer reaches the request waiting under its key.
#![cfg_attr(fuzzing, no_main)]
fuzz_replay::fuzz_target!(|data| switch_fuzz::issuer_answer(data));
