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
