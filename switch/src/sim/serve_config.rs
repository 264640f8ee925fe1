//! The `switch serve` configuration of the demo world: the TOML file a production-shaped node
//! reads (`config::NodeConfig`, example `ops/switch.example.toml`), rendered from a
//! [`DemoWorld`] so a test (or a user) can run the real entry point, `switch serve`, on the
//! demo's institutions, keys and cards.
//!
//! Why: `switch serve` is what production runs, and a configuration written by hand beside the
//! world would be a second definition of every key and institution that drifts from the
//! first. Every value here comes from the world (its LMK tokens, institutions, hospitals,
//! policy, limits, stand-in and card management system) or from the caller (where the node
//! listens, its store, and the links to the bank hosts it started). The keys are LMK tokens under the published test LMK,
//! so the node runs the software HSM with `insecure_test_lmk = true`: demo and tests only.
//!
//! The store the node opens must have been seeded with [`pan_protector`] (the PAN keys of the
//! file): `serve` seals PANs with the HSM's data keys ([`crate::store::HsmPanProtector`]), whose
//! format is not that of the demo's own store ([`crate::store::DataKeyPanProtector`]).

use super::world::{DemoError, DemoWorld};
use crate::issuer::IssuerConfig;
use crate::store::HsmPanProtector;
use crate::wire::mac::LinkMacAlgorithm;
use hsm_sim::keys::{DataKeyToken, KeyScheme, KeyType, TypedKey};
use hsm_sim::Hsm;
use std::net::SocketAddr;
use std::path::PathBuf;
use toml::{Table, Value};

/// What the world does not know: where this node listens and keeps its data, and its links.
#[derive(Debug, Clone)]
pub struct ServeSetup {
    /// `sqlite://PATH` or `postgres://…` (`[database] url`).
    pub database_url: String,
    /// The PostgreSQL schema (`[database] schema`).
    pub database_schema: Option<String>,
    /// This node's own directory (`[switch] data_dir`: the reversal spool).
    pub data_dir: PathBuf,
    /// The acquirer listener (`[[listener]] listen`; shared, each request proves its
    /// institution with its TAK).
    pub listen: SocketAddr,
    /// The HTTP face (`[http] listen`).
    pub http: SocketAddr,
    /// The links to the bank hosts (`sim::demo::start_bank` gives them): address, ZMK, first
    /// ZPK, MAC algorithm and key exchange of each. TLS links are not rendered (refused).
    pub banks: Vec<IssuerConfig>,
}

/// Why the configuration could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ServeConfigError {
    /// Wrapping a data key, or a malformed demo value.
    #[error(transparent)]
    World(#[from] DemoError),
    /// A value the file cannot carry (named).
    #[error("serve configuration: {0}")]
    Unrenderable(String),
}

/// The four data keys of the file (scheme `B` LMK tokens): the PAN lookup-hash and encryption
/// keys (`[database]`) and the operator API's secret and audit MAC keys (`[operator]`), the
/// demo's publicly known test keys wrapped under the world's LMK.
pub struct DataKeys {
    /// `[database] pan_hash_key`.
    pub pan_hash: DataKeyToken,
    /// `[database] pan_data_key`.
    pub pan_data: DataKeyToken,
    /// `[operator] secret_key`.
    pub operator_secret: DataKeyToken,
    /// `[operator] audit_mac_key`.
    pub audit_mac: DataKeyToken,
}

impl DataKeys {
    /// The demo's test keys ([`crate::store::TEST_HASH_KEY`], [`crate::store::TEST_DATA_KEY`],
    /// [`crate::operator::keys::TEST_SECRET_KEY`], [`crate::operator::keys::TEST_AUDIT_KEY`])
    /// as tokens of the world's HSM.
    pub fn of(world: &DemoWorld) -> Result<Self, DemoError> {
        let wrap = |clear: &[u8; 32]| {
            world
                .hsm
                .import_clear_key(KeyType::DataKey, KeyScheme::B, &hex::encode(clear))
                .map(DataKeyToken::from_token)
        };
        Ok(Self {
            pan_hash: wrap(&crate::store::TEST_HASH_KEY)?,
            pan_data: wrap(&crate::store::TEST_DATA_KEY)?,
            operator_secret: wrap(&crate::operator::keys::TEST_SECRET_KEY)?,
            audit_mac: wrap(&crate::operator::keys::TEST_AUDIT_KEY)?,
        })
    }
}

/// The PAN protector of the rendered file (what `switch serve` builds from its `[database]`
/// keys): seed the node's store with it.
pub async fn pan_protector(world: &DemoWorld) -> Result<HsmPanProtector, DemoError> {
    let keys = DataKeys::of(world)?;
    Ok(HsmPanProtector::new(
        world.hsm.unwrap_data_key(&keys.pan_hash).await?,
        world.hsm.unwrap_data_key(&keys.pan_data).await?,
    ))
}

fn text(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

fn int(v: impl Into<i64>) -> Value {
    Value::Integer(v.into())
}

fn table<const N: usize>(entries: [(&str, Value); N]) -> Table {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn tables(rows: Vec<Table>) -> Value {
    Value::Array(rows.into_iter().map(Value::Table).collect())
}

fn token<K: TypedKey>(k: &K) -> Value {
    text(k.token())
}

fn unrenderable(what: impl Into<String>) -> ServeConfigError {
    ServeConfigError::Unrenderable(what.into())
}

/// The whole `switch serve` TOML of `world` (after [`DemoWorld::seed`], so the benefit account
/// is known) for a node set up as `setup` says.
pub fn serve_config(world: &DemoWorld, setup: &ServeSetup) -> Result<String, ServeConfigError> {
    let cfg = &world.cfg;
    let data = DataKeys::of(world)?;
    let mut file = Table::new();

    let mut switch = table([
        ("institution", text(&cfg.switch_id)),
        ("insurance_fund", text(&cfg.insurance_fund)),
        ("social_security_fund", text(&cfg.social_security_fund)),
        ("bank_timeout_ms", int(millis(cfg.bank_timeout)?)),
        (
            "transmission_window_s",
            int(seconds(cfg.transmission_window)?),
        ),
        ("card_days_kept", int(cfg.card_days_kept)),
        ("data_dir", text(setup.data_dir.display())),
    ]);
    if let Some(account) = cfg.social_security_fund_account {
        switch.insert("social_security_fund_account".into(), int(account.0));
    }
    file.insert("switch".into(), Value::Table(switch));

    let mut database = table([
        ("url", text(&setup.database_url)),
        ("pan_hash_key", text(data.pan_hash.token())),
        ("pan_data_key", text(data.pan_data.token())),
    ]);
    if let Some(schema) = &setup.database_schema {
        database.insert("schema".into(), text(schema));
    }
    file.insert("database".into(), Value::Table(database));

    // The world's HSM is the software HSM under the published test LMK.
    file.insert(
        "hsm".into(),
        Value::Table(table([
            ("kind", text("soft")),
            ("insecure_test_lmk", Value::Boolean(true)),
        ])),
    );
    file.insert("keys".into(), Value::Table(keys(world)));
    file.insert("cms".into(), Value::Table(cms(world)?));
    file.insert(
        "http".into(),
        Value::Table(table([("listen", text(setup.http))])),
    );
    file.insert(
        "operator".into(),
        Value::Table(table([
            ("secret_key", text(data.operator_secret.token())),
            ("audit_mac_key", text(data.audit_mac.token())),
        ])),
    );
    file.insert(
        "listener".into(),
        tables(vec![table([("listen", text(setup.listen))])]),
    );
    file.insert("acquirer".into(), tables(acquirers(world)?));
    file.insert("bank".into(), tables(banks(world, &setup.banks)?));
    file.insert("hospital".into(), tables(hospitals(world)));
    file.insert("policy".into(), tables(policies(world)));
    file.insert(
        "limits".into(),
        Value::Table(table([
            (
                "per_transaction_fen_max",
                int(cfg.limits.per_transaction_fen_max),
            ),
            ("daily_fen_max", int(cfg.limits.daily_fen_max)),
            ("daily_count_max", int(cfg.limits.daily_count_max)),
        ])),
    );
    Ok(format!(
        "# switch serve --config FILE: the demo world's node (sim::serve_config). Every key is a\n\
         # token under the PUBLISHED test LMK: demo and tests only, never real cards.\n\n{file}"
    ))
}

fn millis(d: std::time::Duration) -> Result<i64, ServeConfigError> {
    i64::try_from(d.as_millis()).map_err(|_| unrenderable("a duration in ms"))
}

fn seconds(d: std::time::Duration) -> Result<i64, ServeConfigError> {
    i64::try_from(d.as_secs()).map_err(|_| unrenderable("a duration in s"))
}

/// `[keys]`: the issuer's and the SSSE keys of the world.
fn keys(world: &DemoWorld) -> Table {
    let issuer = &world.keys.issuer;
    let ssse = &world.keys.ssse;
    let mut keys = table([
        ("pvk", token(&issuer.pvk)),
        ("decimalisation_table", text(&issuer.decimalisation_table)),
        ("pin_check_length", int(issuer.pin_check_length)),
    ]);
    let optional = [
        ("imk_ac_tdes", issuer.imk_ac_tdes.as_ref().map(token)),
        ("imk_ac_sm4", issuer.imk_ac_sm4.as_ref().map(token)),
        ("imk_smi_tdes", issuer.imk_smi_tdes.as_ref().map(token)),
        ("imk_smi_sm4", issuer.imk_smi_sm4.as_ref().map(token)),
        (
            "ssse_internal_auth_tdes",
            ssse.internal_auth_tdes.as_ref().map(token),
        ),
        (
            "ssse_internal_auth_sm4",
            ssse.internal_auth_sm4.as_ref().map(token),
        ),
        (
            "ssse_external_auth_tdes",
            ssse.external_auth_tdes.as_ref().map(token),
        ),
        (
            "ssse_external_auth_sm4",
            ssse.external_auth_sm4.as_ref().map(token),
        ),
        (
            "ssse_pin_unblock_tdes",
            ssse.pin_unblock_tdes.as_ref().map(token),
        ),
        (
            "ssse_pin_unblock_sm4",
            ssse.pin_unblock_sm4.as_ref().map(token),
        ),
        (
            "ssse_line_protection_tdes",
            ssse.line_protection_tdes.as_ref().map(token),
        ),
        (
            "ssse_line_protection_sm4",
            ssse.line_protection_sm4.as_ref().map(token),
        ),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            keys.insert(name.into(), v);
        }
    }
    keys
}

/// `[cms]`: the demo's card management system (`sim::bureau::demo_cms`): the cards'
/// algorithm and city, the issuance keys, the bureau's ZMK, the counters' TPK, the photo key,
/// one card range per bank and the bureau.
fn cms(world: &DemoWorld) -> Result<Table, ServeConfigError> {
    let parts = super::bureau::demo_cms(world)?;
    if !parts.counters.is_empty() {
        return Err(unrenderable("counters with their own TPKs"));
    }
    if !parts.kiosks.is_empty() {
        return Err(unrenderable("card-relay kiosks"));
    }
    let i = &parts.issuance;
    let photo = world
        .hsm
        .import_clear_key(
            KeyType::DataKey,
            KeyScheme::B,
            &hex::encode(super::bureau::DEMO_PHOTO_KEY),
        )
        .map_err(DemoError::from)?;
    let mut cms = table([
        ("algorithm", text(i.algorithm.as_sql())),
        ("city_code", text(&i.city_code)),
        ("validity_years", int(i.validity_years)),
        ("imk_smc", token(&i.emv.smc)),
        ("ssse_internal_auth", token(&i.ssse.internal_auth)),
        ("ssse_external_auth", token(&i.ssse.external_auth)),
        ("ssse_pin_unblock", token(&i.ssse.pin_unblock)),
        ("ssse_line_protection", token(&i.ssse.line_protection)),
        ("bureau_zmk", token(&i.bureau_zmk)),
        ("counter_tpk", token(&parts.counter_tpk)),
        ("photo_key", text(photo)),
    ]);
    let mut ranges = Vec::with_capacity(i.ranges.len());
    for r in &i.ranges {
        let digits = i64::try_from(r.pan_len_digits).map_err(|_| unrenderable("a PAN length"))?;
        ranges.push(table([
            ("bank", text(&r.bank)),
            ("bin", text(&r.bin)),
            ("pan_len_digits", int(digits)),
        ]));
    }
    cms.insert("range".into(), tables(ranges));
    let bureaus = parts
        .bureaus
        .iter()
        .map(|b| {
            table([
                ("institution", text(&b.institution)),
                ("region_prefix", text(&b.region_prefix)),
            ])
        })
        .collect();
    cms.insert("bureau".into(), tables(bureaus));
    Ok(cms)
}

/// `[[acquirer]]`: every acquirer of the world with its TPK, its TAK and the algorithm of
/// that TAK, in institution order.
fn acquirers(world: &DemoWorld) -> Result<Vec<Table>, ServeConfigError> {
    let mut ids: Vec<_> = world.keys.acquirers.keys().collect();
    ids.sort();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let k = &world.keys.acquirers[id];
        let mut row = table([("institution", text(id)), ("tpk", token(&k.tpk))]);
        if let Some(tak) = &k.tak {
            let algorithm =
                LinkMacAlgorithm::of_tak(tak).map_err(|e| unrenderable(format!("{id}: {e}")))?;
            row.insert("tak".into(), token(tak));
            row.insert("mac_algorithm".into(), text(algorithm));
        }
        out.push(row);
    }
    Ok(out)
}

/// `[[bank]]`: each link as given, with the world's stand-in limits of its bank.
fn banks(world: &DemoWorld, links: &[IssuerConfig]) -> Result<Vec<Table>, ServeConfigError> {
    let mut out = Vec::with_capacity(links.len());
    for l in links {
        if l.tls.is_some() {
            return Err(unrenderable(format!(
                "bank {}: a TLS link (its certificates are files the file would name)",
                l.institution
            )));
        }
        if !l.mac {
            return Err(unrenderable(format!(
                "bank {}: a link without MACs",
                l.institution
            )));
        }
        let mut row = table([
            ("institution", text(&l.institution)),
            ("address", text(&l.address)),
            ("zmk", token(&l.zmk)),
            ("mac_algorithm", text(l.mac_algorithm)),
            (
                "key_exchange_on_sign_on",
                Value::Boolean(l.key_exchange_on_sign_on),
            ),
        ]);
        if let Some(zpk) = &l.zpk {
            row.insert("zpk".into(), token(zpk));
        }
        if let Some(tak) = &l.tak {
            row.insert("tak".into(), token(tak));
        }
        if let Some(s) = world.cfg.stand_in.get(&l.institution) {
            row.insert("stand_in_fen_max".into(), int(s.per_transaction_fen_max));
            row.insert(
                "stand_in_card_daily_fen_max".into(),
                int(s.per_card_daily_fen_max),
            );
        }
        out.push(row);
    }
    Ok(out)
}

/// `[[hospital]]`, in code order.
fn hospitals(world: &DemoWorld) -> Vec<Table> {
    let mut codes: Vec<_> = world.cfg.hospitals.iter().collect();
    codes.sort_by(|a, b| a.0.cmp(b.0));
    codes
        .into_iter()
        .map(|(code, h)| {
            table([
                ("code", text(code)),
                ("institution", text(&h.institution)),
                ("level", int(h.level.0)),
            ])
        })
        .collect()
}

/// `[[policy]]`: every row of the world's policy table (amounts and ratios as exact decimal
/// strings), in a stable order.
fn policies(world: &DemoWorld) -> Vec<Table> {
    let mut rows: Vec<_> = world.cfg.policy.rows().collect();
    rows.sort_by_key(|(i, m, l, _)| (i.as_sql(), m.map(|m| m.0), l.0));
    rows.into_iter()
        .map(|(insurance, medical, level, p)| {
            let mut row = table([
                ("insurance", text(insurance.as_sql())),
                ("hospital_level", int(level.0)),
                ("deductible", text(p.deductible)),
                ("ratio", text(p.reimbursement_ratio)),
                ("annual_cap", text(p.annual_cap)),
            ]);
            if let Some(m) = medical {
                row.insert("medical_category".into(), int(m.0));
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use std::sync::Arc;

    fn setup(world: &DemoWorld) -> ServeSetup {
        let banks = (0..world.banks.len())
            .map(|i| {
                let (zmk, zpk) = world.bank_keys(i).unwrap();
                let mut l = IssuerConfig::new(
                    world.banks[i].id.clone(),
                    format!("127.0.0.1:{}", 9101 + i),
                    zmk,
                );
                l.zpk = Some(zpk);
                l.mac = true;
                l.mac_algorithm = super::super::world::DEMO_MAC_ALGORITHM;
                l.key_exchange_on_sign_on = true;
                l
            })
            .collect();
        ServeSetup {
            database_url: "sqlite://switch.db".into(),
            database_schema: None,
            data_dir: "switch-data".into(),
            listen: "127.0.0.1:8583".parse().unwrap(),
            http: "127.0.0.1:8080".parse().unwrap(),
            banks,
        }
    }

    /// The file read back is the world: every acquirer's keys, the issuer's keys, the
    /// pipeline's institutions, hospitals, policy, limits and stand-in, and each bank's link.
    #[tokio::test]
    async fn the_rendered_file_reads_back_as_the_worlds_node() {
        let mut world = DemoWorld::new(1).unwrap();
        world.cfg.social_security_fund_account = Some(crate::store::AccountId(7));
        let setup = setup(&world);
        let text = serve_config(&world, &setup).unwrap();
        let cfg: NodeConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

        let keys = cfg.keys().unwrap();
        assert_eq!(keys.acquirers.len(), world.keys.acquirers.len());
        for (id, k) in &world.keys.acquirers {
            let read = &keys.acquirers[id];
            assert_eq!(read.tpk.token(), k.tpk.token(), "{id}");
            assert_eq!(
                read.tak.as_ref().map(|t| t.token().clone()),
                k.tak.as_ref().map(|t| t.token().clone()),
                "{id}"
            );
        }
        assert_eq!(keys.issuer.pvk.token(), world.keys.issuer.pvk.token());
        assert_eq!(
            format!("{:?}", keys.issuer.imk_ac_sm4),
            format!("{:?}", world.keys.issuer.imk_ac_sm4)
        );
        assert_eq!(
            format!("{:?}", keys.ssse.external_auth_sm4),
            format!("{:?}", world.keys.ssse.external_auth_sm4)
        );

        let p = cfg.pipeline_config().unwrap();
        let w = &world.cfg;
        assert_eq!(
            (&p.switch_id, &p.insurance_fund, &p.social_security_fund),
            (&w.switch_id, &w.insurance_fund, &w.social_security_fund)
        );
        assert_eq!(
            p.social_security_fund_account,
            w.social_security_fund_account
        );
        assert_eq!(p.hospitals.len(), w.hospitals.len());
        for (code, h) in &w.hospitals {
            assert_eq!(p.hospitals[code].institution, h.institution);
            assert_eq!(p.hospitals[code].level, h.level);
        }
        let rows = |t: &crate::pipeline::split::PolicyTable| {
            let mut r: Vec<String> = t.rows().map(|row| format!("{row:?}")).collect();
            r.sort();
            r
        };
        assert_eq!(rows(&p.policy), rows(&w.policy));
        assert_eq!(p.limits, w.limits);
        assert_eq!(p.stand_in, w.stand_in);
        assert_eq!(p.bank_timeout, w.bank_timeout);
        assert_eq!(p.transmission_window, w.transmission_window);
        assert_eq!(p.data_dir, Some(setup.data_dir.clone()));

        let links = cfg.link_configs().unwrap();
        assert_eq!(links.len(), setup.banks.len());
        for (read, given) in links.iter().zip(&setup.banks) {
            assert_eq!(read.institution, given.institution);
            assert_eq!(read.address, given.address);
            assert_eq!(read.zmk.token(), given.zmk.token());
            assert_eq!(
                read.zpk.as_ref().map(|k| k.token().clone()),
                given.zpk.as_ref().map(|k| k.token().clone())
            );
            assert_eq!(read.mac_algorithm, given.mac_algorithm);
            assert!(read.mac && read.key_exchange_on_sign_on);
        }

        // The card management system reads back as the demo's.
        let hsm: Arc<dyn hsm_sim::Hsm> = Arc::new(cfg.hsm.soft_hsm().unwrap());
        let read = crate::config::cms_parts(&cfg, &hsm).await.unwrap().unwrap();
        let demo = crate::sim::bureau::demo_cms(&world).unwrap();
        let (r, d) = (&read.issuance, &demo.issuance);
        assert_eq!(r.algorithm, d.algorithm);
        assert_eq!(r.city_code, d.city_code);
        assert_eq!(r.validity_years, d.validity_years);
        assert_eq!(
            format!("{:?}", (&r.emv, &r.ssse, &r.pvk, &r.bureau_zmk, &r.ranges)),
            format!("{:?}", (&d.emv, &d.ssse, &d.pvk, &d.bureau_zmk, &d.ranges))
        );
        assert_eq!(r.decimalisation_table, d.decimalisation_table);
        assert_eq!(read.counter_tpk.token(), demo.counter_tpk.token());
        assert_eq!(read.bureaus, demo.bureaus);
        let photo = read.photos.expect("a photo key");
        let jpeg = crate::cms::photo::sample_jpeg(358, 441);
        let sealed = demo.photos.expect("demo photos").seal(&jpeg).unwrap();
        assert_eq!(photo.open(&sealed).unwrap(), jpeg);

        // The data keys open to the demo's test keys in the configured (soft) HSM.
        let hsm = cfg.hsm.soft_hsm().unwrap();
        let audit: DataKeyToken = cfg
            .operator
            .as_ref()
            .unwrap()
            .audit_mac_key
            .parse()
            .unwrap();
        let key = hsm.unwrap_data_key(&audit).await.unwrap();
        let expected = crate::operator::keys::audit_key_for_tests();
        assert_eq!(key.keyed_hash(b"x"), expected.keyed_hash(b"x"));
    }

    #[test]
    fn a_tls_bank_link_is_refused_not_rendered_without_its_tls() {
        let world = DemoWorld::new(1).unwrap();
        let mut setup = setup(&world);
        let pki = crate::sim::demo::pki::DemoPki::new().unwrap();
        setup.banks[0].tls = Some(pki.switch_link().unwrap());
        assert!(matches!(
            serve_config(&world, &setup),
            Err(ServeConfigError::Unrenderable(_))
        ));
    }
}
