//! Issue 24, finding 6 (the answer part): an exact retransmission gets its original answer
//! whole — authorization code (38), balances (54), ARPC (55), bill split (63), MAC — not just
//! field 39, on the node that answered it and on a restarted node, through the acquirer port,
//! on SQLite and on PostgreSQL (127.0.0.1:5432, trust auth, database `test`; override with
//! SWITCH_TEST_PG_URL; these tests FAIL when PostgreSQL is unreachable: run ops/setup.sh).

#[path = "support/acquirer_node.rs"]
mod acquirer_node;
use acquirer_node::*;

use card_apdu::channel::memory::MemoryChannel;
use schemas::domain::TerminalId;
use schemas::iso8583::{self};
use std::future::Future;
use std::sync::Arc;
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld, DEMO_PIN};
use switch::store::{
    DataKeyPanProtector, PostgresConfig, PostgresStore, SqliteConfig, SqliteStore,
};

/// Opens the same database again and again (a restart).
trait Backend {
    type S: switch::cms::CmsStore;
    fn open(&self) -> impl Future<Output = Arc<Self::S>>;
}

struct Sqlite(tempfile::TempDir);

impl Backend for Sqlite {
    type S = SqliteStore;
    async fn open(&self) -> Arc<SqliteStore> {
        Arc::new(
            SqliteStore::open(
                &SqliteConfig::new(self.0.path().join("switch.db")),
                Arc::new(DataKeyPanProtector::for_tests()),
            )
            .await
            .unwrap(),
        )
    }
}

struct Postgres(PostgresConfig);

impl Backend for Postgres {
    type S = PostgresStore;
    async fn open(&self) -> Arc<PostgresStore> {
        match PostgresStore::connect(&self.0, Arc::new(DataKeyPanProtector::for_tests())).await {
            Ok(s) => Arc::new(s),
            Err(e) => panic!(
                "this test needs PostgreSQL at {} (run ops/setup.sh): {e}",
                self.0.url
            ),
        }
    }
}

fn insured(world: &DemoWorld) -> DemoCard {
    world
        .cards
        .iter()
        .find(|c| c.insurance == Some(switch::store::InsuranceCategory::Employee))
        .unwrap()
        .clone()
}

/// The fields of an answer, by number, as text or hex.
fn fields(answer: &[u8]) -> Vec<(u16, String)> {
    let m = iso8583::spec("ssc87").unwrap().decode(answer).unwrap();
    (2..=128u16)
        .filter(|f| m.has(*f))
        .map(|f| (f, hex::encode(m.get_bytes(f).unwrap())))
        .collect()
}

async fn the_original_answer_comes_back_whole<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let mut world = DemoWorld::new(1).unwrap();
    world.seed(&*store).await.unwrap();
    let card = insured(&world);
    let h = &world.hospitals[0];
    let mut k = Kiosk::new(
        TerminalId::parse("HK000001").unwrap(),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    );
    let mut r = MemoryChannel::new(world.virtual_card(&card).unwrap());
    let (addr, stop) = start_node(&store, &world).await;
    let mut conn = connect(addr).await;

    // A bill the personal account pays (no bank leg): 38, 55 (the ARPC) and 63 (the split).
    let bill = k
        .medical_bill(&card, &mut r, 1_000, "MZ-RX1", DEMO_PIN)
        .unwrap()
        .request;
    let original = exchange(&mut conn, &bill).await;
    let answered = fields(&original);
    for f in [38, 39, 55, 63] {
        assert!(answered.iter().any(|(n, _)| *n == f), "field {f} answered");
    }
    assert_eq!(answered.iter().find(|(n, _)| *n == 39).unwrap().1, "3030");
    // A balance inquiry: 54 (the balances) and 55.
    let inquiry = k.personal_balance(&card, &mut r).unwrap().request;
    let balance = exchange(&mut conn, &inquiry).await;
    assert!(fields(&balance).iter().any(|(n, _)| *n == 54));

    // The terminal lost the answers and sends the same requests again: the same answers,
    // field for field (the MAC too).
    assert_eq!(fields(&exchange(&mut conn, &bill).await), answered);
    assert_eq!(
        fields(&exchange(&mut conn, &inquiry).await),
        fields(&balance)
    );

    // A restarted node (nothing in memory) answers them the same.
    stop.send_replace(true);
    drop(conn);
    let store = backend.open().await;
    let (addr, _stop) = start_node(&store, &world).await;
    let mut conn = connect(addr).await;
    assert_eq!(fields(&exchange(&mut conn, &bill).await), answered);
    assert_eq!(
        fields(&exchange(&mut conn, &inquiry).await),
        fields(&balance)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_retransmission_gets_the_whole_original_answer_sqlite() {
    let backend = Sqlite(tempfile::tempdir().unwrap());
    the_original_answer_comes_back_whole(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_retransmission_gets_the_whole_original_answer_postgres() {
    let url = std::env::var("SWITCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "retransmission_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut config = PostgresConfig::new(url.clone());
    config.schema = Some(schema.clone());
    config.connections_max = 4;
    let backend = Postgres(config);
    the_original_answer_comes_back_whole(&backend).await;
    PostgresStore::drop_schema(&url, &schema)
        .await
        .expect("drop test schema");
}
