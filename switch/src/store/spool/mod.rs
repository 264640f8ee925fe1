//! The node's local reversal spool: store-and-forward in front of the store.
//!
//! Why: a bank leg the bank approved must come back when the switch declines the request
//! (ISO 8583:1987 0420, reversal advice, sent until the bank answers 0430). The pipeline
//! queues that 0420 in the same commit as the decline; when the store cannot take the commit
//! (the database is down), the decline and its reversal are appended here instead, fsynced to
//! a file in the node's data directory before the acquirer gets its answer ("durable means
//! fsynced before the answer leaves"), as card switches keep a local SAF file when their host
//! database is away. A task replays the spool into the store with backoff until it takes every
//! record, at node start and whenever something is spooled; once stored, the forwarder sends
//! the 0420 like any other, and the file is compacted.
//!
//! Replays are idempotent: the decline's duplicate key is unique in the store, so a record
//! whose first commit did land (an error in answer only) comes back `Duplicate` and is done,
//! unless the key is held by the approval that the decline followed: that approval's commit
//! outcome was unknown when the acquirer was answered `96`, and it did commit. Then the
//! record's [`Compensation`] (the approval's reversal, with the 0420 for the bank) is committed
//! in its place, itself idempotent under a duplicate key of its own; if the acquirer reversed the
//! approval first (a kiosk that timed out sends its 0400), the store refuses the compensation as
//! `AlreadyReversed` (one approved reversal per original) and the record is done. A
//! record whose ATC another decision has since passed is stored without it (the card's counter
//! already protects the cryptogram; the reversal matters). A record the store refuses for good
//! is set aside in `reversals.spool.refused` with an error log, for the operator and the
//! bank's reconciliation (0500).
//!
//! Without a data directory (library tests that build a pipeline by hand) the spool is held in
//! memory only: the same replay, not durable.

mod compensation;
mod file;
mod journal;
#[cfg(test)]
mod journal_tests;
mod record;
#[cfg(test)]
mod tests;

pub use compensation::{Compensation, CompensationError, COMPENSATION_MTI};
pub use file::{
    Loaded, SpoolError, SpoolFile, LINE_BYTES_MAX, LOCK_FILE, RECORDS_MAX, REFUSED_FILE,
    SPOOL_FILE, UNREADABLE_FILE,
};
pub use journal::{
    read_open, JournalError, LegIntent, LegJournal, Recovered, JOURNAL_FILE, JOURNAL_REWRITE_BYTES,
};
pub use record::{RecordError, SpooledReversal};

use super::writer::{WriteError, WriterHandle};
use super::DecisionError;
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// First wait between replays while the store refuses them; doubled up to the max.
const REPLAY_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between replays.
const REPLAY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The spool of one node (see the module's documentation).
#[derive(Debug)]
pub struct ReversalSpool {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    /// A replay task is running.
    replaying: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// `None`: in memory only.
    file: Option<SpoolFile>,
    /// What the store has not taken yet, oldest first.
    pending: Vec<SpooledReversal>,
}

/// What a replay did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// The store has it (now or before).
    Stored,
    /// The store refused it for good.
    Refused,
    /// The store is away: try again later.
    Later,
    /// The writer has stopped (the node is stopping): the record waits for the next start.
    Stopped,
}

impl ReversalSpool {
    /// The spool of the data directory `dir` (read back, locked), or one in memory when `dir`
    /// is `None`.
    pub fn open(dir: Option<&Path>, metrics: Arc<Metrics>) -> Result<Arc<Self>, SpoolError> {
        let (file, pending) = match dir {
            Some(dir) => {
                let (file, loaded) = SpoolFile::open(dir)?;
                if loaded.torn_tail {
                    tracing::warn!(
                        "reversal spool: a torn last record (crash mid-append) set aside"
                    );
                }
                if loaded.unreadable > 0 {
                    tracing::warn!(
                        lines = loaded.unreadable,
                        file = UNREADABLE_FILE,
                        "reversal spool: unreadable records set aside"
                    );
                }
                if !loaded.records.is_empty() {
                    tracing::warn!(
                        records = loaded.records.len(),
                        "reversal spool: reversals not yet stored, replaying"
                    );
                }
                (Some(file), loaded.records)
            }
            None => (None, Vec::new()),
        };
        metrics
            .reversals_spooled
            .store(pending.len() as u64, Ordering::Relaxed);
        Ok(Arc::new(Self {
            state: Mutex::new(State { file, pending }),
            metrics,
            replaying: AtomicBool::new(false),
        }))
    }

    /// Records waiting for the store.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// True when the store has everything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the spool is on disk.
    pub fn is_durable(&self) -> bool {
        self.lock().file.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `record` (appended and fsynced before this returns) and starts replaying it into
    /// the store through `writer`. `false` when it could not be made durable (no data
    /// directory, a full spool, an I/O error): it is still replayed from memory.
    pub async fn keep(self: &Arc<Self>, record: SpooledReversal, writer: &WriterHandle) -> bool {
        let spool = Arc::clone(self);
        let durable = tokio::task::spawn_blocking(move || spool.append(record))
            .await
            .unwrap_or(false);
        self.replay_in_background(writer.clone());
        durable
    }

    fn append(&self, record: SpooledReversal) -> bool {
        let mut st = self.lock();
        let durable = match st.file.as_mut().map(|f| f.append(&record)) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::error!(error = %e, "reversal kept in memory only: spool not written");
                false
            }
            None => false,
        };
        st.pending.push(record);
        self.metrics
            .reversals_spooled
            .store(st.pending.len() as u64, Ordering::Relaxed);
        durable
    }

    /// Takes the bank-leg intents a previous run left open ([`LegJournal::recover`]): each
    /// appended and fsynced, to be replayed like any spooled decline (see `journal`). Call
    /// before [`LegJournal::start`] empties the journal.
    pub fn adopt(&self, intents: Vec<SpooledReversal>) -> Result<(), SpoolError> {
        let mut st = self.lock();
        for record in intents {
            if let Some(f) = st.file.as_mut() {
                f.append(&record)?;
            }
            st.pending.push(record);
        }
        self.metrics
            .reversals_spooled
            .store(st.pending.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Submits `record` to the store through `writer` (the decline, or the compensation of the
    /// approval it followed when that approval turns out committed); what the store does not
    /// take is kept ([`ReversalSpool::keep`]). Answers what the first submission did, and
    /// whether what was kept is durable.
    pub async fn store_or_keep(
        self: &Arc<Self>,
        record: SpooledReversal,
        writer: &WriterHandle,
    ) -> (Replayed, bool) {
        match replay_one(writer, &record).await {
            Replayed::Stored => (Replayed::Stored, true),
            other => (other, self.keep(record, writer).await),
        }
    }

    /// Starts the replay task unless one runs; it ends when the spool is empty or the writer
    /// has stopped.
    pub fn replay_in_background(self: &Arc<Self>, writer: WriterHandle) {
        if self.replaying.swap(true, Ordering::AcqRel) {
            return;
        }
        let spool = Arc::clone(self);
        tokio::spawn(async move { spool.replay(writer).await });
    }

    async fn replay(self: Arc<Self>, writer: WriterHandle) {
        let mut wait = REPLAY_BACKOFF_MIN;
        loop {
            let batch = self.lock().pending.clone();
            if batch.is_empty() {
                self.replaying.store(false, Ordering::Release);
                // Something spooled between the look and the flag: go on if nobody else will.
                if self.is_empty() || self.replaying.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            let mut done = Vec::new();
            let mut refused = Vec::new();
            let mut later = false;
            for record in batch {
                match replay_one(&writer, &record).await {
                    Replayed::Stored => done.push(record.id()),
                    Replayed::Refused => {
                        done.push(record.id());
                        refused.push(record);
                    }
                    Replayed::Later => {
                        later = true;
                        break;
                    }
                    Replayed::Stopped => {
                        self.replaying.store(false, Ordering::Release);
                        return;
                    }
                }
            }
            if !done.is_empty() {
                let spool = Arc::clone(&self);
                let _ = tokio::task::spawn_blocking(move || spool.forget(&done, &refused)).await;
            }
            if later {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(REPLAY_BACKOFF_MAX);
            } else {
                wait = REPLAY_BACKOFF_MIN;
            }
        }
    }

    /// Drops the records `done` (stored or refused) and compacts the file; `refused` ones are
    /// set aside first.
    fn forget(&self, done: &[crate::store::TransactionId], refused: &[SpooledReversal]) {
        let mut st = self.lock();
        let State { file, pending } = &mut *st;
        if let Some(f) = file.as_ref() {
            let lines: String = refused.iter().map(file::line_of).collect();
            if !lines.is_empty() {
                if let Err(e) = f.set_aside(REFUSED_FILE, lines.as_bytes()) {
                    tracing::error!(error = %e, "refused reversals not set aside");
                }
            }
        }
        pending.retain(|r| !done.contains(&r.id()));
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.rewrite(pending) {
                // The file still holds stored records: replayed again, they come back
                // `Duplicate`, so nothing is lost or doubled.
                tracing::error!(error = %e, "reversal spool not compacted");
            }
        }
        self.metrics
            .reversals_spooled
            .store(pending.len() as u64, Ordering::Relaxed);
    }
}

/// Submits one record; see the module's documentation for what each answer means.
async fn replay_one(writer: &WriterHandle, record: &SpooledReversal) -> Replayed {
    let mut decision = record.decision();
    loop {
        match writer.submit(decision.clone()).await {
            Ok(_) => {
                tracing::info!(
                    bank = ?record.reversal.as_ref().map(|r| &r.destination),
                    "spooled decline and its reversal stored"
                );
                return Replayed::Stored;
            }
            // The request's key is held by the approval this decline followed: it committed
            // although the acquirer was answered 96. Undo it.
            Err(WriteError::Decision(DecisionError::Duplicate {
                existing: Some(existing),
            })) if record
                .compensation
                .as_ref()
                .is_some_and(|c| c.approval_id == existing) =>
            {
                return match &record.compensation {
                    Some(c) => compensate(writer, c).await,
                    None => Replayed::Stored,
                };
            }
            // Its first commit had landed after all: stored.
            Err(WriteError::Decision(DecisionError::Duplicate { .. })) => return Replayed::Stored,
            Err(WriteError::Decision(DecisionError::AtcNotIncreasing { .. }))
                if decision.atc.is_some() =>
            {
                decision.atc = None;
            }
            Err(WriteError::Decision(
                DecisionError::Unavailable(_) | DecisionError::OutcomeUnknown(_),
            ))
            | Err(WriteError::Overloaded) => return Replayed::Later,
            Err(WriteError::Closed) => return Replayed::Stopped,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    bank = ?record.reversal.as_ref().map(|r| &r.destination),
                    amount_fen = record.reversal.as_ref().map(|r| r.amount_fen.get()),
                    reversal = ?record.reversal.as_ref().map(|r| r.reversal_id.0),
                    "spooled reversal refused by the store: set aside in {REFUSED_FILE}"
                );
                return Replayed::Refused;
            }
        }
    }
}

/// Commits the reversal of an approval found committed after its acquirer was answered 96.
async fn compensate(writer: &WriterHandle, c: &Compensation) -> Replayed {
    match writer.submit(c.reversal.clone()).await {
        Ok(_) => {
            tracing::warn!(
                approval = %c.approval_id.0,
                reversal = %c.reversal.transaction.transaction_id.0,
                "an approval answered 96 (its commit outcome unknown) had committed: reversed"
            );
            Replayed::Stored
        }
        // Stored by an earlier attempt whose answer was lost.
        Err(WriteError::Decision(DecisionError::Duplicate { .. })) => Replayed::Stored,
        // The kiosk (or another reversal) reversed the approval first: the money is back once,
        // nothing more to do.
        Err(WriteError::Decision(DecisionError::AlreadyReversed { reversal, .. })) => {
            tracing::warn!(
                approval = %c.approval_id.0,
                reversal = ?reversal.map(|r| r.0),
                "an approval answered 96 had committed and was already reversed: nothing to compensate"
            );
            Replayed::Stored
        }
        Err(WriteError::Decision(
            DecisionError::Unavailable(_) | DecisionError::OutcomeUnknown(_),
        ))
        | Err(WriteError::Overloaded) => Replayed::Later,
        Err(WriteError::Closed) => Replayed::Stopped,
        Err(e) => {
            tracing::error!(
                error = %e,
                approval = %c.approval_id.0,
                "the reversal of an approval answered 96 was refused by the store: set aside in {REFUSED_FILE}"
            );
            Replayed::Refused
        }
    }
}
