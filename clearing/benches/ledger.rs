//! Throughput of clearing, in events applied per second.
//!
//! - `ledger_apply/sqlite_batch_2000`: decode + validate + plan + one SQLite transaction per
//!   2,000 deliveries (the in-process apply path; target ≥ 200,000 events/s).
//! - `ledger_apply/postgres_batch_2000`: the same on PostgreSQL (127.0.0.1:5432, db `test`).
//! - `kafka/consume_apply`: 50,000 events already published to the broker at 127.0.0.1:9092
//!   (4 partitions), consumed by one group member and applied to a SQLite ledger (target ≥
//!   50,000 events/s). `CLEARING_BENCH_VERBOSE=1` also prints the publish time.
//!
//! `cargo bench -p clearing --bench ledger` (needs PostgreSQL and the broker: ops/setup.sh,
//! ops/kafka.sh start).

use clearing::bus::{
    BusSubscriber, Delivery, EventFamily, KafkaBus, KafkaConfig, Outbound, SettlementBus,
};
use clearing::consumer::{self, ConsumerConfig, ConsumerStats};
use clearing::db::{Db, LedgerDbConfig};
use clearing::ledger::Ledger;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use schemas::events::sample::{self, ids};
use schemas::events::EventType;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BATCH: usize = 2_000;
static SEQ: AtomicU32 = AtomicU32::new(0);

fn payloads(n: usize) -> Vec<Vec<u8>> {
    const ACQUIRERS: [&str; 4] = [ids::HOSPITAL, "3100002", "3100003", "3100004"];
    (0..n)
        .map(|i| {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let t = if i % 4 == 0 {
                EventType::MedicalBillSplit
            } else {
                EventType::Purchase
            };
            sample::event(t, ACQUIRERS[i % 4], seq)
                .to_json()
                .unwrap_or_default()
                .into_bytes()
        })
        .collect()
}

fn deliveries(next_offset: &mut i64, n: usize) -> Vec<Delivery> {
    payloads(n)
        .into_iter()
        .map(|payload| {
            *next_offset += 1;
            Delivery {
                topic: "bench".into(),
                partition: 0,
                offset: *next_offset - 1,
                payload,
            }
        })
        .collect()
}

fn bench_apply(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    config: LedgerDbConfig,
) {
    let ledger = rt.block_on(async {
        Ledger::new(
            Db::connect(&config)
                .await
                .expect("ledger database (run ops/setup.sh)"),
        )
    });
    let mut group = c.benchmark_group("ledger_apply");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    let mut offset = 0i64;
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let ledger = ledger.clone();
            let batches: Vec<Vec<Delivery>> =
                (0..iters).map(|_| deliveries(&mut offset, BATCH)).collect();
            async move {
                let start = Instant::now();
                for batch in &batches {
                    ledger.apply_batch("bench", batch).await.expect("apply");
                }
                start.elapsed()
            }
        })
    });
    group.finish();
    rt.block_on(ledger.db().close());
}

fn decode(c: &mut Criterion) {
    let batch = payloads(BATCH);
    let mut group = c.benchmark_group("ledger_apply");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("decode_validate_only", |b| {
        b.iter(|| {
            batch
                .iter()
                .filter(|p| {
                    std::str::from_utf8(p)
                        .ok()
                        .and_then(|s| schemas::events::SettlementEvent::from_json(s).ok())
                        .is_some()
                })
                .count()
        })
    });
    group.finish();
}

fn ledger_apply(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    bench_apply(
        c,
        &rt,
        "sqlite_batch_2000",
        LedgerDbConfig::sqlite(dir.path().join("l.db")),
    );
    let schema = format!("clearing_bench_{}", std::process::id());
    let url = "postgres://postgres@127.0.0.1:5432/test".to_owned();
    bench_apply(
        c,
        &rt,
        "postgres_batch_2000",
        LedgerDbConfig::Postgres {
            url: url.clone(),
            schema: Some(schema.clone()),
            connections_max: 4,
        },
    );
    rt.block_on(Db::drop_pg_schema(&url, &schema))
        .expect("drop bench schema");
}

fn kafka(c: &mut Criterion) {
    const EVENTS: usize = 50_000;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("kafka");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let run = std::process::id();
    let round = AtomicU32::new(0);
    group.bench_function("consume_apply", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let round = &round;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = round.fetch_add(1, Ordering::Relaxed);
                    let topic = EventFamily::SettlementV1.topic(&format!("bench{run}x{r}"));
                    let bus = KafkaBus::new(KafkaConfig::new("127.0.0.1:9092")).expect("producer");
                    bus.ensure_topic(&topic, 4)
                        .await
                        .expect("broker at 127.0.0.1:9092");
                    let msgs: Vec<Outbound> = payloads(EVENTS)
                        .into_iter()
                        .enumerate()
                        .map(|(i, payload)| Outbound {
                            topic: topic.clone(),
                            key: ["3100001", "3100002", "3100003", "3100004"][i % 4].into(),
                            payload,
                            source_seq: i as i64,
                        })
                        .collect();
                    let dir = tempfile::tempdir().expect("temp dir");
                    let ledger = Ledger::new(
                        Db::connect(&LedgerDbConfig::sqlite(dir.path().join("l.db")))
                            .await
                            .expect("ledger"),
                    );
                    let publish_start = Instant::now();
                    bus.publish(&msgs).await.expect("publish");
                    let published = publish_start.elapsed();
                    // Timed: consuming the published events and applying them to the ledger.
                    let start = Instant::now();
                    let mut sub = bus
                        .subscribe(&format!("g{run}x{r}"), &[&topic])
                        .expect("consumer");
                    let stats = ConsumerStats::default();
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    let watcher = async {
                        while stats.events_applied.load(Ordering::Relaxed) < EVENTS as u64 {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        let _ = tx.send(true);
                    };
                    let config = ConsumerConfig::new("bench");
                    let (done, ()) = tokio::join!(
                        consumer::run(&ledger, &mut sub, &config, &stats, rx),
                        watcher
                    );
                    done.expect("consume");
                    total += start.elapsed();
                    if std::env::var_os("CLEARING_BENCH_VERBOSE").is_some() {
                        eprintln!("publish {published:?}, consume+apply {:?}", start.elapsed());
                    }
                    let _ = sub.take_rebalanced();
                    ledger.db().close().await;
                }
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, decode, ledger_apply, kafka);
criterion_main!(benches);
