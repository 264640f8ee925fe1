//! The consumer against a scripted bus: redelivered (older) offsets are skipped, a jump past the
//! ledger's stored offset makes it seek back, and nothing is applied twice or lost.

mod common;

use clearing::bus::{BusError, BusSubscriber, Delivery};
use clearing::consumer::{self, ConsumerConfig, ConsumerStats};
use common::{delivery, mixed_events, Harness};
use futures_core::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
            if self.position >= self.log.len() {
                return Err(BusError::Closed);
            }
            let end = (self.position + max).min(self.log.len());
            let out = self.log[self.position..end].to_vec();
            self.position = end;
            Ok(out)
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
