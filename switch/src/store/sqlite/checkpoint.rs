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
/// two commits (`batch::catch_up_and_rewind`). Durability is unchanged: a commit is
/// durable once in the log (synced at each commit with `synchronous = FULL`, the default).
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

/// Frames a passive checkpoint may have copied and still count as caught up: the pass before
/// a rewind request (see [`checkpoint_loop`]). 256 frames of 2 KiB pages are 512 KiB, which
/// the writer's catch-up copies and syncs in about a millisecond on an idle disk.
const CAUGHT_UP_FRAMES_MAX: i64 = 256;

/// Back-to-back passes after which the writer is asked to rewind even if the last one copied
/// more than [`CAUGHT_UP_FRAMES_MAX`]: when commits outpace the passes (each pass's sync lets
/// more than that accumulate), the log must still be bounded.
const CATCH_UP_PASSES_MAX: u32 = 8;

/// The background half of [`Checkpointer`]; stops when the store is dropped.
///
/// Every `every` it runs a passive checkpoint. Once the log is past `rewind_pages` it runs them
/// back to back, each copying what was committed during the one before, until a pass copies at
/// most [`CAUGHT_UP_FRAMES_MAX`] frames, and only then asks the writer to rewind: the writer's
/// catch-up (`batch::catch_up_and_rewind`), the one moment commits wait for a checkpoint, then
/// copies what one short pass left, not what accumulated since the last sleep (or, after
/// [`CATCH_UP_PASSES_MAX`] passes that never got there, what the last one left). Asking at once
/// (as before) left the writer to copy and sync everything committed since the last pass began,
/// every 32 MiB of log (issue 27, the open loop's tail; benches/README.md has the runs).
pub async fn checkpoint_loop(
    mut conn: sqlx::SqliteConnection,
    state: std::sync::Weak<Checkpointer>,
    every: Duration,
) {
    // Frames copied into the database by the passes so far in this log generation.
    let mut copied_before = 0_i64;
    let mut catching_up = false;
    let mut passes = 0_u32;
    loop {
        if !catching_up {
            tokio::time::sleep(every).await;
        }
        let Some(state) = state.upgrade() else { break };
        catching_up = false;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut conn)
            .await
        {
            Ok(row) => {
                let log: i64 = row.try_get(1).unwrap_or(0);
                let copied: i64 = row.try_get(2).unwrap_or(0);
                // A smaller total than the last pass's: the log was rewound in between.
                let this_pass = if copied >= copied_before {
                    copied - copied_before
                } else {
                    copied
                };
                copied_before = copied;
                if log > state.rewind_pages {
                    passes += 1;
                    if this_pass <= CAUGHT_UP_FRAMES_MAX || passes >= CATCH_UP_PASSES_MAX {
                        state.rewind_due.store(true, Ordering::Relaxed);
                        passes = 0;
                    } else {
                        catching_up = true;
                    }
                } else {
                    passes = 0;
                }
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
    let _ = conn.close().await;
}
