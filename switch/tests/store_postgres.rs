//! The store suite against PostgreSQL (127.0.0.1:5432, trust auth, database `test`; override
//! with SWITCH_TEST_PG_URL). Each test gets its own schema, dropped at the end. These tests
//! FAIL when PostgreSQL is unreachable: run ops/setup.sh.

mod store_suite;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use store_suite::Harness;
use switch::store::{DataKeyPanProtector, PostgresConfig, PostgresStore};

fn url() -> String {
    std::env::var("SWITCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

struct Postgres {
    config: PostgresConfig,
    store: Arc<PostgresStore>,
}

async fn connect(config: &PostgresConfig) -> Arc<PostgresStore> {
    match PostgresStore::connect(config, Arc::new(DataKeyPanProtector::for_tests())).await {
        Ok(s) => Arc::new(s),
        Err(e) => panic!(
            "PostgreSQL store tests need PostgreSQL at {} (run ops/setup.sh): {e}",
            config.url
        ),
    }
}

fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "store_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

impl Harness for Postgres {
    type S = PostgresStore;
    const DISABLE_AUDIT_TRIGGERS: &'static str =
        "DROP TRIGGER audit_log_no_update_or_delete ON audit_log";
    const DISABLE_AUDIT_DELETE_TRIGGER: &'static str = "SELECT 1";
    const FAIL_AUDIT_APPENDS: &'static [&'static str] = &[
        "CREATE FUNCTION audit_log_down() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit log down'; END $$",
        "CREATE TRIGGER audit_log_down BEFORE INSERT ON audit_log FOR EACH ROW \
         EXECUTE FUNCTION audit_log_down()",
    ];
    const BLOB_HOLDS_TEXT: &'static str = "position(convert_to('TEXT', 'UTF8') in COL) > 0";
    const HEAL_AUDIT_APPENDS: &'static [&'static str] =
        &["DROP TRIGGER audit_log_down ON audit_log"];

    async fn new() -> Self {
        let mut config = PostgresConfig::new(url());
        config.schema = Some(unique_schema());
        config.connections_max = 4;
        let store = connect(&config).await;
        Self { config, store }
    }

    fn store(&self) -> Arc<PostgresStore> {
        self.store.clone()
    }

    async fn reopen(&mut self) {
        self.store.close().await;
        self.store = connect(&self.config).await;
    }

    async fn raw_execute(&self, sql: &str) -> Result<u64, String> {
        use sqlx::{ConnectOptions, Connection};
        use std::str::FromStr;
        let schema = self.config.schema.clone().unwrap_or_default();
        let mut conn = sqlx::postgres::PgConnectOptions::from_str(&self.config.url)
            .map_err(|e| e.to_string())?
            .options([("search_path", schema.as_str())])
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let done = sqlx::query(sql)
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string());
        let _ = conn.close().await;
        done.map(|d| d.rows_affected())
    }

    async fn cleanup(self) {
        self.store.close().await;
        if let Some(schema) = &self.config.schema {
            PostgresStore::drop_schema(&self.config.url, schema)
                .await
                .expect("drop test schema");
        }
    }
}

store_suite!(Postgres);

/// Two switch nodes deciding at once: each node gets a group-commit writer with `config` and
/// submits `per_node` decisions made by `decide(fixture, stan, i)` (node A's STANs from 0,
/// node B's from 10,000), all in flight together. The task ends when every one committed.
fn decide_on_two_nodes(
    nodes: [Arc<PostgresStore>; 2],
    fx: &switch::sim::testkit::Fixture,
    config: switch::store::writer::WriterConfig,
    per_node: u32,
    decide: fn(&switch::sim::testkit::Fixture, u32, u32) -> switch::store::Decision,
) -> tokio::task::JoinHandle<()> {
    let mut tasks = Vec::new();
    for (base, node) in [0u32, 10_000].into_iter().zip(nodes) {
        let (w, _) = switch::store::writer::spawn(node, config);
        let fx = fx.clone();
        tasks.push(tokio::spawn(async move {
            let mut inner = Vec::new();
            for i in 0..per_node {
                let w = w.clone();
                let d = decide(&fx, base + i, i);
                inner.push(tokio::spawn(async move { w.submit(d).await }));
            }
            for t in inner {
                t.await.unwrap().unwrap();
            }
        }));
    }
    tokio::spawn(async move {
        for t in tasks {
            t.await.unwrap();
        }
    })
}

/// Two switch nodes commit to one database while a relay polls with a cursor: because outbox
/// sequences are taken under a row lock held to commit, every poll sees a contiguous run after
/// its cursor, and no row that commits late is ever skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_relay_never_skips_rows_committed_late_by_another_node() {
    use switch::sim::testkit;
    use switch::store::writer::WriterConfig;
    use switch::store::{now_us, Store};
    let h = Postgres::new().await;
    let node_a = h.store();
    let node_b = connect(&h.config).await;
    let fx = testkit::seed(&*node_a, 1_000_000, 0).await.unwrap();
    let deciding = decide_on_two_nodes(
        [node_a.clone(), node_b.clone()],
        &fx,
        WriterConfig {
            queue_depth_max: 256,
            batch_size_max: 16,
            ..WriterConfig::default()
        },
        150,
        |fx, stan, _| testkit::debit(fx, fx.personal, stan, 1),
    );
    let relay = node_a.clone();
    let poller = tokio::spawn(async move {
        let mut cursor = 0i64;
        let mut polls = 0;
        while cursor < 300 {
            let rows = relay.outbox_after(cursor, 50).await.unwrap();
            for r in &rows {
                assert_eq!(
                    r.outbox_seq,
                    cursor + 1,
                    "a poll saw seq {} after cursor {cursor}",
                    r.outbox_seq
                );
                cursor = r.outbox_seq;
            }
            polls += 1;
            tokio::task::yield_now().await;
        }
        polls
    });
    deciding.await.unwrap();
    let polls = poller.await.unwrap();
    assert!(polls > 1);
    assert_eq!(node_b.outbox_after(0, 1_000).await.unwrap().len(), 300);
    assert_eq!(
        node_a
            .mark_outbox_relayed(&[1, 2, 3], now_us())
            .await
            .unwrap(),
        3
    );
    node_b.close().await;
    h.cleanup().await;
}

/// Two switch nodes, each with its own group-commit writer (two commits in flight each), decide
/// for the same card at once: every commit locks the card row before it reads the head of the
/// card's chain, so the chain stays one line through all their transactions (`switch verify`'s
/// card-chain-whole), and the card's history has every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deciding_for_one_card_keep_one_chain_of_its_transactions() {
    use switch::sim::testkit;
    use switch::store::operator::{OperatorStore, TransactionSearch};
    use switch::store::writer::WriterConfig;
    use switch::store::{Invariant, Store};
    let h = Postgres::new().await;
    let node_a = h.store();
    let node_b = connect(&h.config).await;
    let fx = testkit::seed(&*node_a, 1_000_000, 0).await.unwrap();
    decide_on_two_nodes(
        [node_a.clone(), node_b.clone()],
        &fx,
        WriterConfig {
            queue_depth_max: 256,
            batch_size_max: 8,
            commits_in_flight_max: 2,
            ..WriterConfig::default()
        },
        100,
        // Mostly declines: they move no money, so only the card's lock orders them.
        |fx, stan, i| match i % 4 {
            0..=2 => testkit::decline(
                fx,
                stan,
                1,
                schemas::domain::ResponseCode::InsufficientFunds,
            ),
            _ => testkit::debit(fx, fx.personal, stan, 1),
        },
    )
    .await
    .unwrap();
    let report = node_b.verify_integrity().await.unwrap();
    assert!(!report.breaks(Invariant::CardChainWhole), "{report}");
    assert!(report.is_consistent(), "{report}");
    let history = node_a
        .search_transactions(&TransactionSearch {
            card_id: Some(fx.card_id.0),
            limit: 500,
            ..TransactionSearch::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 200);
    node_b.close().await;
    h.cleanup().await;
}

/// Nodes that start together on a fresh schema (two `switch serve` after a deployment) all
/// open it: creating the schema is serialized (PostgreSQL's `CREATE SCHEMA IF NOT EXISTS` alone
/// fails with a unique violation in all but one of concurrent callers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_on_a_fresh_schema_all_open_it() {
    let mut config = PostgresConfig::new(url());
    config.schema = Some(unique_schema());
    config.connections_max = 2;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move {
                let store =
                    PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
                        .await?;
                store.close().await;
                Ok::<(), switch::store::StoreError>(())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for o in opens {
        match o.await.unwrap() {
            Ok(()) => {}
            Err(e) => failures.push(e.to_string()),
        }
    }
    PostgresStore::drop_schema(&config.url, config.schema.as_deref().unwrap())
        .await
        .unwrap();
    assert!(failures.is_empty(), "{failures:?}");
}
