//! The configuration's checks: what a node refuses to start with.
use super::*;

#[test]
fn the_example_configuration_parses_and_builds_the_pipeline_settings() {
    let text = include_str!("../../../ops/switch.example.toml");
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
    let keys = cfg.keys().unwrap();
    assert!(keys.ssse.internal_auth_sm4.is_some() && keys.ssse.external_auth_tdes.is_some());
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
fn a_soft_hsm_needs_lmk_components_or_the_explicit_insecure_test_lmk() {
    let text = include_str!("../../../ops/switch.example.toml")
        .replace("kind = \"tcp\"", "kind = \"soft\"");
    let cfg: NodeConfig = toml::from_str(&text).unwrap();
    let refused = cfg.hsm.soft_hsm().map(|_| ()).unwrap_err().to_string();
    assert!(refused.contains("insecure-test-lmk"), "{refused}");

    let dir = tempfile::tempdir().unwrap();
    let mut weak = Vec::new();
    for n in 0..2 {
        let path = dir.path().join(format!("component-{n}.txt"));
        let line = "01".repeat(16);
        std::fs::write(&path, vec![line; 20].join("\n")).unwrap();
        weak.push(path);
    }
    let text = text.replace(
        "connections = 8",
        &format!("connections = 8\nlmk_components = {:?}", weak),
    );
    let cfg: NodeConfig = toml::from_str(&text).unwrap();
    assert!(cfg.hsm.soft_hsm().is_err(), "equal components are refused");

    let text = text.replace(
        &format!("lmk_components = {:?}", weak),
        "insecure_test_lmk = true",
    );
    let cfg: NodeConfig = toml::from_str(&text).unwrap();
    assert!(cfg.hsm.soft_hsm().is_ok());
}

#[test]
fn an_acquirer_without_a_tak_is_refused_unless_an_in_house_listener_serves_it() {
    let text = include_str!("../../../ops/switch.example.toml");
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
    let text = include_str!("../../../ops/switch.example.toml");
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
    let text = include_str!("../../../ops/switch.example.toml");
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
    let text = include_str!("../../../ops/switch.example.toml");
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
    let text = include_str!("../../../ops/switch.example.toml").replace(
        "stand_in_card_daily_fen_max = 50000",
        "stand_in_card_daily_fen_max = 100",
    );
    let cfg: NodeConfig = toml::from_str(&text).unwrap();
    assert!(cfg.pipeline_config().is_err());
}

#[test]
fn bank_links_mac_unless_explicitly_told_not_to() {
    let text = include_str!("../../../ops/switch.example.toml");
    let cfg: NodeConfig = toml::from_str(text).unwrap();
    // The second bank says nothing about MACs: they are on.
    assert!(cfg.link_configs().unwrap().iter().all(|l| l.mac));
    let off = text.replace("mac = true  ", "mac = false ");
    let cfg: NodeConfig = toml::from_str(&off).unwrap();
    let err = cfg.link_configs().unwrap_err().to_string();
    assert!(err.contains("insecure_no_mac"), "{err}");
    let opted_out = text.replace("mac = true  ", "mac = false\ninsecure_no_mac = true\n");
    let cfg: NodeConfig = toml::from_str(&opted_out).unwrap();
    let links = cfg.link_configs().unwrap();
    assert_eq!(links.iter().filter(|l| !l.mac).count(), 1);
    let both = text.replace("mac = true  ", "insecure_no_mac = true\n");
    let cfg: NodeConfig = toml::from_str(&both).unwrap();
    assert!(cfg.link_configs().is_err());
}

#[test]
fn the_listener_limits_come_from_the_file_and_zero_is_refused() {
    let text = include_str!("../../../ops/switch.example.toml")
        .replace("# send_buffer_bytes = 65536", "send_buffer_bytes = 65536");
    let cfg: NodeConfig = toml::from_str(&text).unwrap();
    let l = &cfg.listeners().unwrap()[0];
    assert_eq!(l.in_flight_per_connection_max, 256);
    assert_eq!(l.idle_timeout, Duration::from_secs(300));
    assert_eq!(l.handshake_timeout, Duration::from_secs(10));
    assert_eq!(l.write_timeout, Duration::from_secs(30));
    assert_eq!(l.send_buffer_bytes, Some(65_536));

    let changed = text.replace("write_timeout_s = 30", "write_timeout_s = 7");
    let cfg: NodeConfig = toml::from_str(&changed).unwrap();
    assert_eq!(
        cfg.listeners().unwrap()[0].write_timeout,
        Duration::from_secs(7)
    );
    for zero in [
        text.replace("write_timeout_s = 30", "write_timeout_s = 0"),
        text.replace("idle_timeout_s = 300", "idle_timeout_s = 0"),
        text.replace(
            "in_flight_per_connection_max = 256",
            "in_flight_per_connection_max = 0",
        ),
        text.replace(
            "requests_in_flight_max = 4096",
            "requests_in_flight_max = 0",
        ),
    ] {
        let cfg: NodeConfig = toml::from_str(&zero).unwrap();
        assert!(cfg.listeners().is_err(), "zero is refused");
    }
}

#[test]
fn a_remote_database_needs_verified_tls_unless_insecure_by_name() {
    for local in [
        "postgres://postgres@127.0.0.1:5432/test",
        "postgres://postgres@localhost/test",
        "postgres://postgres@[::1]:5432/test",
        "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test",
    ] {
        assert!(database_link_protected(local, false).is_ok(), "{local}");
    }
    let remote = "postgres://switch@db.ssc.example:5432/switch";
    let refused = database_link_protected(remote, false)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("sslmode=verify-full"), "{refused}");
    for weak in ["disable", "prefer", "require"] {
        let url = format!("{remote}?sslmode={weak}");
        assert!(database_link_protected(&url, false).is_err(), "{weak}");
    }
    for verified in ["verify-ca", "verify-full"] {
        let url = format!("{remote}?sslmode={verified}&sslrootcert=/etc/ssc/db-ca.crt");
        assert!(database_link_protected(&url, false).is_ok(), "{verified}");
    }
    assert!(database_link_protected(remote, true).is_ok());
}

#[test]
fn every_host_of_a_host_list_is_checked() {
    let pair =
        "postgres://postgres@127.0.0.1:5432,127.0.0.1:5433/test?target_session_attrs=read-write";
    assert!(database_link_protected(pair, false).is_ok());
    let one_remote = "postgres://switch@127.0.0.1:5432,db2.ssc.example:5432/switch";
    let refused = database_link_protected(one_remote, false)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("db2.ssc.example"), "{refused}");
    let empty = database_link_protected("postgres://a,,b/switch", false)
        .unwrap_err()
        .to_string();
    assert!(empty.contains("empty host"), "{empty}");
}

/// A listener whose connections are the institutions of their client certificates: the
/// mapping needs mutual TLS, excludes a fixed institution, and wants 64 hex digits per key.
#[test]
fn client_certificates_map_to_institutions_only_on_a_mutual_tls_listener() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (cert, key, ca) = (
        write("s.crt", &server.pem()),
        write("s.key", &key.serialize_pem()),
        write("ca.crt", &ca.pem()),
    );
    let pin = "ab".repeat(32);
    let base = include_str!("../../../ops/switch.example.toml");
    let listener = |extra: &str| {
        base.replace(
            "# send_buffer_bytes = 65536",
            &format!("tls_cert = {cert:?}\ntls_key = {key:?}\n{extra}"),
        )
    };
    let mapping = |pin: &str| {
        format!(
            "[[listener.client_certificate]]\nspki_sha256 = {pin:?}\ninstitution = \"4101001\"\n"
        )
    };
    let mutual = format!("tls_client_ca = {ca:?}\n{}", mapping(&pin));
    let cfg: NodeConfig = toml::from_str(&listener(&mutual)).unwrap();
    let listeners = cfg.listeners().unwrap();
    let tls = listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.client_institutions.as_ref().unwrap().len(), 1);

    let refused = |text: String| {
        let cfg: NodeConfig = toml::from_str(&text).unwrap();
        cfg.listeners().map(|_| ()).unwrap_err().to_string()
    };
    // Without mutual TLS, there is no certificate to map.
    assert!(refused(listener(&mapping(&pin))).contains("tls_client_ca"));
    // A listener of one institution cannot also be its certificates'.
    let both = format!("institution = \"4101002\"\n{mutual}");
    assert!(refused(listener(&both)).contains("not both"));
    // Not a SHA-256.
    let short = format!("tls_client_ca = {ca:?}\n{}", mapping("abcd"));
    assert!(refused(listener(&short)).contains("64 hex digits"));
    // One key, two institutions.
    let twice = format!("{mutual}{}", mapping(&pin).replace("4101001", "4101002"));
    assert!(refused(listener(&twice)).contains("mapped twice"));
}

#[test]
fn past_card_days_kept_come_from_the_configuration() {
    let text = include_str!("../../../ops/switch.example.toml");
    let cfg: NodeConfig = toml::from_str(text).unwrap();
    assert_eq!(cfg.pipeline_config().unwrap().card_days_kept, 7);
    let cfg: NodeConfig =
        toml::from_str(&text.replace("card_days_kept = 7", "card_days_kept = 30")).unwrap();
    assert_eq!(cfg.pipeline_config().unwrap().card_days_kept, 30);
}

#[test]
fn the_data_dir_of_the_reversal_spool_comes_from_the_configuration_with_a_default() {
    let text = include_str!("../../../ops/switch.example.toml");
    let cfg: NodeConfig = toml::from_str(text).unwrap();
    let dir = cfg.pipeline_config().unwrap().data_dir;
    assert_eq!(dir, Some(std::path::PathBuf::from("switch-data")));
    let absent = text.replace("data_dir = \"switch-data\"", "");
    assert_ne!(absent, text);
    let cfg: NodeConfig = toml::from_str(&absent).unwrap();
    let dir = cfg.pipeline_config().unwrap().data_dir;
    assert_eq!(dir, Some(std::path::PathBuf::from(DATA_DIR_DEFAULT)));
    let empty = text.replace("data_dir = \"switch-data\"", "data_dir = \"\"");
    let cfg: NodeConfig = toml::from_str(&empty).unwrap();
    assert!(cfg.pipeline_config().is_err());
}

#[test]
fn the_cut_over_time_comes_from_the_configuration_and_is_a_morning_time() {
    let text = include_str!("../../../ops/switch.example.toml");
    let cfg: NodeConfig = toml::from_str(text).unwrap();
    let at = cfg.cutover_config().unwrap().cutover_at;
    assert_eq!(at, chrono::NaiveTime::from_hms_opt(0, 5, 0).unwrap());
    for bad in ["\"24:00\"", "\"0:5x\"", "\"13:00\""] {
        let cfg: NodeConfig =
            toml::from_str(&text.replace("cutover_at = \"00:05\"", &format!("cutover_at = {bad}")))
                .unwrap();
        assert!(cfg.cutover_config().is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_example_operator_keys_unwrap_under_the_test_lmk_and_set_the_policy() {
    let text = include_str!("../../../ops/switch.example.toml").replace(
        "kind = \"tcp\"",
        "kind = \"soft\"\ninsecure_test_lmk = true",
    );
    let cfg: NodeConfig = toml::from_str(&text).unwrap();
    let hsm = hsm_of(&cfg).unwrap();
    let ctx = operator_context(&cfg, &*hsm).await.unwrap();
    assert_eq!(ctx.policy.login_failures_max, 5);
    assert_eq!(ctx.policy.idle_timeout, Duration::from_secs(900));
    assert!(!ctx.policy.secure_cookie, "no TLS in the example");
    let op = cfg.operator.as_ref().unwrap();
    assert_ne!(op.secret_key, op.audit_mac_key, "two keys, two uses");
    assert_ne!(op.secret_key, cfg.database.pan_data_key);
    // With TLS on the HTTP listener the session cookie is marked Secure.
    let with_tls = text.replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"0.0.0.0:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"",
    );
    let cfg: NodeConfig = toml::from_str(&with_tls).unwrap();
    assert!(
        operator_context(&cfg, &*hsm)
            .await
            .unwrap()
            .policy
            .secure_cookie
    );
}

#[test]
fn http_tls_needs_both_files() {
    let text = include_str!("../../../ops/switch.example.toml").replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"0.0.0.0:8443\"\ntls_cert = \"/nonexistent/cert.pem\"",
    );
    let cfg: NodeConfig = toml::from_str(&text).unwrap();
    let err = http_tls(&cfg).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("tls_cert and tls_key go together"), "{err}");
}

/// Machine clients pinned by certificate need the HTTP face's own TLS with a client CA; the
/// pins are 64 hex digits and name a role.
#[test]
fn http_machine_clients_need_tls_with_a_client_ca_and_well_formed_pins() {
    let http = |extra: &str| {
        let text = include_str!("../../../ops/switch.example.toml").replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:8080\"\n{extra}"),
        );
        toml::from_str::<NodeConfig>(&text).unwrap()
    };
    let pin = |spki: &str, role: &str| {
        format!(
            "[[http.client_certificate]]\nspki_sha256 = {spki:?}\ninstitution = \"01020000\"\n\
             role = {role:?}\nname = \"back office\"\n"
        )
    };
    let good = "ab".repeat(32);
    let cases = [
        (
            pin(&good, "bank_operator"),
            "tls_cert, tls_key and tls_client_ca",
        ),
        (
            format!(
                "tls_cert = \"c\"\ntls_key = \"k\"\ntls_client_ca = \"ca\"\n{}",
                pin("abc", "bank_operator")
            ),
            "64 hex digits",
        ),
        (
            format!(
                "tls_cert = \"c\"\ntls_key = \"k\"\ntls_client_ca = \"ca\"\n{}",
                pin(&good, " ")
            ),
            "names no role",
        ),
        (
            "tls_client_ca = \"ca\"\n".to_owned(),
            "tls_client_ca goes with",
        ),
    ];
    for (extra, expected) in cases {
        let err = http_tls(&http(&extra)).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(expected), "{extra}: {err}");
    }
}

#[tokio::test]
async fn the_example_cms_section_builds_the_issuance_config_from_lmk_tokens() {
    let text = include_str!("../../../ops/switch.example.toml");
    let cfg: NodeConfig = toml::from_str(text).unwrap();
    let hsm: Arc<dyn Hsm> = Arc::new(hsm_sim::SoftHsm::with_test_lmk());
    let parts = cms_parts(&cfg, &hsm).await.unwrap().expect("[cms]");
    assert_eq!(parts.issuance.ranges.len(), 2);
    assert_eq!(
        parts.issuance.ranges[0].pan(1).unwrap().expose_digits(),
        "6228480190000015"
    );
    assert_eq!(parts.bureaus[0].region_prefix, "4101");
    assert!(parts.photos.is_none());
    // The bureau's ZMK is the demo bureau's (its check value, as the file's header carries it).
    let kcv = hsm
        .key_check_value(
            hsm_sim::keys::KeyType::Zmk,
            parts.issuance.bureau_zmk.token(),
        )
        .await
        .unwrap();
    assert_eq!(kcv.len(), 3);
    // Without the cards' algorithm's IMK in [keys] the node refuses to start.
    let tdes = text.replace(
        "algorithm = \"sm4\"                     # or",
        "algorithm = \"tdes\" # or",
    );
    let cfg: NodeConfig = toml::from_str(&tdes).unwrap();
    let err = cms_parts(&cfg, &hsm).await.unwrap_err().to_string();
    assert!(err.contains("IMK-SMI"), "{err}");
    let bad = text.replace("region_prefix = \"4101\"", "region_prefix = \"41x\"");
    let cfg: NodeConfig = toml::from_str(&bad).unwrap();
    assert!(cms_parts(&cfg, &hsm).await.is_err());
}

#[tokio::test]
async fn the_card_relay_kiosks_and_keys_come_from_the_configuration() {
    let text = include_str!("../../../ops/switch.example.toml");
    let cfg: NodeConfig = toml::from_str(text).unwrap();
    let keys = cfg.keys().unwrap();
    assert!(keys.ssse.pin_unblock_sm4.is_some() && keys.ssse.pin_unblock_tdes.is_some());
    assert!(keys.ssse.line_protection_sm4.is_some() && keys.ssse.line_protection_tdes.is_some());
    let hsm: Arc<dyn Hsm> = Arc::new(hsm_sim::SoftHsm::with_test_lmk());
    let parts = cms_parts(&cfg, &hsm).await.unwrap().expect("[cms]");
    assert!(parts.kiosks.is_empty(), "the example configures no kiosk");
    let kiosk = |terminal: &str| {
        text.replace(
            "# [[cms.kiosk]]                       # a job-centre kiosk",
            &format!(
                "[[cms.kiosk]]\nterminal = \"{terminal}\"\ninstitution = \"4101005\"\n\
                 relay = \"10.20.0.42:7000\"\n# a job-centre kiosk"
            ),
        )
    };
    let cfg: NodeConfig = toml::from_str(&kiosk("JC000042")).unwrap();
    let parts = cms_parts(&cfg, &hsm).await.unwrap().expect("[cms]");
    assert_eq!(parts.kiosks.len(), 1);
    assert_eq!(parts.kiosks[0].terminal, "JC000042");
    assert_eq!(parts.kiosks[0].institution.as_str(), "4101005");
    assert_eq!(parts.kiosks[0].address, "10.20.0.42:7000");
    let cfg: NodeConfig = toml::from_str(&kiosk("JC42")).unwrap();
    let err = cms_parts(&cfg, &hsm)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("8 characters"), "{err}");
}

#[test]
fn the_clearing_api_is_reached_over_https_with_a_client_certificate_only() {
    let example = include_str!("../../../ops/switch.example.toml");
    let cfg: NodeConfig = toml::from_str(example).unwrap();
    assert!(
        clearing_source(&cfg).unwrap().is_none(),
        "absent: no source"
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["clearing.test".to_owned()]).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (ca_pem, cert, key) = (
        file("ca.pem", &ca.cert.pem()),
        file("cert.pem", &ca.cert.pem()),
        file("key.pem", &ca.key_pair.serialize_pem()),
    );
    let with = |url: &str, key: &str| {
        let text = format!(
            "{example}\n[clearing_api]\nurl = {url:?}\nca = {ca_pem:?}\ncert = {cert:?}\nkey = {key:?}\n"
        );
        let cfg: NodeConfig = toml::from_str(&text).unwrap();
        clearing_source(&cfg).map(|s| s.is_some())
    };
    assert!(with("https://clearing.test:8443", &key).unwrap());
    let plain = with("http://clearing.test:8443", &key)
        .unwrap_err()
        .to_string();
    assert!(plain.contains("https only"), "{plain}");
    let missing = with("https://clearing.test:8443", "/nonexistent/key.pem").unwrap_err();
    assert!(missing.to_string().contains("[clearing_api]"), "{missing}");
}
