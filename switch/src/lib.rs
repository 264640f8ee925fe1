//! The authorization switch of the social-security card network.
//!
//! For now this crate holds the persistence layer ([`store`]): the `Store` trait with its
//! SQLite and PostgreSQL backends, the group-commit writer and the transactional outbox. The
//! links, the authorization pipeline and the binary arrive on top of it (issue 5).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod banksim;
pub mod gateway;
pub mod link;
pub mod store;
