//! The single writer: group commit of decisions.
//!
//! Pipeline tasks [`WriterHandle::submit`] a [`Decision`] and wait; one writer task takes
//! whatever is queued (up to `batch_size_max`), commits it as one database transaction through
//! [`Store::commit_decisions`], and only then answers each caller with its own result. So a
//! response leaves the switch only after its decision is durable, and durability costs one
//! fsync per batch rather than per message: under load, batches grow by themselves while the
//! previous commit is in flight.
//!
//! Limits: the queue holds at most `queue_depth_max` decisions. [`WriterHandle::submit`] waits
//! for room (back-pressure); [`WriterHandle::try_submit`] fails fast with
//! [`WriteError::Overloaded`] so a link can decline (91/96) instead of queueing without bound.

use super::model::{BatchOutcome, Committed, Decision};
use super::{DecisionError, Store, DECISIONS_PER_BATCH_MAX};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Default bound of the submission queue.
pub const QUEUE_DEPTH_MAX_DEFAULT: usize = 8_192;
/// Default bound of one group commit.
pub const BATCH_SIZE_MAX_DEFAULT: usize = 512;

/// Writer limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Decisions waiting for the writer, at most.
    pub queue_depth_max: usize,
    /// Decisions per database transaction, at most (≤ [`DECISIONS_PER_BATCH_MAX`]).
    pub batch_size_max: usize,
    /// Run the writer on its own OS thread with its own single-threaded runtime instead of
    /// as a task of the caller's runtime. On SQLite the group commit is SQLite's own work, done
    /// on the calling thread (`sqlite::batch`): on its own thread it blocks nothing else, and no
    /// pipeline task waits behind it. (Most of the ~23 ms commits once measured under load were
    /// SQLite's in-commit checkpoint; see `sqlite::Checkpointer`.) PostgreSQL connections are
    /// tokio sockets, so its writer stays on the caller's runtime.
    pub dedicated_thread: bool,
    /// Group commits under way at once, at most (at least 1; default 1, and
    /// [`Store::GROUP_COMMITS_IN_FLIGHT`] through [`config_for`]). Above 1, the writer takes
    /// the next batch while earlier ones are still committing, so the database works on one
    /// batch while another waits for its round trips and its WAL flush. Safe on PostgreSQL,
    /// whose concurrent transactions order themselves as those of several switch nodes do
    /// (rows locked in id order: holds, accounts, cards; the outbox sequence row last, so
    /// outbox positions stay gap-free in commit order). No use on SQLite, where one
    /// connection writes. A caller still gets its answer only once its own batch is durable.
    ///
    /// Measured with PostgreSQL on the same 2-core VM as the switch and loadgen
    /// (benches/scripts/run.sh `--no-clearing --postgres`, alternating runs): closed loop
    /// 16 x 64, 2 gave 8,534-10,304 tps against 7,330-9,214 with 1; at 16 x 16 (smaller
    /// batches) the two were level, 7,181-7,446 against 7,398-7,521.
    pub commits_in_flight_max: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_depth_max: QUEUE_DEPTH_MAX_DEFAULT,
            batch_size_max: BATCH_SIZE_MAX_DEFAULT,
            dedicated_thread: false,
            commits_in_flight_max: 1,
        }
    }
}

/// Why a submission has no commit result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The queue is full (`try_submit` only).
    #[error("writer queue full")]
    Overloaded,
    /// The writer task has stopped; the decision was not committed.
    #[error("writer stopped")]
    Closed,
    /// The store refused this decision.
    #[error(transparent)]
    Decision(#[from] DecisionError),
}

/// Where the writer commits batches: any [`Store`], or a test double.
pub trait DecisionSink: Send + Sync + 'static {
    /// Commits one batch (see [`Store::commit_decisions`]).
    fn commit(
        &self,
        batch: Vec<Decision>,
        now_us: i64,
    ) -> impl Future<Output = BatchOutcome> + Send;
    /// Runs after a batch's callers have their results, before the next batch is taken (see
    /// [`Store::between_group_commits`]). Nothing by default.
    fn between_batches(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

impl<S: Store> DecisionSink for S {
    fn commit(
        &self,
        batch: Vec<Decision>,
        now_us: i64,
    ) -> impl Future<Output = BatchOutcome> + Send {
        self.commit_decisions(batch, now_us)
    }

    fn between_batches(&self) -> impl Future<Output = ()> + Send {
        self.between_group_commits()
    }
}

/// Counters of the writer, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Batches handed to the store.
    pub batches: u64,
    /// Database transactions those batches used (more than `batches` only after retries).
    pub db_transactions: u64,
    /// Decisions processed (committed or refused).
    pub decisions: u64,
    /// Largest batch so far.
    pub batch_size_peak: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    db_transactions: AtomicU64,
    decisions: AtomicU64,
    batch_size_peak: AtomicU64,
}

/// The writer's bounds, checked.
#[derive(Clone, Copy)]
struct Limits {
    batch_size_max: usize,
    commits_in_flight_max: usize,
}

struct Job {
    decision: Decision,
    reply: oneshot::Sender<Result<Committed, DecisionError>>,
}

/// A cloneable handle to submit decisions to the writer. The writer stops when every handle
/// is dropped, after committing what was queued.
#[derive(Clone)]
pub struct WriterHandle {
    queue: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The default writer of `S`: default limits, on its own thread where the backend prefers
/// it ([`Store::WRITER_ON_OWN_THREAD`]), with its group commits at once
/// ([`Store::GROUP_COMMITS_IN_FLIGHT`]).
pub fn config_for<S: Store>() -> WriterConfig {
    WriterConfig {
        dedicated_thread: S::WRITER_ON_OWN_THREAD,
        commits_in_flight_max: S::GROUP_COMMITS_IN_FLIGHT,
        ..WriterConfig::default()
    }
}

/// Starts the writer: a task on the current tokio runtime, or its own thread when
/// `config.dedicated_thread` (the returned handle then completes when that thread ends).
pub fn spawn<S: DecisionSink>(
    sink: Arc<S>,
    config: WriterConfig,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let (queue, rx) = mpsc::channel(config.queue_depth_max.max(1));
    let counters = Arc::new(Counters::default());
    let limits = Limits {
        batch_size_max: config.batch_size_max.clamp(1, DECISIONS_PER_BATCH_MAX),
        commits_in_flight_max: config.commits_in_flight_max.max(1),
    };
    let writer = run(sink, rx, limits, counters.clone());
    let task = if config.dedicated_thread {
        dedicated(writer)
    } else {
        tokio::spawn(writer)
    };
    (WriterHandle { queue, counters }, task)
}

/// Runs `writer` on a new OS thread with a single-threaded runtime; the returned task ends
/// when the thread does. Should the OS refuse the thread or the runtime, the writer is
/// dropped: every handle then reports [`WriteError::Closed`] (and `/ready` says so), which is
/// what a node without a writer must do, rather than run on silently.
fn dedicated<F: Future<Output = ()> + Send + 'static>(writer: F) -> tokio::task::JoinHandle<()> {
    let (done, finished) = oneshot::channel::<()>();
    let started = std::thread::Builder::new()
        .name("switch-writer".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(writer),
                Err(e) => tracing::error!(error = %e, "writer runtime could not start"),
            }
            let _ = done.send(());
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "writer thread could not start");
    }
    tokio::spawn(async move {
        let _ = finished.await;
    })
}

async fn run<S: DecisionSink>(
    sink: Arc<S>,
    mut rx: mpsc::Receiver<Job>,
    limits: Limits,
    counters: Arc<Counters>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    loop {
        let room = in_flight.len() < limits.commits_in_flight_max;
        tokio::select! {
            // A finished commit first: it frees a slot, and the batch taken next is larger.
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            jobs = take_batch(&mut rx, limits.batch_size_max), if open && room => match jobs {
                Some(jobs) => in_flight.push(commit_batch(Arc::clone(&sink), jobs, Arc::clone(&counters))),
                // Every handle dropped and the queue is empty: finish what is in flight.
                None => open = false,
            },
            else => break,
        }
    }
}

/// Waits for at least one job and takes what is queued, up to `batch_size_max`; `None` once
/// every handle is dropped and the queue is empty. Sized to what is queued, not to the bound:
/// this future is dropped unfinished whenever a commit ends first, so it must not have
/// allocated room for a whole batch before a job arrives.
async fn take_batch(rx: &mut mpsc::Receiver<Job>, batch_size_max: usize) -> Option<Vec<Job>> {
    let first = rx.recv().await?;
    let mut jobs = Vec::with_capacity(rx.len().saturating_add(1).min(batch_size_max));
    jobs.push(first);
    while jobs.len() < batch_size_max {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    Some(jobs)
}

/// One group commit: the batch in one database transaction, then each caller's own result.
async fn commit_batch<S: DecisionSink>(sink: Arc<S>, jobs: Vec<Job>, counters: Arc<Counters>) {
    let (decisions, replies): (Vec<Decision>, Vec<_>) =
        jobs.into_iter().map(|j| (j.decision, j.reply)).unzip();
    let n = decisions.len() as u64;
    let outcome = sink.commit(decisions, super::now_us()).await;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .db_transactions
        .fetch_add(u64::from(outcome.db_transactions), Ordering::Relaxed);
    counters.decisions.fetch_add(n, Ordering::Relaxed);
    counters.batch_size_peak.fetch_max(n, Ordering::Relaxed);
    let mut results = outcome.results.into_iter();
    for reply in replies {
        let result = results.next().unwrap_or(Err(DecisionError::Unavailable(
            "store returned too few results".into(),
        )));
        // A caller that gave up waiting is not an error: its decision is committed anyway.
        let _ = reply.send(result);
    }
    sink.between_batches().await;
}

impl WriterHandle {
    /// Submits a decision, waiting for queue room, and returns once it is committed (or
    /// refused).
    pub async fn submit(&self, decision: Decision) -> Result<Committed, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { decision, reply })
            .await
            .map_err(|_| WriteError::Closed)?;
        Ok(answer.await.map_err(|_| WriteError::Closed)??)
    }

    /// Submits a decision if the queue has room, else fails at once with `Overloaded`.
    pub async fn try_submit(&self, decision: Decision) -> Result<Committed, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Job { decision, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriteError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
            })?;
        Ok(answer.await.map_err(|_| WriteError::Closed)??)
    }

    /// True when the writer task has stopped (nothing more can commit).
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Decisions queued and not yet taken by the writer.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Counters so far.
    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            batches: c.batches.load(Ordering::Relaxed),
            db_transactions: c.db_transactions.load(Ordering::Relaxed),
            decisions: c.decisions.load(Ordering::Relaxed),
            batch_size_peak: c.batch_size_peak.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;
