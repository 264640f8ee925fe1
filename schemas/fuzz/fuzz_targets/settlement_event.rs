//! Fuzz the settlement event's JSON form (`schemas::events`, what the outbox carries and
//! clearing decodes): never panics, and an event that parses and validates re-serialises to
//! JSON that parses to the same event.
#![cfg_attr(fuzzing, no_main)]
fuzz_replay::fuzz_target!(|data| schemas_fuzz::settlement_event(data));
