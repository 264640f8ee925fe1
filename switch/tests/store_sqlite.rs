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
    use switch::store::{testkit, DecisionError, Store};
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
