//! The wall clock the window closer reads, as a seam: the system's clock in production, a
//! clock set by hand in tests that make it jump (an NTP step, an operator's `date -s`, a VM
//! resumed from a snapshot). Only what decides *when* to cut a window over reads it; time
//! stamps written to the ledger keep `db::now_us`.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A wall clock: the system's, or one a test sets.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: microseconds since the epoch, set by hand.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that reads `at` until [`Clock::set`] moves it (either way).
    pub fn manual(at: DateTime<Utc>) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(at.timestamp_micros()))),
        }
    }

    /// Moves a manual clock to `at` (a jump, forward or back); no effect on the system clock.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(m) = &self.manual {
            m.store(at.timestamp_micros(), Ordering::SeqCst);
        }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(m) => DateTime::from_timestamp_micros(m.load(Ordering::SeqCst))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}
