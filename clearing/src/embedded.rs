//! Clearing inside another process: the entry point `switch demo` uses.
//!
//! [`EmbeddedClearing::start`] opens (and migrates) the ledger's SQLite file, reads the switch's
//! outbox from its SQLite file, and runs relay → [`InProcessBus`] → consumer → ledger as tokio
//! tasks, plus the window closer when the schedule is not manual. The bus's offsets are outbox
//! sequences, so after a restart the relay resumes at the ledger's stored offset: an event
//! published but not applied before a crash is published again, and an applied one is not
//! applied twice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), clearing::ClearingError> {
//! use clearing::embedded::{EmbeddedClearing, EmbeddedConfig};
//! use clearing::window::WindowSchedule;
//! let c = EmbeddedClearing::start(EmbeddedConfig::new(
//!     "switch.db", "clearing.db", WindowSchedule::EveryMinutes(15),
//! )).await?;
//! println!("{:?}", c.positions().await?);
//! println!("{:?}", c.stats().await?);
//! c.shutdown().await?;
//! # Ok(()) }
//! ```

use crate::bus::{EventFamily, InProcessBus};
use crate::clock::Clock;
use crate::consumer::{self, ConsumerConfig, ConsumerStats};
use crate::db::{Db, LedgerDbConfig};
use crate::error::{ClearingError, Result};
use crate::ledger::{Ledger, Positions};
use crate::relay::{Coordination, OutboxSource, Relay, RelayConfig, RelayStats, SqlOutboxSource};
use crate::window::{self, WindowSchedule, WindowSummary};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const GROUP: &str = "embedded";
const RELAY: &str = "embedded";
const TOPIC_PREFIX: &str = "ssc";

/// Settings of the embedded pipeline.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The switch's SQLite database (its `outbox` table is read; must exist).
    pub outbox_sqlite_path: PathBuf,
    /// Clearing's ledger (created and migrated if missing).
    pub ledger_sqlite_path: PathBuf,
    /// Window cut-over.
    pub window: WindowSchedule,
    /// In-process bus capacity, messages.
    pub bus_capacity: usize,
    /// Outbox rows per relay batch.
    pub relay_batch_size: usize,
    /// Deliveries per ledger transaction.
    pub consumer_batch_size: usize,
    /// Relay poll interval when the outbox is idle, ms.
    pub idle_poll_ms: u64,
}

impl EmbeddedConfig {
    /// Defaults: bus of 65,536 messages, relay batches of 2,000, ledger batches of 2,000, 5 ms
    /// idle poll.
    pub fn new(
        outbox_sqlite_path: impl Into<PathBuf>,
        ledger_sqlite_path: impl Into<PathBuf>,
        window: WindowSchedule,
    ) -> Self {
        EmbeddedConfig {
            outbox_sqlite_path: outbox_sqlite_path.into(),
            ledger_sqlite_path: ledger_sqlite_path.into(),
            window,
            bus_capacity: 65_536,
            relay_batch_size: 2_000,
            consumer_batch_size: 2_000,
            idle_poll_ms: 5,
        }
    }
}

/// Counters of the embedded pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedStats {
    /// Events applied to the ledger since start.
    pub events_applied: u64,
    /// Events dead-lettered since start.
    pub dead_lettered: u64,
    /// Duplicates dropped since start.
    pub duplicates: u64,
    /// Jumps over outbox sequences the bus never delivered, since start (offset-gap dead
    /// letters; zero unless events were lost).
    pub offset_gaps: u64,
    /// Sequences those jumps skipped.
    pub offsets_missing: u64,
    /// Events published by the relay since start.
    pub events_relayed: u64,
    /// Highest outbox sequence written by the switch.
    pub outbox_head_seq: i64,
    /// Highest outbox sequence applied to the ledger.
    pub applied_seq: i64,
    /// Events in the outbox not yet applied (`outbox_head_seq - applied_seq`).
    pub lag_events: i64,
    /// The open settlement window.
    pub current_window: i64,
}

/// The running pipeline.
pub struct EmbeddedClearing {
    ledger: Ledger,
    outbox: Arc<SqlOutboxSource>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<()>>>,
    relay_stats: Arc<RelayStats>,
    consumer_stats: Arc<ConsumerStats>,
}

impl std::fmt::Debug for EmbeddedClearing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedClearing").finish_non_exhaustive()
    }
}

impl EmbeddedClearing {
    /// Opens the ledger and starts relay, consumer and window closer.
    pub async fn start(config: EmbeddedConfig) -> Result<Self> {
        if !config.outbox_sqlite_path.exists() {
            return Err(ClearingError::Config(format!(
                "switch database {} does not exist",
                config.outbox_sqlite_path.display()
            )));
        }
        let db = Db::connect(&LedgerDbConfig::sqlite(&config.ledger_sqlite_path)).await?;
        let ledger = Ledger::new(db.clone());
        let outbox = Arc::new(SqlOutboxSource::sqlite(&config.outbox_sqlite_path).await?);
        let bus = Arc::new(InProcessBus::new(config.bus_capacity)?);
        let topic = EventFamily::SettlementV1.topic(TOPIC_PREFIX);
        // Resume right after the last applied outbox sequence (bus offset = outbox_seq).
        let next = ledger.stored_offset(GROUP, &topic, 0).await?.unwrap_or(1);
        Relay::reset_cursor(&db, RELAY, (next - 1).max(0)).await?;

        let (shutdown, rx) = watch::channel(false);
        let relay_stats = Arc::new(RelayStats::default());
        let consumer_stats = Arc::new(ConsumerStats::default());
        let mut tasks = Vec::new();

        let mut relay_config = RelayConfig::new(RELAY, "embedded");
        relay_config.topic_prefix = TOPIC_PREFIX.into();
        relay_config.batch_size_max = config.relay_batch_size;
        relay_config.idle_poll_ms = config.idle_poll_ms;
        // One process owns outbox reader, bus and ledger: no lease writes, and the switch's
        // database is only read (its writer keeps the write lock to itself).
        relay_config.coordination = Coordination::SingleRelay;
        relay_config.mark_relayed = false;
        {
            let (db, outbox, bus, stats, rx) = (
                db.clone(),
                outbox.clone(),
                bus.clone(),
                relay_stats.clone(),
                rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let relay = Relay::new(&db, &*outbox, &*bus, relay_config);
                let out = relay.run(&stats, rx).await;
                relay.release().await?;
                out
            }));
        }
        {
            let mut subscriber = bus.subscribe().await.ok_or_else(|| {
                ClearingError::Invariant("in-process bus already subscribed".into())
            })?;
            let mut consumer_config = ConsumerConfig::new(GROUP);
            consumer_config.batch_size_max = config.consumer_batch_size;
            consumer_config.poll_wait_ms = 20;
            let (ledger, stats, rx) = (ledger.clone(), consumer_stats.clone(), rx.clone());
            tasks.push(tokio::spawn(async move {
                consumer::run(&ledger, &mut subscriber, &consumer_config, &stats, rx).await
            }));
        }
        if config.window != WindowSchedule::Manual {
            let (ledger, schedule, rx) = (ledger.clone(), config.window, rx.clone());
            tasks.push(tokio::spawn(run_window_closer(ledger, schedule, rx)));
        }
        Ok(EmbeddedClearing {
            ledger,
            outbox,
            shutdown,
            tasks,
            relay_stats,
            consumer_stats,
        })
    }

    /// Live net positions.
    pub async fn positions(&self) -> Result<Positions> {
        self.ledger.positions().await
    }

    /// Counters and lag.
    pub async fn stats(&self) -> Result<EmbeddedStats> {
        let head = self.outbox.head_seq().await?;
        let applied = applied_outbox_seq(&self.ledger).await?;
        let s = &self.consumer_stats;
        Ok(EmbeddedStats {
            events_applied: s.events_applied.load(Ordering::Relaxed),
            dead_lettered: s.dead_lettered.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            offset_gaps: s.offset_gaps.load(Ordering::Relaxed),
            offsets_missing: s.offsets_missing.load(Ordering::Relaxed),
            events_relayed: self.relay_stats.published.load(Ordering::Relaxed),
            outbox_head_seq: head,
            applied_seq: applied,
            lag_events: (head - applied).max(0),
            current_window: window::current_window(&self.ledger).await?,
        })
    }

    /// Closes the open window now.
    pub async fn close_window(&self) -> Result<WindowSummary> {
        window::close_window(&self.ledger).await
    }

    /// The ledger, for reports and queries.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Stops every task (the relay gives up its lease) and closes the databases.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let mut first_error = None;
        for t in self.tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(ClearingError::Invariant(format!("task: {e}")));
                }
            }
        }
        self.ledger.db().close().await;
        first_error.map_or(Ok(()), Err)
    }
}

/// The last outbox sequence the embedded ledger has applied (0 when none): its consumer's next
/// offset less one, since the in-process bus's offsets are the outbox's sequences. The switch's
/// console compares it with the outbox to show clearing's lag.
pub async fn applied_outbox_seq(ledger: &Ledger) -> Result<i64> {
    let topic = EventFamily::SettlementV1.topic(TOPIC_PREFIX);
    Ok(ledger
        .stored_offset(GROUP, &topic, 0)
        .await?
        .map_or(0, |n| n - 1))
}

/// Closes windows at each cut-over of `schedule` until shut down, by the system clock.
pub async fn run_window_closer(
    ledger: Ledger,
    schedule: WindowSchedule,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    run_window_closer_on(ledger, schedule, Clock::system(), CLOSER_TICK, shutdown).await
}

/// How often the window closer reads the wall clock at most (it sleeps less when the next
/// cut-over is nearer).
pub const CLOSER_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes windows at each cut-over of `schedule` by `clock`, reading it every `tick` at most,
/// until shut down.
///
/// The wall clock can jump (an NTP step, a VM resumed from a snapshot); the closer sleeps on
/// the monotonic clock but decides on the wall clock, read again after every sleep:
/// - a jump forward past one or more cut-overs closes the open window once, at the next read
///   (not once per cut-over passed: the windows skipped would be empty), and the next cut-over
///   is the first after the new time;
/// - a jump back never closes a window early, nor twice for the same cut-over: the cut-over
///   due is kept, and the closer waits for the wall clock to reach it again. (Before: the wait
///   was computed once from the wall clock and slept on the monotonic clock, so after a jump
///   back of J the window closed J early, then again at the same cut-over, an extra window.)
pub async fn run_window_closer_on(
    ledger: Ledger,
    schedule: WindowSchedule,
    clock: Clock,
    tick: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let Some(mut due) = schedule.next_cutover_after(clock.now()) else {
        return Ok(());
    };
    loop {
        let now = clock.now();
        if now < due {
            let wait = (due - now).to_std().unwrap_or_default().min(tick);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return Ok(()),
            }
            if *shutdown.borrow() {
                return Ok(());
            }
            continue;
        }
        match window::close_window(&ledger).await {
            Ok(w) => tracing::info!(
                window = w.window_id,
                postings = w.posting_count,
                "window closed"
            ),
            Err(e) => {
                // Not closed: tried again at the next read, still due.
                tracing::warn!(error = %e, "closing the window failed");
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                continue;
            }
        }
        let Some(next) = schedule.next_cutover_after(now.max(due)) else {
            return Ok(());
        };
        due = next;
    }
}
