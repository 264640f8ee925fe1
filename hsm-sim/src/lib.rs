//! `hsm-sim`: the HSM side of the social-security card network.
//!
//! - [`card_crypto`]: pure functions on clear card keys (EMV/PBOC/SSSE), shared by the software
//!   HSM and the virtual card so both sides compute the same cryptograms.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod block;
pub mod card_crypto;
