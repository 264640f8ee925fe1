//! The WAL checkpointer of the SQLite store, off the commit path (see [`Checkpointer`]).

use sqlx::{Connection, Row};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
/// two commits (`batch::catch_up_and_rewind`). Durability is unchanged: commits are in
/// the WAL (synchronous = NORMAL) exactly as before.
#[derive(Debug)]
pub struct Checkpointer {
    /// Set by the background loop, taken by the group commit's connection.
    pub rewind_due: AtomicBool,
    rewind_pages: i64,
}

impl Checkpointer {
    /// Asks for a rewind once the log passes `rewind_pages` (at least 1).
    pub fn new(rewind_pages: i64) -> Self {
        Self {
            rewind_due: AtomicBool::new(false),
            rewind_pages: rewind_pages.max(1),
        }
    }
}

/// The background half of [`Checkpointer`]; stops when the store is dropped.
pub async fn checkpoint_loop(
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
