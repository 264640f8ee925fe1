//! The window and report queries read one window's journal through an index whose first
//! column is `window_id`, never by scanning the whole journal (which grows by every event of
//! every day): EXPLAIN on both backends over 40,000 events in 200 windows, analysed.
//!
//! That index is `applied_event_window` (window_id, event_id) over the events that posted
//! (clearing migration 0004, which packed each event's legs into its `applied_event` row): its
//! first column answers `window_id = ?` and its order is the window's canonical order. Seen
//! failing with the index's columns swapped (SQLite: `SCAN applied_event USING INDEX`).

mod common;
use clearing::db::Db;
use common::Harness;

/// The statements of `clearing::window` that filter on `window_id` (`$1` the window; the
/// settlement API's live positions and the reports read the first).
const WINDOW_QUERIES: [&str; 2] = [
    "SELECT event_id, event_type, applied_at_us, legs FROM applied_event \
     WHERE window_id = $1 AND legs IS NOT NULL ORDER BY event_id",
    "SELECT MIN(applied_at_us) FROM applied_event WHERE window_id = $1 AND legs IS NOT NULL",
];

const FILL_SQLITE: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
     WHERE i < 40000) INSERT INTO applied_event (event_id, event_type, acquirer_id, amount_fen, \
     occurred_at_us, applied_at_us, window_id, outcome, legs) SELECT randomblob(16), \
     'purchase', 'H' || (i % 11), 100, i, i, i % 200 + 1, 'posted', \
     '1,3,' || (i % 7) || ',4,' || (i % 11) || ',3,100' FROM n";
const FILL_POSTGRES: &str = "INSERT INTO applied_event (event_id, event_type, acquirer_id, \
     amount_fen, occurred_at_us, applied_at_us, window_id, outcome, legs) SELECT \
     md5(i::text)::uuid, 'purchase', 'H' || (i % 11), 100, i, i, i % 200 + 1, 'posted', \
     '1,3,' || (i % 7) || ',4,' || (i % 11) || ',3,100' FROM generate_series(1, 40000) AS i";

/// The plan of `sql` as text (SQLite: EXPLAIN QUERY PLAN's details; PostgreSQL: EXPLAIN).
async fn plan(db: &Db, sql: &str) -> String {
    use sqlx::Row;
    match db {
        Db::Sqlite(pool) => {
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(7i64)
                .fetch_all(pool)
                .await
                .expect("explain");
            rows.iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Db::Postgres(pool) => {
            let rows = sqlx::query(&format!("EXPLAIN {sql}"))
                .bind(7i64)
                .fetch_all(pool)
                .await
                .expect("explain");
            rows.iter()
                .map(|r| r.get::<String, _>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

async fn fill(db: &Db) {
    match db {
        Db::Sqlite(pool) => {
            sqlx::query(FILL_SQLITE).execute(pool).await.expect("fill");
            sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
        }
        Db::Postgres(pool) => {
            sqlx::query(FILL_POSTGRES)
                .execute(pool)
                .await
                .expect("fill");
            sqlx::query("ANALYZE applied_event")
                .execute(pool)
                .await
                .expect("analyze");
        }
    }
}

async fn window_queries_use_a_window_index(h: Harness) {
    let db = h.ledger.db();
    fill(db).await;
    for sql in WINDOW_QUERIES {
        let p = plan(db, sql).await;
        // A full scan of the table or of any of its indexes reads every window.
        let scans = p.contains("Seq Scan on applied_event")
            || p.lines()
                .any(|l| l.trim().starts_with("SCAN applied_event"));
        assert!(
            !scans && p.contains("applied_event_window"),
            "{sql} does not read one window through its index:\n{p}"
        );
    }
    h.cleanup().await;
}

#[tokio::test]
async fn window_queries_read_one_window_through_an_index_on_sqlite() {
    window_queries_use_a_window_index(Harness::sqlite().await).await;
}

#[tokio::test]
async fn window_queries_read_one_window_through_an_index_on_postgres() {
    window_queries_use_a_window_index(Harness::postgres().await).await;
}
