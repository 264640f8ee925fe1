//! Outbox relays: several running at once publish every outbox row, in outbox order, and a
//! relay that dies holding the lease is replaced once the lease expires.

mod common;

use clearing::bus::{BusSubscriber, InProcessBus};
use clearing::relay::{Relay, RelayConfig, RelayStats};
use common::{mixed_events, Harness, TestOutbox};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const EVENTS: u32 = 1_500;

async fn two_relays_never_lose_or_reorder(h: Harness, outbox: TestOutbox) {
    let outbox = Arc::new(outbox);
    let bus = Arc::new(InProcessBus::new(200_000).unwrap());
    let mut subscriber = bus.subscribe().await.unwrap();
    let db = Arc::new(h.ledger.db().clone());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);

    let writer = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            for chunk in mixed_events(EVENTS, 0).chunks(50) {
                outbox.append(chunk).await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let spawn_relay = |holder: &'static str| {
        let (db, outbox, bus, rx) = (db.clone(), outbox.clone(), bus.clone(), stop_rx.clone());
        let stats = Arc::new(RelayStats::default());
        let s = stats.clone();
        let task = tokio::spawn(async move {
            let source = outbox.source().await;
            let mut config = RelayConfig::new("switch-outbox", holder);
            config.batch_size_max = 100;
            config.idle_poll_ms = 2;
            config.lease_ms = 300;
            Relay::new(&db, &source, &*bus, config).run(&s, rx).await
        });
        (task, stats)
    };
    let (relay_a, stats_a) = spawn_relay("relay-a");
    while stats_a.published.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (relay_b, stats_b) = spawn_relay("relay-b");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // relay-a dies without giving up its lease: relay-b must take over after it expires.
    relay_a.abort();

    let mut received = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < EVENTS as usize {
        let batch = tokio::time::timeout(
            Duration::from_secs(30),
            subscriber.next_batch(1_000, Duration::from_millis(100)),
        )
        .await
        .expect("relays stalled")
        .unwrap();
        for d in batch {
            seen.insert(d.offset);
            received.push(d);
        }
    }
    writer.await.unwrap();
    let _ = stop.send(true);
    relay_b.await.unwrap().unwrap();

    assert!(stats_b.published.load(Ordering::Relaxed) > 0);
    assert!(
        stats_b.lease_waits.load(Ordering::Relaxed) > 0,
        "relay-b waited for the lease"
    );
    // First occurrences in outbox order, every sequence present, no gap.
    let mut first = Vec::new();
    let mut dedup = std::collections::HashSet::new();
    for d in &received {
        if dedup.insert(d.offset) {
            first.push(d.offset);
        }
    }
    assert_eq!(first, (1..=i64::from(EVENTS)).collect::<Vec<_>>());
    // Into the ledger: exactly once, whatever the duplicates.
    for chunk in received.chunks(1_000) {
        h.ledger.apply_batch("g", chunk).await.unwrap();
    }
    assert_eq!(
        h.ledger.counts().await.unwrap().events_applied,
        i64::from(EVENTS)
    );
    assert_eq!(h.ledger.positions().await.unwrap().sum_fen(), 0);
    let expected: i64 = mixed_events(EVENTS, 0)
        .iter()
        .map(|e| e.amount_fen.get())
        .sum();
    assert_eq!(h.ledger.posted_total_fen().await.unwrap(), expected);
    drop(db);
    match Arc::try_unwrap(outbox) {
        Ok(o) => o.cleanup().await,
        Err(_) => panic!("outbox still shared"),
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_sqlite_never_lose_or_reorder_events() {
    two_relays_never_lose_or_reorder(Harness::sqlite().await, TestOutbox::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_postgres_never_lose_or_reorder_events() {
    two_relays_never_lose_or_reorder(Harness::postgres().await, TestOutbox::postgres().await).await;
}
