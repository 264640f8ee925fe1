//! The authorization switch of the social-security card network.
//!
//! The production library, in the order a request meets it:
//!
//! - [`acquirer`]: the acquirer side, the TCP/TLS server kiosks, hospital systems and
//!   acquiring banks connect to;
//! - [`pipeline`]: the authorization pipeline (checks, bill split, routing, decisions);
//! - [`store`]: the `Store` trait with its SQLite and PostgreSQL backends, the group-commit
//!   writer and the transactional outbox;
//! - [`issuer`]: the issuer side, how the pipeline reaches the banks: the issuer links (MUX,
//!   sign-on, echo, key exchange, reconnection) and the store-and-forward forwarder of
//!   reversals and advices;
//! - [`wire`]: what both sides share on the wire: link MACs, transport framing, network
//!   management;
//! - [`node`]: one switch node wired together (links, writer, pipeline, listeners, forwarder,
//!   housekeeping, HTTP), for `switch serve` and `switch demo` alike;
//! - [`config`]: `switch serve`'s configuration file;
//! - [`console`]: the operator console, server-rendered pages over the operator API;
//! - [`http`]: health, readiness, metrics, lookup by RRN and the store-and-forward backlog;
//! - [`metrics`]: counters and latency for `/metrics` and the demo screen.
//!
//! With the `demo` feature (off by default), `sim` adds what never runs in production: the
//! simulated bank hosts, the simulated kiosks, the demo world, `switch demo` and the store's
//! test fixtures.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod acquirer;
pub mod clearing_link;
pub mod clock;
pub mod cms;
pub mod config;
pub mod console;
pub mod http;
pub mod issuer;
pub mod metrics;
pub mod node;
pub mod operator;
pub mod pipeline;
#[cfg(feature = "demo")]
pub mod sim;
pub mod store;
pub mod wire;

/// The allocator the `switch` binary and the load generator install (see `main.rs`).
pub use mimalloc::MiMalloc;
