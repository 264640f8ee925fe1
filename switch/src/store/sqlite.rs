//! The embedded SQLite backend: one file in WAL mode, a single write connection (SQLite has one
//! writer anyway; owning it avoids `SQLITE_BUSY` between our own connections) and a pool of
//! read-only connections that WAL lets run beside the writer.

use super::pan_protector::PanProtector;
use super::sql::{impl_store, Dialect};
use super::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, SqlitePool};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Durability of a commit (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// WAL + NORMAL: a commit survives a process crash (kill -9); a power loss may lose the
    /// last commits. The usual choice with WAL.
    Normal,
    /// WAL + FULL: every commit is fsynced; survives power loss.
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
    /// Pause between the background passive checkpoints (see `Checkpointer` in this module).
    pub checkpoint_interval_ms: u64,
    /// WAL size (pages) past which the writer rewinds the log at its next commit.
    pub wal_rewind_pages: i64,
}

impl SqliteConfig {
    /// Defaults for `path`: WAL + NORMAL, 4 readers, 5 s busy timeout, a background checkpoint
    /// every 100 ms and a rewind of the log past 16,384 pages (64 MiB).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: SqliteSync::Normal,
            read_connections_max: 4,
            busy_timeout_ms: 5_000,
            checkpoint_interval_ms: 100,
            wal_rewind_pages: 16_384,
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    pub(super) read: SqlitePool,
    pub(super) write: SqlitePool,
    pub(super) pan: Arc<dyn PanProtector>,
    checkpoints: Arc<Checkpointer>,
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
                    // No checkpoint inside a commit: see `Checkpointer`.
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
        let checkpoints = Arc::new(Checkpointer {
            rewind_due: AtomicBool::new(false),
            rewind_pages: config.wal_rewind_pages.max(1),
        });
        let conn = base.connect().await?;
        tokio::spawn(checkpoint_loop(
            conn,
            Arc::downgrade(&checkpoints),
            Duration::from_millis(config.checkpoint_interval_ms.max(1)),
        ));
        Ok(Self {
            read,
            write,
            pan,
            checkpoints,
        })
    }

    /// Closes both pools (waits for connections to be returned).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// `BEGIN IMMEDIATE`: take the write lock at the start, so a transaction never fails
    /// half-way on a lock upgrade.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        if self.checkpoints.rewind_due.load(Ordering::Relaxed) {
            self.catch_up_and_rewind().await;
        }
        self.write.begin_with("BEGIN IMMEDIATE").await
    }

    /// The writer's part of checkpointing: a last passive checkpoint from the write connection
    /// between two commits, so that the log is fully copied when the next commit begins, which
    /// then writes from the start of the log again. It copies only what the checkpointer has
    /// not, but ends with an fsync of the database file: the one stall of the writer, once per
    /// `wal_rewind_pages` of log.
    async fn catch_up_and_rewind(&self) {
        // At most one catch-up per request of the checkpointer (one per interval), even when
        // a long reader keeps the log from being fully copied.
        self.checkpoints.rewind_due.store(false, Ordering::Relaxed);
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.write)
            .await
        {
            tracing::warn!(error = %e, "WAL catch-up checkpoint failed");
        }
    }

    /// Rows as multi-row `VALUES` with bound parameters: binding is in-process here, and it
    /// measured 40% faster than one JSON parameter per table.
    async fn write_batch(
        tx: &mut sqlx::Transaction<'static, Sqlite>,
        decisions: &[super::Decision],
        plan: &super::plan::Plan,
        now_us: i64,
    ) -> Result<Vec<Option<i64>>, sqlx::Error> {
        super::sqlite_values::write_batch(tx, decisions, plan, now_us, &Self::DIALECT).await
    }

    const DIALECT: Dialect = Dialect {
    lock: "",
    load_accounts: "SELECT account_id, balance_fen, held_fen FROM account WHERE account_id IN (SELECT value FROM json_each($1))",
    load_holds: "SELECT hold_id, account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, expires_at_us, closed_at_us FROM hold WHERE hold_id IN (SELECT unhex(value) FROM json_each($1))",
    load_duplicate_keys: "SELECT d.terminal_id, d.stan, d.rrn, d.transmission_at, d.message_class, d.transaction_id FROM json_each($1) AS j JOIN duplicate_key AS d ON d.terminal_id = j.value->>0 AND d.stan = j.value->>1 AND d.rrn = j.value->>2 AND d.transmission_at = j.value->>3 AND d.message_class = j.value->>4",
    mark_relayed: "UPDATE outbox SET relayed_at_us = $1 WHERE relayed_at_us IS NULL AND outbox_seq IN (SELECT value FROM json_each($2))",
    insert_holds: "INSERT INTO hold (hold_id, account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, expires_at_us, closed_at_us) SELECT unhex(r.value->>0), r.value->>1, unhex(r.value->>2), r.value->>3, r.value->>4, r.value->>5, r.value->>6, r.value->>7, r.value->>8 FROM json_each($1) AS r",
    insert_reversals: "INSERT INTO reversal_queue (reversal_id, original_transaction_id, destination_institution_id, reason, amount_fen, stan, transmission_at, next_attempt_at_us, created_at_us, state) SELECT unhex(r.value->>0), unhex(r.value->>1), r.value->>2, r.value->>3, r.value->>4, r.value->>5, r.value->>6, r.value->>7, r.value->>8, 'pending' FROM json_each($1) AS r",
    insert_advices: "INSERT INTO advice_queue (advice_id, transaction_id, card_id, destination_institution_id, mti_class, processing_code, amount_fen, stan, transmission_at, reason_code, auth_code, next_attempt_at_us, created_at_us, state) SELECT unhex(r.value->>0), unhex(r.value->>1), r.value->>2, r.value->>3, r.value->>4, r.value->>5, r.value->>6, r.value->>7, r.value->>8, r.value->>9, r.value->>10, r.value->>11, r.value->>12, 'pending' FROM json_each($1) AS r",
    update_holds: "UPDATE hold SET state = r.value->>1, captured_fen = r.value->>2, closed_at_us = r.value->>3 FROM json_each($1) AS r WHERE hold.hold_id = unhex(r.value->>0)",
    load_card_atcs: "SELECT card_id, atc_max FROM card WHERE card_id IN (SELECT value FROM json_each($1))",
    update_card_atcs: "UPDATE card SET atc_max = r.value->>1 FROM json_each($1) AS r WHERE card.card_id = r.value->>0",
    };
}

/// Checkpointing off the commit path.
///
/// SQLite's default is an automatic checkpoint inside the commit that crosses 1,000 WAL pages:
/// it copies those pages into the database file and fsyncs it while every answer waiting on
/// that commit waits too. On the 2-core test machine an fsync takes 30-170 ms, and the
/// load test showed decisions spending 28 of their 32 ms mean latency waiting for the group
/// commit. So the write connection never checkpoints by itself; a task on its own connection
/// runs PASSIVE checkpoints, which neither wait for nor block the writer or the readers
/// (<https://www.sqlite.org/c3ref/wal_checkpoint_v2.html>), copying and fsyncing in the
/// background. A passive checkpoint alone never lets the log rewind under a steady stream of
/// commits (the log must be fully copied when a write begins; it grew to 2 GB in 20 s), so once
/// the log passes `rewind_pages` the checkpointer asks the writer to catch up itself between
/// two commits (`SqliteStore::catch_up_and_rewind`). Durability is unchanged: commits are in
/// the WAL (synchronous = NORMAL) exactly as before.
#[derive(Debug)]
pub(super) struct Checkpointer {
    rewind_due: AtomicBool,
    rewind_pages: i64,
}

/// The background half of [`Checkpointer`]; stops when the store is dropped.
async fn checkpoint_loop(
    mut conn: sqlx::SqliteConnection,
    state: std::sync::Weak<Checkpointer>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let Some(state) = state.upgrade() else { break };
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut conn)
            .await
        {
            Ok(row) => {
                let log: i64 = row.try_get(1).unwrap_or(0);
                if log > state.rewind_pages {
                    state.rewind_due.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
    let _ = conn.close().await;
}

impl_store!(SqliteStore, Sqlite, writer_on_own_thread = true);
