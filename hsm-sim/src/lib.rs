//! `hsm-sim`: the HSM side of the social-security card network.
//!
//! - [`card_crypto`]: pure functions on clear card keys (EMV/PBOC/SSSE), shared by the software
//!   HSM and the virtual card so both sides compute the same cryptograms.
//! - [`lmk`], [`keys`]: the LMK set and typed, LMK-encrypted key tokens.
//! - [`pin`], [`cvv`], [`mac`], [`crypto`]: host-side computations on unwrapped keys.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod block;
pub mod card_crypto;
pub mod crypto;
pub mod cvv;
pub mod datakey;
pub mod error;
pub mod hsm;
pub mod keys;
pub mod lmk;
pub mod mac;
pub mod pin;
pub mod soft;

pub use error::HsmError;
pub use hsm::Hsm;
pub use soft::SoftHsm;
