//! Throughput of clearing, in events applied per second.
//!
//! - `ledger_apply/sqlite_batch_2000`: decode + validate + plan + one SQLite transaction per
//!   2,000 deliveries (the in-process apply path; target ≥ 200,000 events/s).
//! - `ledger_apply/postgres_batch_2000`: the same on PostgreSQL (127.0.0.1:5432, db `test`).
//! - `ledger_apply/{sqlite,postgres}_pipelined_2000`: the same batches as the consumer applies
//!   them: each batch decoded on a blocking thread ([`Ledger::decode`]) while the previous one
//!   is written ([`Ledger::apply_decoded`]).
//! - `kafka/consume_apply`: 50,000 events already published to the broker at 127.0.0.1:9092
//!   (4 partitions), consumed by one group member and applied to a SQLite ledger (target ≥
//!   50,000 events/s). Its `cpu:` line also gives the rate after each run's first batch (the
//!   group joined, the first fetch in). `CLEARING_BENCH_VERBOSE=1` also prints the publish time.
//!
//! Criterion times wall clock, which on a shared 2-core machine depends on who else runs; so
//! each benchmark also prints the CPU time this process spent per event over all its runs
//! (`cpu:` lines, from `/proc/self/stat`, every thread), and the Kafka one the broker's CPU per
//! event too (the process named `tansu`, or `CLEARING_BENCH_BROKER_PID`).
//!
//! `cargo bench -p clearing --bench ledger` (needs PostgreSQL and the broker: ops/setup.sh,
//! ops/kafka.sh start). `CLEARING_BENCH_BROKERS` points the Kafka benchmark at another broker
//! (e.g. a tansu with memory storage beside the SQLite-backed one).

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

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux x86-64).
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// User + system CPU seconds of a process so far (all its threads, finished ones included).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLOCK_TICKS_PER_S)
}

/// The broker's pid: `CLEARING_BENCH_BROKER_PID`, or the first process named `tansu`.
fn broker_pid() -> Option<String> {
    if let Ok(pid) = std::env::var("CLEARING_BENCH_BROKER_PID") {
        return Some(pid);
    }
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{name}/comm")).ok()?;
        (comm.trim() == "tansu").then_some(name)
    })
}

/// CPU and wall time summed over the timed parts of a benchmark's runs.
#[derive(Default)]
struct CpuTally {
    events: u64,
    wall: Duration,
    cpu_s: f64,
    broker_cpu_s: f64,
    /// Kafka: events applied after the first batch, and the wall time they took (the rate once
    /// the group has joined and the first fetch arrived).
    steady_events: u64,
    steady_wall: Duration,
}

impl CpuTally {
    fn print(&self, name: &str) {
        if self.events == 0 {
            return;
        }
        let per_event_us = |s: f64| s * 1e6 / self.events as f64;
        let broker = if self.broker_cpu_s > 0.0 {
            format!(", broker {:.2} µs", per_event_us(self.broker_cpu_s))
        } else {
            String::new()
        };
        let steady = if self.steady_events > 0 {
            format!(
                "; after each run's first batch {:.0} events/s",
                self.steady_events as f64 / self.steady_wall.as_secs_f64()
            )
        } else {
            String::new()
        };
        println!(
            "cpu: {name}: {} events, {:.0} events/s of wall time, this process {:.2} µs CPU per event{broker}{steady}",
            self.events,
            self.events as f64 / self.wall.as_secs_f64(),
            per_event_us(self.cpu_s),
        );
    }
}

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
    pipelined: bool,
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
    let tally = std::cell::RefCell::new(CpuTally::default());
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let ledger = ledger.clone();
            let batches: Vec<Vec<Delivery>> =
                (0..iters).map(|_| deliveries(&mut offset, BATCH)).collect();
            let tally = &tally;
            async move {
                let cpu = cpu_seconds("self").unwrap_or(0.0);
                let start = Instant::now();
                if pipelined {
                    let mut batches = batches.into_iter();
                    let decode = |b: Option<Vec<Delivery>>| {
                        tokio::task::spawn_blocking(move || b.map(Ledger::decode))
                    };
                    let mut next = decode(batches.next());
                    while let Some(decoded) = next.await.expect("decoder") {
                        let decoded = decoded.expect("decode");
                        next = decode(batches.next());
                        ledger.apply_decoded(name, &decoded).await.expect("apply");
                    }
                } else {
                    for batch in &batches {
                        ledger.apply_batch(name, batch).await.expect("apply");
                    }
                }
                let wall = start.elapsed();
                let mut t = tally.borrow_mut();
                t.events += iters * BATCH as u64;
                t.wall += wall;
                t.cpu_s += cpu_seconds("self").unwrap_or(0.0) - cpu;
                wall
            }
        })
    });
    group.finish();
    tally.borrow().print(&format!("ledger_apply/{name}"));
    rt.block_on(ledger.db().close());
}

fn decode(c: &mut Criterion) {
    let batch = payloads(BATCH);
    let mut group = c.benchmark_group("ledger_apply");
    group.throughput(Throughput::Elements(BATCH as u64));
    let tally = std::cell::RefCell::new(CpuTally::default());
    group.bench_function("decode_validate_only", |b| {
        b.iter_custom(|iters| {
            let cpu = cpu_seconds("self").unwrap_or(0.0);
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(decode_all(&batch));
            }
            let wall = start.elapsed();
            let mut t = tally.borrow_mut();
            t.events += iters * BATCH as u64;
            t.wall += wall;
            t.cpu_s += cpu_seconds("self").unwrap_or(0.0) - cpu;
            wall
        })
    });
    group.finish();
    tally.borrow().print("ledger_apply/decode_validate_only");
}

/// Decodes and validates every payload on this thread; the count of valid events.
fn decode_all(batch: &[Vec<u8>]) -> usize {
    batch
        .iter()
        .filter(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| schemas::events::SettlementEvent::from_json(s).ok())
                .is_some()
        })
        .count()
}

fn ledger_apply(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    bench_apply(
        c,
        &rt,
        "sqlite_batch_2000",
        LedgerDbConfig::sqlite(dir.path().join("l.db")),
        false,
    );
    bench_apply(
        c,
        &rt,
        "sqlite_pipelined_2000",
        LedgerDbConfig::sqlite(dir.path().join("p.db")),
        true,
    );
    let schema = format!("clearing_bench_{}", std::process::id());
    let url = "postgres://postgres@127.0.0.1:5432/test".to_owned();
    for (name, pipelined) in [
        ("postgres_batch_2000", false),
        ("postgres_pipelined_2000", true),
    ] {
        bench_apply(
            c,
            &rt,
            name,
            LedgerDbConfig::Postgres {
                url: url.clone(),
                schema: Some(schema.clone()),
                connections_max: 4,
            },
            pipelined,
        );
    }
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
    let brokers =
        std::env::var("CLEARING_BENCH_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let broker = broker_pid();
    let tally = std::cell::RefCell::new(CpuTally::default());
    group.bench_function("consume_apply", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let round = &round;
            let (brokers, broker, tally) = (&brokers, &broker, &tally);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = round.fetch_add(1, Ordering::Relaxed);
                    let topic = EventFamily::SettlementV1.topic(&format!("bench{run}x{r}"));
                    let bus = KafkaBus::new(KafkaConfig::new(brokers)).expect("producer");
                    bus.ensure_topic(&topic, 4).await.expect("broker");
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
                    let cpu = cpu_seconds("self").unwrap_or(0.0);
                    let broker_cpu = broker.as_deref().and_then(cpu_seconds).unwrap_or(0.0);
                    let start = Instant::now();
                    let mut sub = bus
                        .subscribe(&format!("g{run}x{r}"), &[&topic])
                        .expect("consumer");
                    let stats = ConsumerStats::default();
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    let watcher = async {
                        let mut first: Option<(Instant, u64)> = None;
                        loop {
                            let applied = stats.events_applied.load(Ordering::Relaxed);
                            if first.is_none() && applied > 0 {
                                first = Some((Instant::now(), applied));
                            }
                            if applied >= EVENTS as u64 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        let _ = tx.send(true);
                        first
                    };
                    let config = ConsumerConfig::new("bench");
                    let (done, first) = tokio::join!(
                        consumer::run(&ledger, &mut sub, &config, &stats, rx),
                        watcher
                    );
                    done.expect("consume");
                    let wall = start.elapsed();
                    total += wall;
                    {
                        let mut t = tally.borrow_mut();
                        if let Some((at, applied)) = first {
                            t.steady_events += EVENTS as u64 - applied;
                            t.steady_wall += wall.saturating_sub(at.duration_since(start));
                        }
                        t.events += EVENTS as u64;
                        t.wall += wall;
                        t.cpu_s += cpu_seconds("self").unwrap_or(0.0) - cpu;
                        t.broker_cpu_s +=
                            broker.as_deref().and_then(cpu_seconds).unwrap_or(0.0) - broker_cpu;
                    }
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
    tally
        .borrow()
        .print(&format!("kafka/consume_apply ({brokers})"));
}

criterion_group!(benches, decode, ledger_apply, kafka);
criterion_main!(benches);
