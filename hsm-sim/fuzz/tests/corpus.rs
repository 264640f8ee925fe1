//! Every fuzz target of this crate builds on stable and replays its corpus
//! (`corpus/<target>/`) without a panic: the targets cannot rot (`fuzz-replay`).

fuzz_replay::replays!(host_command);
