//! The group commit on SQLite, run by the writer on its own thread over a connection it owns.
//!
//! sqlx runs every SQLite connection on a worker thread of its own and reaches it by message:
//! a group commit (begin, four loads, a statement per table, commit) was about fifteen round
//! trips between the writer thread and that worker, each one a wake-up of the other thread. On
//! the 2-core machine at 10,000 tps those hand-offs were half of the switch's CPU (perf: the
//! two threads 49 % of samples, a quarter of all samples in the kernel's task switch) and most
//! of the commit's latency, since each wake-up waits for a core. SQLite itself is an in-process
//! library: here the batch runs where the writer already is, through rusqlite's safe API over the
//! same bundled SQLite (`libsqlite3-sys`, which sqlx links too), with cached prepared statements
//! and one row per execution, which costs a function call rather than a thread hand-off.
//!
//! Everything else (reads, control-plane writes, migrations) stays on sqlx. The control-plane
//! writes take the same in-process lock as a batch ([`super::SqliteStore`]'s `batch` mutex, a
//! fair tokio mutex), so they wait for at most one group commit instead of polling SQLite's busy
//! handler against a writer that is rarely idle under load.
//!
//! A batch: [`super::batch_load`] reads the rows it touches, [`plan`] decides in memory,
//! [`super::batch_write`] writes the accepted decisions, all in one transaction. Its duplicate
//! keys are not written: once it committed they join [`KeyTier`], which the writer flushes to
//! the `duplicate_key` table between batches (see [`super::key_tier`]).
//!
//! The answers remembered for retransmissions (`Store::record_answers`) ride the same
//! transactions: they are staged here and written by the next group commit, or by a
//! transaction of their own on this connection when no commit comes soon (issue 27: as
//! transactions of their own on sqlx's connection they had cost every request a thread
//! hand-off, 23 µs of CPU and 1.3 KB written, and rewrote the duplicate keys' pages again).

use super::checkpoint::Checkpointer;
use super::key_tier::{self, KeyTier, Unflushed};
use super::{batch_load, batch_write, SqliteConfig, SqliteSync};
use crate::store::model::{BatchOutcome, Committed, Decision, DuplicateKey};
use crate::store::plan;
use crate::store::DecisionError;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Prepared statements kept per connection: the batch uses about twenty.
const STATEMENT_CACHE: usize = 64;

/// The write connection of the group commit.
pub struct BatchWriter {
    /// `None` once the store is closed: every later batch fails as unavailable.
    conn: Option<Connection>,
    checkpoints: Arc<Checkpointer>,
    /// Answers waiting for the next commit on this connection.
    staged: Vec<StagedAnswers>,
    /// The duplicate keys committed since the last flush (shared with the store's readers).
    tier: Arc<KeyTier>,
}

/// One `record_answers` call's answers, and where to tell it how many keys were found.
struct StagedAnswers {
    answers: Vec<(DuplicateKey, String)>,
    done: oneshot::Sender<Result<u64, rusqlite::Error>>,
}

/// What a staged `record_answers` call waits on.
pub type AnswersWritten = oneshot::Receiver<Result<u64, rusqlite::Error>>;

/// `sql::control`'s statement with SQLite's numbered parameters (migration 0019).
const RECORD_ANSWER: &str = "INSERT INTO txn_answer (transaction_id, answer) \
     SELECT transaction_id, ?7 FROM duplicate_key WHERE terminal_id = ?1 AND stan = ?2 \
     AND rrn = ?3 AND transmission_at = ?4 AND message_class = ?5 AND acquirer = ?6 \
     ON CONFLICT (transaction_id) DO UPDATE SET answer = excluded.answer";
/// The same, for a key in the tier: its transaction id is known.
const RECORD_ANSWER_BY_ID: &str = "INSERT INTO txn_answer (transaction_id, answer) \
     VALUES (?1, ?2) ON CONFLICT (transaction_id) DO UPDATE SET answer = excluded.answer";

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchWriter")
    }
}

/// A UUID column (sqlx stores `Uuid` in SQLite as a 16-byte BLOB; so do we).
pub fn uuid_blob(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

pub fn uuid_from(column: &'static str, blob: &[u8]) -> Result<Uuid, rusqlite::Error> {
    Uuid::from_slice(blob).map_err(|e| corrupt(column, e))
}

pub fn corrupt(column: &'static str, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Blob,
        format!("{column}: {e}").into(),
    )
}

impl BatchWriter {
    /// Opens the database file (already migrated by sqlx) with the pragmas of the store's
    /// other connections, and no automatic checkpoint inside a commit (see `Checkpointer`).
    pub(super) fn open(
        config: &SqliteConfig,
        checkpoints: Arc<Checkpointer>,
    ) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &config.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_millis(config.busy_timeout_ms))?;
        // journal_mode answers with a row; the others are silent.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(corrupt("journal_mode", mode));
        }
        conn.execute_batch(match config.synchronous {
            SqliteSync::Normal => "PRAGMA synchronous = NORMAL",
            SqliteSync::Full => "PRAGMA synchronous = FULL",
        })?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let tier = Arc::new(KeyTier::rebuild(&conn)?);
        Ok(Self {
            conn: Some(conn),
            checkpoints,
            staged: Vec::new(),
            tier,
        })
    }

    /// The duplicate keys not yet in the table, for the store's readers.
    pub(super) fn tier(&self) -> Arc<KeyTier> {
        Arc::clone(&self.tier)
    }

    /// Flushes the tier's oldest keys in a transaction of their own when
    /// [`KeyTier::flush_overdue`] says no group commit came to carry them (a due flush rides
    /// the next group commit: `try_batch`); a failure is logged and the keys stay for the
    /// next try (they are safe in `txn` meanwhile).
    pub(super) fn flush_keys_if_due(&mut self) {
        if self.tier.flush_overdue(std::time::Instant::now()) {
            if let Err(e) = self.flush_keys(key_tier::FLUSH_KEYS_MAX) {
                tracing::warn!(error = %e, "duplicate key flush failed");
            }
        }
    }

    /// Writes the tier's keys to the table, [`key_tier::FLUSH_KEYS_MAX`] at a time, until it is
    /// empty.
    pub(super) fn flush_all_keys(&mut self) -> Result<(), rusqlite::Error> {
        while !self.tier.is_empty() {
            self.flush_keys(key_tier::FLUSH_KEYS_MAX)?;
        }
        Ok(())
    }

    fn flush_keys(&mut self, keys_max: usize) -> Result<usize, rusqlite::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(0); // closed: the keys are rebuilt from txn at the next open
        };
        self.tier.flush(conn, keys_max)
    }

    /// Stages answers for the next commit on this connection (a group commit, or
    /// [`BatchWriter::flush_answers`]); the receiver learns how many keys were found.
    pub(super) fn stage_answers(&mut self, answers: Vec<(DuplicateKey, String)>) -> AnswersWritten {
        let (done, written) = oneshot::channel();
        self.staged.push(StagedAnswers { answers, done });
        written
    }

    /// Writes the staged answers in a transaction of their own (none staged: nothing to do).
    pub(super) fn flush_answers(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        let Some(conn) = self.conn.as_mut() else {
            return; // dropping the senders tells the callers the store is closed
        };
        let tier = &self.tier;
        let written = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .and_then(|tx| {
                let found = write_answers(&tx, tier, &staged)?;
                tx.commit()?;
                Ok(found)
            });
        resolve(staged, written);
    }

    /// Closes the connection (finalizing its statements); later batches fail as unavailable.
    pub(super) fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Err((_, e)) = conn.close() {
                tracing::warn!(error = %e, "closing the group commit's connection");
            }
        }
    }

    /// Commits a batch as one transaction; if the database refuses it for something the planner
    /// could not see (a foreign key, another process's row), each decision is retried alone so
    /// that only the offender fails. A failure that is not the database's answer (I/O, a
    /// lock held past the busy timeout) fails the whole batch at once: nothing was committed.
    pub(super) fn commit(&mut self, batch: &[Decision], now_us: i64) -> BatchOutcome {
        let Some(conn) = self.conn.as_mut() else {
            let closed = DecisionError::Unavailable("store closed".into());
            return BatchOutcome {
                results: vec![Err(closed); batch.len()],
                db_transactions: 1,
            };
        };
        if self.tier.len() >= key_tier::TIER_KEYS_MAX {
            if let Err(e) = self.tier.flush(conn, key_tier::FLUSH_KEYS_MAX) {
                tracing::warn!(error = %e, "duplicate key flush failed");
            }
        }
        let staged = std::mem::take(&mut self.staged);
        let first = try_batch(conn, &self.checkpoints, &self.tier, batch, &staged, now_us);
        let first = match first {
            Ok((results, found)) => {
                resolve(staged, Ok(found));
                Ok(results)
            }
            Err(e) => {
                // Nothing was committed: the answers wait for the next commit.
                self.staged = staged;
                Err(e)
            }
        };
        match first {
            Ok(results) => BatchOutcome {
                results,
                db_transactions: 1,
            },
            Err(e) if batch.len() == 1 || !is_constraint(&e) => BatchOutcome {
                results: vec![Err(plan::refused_alone(classify(&e), batch)); batch.len()],
                db_transactions: 1,
            },
            Err(e) => {
                tracing::warn!(error = %e, batch = batch.len(), "group commit failed; retrying decisions one by one");
                let results = batch
                    .chunks(1)
                    .map(|one| {
                        match try_batch(conn, &self.checkpoints, &self.tier, one, &[], now_us) {
                            Ok((mut r, _)) => r
                                .pop()
                                .unwrap_or(Err(DecisionError::Unavailable("empty result".into()))),
                            Err(e) => Err(plan::refused_alone(classify(&e), one)),
                        }
                    })
                    .collect();
                BatchOutcome {
                    results,
                    db_transactions: 1 + u32::try_from(batch.len()).unwrap_or(u32::MAX),
                }
            }
        }
    }
}

/// Between two commits, when the checkpointer asks: a last passive checkpoint from this
/// connection, so the log is fully copied when the next commit begins, which then writes from
/// the start of the log again (see `Checkpointer`). It copies only what the checkpointer has
/// not (the checkpointer asks only once its last pass copied little, see
/// `checkpoint::checkpoint_loop`), but syncs the log and the database file: the writer's one
/// stall, once per `wal_rewind_pages` of log. The request is cleared first, so a
/// long reader that keeps the log from being fully copied costs one catch-up per request of
/// the checkpointer, not one per commit.
fn catch_up_and_rewind(conn: &Connection, checkpoints: &Checkpointer) {
    checkpoints.rewind_due.store(false, Ordering::Relaxed);
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL catch-up checkpoint failed");
    }
}

/// Decisions committed (or refused) and the keys each staged answer call found.
type Batched = (Vec<Result<Committed, DecisionError>>, Vec<u64>);

/// One database transaction for the whole batch, and the staged answers.
fn try_batch(
    conn: &mut Connection,
    checkpoints: &Checkpointer,
    tier: &KeyTier,
    decisions: &[Decision],
    answers: &[StagedAnswers],
    now_us: i64,
) -> Result<Batched, rusqlite::Error> {
    if checkpoints.rewind_due.load(Ordering::Relaxed) {
        catch_up_and_rewind(conn, checkpoints);
    }
    let (pre, mut keys) = plan::prepare(decisions);
    // The duplicate check: the tier first, then the table for the keys it does not hold.
    let in_tier = tier.take_known(&mut keys.duplicate_keys);
    // IMMEDIATE: the write lock from the start, so the transaction never fails half-way
    // on a lock upgrade. Dropped without commit, it rolls back.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut loaded = batch_load::load(&tx, &keys)?;
    loaded.duplicate_keys.extend(in_tier);
    let plan = plan::plan(decisions, pre, loaded, now_us);
    let seqs = batch_write::write(&tx, decisions, &plan, now_us)?;
    let unflushed = unflushed_keys(&tx, decisions, &plan, now_us)?;
    let found = write_answers(&tx, tier, answers)?;
    // A due flush of the tier's oldest keys rides this transaction: one sync for both, where
    // a flush of its own cost the next batch a commit's wait (issue 27, the open loop's p99).
    let (flushed_commits, _) = if tier.flush_due(std::time::Instant::now()) {
        tier.write_oldest(&tx, key_tier::FLUSH_KEYS_MAX)?
    } else {
        (0, 0)
    };
    // Unlike PostgreSQL's (`store::postgres::batch`), a failed COMMIT here has a known outcome:
    // SQLite runs in this process, so there is no connection to lose between the COMMIT and its
    // answer. An error from COMMIT (SQLITE_BUSY leaves the transaction open; SQLITE_FULL,
    // SQLITE_IOERR or SQLITE_NOMEM may roll it back on their own, sqlite.org/lang_transaction.html,
    // "Response To Errors Within A Transaction") means it did not commit, and rusqlite rolls
    // back whatever is left open when the transaction is dropped: the batch is `Unavailable`.
    tx.commit()?;
    tier.forget_oldest(flushed_commits);
    if let Some((txn_rowid_max, keys)) = unflushed {
        tier.admit(txn_rowid_max, keys);
    }
    Ok((plan::committed(plan, decisions, seqs), found))
}

/// The accepted decisions' duplicate keys, for the tier once the batch commits, and the
/// highest `txn` rowid so far (the batch's last row); `None` when nothing was accepted.
fn unflushed_keys(
    tx: &rusqlite::Transaction<'_>,
    decisions: &[Decision],
    plan: &plan::Plan,
    now_us: i64,
) -> Result<Option<(i64, Vec<Unflushed>)>, rusqlite::Error> {
    let keys: Vec<Unflushed> = plan
        .accepted()
        .map(|i| Unflushed {
            key: decisions[i].transaction.duplicate_key(),
            transaction_id: decisions[i].transaction.transaction_id,
            created_at_us: now_us,
        })
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let txn_rowid_max: i64 = tx
        .prepare_cached(key_tier::TXN_ROWID_MAX)?
        .query_row([], |r| r.get(0))?;
    Ok(Some((txn_rowid_max, keys)))
}

/// The staged answers on their duplicate keys (in the tier, else in the table); per call, the
/// keys found.
fn write_answers(
    tx: &rusqlite::Transaction<'_>,
    tier: &KeyTier,
    staged: &[StagedAnswers],
) -> Result<Vec<u64>, rusqlite::Error> {
    if staged.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = tx.prepare_cached(RECORD_ANSWER)?;
    let mut by_id = tx.prepare_cached(RECORD_ANSWER_BY_ID)?;
    staged
        .iter()
        .map(|s| {
            s.answers.iter().try_fold(0u64, |found, (k, answer)| {
                if let Some(id) = tier.get(k) {
                    let n = by_id.execute(rusqlite::params![uuid_blob(&id.0), answer])?;
                    return Ok(found + n as u64);
                }
                let n = q.execute(rusqlite::params![
                    k.terminal_id.as_str(),
                    k.stan.to_string(),
                    k.rrn.as_str(),
                    k.transmission_at.as_str(),
                    k.message_class,
                    k.acquirer.as_str(),
                    answer,
                ])?;
                Ok(found + n as u64)
            })
        })
        .collect()
}

/// Tells each staged call what became of its answers.
fn resolve(staged: Vec<StagedAnswers>, written: Result<Vec<u64>, rusqlite::Error>) {
    match written {
        Ok(found) => {
            for (s, n) in staged.into_iter().zip(found) {
                let _ = s.done.send(Ok(n));
            }
        }
        Err(e) => {
            for s in staged {
                let again = match &e {
                    rusqlite::Error::SqliteFailure(f, msg) => {
                        rusqlite::Error::SqliteFailure(*f, msg.clone())
                    }
                    other => rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                        Some(other.to_string()),
                    ),
                };
                let _ = s.done.send(Err(again));
            }
        }
    }
}

/// True when SQLite refused a statement on a constraint: the database's answer about one of
/// the batch's rows, which retrying the decisions one by one isolates.
fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

/// What each caller of a failed batch is told (as `postgres::batch::classify` does for sqlx
/// errors).
fn classify(e: &rusqlite::Error) -> DecisionError {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let msg = msg.clone().unwrap_or_else(|| f.to_string());
            let unique = matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            );
            match f.code {
                ErrorCode::ConstraintViolation if unique && msg.contains("duplicate_key") => {
                    DecisionError::Duplicate { existing: None }
                }
                ErrorCode::ConstraintViolation => DecisionError::Rejected(msg),
                _ => DecisionError::Unavailable(msg),
            }
        }
        other => DecisionError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_violation_is_a_duplicate_and_other_constraints_are_rejections() {
        let conn = Connection::open_in_memory().expect("memory db");
        conn.execute_batch(
            "CREATE TABLE duplicate_key (k TEXT PRIMARY KEY) STRICT; \
             CREATE TABLE t (n INTEGER NOT NULL CHECK (n > 0)) STRICT; \
             INSERT INTO duplicate_key VALUES ('a');",
        )
        .expect("schema");
        let dup = conn
            .execute("INSERT INTO duplicate_key VALUES ('a')", [])
            .expect_err("duplicate");
        assert!(is_constraint(&dup));
        assert_eq!(classify(&dup), DecisionError::Duplicate { existing: None });
        let check = conn
            .execute("INSERT INTO t VALUES (0)", [])
            .expect_err("check");
        assert!(is_constraint(&check));
        assert!(matches!(classify(&check), DecisionError::Rejected(m) if m.contains("CHECK")));
        let missing = conn
            .execute("INSERT INTO nowhere VALUES (1)", [])
            .expect_err("no table");
        assert!(!is_constraint(&missing));
        assert!(matches!(classify(&missing), DecisionError::Unavailable(_)));
    }

    #[test]
    fn uuid_columns_are_16_byte_blobs_as_sqlx_writes_them() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(uuid_blob(&id).len(), 16);
        assert_eq!(uuid_from("x", uuid_blob(&id)).expect("round trip"), id);
        assert!(uuid_from("x", &[1, 2, 3]).is_err());
    }
}
