//! Clearing for the social-security card network: the settlement bus, the outbox relay, the
//! double-entry ledger with live net positions, settlement windows with multilateral net
//! settlement, reconciliation with banks and settlement files.
//!
//! The switch writes one `schemas::events::SettlementEvent` per approved financial decision into
//! its outbox, in the same transaction as the decision. From there:
//!
//! ```text
//! switch outbox ──relay──▶ SettlementBus (in-process | Kafka) ──consumer──▶ Ledger (own db)
//!                                                                    └─▶ windows, reports
//! ```
//!
//! - [`relay`]: reads the outbox in `outbox_seq` order and publishes, one relay at a time (lease).
//! - [`bus`]: [`bus::InProcessBus`] (embedded) or [`bus::KafkaBus`] (topic per event family, key =
//!   acquiring institution, idempotent producer with acks=all).
//! - [`ledger`]: exactly-once application (event id unique; consumer offsets stored in the same
//!   transaction as the postings), two-phase holds, positions that always sum to zero, dead
//!   letters for poison events.
//! - [`window`]: cut-over schedule, closing a window (freeze, net settlement, SHA-256 digest).
//! - [`report`]: settlement files of closed windows: CSV and ISO 20022 camt.053.001.08
//!   statements, the medical-insurance reconciliation view (`docs/settlement-files.md`).
//! - [`api`]: the settlement API the switch's operator routes call (`clearing api`, mutual TLS).
//! - [`recon`]: ISO 8583 0500 reconciliation totals against the ledger, answered with a 0510.
//!
//! clearing never depends on the `switch` crate: they meet in `schemas` (events, migrations).
//!
//! # Embedded use (`switch demo`)
//!
//! ```no_run
//! # async fn demo() -> Result<(), clearing::ClearingError> {
//! use clearing::embedded::{EmbeddedClearing, EmbeddedConfig};
//! use clearing::window::WindowSchedule;
//! let clearing = EmbeddedClearing::start(EmbeddedConfig::new(
//!     "switch.db",          // the switch's SQLite file (its outbox is read)
//!     "clearing.db",        // clearing's own ledger, created if missing
//!     WindowSchedule::EveryMinutes(15),
//! ))
//! .await?;
//! let positions = clearing.positions().await?; // live net positions, summing to zero
//! let stats = clearing.stats().await?;         // events applied, lag behind the outbox
//! # let _ = (positions, stats);
//! clearing.shutdown().await?;
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod api;
pub mod backup;
pub mod bus;
pub mod clock;
pub mod consumer;
pub mod db;
pub mod embedded;
pub mod error;
pub mod ledger;
pub mod recon;
pub mod relay;
pub mod report;
pub mod window;

pub use error::{ClearingError, Result};
