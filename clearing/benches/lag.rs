//! End-to-end lag of the embedded pipeline at a fixed rate: the switch's outbox is written at
//! 10,000 events/s (100 events per commit every 10 ms, as a group-committing writer would) for
//! 10 s, while relay → in-process bus → ledger runs. Lag per event = ledger commit time
//! (`applied_event.applied_at_us`) − decision time (`occurred_at`, set just before the outbox
//! commit). Prints p50 / p99 / max (target p99 ≤ 1 s).
//!
//! `cargo bench -p clearing --bench lag`

use clearing::embedded::{EmbeddedClearing, EmbeddedConfig};
use clearing::window::WindowSchedule;
use schemas::events::sample::{self, ids};
use schemas::events::EventType;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::time::{Duration, Instant};

const RATE_PER_S: u64 = 10_000;
const SECONDS: u64 = 10;
const PER_COMMIT: u64 = 100;

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` probes harness-less benches with --list
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let switch_db = dir.path().join("switch.db");
    let options = SqliteConnectOptions::new()
        .filename(&switch_db)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("switch db");
    for m in schemas::migrations::SQLITE {
        sqlx::raw_sql(m.sql)
            .execute(&pool)
            .await
            .expect("migration");
    }
    let clearing = EmbeddedClearing::start(EmbeddedConfig::new(
        &switch_db,
        dir.path().join("ledger.db"),
        WindowSchedule::Manual,
    ))
    .await
    .expect("embedded clearing");

    let commits = RATE_PER_S * SECONDS / PER_COMMIT;
    let tick = Duration::from_micros(1_000_000 * PER_COMMIT / RATE_PER_S);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut seq: u32 = 0;
    for _ in 0..commits {
        interval.tick().await;
        let mut tx = pool.begin().await.expect("begin");
        for _ in 0..PER_COMMIT {
            seq += 1;
            let t = if seq.is_multiple_of(4) {
                EventType::MedicalBillSplit
            } else {
                EventType::Purchase
            };
            let e = sample::event(t, ids::HOSPITAL, seq);
            let s: i64 = sqlx::query_scalar(
                "UPDATE outbox_sequence SET next_seq = next_seq + 1 WHERE id = 1 RETURNING next_seq - 1",
            )
            .fetch_one(&mut *tx)
            .await
            .expect("seq");
            sqlx::query(
                "INSERT INTO outbox (outbox_seq, event_id, partition_key, event_type, schema_version, \
                 payload, created_at_us) VALUES ($1, $2, $3, $4, 1, $5, $6)",
            )
            .bind(s)
            .bind(e.event_id)
            .bind(e.partition_key().as_str())
            .bind(e.event_type.as_str())
            .bind(e.to_json().expect("json"))
            .bind(e.occurred_at.timestamp_micros())
            .execute(&mut *tx)
            .await
            .expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    let written_in = started.elapsed();
    loop {
        let s = clearing.stats().await.expect("stats");
        if s.lag_events == 0 && s.applied_seq == i64::from(seq) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Ok(mut lags) = lags_us(&clearing).await else {
        eprintln!("could not read lags");
        return;
    };
    lags.sort_unstable();
    let pct = |p: f64| lags[((lags.len() as f64 - 1.0) * p) as usize];
    println!(
        "lag: {} events written at {:.0}/s; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lags.len(),
        lags.len() as f64 / written_in.as_secs_f64(),
        pct(0.50) as f64 / 1e3,
        pct(0.99) as f64 / 1e3,
        pct(1.0) as f64 / 1e3
    );
    clearing.shutdown().await.expect("shutdown");
}

async fn lags_us(c: &EmbeddedClearing) -> Result<Vec<i64>, sqlx::Error> {
    match c.ledger().db() {
        clearing::db::Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT applied_at_us - occurred_at_us FROM applied_event")
                .fetch_all(p)
                .await
        }
        clearing::db::Db::Postgres(p) => {
            sqlx::query_scalar("SELECT applied_at_us - occurred_at_us FROM applied_event")
                .fetch_all(p)
                .await
        }
    }
}
