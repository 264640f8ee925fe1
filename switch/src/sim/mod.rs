//! Everything that stands in for the world around the switch, and never runs in production:
//! compiled only with the `demo` feature (`cargo build -p switch` leaves it out, and with it
//! the in-process clearing).
//!
//! - [`world`]: the seeded demo world (institutions, keys, cards and accounts);
//! - [`identity`]: the demo cards' cardholders on record and the SSSE keys (identity sessions);
//! - [`kiosk`]: simulated kiosks with virtual cards, the ISO 8583 client side;
//! - [`banksim`]: simulated bank issuer hosts, the other end of the issuer links;
//! - [`bureau`]: the card bureau and issuance counter of the card management system;
//! - [`demo`]: `switch demo`, the whole network on one machine;
//! - [`settlement`]: clearing's settlement API in the demo's own process;
//! - [`serve_config`]: the demo world's `switch serve` configuration file;
//! - [`testkit`]: fixtures for the store's tests and benches.
//!
//! The tests and the load generator reuse them, so what they exercise is what the demo shows.

pub mod banksim;
pub mod bureau;
pub mod demo;
pub mod identity;
pub mod kiosk;
pub mod operator_kit;
pub mod serve_config;
pub mod settlement;
pub mod testkit;
pub mod world;
