//! Decisions committed per second through the group-commit writer, end to end from
//! `WriterHandle::submit` to the caller's durable result: SQLite (file, WAL, synchronous NORMAL
//! and FULL) and PostgreSQL (127.0.0.1:5432, database `test`, a scratch schema).
//!
//! Each decision is an approved purchase with one leg, a balance debit, a duplicate key and a
//! settlement event for the outbox: the full write of a real approval. 1,000 callers submit at
//! once, spread over 100 personal accounts.
//!
//! Run: `cargo bench -p switch --bench store -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switch::sim::testkit::{self, Fixture};
use switch::store::writer::{self, WriterConfig, WriterHandle};
use switch::store::*;

const CALLERS: usize = 1_000;
const ACCOUNTS: usize = 100;

static SEQ: AtomicU32 = AtomicU32::new(1);

async fn accounts<S: Store>(store: &S, fx: &Fixture) -> Vec<AccountId> {
    let mut ids = Vec::with_capacity(ACCOUNTS);
    for _ in 0..ACCOUNTS {
        let a = NewAccount {
            institution: fx.fund.clone(),
            card_id: Some(fx.card_id),
            kind: AccountKind::PersonalMedical,
            opening_balance: schemas::domain::AmountFen::new(1_000_000_000_000).expect("fen"),
        };
        ids.push(
            store
                .open_account(&a, now_us())
                .await
                .expect("open account"),
        );
    }
    ids
}

async fn run_round(w: &WriterHandle, fx: &Fixture, accounts: &[AccountId]) -> Duration {
    let decisions: Vec<Decision> = (0..CALLERS)
        .map(|i| {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            testkit::debit(fx, accounts[i % accounts.len()], seq, 1)
        })
        .collect();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for d in decisions {
        let w = w.clone();
        set.spawn(async move { w.submit(d).await });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task").expect("committed");
    }
    start.elapsed()
}

struct Target {
    name: &'static str,
    writer: WriterHandle,
    fx: Fixture,
    accounts: Vec<AccountId>,
}

async fn sqlite(name: &'static str, sync: SqliteSync, dir: &tempfile::TempDir) -> Target {
    let mut config = SqliteConfig::new(dir.path().join(format!("{name}.db")));
    config.synchronous = sync;
    let store = Arc::new(
        SqliteStore::open(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .expect("open sqlite"),
    );
    let fx = testkit::seed(&*store, 0, 0).await.expect("seed");
    let accounts = accounts(&*store, &fx).await;
    let (writer, _) = writer::spawn(store, WriterConfig::default());
    Target {
        name,
        writer,
        fx,
        accounts,
    }
}

fn pg_url() -> String {
    std::env::var("SWITCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn bench_schema() -> String {
    format!("store_bench_{}", std::process::id())
}

async fn postgres() -> Target {
    let url = pg_url();
    let schema = bench_schema();
    let mut config = PostgresConfig::new(url.clone());
    config.schema = Some(schema.clone());
    PostgresStore::drop_schema(&url, &schema)
        .await
        .expect("PostgreSQL reachable (ops/setup.sh)");
    let store = Arc::new(
        PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .expect("connect PostgreSQL (run ops/setup.sh)"),
    );
    let fx = testkit::seed(&*store, 0, 0).await.expect("seed");
    let accounts = accounts(&*store, &fx).await;
    let (writer, _) = writer::spawn(store, WriterConfig::default());
    Target {
        name: "postgres",
        writer,
        fx,
        accounts,
    }
}

fn group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let targets = rt.block_on(async {
        vec![
            sqlite("sqlite_wal_normal", SqliteSync::Normal, &dir).await,
            sqlite("sqlite_wal_full", SqliteSync::Full, &dir).await,
            postgres().await,
        ]
    });
    let mut group = c.benchmark_group("store_group_commit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CALLERS as u64));
    for t in &targets {
        group.bench_with_input(BenchmarkId::new("decisions", t.name), t, |b, t| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run_round(&t.writer, &t.fx, &t.accounts).await;
                }
                total
            })
        });
        let stats = t.writer.stats();
        println!(
            "{}: {} decisions in {} db transactions (peak batch {})",
            t.name, stats.decisions, stats.db_transactions, stats.batch_size_peak
        );
    }
    group.finish();
    drop(targets);
    rt.block_on(PostgresStore::drop_schema(&pg_url(), &bench_schema()))
        .expect("drop bench schema");
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
