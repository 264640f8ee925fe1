//! The wall clock the replay defences read, as a seam: the system's clock in production, one
//! moved by hand in tests that make it jump (an NTP step, an operator's `date -s`, a VM resumed
//! from a snapshot). Read only where a jump changes a decision: the transmission window of
//! field 7 (`pipeline::replay`) and the purge of old duplicate keys (`node::housekeeping`).
//! Time stamps written with decisions keep `store::now_us`.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A wall clock: the system's, or the system's shifted by an offset a test sets.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: microseconds added to it (negative: behind).
    offset_us: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { offset_us: None }
    }

    /// The system clock, shifted by what [`Clock::jump_to_offset`] sets (nothing at first).
    pub fn adjustable() -> Self {
        Self {
            offset_us: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Makes an adjustable clock read the system's time plus `offset` (negative: behind) from
    /// now on: a jump by the difference with the offset before. No effect on the system clock.
    pub fn jump_to_offset(&self, offset: TimeDelta) {
        if let Some(o) = &self.offset_us {
            o.store(offset.num_microseconds().unwrap_or(0), Ordering::SeqCst);
        }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match &self.offset_us {
            None => now,
            Some(o) => now + TimeDelta::microseconds(o.load(Ordering::SeqCst)),
        }
    }

    /// Now, in microseconds since the epoch.
    pub fn now_us(&self) -> i64 {
        self.now().timestamp_micros()
    }
}
