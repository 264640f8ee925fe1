//! The embedded SQLite backend: one file in WAL mode, a pool of read-only connections that WAL
//! lets run beside the writer, and two write connections that never write at once: the group
//! commit's own ([`batch`], on the writer's thread) and sqlx's for the low-volume
//! control plane, which takes the group commit's lock first. SQLite has one writer anyway;
//! taking turns in-process keeps `SQLITE_BUSY` to other processes (the clearing relay).
//!
//! Here: opening the store and its [`Backend`] (the control plane is shared, `super::sql`).
//! The group commit is [`batch`] (with [`batch_load`] and [`batch_write`]); the duplicate keys
//! committed since the last flush to their table are held in memory by [`key_tier`]; the WAL
//! checkpoints off the commit path are [`checkpoint`]; the control plane's writes, which close
//! a connection a failed write leaves behind, are [`control_writes`].

pub mod backup;
mod batch;
mod batch_load;
mod batch_write;
mod checkpoint;
mod control_writes;
mod key_tier;

use super::model::{BatchOutcome, Decision, DuplicateKey, TransactionId};
use super::pan_protector::PanProtector;
use super::sql::driver::{Backend, Run};
use super::sql::Dialect;
use super::StoreError;
use batch::BatchWriter;
use checkpoint::Checkpointer;
use control_writes::{SqliteWriteTx, SqliteWrites};
use key_tier::KeyTier;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqlitePool};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Durability of a commit (`PRAGMA synchronous`). The default is [`SqliteSync::Full`]: an
/// approval a client received must survive a power loss, not only a crash of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// WAL + NORMAL: a commit survives a process crash (kill -9); a power loss may lose the
    /// last commits. An option for test rigs and hosts with a battery-backed write cache.
    Normal,
    /// WAL + FULL: every commit is fsynced before it returns; survives power loss. Default.
    Full,
}

/// Where and how to open the database.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// Database file (created if missing).
    pub path: PathBuf,
    /// Commit durability.
    pub synchronous: SqliteSync,
    /// Read-only connections.
    pub read_connections_max: u32,
    /// How long a statement waits for a lock held by another process.
    pub busy_timeout_ms: u64,
    /// Pause between the background passive checkpoints (see `checkpoint::Checkpointer`).
    pub checkpoint_interval_ms: u64,
    /// WAL size (pages) past which the writer rewinds the log at its next commit.
    pub wal_rewind_pages: i64,
    /// Page size (bytes, a power of two from 512 to 65,536) of a database this store creates;
    /// an existing database keeps the size it was created with (changing it needs a VACUUM
    /// outside WAL mode, <https://www.sqlite.org/pragma.html#pragma_page_size>).
    ///
    /// Why 2,048 and not SQLite's 4,096: most pages a group commit dirties are leaves of
    /// indexes keyed at random (`txn_by_card`, `movement_by_account`, the card and account
    /// rows), one page per decision, and every dirty page is written twice (WAL, then the
    /// checkpoint), so a smaller page writes less for the same decisions. Measured on the
    /// 2-core VM, 10,000/s open loop for 20 s with the database on ext4
    /// (benches/scripts/run.sh, alternating builds): p99 22-29 ms at 2,048 against 67-301 ms
    /// at 4,096 and 43-48 ms at 1,024 (deeper trees and more pages per row; not analysed
    /// further); CPU per request 137-143 us against 152-166 us. An invalid size is ignored by
    /// SQLite, which then keeps its default.
    pub page_size: u32,
}

impl SqliteConfig {
    /// Defaults for `path`: WAL + FULL (power-safe commits), 4 readers, 5 s busy timeout, a background checkpoint
    /// every 100 ms, a rewind of the log past 16,384 pages (32 MiB) and 2 KiB pages.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: SqliteSync::Full,
            read_connections_max: 4,
            busy_timeout_ms: 5_000,
            checkpoint_interval_ms: 100,
            wal_rewind_pages: 16_384,
            page_size: 2_048,
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    pan: Arc<dyn PanProtector>,
    audit_key: crate::store::audit::AuditKeySlot,
    /// The group commit's connection; its lock is also the turn of the control-plane writes
    /// on `write` (tokio's mutex is fair: a control-plane write waits for one batch at most).
    batch: tokio::sync::Mutex<BatchWriter>,
    /// The duplicate keys not yet in `duplicate_key` (the batch writer adds and flushes them).
    tier: Arc<KeyTier>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database and runs the embedded migrations.
    pub async fn open(
        config: &SqliteConfig,
        pan: Arc<dyn PanProtector>,
    ) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::new()
            .filename(&config.path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.synchronous {
                SqliteSync::Normal => SqliteSynchronous::Normal,
                SqliteSync::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .page_size(config.page_size)
            .busy_timeout(Duration::from_millis(config.busy_timeout_ms))
            // SQLite's default page cache (2 MB). A 64 MiB cache measured worse on the
            // 2-core VM (~5% more CPU per transaction, higher p50): at the end of every write
            // transaction SQLite truncates the page cache (`pcache1TruncateUnsafe`), a scan of
            // a hash table that grows with the cache, 3.4% of the switch's CPU at 64 MiB.
            .pragma("temp_store", "memory");
        // No liveness ping before each acquire: a SQLite connection is a file handle in this
        // process, and the ping was a round trip to the connection's worker thread (two
        // context switches) before every read and every group commit.
        let write = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    // No checkpoint inside a commit: see `checkpoint::Checkpointer`.
                    .pragma("wal_autocheckpoint", "0"),
            )
            .await?;
        super::migrate::migrator(schemas::migrations::SQLITE)
            .await?
            .run(&write)
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(config.read_connections_max.max(1))
            .test_before_acquire(false)
            .connect_with(base.clone().read_only(true))
            .await?;
        let checkpoints = Arc::new(Checkpointer::new(config.wal_rewind_pages));
        let batch = BatchWriter::open(config, checkpoints.clone())?;
        let tier = batch.tier();
        let conn = base.connect().await?;
        tokio::spawn(checkpoint::checkpoint_loop(
            conn,
            Arc::downgrade(&checkpoints),
            Duration::from_millis(config.checkpoint_interval_ms.max(1)),
        ));
        Ok(Self {
            read,
            write,
            pan,
            audit_key: Default::default(),
            batch: tokio::sync::Mutex::new(batch),
            tier,
        })
    }

    /// Closes the group commit's connection and both pools (waits for connections to be
    /// returned); later batches fail as unavailable.
    pub async fn close(&self) {
        self.batch.lock().await.close();
        self.write.close().await;
        self.read.close().await;
    }
}

impl Backend for SqliteStore {
    type Row = SqliteRow;
    type Tx = SqliteWriteTx;
    /// The group commit's lock: no group commit runs while a control-plane write holds it.
    type Gate<'a> = tokio::sync::MutexGuard<'a, BatchWriter>;

    const DIALECT: Dialect = Dialect {
        audit_head_for_update: "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
        mark_relayed: "UPDATE outbox SET relayed_at_us = $1 WHERE relayed_at_us IS NULL AND \
            outbox_seq IN (SELECT value FROM json_each($2))",
        applications_in_batch: "SELECT citizen_id, application_id FROM card_application \
            WHERE batch_id = $1 AND citizen_id IN (SELECT value FROM json_each($2))",
    };
    const WRITER_ON_OWN_THREAD: bool = true;
    const GROUP_COMMITS_IN_FLIGHT: usize = 1;

    fn reader(&self) -> impl Run<Row = SqliteRow> + '_ {
        &self.read
    }

    /// A failed statement closes its connection (see [`control_writes`]).
    fn writer(&self) -> impl Run<Row = SqliteRow> + '_ {
        SqliteWrites(&self.write)
    }

    fn pan(&self) -> &dyn PanProtector {
        &*self.pan
    }

    fn audit_key_slot(&self) -> &crate::store::audit::AuditKeySlot {
        &self.audit_key
    }

    async fn write_gate(&self) -> Self::Gate<'_> {
        self.batch.lock().await
    }

    /// `BEGIN IMMEDIATE`; one that does not commit closes its connection (see
    /// [`control_writes`]).
    async fn begin_write(&self) -> Result<Self::Tx, sqlx::Error> {
        SqliteWriteTx::begin(&self.write).await
    }

    /// One group commit on the calling thread (see [`blocking`]).
    async fn group_commit(&self, batch: Vec<Decision>, now_us: i64) -> BatchOutcome {
        let mut writer = self.batch.lock().await;
        blocking(|| writer.commit(&batch, now_us))
    }

    fn unflushed_duplicate(&self, k: &DuplicateKey) -> Option<TransactionId> {
        self.tier.get(k)
    }

    /// Flushes the memory tier of duplicate keys when it is due (see [`key_tier`]): after the
    /// last batch's callers have their results, before the writer takes the next batch.
    async fn between_group_commits(&self) {
        if self.tier.flush_due(std::time::Instant::now()) {
            let mut writer = self.batch.lock().await;
            blocking(|| writer.flush_keys_if_due());
        }
    }

    fn flush_duplicate_keys(&self, gate: &mut Self::Gate<'_>) -> Result<(), StoreError> {
        Ok(blocking(|| gate.flush_all_keys())?)
    }

    /// On the group commit's connection: staged for the next group commit, or after
    /// [`ANSWERS_LINGER`] without one, written in a transaction of their own (see [`batch`]).
    async fn record_answers_own_way(
        &self,
        answers: &[(DuplicateKey, String)],
    ) -> Option<Result<u64, StoreError>> {
        let mut written = self.batch.lock().await.stage_answers(answers.to_vec());
        if let Ok(done) = tokio::time::timeout(ANSWERS_LINGER, &mut written).await {
            return Some(answers_written(done));
        }
        {
            let mut writer = self.batch.lock().await;
            blocking(|| writer.flush_answers());
        }
        Some(answers_written(written.await))
    }
}

/// Runs SQLite work on the calling thread: the writer's own (see
/// [`crate::store::writer::WriterConfig::dedicated_thread`]), or, on a worker of a
/// multi-threaded runtime, telling tokio the worker is blocked.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// How long staged answers wait for a group commit to take them before they are written on
/// their own. Under load a group commit comes every few milliseconds (tens on a busy 2-core
/// machine with `FULL` commits); a retransmission of an approval waits up to 200 ms for its
/// original's answer (`pipeline::replay`).
const ANSWERS_LINGER: Duration = Duration::from_millis(50);

/// A staged call's result; a dropped sender means the store closed first.
fn answers_written(
    done: Result<Result<u64, rusqlite::Error>, tokio::sync::oneshot::error::RecvError>,
) -> Result<u64, StoreError> {
    match done {
        Ok(found) => Ok(found?),
        Err(_) => Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some("store closed before the answers were written".into()),
        ))),
    }
}
