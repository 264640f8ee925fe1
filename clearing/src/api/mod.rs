//! The internal settlement API (issue 25): settlement windows, net positions and statements
//! for the switch's operator routes, served by `clearing api` over mutual TLS.
//!
//! Why a service of its own: the production switch does not link clearing (it meets clearing
//! only in `schemas`), yet its operators (the clearing centre's analysts, each bank's back
//! office) read positions, close windows and download statements through the switch's
//! operator API. The switch forwards those requests here as a client whose certificate proves
//! it is a switch node; the wire format is [`schemas::settlement_api`].
//!
//! - [`service`]: the answers as functions of the ledger and the viewer (also what
//!   `switch demo` calls in its own process);
//! - [`server`]: the axum routes, the operator headers, problem documents;
//! - [`tls`]: the listener: rustls, a client certificate of the switch nodes' CA required
//!   (optionally only certificates whose key is on an allow-list), bounded connections and
//!   handshakes.

pub mod server;
pub mod service;
pub mod tls;

pub use server::{router, ApiState};
pub use service::Operator;

use crate::ClearingError;

/// Why a request of the settlement API is refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such window or statement, or none the viewer may see.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The viewer's institution may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The ledger's state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// A parameter or body is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The ledger failed (logged; the caller sees "unavailable").
    #[error(transparent)]
    Ledger(#[from] ClearingError),
}
