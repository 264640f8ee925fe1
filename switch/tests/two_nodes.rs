//! Two switch nodes sharing one PostgreSQL (issue 28, "several nodes"): each node has its own
//! store pool, group-commit writer, pipeline (with its own in-memory card cache) and acquirer
//! listener, over one schema. The shared state must hold across them: the same request sent to
//! both is approved at most once (one approved transaction, one debit, and any second `00` is
//! the first answer replayed), and wrong PINs tried on both count together, so the third wrong
//! PIN blocks the card (`75`) whichever node it reaches. Two reversals of one approval sent
//! to both nodes at once give the money back once (one approved reversal, one 0420).
//!
//! PostgreSQL: 127.0.0.1:5432, trust auth, database `test` (override with SWITCH_TEST_PG_URL);
//! the test FAILS when it is unreachable (run ops/setup.sh).

#[path = "support/acquirer_node.rs"]
mod acquirer_node;
use acquirer_node::*;

use card_apdu::channel::memory::MemoryChannel;
use schemas::domain::{Rrn, TerminalId};
use schemas::events::LegKind;
use schemas::iso8583::{self};
use std::sync::Arc;
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld, DEMO_PIN};
use switch::store::{
    AccountId, DataKeyPanProtector, PostgresConfig, PostgresStore, Store, TransactionKind,
};

fn pg_url() -> String {
    std::env::var("SWITCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn open(url: &str, schema: &str) -> Arc<PostgresStore> {
    let mut config = PostgresConfig::new(url);
    config.schema = Some(schema.into());
    config.connections_max = 4;
    match PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests())).await {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("this test needs PostgreSQL at {url} (run ops/setup.sh): {e}"),
    }
}

fn field(answer: &[u8], f: u16) -> String {
    let m = iso8583::spec("ssc87").unwrap().decode(answer).unwrap();
    m.get_str(f).unwrap().into_owned()
}

/// All fields of an answer, as hex.
fn fields(answer: &[u8]) -> Vec<(u16, String)> {
    let m = iso8583::spec("ssc87").unwrap().decode(answer).unwrap();
    (2..=128u16)
        .filter(|f| m.has(*f))
        .map(|f| (f, hex::encode(m.get_bytes(f).unwrap())))
        .collect()
}

fn card_with_pin_offset(world: &DemoWorld, skip: usize) -> DemoCard {
    world
        .cards
        .iter()
        .filter(|c| c.insurance == Some(switch::store::InsuranceCategory::Employee))
        .nth(skip)
        .expect("enough insured demo cards")
        .clone()
}

fn schema_name() -> String {
    format!(
        "two_nodes_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

/// Two nodes, each with its own store pool and acquirer listener, over one fresh schema that
/// node A's store seeded with a small demo world.
struct TwoNodes {
    url: String,
    schema: String,
    world: DemoWorld,
    store_a: Arc<PostgresStore>,
    store_b: Arc<PostgresStore>,
    addrs: (std::net::SocketAddr, std::net::SocketAddr),
    _stops: (
        tokio::sync::watch::Sender<bool>,
        tokio::sync::watch::Sender<bool>,
    ),
}

impl TwoNodes {
    async fn start() -> Self {
        let url = pg_url();
        let schema = schema_name();
        let store_a = open(&url, &schema).await;
        let mut world = DemoWorld::new(2).unwrap();
        world.seed(&*store_a).await.unwrap();
        let store_b = open(&url, &schema).await;
        let (addr_a, stop_a) = start_node(&store_a, &world).await;
        let (addr_b, stop_b) = start_node(&store_b, &world).await;
        Self {
            url,
            schema,
            world,
            store_a,
            store_b,
            addrs: (addr_a, addr_b),
            _stops: (stop_a, stop_b),
        }
    }

    /// A connection to each node.
    async fn connect(&self) -> (Conn, Conn) {
        (connect(self.addrs.0).await, connect(self.addrs.1).await)
    }

    /// A kiosk of the first hospital.
    fn kiosk(&self, terminal: &str) -> Kiosk {
        let h = &self.world.hospitals[0];
        Kiosk::new(
            TerminalId::parse(terminal).unwrap(),
            h.id.clone(),
            Some(h.code.clone()),
            "1",
        )
    }

    async fn close(self) {
        self.store_a.close().await;
        self.store_b.close().await;
        PostgresStore::drop_schema(&self.url, &self.schema)
            .await
            .expect("drop test schema");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_approve_a_request_once_and_count_every_wrong_pin() {
    let nodes = TwoNodes::start().await;
    let (world, store_a, store_b) = (&nodes.world, &nodes.store_a, &nodes.store_b);
    let (mut a, mut b) = nodes.connect().await;
    let mut kiosk = nodes.kiosk("TN000001");

    // The same bill sent to both nodes at once, several times (different bills): each is
    // approved once.
    let card = card_with_pin_offset(world, 0);
    let mut reader = MemoryChannel::new(world.virtual_card(&card).unwrap());
    for n in 0..5u64 {
        let bill = kiosk
            .medical_bill(&card, &mut reader, 1_000 + n, &format!("TN-{n}"), DEMO_PIN)
            .unwrap()
            .request;
        let (answer_a, answer_b) = tokio::join!(exchange(&mut a, &bill), exchange(&mut b, &bill));
        let codes = (field(&answer_a, 39), field(&answer_b, 39));
        let rrn = field(&answer_a, 37);
        let txns = store_a
            .transactions_by_rrn(&Rrn::parse(&rrn).unwrap())
            .await
            .unwrap();
        let approved = txns.iter().filter(|t| t.record.is_approved()).count();
        assert_eq!(
            approved, 1,
            "bill {n}: {codes:?}, {approved} approvals stored"
        );
        println!("bill {n} on both nodes: answers {codes:?}, 1 approval stored");
        // A second 00 is the first answer replayed (field for field), not a second approval.
        if codes == ("00".into(), "00".into()) {
            assert_eq!(fields(&answer_a), fields(&answer_b), "bill {n}");
        } else {
            assert!(
                codes.0 == "00" || codes.1 == "00",
                "bill {n}: one node approved: {codes:?}"
            );
        }
    }
    let report = store_b.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");

    // Wrong PINs: one on A, one on B (55 each, counted in the store, not per node), the third
    // on A blocks the card (75); a right PIN on B is then refused too.
    let card = card_with_pin_offset(world, 1);
    let mut reader = MemoryChannel::new(world.virtual_card(&card).unwrap());
    let wrong = |k: &mut Kiosk, r: &mut MemoryChannel, n: u64| {
        k.medical_bill(&card, r, 500 + n, &format!("PIN-{n}"), "999999")
            .unwrap()
            .request
    };
    let first = wrong(&mut kiosk, &mut reader, 1);
    assert_eq!(field(&exchange(&mut a, &first).await, 39), "55");
    let second = wrong(&mut kiosk, &mut reader, 2);
    assert_eq!(field(&exchange(&mut b, &second).await, 39), "55");
    let third = wrong(&mut kiosk, &mut reader, 3);
    assert_eq!(
        field(&exchange(&mut a, &third).await, 39),
        "75",
        "the third wrong PIN across both nodes blocks the card"
    );
    let right = kiosk
        .medical_bill(&card, &mut reader, 600, "PIN-right", DEMO_PIN)
        .unwrap()
        .request;
    let after = field(&exchange(&mut b, &right).await, 39);
    assert_ne!(after, "00", "a card blocked on node A is refused on node B");

    drop((a, b));
    nodes.close().await;
}

/// A kiosk that timed out reverses (0400), and reverses again on another STAN; the two reach
/// two nodes at once. Each node's reversal service reads "not yet reversed" before the other
/// commits: the group commit keeps one approved reversal per original, so the money comes back
/// once, one 0420 goes to the bank, and both acquirers are answered 00.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_reverse_an_approval_once() {
    let nodes = TwoNodes::start().await;
    let (world, store_a, store_b) = (&nodes.world, &nodes.store_a, &nodes.store_b);
    let (mut a, mut b) = nodes.connect().await;
    let mut kiosk = nodes.kiosk("TN000002");
    let card = card_with_pin_offset(world, 2);
    let mut reader = MemoryChannel::new(world.virtual_card(&card).unwrap());
    let mut bank_reversals = 0;
    for n in 0..5u64 {
        let bill = kiosk
            .medical_bill(&card, &mut reader, 2_000 + n, &format!("RV-{n}"), DEMO_PIN)
            .unwrap()
            .request;
        assert_eq!(field(&exchange(&mut a, &bill).await, 39), "00", "bill {n}");
        let rrn = Rrn::parse(&field(&bill, 37)).unwrap();
        let original = store_a
            .transactions_by_rrn(&rrn)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.record.kind != TransactionKind::Reversal)
            .unwrap();
        // What each account gets back: the original's legs on the switch's accounts.
        let mut back: Vec<(AccountId, i64)> = Vec::new();
        for l in &original.legs {
            if let (Some(acc), false) = (l.account_id, l.kind == LegKind::Bank) {
                let before = store_a.account(acc).await.unwrap().unwrap().balance_fen;
                back.push((acc, before + l.amount_fen.get()));
            }
        }
        assert!(!back.is_empty(), "bill {n} moved the card's accounts");

        let (first, _) = kiosk.reversal_of(&bill).unwrap();
        let (second, _) = kiosk.reversal_of(&bill).unwrap();
        let (answer_a, answer_b) =
            tokio::join!(exchange(&mut a, &first), exchange(&mut b, &second));
        let codes = (field(&answer_a, 39), field(&answer_b, 39));
        assert_eq!(codes, ("00".into(), "00".into()), "bill {n}");
        let reversals = store_b
            .transactions_by_rrn(&rrn)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.record.kind == TransactionKind::Reversal && t.record.is_approved())
            .count();
        assert_eq!(reversals, 1, "bill {n}: one approved reversal");
        for (acc, expected) in back {
            assert_eq!(
                store_b.account(acc).await.unwrap().unwrap().balance_fen,
                expected,
                "bill {n}: account {acc:?} credited back once"
            );
        }
        // A 0420 for the bank only if the bank booked a leg (none here: the nodes have no
        // bank link), and never two.
        if original
            .legs
            .iter()
            .any(|l| matches!(l.kind, LegKind::Bank | LegKind::SocialSecurityFund))
        {
            bank_reversals += 1;
        }
        assert_eq!(
            store_a.due_reversals(i64::MAX, 100).await.unwrap().len(),
            bank_reversals,
            "bill {n}: at most one 0420 for the bank"
        );
    }
    let report = store_b.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
    drop((a, b));
    nodes.close().await;
}
