//! The window and report queries read one window's postings through an index whose first
//! column is `window_id`, never by scanning the whole journal (which grows by every leg of
//! every day): EXPLAIN on both backends over 40,000 postings in 200 windows, analysed.
//!
//! That index is the `UNIQUE (window_id, event_id, leg_no)` of migration 0001 (SQLite's
//! `sqlite_autoindex_posting_1`, PostgreSQL's `posting_window_id_event_id_leg_no_key`): its
//! first column answers `window_id = ?` and its order is the window's canonical order, so a
//! separate index on `posting (window_id)` would only cost every posting's insert. Seen failing
//! with the unique constraint dropped (PostgreSQL: `Seq Scan on posting`).

mod common;
use clearing::db::Db;
use common::Harness;

/// The statements of `clearing::window` and `clearing::api::service` that filter on
/// `window_id` (`$1` the window, `$2` an institution).
const WINDOW_QUERIES: [&str; 4] = [
    "SELECT event_id, leg_no, amount_fen FROM posting WHERE window_id = $1 \
     ORDER BY event_id, leg_no",
    "SELECT event_id, leg_no, amount_fen FROM posting WHERE window_id = $1 \
     AND (debit_institution = $2 OR credit_institution = $2) ORDER BY event_id, leg_no",
    "SELECT institution_id, SUM(debit_fen), SUM(credit_fen) FROM (\
     SELECT debit_institution AS institution_id, amount_fen AS debit_fen, 0 AS credit_fen \
     FROM posting WHERE window_id = $1 UNION ALL SELECT credit_institution, 0, amount_fen \
     FROM posting WHERE window_id = $1) AS legs GROUP BY institution_id",
    "SELECT MIN(posted_at_us) FROM posting WHERE window_id = $1",
];

const FILL_SQLITE: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
     WHERE i < 40000) INSERT INTO posting (window_id, event_id, leg_no, event_type, leg_kind, \
     debit_institution, debit_account, credit_institution, credit_account, amount_fen, \
     posted_at_us) SELECT i % 200 + 1, randomblob(16), 1, 'purchase', 'principal', \
     'B' || (i % 7), 'settlement', 'H' || (i % 11), 'settlement', 100, i FROM n";
const FILL_POSTGRES: &str = "INSERT INTO posting (window_id, event_id, leg_no, event_type, \
     leg_kind, debit_institution, debit_account, credit_institution, credit_account, amount_fen, \
     posted_at_us) SELECT i % 200 + 1, md5(i::text)::uuid, 1, 'purchase', 'principal', \
     'B' || (i % 7), 'settlement', 'H' || (i % 11), 'settlement', 100, i \
     FROM generate_series(1, 40000) AS i";

/// The plan of `sql` as text (SQLite: EXPLAIN QUERY PLAN's details; PostgreSQL: EXPLAIN).
async fn plan(db: &Db, sql: &str) -> String {
    use sqlx::Row;
    match db {
        Db::Sqlite(pool) => {
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(7i64)
                .bind("B3")
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
                .bind("B3")
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
            sqlx::query("ANALYZE posting")
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
        let scans =
            p.contains("Seq Scan on posting") || p.lines().any(|l| l.trim() == "SCAN posting");
        assert!(!scans, "{sql} scans the journal:\n{p}");
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
