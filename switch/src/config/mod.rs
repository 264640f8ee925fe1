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
    AcquirerIdentity, Hospital, LinkContext, PipelineConfig, PipelineKeys, StandIn,
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

/// The client-certificate mapping of a listener.
fn client_institutions(
    l: &ListenerSection,
) -> Result<Option<crate::acquirer::ClientInstitutions>, ConfigError> {
    if l.client_certificates.is_empty() {
        return Ok(None);
    }
    if l.tls_client_ca.is_none() {
        return Err(invalid(
            "[[listener.client_certificate]] needs the listener's tls_client_ca (mutual TLS)",
        ));
    }
    if l.institution.is_some() {
        return Err(invalid(
            "a listener is either one institution's (`institution`) or its client \
             certificates' (`[[listener.client_certificate]]`), not both",
        ));
    }
    let mut map = crate::acquirer::ClientInstitutions::new();
    for c in &l.client_certificates {
        let hash: [u8; 32] = hex::decode(c.spki_sha256.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                invalid(format!(
                    "[[listener.client_certificate]] spki_sha256 of {}: 64 hex digits",
                    c.institution
                ))
            })?;
        map.insert(hash, inst(&c.institution)?)
            .map_err(|e| invalid(e.to_string()))?;
    }
    Ok(Some(map))
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

fn inst(s: &str) -> Result<InstitutionId, ConfigError> {
    InstitutionId::parse(s).map_err(|_| invalid(format!("institution id {s:?}")))
}

fn token<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, ConfigError> {
    s.parse()
        .map_err(|_| invalid(format!("{what}: not a key token")))
}

/// The transmission window of `switch.transmission_window_s`: at least a second, and well
/// inside the duplicate keys' retention (a replay inside the window must still find its key).
fn transmission_window(seconds: u64) -> Result<Duration, ConfigError> {
    let window = Duration::from_secs(seconds);
    if seconds == 0 || window * 2 > crate::node::housekeeping::DUPLICATE_KEY_RETENTION {
        return Err(invalid(format!(
            "switch.transmission_window_s = {seconds}: must be at least 1 and at most half the duplicate keys' retention"
        )));
    }
    Ok(window)
}

impl NodeConfig {
    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| ConfigError::Syntax(e.message().to_owned()))
    }

    fn pipeline_config(&self) -> Result<PipelineConfig, ConfigError> {
        let s = &self.switch;
        let mut cfg = PipelineConfig::new(
            inst(&s.institution)?,
            inst(&s.insurance_fund)?,
            inst(&s.social_security_fund)?,
        );
        cfg.social_security_fund_account = s.social_security_fund_account.map(AccountId);
        cfg.bank_timeout = Duration::from_millis(s.bank_timeout_ms);
        cfg.transmission_window = transmission_window(s.transmission_window_s)?;
        if let Some(days) = s.card_days_kept {
            cfg.card_days_kept = days;
        }
        for h in &self.hospitals {
            cfg.hospitals.insert(
                h.code.clone(),
                Hospital {
                    institution: inst(&h.institution)?,
                    level: HospitalLevel(h.level),
                },
            );
        }
        let mut table = PolicyTable::default();
        for p in &self.policies {
            let insurance = InsuranceCategory::from_sql(&p.insurance)
                .ok_or_else(|| invalid(format!("insurance {:?}", p.insurance)))?;
            let policy = Policy::new(p.deductible, p.ratio, p.annual_cap)
                .map_err(|e| invalid(e.to_string()))?;
            table.insert(
                insurance,
                p.medical_category.map(MedicalCategory),
                HospitalLevel(p.hospital_level),
                policy,
            );
        }
        cfg.policy = table;
        if let Some(l) = &self.limits {
            cfg.limits = CardLimits {
                per_transaction_fen_max: l.per_transaction_fen_max,
                daily_fen_max: l.daily_fen_max,
                daily_count_max: l.daily_count_max,
            };
        }
        for b in &self.banks {
            if let Some(max) = b.stand_in_fen_max {
                let daily = b.stand_in_card_daily_fen_max.unwrap_or(max);
                if max <= 0 || daily < max {
                    return Err(invalid(format!(
                        "bank {}: stand-in limits must be positive and the daily one at least the per-transaction one",
                        b.institution
                    )));
                }
                cfg.stand_in.insert(
                    inst(&b.institution)?,
                    StandIn {
                        per_transaction_fen_max: max,
                        per_card_daily_fen_max: daily,
                    },
                );
            }
        }
        Ok(cfg)
    }

    fn keys(&self) -> Result<PipelineKeys, ConfigError> {
        let mut acquirers = HashMap::new();
        for a in &self.acquirers {
            acquirers.insert(
                inst(&a.institution)?,
                AcquirerKeys {
                    tpk: token("tpk", &a.tpk)?,
                    tak: tak_of(
                        &format!("[[acquirer]] {}", a.institution),
                        a.tak.as_deref(),
                        a.mac_algorithm,
                    )?,
                },
            );
        }
        let k = &self.keys;
        Ok(PipelineKeys {
            acquirers,
            issuer: IssuerKeys {
                imk_ac_tdes: k
                    .imk_ac_tdes
                    .as_deref()
                    .map(|t| token("imk_ac_tdes", t))
                    .transpose()?,
                imk_ac_sm4: k
                    .imk_ac_sm4
                    .as_deref()
                    .map(|t| token("imk_ac_sm4", t))
                    .transpose()?,
                imk_smi_tdes: k
                    .imk_smi_tdes
                    .as_deref()
                    .map(|t| token("imk_smi_tdes", t))
                    .transpose()?,
                imk_smi_sm4: k
                    .imk_smi_sm4
                    .as_deref()
                    .map(|t| token("imk_smi_sm4", t))
                    .transpose()?,
                pvk: token("pvk", &k.pvk)?,
                decimalisation_table: k.decimalisation_table.clone(),
                pin_check_length: k.pin_check_length,
            },
        })
    }

    fn listeners(&self) -> Result<Vec<AcquirerListener>, ConfigError> {
        let mut out = Vec::new();
        // One cap for the node: requests in flight across every listener and connection.
        let in_flight = InFlightCap::new(at_least_one(
            "[switch] requests_in_flight_max",
            self.switch.requests_in_flight_max,
            InFlightCap::REQUESTS_MAX_DEFAULT,
        )?);
        for l in &self.listeners {
            let mut a = AcquirerListener::ssc87(l.listen).map_err(|e| invalid(e.to_string()))?;
            a.in_flight = in_flight.clone();
            a.link = LinkContext {
                spec: schemas::iso8583::spec(&l.spec).map_err(|e| invalid(e.to_string()))?,
                identity: match l.institution.as_deref() {
                    Some(i) => AcquirerIdentity::Fixed(inst(i)?),
                    None if l.mac_free_trusted_in_house => {
                        return Err(invalid("a MAC-free listener names its institution"))
                    }
                    None => AcquirerIdentity::ProvenByMac,
                },
                mac_free_trusted_in_house: l.mac_free_trusted_in_house,
            };
            a.header = match l.header.as_str() {
                "binary2" => LengthHeader::Binary2,
                "ascii4" => LengthHeader::Ascii4,
                "bcd2" => LengthHeader::Bcd2,
                other => return Err(invalid(format!("length header {other:?}"))),
            };
            a.tpdu = l.tpdu;
            if let Some(m) = l.frame_len_max {
                a.frame_len_max = m;
            }
            if let Some(m) = l.connections_max {
                a.connections_max = m;
            }
            a.in_flight_per_connection_max = at_least_one(
                "[[listener]] in_flight_per_connection_max",
                l.in_flight_per_connection_max,
                a.in_flight_per_connection_max,
            )?;
            for (name, set, field) in [
                ("idle_timeout_s", l.idle_timeout_s, &mut a.idle_timeout),
                (
                    "handshake_timeout_s",
                    l.handshake_timeout_s,
                    &mut a.handshake_timeout,
                ),
                ("write_timeout_s", l.write_timeout_s, &mut a.write_timeout),
            ] {
                match set {
                    Some(0) => {
                        return Err(invalid(format!("[[listener]] {name} must be at least 1")))
                    }
                    Some(s) => *field = Duration::from_secs(s),
                    None => {}
                }
            }
            a.send_buffer_bytes = l.send_buffer_bytes;
            let mapped = client_institutions(l)?;
            a.tls =
                match (&l.tls_cert, &l.tls_key) {
                    (Some(c), Some(k)) => Some(
                        match (mapped, l.tls_client_ca.as_deref()) {
                            (Some(map), Some(ca)) => {
                                TlsSettings::with_client_institutions(c, k, ca, map)
                            }
                            _ => TlsSettings::from_pem_files(c, k, l.tls_client_ca.as_deref()),
                        }
                        .map_err(|e| invalid(e.to_string()))?,
                    ),
                    (None, None) if !l.client_certificates.is_empty() => return Err(invalid(
                        "[[listener.client_certificate]] needs tls_cert and tls_key (mutual TLS)",
                    )),
                    (None, None) => None,
                    _ => return Err(invalid("tls_cert and tls_key go together")),
                };
            out.push(a);
        }
        Ok(out)
    }

    /// The issuer link of each `[[bank]]` entry.
    pub fn link_configs(&self) -> Result<Vec<IssuerConfig>, ConfigError> {
        let mut out = Vec::new();
        for b in &self.banks {
            let mut lc = IssuerConfig::new(
                inst(&b.institution)?,
                b.address.clone(),
                token("zmk", &b.zmk)?,
            );
            lc.zpk = b.zpk.as_deref().map(|z| token("zpk", z)).transpose()?;
            lc.tak = tak_of(
                &format!("[[bank]] {}", b.institution),
                b.tak.as_deref(),
                b.mac_algorithm,
            )?;
            lc.mac = bank_mac(b)?;
            lc.mac_algorithm = b.mac_algorithm;
            lc.tls = bank_tls(b)?;
            lc.key_exchange_on_sign_on = b.key_exchange_on_sign_on;
            lc.in_flight_max = at_least_one(
                "[[bank]] requests_in_flight_max",
                b.requests_in_flight_max,
                lc.in_flight_max,
            )?;
            lc.answer_checks_in_flight_max = at_least_one(
                "[[bank]] answer_checks_in_flight_max",
                b.answer_checks_in_flight_max,
                lc.answer_checks_in_flight_max,
            )?;
            out.push(lc);
        }
        Ok(out)
    }
}

/// A TAK token of `section` that must be a key of `algorithm` (an SM4 TAK is scheme `G`, an
/// AES one `A`, a 3DES one `U`): a key of another algorithm would MAC differently from the
/// other end.
fn tak_of(
    section: &str,
    tak: Option<&str>,
    algorithm: LinkMacAlgorithm,
) -> Result<Option<Tak>, ConfigError> {
    let Some(text) = tak else {
        return Ok(None);
    };
    let tak: Tak = token("tak", text)?;
    let scheme = tak.token().scheme();
    if LinkMacAlgorithm::of_scheme(scheme) != Some(algorithm) {
        return Err(invalid(format!(
            "{section}: tak is a key of scheme {}, not of mac_algorithm = \"{algorithm}\" \
             (scheme {})",
            scheme.as_char(),
            algorithm.key_scheme().as_char()
        )));
    }
    Ok(Some(tak))
}

/// Whether a bank's link MACs its messages: always, unless the bank says `mac = false` and
/// `insecure_no_mac = true` together.
fn bank_mac(b: &BankSection) -> Result<bool, ConfigError> {
    match (b.mac, b.insecure_no_mac) {
        (true, false) => Ok(true),
        (false, true) => {
            tracing::warn!(
                bank = %b.institution,
                "bank link without MACs (insecure_no_mac): its answers are accepted unchecked"
            );
            Ok(false)
        }
        (false, false) => Err(invalid(format!(
            "[[bank]] {}: MACs are mandatory on bank links; `mac = false` needs \
             `insecure_no_mac = true` too",
            b.institution
        ))),
        (true, true) => Err(invalid(format!(
            "[[bank]] {}: `insecure_no_mac = true` goes with `mac = false`",
            b.institution
        ))),
    }
}

/// Mutual TLS on a bank's link: all four `tls_*` keys, or none (plain TCP).
fn bank_tls(b: &BankSection) -> Result<Option<BankTls>, ConfigError> {
    match (&b.tls_ca, &b.tls_cert, &b.tls_key, &b.tls_server_name) {
        (None, None, None, None) => Ok(None),
        (Some(ca), Some(cert), Some(key), Some(name)) => {
            BankTls::from_pem_files(ca, cert, key, name)
                .map(Some)
                .map_err(|e| invalid(format!("[[bank]] {}: {e}", b.institution)))
        }
        _ => Err(invalid(format!(
            "[[bank]] {}: tls_ca, tls_cert, tls_key and tls_server_name go together",
            b.institution
        ))),
    }
}

/// Refuses an `[[acquirer]]` without a TAK unless a listener marked
/// `mac_free_trusted_in_house` serves that institution alone: elsewhere nothing would prove
/// that its requests come from it (`pipeline::AcquirerIdentity`).
fn every_acquirer_has_a_tak(
    keys: &PipelineKeys,
    listeners: &[AcquirerListener],
) -> Result<(), ConfigError> {
    for (id, k) in &keys.acquirers {
        let in_house = listeners
            .iter()
            .any(|l| l.link.mac_free_trusted_in_house && l.link.identity.fixed() == Some(id));
        if k.tak.is_none() && !in_house {
            return Err(invalid(format!(
                "[[acquirer]] {id} has no tak and no listener with mac_free_trusted_in_house \
                 serves it"
            )));
        }
    }
    Ok(())
}

/// Every link protected (GB/T 22239 level 3, communication transmission): a PostgreSQL server
/// on another host is reached over TLS that verifies the server (`sslmode=verify-ca` or
/// `verify-full`, with `sslrootcert`; a client certificate with `sslcert`/`sslkey` when the
/// server asks for one, libpq's parameter names). A loopback address or a Unix socket stays
/// on the machine and needs no TLS; `insecure_no_tls` lifts the rule for a server that
/// cannot do TLS, by name.
pub fn database_link_protected(url: &str, insecure_no_tls: bool) -> Result<(), ConfigError> {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    use std::str::FromStr;
    let hosts = crate::store::postgres_host_urls(url)
        .map_err(|e| invalid(format!("[database] url: {e}")))?;
    // Each host of a libpq host list is checked alone.
    for host_url in &hosts.urls {
        let options = PgConnectOptions::from_str(host_url)
            .map_err(|e| invalid(format!("[database] url: {e}")))?;
        let on_this_machine = options.get_socket().is_some()
            || options.get_host().starts_with('/')
            || options.get_host() == "localhost"
            || options
                .get_host()
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let verified = matches!(
            options.get_ssl_mode(),
            PgSslMode::VerifyCa | PgSslMode::VerifyFull
        );
        if !(on_this_machine || verified || insecure_no_tls) {
            return Err(invalid(format!(
                "[database] url: {} is another host; add sslmode=verify-full&sslrootcert=... (or set insecure_no_tls = true)",
                options.get_host()
            )));
        }
    }
    Ok(())
}

/// The HSM of a configuration.
pub fn hsm_of(cfg: &NodeConfig) -> Result<Arc<dyn Hsm>, ConfigError> {
    Ok(match cfg.hsm.client_config()? {
        Some(client) => Arc::new(hsm_sim::HsmClient::new(client)),
        None => Arc::new(cfg.hsm.soft_hsm()?),
    })
}

/// The store of a configuration, with the audit MAC key of `[operator]` installed: one of the
/// two backends, for the CLI's subcommands to run generic code on ([`on_store!`]).
pub enum OpenedStore {
    /// `sqlite://`.
    Sqlite(Arc<SqliteStore>),
    /// `postgres://`.
    Postgres(Arc<PostgresStore>),
}

/// Runs `$body` with `$s` bound to the opened store, whichever backend it is.
#[macro_export]
macro_rules! on_store {
    ($opened:expr, |$s:ident| $body:expr) => {
        match $opened {
            $crate::config::OpenedStore::Sqlite($s) => $body,
            $crate::config::OpenedStore::Postgres($s) => $body,
        }
    };
}

/// Opens the configured store (PAN keys and audit MAC key unwrapped by `hsm`).
pub async fn open_store(cfg: &NodeConfig, hsm: &dyn Hsm) -> Result<OpenedStore, ConfigError> {
    let pan: Arc<dyn PanProtector> = Arc::new(HsmPanProtector::new(
        hsm.unwrap_data_key(&token("pan_hash_key", &cfg.database.pan_hash_key)?)
            .await?,
        hsm.unwrap_data_key(&token("pan_data_key", &cfg.database.pan_data_key)?)
            .await?,
    ));
    let url = cfg.database.url.clone();
    let opened = if let Some(path) = url.strip_prefix("sqlite://") {
        let mut sqlite = SqliteConfig::new(path);
        sqlite.synchronous = sqlite_synchronous(&cfg.database.sqlite_synchronous)?;
        OpenedStore::Sqlite(Arc::new(SqliteStore::open(&sqlite, pan).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        database_link_protected(&url, cfg.database.insecure_no_tls)?;
        OpenedStore::Postgres(Arc::new(
            PostgresStore::connect(
                &PostgresConfig {
                    url,
                    schema: cfg.database.schema.clone(),
                    connections_max: cfg.database.connections_max,
                },
                pan,
            )
            .await?,
        ))
    } else {
        return Err(invalid(
            "[database] url must start with sqlite:// or postgres://",
        ));
    };
    if let Some(op) = &cfg.operator {
        let key = hsm
            .unwrap_data_key(&token("operator.audit_mac_key", &op.audit_mac_key)?)
            .await?;
        on_store!(&opened, |s| s.install_audit_mac_key(Arc::new(key)));
    }
    Ok(opened)
}

/// The operator API's context of `[operator]` (its secret key unwrapped by `hsm`).
pub async fn operator_context(
    cfg: &NodeConfig,
    hsm: &dyn Hsm,
) -> Result<crate::operator::OperatorContext, ConfigError> {
    let op = cfg
        .operator
        .as_ref()
        .ok_or_else(|| invalid("[operator] (the operator API's keys) is missing"))?;
    let secret = hsm
        .unwrap_data_key(&token("operator.secret_key", &op.secret_key)?)
        .await?;
    let tls = cfg.http.as_ref().is_some_and(|h| h.tls_cert.is_some());
    Ok(crate::operator::OperatorContext::new(
        crate::operator::keys::SecretKey::new(secret),
        crate::operator::SessionPolicy {
            idle_timeout: Duration::from_secs(op.session_idle_s.max(1)),
            absolute_timeout: Duration::from_secs(op.session_absolute_s.max(1)),
            login_failures_max: op.login_failures_max.max(1),
            lockout: Duration::from_secs(op.lockout_s),
            secure_cookie: tls,
        },
    ))
}

/// The card management system of `[cms]` (None without it).
pub async fn cms_parts(
    cfg: &NodeConfig,
    hsm: &Arc<dyn Hsm>,
) -> Result<Option<crate::node::CmsParts>, ConfigError> {
    use crate::cms::{BinRange, EmvMasterKeys, IssuanceConfig, SsseMasterKeys};
    let Some(c) = &cfg.cms else {
        return Ok(None);
    };
    let k = &cfg.keys;
    let (algorithm, ac, smi) = match c.algorithm.as_str() {
        "sm4" => (IccAlgorithm::Sm4, &k.imk_ac_sm4, &k.imk_smi_sm4),
        "tdes" => (IccAlgorithm::Tdes, &k.imk_ac_tdes, &k.imk_smi_tdes),
        other => return Err(invalid(format!("cms.algorithm {other:?}: sm4 or tdes"))),
    };
    let need = |what: &str, t: &Option<String>| {
        t.clone().ok_or_else(|| {
            invalid(format!(
                "[cms] issues {} cards: [keys] needs {what}",
                c.algorithm
            ))
        })
    };
    let region_ok =
        |r: &str, lens: &[usize]| lens.contains(&r.len()) && r.bytes().all(|b| b.is_ascii_digit());
    if !region_ok(&c.city_code, &[6]) {
        return Err(invalid("cms.city_code: six digits (GB/T 2260)"));
    }
    let mut ranges = Vec::with_capacity(c.ranges.len());
    for r in &c.ranges {
        ranges.push(
            BinRange::new(&r.bin, inst(&r.bank)?, r.pan_len_digits)
                .map_err(|e| invalid(format!("[[cms.range]] {}: {e}", r.bank)))?,
        );
    }
    let mut bureaus = Vec::with_capacity(c.bureaus.len());
    for b in &c.bureaus {
        if !region_ok(&b.region_prefix, &[2, 4, 6]) {
            return Err(invalid(format!(
                "[[cms.bureau]] {}: region_prefix is 2, 4 or 6 digits (GB/T 2260)",
                b.institution
            )));
        }
        bureaus.push(crate::operator::scope::Bureau {
            institution: inst(&b.institution)?,
            region_prefix: b.region_prefix.clone(),
        });
    }
    let photos = match &c.photo_key {
        Some(t) => Some(crate::cms::photo::PhotoSealer::new(
            hsm.unwrap_data_key(&token("cms.photo_key", t)?).await?,
        )),
        None => None,
    };
    Ok(Some(crate::node::CmsParts {
        issuance: IssuanceConfig {
            hsm: Arc::clone(hsm),
            ranges,
            algorithm,
            emv: EmvMasterKeys {
                ac: token("keys.imk_ac", &need("the IMK-AC", ac)?)?,
                smi: token("keys.imk_smi", &need("the IMK-SMI", smi)?)?,
                smc: token("cms.imk_smc", &c.imk_smc)?,
            },
            ssse: SsseMasterKeys {
                internal_auth: token("cms.ssse_internal_auth", &c.ssse_internal_auth)?,
                external_auth: token("cms.ssse_external_auth", &c.ssse_external_auth)?,
                pin_unblock: token("cms.ssse_pin_unblock", &c.ssse_pin_unblock)?,
            },
            city_code: c.city_code.clone(),
            pvk: token("keys.pvk", &k.pvk)?,
            decimalisation_table: k.decimalisation_table.clone(),
            bureau_zmk: token("cms.bureau_zmk", &c.bureau_zmk)?,
            validity_years: c.validity_years.clamp(1, 30),
        },
        photos,
        bureaus,
        counter_tpk: token("cms.counter_tpk", &c.counter_tpk)?,
    }))
}

/// The HTTP listener's TLS, if configured.
pub fn http_tls(cfg: &NodeConfig) -> Result<Option<TlsSettings>, ConfigError> {
    match cfg.http.as_ref().map(|h| (&h.tls_cert, &h.tls_key)) {
        Some((Some(c), Some(k))) => Ok(Some(
            TlsSettings::from_pem_files(c, k, None).map_err(|e| invalid(e.to_string()))?,
        )),
        Some((None, None)) | None => Ok(None),
        Some(_) => Err(invalid("[http] tls_cert and tls_key go together")),
    }
}

/// Runs a node until Ctrl-C or SIGTERM.
pub async fn serve(path: &Path) -> Result<(), ConfigError> {
    let cfg = NodeConfig::load(path)?;
    let hsm = hsm_of(&cfg)?;
    let opened = open_store(&cfg, &*hsm).await?;
    on_store!(opened, |store| run_node(cfg, store, hsm).await)
}

/// The SQLite database file of a configuration (backup and restore are SQLite's; PostgreSQL
/// has `pg_basebackup` and point-in-time recovery, `docs/operations.md`).
fn sqlite_file(cfg: &NodeConfig) -> Result<std::path::PathBuf, ConfigError> {
    cfg.database
        .url
        .strip_prefix("sqlite://")
        .map(std::path::PathBuf::from)
        .ok_or_else(|| {
            invalid("backup and restore are for sqlite:// stores; use pg_basebackup for PostgreSQL")
        })
}

/// `switch backup`: an online copy of the store to `to`, consistent as of one commit; returns
/// its size in bytes.
pub fn backup(path: &Path, to: &Path) -> Result<u64, ConfigError> {
    let cfg = NodeConfig::load(path)?;
    crate::store::sqlite_backup::backup(&sqlite_file(&cfg)?, to).map_err(|e| invalid(e.to_string()))
}

/// `switch restore`: puts the backup `from` in place of the (absent) store of the
/// configuration, then checks it as `switch verify` does.
pub async fn restore(path: &Path, from: &Path) -> Result<(IntegrityReport, u64), ConfigError> {
    let cfg = NodeConfig::load(path)?;
    crate::store::sqlite_backup::restore(from, &sqlite_file(&cfg)?)
        .map_err(|e| invalid(e.to_string()))?;
    verify(path).await
}

/// `switch verify`: the store's invariants ([`crate::store::Invariant`]) and the length of its
/// audit chain (an error names the first broken entry).
pub async fn verify(path: &Path) -> Result<(IntegrityReport, u64), ConfigError> {
    let cfg = NodeConfig::load(path)?;
    let hsm = hsm_of(&cfg)?;
    let opened = open_store(&cfg, &*hsm).await?;
    on_store!(opened, |store| Ok((
        store.verify_integrity().await?,
        store.verify_audit_chain().await?
    )))
}

async fn run_node<S: crate::cms::CmsStore>(
    cfg: NodeConfig,
    store: Arc<S>,
    hsm: Arc<dyn Hsm>,
) -> Result<(), ConfigError> {
    let operator = match &cfg.http {
        Some(_) => operator_context(&cfg, &*hsm).await?,
        // Without HTTP nobody logs in; the context is never used.
        None => crate::operator::OperatorContext::new(
            crate::operator::keys::SecretKey::new(hsm.generate_data_key().await?.0),
            crate::operator::SessionPolicy::default(),
        ),
    };
    let added = admin::ensure_configured_institutions(&*store, &cfg).await?;
    if added > 0 {
        tracing::info!(
            added,
            "institutions of the configuration added to the store"
        );
    }
    let http_tls = http_tls(&cfg)?;
    let keys = cfg.keys()?;
    let listeners = cfg.listeners()?;
    every_acquirer_has_a_tak(&keys, &listeners)?;
    let parts = NodeParts {
        writer: cfg.database.writer_config::<S>()?,
        keys,
        pipeline: cfg.pipeline_config()?,
        banks: cfg.link_configs()?,
        sign_on_wait: Duration::ZERO,
        listeners,
        http: cfg.http.as_ref().map(|h| h.listen),
        http_tls,
        operator: Arc::new(operator),
        cms: cms_parts(&cfg, &hsm).await?,
        store,
        hsm,
    };
    let node = parts.start().await?;
    crate::node::signal::stop_requested().await;
    node.stop().await;
    Ok(())
}

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
