//! `switch serve --config FILE`: a production node from a TOML file (example:
//! `ops/switch.example.toml`). Every key in the file is an LMK token of the configured HSM
//! (payShield-style `U…`/`G…`/`B…` text); no clear key is accepted here.
//!
//! The store is chosen by the database URL (`sqlite://PATH` or `postgres://…`); the node is
//! then wired by [`crate::node`], the same code as the demo's: pipeline, acquirer listeners,
//! issuer links, reversal forwarder, housekeeping and HTTP.

use crate::acquirer::{AcquirerListener, InFlightCap, TlsSettings};
use crate::issuer::{BankTls, IssuerConfig};
use crate::node::{NodeError, NodeParts};
use crate::pipeline::security::{AcquirerKeys, IssuerKeys};
use crate::pipeline::split::{HospitalLevel, MedicalCategory, Policy, PolicyTable};
use crate::pipeline::velocity::CardLimits;
use crate::pipeline::{
    AcquirerIdentity, Hospital, LinkContext, PipelineConfig, PipelineKeys, SsseKeys, StandIn,
};
use crate::store::writer;
use crate::store::{
    AccountId, HsmPanProtector, IccAlgorithm, InsuranceCategory, IntegrityReport, PanProtector,
    PostgresConfig, PostgresStore, SqliteConfig, SqliteStore, SqliteSync, Store,
};
use crate::wire::mac::LinkMacAlgorithm;
use hsm_sim::keys::{Tak, TypedKey};
use hsm_sim::Hsm;
use rust_decimal::Decimal;
use schemas::domain::InstitutionId;
use schemas::iso8583::framing::LengthHeader;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not valid TOML for this schema.
    #[error("configuration: {0}")]
    Syntax(String),
    /// A value is invalid (named, never echoed when it is a key).
    #[error("configuration: {0}")]
    Invalid(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The HSM.
    #[error("hsm: {0}")]
    Hsm(#[from] hsm_sim::HsmError),
    /// The node did not start (a listener, the links, the forwarder).
    #[error(transparent)]
    Node(#[from] NodeError),
}

fn invalid(what: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(what.into())
}

/// The file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Institutions and timing.
    pub switch: SwitchSection,
    /// Database.
    pub database: DatabaseSection,
    /// HSM.
    pub hsm: HsmSection,
    /// Issuer keys.
    pub keys: KeysSection,
    /// HTTP listener.
    #[serde(default)]
    pub http: Option<HttpSection>,
    /// The operator API (required with `http`).
    #[serde(default)]
    pub operator: Option<OperatorSection>,
    /// Acquirer listeners.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerSection>,
    /// Acquirers and their keys.
    #[serde(default, rename = "acquirer")]
    pub acquirers: Vec<AcquirerSection>,
    /// Banks and their links.
    #[serde(default, rename = "bank")]
    pub banks: Vec<BankSection>,
    /// Designated hospitals.
    #[serde(default, rename = "hospital")]
    pub hospitals: Vec<HospitalSection>,
    /// The bill-split policy table.
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicySection>,
    /// Per-card limits.
    #[serde(default)]
    pub limits: Option<LimitsSection>,
    /// The card management system (issuance through the operator API).
    #[serde(default)]
    pub cms: Option<CmsSection>,
    /// Clearing's settlement API (the operator API's `/clearing/...` routes).
    #[serde(default)]
    pub clearing_api: Option<ClearingApiSection>,
}

/// `[clearing_api]`: where clearing's settlement API is (`clearing api`) and the mutual TLS to
/// it. Without it the `/clearing/...` routes answer 503.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearingApiSection {
    /// `https://host:port`.
    pub url: String,
    /// The CA (PEM) of clearing's server certificate.
    pub ca: String,
    /// This node's client certificate chain (PEM), of the CA clearing trusts.
    pub cert: String,
    /// Its private key (PEM).
    pub key: String,
    /// Give up on a call after this long, s.
    #[serde(default = "default_clearing_timeout_s")]
    pub timeout_s: u64,
}

fn default_clearing_timeout_s() -> u64 {
    10
}

/// `[cms]`: card issuance. Every key is an LMK token of the node's HSM (no clear key in the
/// file); the IMK-AC and IMK-SMI of the cards' algorithm, the PVK and the decimalisation table
/// are those of `[keys]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsSection {
    /// The cards' algorithm: `sm4` or `tdes`.
    pub algorithm: String,
    /// GB/T 2260 code of the issuing city (SSSE key dispersal, card identification code).
    pub city_code: String,
    /// Years a card is valid.
    #[serde(default = "default_validity_years")]
    pub validity_years: u32,
    /// IMK-SMC (secure messaging confidentiality) of the cards' algorithm.
    pub imk_smc: String,
    /// SSSE internal-authentication province key.
    pub ssse_internal_auth: String,
    /// SSSE external-authentication province key.
    pub ssse_external_auth: String,
    /// SSSE PIN-unblock province key.
    pub ssse_pin_unblock: String,
    /// SSSE line-protection province key (the MAC of an EF06 UPDATE RECORD).
    pub ssse_line_protection: String,
    /// The card bureau's ZMK (the personalisation file's transport keys travel under it).
    pub bureau_zmk: String,
    /// The TPK of the counters' PIN pads (initial PINs, PIN resets).
    pub counter_tpk: String,
    /// Data key token (scheme B) sealing cardholders' photos; without it photos are refused.
    pub photo_key: Option<String>,
    /// One card range per bank.
    #[serde(default, rename = "range")]
    pub ranges: Vec<CmsRangeSection>,
    /// The social-security bureaus and their regions.
    #[serde(default, rename = "bureau")]
    pub bureaus: Vec<CmsBureauSection>,
    /// The counter terminals, each with its PIN pad's own TPK (none: `counter_tpk` for all).
    #[serde(default, rename = "counter")]
    pub counters: Vec<CmsCounterSection>,
    /// The job-centre kiosks the switch may drive a card at over the card relay.
    #[serde(default, rename = "kiosk")]
    pub kiosks: Vec<CmsKioskSection>,
}

/// `[[cms.kiosk]]`: a job-centre kiosk whose card the switch may drive over card relay v2
/// (an SSSE PIN unblock, an EF06 update, `POST /cards/{id}/ssse-pin-unblock` and
/// `/records/ef06`). The relay is keyed with the TAK of the kiosk's institution (`[[acquirer]]`
/// `tak`), so none is configured here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsKioskSection {
    /// The kiosk's terminal id (8 characters, field 41).
    pub terminal: String,
    /// Its institution (a job centre).
    pub institution: String,
    /// Its relay agent's address, `host:port` (`kiosk serve-relay --listen`).
    pub relay: String,
}

/// `[[cms.counter]]`: a counter terminal and its PIN pad's TPK; an API key issued with its
/// `counter_id` (`POST /api-keys`) is that counter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsCounterSection {
    /// The counter's id.
    pub counter_id: String,
    /// Whose counter (a bureau or a bank).
    pub institution: String,
    /// Its TPK (LMK token).
    pub tpk: String,
}

fn default_validity_years() -> u32 {
    10
}

/// `[[cms.range]]`: a bank's PANs (BIN, serial, Luhn digit).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsRangeSection {
    /// The bank.
    pub bank: String,
    /// The BIN (6-11 digits).
    pub bin: String,
    /// PAN length in digits (16-19).
    #[serde(default = "default_pan_len_digits")]
    pub pan_len_digits: usize,
}

fn default_pan_len_digits() -> usize {
    16
}

/// `[[cms.bureau]]`: a social-security bureau (an institution) and the region it serves: its
/// operators see the cards and applications of cardholders insured there.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsBureauSection {
    /// The bureau's institution.
    pub institution: String,
    /// GB/T 2260 prefix of its region (2, 4 or 6 digits).
    pub region_prefix: String,
}

/// `[switch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSection {
    /// This switch's institution id.
    pub institution: String,
    /// The medical-insurance fund.
    pub insurance_fund: String,
    /// The social-security fund.
    pub social_security_fund: String,
    /// Store account paying benefits.
    pub social_security_fund_account: Option<i64>,
    /// Bank leg timeout, ms.
    #[serde(default = "default_bank_timeout_ms")]
    pub bank_timeout_ms: u64,
    /// How far a request's field 7 (UTC) may be from the switch's clock, either way, s;
    /// further is declined `63` (stale or replayed).
    #[serde(default = "default_transmission_window_s")]
    pub transmission_window_s: u64,
    /// Requests in flight across every listener and connection of this node; past it a
    /// request is answered `91` at once.
    pub requests_in_flight_max: Option<usize>,
    /// Past days of per-card spend (`card_day_usage`) kept before housekeeping purges them
    /// (absent: 7); today's is always kept.
    pub card_days_kept: Option<u32>,
    /// When the bank cut-over of the day before runs, `HH:MM` China Standard Time after
    /// midnight (absent: `00:05`; `issuer::cutover`).
    pub cutover_at: Option<String>,
    /// This node's own directory (created at start, one node each): the local reversal spool
    /// (`store::spool`) lives there. Absent: `switch-data` in the working directory.
    #[serde(default = "default_data_dir")]
    pub data_dir: std::path::PathBuf,
}

/// Default `[switch] data_dir`, beside the default `sqlite://switch.db`.
pub const DATA_DIR_DEFAULT: &str = "switch-data";

fn default_data_dir() -> std::path::PathBuf {
    DATA_DIR_DEFAULT.into()
}

fn default_transmission_window_s() -> u64 {
    crate::pipeline::TRANSMISSION_WINDOW_DEFAULT.as_secs()
}

fn default_bank_timeout_ms() -> u64 {
    5_000
}

/// `[database]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://PATH` or `postgres://user@host:port/db`.
    pub url: String,
    /// PostgreSQL schema.
    pub schema: Option<String>,
    /// SQLite commit durability: `full` (default: fsynced, survives power loss) or `normal`
    /// (survives a crash of the process, may lose the last commits on power loss).
    #[serde(default = "default_sqlite_synchronous")]
    pub sqlite_synchronous: String,
    /// PostgreSQL pool size.
    #[serde(default = "default_pool")]
    pub connections_max: u32,
    /// Group commits under way at once (default 1 on SQLite, 2 on PostgreSQL; see
    /// `WriterConfig::commits_in_flight_max`).
    pub group_commits_in_flight: Option<usize>,
    /// A PostgreSQL server on another host may be reached without verified TLS. Off by
    /// default: `serve` refuses a non-loopback `postgres://` URL whose `sslmode` is not
    /// `verify-ca` or `verify-full` (see [`database_link_protected`]).
    #[serde(default)]
    pub insecure_no_tls: bool,
    /// Data key token (scheme B) for the PAN lookup hash.
    pub pan_hash_key: String,
    /// Data key token (scheme B) for PAN encryption.
    pub pan_data_key: String,
}

impl DatabaseSection {
    /// The group-commit writer of store `S`, with `group_commits_in_flight` when set (0 is
    /// refused).
    pub fn writer_config<S: Store>(&self) -> Result<writer::WriterConfig, ConfigError> {
        let mut c = writer::config_for::<S>();
        c.commits_in_flight_max = at_least_one(
            "[database] group_commits_in_flight",
            self.group_commits_in_flight,
            c.commits_in_flight_max,
        )?;
        Ok(c)
    }
}

fn default_sqlite_synchronous() -> String {
    "full".into()
}

fn sqlite_synchronous(s: &str) -> Result<SqliteSync, ConfigError> {
    match s {
        "full" => Ok(SqliteSync::Full),
        "normal" => Ok(SqliteSync::Normal),
        other => Err(invalid(format!(
            "[database] sqlite_synchronous = {other:?}: full or normal"
        ))),
    }
}

fn default_pool() -> u32 {
    16
}

/// `[hsm]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSection {
    /// `tcp` (hsm-sim or a payShield-compatible HSM) or `soft` (in-process, test LMK: for
    /// staging only).
    pub kind: String,
    /// Address for `tcp`.
    pub address: Option<SocketAddr>,
    /// Connections the `tcp` client keeps to the HSM (absent: 4). Each carries many commands
    /// at once, but an HSM may work through one connection's commands in turn.
    pub connections: Option<usize>,
    /// For `soft`: the LMK component files (two or more, one per custodian: dual control).
    #[serde(default)]
    pub lmk_components: Vec<std::path::PathBuf>,
    /// For `soft`: run under the published test LMK instead of components. Anyone can read that
    /// LMK, so every key under it is public: development and staging only, never production.
    #[serde(default)]
    pub insecure_test_lmk: bool,
}

impl HsmSection {
    /// The client settings of a `tcp` HSM; `None` for `soft`.
    pub fn client_config(&self) -> Result<Option<hsm_sim::ClientConfig>, ConfigError> {
        match (self.kind.as_str(), self.address) {
            ("tcp", Some(addr)) => {
                let mut c = hsm_sim::ClientConfig::new(addr);
                c.connections = at_least_one("[hsm] connections", self.connections, c.connections)?;
                Ok(Some(c))
            }
            ("soft", _) => Ok(None),
            _ => Err(invalid("[hsm] kind = \"tcp\" with an address, or \"soft\"")),
        }
    }

    /// The in-process HSM of `kind = "soft"`: under the LMK its components combine to, or under
    /// the published test LMK only when `insecure_test_lmk = true` says so. Weak or all-equal
    /// components are refused (hsm-sim's `LmkSet::load` checks them).
    pub fn soft_hsm(&self) -> Result<hsm_sim::SoftHsm, ConfigError> {
        use hsm_sim::lmk::{LmkSet, LmkSource};
        let source = LmkSource::from_options(self.lmk_components.clone(), self.insecure_test_lmk)
            .map_err(|e| invalid(format!("[hsm] kind = \"soft\": {e}")))?;
        if matches!(source, LmkSource::InsecureTestLmk) {
            tracing::warn!(
                "[hsm] insecure_test_lmk = true: every key under the published test LMK is public"
            );
        }
        let lmk = LmkSet::load(&source).map_err(|e| invalid(format!("[hsm] {e}")))?;
        Ok(hsm_sim::SoftHsm::new(lmk))
    }
}

/// A configured bound: absent gives `default`, 0 is refused (a bound of nothing would stall).
fn at_least_one(name: &str, v: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match v {
        Some(0) => Err(invalid(format!("{name} must be at least 1"))),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// `[keys]` (LMK tokens).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// PIN verification key.
    pub pvk: String,
    /// Decimalisation table.
    pub decimalisation_table: String,
    /// Digits compared.
    #[serde(default = "default_check_length")]
    pub pin_check_length: u8,
    /// IMK-AC of 3DES cards.
    pub imk_ac_tdes: Option<String>,
    /// IMK-AC of SM4 cards.
    pub imk_ac_sm4: Option<String>,
    /// IMK-SMI (issuer-script MAC) of 3DES cards; without it no script goes to those cards.
    pub imk_smi_tdes: Option<String>,
    /// IMK-SMI (issuer-script MAC) of SM4 cards.
    pub imk_smi_sm4: Option<String>,
    /// SSSE province key for INTERNAL AUTHENTICATE of 3DES cards (identity sessions).
    pub ssse_internal_auth_tdes: Option<String>,
    /// SSSE province key for INTERNAL AUTHENTICATE of SM4 cards.
    pub ssse_internal_auth_sm4: Option<String>,
    /// SSSE province key for EXTERNAL AUTHENTICATE of 3DES cards.
    pub ssse_external_auth_tdes: Option<String>,
    /// SSSE province key for EXTERNAL AUTHENTICATE of SM4 cards.
    pub ssse_external_auth_sm4: Option<String>,
    /// SSSE province key for the PIN UNBLOCK MAC of 3DES cards (the card relay).
    pub ssse_pin_unblock_tdes: Option<String>,
    /// SSSE province key for the PIN UNBLOCK MAC of SM4 cards.
    pub ssse_pin_unblock_sm4: Option<String>,
    /// SSSE province line-protection key (EF06 UPDATE RECORD MAC) of 3DES cards.
    pub ssse_line_protection_tdes: Option<String>,
    /// SSSE province line-protection key of SM4 cards.
    pub ssse_line_protection_sm4: Option<String>,
}

fn default_check_length() -> u8 {
    6
}

/// `[http]`: the HTTP face (probes, metrics and the operator API). It binds to a loopback
/// address, or to any address with TLS (`tls_cert` and `tls_key`): sessions and API keys never
/// cross a network in clear.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub tls_cert: Option<String>,
    /// Server private key (PEM).
    pub tls_key: Option<String>,
    /// PEM CA of machine clients' certificates (with `[[http.client_certificate]]`): a client
    /// may then prove itself by certificate instead of an API key; people still log in.
    pub tls_client_ca: Option<String>,
    /// Machine clients pinned by their certificate's key, each with its institution and role
    /// (`operator::machine`). A certificate of the CA not pinned here is refused at the
    /// handshake.
    #[serde(default, rename = "client_certificate")]
    pub client_certificates: Vec<HttpClientCertificateSection>,
}

/// `[[http.client_certificate]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientCertificateSection {
    /// SHA-256 of the certificate's DER SubjectPublicKeyInfo, 64 hex digits (as for
    /// `[[listener.client_certificate]]`).
    pub spki_sha256: String,
    /// The institution whose data the client sees.
    pub institution: String,
    /// The role whose permissions it holds (a role id: `bank_operator`, `auditor`, ...).
    pub role: String,
    /// Its name in the audit log.
    pub name: String,
}

/// `[operator]`: the operator API's keys (LMK tokens of HSM data keys, as the PAN keys) and
/// its session policy. Required with `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSection {
    /// Data key token (scheme B) sealing operators' TOTP secrets.
    pub secret_key: String,
    /// Data key token (scheme B) MACing every audit entry.
    pub audit_mac_key: String,
    /// A session unused this long ends, s.
    #[serde(default = "default_session_idle_s")]
    pub session_idle_s: u64,
    /// A session ends this long after login, s.
    #[serde(default = "default_session_absolute_s")]
    pub session_absolute_s: u64,
    /// Failed logins in a row that lock a user.
    #[serde(default = "default_login_failures_max")]
    pub login_failures_max: u32,
    /// How long a locked user stays locked, s.
    #[serde(default = "default_lockout_s")]
    pub lockout_s: u64,
}

fn default_session_idle_s() -> u64 {
    15 * 60
}

fn default_session_absolute_s() -> u64 {
    8 * 3600
}

fn default_login_failures_max() -> u32 {
    5
}

fn default_lockout_s() -> u64 {
    15 * 60
}

/// `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    /// Listen address.
    pub listen: SocketAddr,
    /// Spec name.
    #[serde(default = "default_spec")]
    pub spec: String,
    /// `binary2`, `ascii4` or `bcd2`.
    #[serde(default = "default_header")]
    pub header: String,
    /// Frames carry a TPDU.
    #[serde(default)]
    pub tpdu: bool,
    /// Largest frame.
    pub frame_len_max: Option<usize>,
    /// Most connections.
    pub connections_max: Option<usize>,
    /// Most requests in flight on one connection (reading pauses past it).
    pub in_flight_per_connection_max: Option<usize>,
    /// A connection silent this long is closed, s.
    pub idle_timeout_s: Option<u64>,
    /// A TLS handshake not finished this long after accept is dropped, s.
    pub handshake_timeout_s: Option<u64>,
    /// A write of answers making no progress this long closes the connection, s.
    pub write_timeout_s: Option<u64>,
    /// `SO_SNDBUF` of each connection, bytes (absent: the kernel's autotuning).
    pub send_buffer_bytes: Option<usize>,
    /// The one institution this listener serves (field 32 must name it, or is assumed);
    /// absent: a shared listener where each request proves its institution with a MAC.
    #[serde(alias = "default_acquirer")]
    pub institution: Option<String>,
    /// A trusted in-house channel: the listener's institution may have no TAK (credits,
    /// refunds, reversals and 0500s still need a MAC). Needs `institution`.
    #[serde(default)]
    pub mac_free_trusted_in_house: bool,
    /// PEM certificate chain (enables TLS).
    pub tls_cert: Option<String>,
    /// PEM private key.
    pub tls_key: Option<String>,
    /// PEM CA of client certificates (enables mutual TLS).
    pub tls_client_ca: Option<String>,
    /// Client certificates and the institution each proves (needs `tls_client_ca`; excludes
    /// `institution`): a connection is the institution of its certificate, and a certificate
    /// of the CA not listed here is refused at the handshake.
    #[serde(default, rename = "client_certificate")]
    pub client_certificates: Vec<ClientCertificateSection>,
}

/// `[[listener.client_certificate]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificateSection {
    /// SHA-256 of the certificate's DER SubjectPublicKeyInfo, 64 hex digits (`openssl x509
    /// -in C.crt -noout -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256`).
    pub spki_sha256: String,
    /// The institution the certificate proves.
    pub institution: String,
}

fn mac_default() -> bool {
    true
}

fn default_spec() -> String {
    "ssc87".into()
}
fn default_header() -> String {
    "binary2".into()
}

/// `[[acquirer]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquirerSection {
    /// Institution id (field 32).
    pub institution: String,
    /// TPK token.
    pub tpk: String,
    /// TAK token (MACed messages).
    pub tak: Option<String>,
    /// The algorithm its kiosks MAC with: `x9.19` (absent), `sm4` or `aes-cmac`
    /// (`switch::wire::mac`); `tak` must be a key of it.
    #[serde(default)]
    pub mac_algorithm: LinkMacAlgorithm,
}

/// `[[bank]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankSection {
    /// Institution id.
    pub institution: String,
    /// `host:port` of its issuer host.
    pub address: String,
    /// ZMK token.
    pub zmk: String,
    /// Initial ZPK token.
    pub zpk: Option<String>,
    /// Initial TAK token of the link's MACs (absent: the first key exchange brings one).
    pub tak: Option<String>,
    /// MAC financial, reversal and reconciliation messages to and from this bank, and
    /// exchange a TAK with every ZPK (`switch::wire::mac`). Mandatory: absent means on, and
    /// `false` is refused unless `insecure_no_mac` says so.
    #[serde(default = "mac_default")]
    pub mac: bool,
    /// The algorithm of those MACs: `x9.19` (absent), `sm4` or `aes-cmac`; said to the bank at
    /// sign-on and in key exchange, and the bank must say the same (`switch::wire::mac`).
    #[serde(default)]
    pub mac_algorithm: LinkMacAlgorithm,
    /// PEM CA that the bank's certificate must chain to: enables mutual TLS on the link
    /// (with `tls_cert`, `tls_key` and `tls_server_name`).
    pub tls_ca: Option<String>,
    /// PEM certificate chain the switch shows the bank.
    pub tls_cert: Option<String>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<String>,
    /// The name the bank's certificate must carry (DNS name or IP address).
    pub tls_server_name: Option<String>,
    /// Runs this bank's link without MACs, its answers accepted unchecked: only for a bank
    /// reached over a channel protected otherwise (issue 24, finding 3). Needs `mac = false`.
    #[serde(default)]
    pub insecure_no_mac: bool,
    /// Exchange keys after each sign-on.
    #[serde(default)]
    pub key_exchange_on_sign_on: bool,
    /// Largest bank leg approved in stand-in, fen (absent: no stand-in).
    pub stand_in_fen_max: Option<i64>,
    /// Most approved in stand-in per card per day for this bank, fen (absent: the
    /// per-transaction maximum, i.e. one full stand-in per card per day).
    pub stand_in_card_daily_fen_max: Option<i64>,
    /// Most requests in flight on this bank's link (absent: 1024); past it a bank leg is
    /// refused at once instead of queued.
    pub requests_in_flight_max: Option<usize>,
    /// Most answers from this bank whose MAC is checked at once (absent: 64; see
    /// `switch::issuer`).
    pub answer_checks_in_flight_max: Option<usize>,
}

/// `[[hospital]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HospitalSection {
    /// Hospital code (62.2).
    pub code: String,
    /// Institution id.
    pub institution: String,
    /// Level 1–3.
    pub level: u8,
}

/// `[[policy]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// `employee` or `resident`.
    pub insurance: String,
    /// Medical category (62.1); absent = default row.
    pub medical_category: Option<u8>,
    /// Hospital level.
    pub hospital_level: u8,
    /// Deductible, yuan.
    pub deductible: Decimal,
    /// Reimbursement ratio 0..=1.
    pub ratio: Decimal,
    /// Annual cap, yuan.
    pub annual_cap: Decimal,
}

/// `[limits]` (fen).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Per transaction.
    pub per_transaction_fen_max: i64,
    /// Per day.
    pub daily_fen_max: i64,
    /// Count per day.
    pub daily_count_max: u32,
}

mod settings;
use settings::*;

mod start;
pub use start::{
    backup, clearing_source, cms_parts, database_link_protected, hsm_of, http_tls, open_store,
    operator_context, restore, serve, verify, OpenedStore,
};

pub mod admin;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod mac_algorithm_tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../ops/switch.example.toml");

    #[test]
    fn each_link_says_its_mac_algorithm_and_its_tak_must_be_a_key_of_it() {
        let cfg: NodeConfig = toml::from_str(EXAMPLE).unwrap();
        let links = cfg.link_configs().unwrap();
        assert!(links
            .iter()
            .all(|l| l.mac_algorithm == LinkMacAlgorithm::Sm4));
        let keys = cfg.keys().unwrap();
        assert!(keys.acquirers.values().all(|k| k
            .tak
            .as_ref()
            .is_some_and(|t| LinkMacAlgorithm::of_tak(t).ok() == Some(LinkMacAlgorithm::Sm4))));
        // Absent: X9.19, as before the choice existed; a 3DES TAK is then right.
        let absent = EXAMPLE.replace("mac_algorithm = \"sm4\"", "");
        let cfg: NodeConfig = toml::from_str(&absent).unwrap();
        assert!(cfg
            .link_configs()
            .unwrap()
            .iter()
            .all(|l| l.mac_algorithm == LinkMacAlgorithm::X919));
        let err = cfg.keys().unwrap_err().to_string();
        assert!(err.contains("not of mac_algorithm = \"x9.19\""), "{err}");
        // A bank's initial TAK of another algorithm is refused too.
        let bank_tak = EXAMPLE.replacen(
            "# tak = \"U…\"",
            "tak = \"UC1AF3C9EF9E7DB5E0FA2825CDACD6FD8\"",
            1,
        );
        let cfg: NodeConfig = toml::from_str(&bank_tak).unwrap();
        let err = cfg.link_configs().unwrap_err().to_string();
        assert!(
            err.contains("[[bank]] 01020000: tak is a key of scheme U"),
            "{err}"
        );
        let unknown = EXAMPLE.replacen("mac_algorithm = \"sm4\"", "mac_algorithm = \"md5\"", 1);
        assert!(toml::from_str::<NodeConfig>(&unknown).is_err());
    }
}
