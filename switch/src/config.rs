//! `switch serve --config FILE`: a production node from a TOML file (example:
//! `ops/switch.example.toml`). Every key in the file is an LMK token of the configured HSM
//! (payShield-style `U…`/`G…`/`B…` text); no clear key is accepted here.
//!
//! The store is chosen by the database URL (`sqlite://PATH` or `postgres://…`); the node is
//! then wired by [`crate::node`], the same code as the demo's: pipeline, acquirer listeners,
//! issuer links, reversal forwarder, housekeeping and HTTP.

use crate::acquirer::{AcquirerListener, TlsSettings};
use crate::issuer::IssuerConfig;
use crate::node::{NodeError, NodeParts};
use crate::pipeline::security::{AcquirerKeys, IssuerKeys};
use crate::pipeline::split::{HospitalLevel, MedicalCategory, Policy, PolicyTable};
use crate::pipeline::velocity::CardLimits;
use crate::pipeline::{
    AcquirerIdentity, Hospital, LinkContext, PipelineConfig, PipelineKeys, StandIn,
};
use crate::store::writer;
use crate::store::{
    AccountId, HsmPanProtector, InsuranceCategory, PanProtector, PostgresConfig, PostgresStore,
    SqliteConfig, SqliteStore, Store,
};
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
    /// PostgreSQL pool size.
    #[serde(default = "default_pool")]
    pub connections_max: u32,
    /// Group commits under way at once (default 1 on SQLite, 2 on PostgreSQL; see
    /// `WriterConfig::commits_in_flight_max`).
    pub group_commits_in_flight: Option<usize>,
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

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address.
    pub listen: SocketAddr,
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
    /// exchange a TAK with every ZPK (`switch::wire::mac`).
    #[serde(default)]
    pub mac: bool,
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
                    tak: a.tak.as_deref().map(|t| token("tak", t)).transpose()?,
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
        for l in &self.listeners {
            let mut a = AcquirerListener::ssc87(l.listen).map_err(|e| invalid(e.to_string()))?;
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
            a.tls = match (&l.tls_cert, &l.tls_key) {
                (Some(c), Some(k)) => Some(
                    TlsSettings::from_pem_files(c, k, l.tls_client_ca.as_deref())
                        .map_err(|e| invalid(e.to_string()))?,
                ),
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
            lc.tak = b.tak.as_deref().map(|t| token("tak", t)).transpose()?;
            lc.mac = b.mac;
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

/// Runs a node until Ctrl-C.
pub async fn serve(path: &Path) -> Result<(), ConfigError> {
    let cfg = NodeConfig::load(path)?;
    let hsm: Arc<dyn Hsm> = match cfg.hsm.client_config()? {
        Some(client) => Arc::new(hsm_sim::HsmClient::new(client)),
        None => Arc::new(hsm_sim::SoftHsm::with_test_lmk()),
    };
    let pan: Arc<dyn PanProtector> = Arc::new(HsmPanProtector::new(
        hsm.unwrap_data_key(&token("pan_hash_key", &cfg.database.pan_hash_key)?)
            .await?,
        hsm.unwrap_data_key(&token("pan_data_key", &cfg.database.pan_data_key)?)
            .await?,
    ));
    let url = cfg.database.url.clone();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = SqliteStore::open(&SqliteConfig::new(path), pan).await?;
        run_node(cfg, Arc::new(store), hsm).await
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(
            &PostgresConfig {
                url,
                schema: cfg.database.schema.clone(),
                connections_max: cfg.database.connections_max,
            },
            pan,
        )
        .await?;
        run_node(cfg, Arc::new(store), hsm).await
    } else {
        Err(invalid(
            "[database] url must start with sqlite:// or postgres://",
        ))
    }
}

async fn run_node<S: Store>(
    cfg: NodeConfig,
    store: Arc<S>,
    hsm: Arc<dyn Hsm>,
) -> Result<(), ConfigError> {
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
        store,
        hsm,
    };
    let node = parts.start().await?;
    let _ = tokio::signal::ctrl_c().await;
    node.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_parses_and_builds_the_pipeline_settings() {
        let text = include_str!("../../ops/switch.example.toml");
        let cfg: NodeConfig = toml::from_str(text).unwrap();
        let p = cfg.pipeline_config().unwrap();
        assert_eq!(p.hospitals.len(), 3);
        assert!(p
            .policy
            .lookup(
                InsuranceCategory::Employee,
                MedicalCategory(11),
                HospitalLevel(3)
            )
            .is_some());
        assert!(cfg.keys().is_ok());
        assert_eq!(cfg.listeners().unwrap().len(), 1);
        let bank = InstitutionId::parse("01020000").unwrap();
        assert_eq!(
            p.stand_in.get(&bank),
            Some(&StandIn {
                per_transaction_fen_max: 20_000,
                per_card_daily_fen_max: 50_000,
            })
        );
    }

    #[test]
    fn an_acquirer_without_a_tak_is_refused_unless_an_in_house_listener_serves_it() {
        let text = include_str!("../../ops/switch.example.toml");
        let cfg: NodeConfig = toml::from_str(text).unwrap();
        let (mut keys, mut listeners) = (cfg.keys().unwrap(), cfg.listeners().unwrap());
        assert!(every_acquirer_has_a_tak(&keys, &listeners).is_ok());
        let hospital = InstitutionId::parse("4101001").unwrap();
        keys.acquirers.get_mut(&hospital).unwrap().tak = None;
        assert!(every_acquirer_has_a_tak(&keys, &listeners).is_err());
        listeners[0].link.identity = AcquirerIdentity::Fixed(hospital);
        assert!(every_acquirer_has_a_tak(&keys, &listeners).is_err());
        listeners[0].link.mac_free_trusted_in_house = true;
        assert!(every_acquirer_has_a_tak(&keys, &listeners).is_ok());
    }

    #[test]
    fn bank_link_limits_come_from_the_configuration_and_zero_is_refused() {
        let text = include_str!("../../ops/switch.example.toml");
        let cfg: NodeConfig = toml::from_str(text).unwrap();
        let links = cfg.link_configs().unwrap();
        let bank = InstitutionId::parse("01020000").unwrap();
        let link = links.iter().find(|l| l.institution == bank).unwrap();
        assert_eq!(link.in_flight_max, 2048);
        assert_eq!(link.answer_checks_in_flight_max, 128);
        // A bank without them gets the defaults.
        let other = links.iter().find(|l| l.institution != bank).unwrap();
        assert_eq!(other.in_flight_max, 1024);
        assert_eq!(
            other.answer_checks_in_flight_max,
            crate::issuer::ANSWER_CHECKS_IN_FLIGHT_MAX_DEFAULT
        );
        let zero = text.replace(
            "answer_checks_in_flight_max = 128",
            "answer_checks_in_flight_max = 0",
        );
        let cfg: NodeConfig = toml::from_str(&zero).unwrap();
        assert!(cfg.link_configs().is_err());
    }

    #[test]
    fn the_hsm_client_pool_size_comes_from_the_configuration_and_zero_is_refused() {
        let text = include_str!("../../ops/switch.example.toml");
        let cfg: NodeConfig = toml::from_str(text).unwrap();
        let client = cfg.hsm.client_config().unwrap().expect("tcp");
        assert_eq!(client.connections, 8);
        let zero = text.replace("connections = 8 ", "connections = 0 ");
        let cfg: NodeConfig = toml::from_str(&zero).unwrap();
        assert!(cfg.hsm.client_config().is_err());
        let soft = text.replace("kind = \"tcp\"", "kind = \"soft\"");
        let cfg: NodeConfig = toml::from_str(&soft).unwrap();
        assert!(cfg.hsm.client_config().unwrap().is_none());
    }

    #[test]
    fn group_commits_at_once_default_per_store_and_zero_is_refused() {
        let text = include_str!("../../ops/switch.example.toml");
        let cfg: NodeConfig = toml::from_str(text).unwrap();
        let sqlite = cfg.database.writer_config::<SqliteStore>().unwrap();
        assert_eq!(sqlite.commits_in_flight_max, 1);
        assert!(sqlite.dedicated_thread);
        let pg = cfg.database.writer_config::<PostgresStore>().unwrap();
        assert_eq!(pg.commits_in_flight_max, 2);
        assert!(!pg.dedicated_thread);
        let three = text.replace(
            "# group_commits_in_flight = 2 ",
            "group_commits_in_flight = 3 ",
        );
        let cfg: NodeConfig = toml::from_str(&three).unwrap();
        let pg = cfg.database.writer_config::<PostgresStore>().unwrap();
        assert_eq!(pg.commits_in_flight_max, 3);
        let zero = text.replace(
            "# group_commits_in_flight = 2 ",
            "group_commits_in_flight = 0 ",
        );
        let cfg: NodeConfig = toml::from_str(&zero).unwrap();
        assert!(cfg.database.writer_config::<PostgresStore>().is_err());
    }

    #[test]
    fn a_daily_stand_in_limit_below_the_per_transaction_one_is_refused() {
        let text = include_str!("../../ops/switch.example.toml").replace(
            "stand_in_card_daily_fen_max = 50000",
            "stand_in_card_daily_fen_max = 100",
        );
        let cfg: NodeConfig = toml::from_str(&text).unwrap();
        assert!(cfg.pipeline_config().is_err());
    }
}
