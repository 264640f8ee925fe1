//! The settings of the issuer links: one [`IssuerConfig`] per bank, and the [`LinksOptions`]
//! all links share. `switch serve` reads them from its configuration file (`[[bank]]`).

use std::time::Duration;

use hsm_sim::keys::{Tak, Zmk, Zpk};
use schemas::domain::InstitutionId;

use crate::wire::mac::LinkMacAlgorithm;
use crate::wire::transport::Framing;

use super::BankTls;

/// Configuration of the link to one bank's issuer host.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The bank (institution identification code, fields 32/33/100).
    pub institution: InstitutionId,
    /// `host:port` of its issuer host.
    pub address: String,
    /// ISO 8583 spec name (`ssc87` unless the bank speaks another dialect).
    pub spec_name: String,
    /// Framing of the link.
    pub framing: Framing,
    /// Longest wait for the TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for a 0810 (sign-on, echo, key exchange, sign-off).
    pub network_timeout: Duration,
    /// Echo test after this long without receiving anything.
    pub echo_interval: Duration,
    /// First reconnection delay.
    pub reconnect_backoff_min: Duration,
    /// Longest reconnection delay.
    pub reconnect_backoff_max: Duration,
    /// Most requests in flight on the link.
    pub in_flight_max: usize,
    /// Most answers whose MAC the read task checks at once (at least 1; see the module
    /// documentation).
    pub answer_checks_in_flight_max: usize,
    /// The zone master key shared with the bank (LMK token of the switch's HSM).
    pub zmk: Zmk,
    /// A zone PIN key agreed out of band, used until the first key exchange.
    pub zpk: Option<Zpk>,
    /// MAC the financial, reversal and reconciliation messages and require MACs on their
    /// answers ([`crate::wire::mac`]); every key exchange then carries a new TAK too.
    pub mac: bool,
    /// A TAK agreed out of band, used until the first key exchange (with `mac`); of the
    /// scheme of `mac_algorithm`.
    pub tak: Option<Tak>,
    /// The algorithm of the link's MACs (with `mac`): the scheme of the TAKs it exchanges,
    /// said at sign-on and in every key exchange; a bank that says another one is not signed
    /// on to ([`crate::wire::mac`]).
    pub mac_algorithm: LinkMacAlgorithm,
    /// Exchange keys right after each sign-on.
    pub key_exchange_on_sign_on: bool,
    /// Exchange keys periodically while signed on.
    pub key_exchange_interval: Option<Duration>,
    /// Mutual TLS on the link (absent: plain TCP).
    pub tls: Option<BankTls>,
}

impl IssuerConfig {
    /// A config with the defaults: `ssc87`, 2-byte header, 3 s connect, 5 s network
    /// timeout, echo after 30 s idle, back-off 100 ms..30 s, 1024 in flight, 64 answers
    /// checked at once, MACs (when turned on) by ANSI X9.19.
    pub fn new(institution: InstitutionId, address: impl Into<String>, zmk: Zmk) -> Self {
        IssuerConfig {
            institution,
            address: address.into(),
            spec_name: "ssc87".into(),
            framing: Framing::default(),
            connect_timeout: Duration::from_secs(3),
            network_timeout: Duration::from_secs(5),
            echo_interval: Duration::from_secs(30),
            reconnect_backoff_min: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(30),
            in_flight_max: 1024,
            answer_checks_in_flight_max: ANSWER_CHECKS_IN_FLIGHT_MAX_DEFAULT,
            zmk,
            zpk: None,
            mac: false,
            tak: None,
            mac_algorithm: LinkMacAlgorithm::X919,
            key_exchange_on_sign_on: false,
            key_exchange_interval: None,
            tls: None,
        }
    }
}

/// Default [`IssuerConfig::answer_checks_in_flight_max`]: enough to keep a network HSM's
/// pipeline busy (hsm-sim's client allows 512 requests in flight per connection).
pub const ANSWER_CHECKS_IN_FLIGHT_MAX_DEFAULT: usize = 64;

/// Settings shared by all links.
#[derive(Debug, Clone)]
pub struct LinksOptions {
    /// The switch's own institution id (field 32 of the messages it originates).
    pub switch_institution: InstitutionId,
    /// Capacity of the late/unmatched response queue (all links together).
    pub unmatched_queue_max: usize,
    /// Expired MUX keys remembered per link (to tell late from unmatched responses).
    pub expired_keys_max: usize,
}

impl LinksOptions {
    /// Defaults: 1024 queued unmatched responses, 8192 remembered keys per link.
    pub fn new(switch_institution: InstitutionId) -> Self {
        LinksOptions {
            switch_institution,
            unmatched_queue_max: 1024,
            expired_keys_max: 8192,
        }
    }
}
