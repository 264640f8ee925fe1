//! The store suite against the embedded SQLite backend (a temporary file per test, WAL).

mod store_suite;

use std::sync::Arc;
use store_suite::Harness;
use switch::store::{DataKeyPanProtector, SqliteConfig, SqliteStore};

struct Sqlite {
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

async fn open(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    let config = SqliteConfig::new(dir.path().join("switch.db"));
    Arc::new(
        SqliteStore::open(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .expect("open sqlite store"),
    )
}

impl Harness for Sqlite {
    type S = SqliteStore;
    const DISABLE_AUDIT_TRIGGERS: &'static str = "DROP TRIGGER audit_log_no_update";
    const DISABLE_AUDIT_DELETE_TRIGGER: &'static str = "DROP TRIGGER audit_log_no_delete";
    const FAIL_AUDIT_APPENDS: &'static [&'static str] = &["CREATE TRIGGER audit_log_down \
         BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log down'); END"];
    const HEAL_AUDIT_APPENDS: &'static [&'static str] = &["DROP TRIGGER audit_log_down"];
    const BLOB_HOLDS_TEXT: &'static str = "instr(COL, CAST('TEXT' AS BLOB)) > 0";

    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(&dir).await;
        Self { dir, store }
    }

    fn store(&self) -> Arc<SqliteStore> {
        self.store.clone()
    }

    async fn reopen(&mut self) {
        self.store.close().await;
        self.store = open(&self.dir).await;
    }

    async fn raw_execute(&self, sql: &str) -> Result<u64, String> {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.dir.path().join("switch.db"))
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
    }
}

store_suite!(Sqlite);

#[tokio::test]
async fn the_database_file_is_in_wal_mode() {
    let h = Sqlite::new().await;
    assert!(h.dir.path().join("switch.db-wal").exists());
    h.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_database_fails_the_batch_at_once_without_retries() {
    use switch::sim::testkit;
    use switch::store::{DecisionError, Store};
    let h = Sqlite::new().await;
    let s = h.store();
    let fx = testkit::seed(&*s, 100, 0).await.unwrap();
    s.close().await;
    let batch = (1..=3)
        .map(|i| testkit::debit(&fx, fx.personal, i, 1))
        .collect();
    let out = s.commit_decisions(batch, switch::store::now_us()).await;
    assert_eq!(out.db_transactions, 1);
    assert!(out
        .results
        .iter()
        .all(|r| matches!(r, Err(DecisionError::Unavailable(_)))));
}

/// The write connection never checkpoints; the checkpointer copies in the background and has
/// the writer rewind the log once it passes `wal_rewind_pages`. Without the rewind the log
/// only grows (one commit after another never finds it fully copied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_rewound_by_the_writer_and_stays_bounded_under_steady_commits() {
    use switch::sim::testkit;
    use switch::store::Store;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = SqliteConfig::new(dir.path().join("switch.db"));
    config.checkpoint_interval_ms = 5;
    config.wal_rewind_pages = 64;
    let s = SqliteStore::open(&config, Arc::new(DataKeyPanProtector::for_tests()))
        .await
        .expect("open");
    let fx = testkit::seed(&s, 10_000_000, 0).await.expect("seed");
    let wal = dir.path().join("switch.db-wal");
    let mut largest = 0u64;
    for round in 0..400 {
        let batch = testkit::debits(&fx, fx.personal, 1 + round * 20, 20, 1);
        let out = s.commit_decisions(batch, switch::store::now_us()).await;
        assert!(out.results.iter().all(|r| r.is_ok()), "{:?}", out.results);
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    // 8,000 debits wrote far more than 64 pages of log; rewound, the file stays within a few
    // dozen multiples of the threshold (slack for a loaded machine) instead of holding every
    // frame ever written (tens of MB without the rewind).
    let written = s.journal_balance(fx.personal).await.expect("journal");
    assert_eq!(written, 10_000_000 - 8_000);
    let threshold = 64 * u64::from(config.page_size);
    assert!(
        largest > threshold,
        "the test wrote too little log: {largest}"
    );
    assert!(largest < threshold * 64, "WAL grew to {largest} bytes");
    s.close().await;
}

/// A database the store creates gets the configured page size; one that exists keeps the size
/// it was made with (SQLite ignores the pragma once the file has pages), so reopening an old
/// database with a new default neither fails nor rewrites it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_takes_the_configured_page_size_and_an_old_one_keeps_its_own() {
    use sqlx::{ConnectOptions, Connection, Row};
    use switch::sim::testkit;
    use switch::store::Store;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("switch.db");
    let page_size = |path: std::path::PathBuf| async move {
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .connect()
            .await
            .expect("connect");
        let n: i64 = sqlx::query("PRAGMA page_size")
            .fetch_one(&mut c)
            .await
            .expect("pragma")
            .get(0);
        c.close().await.expect("close");
        n
    };
    let mut config = SqliteConfig::new(&path);
    assert_eq!(config.page_size, 2048, "the default");
    let s = SqliteStore::open(&config, Arc::new(DataKeyPanProtector::for_tests()))
        .await
        .expect("open");
    let fx = testkit::seed(&s, 1_000_000, 0).await.expect("seed");
    s.close().await;
    assert_eq!(page_size(path.clone()).await, 2048);

    config.page_size = 8192;
    let s = SqliteStore::open(&config, Arc::new(DataKeyPanProtector::for_tests()))
        .await
        .expect("reopen");
    let out = s
        .commit_decisions(
            testkit::debits(&fx, fx.personal, 1, 3, 1),
            switch::store::now_us(),
        )
        .await;
    assert!(out.results.iter().all(|r| r.is_ok()), "{:?}", out.results);
    assert_eq!(
        s.journal_balance(fx.personal).await.expect("journal"),
        1_000_000 - 3
    );
    s.close().await;
    assert_eq!(page_size(path.clone()).await, 2048, "kept");

    let fresh = dir.path().join("fresh.db");
    let s = SqliteStore::open(
        &SqliteConfig {
            path: fresh.clone(),
            ..config
        },
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .expect("open fresh");
    s.close().await;
    assert_eq!(page_size(fresh).await, 8192);
}

/// A connection of its own to the harness's database file (query plans, the catalog).
async fn connect_file(h: &Sqlite) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(h.dir.path().join("switch.db"))
        .connect()
        .await
        .expect("connect")
}

/// One text column of every row `query` returns.
async fn text_column<'q>(
    conn: &mut sqlx::SqliteConnection,
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    column: &str,
) -> Vec<String> {
    use sqlx::Row;
    query
        .fetch_all(conn)
        .await
        .expect("query")
        .iter()
        .map(|r| r.get::<String, _>(column))
        .collect()
}

/// A 0500 reads the window it reconciles, not the whole history: SQLite plans the acquirer
/// totals as a range search of `txn_by_decided_at` (migration 0006), never a scan of `txn`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquirer_totals_read_only_their_window() {
    use sqlx::Connection;
    let h = <Sqlite as Harness>::new().await;
    let mut conn = connect_file(&h).await;
    let explain = format!("EXPLAIN QUERY PLAN {}", switch::store::ACQUIRER_TOTALS);
    let query = sqlx::query(&explain).bind("1001").bind(0_i64).bind(1_i64);
    let plan = text_column(&mut conn, query, "detail").await;
    assert!(
        plan.iter()
            .any(|d| d.starts_with("SEARCH t USING INDEX txn_by_decided_at")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN t")), "{plan:?}");
    let _ = conn.close().await;
    h.cleanup().await;
}

/// A card's history walks its chain (migration 0024): from the card's row, one probe of
/// `txn`'s primary key per step and per row read, never a scan of `txn` (the index
/// `txn_by_card` it replaced is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cards_history_is_read_along_its_chain_not_by_scanning() {
    use sqlx::Connection;
    let h = <Sqlite as Harness>::new().await;
    let mut conn = connect_file(&h).await;
    let explain = format!(
        "EXPLAIN QUERY PLAN {}",
        switch::store::SEARCH_CARD_TRANSACTIONS
    );
    let query = sqlx::query(&explain)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(i64::MIN)
        .bind(i64::MAX)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(i64::MAX)
        .bind(vec![0xffu8; 16])
        .bind(20_i64)
        .bind(7_i64);
    let plan = text_column(&mut conn, query, "detail").await;
    let indexes = text_column(
        &mut conn,
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'index'"),
        "name",
    )
    .await;
    let _ = conn.close().await;
    h.cleanup().await;
    assert!(
        plan.iter()
            .any(|d| d.starts_with("SEARCH card USING INTEGER PRIMARY KEY")),
        "{plan:?}"
    );
    let probes = plan
        .iter()
        .filter(|d| d.contains("USING INDEX sqlite_autoindex_txn_1 (transaction_id=?)"))
        .count();
    assert_eq!(probes, 2, "the head, then each step of the walk: {plan:?}");
    assert!(
        !plan
            .iter()
            .any(|d| d.contains("txn_by_decided_at") || d.starts_with("SCAN t")),
        "{plan:?}"
    );
    assert!(!indexes.iter().any(|i| i == "txn_by_card"), "{indexes:?}");
}

/// The group commit has its own connection (rusqlite, on the writer's thread) beside sqlx's
/// for the control plane; the two take turns through the store's lock instead of meeting in
/// SQLite's busy handler. With no busy timeout at all, any overlap of a control-plane write
/// with a group commit would fail at once with SQLITE_BUSY; none may, however hot the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_writes_take_turns_with_group_commits() {
    use switch::sim::testkit;
    use switch::store::{AuditEntry, Store};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = SqliteConfig::new(dir.path().join("switch.db"));
    config.busy_timeout_ms = 0;
    let s = Arc::new(
        SqliteStore::open(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .expect("open"),
    );
    let fx = testkit::seed(&*s, 10_000_000, 0).await.expect("seed");
    let committer = {
        let (s, fx) = (Arc::clone(&s), fx.clone());
        tokio::spawn(async move {
            for round in 0..200 {
                let batch = testkit::debits(&fx, fx.personal, 1 + round * 20, 20, 1);
                let out = s.commit_decisions(batch, switch::store::now_us()).await;
                assert!(out.results.iter().all(|r| r.is_ok()), "{:?}", out.results);
            }
        })
    };
    for i in 0..200 {
        let entry = AuditEntry {
            actor: "test".into(),
            action: "card.status".into(),
            subject: format!("{i}"),
            detail: "{}".into(),
            at_us: switch::store::now_us(),
        };
        s.append_audit(&entry)
            .await
            .expect("audit write beside the group commits");
    }
    committer.await.expect("group commits");
    assert_eq!(s.verify_audit_chain().await.expect("chain"), 200);
    assert_eq!(
        s.journal_balance(fx.personal).await.expect("journal"),
        10_000_000 - 4_000
    );
    s.close().await;
}

// ---- the duplicate keys' memory tier (store/sqlite/key_tier.rs) ----
//
// A group commit writes no `duplicate_key` row: its keys stay in the store's memory, with the
// `txn` rows as their durable record, until the writer flushes them to the table in bulk (every
// 250 ms or 2,000 keys, between batches) with the highest flushed `txn` rowid as a watermark.

/// One integer from the database file, read on a connection of its own.
async fn scalar(h: &Sqlite, sql: &str) -> i64 {
    use sqlx::{ConnectOptions, Connection, Row};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(h.dir.path().join("switch.db"))
        .read_only(true)
        .connect()
        .await
        .expect("connect");
    let n: i64 = sqlx::query(sql)
        .fetch_one(&mut c)
        .await
        .expect("query")
        .get(0);
    c.close().await.expect("close");
    n
}

const KEYS_IN_TABLE: &str = "SELECT count(*) FROM duplicate_key";
const WATERMARK: &str = "SELECT txn_rowid FROM duplicate_key_watermark";
const TXN_ROWID_MAX: &str = "SELECT max(rowid) FROM txn";

async fn commit_one(
    s: &SqliteStore,
    d: switch::store::Decision,
) -> Result<switch::store::Committed, switch::store::DecisionError> {
    use switch::store::Store;
    let mut out = s.commit_decisions(vec![d], switch::store::now_us()).await;
    out.results.remove(0)
}

/// A store closed without a flush (`close` does not flush, as a kill -9 would not) is
/// reopened: the key, only in its `txn` row, is back in the tier and a retransmission is
/// refused with the original's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retransmission_after_a_restart_is_found_while_its_key_is_only_in_txn() {
    use switch::sim::testkit;
    use switch::store::{DecisionError, Store};
    let mut h = Sqlite::new().await;
    let fx = testkit::seed(&*h.store(), 100, 0).await.expect("seed");
    let first = testkit::debit(&fx, fx.personal, 42, 10);
    let key = first.transaction.duplicate_key();
    let id = commit_one(&h.store(), first)
        .await
        .expect("commit")
        .transaction_id;
    h.reopen().await;
    assert_eq!(scalar(&h, KEYS_IN_TABLE).await, 0, "the key is only in txn");
    let s = h.store();
    assert_eq!(s.find_duplicate(&key).await.expect("find"), Some(id));
    let again = testkit::debit(&fx, fx.personal, 42, 10);
    assert_eq!(
        commit_one(&s, again).await,
        Err(DecisionError::Duplicate { existing: Some(id) })
    );
    let account = s
        .account(fx.personal)
        .await
        .expect("read")
        .expect("account");
    assert_eq!(account.balance_fen, 90, "charged once");
    h.cleanup().await;
}

/// Once the oldest key waited 250 ms the next group commit carries the flush; with no batch to
/// carry it, the writer flushes on its own after 500 ms. The keys are then in the table, the
/// watermark is the last `txn` row, and after a restart they are still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_key_is_in_the_table_below_the_watermark_and_found_after_a_restart() {
    use switch::sim::testkit;
    use switch::store::{DecisionError, Store};
    let mut h = Sqlite::new().await;
    let s = h.store();
    let fx = testkit::seed(&*s, 100, 0).await.expect("seed");
    let batch = testkit::debits(&fx, fx.personal, 1, 3, 1);
    let keys: Vec<_> = batch
        .iter()
        .map(|d| d.transaction.duplicate_key())
        .collect();
    let out = s.commit_decisions(batch, switch::store::now_us()).await;
    let ids: Vec<_> = out
        .results
        .into_iter()
        .map(|r| r.expect("committed").transaction_id)
        .collect();
    assert_eq!(scalar(&h, KEYS_IN_TABLE).await, 0);
    assert!(scalar(&h, WATERMARK).await < scalar(&h, TXN_ROWID_MAX).await);
    // Due (FLUSH_AGE_MAX is 250 ms): not yet overdue, so the writer's pause between commits
    // leaves it to the next group commit, which carries it in its own transaction.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.between_group_commits().await;
    assert_eq!(
        scalar(&h, KEYS_IN_TABLE).await,
        0,
        "no flush of its own yet"
    );
    commit_one(&s, testkit::debit(&fx, fx.personal, 10, 1))
        .await
        .expect("the carrier commits");
    assert_eq!(
        scalar(&h, KEYS_IN_TABLE).await,
        3,
        "flushed with the next batch"
    );
    assert!(
        scalar(&h, WATERMARK).await < scalar(&h, TXN_ROWID_MAX).await,
        "the carrier's own key waits in the tier"
    );
    // Overdue (twice FLUSH_AGE_MAX, no batch came): the writer flushes on its own.
    tokio::time::sleep(std::time::Duration::from_millis(550)).await;
    s.between_group_commits().await;
    assert_eq!(scalar(&h, KEYS_IN_TABLE).await, 4);
    assert_eq!(scalar(&h, WATERMARK).await, scalar(&h, TXN_ROWID_MAX).await);
    drop(s);
    h.reopen().await;
    let s = h.store();
    for (k, id) in keys.iter().zip(&ids) {
        assert_eq!(s.find_duplicate(k).await.expect("find"), Some(*id));
    }
    assert_eq!(
        commit_one(&s, testkit::debit(&fx, fx.personal, 2, 1)).await,
        Err(DecisionError::Duplicate {
            existing: Some(ids[1])
        })
    );
    h.cleanup().await;
}

/// While the key is in memory only: the second of two identical keys in one batch, and a
/// retransmission in a later batch, are duplicates of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_the_tier_refuses_its_duplicates_in_the_same_batch_and_in_later_ones() {
    use switch::sim::testkit;
    use switch::store::{DecisionError, Store};
    let h = Sqlite::new().await;
    let s = h.store();
    let fx = testkit::seed(&*s, 100, 0).await.expect("seed");
    let first = testkit::debit(&fx, fx.personal, 7, 10);
    let second = testkit::debit(&fx, fx.personal, 7, 10);
    let out = s
        .commit_decisions(vec![first, second], switch::store::now_us())
        .await;
    let id = out.results[0]
        .clone()
        .expect("first committed")
        .transaction_id;
    assert_eq!(
        out.results[1],
        Err(DecisionError::Duplicate { existing: Some(id) })
    );
    for _ in 0..2 {
        assert_eq!(
            commit_one(&s, testkit::debit(&fx, fx.personal, 7, 10)).await,
            Err(DecisionError::Duplicate { existing: Some(id) })
        );
    }
    assert_eq!(scalar(&h, KEYS_IN_TABLE).await, 0, "found in memory");
    let account = s
        .account(fx.personal)
        .await
        .expect("read")
        .expect("account");
    assert_eq!(account.balance_fen, 90, "charged once");
    h.cleanup().await;
}

/// The answer of a decision whose key is in memory only is recorded and read back by its
/// transaction id; after the flush, through the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_recorded_and_found_for_a_key_in_the_tier() {
    use switch::sim::testkit;
    use switch::store::Store;
    let h = Sqlite::new().await;
    let s = h.store();
    let fx = testkit::seed(&*s, 100, 0).await.expect("seed");
    let d = testkit::debit(&fx, fx.personal, 5, 10);
    let key = d.transaction.duplicate_key();
    let unknown = testkit::debit(&fx, fx.personal, 6, 10)
        .transaction
        .duplicate_key();
    let id = commit_one(&s, d).await.expect("commit").transaction_id;
    assert_eq!(s.find_answer(&key).await.expect("find"), Some((id, None)));
    let answers = [
        (key.clone(), "{\"38\":\"A1\"}".to_owned()),
        (unknown.clone(), "{}".to_owned()),
    ];
    assert_eq!(s.record_answers(&answers).await.expect("record"), 1);
    assert_eq!(scalar(&h, KEYS_IN_TABLE).await, 0, "the key is in memory");
    let expected = Some((id, Some("{\"38\":\"A1\"}".to_owned())));
    assert_eq!(s.find_answer(&key).await.expect("find"), expected);
    assert_eq!(s.find_answer(&unknown).await.expect("find"), None);
    assert_eq!(
        s.purge_duplicate_keys(0).await.expect("flush, purge none"),
        0
    );
    assert_eq!(scalar(&h, KEYS_IN_TABLE).await, 1);
    assert_eq!(s.find_answer(&key).await.expect("find"), expected);
    h.cleanup().await;
}

/// A batch whose COMMIT fails (here a deferred foreign key, checked only at COMMIT, after every
/// row was written) adds no key and moves no watermark: its rowid is taken by the next commit,
/// the flush writes the keys of the committed ones only, and after a restart the failed request
/// is not a duplicate of anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_leaves_no_key_and_the_watermark_covers_only_committed_rows() {
    use switch::sim::testkit;
    use switch::store::{DecisionError, Store};
    let mut h = Sqlite::new().await;
    let s = h.store();
    let fx = testkit::seed(&*s, 100, 0).await.expect("seed");
    let a = testkit::debit(&fx, fx.personal, 1, 1);
    let a_id = commit_one(&s, a.clone()).await.expect("a").transaction_id;
    for sql in [
        "CREATE TABLE fk_parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE fk_child (parent INTEGER REFERENCES fk_parent (id) \
         DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER txn_down AFTER INSERT ON txn WHEN NEW.stan = '000002' \
         BEGIN INSERT INTO fk_child VALUES (1); END",
    ] {
        h.raw_execute(sql).await.expect("fault");
    }
    let b = testkit::debit(&fx, fx.personal, 2, 1);
    assert!(matches!(
        commit_one(&s, b.clone()).await,
        Err(DecisionError::Rejected(_))
    ));
    let b_key = b.transaction.duplicate_key();
    assert_eq!(s.find_duplicate(&b_key).await.expect("find"), None);
    let a_key = a.transaction.duplicate_key();
    assert_eq!(s.find_duplicate(&a_key).await.expect("find"), Some(a_id));
    h.raw_execute("DROP TRIGGER txn_down").await.expect("drop");
    let c = testkit::debit(&fx, fx.personal, 3, 1);
    let c_id = commit_one(&s, c.clone()).await.expect("c").transaction_id;
    assert_eq!(s.purge_duplicate_keys(0).await.expect("flush"), 0);
    assert_eq!(scalar(&h, KEYS_IN_TABLE).await, 2, "a and c");
    assert_eq!(scalar(&h, WATERMARK).await, scalar(&h, TXN_ROWID_MAX).await);
    drop(s);
    h.reopen().await;
    let s = h.store();
    let c_key = c.transaction.duplicate_key();
    assert_eq!(s.find_duplicate(&c_key).await.expect("find"), Some(c_id));
    let b_id = commit_one(&s, b)
        .await
        .expect("b never committed")
        .transaction_id;
    assert_eq!(
        commit_one(&s, testkit::debit(&fx, fx.personal, 2, 1)).await,
        Err(DecisionError::Duplicate {
            existing: Some(b_id)
        })
    );
    h.cleanup().await;
}
