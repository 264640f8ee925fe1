//! The switch drives a card at a job-centre kiosk (issue 29): an operator's
//! `POST /cards/{id}/ssse-pin-unblock` or `POST /cards/{id}/records/ef06` has the switch open
//! card relay v2 to the kiosk (keyed with the job centre's TAK, inside an `hsm-sim` server
//! reached over TCP), check the card in the reader, and send the SSSE command MACed by the HSM
//! (XU, XR) under card keys it disperses itself. The kiosk here is an in-process relay agent
//! (`card_apdu::channel::secure_relay`) serving a virtual card; `identity_e2e` does the same
//! through pcscd and the `kiosk` binary.

#[path = "support/network_hsm.rs"]
mod network_hsm;
use network_hsm::network_hsm;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use card_apdu::channel::memory::MemoryChannel;
use card_apdu::channel::secure_relay::{
    serve_one_at_a_time, AgentConfig, RelayLimits, SecureRelayChannel, SessionReport,
};
use card_apdu::channel::ChannelError;
use card_apdu::kiosk::identity::{KioskMac, KioskMacAlgorithm};
use card_apdu::kiosk::ssse::SsseCard;
use card_apdu::vcard::VirtualCard;
use hsm_sim::card_crypto::{CardKey, ClearPin};
use schemas::domain::InstitutionId;
use switch::cms::card_relay::{CardRelay, RelayKiosk};
use switch::cms::CardManagement;
use switch::http::HttpState;
use switch::metrics::Metrics;
use switch::operator::routes::cms::CmsFace;
use switch::sim::bureau;
use switch::sim::operator_kit;
use switch::sim::world::{clear_keys, DemoCard, DemoWorld, DEMO_PIN, JOB_CENTRE_ID};
use switch::store::{
    writer, CardStatus, DataKeyPanProtector, OperatorStore, SqliteConfig, SqliteStore, Store,
};

const TERMINAL: &str = "JC000042";
/// EF06 record 0A: the cardholder's sex (`1` in the demo card).
const SEX: u8 = 0x0A;

type Sessions = mpsc::Receiver<Result<SessionReport, ChannelError>>;

/// The job centre's TAK in clear, as the kiosk's secure module holds it.
fn kiosk_key() -> KioskMac {
    let id = InstitutionId::parse(JOB_CENTRE_ID).expect("id");
    KioskMac::new(KioskMacAlgorithm::Sm4, &clear_keys::acquirer_tak(&id)).expect("key")
}

/// A kiosk relay agent holding `card`, keyed with `key`.
fn kiosk(card: VirtualCard, key: KioskMac) -> (SocketAddr, Sessions) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ch = MemoryChannel::new(card);
        let cfg = AgentConfig {
            terminal: TERMINAL.into(),
            key,
            limits: RelayLimits::default(),
        };
        let stop = AtomicBool::new(false);
        serve_one_at_a_time(listener, &mut ch, &cfg, &stop, |r| {
            let _ = tx.send(r);
        });
    });
    (addr, rx)
}

/// The kiosk's own session with its card (the cardholder at the kiosk): `f` on the SSSE
/// application.
fn at_the_kiosk<T>(
    addr: SocketAddr,
    f: impl FnOnce(&mut SsseCard<'_, SecureRelayChannel>) -> T,
) -> T {
    let mut ch = SecureRelayChannel::connect(
        addr,
        TERMINAL,
        kiosk_key(),
        RelayLimits::default(),
        Duration::from_secs(5),
    )
    .expect("the kiosk's own session");
    let mut card = SsseCard::open(&mut ch).expect("select SSSE");
    f(&mut card)
}

/// A node's store and operator API with the CMS and the card relay to one kiosk at `kiosk`.
struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    world: DemoWorld,
    api: SocketAddr,
    clerk: String,
    auditor: String,
    card: DemoCard,
    card_id: i64,
}

async fn rig(kiosk: SocketAddr) -> Rig {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store"),
    );
    store.install_audit_mac_key(Arc::new(switch::operator::keys::audit_key_for_tests()));
    switch::operator::provision::ensure_builtin_roles(&*store)
        .await
        .expect("roles");
    let mut world = DemoWorld::new(1).expect("world");
    world.seed(&*store).await.expect("seed");
    let fund = world.cfg.social_security_fund.to_string();
    let clerk = operator_kit::api_key(&*store, &fund, "counter_clerk")
        .await
        .expect("clerk");
    let auditor = operator_kit::api_key(&*store, &fund, "auditor")
        .await
        .expect("auditor");
    let relay = CardRelay::new(
        network_hsm().await,
        &world.keys,
        vec![RelayKiosk {
            terminal: TERMINAL.into(),
            institution: InstitutionId::parse(JOB_CENTRE_ID).expect("id"),
            address: kiosk.to_string(),
        }],
    );
    let parts = bureau::demo_cms(&world).expect("cms");
    let service = CardManagement::new(Arc::clone(&store)).with_issuance(parts.issuance);
    let face = CmsFace::new(service, parts.bureaus, parts.counter_tpk).with_card_relay(relay);
    let (w, _task) = writer::spawn(Arc::clone(&store), writer::WriterConfig::default());
    let state = Arc::new(HttpState {
        store: Arc::clone(&store),
        writer: w,
        metrics: Arc::new(Metrics::default()),
        links: None,
        operator: Arc::new(switch::operator::OperatorContext::for_tests()),
        cms: Some(Arc::new(face)),
        clearing: None,
        cutover: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            switch::http::router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let card = sm4_card(&world);
    let card_id = store
        .card_by_pan(&card.pan)
        .await
        .expect("card")
        .expect("card")
        .card_id
        .0;
    Rig {
        _dir: dir,
        store,
        world,
        api,
        clerk,
        auditor,
        card,
        card_id,
    }
}

fn sm4_card(world: &DemoWorld) -> DemoCard {
    world
        .cards
        .iter()
        .find(|c| c.algorithm == switch::store::IccAlgorithm::Sm4)
        .expect("an SM4 card")
        .clone()
}

/// The SM4 demo card of a world like the rig's (the same cards, the same keys), with its PIN
/// blocked by three wrong PINs.
fn blocked_card() -> VirtualCard {
    let world = DemoWorld::new(1).expect("world");
    let mut card = world.virtual_card(&sm4_card(&world)).expect("card");
    let mut ch = MemoryChannel::new(card);
    {
        let mut ssse = SsseCard::open(&mut ch).expect("select");
        let wrong = ClearPin::new("999999").expect("pin");
        for _ in 0..3 {
            assert!(ssse.verify_pin(&wrong).is_err());
        }
        assert_eq!(ssse.pin_tries_left().expect("tries"), Some(0), "blocked");
    }
    card = ch.into_card();
    card
}

/// An HTTP answer: status and JSON body.
struct Answer {
    status: u16,
    body: serde_json::Value,
}

/// One POST with an API key and a JSON body.
async fn post(api: SocketAddr, key: &str, path: &str, body: &serde_json::Value) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut s = tokio::net::TcpStream::connect(api).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n\
         Authorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let status = String::from_utf8_lossy(&raw[..split])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let body = serde_json::from_slice(&raw[split + 4..]).unwrap_or(serde_json::Value::Null);
    Answer { status, body }
}

/// The card relay's audit entries, oldest first: (action, subject, detail).
async fn relay_audit(store: &SqliteStore) -> Vec<(String, String, String)> {
    store
        .audit_page(0, 1_000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|r| r.entry.action.starts_with("card.relay."))
        .map(|r| (r.entry.action, r.entry.subject, r.entry.detail))
        .collect()
}

fn unblock_body(pin: &str) -> serde_json::Value {
    serde_json::json!({"terminal": TERMINAL, "new_pin": pin, "reason": "PIN blocked at the kiosk"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_unblocks_the_ssse_pin_of_the_card_at_the_kiosk_through_the_hsm() {
    let (addr, sessions) = kiosk(blocked_card(), kiosk_key());
    let r = rig(addr).await;
    let path = format!("/cards/{}/ssse-pin-unblock", r.card_id);

    // Without the permission (an auditor): 403, and the card is not driven.
    let denied = post(r.api, &r.auditor, &path, &unblock_body("246810")).await;
    assert_eq!(denied.status, 403, "{}", denied.body);

    let done = post(r.api, &r.clerk, &path, &unblock_body("246810")).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["pin_unblocked"], true);
    assert_eq!(
        done.body["pin_tries_left"], 3,
        "the try counter back at its maximum"
    );
    sessions
        .recv_timeout(Duration::from_secs(5))
        .expect("a session")
        .expect("a clean session");

    // The cardholder's new PIN verifies at the kiosk; the old one no longer does.
    let new_pin = ClearPin::new("246810").expect("pin");
    at_the_kiosk(addr, |card| {
        card.verify_pin(&new_pin).expect("the new PIN verifies");
    });
    let _ = sessions.recv_timeout(Duration::from_secs(5));
    let old = ClearPin::new(DEMO_PIN).expect("pin");
    at_the_kiosk(addr, |card| assert!(card.verify_pin(&old).is_err()));

    let audit = relay_audit(&r.store).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let (action, subject, detail) = &audit[0];
    assert_eq!(action, "card.relay.pin_unblock");
    assert_eq!(subject, &format!("card:{}", r.card_id));
    assert!(detail.contains("\"outcome\":\"done\""), "{detail}");
    assert!(detail.contains(TERMINAL) && detail.contains("PIN blocked at the kiosk"));
    assert!(
        !detail.contains("246810"),
        "no PIN in the audit log: {detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_rewrites_an_ef06_record_and_reads_it_back() {
    let world = DemoWorld::new(1).expect("world");
    let card = world.virtual_card(&sm4_card(&world)).expect("card");
    let (addr, _sessions) = kiosk(card, kiosk_key());
    let r = rig(addr).await;
    let path = format!("/cards/{}/records/ef06", r.card_id);
    let body = serde_json::json!({"terminal": TERMINAL, "record": "0A", "value_hex": "32",
                                  "reason": "sex recorded wrongly"});
    let done = post(r.api, &r.clerk, &path, &body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["record"], "0A");
    let value = at_the_kiosk(addr, |card| card.read_ef06_record(SEX).expect("read"));
    assert_eq!(value, b"2", "the record as written");

    // Not an EF06 record, or a kiosk that is not configured: 400, nothing driven.
    let bad = serde_json::json!({"terminal": TERMINAL, "record": "01", "value_hex": "32",
                                 "reason": "r"});
    assert_eq!(post(r.api, &r.clerk, &path, &bad).await.status, 400);
    let unknown = serde_json::json!({"terminal": "JC999999", "record": "0A", "value_hex": "31",
                                     "reason": "r"});
    let refused = post(r.api, &r.clerk, &path, &unknown).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let audit = relay_audit(&r.store).await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(
        audit[0].2.contains("\"outcome\":\"done\"") && audit[0].2.contains("\"record\":\"0A\"")
    );
    assert!(audit[1].2.contains("no kiosk"), "{:?}", audit[1]);
    let _ = r.world;
    let _ = r.card;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_whose_line_protection_key_differs_refuses_the_switchs_mac_with_6988() {
    // The card was personalised with another line-protection key than the switch's province
    // key disperses: the HSM's MAC does not verify on the card.
    let world = DemoWorld::new(1).expect("world");
    let demo = sm4_card(&world);
    let mut file = card_apdu::perso::PersoFile::from_toml(include_str!(
        "../../card-apdu/testdata/demo-card.toml"
    ))
    .expect("perso");
    file.ssse.card_identification_code = demo.card_identification_code.clone();
    file.ssse.social_security_number = demo.citizen_id.clone();
    file.pboc.pan = demo.pan.expose_digits().to_owned();
    let mut profile = card_apdu::perso::CardProfile::from_perso(&file).expect("profile");
    profile.ssse.k_line_protection =
        CardKey::from_hex("0F0E0D0C0B0A09080706050403020100").expect("key");
    let (addr, _sessions) = kiosk(VirtualCard::new(profile), kiosk_key());
    let r = rig(addr).await;
    let path = format!("/cards/{}/records/ef06", r.card_id);
    let body = serde_json::json!({"terminal": TERMINAL, "record": "0A", "value_hex": "32",
                                  "reason": "correction"});
    let refused = post(r.api, &r.clerk, &path, &body).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(
        refused.body["type"], "/problems/card-refused",
        "{}",
        refused.body
    );
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("6988"),
        "{}",
        refused.body
    );
    let value = at_the_kiosk(addr, |card| card.read_ef06_record(SEX).expect("read"));
    assert_eq!(value, b"1", "unchanged");
    let audit = relay_audit(&r.store).await;
    assert_eq!(audit.len(), 1);
    assert!(audit[0].2.contains("6988"), "{:?}", audit[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_without_the_job_centres_key_is_not_driven() {
    let world = DemoWorld::new(1).expect("world");
    let card = world.virtual_card(&sm4_card(&world)).expect("card");
    let impostor = KioskMac::new(KioskMacAlgorithm::Sm4, &[0x5A; 16]).expect("key");
    let (addr, sessions) = kiosk(card, impostor);
    let r = rig(addr).await;
    let path = format!("/cards/{}/ssse-pin-unblock", r.card_id);
    let refused = post(r.api, &r.clerk, &path, &unblock_body("246810")).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("not authenticated"),
        "{}",
        refused.body
    );
    let agent_side = sessions
        .recv_timeout(Duration::from_secs(5))
        .expect("the kiosk saw the attempt");
    assert!(agent_side.is_err(), "the kiosk refused the switch's AUTH");
    let audit = relay_audit(&r.store).await;
    assert_eq!(audit.len(), 1);
    assert!(audit[0].2.contains("not authenticated"), "{:?}", audit[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_reported_lost_is_refused_before_any_kiosk_is_dialled() {
    let (addr, sessions) = kiosk(blocked_card(), kiosk_key());
    let r = rig(addr).await;
    r.store
        .set_card_status(
            switch::store::CardId(r.card_id),
            CardStatus::Lost,
            Some("reported lost"),
            1,
        )
        .await
        .expect("status");
    let path = format!("/cards/{}/ssse-pin-unblock", r.card_id);
    let refused = post(r.api, &r.clerk, &path, &unblock_body("246810")).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("reported lost"),
        "{}",
        refused.body
    );
    assert!(
        sessions.recv_timeout(Duration::from_millis(300)).is_err(),
        "no relay session was opened"
    );
    let still = at_the_kiosk(addr, |card| card.pin_tries_left().expect("tries"));
    assert_eq!(still, Some(0), "the PIN is still blocked");
    let audit = relay_audit(&r.store).await;
    assert_eq!(audit.len(), 1);
    assert!(audit[0].2.contains("reported lost"), "{:?}", audit[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_card_in_the_reader_is_not_unblocked() {
    // The kiosk holds another card of the world; the operator asks for the SM4 one.
    let world = DemoWorld::new(1).expect("world");
    let asked = sm4_card(&world);
    let other = world
        .cards
        .iter()
        .find(|c| c.pan != asked.pan)
        .expect("another card")
        .clone();
    let (addr, _sessions) = kiosk(world.virtual_card(&other).expect("card"), kiosk_key());
    let r = rig(addr).await;
    let path = format!("/cards/{}/ssse-pin-unblock", r.card_id);
    let refused = post(r.api, &r.clerk, &path, &unblock_body("246810")).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(
        refused.body["type"], "/problems/not-the-card",
        "{}",
        refused.body
    );
}
