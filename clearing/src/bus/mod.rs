//! The settlement bus: how events travel from the outbox relay to the ledger consumers.
//!
//! Two implementations behind one trait: [`InProcessBus`] (a bounded in-memory log, the embedded
//! default used by `switch demo`) and [`KafkaBus`] (rdkafka; plain Kafka protocol, so Apache
//! Kafka, Redpanda or tansu alike). Messages are keyed by the acquiring institution (the event's
//! `partition_key`), so all events of one institution land in one partition in publish order: a
//! hold, its completion and its reversal are consumed in the order the switch committed them.
//!
//! Topic per event family: every settlement event type is one family, `<prefix>.settlement.v1`,
//! because a hold and the completion or reversal acting on it must share a partition to stay
//! ordered; a future family (card lifecycle, say) gets its own topic.
//!
//! Consumers never trust the bus's committed offsets: the ledger stores the next offset of each
//! partition with the postings, and a subscriber seeks there (see `consumer`).

mod in_process;
mod kafka;

pub use in_process::InProcessBus;
pub use kafka::{KafkaBus, KafkaConfig, KafkaTls};

use futures_core::future::BoxFuture;
use std::time::Duration;

/// Families of events, one topic each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFamily {
    /// `schemas::events::SettlementEvent`, schema version 1.
    SettlementV1,
}

impl EventFamily {
    /// The topic of this family under `prefix` (e.g. `ssc` gives `ssc.settlement.v1`).
    pub fn topic(self, prefix: &str) -> String {
        match self {
            EventFamily::SettlementV1 => format!("{prefix}.settlement.v1"),
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Topic.
    pub topic: String,
    /// Ordering key: the acquiring institution.
    pub key: String,
    /// The event's JSON form.
    pub payload: Vec<u8>,
    /// The outbox sequence it came from (the in-process bus uses it as offset, so an embedded
    /// restart resumes from the ledger's stored offset).
    pub source_seq: i64,
}

/// A message as consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// The event's JSON form (may be anything: poison is dead-lettered, never trusted).
    pub payload: Vec<u8>,
}

/// Bus failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The Kafka client reported an error.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A publish was not acknowledged in time.
    #[error("publish not acknowledged within {0:?}")]
    PublishTimeout(Duration),
    /// The in-process bus was closed.
    #[error("bus closed")]
    Closed,
    /// A bound was exceeded or a setting is invalid.
    #[error("bus configuration: {0}")]
    Config(String),
}

/// Publishing side.
pub trait SettlementBus: Send + Sync {
    /// Publishes a batch and returns once every message is acknowledged (Kafka: acks=all from
    /// the idempotent producer), in order per key.
    fn publish<'a>(&'a self, batch: &'a [Outbound]) -> BoxFuture<'a, Result<(), BusError>>;
}

/// Consuming side of one consumer-group member.
pub trait BusSubscriber: Send {
    /// Up to `max` deliveries, waiting at most `wait` for the first one.
    fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, BusError>>;

    /// Moves the read position of a partition to `offset` (the ledger's stored next offset).
    /// Ok(false): this bus cannot rewind (the consumer then takes deliveries as they come).
    fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<bool, BusError>;

    /// True once after each change of the partitions assigned to this member (the consumer
    /// then re-reads stored offsets: another member may have advanced them).
    fn take_rebalanced(&mut self) -> bool;

    /// Tells the bus how far the ledger got (a hint for the broker's committed offsets; the
    /// ledger's stored offsets remain the truth).
    fn applied(&mut self, offsets: &[(String, i32, i64)]);
}
