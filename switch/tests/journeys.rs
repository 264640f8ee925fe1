//! Issue 29's money journeys through the acquirer port, on both store backends (SQLite and
//! PostgreSQL), each followed to its two other ends: the acquirer's 0500 totals for the day and
//! the clearing ledger the day's settlement events build.
//!
//! One day at one hospital kiosk: a bank purchase of 100.00 and its refunds up to the purchase
//! (a refund beyond it is declined `13`), a pre-authorization completed below its hold, one
//! completed above it (the hold is captured, not the amount asked), one that expires unused and
//! whose late completion moves nothing, and the advice (0120) of a pre-authorization the kiosk
//! stood in for: answered 0130, it places its hold once however often it is sent again (to the
//! same node, and to another node on the same store, which only the store's duplicate check
//! stops), and it is completed like a 0100. Its first transmission meets a store that cannot
//! record holds: answered `96`, not acknowledged, so the kiosk sends it again and the resend is
//! decided afresh; its completion (0220, an advice too) likewise meets a store that cannot
//! record the capture first. Followed as it goes: the ledger, fed the outbox so far, shows each
//! hold pending while it is pending and posted once completed. Then:
//! - the 0500 with the figures ssc87.md's rules give is in balance (purchases and completions
//!   are debits, refunds credits, holds, their advices and their releases nothing);
//! - the outbox, applied to a clearing ledger, leaves no hold pending: three posted, one voided;
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

/// A clearing ledger fed the outbox as the day goes: what clearing shows at each moment.
struct LedgerFollower {
    source: SqlOutboxSource,
    ledger: Ledger,
    pool: sqlx::SqlitePool,
    applied: i64,
    _dir: tempfile::TempDir,
}

impl LedgerFollower {
    async fn new(outbox: &Outbox) -> Self {
        let source = match outbox {
            Outbox::Sqlite(path) => SqlOutboxSource::sqlite(path).await.unwrap(),
            Outbox::Postgres { url, schema } => {
                SqlOutboxSource::postgres(url, Some(schema)).await.unwrap()
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::new(Db::connect(&LedgerDbConfig::sqlite(&path)).await.unwrap());
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        LedgerFollower {
            source,
            ledger,
            pool,
            applied: 0,
            _dir: dir,
        }
    }

    /// Applies the settlement events published since the last call.
    async fn catch_up(&mut self) {
        let rows = self.source.rows_after(self.applied, 10_000).await.unwrap();
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
        if let Some(last) = rows.last() {
            self.ledger
                .apply_batch("journeys", &deliveries)
                .await
                .unwrap();
            self.applied = last.outbox_seq;
        }
        assert!(
            self.ledger.dead_letters(10).await.unwrap().is_empty(),
            "nothing dead-lettered"
        );
    }

    /// The ledger's holds: (state, fen), sorted.
    async fn holds(&mut self) -> Vec<(String, i64)> {
        self.catch_up().await;
        let mut holds: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, amount_fen FROM pending_hold")
                .fetch_all(&self.pool)
                .await
                .unwrap();
        holds.sort();
        holds
    }

    /// What the ledger has posted, fen.
    async fn posted_fen(&mut self) -> i64 {
        self.catch_up().await;
        self.ledger.posted_total_fen().await.unwrap()
    }
}

fn holds(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(s, f)| ((*s).to_owned(), *f)).collect()
}

/// What the switch's store is made to refuse: a hold placed, or a hold captured, of some fen.
#[derive(Clone, Copy)]
enum Refuse {
    Hold(i64),
    Capture(i64),
}

/// Makes the switch's store refuse (`on`) or accept again what `what` names: a trigger on its
/// `hold` table, as a full disk or a broken connection would refuse the decision's transaction.
async fn refuse(outbox: &Outbox, what: Refuse, on: bool) {
    let (event, when) = match what {
        Refuse::Hold(fen) => ("INSERT", format!("NEW.amount_fen = {fen}")),
        Refuse::Capture(fen) => ("UPDATE", format!("NEW.captured_fen = {fen}")),
    };
    match outbox {
        Outbox::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let sql = if on {
                format!(
                    "CREATE TRIGGER refused BEFORE {event} ON hold WHEN {when} \
                     BEGIN SELECT RAISE(ABORT, 'injected: refused'); END"
                )
            } else {
                "DROP TRIGGER refused".to_owned()
            };
            sqlx::query(&sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Outbox::Postgres { url, schema } => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let statements = if on {
                vec![
                    format!(
                        "CREATE FUNCTION {schema}.refused() RETURNS trigger LANGUAGE plpgsql \
                         AS $$ BEGIN RAISE EXCEPTION 'injected: refused'; END $$"
                    ),
                    format!(
                        "CREATE TRIGGER refused BEFORE {event} ON {schema}.hold FOR EACH ROW \
                         WHEN ({when}) EXECUTE FUNCTION {schema}.refused()"
                    ),
                ]
            } else {
                vec![
                    format!("DROP TRIGGER refused ON {schema}.hold"),
                    format!("DROP FUNCTION {schema}.refused()"),
                ]
            };
            for sql in statements {
                sqlx::query(&sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }
}

/// The answer's MTI and field 39.
fn mti_and_code(answer: &[u8]) -> (String, String) {
    let m = decode(answer);
    (
        m.mti().as_str().to_owned(),
        m.get_str(39).unwrap().into_owned(),
    )
}

/// The day, through the acquirer port; returns nothing, asserts each answer and balance.
async fn the_day<S: Store>(
    store: &Arc<S>,
    world: &DemoWorld,
    banks: &Arc<ApprovingBank>,
    pipeline: &Pipeline<S>,
    conn: &mut Conn,
    outbox: &Outbox,
    clearing: &mut LedgerFollower,
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
        code(
            conn,
            &k.refund_of(&purchase.request, 900_001, 6_000).unwrap()
        )
        .await,
        "00"
    );
    assert_eq!(
        code(
            conn,
            &k.refund_of(&purchase.request, 900_002, 6_000).unwrap()
        )
        .await,
        "13"
    );
    assert_eq!(
        code(
            conn,
            &k.refund_of(&purchase.request, 900_003, 4_000).unwrap()
        )
        .await,
        "00"
    );
    assert_eq!(
        code(conn, &k.refund_of(&purchase.request, 900_004, 1).unwrap()).await,
        "13",
        "exhausted"
    );

    let (balance0, held0) = personal_account(&**store, &card).await;
    assert_eq!(held0, 0);
    // Below the hold: 30.00 of 50.00 captured, 20.00 back.
    let posted0 = clearing.posted_fen().await;
    let pre = k.preauthorization(&card, &mut reader, 5_000).unwrap();
    assert_eq!(code(conn, &pre.request).await, "00");
    assert_eq!(personal_account(&**store, &card).await, (balance0, 5_000));
    // Mid-day, before its completion: clearing shows the hold pending and has posted nothing.
    assert_eq!(clearing.holds().await, holds(&[("pending", 5_000)]));
    assert_eq!(clearing.posted_fen().await, posted0, "a hold posts nothing");
    let done = k.completion_of(&pre.request, 3_000).unwrap();
    assert_eq!(code(conn, &done).await, "00");
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 3_000, 0)
    );
    assert_eq!(clearing.holds().await, holds(&[("posted", 5_000)]));
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

    // The advice (0120) of a pre-authorization of 35.00 the kiosk stood in for. Its first
    // transmission meets a store that cannot record its hold: not acknowledged (96), nothing
    // held, so the kiosk keeps it and sends it again.
    let advice = k.preauthorization_advice(&card, 3_500).unwrap();
    refuse(outbox, Refuse::Hold(3_500), true).await;
    let answer = exchange(conn, &advice).await;
    let answer = decode(&answer);
    assert_eq!(
        (answer.mti().as_str(), answer.get_str(39).unwrap().as_ref()),
        ("0130", "96"),
        "an advice the switch could not record is not acknowledged"
    );
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 7_000, 0)
    );
    refuse(outbox, Refuse::Hold(3_500), false).await;
    // Sent again once the store works: decided afresh, acknowledged 0130 00, held.
    let answer = exchange(conn, &advice).await;
    let answer = decode(&answer);
    assert_eq!(
        (answer.mti().as_str(), answer.get_str(39).unwrap().as_ref()),
        ("0130", "00")
    );
    assert!(answer.has(38), "the switch's authorization code");
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 7_000, 3_500)
    );
    // Sent again (its acknowledgement lost): 00 again, still one hold of 35.00.
    let again = exchange(conn, &advice).await;
    assert_eq!(
        (
            decode(&again).mti().as_str().to_owned(),
            decode(&again).get_str(39).unwrap().into_owned()
        ),
        ("0130".to_owned(), "00".to_owned())
    );
    // And to another node on the same store, which has never seen it: the store's duplicate
    // check stops it.
    let (_other, other_addr, _other_stop) =
        start_node_with_banks(store, world, banks.clone()).await;
    let mut other = connect(other_addr).await;
    assert_eq!(code(&mut other, &advice).await, "00");
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 7_000, 3_500),
        "one hold however often the advice comes"
    );
    assert_eq!(
        clearing.holds().await,
        holds(&[
            ("pending", 3_500),
            ("posted", 4_000),
            ("posted", 5_000),
            ("voided", 2_500)
        ]),
        "clearing has one pending hold of the advice"
    );
    let posted = clearing.posted_fen().await;
    // Completed like a 0100. The completion is an advice too: while the store cannot record
    // the capture it is not acknowledged (96) and nothing moves; sent again, the 35.00 held is
    // paid, once.
    let done = k.completion_of(&advice, 3_500).unwrap();
    refuse(outbox, Refuse::Capture(3_500), true).await;
    assert_eq!(
        mti_and_code(&exchange(conn, &done).await),
        ("0230".to_owned(), "96".to_owned()),
        "a completion the switch could not record is not acknowledged"
    );
    assert_eq!(
        personal_account(&**store, &card).await,
        (balance0 - 7_000, 3_500)
    );
    refuse(outbox, Refuse::Capture(3_500), false).await;
    for _ in 0..2 {
        assert_eq!(
            mti_and_code(&exchange(conn, &done).await),
            ("0230".to_owned(), "00".to_owned())
        );
        assert_eq!(
            personal_account(&**store, &card).await,
            (balance0 - 10_500, 0)
        );
    }
    assert!(clearing.posted_fen().await > posted, "the completion posts");

    // The acquirer's day: credits 2 refunds (100.00); debits the purchase and three completions
    // (100.00 + 30.00 + 40.00 + 35.00); no reversals; holds, the advice and the release count
    // nowhere.
    let ours = [(2, 10_000), (0, 0), (4, 20_500), (0, 0)];
    let a = exchange(conn, &reconciliation(&k, &h.id, 901, ours)).await;
    let a = decode(&a);
    let figures: Vec<u64> = [74u16, 75, 76, 77, 86, 87, 88, 89]
        .iter()
        .map(|f| a.get_u64(*f).unwrap())
        .collect();
    assert_eq!(
        figures,
        [2, 0, 4, 0, 10_000, 0, 20_500, 0],
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

/// The day's end in clearing: every outbox event applied; the holds and the positions.
async fn the_ledger(mut clearing: LedgerFollower) {
    assert!(
        clearing.posted_fen().await > 0,
        "the day published settlement events"
    );
    assert_eq!(
        clearing.ledger.positions().await.unwrap().sum_fen(),
        0,
        "positions sum to zero"
    );
    assert_eq!(
        clearing.holds().await,
        holds(&[
            ("posted", 3_500),
            ("posted", 4_000),
            ("posted", 5_000),
            ("voided", 2_500)
        ]),
        "no hold left pending"
    );
    clearing.pool.close().await;
    clearing.ledger.db().close().await;
}

async fn journeys<S: Store>(store: Arc<S>, world: DemoWorld, outbox: Outbox) {
    let banks = Arc::new(ApprovingBank::of(&world));
    let (pipeline, addr, _stop) = start_node_with_banks(&store, &world, banks.clone()).await;
    let mut conn = connect(addr).await;
    let mut clearing = LedgerFollower::new(&outbox).await;
    the_day(
        &store,
        &world,
        &banks,
        &pipeline,
        &mut conn,
        &outbox,
        &mut clearing,
    )
    .await;
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
    the_ledger(clearing).await;
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
