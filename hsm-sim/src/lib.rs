//! `hsm-sim`: the HSM side of the social-security card network.
//!
//! - [`card_crypto`]: pure functions on clear card keys (EMV/PBOC/SSSE), shared by the software
//!   HSM and the virtual card so both sides compute the same cryptograms.
//! - [`lmk`], [`keys`]: the LMK set and typed, LMK-encrypted key tokens.
//! - [`pin`], [`cvv`], [`mac`], [`crypto`], [`datakey`]: host-side computations on unwrapped keys;
//!   [`transport_key`]: data keys sealed for one caller instead of sent in clear.
//! - [`hsm`]: the object-safe async [`Hsm`] trait; [`soft`]: the in-process software HSM.
//! - [`codec`], [`commands`], [`server`], [`client`], [`audit`]: the payShield-style host
//!   protocol, the `hsm-sim` TCP server and a pooled, pipelining client implementing [`Hsm`];
//!   [`tls`]: optional (mutual) TLS on that link.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod audit;
pub mod block;
pub mod card_crypto;
pub mod client;
pub mod codec;
pub mod commands;
pub mod crypto;
pub mod cvv;
pub mod datakey;
pub mod error;
pub mod hsm;
pub mod keys;
pub mod lmk;
pub mod mac;
pub mod pin;
pub mod server;
pub mod soft;
pub mod tls;
pub mod transport_key;

pub use client::{ClientConfig, HsmClient};
pub use error::HsmError;
pub use hsm::Hsm;
pub use soft::SoftHsm;
