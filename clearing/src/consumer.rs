//! The ledger consumer: reads batches from a bus subscriber and applies them to the ledger,
//! exactly once, until shut down.
//!
//! Position handling: the ledger's stored next offset of a partition is the truth. The first
//! delivery of a partition after start or a rebalance is compared with it: an older offset is
//! skipped (already applied), a newer one means the broker would skip events, so the consumer
//! seeks back to the stored offset and drops what it read ahead. The ledger re-checks offsets and
//! event ids inside its transaction, so even a stale view here cannot double-post. When the
//! broker cannot go back (or cannot seek at all), the consumer takes what exists and the ledger
//! records the jump as an `offset_gap` dead letter in the batch's transaction (`ledger::gap`):
//! counted here, never silent.
//!
//! Pipeline (issue 27): while the ledger writes one batch, the next one is polled, filtered
//! and decoded on a blocking thread ([`Ledger::decode`]), so decoding (a quarter of an event's
//! CPU) runs on the other core instead of between two commits. A batch counts as applied (stats,
//! broker hint) only once its transaction committed.

use crate::bus::{BusSubscriber, Delivery};
use crate::error::Result;
use crate::ledger::{ApplyReport, DecodedBatch, Ledger, BATCH_DELIVERIES_MAX};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Consumer group (the key of the stored offsets).
    pub consumer_group: String,
    /// Most deliveries per ledger transaction (≤ [`BATCH_DELIVERIES_MAX`]).
    pub batch_size_max: usize,
    /// How long one poll waits for the first delivery.
    pub poll_wait_ms: u64,
    /// Attempts at one batch when the database fails, before giving up.
    pub apply_attempts_max: u32,
}

impl ConsumerConfig {
    /// Defaults for a group: batches of 2,000, 50 ms polls, 5 attempts.
    pub fn new(consumer_group: impl Into<String>) -> Self {
        ConsumerConfig {
            consumer_group: consumer_group.into(),
            batch_size_max: 2_000,
            poll_wait_ms: 50,
            apply_attempts_max: 5,
        }
    }
}

/// Live counters of a consumer, shared with whoever watches it.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Events that changed the ledger.
    pub events_applied: AtomicU64,
    /// Events seen again (same id).
    pub duplicates: AtomicU64,
    /// Deliveries below the stored offset.
    pub already_consumed: AtomicU64,
    /// Events dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Highest offset applied + 1 of the last batch (single-partition buses: the outbox
    /// sequence applied).
    pub last_next_offset: AtomicU64,
    /// Seeks back to a stored offset.
    pub seeks: AtomicU64,
    /// Jumps over offsets the bus never delivered (each an `offset_gap` dead letter).
    pub offset_gaps: AtomicU64,
    /// Offsets those jumps skipped: events lost on the bus.
    pub offsets_missing: AtomicU64,
}

impl ConsumerStats {
    fn add(&self, r: &ApplyReport) {
        self.events_applied.fetch_add(r.applied, Ordering::Relaxed);
        self.duplicates.fetch_add(r.duplicates, Ordering::Relaxed);
        self.already_consumed
            .fetch_add(r.already_consumed, Ordering::Relaxed);
        self.dead_lettered
            .fetch_add(r.dead_lettered, Ordering::Relaxed);
        self.offset_gaps.fetch_add(r.offset_gaps, Ordering::Relaxed);
        self.offsets_missing
            .fetch_add(r.offsets_missing, Ordering::Relaxed);
    }
}

/// Tracks, per partition, the next offset the ledger expects.
#[derive(Debug, Default)]
struct Positions {
    expected: HashMap<(String, i32), i64>,
    sought: HashSet<(String, i32)>,
}

/// Runs until `shutdown` turns true (or the subscriber closes). Returns an error only when a
/// batch cannot be applied after `apply_attempts_max` attempts (database down).
pub async fn run<S: BusSubscriber + ?Sized>(
    ledger: &Ledger,
    subscriber: &mut S,
    config: &ConsumerConfig,
    stats: &ConsumerStats,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let batch_max = config.batch_size_max.clamp(1, BATCH_DELIVERIES_MAX);
    let wait = Duration::from_millis(config.poll_wait_ms.max(1));
    let mut positions = Positions::default();
    // The batch decoded during the previous turn, written during this one.
    let mut ready: Option<DecodedBatch> = None;
    // The bus closed, or the shutdown signal changed (or its sender went away).
    let (mut closed, mut stopping) = (false, false);
    loop {
        if stopping || *shutdown.borrow() || (closed && ready.is_none()) {
            // What was decoded is written before stopping (nothing polled is left unapplied).
            if let Some(batch) = ready.take() {
                commit(ledger, subscriber, config, stats, &batch).await?;
            }
            return Ok(());
        }
        // With a batch waiting to be written, take only what the bus already holds.
        let poll_wait = if ready.is_some() {
            Duration::ZERO
        } else {
            wait
        };
        let batch = tokio::select! {
            b = subscriber.next_batch(batch_max, poll_wait) => b,
            _ = shutdown.changed() => {
                stopping = true;
                continue;
            }
        };
        let batch = match batch {
            Ok(b) => b,
            Err(crate::bus::BusError::Closed) => {
                closed = true;
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "bus poll failed; retrying");
                if ready.is_none() {
                    tokio::time::sleep(wait).await;
                }
                Vec::new()
            }
        };
        if subscriber.take_rebalanced() {
            // The next filter re-reads stored offsets: the batch in hand is written first, or
            // they would lag it and the filter would seek back over it.
            if let Some(pending) = ready.take() {
                commit(ledger, subscriber, config, stats, &pending).await?;
            }
            positions = Positions::default();
        }
        let batch = if batch.is_empty() {
            batch
        } else {
            filter(ledger, subscriber, config, &mut positions, stats, batch).await?
        };
        if batch.is_empty() && ready.is_none() {
            continue;
        }
        let decoding = async {
            if batch.is_empty() {
                return Ok(None);
            }
            match tokio::task::spawn_blocking(move || Ledger::decode(batch)).await {
                Ok(decoded) => decoded.map(Some),
                Err(e) => Err(crate::error::ClearingError::Invariant(format!(
                    "decoding thread: {e}"
                ))),
            }
        };
        let applying = async {
            match &ready {
                Some(b) => apply_with_retry(ledger, config, b).await.map(Some),
                None => Ok(None),
            }
        };
        let (decoded, report) = tokio::join!(decoding, applying);
        if let (Some(report), Some(done)) = (report?, ready.take()) {
            stats.add(&report);
            subscriber.applied(&next_offsets(done.deliveries(), stats));
        }
        ready = decoded?;
    }
}

/// Writes one decoded batch and counts it (the shutdown path; the loop overlaps the same steps
/// with decoding the next batch).
async fn commit<S: BusSubscriber + ?Sized>(
    ledger: &Ledger,
    subscriber: &mut S,
    config: &ConsumerConfig,
    stats: &ConsumerStats,
    batch: &DecodedBatch,
) -> Result<()> {
    let report = apply_with_retry(ledger, config, batch).await?;
    stats.add(&report);
    subscriber.applied(&next_offsets(batch.deliveries(), stats));
    Ok(())
}

/// The next offset per partition after a committed batch (the broker hint), noting the highest
/// in `stats`.
fn next_offsets(batch: &[Delivery], stats: &ConsumerStats) -> Vec<(String, i32, i64)> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for d in batch {
        let n = next.entry((d.topic.as_str(), d.partition)).or_default();
        *n = (*n).max(d.offset + 1);
        stats
            .last_next_offset
            .fetch_max(u64::try_from(d.offset + 1).unwrap_or(0), Ordering::Relaxed);
    }
    next.into_iter()
        .map(|((t, p), n)| (t.to_owned(), p, n))
        .collect()
}

/// Drops deliveries already applied, and seeks back when the bus jumped ahead of the ledger.
async fn filter<S: BusSubscriber + ?Sized>(
    ledger: &Ledger,
    subscriber: &mut S,
    config: &ConsumerConfig,
    positions: &mut Positions,
    stats: &ConsumerStats,
    batch: Vec<Delivery>,
) -> Result<Vec<Delivery>> {
    let mut out = Vec::with_capacity(batch.len());
    let mut rewound: HashSet<(String, i32)> = HashSet::new();
    for d in batch {
        let key = (d.topic.clone(), d.partition);
        if rewound.contains(&key) {
            continue;
        }
        let expected = match positions.expected.get(&key) {
            Some(e) => Some(*e),
            None => {
                let stored = ledger
                    .stored_offset(&config.consumer_group, &d.topic, d.partition)
                    .await?;
                if let Some(s) = stored {
                    positions.expected.insert(key.clone(), s);
                }
                stored
            }
        };
        match expected {
            Some(e) if d.offset < e => {
                stats.already_consumed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Some(e)
                if d.offset > e
                    && !positions.sought.contains(&key)
                    && subscriber.seek(&d.topic, d.partition, e)? =>
            {
                tracing::info!(topic = %d.topic, partition = d.partition, from = d.offset,
                    to = e, "bus ahead of the ledger; seeking back");
                stats.seeks.fetch_add(1, Ordering::Relaxed);
                positions.sought.insert(key.clone());
                rewound.insert(key);
                continue;
            }
            Some(e) if d.offset > e => {
                // Already sought once and still ahead (or the bus cannot seek): the broker no
                // longer has those offsets (retention) or did not honour the seek. Take what
                // exists; the ledger records the gap with this batch and logs it as an error
                // once committed.
                tracing::warn!(topic = %d.topic, partition = d.partition, expected = e,
                    got = d.offset, "bus still ahead of the ledger; taking what exists");
            }
            _ => {}
        }
        positions.sought.remove(&key);
        positions.expected.insert(key, d.offset + 1);
        out.push(d);
    }
    Ok(out)
}

async fn apply_with_retry(
    ledger: &Ledger,
    config: &ConsumerConfig,
    batch: &DecodedBatch,
) -> Result<ApplyReport> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ledger.apply_decoded(&config.consumer_group, batch).await {
            Ok(r) => return Ok(r),
            Err(e) if attempt < config.apply_attempts_max.max(1) => {
                // Concurrent members applying the same republished event collide on the
                // event-id key; the retry sees the winner's row and skips it.
                tracing::warn!(error = %e, attempt, "applying a batch failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Shared handle to counters.
pub type SharedStats = Arc<ConsumerStats>;
