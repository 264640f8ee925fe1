//! `schemas` owns every format that crosses a process boundary of the social-security card
//! network: the ISO 8583 message specs and the codec that interprets them, the shared domain
//! types, the settlement events and the SQL migrations. Other crates meet only here.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod domain;
pub mod events;
pub mod iso8583;
pub mod migrations;
pub mod settlement_api;
pub mod tlv;
