//! Ledger processes that start together on a fresh PostgreSQL schema (two relays and two
//! consumers of one deployment) all open it: creating the schema is serialized (PostgreSQL's
//! `CREATE SCHEMA IF NOT EXISTS` alone fails with a unique violation in all but one of
//! concurrent callers). Fails when PostgreSQL is unreachable: run ops/setup.sh.

use clearing::db::{Db, LedgerDbConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_together_on_a_fresh_schema_all_open_it() {
    let url = std::env::var("CLEARING_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "ledger_start_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let config = LedgerDbConfig::Postgres {
        url: url.clone(),
        schema: Some(schema.clone()),
        connections_max: 2,
    };
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { Db::connect(&config).await })
        })
        .collect();
    let mut failures = Vec::new();
    for o in opens {
        match o.await.unwrap() {
            Ok(db) => db.close().await,
            Err(e) => failures.push(e.to_string()),
        }
    }
    Db::drop_pg_schema(&url, &schema).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
}
