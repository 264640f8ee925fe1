//! Issue 29's money journeys through the acquirer port, on both store backends (SQLite and
//! PostgreSQL), each followed to its two other ends: the acquirer's 0500 totals for the day and
//! the clearing ledger the day's settlement events build.
//!
//! One day at one hospital kiosk: a bank purchase of 100.00 and its refunds up to the purchase
//! (a refund beyond it is declined `13`), a pre-authorization completed below its hold, one
//! completed above it (the hold is captured, not the amount asked), one that expires unused and
//! whose late completion moves nothing. Then:
//! - the 0500 with the figures ssc87.md's rules give is in balance (purchases and completions
//!   are debits, refunds credits, holds and their releases nothing);
//! - the outbox, applied to a clearing ledger, leaves no hold pending: two posted, one voided;
//!   nothing dead-lettered, and the positions sum to zero;
//! - `switch verify` passes.

#[path = "support/acquirer_node.rs"]
mod acquirer_node;
#[path = "support/approving_bank.rs"]
mod approving_bank;

use acquirer_node::{connect, exchange, start_node_with_banks, Conn};
use approving_bank::ApprovingBank;
use card_apdu::channel::memory::MemoryChannel;
use clearing::bus::{Delivery, EventFamily};
use clearing::db::{Db, LedgerDbConfig};
use clearing::ledger::Ledger;
use clearing::relay::{OutboxSource, SqlOutboxSource};
use schemas::domain::{InstitutionId, TerminalId};
use schemas::iso8583;
use std::sync::Arc;
use std::time::Duration;
use switch::pipeline::Pipeline;
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld};
use switch::store::{
    AccountKind, DataKeyPanProtector, InsuranceCategory, PostgresConfig, PostgresStore,
    SqliteConfig, SqliteStore, Store,
};

/// Where the day's settlement events are read from.
enum Outbox {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

fn pg_url() -> String {
    std::env::var("SWITCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn decode(wire: &[u8]) -> iso8583::Message<'_> {
    iso8583::spec("ssc87").unwrap().decode(wire).unwrap()
}

async fn code(conn: &mut Conn, request: &[u8]) -> String {
    decode(&exchange(conn, request).await)
        .get_str(39)
        .unwrap()
        .into_owned()
}

/// An insured SM4 card: it has a personal account for the holds and a bank for purchases.
fn insured(world: &DemoWorld) -> DemoCard {
    world
        .cards
        .iter()
        .find(|c| c.insurance == Some(InsuranceCategory::Employee))
        .expect("an insured demo card")
        .clone()
}

/// (balance, held) of the card's personal medical-insurance account.
async fn personal_account<S: Store>(store: &S, card: &DemoCard) -> (i64, i64) {
    let stored = store.card_by_pan(&card.pan).await.unwrap().unwrap();
    let a = store
        .accounts_for_card(stored.card_id)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.kind == AccountKind::PersonalMedical)
        .expect("a personal account");
    (a.balance_fen, a.held_fen)
}

/// A refund (0200 `200000`) of the purchase `purchase` for `amount_fen` on STAN `stan`: the
/// purchase's card, RRN and terminal, no PIN, no chip data.
fn refund(k: &Kiosk, purchase: &[u8], stan: u64, amount_fen: u64) -> Vec<u8> {
    let mut m = decode(purchase).to_owned_message();
    m.set_str(3, "200000")
        .unwrap()
        .set_u64(4, amount_fen)
        .unwrap()
        .set_u64(11, stan)
        .unwrap()
        .set_str(7, &switch::wire::network::transmission_now())
        .unwrap();
    m.remove(52).remove(55).remove(23);
    k.seal(&mut m).unwrap()
}

/// The kiosk acquirer's 0500 for today (China Standard Time) with `totals` as (count, fen) of
/// credits, credit reversals, debits, debit reversals.
fn reconciliation(
    k: &Kiosk,
    acquirer: &InstitutionId,
    stan: u64,
    totals: [(u64, u64); 4],
) -> Vec<u8> {
    let spec = iso8583::spec("ssc87").unwrap();
    let today = chrono::Utc::now() + chrono::Duration::hours(8);
    let mut m = spec.message(iso8583::Mti::new("0500").unwrap());
    m.set_str(7, &switch::wire::network::transmission_now())
        .unwrap()
        .set_u64(11, stan)
        .unwrap()
        .set_str(15, &today.format("%m%d").to_string())
        .unwrap()
        .set_str(32, acquirer.as_str())
        .unwrap()
        .set_str(97, "C0000000000000000")
        .unwrap();
    for (i, (count, fen)) in totals.into_iter().enumerate() {
        let i = i as u16;
        m.set_u64(74 + i, count)
            .unwrap()
            .set_u64(86 + i, fen)
            .unwrap();
    }
    k.seal(&mut m).unwrap()
}

/// The day, through the acquirer port; returns nothing, asserts each answer and balance.
async fn the_day<S: Store>(
    store: &Arc<S>,
    world: &DemoWorld,
    pipeline: &Pipeline<S>,
    conn: &mut Conn,
) {
    let card = insured(world);
    let h = &world.hospitals[0];
    let mut k = Kiosk::new(
        TerminalId::parse("HK000001").unwrap(),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    );
    let mut reader = MemoryChannel::new(world.virtual_card(&card).unwrap());

    // A bank purchase and its refunds: 60.00 + 40.00 fit, 60.00 + 60.00 and one fen more do not.
    let purchase = k.bank_purchase(&card, &mut reader, 10_000).unwrap();
    assert_eq!(code(conn, &purchase.request).await, "00");
    assert_eq!(
        code(conn, &refund(&k, &purchase.request, 900_001, 6_000)).await,
        "00"
    );
    assert_eq!(
        code(conn, &refund(&k, &purchase.request, 900_002, 6_000)).await,
        "13"
    );
    assert_eq!(
        code(conn, &refund(&k, &purchase.request, 900_003, 4_000)).await,
        "00"
    );
    assert_eq!(
        code(conn, &refund(&k, &purchase.request, 900_004, 1)).await,
        "13",
        "exhausted"
    );

    let (balance0, held0) = personal_account(&**store, &card).await;
    assert_eq!(held0, 0);
    // Below the hold: 30.00 of 50.00 captured, 20.00 back.
    let pre = k.preauthorization(&card, &mut reader, 5_000).unwrap();
    assert_eq!(code(conn, &pre.request).await, "00");
    assert_eq!(personal_account(&**store, &card).await, (balance0, 5_000));
    let done = k.completion_of(&pre.request, 3_000).unwrap();
    assert_eq!(code(conn, &done).await, "00");
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 3_000, 0)
    );
    // Above the hold: the 40.00 held is captured, not the 60.00 asked.
    let pre = k.preauthorization(&card, &mut reader, 4_000).unwrap();
    assert_eq!(code(conn, &pre.request).await, "00");
    let over = k.completion_of(&pre.request, 6_000).unwrap();
    assert_eq!(code(conn, &over).await, "00", "advices are acknowledged");
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 7_000, 0)
    );
    // A hold nobody completes expires; its late completion moves nothing.
    let pre = k.preauthorization(&card, &mut reader, 2_500).unwrap();
    assert_eq!(code(conn, &pre.request).await, "00");
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 7_000, 2_500)
    );
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(pipeline.release_expired_holds(100).await.unwrap(), 1);
    let late = k.completion_of(&pre.request, 2_500).unwrap();
    assert_eq!(code(conn, &late).await, "00");
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 7_000, 0)
    );

    // The acquirer's day: credits 2 refunds (100.00); debits the purchase and two completions
    // (100.00 + 30.00 + 40.00); no reversals; holds and releases count nowhere.
    let ours = [(2, 10_000), (0, 0), (3, 17_000), (0, 0)];
    let a = exchange(conn, &reconciliation(&k, &h.id, 901, ours)).await;
    let a = decode(&a);
    let figures: Vec<u64> = [74u16, 75, 76, 77, 86, 87, 88, 89]
        .iter()
        .map(|f| a.get_u64(*f).unwrap())
        .collect();
    assert_eq!(
        figures,
        [2, 0, 3, 0, 10_000, 0, 17_000, 0],
        "the switch's totals"
    );
    assert_eq!(
        (
            a.get_str(39).unwrap().into_owned(),
            a.get_str(66).unwrap().into_owned()
        ),
        ("00".to_owned(), "1".to_owned()),
        "in balance"
    );
}

/// Applies every outbox event to a fresh clearing ledger; checks the holds and the positions.
async fn the_ledger(outbox: Outbox) {
    let source = match &outbox {
        Outbox::Sqlite(path) => SqlOutboxSource::sqlite(path).await.unwrap(),
        Outbox::Postgres { url, schema } => {
            SqlOutboxSource::postgres(url, Some(schema)).await.unwrap()
        }
    };
    let rows = source.rows_after(0, 10_000).await.unwrap();
    assert!(!rows.is_empty(), "the day published settlement events");
    let topic = EventFamily::SettlementV1.topic("ssc");
    let deliveries: Vec<Delivery> = rows
        .iter()
        .map(|r| Delivery {
            topic: topic.clone(),
            partition: 0,
            offset: r.outbox_seq,
            payload: r.payload.clone().into_bytes(),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let ledger = Ledger::new(Db::connect(&LedgerDbConfig::sqlite(&path)).await.unwrap());
    ledger.apply_batch("journeys", &deliveries).await.unwrap();
    assert!(
        ledger.dead_letters(10).await.unwrap().is_empty(),
        "nothing dead-lettered"
    );
    assert_eq!(
        ledger.positions().await.unwrap().sum_fen(),
        0,
        "positions sum to zero"
    );

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut holds: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, amount_fen FROM pending_hold ORDER BY created_at_us")
            .fetch_all(&pool)
            .await
            .unwrap();
    holds.sort();
    assert_eq!(
        holds,
        [
            ("posted".to_owned(), 4_000),
            ("posted".to_owned(), 5_000),
            ("voided".to_owned(), 2_500)
        ],
        "no hold left pending"
    );
    ledger.db().close().await;
}

async fn journeys<S: Store>(store: Arc<S>, world: DemoWorld, outbox: Outbox) {
    let banks = Arc::new(ApprovingBank::of(&world));
    let (pipeline, addr, _stop) = start_node_with_banks(&store, &world, banks.clone()).await;
    let mut conn = connect(addr).await;
    the_day(&store, &world, &pipeline, &mut conn).await;
    let legs = banks.seen.lock().unwrap().clone();
    assert_eq!(
        legs,
        [
            ("000000".to_owned(), 10_000),
            ("200000".to_owned(), 6_000),
            ("200000".to_owned(), 4_000)
        ],
        "the bank saw the purchase and the two refunds it allowed, nothing else"
    );
    let report = store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
    the_ledger(outbox).await;
}

fn world() -> DemoWorld {
    let mut world = DemoWorld::new(1).unwrap();
    world.cfg.hold_ttl = Duration::from_millis(1_500);
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_and_preauthorizations_end_to_end_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switch.db");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(&path),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .unwrap(),
    );
    let mut world = world();
    world.seed(&*store).await.unwrap();
    journeys(store, world, Outbox::Sqlite(path)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_and_preauthorizations_end_to_end_on_postgres() {
    let url = pg_url();
    let schema = format!(
        "journeys_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut config = PostgresConfig::new(&url);
    config.schema = Some(schema.clone());
    config.connections_max = 4;
    let store =
        match PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests())).await {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("this test needs PostgreSQL at {url} (run ops/setup.sh): {e}"),
        };
    let mut world = world();
    world.seed(&*store).await.unwrap();
    journeys(
        store,
        world,
        Outbox::Postgres {
            url: url.clone(),
            schema: schema.clone(),
        },
    )
    .await;
    PostgresStore::drop_schema(&url, &schema).await.unwrap();
}
