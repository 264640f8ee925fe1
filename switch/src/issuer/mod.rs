//! The issuer side: how the switch reaches the banks that issued the cards.
//!
//! A bank leg (purchase remainder, balance inquiry, refund, benefit credit) and every reversal
//! go to the card's bank over ISO 8583/TCP. Each bank has one outgoing link, supervised by its
//! own task (`session`) that connects, signs on, keeps the link alive, exchanges keys and
//! reconnects. The data plane ([`IssuerLinks::request`]) never waits for the supervisor: it
//! checks the state, registers the request in the link's [`mux::Mux`], queues the encoded
//! message on the connection's writer and waits for the matching response with its own
//! timeout.
//!
//! - [`gateway`]: the pipeline's view of the banks ([`gateway::BankGateway`]), which
//!   [`IssuerLinks`] implements;
//! - [`IssuerLinks`] (`links`): every bank's link behind one handle; its settings
//!   ([`IssuerConfig`], [`LinksOptions`]) and errors ([`LinkError`]);
//! - `link`: one bank's link: requests, network management, key exchange, MACs of answers;
//! - `session`: the supervisor of one link (connect, sign-on, echo, reconnect);
//! - [`BankTls`] (`tls`): mutual TLS on a link, client side;
//! - [`mux`]: matching responses to requests (MTI class + STAN + terminal), with bounds and an
//!   explicit place for late and unmatched responses;
//! - [`forwarder`]: store-and-forward delivery of queued reversals (0420/0421) and stand-in
//!   advices (0220/0221, 0120/0121);
//! - [`cutover`]: the end of each settlement day, a 0500 to every bank with the switch's totals
//!   for it, and the bank's 0510 recorded (in balance, or an exception for operators).
//!
//! The wire pieces the links share with the bank's side (MAC, framing, network management)
//! are in [`crate::wire`].

mod config;
pub mod cutover;
pub mod forwarder;
pub mod gateway;
mod link;
mod links;
pub mod mux;
mod session;
mod tls;

pub use config::{IssuerConfig, LinksOptions, ANSWER_CHECKS_IN_FLIGHT_MAX_DEFAULT};
pub use link::{LinkError, LinkState};
pub use links::{IssuerLinks, LinkStats};
pub use tls::BankTls;
