//! Benchmarks of the social-security card network. The criterion benchmarks live in
//! `benches/`; this library holds the sample messages they share, so tests can check that
//! the samples are what the benchmarks claim to measure.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod samples;
