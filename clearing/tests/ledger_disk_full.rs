//! A full disk under the clearing ledger (issue 28). The ledger is SQLite on a small tmpfs
//! mounted for the test; its consumer reads a topic of its own on the Kafka-protocol broker
//! (127.0.0.1:9092, ops/kafka.sh; CLEARING_TEST_BROKERS overrides). Injected: the tmpfs filled
//! to `ENOSPC` (a filler file) while 2,000 events arrive, then the filler deleted.
//!
//! Asserted: the consumer stops with an error that says the disk is full (it gives up after its
//! `apply_attempts_max` attempts, as `clearing run` exits for its supervisor to restart it); the
//! ledger's stored offset does not move while the disk is full and the group's offset committed
//! to the broker is never past it; once the space is back a consumer started again in the same
//! group applies the rest exactly once: events applied = events published, posted total = their
//! amounts, positions sum to zero, stored offset = the topic's end, and the broker's committed
//! offset reaches it.
//!
//! FAILS (never skips) when no broker listens or the tmpfs cannot be mounted (root needed).

mod common;

use clearing::bus::{EventFamily, KafkaBus, KafkaConfig, Outbound, SettlementBus};
use clearing::consumer::{ConsumerConfig, ConsumerStats};
use clearing::db::{Db, LedgerDbConfig};
use clearing::ledger::Ledger;
use common::mixed_events;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn brokers() -> String {
    std::env::var("CLEARING_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn require_broker() {
    let addr = brokers();
    let first = addr.split(',').next().unwrap_or_default().to_owned();
    let reachable = first
        .parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok());
    assert!(
        reachable.is_some(),
        "the ledger disk-full test needs a broker at {addr} (run ops/kafka.sh start, after ops/setup.sh)"
    );
}

/// A tmpfs of `size` on a fresh folder, lazily unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "the ledger disk-full test needs a tmpfs of its own (mount as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path, _dir: dir }
    }

    /// Writes a filler until `ENOSPC`; returns the bytes written.
    fn fill(&self) -> u64 {
        let mut f = std::fs::File::create(self.path.join("filler")).expect("filler");
        let mut written = 0u64;
        for chunk in [1 << 20, 4096, 512] {
            let block = vec![0x5Au8; chunk];
            loop {
                match f.write(&block) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                    Err(e) => panic!("filling the disk: {e}"),
                }
            }
        }
        written
    }

    fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).expect("filler removed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The offset the broker holds as committed for `group` on partition 0 of `topic`.
fn committed(group: &str, topic: &str) -> Option<i64> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    match got.find_partition(topic, 0).map(|p| p.offset()) {
        Some(Offset::Offset(o)) => Some(o),
        _ => None,
    }
}

async fn publish(bus: &KafkaBus, topic: &str, events: &[schemas::events::SettlementEvent]) {
    for chunk in events.chunks(500) {
        let msgs: Vec<Outbound> = chunk
            .iter()
            .map(|e| Outbound {
                topic: topic.to_owned(),
                key: e.partition_key().as_str().to_owned(),
                payload: e.to_json().expect("json").into_bytes(),
                source_seq: 0,
            })
            .collect();
        bus.publish(&msgs).await.expect("publish");
    }
}

fn consumer(
    ledger: &Ledger,
    group: &str,
    topic: &str,
) -> (
    tokio::task::JoinHandle<Result<(), clearing::ClearingError>>,
    tokio::sync::watch::Sender<bool>,
) {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (ledger, group, topic) = (ledger.clone(), group.to_owned(), topic.to_owned());
    let task = tokio::spawn(async move {
        let bus = KafkaBus::new(KafkaConfig::new(brokers())).expect("bus");
        let mut subscriber = bus.subscribe(&group, &[&topic]).expect("subscribe");
        let config = ConsumerConfig::new(group.clone());
        let stats = Arc::new(ConsumerStats::default());
        clearing::consumer::run(&ledger, &mut subscriber, &config, &stats, rx).await
    });
    (task, stop)
}

async fn wait_for(what: &str, bound: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ok().await {
        assert!(started.elapsed() < bound, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ledger_path(disk: &Path) -> PathBuf {
    disk.join("ledger.db")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ledger_disk_stops_the_consumer_without_committing_past_it_and_the_rest_applies_once(
) {
    require_broker();
    let started = Instant::now();
    let disk = SmallDisk::mount("16m");
    let db = Db::connect(&LedgerDbConfig::sqlite(ledger_path(&disk.path)))
        .await
        .expect("ledger on the small disk");
    let ledger = Ledger::new(db);
    let prefix = common::unique_schema("full");
    let group = common::unique_schema("gfull");
    let topic = EventFamily::SettlementV1.topic(&prefix);
    let bus = KafkaBus::new(KafkaConfig::new(brokers())).expect("bus");
    bus.ensure_topic(&topic, 1).await.expect("topic");

    const BEFORE: u32 = 100;
    const DURING: u32 = 2_000;
    let events = mixed_events(BEFORE + DURING, 50_000);
    let expected_fen: i64 = events.iter().map(|e| e.amount_fen.get()).sum();

    // Healthy: the first 100 applied, their offset stored and committed.
    let (task, _stop) = consumer(&ledger, &group, &topic);
    publish(&bus, &topic, &events[..BEFORE as usize]).await;
    wait_for("the first events", Duration::from_secs(60), async || {
        ledger.counts().await.expect("counts").events_applied == i64::from(BEFORE)
    })
    .await;
    let stored_before = ledger
        .stored_offset(&group, &topic, 0)
        .await
        .expect("offset");
    assert_eq!(stored_before, Some(i64::from(BEFORE)));

    // Full: the rest arrives; the consumer cannot write it and stops with the reason.
    let filled = disk.fill();
    publish(&bus, &topic, &events[BEFORE as usize..]).await;
    let stopped = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the consumer stops within 30 s")
        .expect("consumer task");
    let err = stopped.expect_err("the consumer reports the full disk");
    eprintln!("disk full ({filled} bytes of filler): consumer stopped with: {err}");
    assert!(
        err.to_string().contains("full"),
        "the error says the disk is full: {err}"
    );
    let applied_full = ledger.counts().await.expect("counts").events_applied;
    let stored_full = ledger
        .stored_offset(&group, &topic, 0)
        .await
        .expect("offset");
    assert_eq!(
        applied_full,
        i64::from(BEFORE),
        "nothing applied while full"
    );
    assert_eq!(stored_full, stored_before, "stored offset unmoved");
    let committed_full = committed(&group, &topic);
    assert!(
        committed_full.unwrap_or(0) <= stored_full.unwrap_or(0),
        "the broker's committed offset {committed_full:?} is past what the ledger applied {stored_full:?}"
    );

    // Space back: the consumer is started again (as its supervisor restarts `clearing run`).
    disk.free();
    let (task, stop) = consumer(&ledger, &group, &topic);
    let total = i64::from(BEFORE + DURING);
    wait_for("every event", Duration::from_secs(60), async || {
        ledger.counts().await.expect("counts").events_applied >= total
    })
    .await;
    // A doubling consumer gets the time to show itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = ledger.counts().await.expect("counts");
    assert_eq!(counts.events_applied, total, "each event exactly once");
    assert_eq!(counts.dead_letters, 0);
    assert_eq!(
        ledger.posted_total_fen().await.expect("total"),
        expected_fen
    );
    assert_eq!(ledger.positions().await.expect("positions").sum_fen(), 0);
    assert_eq!(
        ledger
            .stored_offset(&group, &topic, 0)
            .await
            .expect("offset"),
        Some(total)
    );
    wait_for(
        "the broker's committed offset",
        Duration::from_secs(20),
        async || committed(&group, &topic) == Some(total),
    )
    .await;
    stop.send_replace(true);
    task.await
        .expect("consumer")
        .expect("consumer ends cleanly");
    ledger.db().close().await;
    eprintln!("ledger disk full: {:?}", started.elapsed());
}
