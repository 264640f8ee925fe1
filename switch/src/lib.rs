//! The authorization switch of the social-security card network.
//!
//! - [`store`]: the `Store` trait with its SQLite and PostgreSQL backends, the group-commit
//!   writer and the transactional outbox;
//! - [`pipeline`]: the authorization pipeline (checks, bill split, routing, decisions);
//! - [`gateway`]: how the pipeline reaches the banks;
//! - [`metrics`]: counters and latency for `/metrics` and the demo screen;
//! - [`link`]: the issuer links to the banks (MUX, sign-on, echo, key exchange, reconnection)
//!   and the store-and-forward reversal forwarder;
//! - [`banksim`]: a simulated bank issuer host for the demo and the tests;
//! - [`acquirer`]: the TCP/TLS server kiosks and acquirers connect to;
//! - [`http`]: health, readiness, metrics, lookup by RRN and the store-and-forward backlog;
//! - [`demo`]: the demo world, simulated kiosks and `switch demo`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod acquirer;
pub mod app;
pub mod banksim;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod http;
pub mod link;
pub mod metrics;
pub mod pipeline;
pub mod store;

/// The allocator the `switch` binary and the load generator install (see `main.rs`).
pub use mimalloc::MiMalloc;
