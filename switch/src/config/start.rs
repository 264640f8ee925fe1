//! What a node does with its configuration: opens its HSM and store (checking that the
//! database link is protected), builds the operator API's and the card management system's
//! parts, and starts the node (`switch serve`); and the store's maintenance commands on the
//! same configuration (`switch verify`, `switch backup`, `switch restore`). The file's sections
//! and their checks are the parent module's.

use super::*;

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
    let machines = match &cfg.http {
        Some(h) => settings::machine_clients(h)?,
        None => Default::default(),
    };
    Ok(crate::operator::OperatorContext::new(
        crate::operator::keys::SecretKey::new(secret),
        crate::operator::SessionPolicy {
            idle_timeout: Duration::from_secs(op.session_idle_s.max(1)),
            absolute_timeout: Duration::from_secs(op.session_absolute_s.max(1)),
            login_failures_max: op.login_failures_max.max(1),
            lockout: Duration::from_secs(op.lockout_s),
            secure_cookie: tls,
        },
    )
    .with_machine_clients(machines))
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
    let mut counters = Vec::with_capacity(c.counters.len());
    for k in &c.counters {
        let institution = InstitutionId::parse(&k.institution).map_err(|_| {
            ConfigError::Invalid(format!("cms.counter {}: institution", k.counter_id))
        })?;
        counters.push(crate::operator::routes::cms::CounterTerminal {
            counter_id: k.counter_id.clone(),
            institution,
            tpk: token("cms.counter.tpk", &k.tpk)?,
        });
    }
    let mut kiosks = Vec::with_capacity(c.kiosks.len());
    for k in &c.kiosks {
        if k.terminal.len() != 8 || !k.terminal.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "[[cms.kiosk]] {}: terminal is 8 characters",
                k.terminal
            )));
        }
        kiosks.push(crate::cms::card_relay::RelayKiosk {
            terminal: k.terminal.clone(),
            institution: inst(&k.institution)?,
            address: k.relay.clone(),
        });
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
                line_protection: token("cms.ssse_line_protection", &c.ssse_line_protection)?,
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
        counters,
        kiosks,
    }))
}

/// The client of clearing's settlement API of `[clearing_api]` (None without it).
pub fn clearing_source(
    cfg: &NodeConfig,
) -> Result<Option<Arc<dyn crate::clearing_link::SettlementSource>>, ConfigError> {
    use crate::clearing_link::{ClearingClient, ClearingClientConfig};
    let Some(c) = &cfg.clearing_api else {
        return Ok(None);
    };
    let mut config = ClearingClientConfig::new(c.url.clone());
    config.timeout = Duration::from_secs(c.timeout_s.max(1));
    let client = ClearingClient::from_pem_files(config, &c.ca, &c.cert, &c.key)
        .map_err(|e| invalid(format!("[clearing_api]: {e}")))?;
    Ok(Some(Arc::new(client)))
}

/// The HTTP listener's TLS, if configured.
pub fn http_tls(cfg: &NodeConfig) -> Result<Option<TlsSettings>, ConfigError> {
    let Some(h) = cfg.http.as_ref() else {
        return Ok(None);
    };
    let machines = settings::machine_clients(h)?;
    match (&h.tls_cert, &h.tls_key, &h.tls_client_ca) {
        (Some(c), Some(k), Some(ca)) if !machines.is_empty() => {
            let mut pinned = crate::acquirer::ClientInstitutions::new();
            for (spki, institution) in machines.institutions() {
                pinned
                    .insert(spki, institution.clone())
                    .map_err(|e| invalid(e.to_string()))?;
            }
            Ok(Some(
                TlsSettings::with_optional_client_institutions(c, k, ca, pinned)
                    .map_err(|e| invalid(e.to_string()))?,
            ))
        }
        (_, _, Some(_)) => Err(invalid(
            "[http] tls_client_ca goes with tls_cert, tls_key and [[http.client_certificate]]",
        )),
        (Some(c), Some(k), None) => Ok(Some(
            TlsSettings::from_pem_files(c, k, None).map_err(|e| invalid(e.to_string()))?,
        )),
        (None, None, None) => Ok(None),
        _ => Err(invalid("[http] tls_cert and tls_key go together")),
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

/// The line `switch serve` prints once it serves: where it listens (the bound addresses, so a
/// port 0 in the file is told) and how many banks signed on, e.g. `switch serve: acquirer
/// tcp://127.0.0.1:8583  http://127.0.0.1:8080  6 of 6 banks signed on`.
fn status_line<S: Store>(node: &crate::node::Node<S>, banks: usize) -> String {
    let acquirers: Vec<String> = node
        .acquirer_addrs
        .iter()
        .map(|a| format!("tcp://{a}"))
        .collect();
    let http = node
        .http_addr
        .map_or_else(|| "http:-".to_owned(), |a| format!("http://{a}"));
    format!(
        "switch serve: acquirer {}  {http}  {} of {banks} banks signed on",
        if acquirers.is_empty() {
            "-".to_owned()
        } else {
            acquirers.join(",")
        },
        node.banks_up()
    )
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
        sign_on_wait: crate::node::SIGN_ON_WAIT,
        listeners,
        http: cfg.http.as_ref().map(|h| h.listen),
        http_tls,
        operator: Arc::new(operator),
        cms: cms_parts(&cfg, &hsm).await?,
        clearing: clearing_source(&cfg)?,
        cutover: Some(cfg.cutover_config()?),
        store,
        hsm,
    };
    // Before the status line: a SIGTERM once the node says it listens stops it in order.
    let stop = crate::node::signal::StopSignal::install();
    let banks = parts.banks.len();
    let node = parts.start().await?;
    println!("{}", status_line(&node, banks));
    stop.wait().await;
    node.stop().await;
    Ok(())
}
