//! The consumer against a scripted bus: redelivered (older) offsets are skipped, a jump past the
//! ledger's stored offset makes it seek back, and nothing is applied twice or lost; offsets the
//! broker can no longer deliver are recorded and counted, never skipped silently.

mod common;

use clearing::bus::{BusError, BusSubscriber, Delivery};
use clearing::consumer::{self, ConsumerConfig, ConsumerStats};
use common::{delivery, mixed_events, Harness};
use futures_core::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Up to `max` deliveries of `log` from `position` on, moving it past them; `Closed` at the end
/// (the fake buses' way of ending a run).
fn next_from(
    log: &[Delivery],
    position: &mut usize,
    max: usize,
) -> Result<Vec<Delivery>, BusError> {
    if *position >= log.len() {
        return Err(BusError::Closed);
    }
    let end = (*position + max).min(log.len());
    let out = log[*position..end].to_vec();
    *position = end;
    Ok(out)
}

/// Replays a log like a broker would: from a read position, which `seek` moves.
struct ScriptedBus {
    log: Vec<Delivery>,
    position: usize,
    /// Batches served before the log is read in order: (start, end) ranges of the log.
    script: VecDeque<(usize, usize)>,
    seeks: Vec<i64>,
}

impl BusSubscriber for ScriptedBus {
    fn next_batch(
        &mut self,
        max: usize,
        _wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, BusError>> {
        Box::pin(async move {
            if let Some((a, b)) = self.script.pop_front() {
                self.position = b;
                return Ok(self.log[a..b].to_vec());
            }
            next_from(&self.log, &mut self.position, max)
        })
    }

    fn seek(&mut self, _topic: &str, _partition: i32, offset: i64) -> Result<bool, BusError> {
        self.seeks.push(offset);
        self.position = usize::try_from(offset).unwrap_or(0);
        Ok(true)
    }

    fn take_rebalanced(&mut self) -> bool {
        false
    }

    fn applied(&mut self, _offsets: &[(String, i32, i64)]) {}
}

#[tokio::test]
async fn replays_and_jumps_ahead_still_apply_each_offset_exactly_once() {
    let h = Harness::sqlite().await;
    let events = mixed_events(300, 0);
    let log: Vec<Delivery> = events
        .iter()
        .enumerate()
        .map(|(o, e)| delivery(o as i64, e))
        .collect();
    // 0..100 in order; 50..120 again (a redelivery after a rebalance); then a jump to 200..250
    // (offsets 120..200 would be skipped); then the log from wherever the seek put us.
    let mut bus = ScriptedBus {
        log,
        position: 0,
        script: VecDeque::from([(0, 100), (50, 120), (200, 250)]),
        seeks: Vec::new(),
    };
    let stats = ConsumerStats::default();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut config = ConsumerConfig::new("g");
    config.batch_size_max = 64;
    consumer::run(&h.ledger, &mut bus, &config, &stats, rx)
        .await
        .unwrap();
    assert_eq!(bus.seeks, vec![120]);
    assert_eq!(stats.events_applied.load(Ordering::Relaxed), 300);
    assert_eq!(stats.already_consumed.load(Ordering::Relaxed), 50);
    let expected: i64 = events.iter().map(|e| e.amount_fen.get()).sum();
    assert_eq!(h.ledger.posted_total_fen().await.unwrap(), expected);
    assert_eq!(
        h.ledger.stored_offset("g", common::TOPIC, 0).await.unwrap(),
        Some(300)
    );
    h.cleanup().await;
}

/// A broker whose log starts past the ledger's stored offset (retention deleted the rest): a seek
/// below its first offset is accepted, and reading goes on from the first offset it still holds
/// (Kafka's `auto.offset.reset=earliest`; tansu with memory storage behaves alike when a seek
/// lands inside a batch).
struct RetainedLog {
    /// The deliveries still held, from offset `log[0].offset` on.
    log: Vec<Delivery>,
    position: usize,
    seeks: Vec<i64>,
}

impl BusSubscriber for RetainedLog {
    fn next_batch(
        &mut self,
        max: usize,
        _wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, BusError>> {
        Box::pin(async move { next_from(&self.log, &mut self.position, max) })
    }

    fn seek(&mut self, _topic: &str, _partition: i32, offset: i64) -> Result<bool, BusError> {
        self.seeks.push(offset);
        let first = self.log.first().map_or(0, |d| d.offset);
        self.position = usize::try_from(offset.max(first) - first).unwrap_or(0);
        Ok(true)
    }

    fn take_rebalanced(&mut self) -> bool {
        false
    }

    fn applied(&mut self, _offsets: &[(String, i32, i64)]) {}
}

/// Runs the consumer over `bus` until it closes.
async fn consume(h: &Harness, bus: &mut RetainedLog, stats: &ConsumerStats) {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut config = ConsumerConfig::new("g");
    config.batch_size_max = 8;
    consumer::run(&h.ledger, bus, &config, stats, rx)
        .await
        .unwrap();
}

/// The ledger consumed offsets 0..10; the broker only holds 15..40. Offsets 10..15 are events
/// lost on the bus: the ledger takes what exists and records the range once, with the batch
/// that jumped it, and the consumer counts it.
async fn offsets_the_broker_lost_are_recorded_once_and_counted(h: Harness) {
    let events = mixed_events(40, 0);
    let log: Vec<Delivery> = events
        .iter()
        .enumerate()
        .map(|(o, e)| delivery(o as i64, e))
        .collect();
    h.ledger.apply_batch("g", &log[..10]).await.unwrap();
    let mut bus = RetainedLog {
        log: log[15..].to_vec(),
        position: 0,
        seeks: Vec::new(),
    };
    let stats = ConsumerStats::default();
    consume(&h, &mut bus, &stats).await;

    assert_eq!(bus.seeks, vec![10], "the consumer first tries to go back");
    let held: Vec<_> = events[..10].iter().chain(&events[15..]).collect();
    assert_eq!(
        h.ledger.posted_total_fen().await.unwrap(),
        held.iter().map(|e| e.amount_fen.get()).sum::<i64>(),
        "every delivered event is in the ledger"
    );
    assert_eq!(
        h.ledger.stored_offset("g", common::TOPIC, 0).await.unwrap(),
        Some(40)
    );
    let dead = h.ledger.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let gap = &dead[0];
    assert_eq!(
        (gap.reason_code.as_str(), gap.offset, gap.event_id),
        ("offset_gap", 10, None)
    );
    assert!(gap.reason.contains("offsets 10..=14"), "{}", gap.reason);
    assert!(gap.reason.contains("5 missing"), "{}", gap.reason);
    let record = gap.offset_gap().expect("a gap record in the payload");
    assert_eq!((record.missing(), record.missing_offsets), (10..15, 5));
    assert_eq!(
        (record.delivered_offset, record.consumer_group.as_str()),
        (15, "g")
    );
    assert_eq!(
        (
            stats.offset_gaps.load(Ordering::Relaxed),
            stats.offsets_missing.load(Ordering::Relaxed),
            stats.events_applied.load(Ordering::Relaxed),
            stats.dead_lettered.load(Ordering::Relaxed),
        ),
        (1, 5, 25, 0)
    );
    let counts = h.ledger.counts().await.unwrap();
    assert_eq!(
        (
            counts.events_applied,
            counts.offset_gaps,
            counts.dead_letters
        ),
        (35, 1, 0)
    );

    // The same deliveries again (a restarted member reading the log from its start): all below
    // the stored offset, and no second gap.
    let mut again = RetainedLog {
        log: log[15..].to_vec(),
        position: 0,
        seeks: Vec::new(),
    };
    let stats = ConsumerStats::default();
    consume(&h, &mut again, &stats).await;
    assert_eq!(
        (
            stats.already_consumed.load(Ordering::Relaxed),
            stats.offset_gaps.load(Ordering::Relaxed),
            stats.events_applied.load(Ordering::Relaxed),
        ),
        (25, 0, 0)
    );
    assert_eq!(h.ledger.dead_letters(10).await.unwrap(), dead);
    h.cleanup().await;
}

#[tokio::test]
async fn offsets_the_broker_lost_are_recorded_once_and_counted_on_sqlite() {
    offsets_the_broker_lost_are_recorded_once_and_counted(Harness::sqlite().await).await;
}

#[tokio::test]
async fn offsets_the_broker_lost_are_recorded_once_and_counted_on_postgres() {
    offsets_the_broker_lost_are_recorded_once_and_counted(Harness::postgres().await).await;
}
