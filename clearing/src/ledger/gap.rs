//! Offset gaps: a partition's deliveries that jump past the ledger's stored next offset.
//!
//! The consumer seeks back when the bus runs ahead of the ledger (see `consumer`). When the
//! broker cannot go back (retention already deleted those offsets, or a broker that does not
//! honour a seek into a batch: tansu with memory storage was seen doing so), the consumer takes
//! what exists. The events in between never reach the ledger: in a clearing ledger those are
//! money movements, so the jump is never silent. The planner notes it against the offsets it
//! read inside the batch's transaction, and the batch writes it as a `dead_letter` row with
//! reason code [`OFFSET_GAP_CODE`] in the same transaction as the offset that moves past it:
//! the record and the offset advance commit together, and a replay of the batch (its offsets
//! then below the stored one) records nothing again.
//!
//! The relay's Kafka producer is idempotent, not transactional, and the in-process bus numbers
//! messages by the gap-free outbox sequence, so neither leaves holes of its own: any jump is
//! events lost. (A transactional producer's commit markers would take offsets; this check would
//! have to learn them first.)
//!
//! Row form: `bus_offset` is the first missing offset, `event_id` is NULL, `reason` names the
//! range in words and `payload` is a [`GapRecord`] in JSON (not an event: readers tell the two
//! apart by `reason_code`).

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// `dead_letter.reason_code` of an offset gap.
pub const OFFSET_GAP_CODE: &str = "offset_gap";

/// A jump in one partition's offsets found while planning a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetGap<'a> {
    /// Bus topic.
    pub topic: &'a str,
    /// Bus partition.
    pub partition: i32,
    /// The offsets never delivered: from the ledger's next offset up to the delivered one.
    pub missing: Range<i64>,
}

impl OffsetGap<'_> {
    /// How many offsets are missing.
    pub fn count(&self) -> u64 {
        u64::try_from(self.missing.end - self.missing.start).unwrap_or(0)
    }

    /// `dead_letter.reason`: the range in words.
    pub fn reason(&self) -> String {
        format!(
            "offsets {}..={} of {} partition {} never delivered ({} missing): the bus went on at \
             {} (retention, or a seek the broker did not honour)",
            self.missing.start,
            self.missing.end - 1,
            self.topic,
            self.partition,
            self.count(),
            self.missing.end
        )
    }

    /// `dead_letter.payload`: the [`GapRecord`] in JSON.
    pub fn payload(&self, consumer_group: &str) -> String {
        let record = GapRecord {
            consumer_group: consumer_group.to_owned(),
            first_missing_offset: self.missing.start,
            last_missing_offset: self.missing.end - 1,
            missing_offsets: self.count(),
            delivered_offset: self.missing.end,
        };
        // A struct of strings and integers always serialises.
        serde_json::to_string(&record).unwrap_or_default()
    }
}

/// The payload of an offset-gap dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapRecord {
    /// The consumer group whose stored offset was passed.
    pub consumer_group: String,
    /// The first offset never delivered (also the row's `bus_offset`).
    pub first_missing_offset: i64,
    /// The last offset never delivered.
    pub last_missing_offset: i64,
    /// How many (`last - first + 1`).
    pub missing_offsets: u64,
    /// The offset the bus delivered instead of `first_missing_offset`.
    pub delivered_offset: i64,
}

impl GapRecord {
    /// The missing offsets as a range (end exclusive).
    pub fn missing(&self) -> Range<i64> {
        self.first_missing_offset..self.last_missing_offset + 1
    }
}
