//! Fuzz the switch's reading of an acquirer's request (`ssc87` decode, then
//! `switch::pipeline::request::Request::parse`): never panics, and what it accepts keeps the
//! rules it states (money moves only with an amount, bills add up, reversals name the original).
#![cfg_attr(fuzzing, no_main)]
fuzz_replay::fuzz_target!(|data| switch_fuzz::switch_request(data));
