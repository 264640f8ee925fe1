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
