//! A switch's HTTP face on a real socket over a seeded SQLite store, and a bare HTTP/1.1
//! client that shows exactly what goes over the wire (status, headers, body). Shared by
//! `tests/http.rs` (what the endpoints do) and `tests/openapi.rs` (that they do what the OpenAPI
//! document says).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use hsm_sim::pin::PinBlockFormat;
use switch::clearing_link::SettlementSource;
use switch::cms::model::{ImportJob, JobState, RowError};
use switch::cms::{BinRange, CardManagement, CmsStore};
use switch::http::{self, HttpState};
use switch::metrics::Metrics;
use switch::operator::routes::cms::CmsFace;
use switch::operator::scope::Bureau;
use switch::operator::token::hash_presented;
use switch::operator::OperatorContext;
use switch::sim::bureau;
use switch::sim::operator_kit;
use switch::sim::settlement::InProcessSettlement;
use switch::sim::testkit::{self, Fixture};
use switch::sim::world::DemoWorld;
use switch::store::operator::ApiKeyRecord;
use switch::store::writer;
use switch::store::OperatorStore;
use switch::store::{now_us, DataKeyPanProtector, Decision, SqliteConfig, SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running HTTP face.
pub struct Node {
    /// Its data directory (`switch.db`).
    pub dir: tempfile::TempDir,
    /// The store behind it.
    pub store: Arc<SqliteStore>,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The seeded network.
    pub fx: Fixture,
    /// The decision writer's task (ends when the writer stops).
    pub writer_task: tokio::task::JoinHandle<()>,
    /// The card management system behind the card routes.
    pub cms: Arc<CmsFace<SqliteStore>>,
    /// The demo world whose HSM holds the CMS's keys (and the counters' TPK).
    pub world: DemoWorld,
    /// An application still `applied` (region 410102, `fx.bank`).
    pub application: i64,
    /// A card the CMS issued (personalised, `fx.bank`).
    pub cms_card: i64,
    /// A closed personalisation file of the bureau.
    pub perso_file: String,
    /// The settlement ledger behind the `/clearing/...` routes ([`settlement_ledger`]).
    pub settlement: clearing::ledger::Ledger,
    /// The same HTTP face without a settlement source (its `/clearing/...` routes answer 503).
    pub addr_without_clearing: std::net::SocketAddr,
    /// The counters behind both servers' `/metrics` (and `/saf`'s spool count).
    pub metrics: Arc<Metrics>,
    /// Where [`KIOSK`]'s relay agent listens once [`serve_kiosk`] gives it a card.
    pub kiosk: std::sync::Mutex<Option<std::net::TcpListener>>,
}

/// The bank of `testkit` (and of the sample settlement events).
pub const SAMPLE_BANK: &str = schemas::events::sample::ids::BANK;

/// One sample settlement event as the bus delivers it.
fn delivery(offset: i64, event: &schemas::events::SettlementEvent) -> clearing::bus::Delivery {
    clearing::bus::Delivery {
        topic: "ssc.settlement.v1".into(),
        partition: 0,
        offset,
        payload: event.to_json().expect("event JSON").into_bytes(),
    }
}

/// A settlement ledger under `dir`: window 1 closed with a purchase and a bill split of
/// `testkit`'s bank and hospital and a purchase of [`operator_kit::OTHER_BANK`]'s card;
/// window 2 open with one more purchase of `testkit`'s bank.
pub async fn settlement_ledger(dir: &std::path::Path) -> clearing::ledger::Ledger {
    use schemas::events::sample;
    use schemas::events::EventType;
    let db = clearing::db::Db::connect(&clearing::db::LedgerDbConfig::sqlite(
        dir.join("clearing.db"),
    ))
    .await
    .expect("ledger");
    let ledger = clearing::ledger::Ledger::new(db);
    let hospital = sample::ids::HOSPITAL;
    let mut other = sample::event(EventType::Purchase, hospital, 3);
    let other_bank = testkit::inst(operator_kit::OTHER_BANK);
    other.legs[0].debit.institution = other_bank.clone();
    other.institutions.issuer = Some(other_bank);
    ledger
        .apply_batch(
            "fixture",
            &[
                delivery(0, &sample::event(EventType::Purchase, hospital, 1)),
                delivery(1, &sample::event(EventType::MedicalBillSplit, hospital, 2)),
                delivery(2, &other),
            ],
        )
        .await
        .expect("events");
    clearing::window::close_window(&ledger)
        .await
        .expect("close window 1");
    ledger
        .apply_batch(
            "fixture",
            &[delivery(
                3,
                &sample::event(EventType::Purchase, hospital, 4),
            )],
        )
        .await
        .expect("event of window 2");
    ledger
}

/// The social-security bureau of the region 4101 (`testkit`'s social-security fund).
pub const BUREAU: &str = schemas::events::sample::ids::SOCIAL_SECURITY_FUND;
/// The GB/T 2260 prefix of [`BUREAU`]'s region.
pub const BUREAU_REGION: &str = "4101";
/// An API key of the switch's institution with the role `issuance_operator`.
pub const ISSUER_KEY: &str = "test-issuer-key-7c2e91";
/// An import job the node holds (done; one row refused).
pub const EXAMPLE_JOB: &str = "0190f5a0-0000-7000-8000-000000000001";
/// The CSV header of application batches.
pub const BATCH_HEADER: &str = "citizen_id,name,insurance_scheme,region_code,bank_id\n";

/// A valid GB 11643-1999 number for sequence `n` (born 1990-03-07 in 410102).
pub fn citizen(n: u32) -> String {
    let body = format!("41010219900307{:03}", n % 1000);
    let mut b = [0u8; 17];
    b.copy_from_slice(body.as_bytes());
    format!("{body}{}", switch::cms::citizen_id::check_character(&b))
}

/// The fixtures' actor of direct service calls.
pub fn fixture_actor() -> switch::cms::Actor {
    switch::cms::Actor {
        operator: "fixture".into(),
        institution: testkit::inst(BUREAU),
        source: "fixture".into(),
        reason: "test fixture".into(),
    }
}

/// Imports application `n` of `bank` (batch `fx-n`) through the service; returns its id.
pub async fn application(cms: &CmsFace<SqliteStore>, n: u32, bank: &str) -> i64 {
    let csv = format!("{BATCH_HEADER}{},李四,居民,410102,{bank}\n", citizen(n));
    let batch = format!("fx-{n}");
    let job = cms
        .service
        .import_applications(&fixture_actor(), &batch, csv.as_bytes(), &|_| {})
        .await
        .expect("import");
    assert_eq!(job.rows_created, 1, "{:?}", job.row_errors);
    cms.service
        .application_in_batch(&batch, &citizen(n))
        .await
        .expect("application")
        .application_id
        .0
}

/// The PIN block of PIN 123456 from the counter's PIN pad (ISO 9564-1 format 1, hex).
pub fn counter_pin_block(world: &DemoWorld) -> String {
    bureau::counter_pin(
        world,
        switch::sim::world::DEMO_PIN,
        PinBlockFormat::Iso1,
        "",
    )
    .expect("pin block")
    .block
    .to_hex()
}

/// A card of application `n` issued through the service and moved through `ops`; returns its
/// id.
pub async fn cms_card(n_: &Node, n: u32, ops: &[switch::cms::CardOperation]) -> i64 {
    let app = application(&n_.cms, n, n_.fx.bank.as_str()).await;
    let pin = bureau::counter_pin(
        &n_.world,
        switch::sim::world::DEMO_PIN,
        PinBlockFormat::Iso1,
        "",
    )
    .expect("pin");
    let mut batch = n_.cms.service.open_perso_batch().await.expect("batch");
    let card = n_
        .cms
        .service
        .personalise(
            &fixture_actor(),
            &mut batch,
            switch::cms::ApplicationId(app),
            &pin,
        )
        .await
        .expect("personalise");
    for op in ops {
        n_.cms
            .service
            .apply(&fixture_actor(), card.card_id, *op, None)
            .await
            .expect("operation");
    }
    card.card_id.0
}

/// A cut-over of a network without bank links (`POST /cutover` answers, reconciling nobody).
fn no_bank_cutover(store: &Arc<SqliteStore>) -> Arc<dyn switch::issuer::cutover::RunCutover> {
    use switch::issuer::cutover::{Cutover, CutoverConfig};
    let config = CutoverConfig::new(testkit::inst(operator_kit::SWITCH));
    let banks: Vec<schemas::domain::InstitutionId> = Vec::new();
    let gateway = Arc::new(switch::issuer::gateway::NoBanks);
    Arc::new(Cutover::new(Arc::clone(store), gateway, banks, config).expect("cut-over"))
}

/// A node whose writer runs as the switch runs it for SQLite.
pub async fn node() -> Node {
    node_with(writer::config_for::<SqliteStore>()).await
}

/// A node whose writer runs with `config` (a writer on the test's runtime can be aborted).
pub async fn node_with(config: writer::WriterConfig) -> Node {
    node_built(config, None).await
}

/// A node whose `/clearing/...` routes ask `source` (clearing's settlement API over mutual
/// TLS, say) instead of the in-process settlement on its own ledger.
pub async fn node_with_settlement(source: Arc<dyn SettlementSource>) -> Node {
    node_built(writer::config_for::<SqliteStore>(), Some(source)).await
}

async fn node_built(
    config: writer::WriterConfig,
    source: Option<Arc<dyn SettlementSource>>,
) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let settlement = settlement_ledger(dir.path()).await;
    let source = source.unwrap_or_else(|| Arc::new(InProcessSettlement::new(settlement.clone())));
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("open store"),
    );
    let fx = testkit::seed(&*store, 100_000, 1_000_000_000)
        .await
        .expect("seed");
    store.install_audit_mac_key(Arc::new(switch::operator::keys::audit_key_for_tests()));
    operator_kit::seed_tenants(&*store).await.expect("tenants");
    store
        .put_api_key(
            &ApiKeyRecord {
                key_hash: hash_presented(READER_KEY),
                key_id: "test-reader".into(),
                institution: testkit::inst(operator_kit::SWITCH),
                role_id: "auditor".into(),
                name: "the tests' reader".into(),
                created_at_us: now_us(),
                revoked_at_us: None,
                last_used_at_us: None,
                counter_id: None,
            },
            None,
        )
        .await
        .expect("reader key");
    store
        .put_api_key(
            &ApiKeyRecord {
                key_hash: hash_presented(ISSUER_KEY),
                key_id: "test-issuer".into(),
                institution: testkit::inst(operator_kit::SWITCH),
                role_id: "issuance_operator".into(),
                name: "the tests' issuance operator".into(),
                created_at_us: now_us(),
                revoked_at_us: None,
                last_used_at_us: None,
                counter_id: None,
            },
            None,
        )
        .await
        .expect("issuer key");
    // The card management system: the demo world's HSM and keys, `testkit`'s bank's range.
    let world = DemoWorld::new(1).expect("world");
    let mut parts = bureau::demo_cms(&world).expect("cms");
    parts.issuance.ranges = vec![BinRange::new("62270099", fx.bank.clone(), 16).expect("range")];
    let mut service = CardManagement::new(store.clone()).with_issuance(parts.issuance);
    if let Some(p) = parts.photos {
        service = service.with_photos(p);
    }
    let kiosk = std::net::TcpListener::bind("127.0.0.1:0").expect("kiosk");
    let cms = Arc::new(
        CmsFace::new(
            service,
            vec![Bureau {
                institution: testkit::inst(BUREAU),
                region_prefix: BUREAU_REGION.into(),
            }],
            parts.counter_tpk,
        )
        .with_card_relay(card_relay(&world, &kiosk)),
    );
    let issued = application(&cms, 900, fx.bank.as_str()).await;
    let applied = application(&cms, 901, fx.bank.as_str()).await;
    store
        .put_import_job(&ImportJob {
            job_id: uuid::Uuid::parse_str(EXAMPLE_JOB).expect("uuid"),
            batch_id: "fx-example".into(),
            state: JobState::Done,
            rows_total: 2,
            rows_done: 2,
            rows_created: 1,
            rows_duplicate: 0,
            rows_rejected: 1,
            row_errors: vec![RowError {
                row: 2,
                field: "citizen_id".into(),
                reason: "check character is wrong".into(),
            }],
            started_at_us: now_us(),
            finished_at_us: Some(now_us()),
            started_by: None,
        })
        .await
        .expect("job");
    let (writer, writer_task) = writer::spawn(store.clone(), config);
    let operator = Arc::new(OperatorContext::for_tests());
    let metrics = Arc::new(Metrics::default());
    let state = |clearing| {
        Arc::new(HttpState {
            store: store.clone(),
            writer: writer.clone(),
            metrics: Arc::clone(&metrics),
            links: None,
            operator: Arc::clone(&operator),
            cms: Some(Arc::clone(&cms)),
            cutover: Some(no_bank_cutover(&store)),
            clearing,
        })
    };
    let addr = serve(state(Some(source))).await;
    let addr_without_clearing = serve(state(None)).await;
    // A card issued through the API and its closed personalisation file.
    let auth = format!("Bearer {ISSUER_KEY}");
    let body = serde_json::json!({ "pin_block": counter_pin_block(&world) }).to_string();
    let r = request_with(
        addr,
        "POST",
        &format!("/applications/{issued}/issue"),
        &[("Authorization", &auth)],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let card: serde_json::Value = serde_json::from_str(&r.body).expect("card");
    let r = request_with(
        addr,
        "POST",
        "/perso-files",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let file: serde_json::Value = serde_json::from_str(&r.body).expect("file");
    Node {
        kiosk: std::sync::Mutex::new(Some(kiosk)),
        dir,
        store,
        addr,
        fx,
        writer_task,
        cms,
        world,
        application: applied,
        cms_card: card["card_id"].as_i64().expect("card id"),
        perso_file: file["file_id"].as_str().expect("file id").to_owned(),
        settlement,
        addr_without_clearing,
        metrics,
    }
}

/// The job centre's kiosk of the card relay routes, holding [`Node::cms_card`].
pub const KIOSK: &str = "JC000042";
/// A kiosk whose address nobody listens on (502).
pub const KIOSK_GONE: &str = "JC000043";
/// A kiosk that accepts the connection and never answers (504).
pub const KIOSK_SILENT: &str = "JC000044";
/// A kiosk of an institution without a TAK: the relay cannot be keyed (503).
pub const KIOSK_UNKEYED: &str = "JC000045";

/// The card relay of the node: [`KIOSK`] at `kiosk`, the failing kiosks, short bounds.
fn card_relay(
    world: &DemoWorld,
    kiosk: &std::net::TcpListener,
) -> switch::cms::card_relay::CardRelay {
    use switch::cms::card_relay::{CardRelay, RelayKiosk};
    let job_centre = testkit::inst(switch::sim::world::JOB_CENTRE_ID);
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone_addr = gone.local_addr().expect("addr");
    drop(gone);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    std::thread::spawn(move || {
        // Holds every connection open, answering nothing.
        let held: Vec<_> = silent.incoming().collect();
        drop(held);
    });
    let address = kiosk.local_addr().expect("addr").to_string();
    let kiosk = |terminal: &str, institution: &schemas::domain::InstitutionId, address: String| {
        RelayKiosk {
            terminal: terminal.into(),
            institution: institution.clone(),
            address,
        }
    };
    CardRelay::new(
        Arc::clone(&world.hsm) as Arc<dyn hsm_sim::Hsm>,
        &world.keys,
        vec![
            kiosk(KIOSK, &job_centre, address),
            kiosk(KIOSK_GONE, &job_centre, gone_addr.to_string()),
            kiosk(KIOSK_SILENT, &job_centre, silent_addr.to_string()),
            kiosk(
                KIOSK_UNKEYED,
                &testkit::inst("9999999"),
                gone_addr.to_string(),
            ),
        ],
    )
    .with_limits(
        card_apdu::channel::secure_relay::RelayLimits::default(),
        std::time::Duration::from_millis(500),
    )
}

/// [`KIOSK`]'s relay agent, holding `card`, keyed with the job centre's TAK (once per node).
pub fn serve_kiosk(n: &Node, card: card_apdu::vcard::VirtualCard) {
    use card_apdu::channel::secure_relay::{serve_one_at_a_time, AgentConfig, RelayLimits};
    use card_apdu::kiosk::identity::{KioskMac, KioskMacAlgorithm};
    let listener = n
        .kiosk
        .lock()
        .expect("kiosk")
        .take()
        .expect("the kiosk is served once");
    let job_centre = testkit::inst(switch::sim::world::JOB_CENTRE_ID);
    let key = KioskMac::new(
        KioskMacAlgorithm::Sm4,
        &switch::sim::world::clear_keys::acquirer_tak(&job_centre),
    )
    .expect("key");
    std::thread::spawn(move || {
        let mut ch = card_apdu::channel::memory::MemoryChannel::new(card);
        let cfg = AgentConfig {
            terminal: KIOSK.into(),
            key,
            limits: RelayLimits::default(),
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        serve_one_at_a_time(listener, &mut ch, &cfg, &stop, |_| {});
    });
}

/// Serves the router of `state` on a loopback port; returns it.
async fn serve(state: Arc<HttpState<SqliteStore>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    addr
}

/// Commits one decision, which must succeed.
pub async fn commit(store: &SqliteStore, d: Decision) {
    let out = store.commit_decisions(vec![d], now_us()).await;
    assert!(out.results.iter().all(Result::is_ok), "{:?}", out.results);
}

/// An HTTP answer as received.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header names (lower case, as hyper sends them) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (the switch sends lengths, never chunks).
    pub body: String,
}

impl Reply {
    /// The `content-type` header, or "" when there is none.
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The API key of the switch's institution with the role `auditor` (read-only, everything),
/// which [`request`] sends.
pub const READER_KEY: &str = "test-reader-key-4a1f0c";

/// One request over HTTP/1.1 on a new connection, as the tests' reader ([`READER_KEY`]).
pub async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> Reply {
    let auth = format!("Bearer {READER_KEY}");
    request_with(addr, method, path, &[("Authorization", &auth)], None).await
}

/// One request with these headers (no credentials unless given) and body.
pub async fn request_with(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    request_bytes(
        addr,
        method,
        path,
        headers,
        body.map(|b| ("application/json", b.as_bytes())),
    )
    .await
}

/// One request with these headers and a body of this content type (a CSV batch, a JPEG).
pub async fn request_bytes(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some((content_type, b)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.map_or(&[][..], |(_, b)| b));
    s.write_all(&out).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// GET: (status, content type, body).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let r = request(addr, "GET", path).await;
    (r.status, r.content_type().to_owned(), r.body)
}

/// A second HTTP face over the node's database: its own store pools, card management face and
/// operator context, so nothing of the first face's memory (another node, or this one after a
/// restart).
pub async fn second_node(n: &Node) -> std::net::SocketAddr {
    second_node_with(n, Vec::new()).await
}

/// [`second_node`] whose card management face has `counters`, each with its own TPK.
pub async fn second_node_with(
    n: &Node,
    counters: Vec<switch::operator::routes::cms::CounterTerminal>,
) -> std::net::SocketAddr {
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(n.dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("open the store again"),
    );
    store.install_audit_mac_key(Arc::new(switch::operator::keys::audit_key_for_tests()));
    let mut parts = bureau::demo_cms(&n.world).expect("cms");
    parts.issuance.ranges = vec![BinRange::new("62270099", n.fx.bank.clone(), 16).expect("range")];
    let service = CardManagement::new(store.clone()).with_issuance(parts.issuance);
    let cms = Arc::new(
        CmsFace::new(
            service,
            vec![Bureau {
                institution: testkit::inst(BUREAU),
                region_prefix: BUREAU_REGION.into(),
            }],
            parts.counter_tpk,
        )
        .with_counters(counters),
    );
    let (writer, _task) = writer::spawn(store.clone(), writer::config_for::<SqliteStore>());
    serve(Arc::new(HttpState {
        store: store.clone(),
        writer,
        metrics: Arc::new(Metrics::default()),
        links: None,
        operator: Arc::new(OperatorContext::for_tests()),
        cms: Some(cms),
        cutover: None,
        clearing: None,
    }))
    .await
}
