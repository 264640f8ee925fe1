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

use super::model::{leg_kind_sql, BatchOutcome, Committed, Decision};
use super::plan::{self, AccountRow, BatchKeys, HoldRow, Loaded, Plan};
use super::sqlite::{Checkpointer, SqliteConfig, SqliteSync};
use super::{AccountId, DecisionError, HoldState, TransactionId};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Prepared statements kept per connection: the batch uses about twenty.
const STATEMENT_CACHE: usize = 64;

/// The write connection of the group commit.
pub(super) struct BatchWriter {
    /// `None` once the store is closed: every later batch fails as unavailable.
    conn: Option<Connection>,
    checkpoints: Arc<Checkpointer>,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchWriter")
    }
}

/// A UUID column (sqlx stores `Uuid` in SQLite as a 16-byte BLOB; so do we).
fn uuid_blob(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

fn uuid_from(column: &'static str, blob: &[u8]) -> Result<Uuid, rusqlite::Error> {
    Uuid::from_slice(blob).map_err(|e| corrupt(column, e))
}

fn corrupt(column: &'static str, e: impl std::fmt::Display) -> rusqlite::Error {
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
        Ok(Self {
            conn: Some(conn),
            checkpoints,
        })
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
        match try_batch(conn, &self.checkpoints, batch, now_us) {
            Ok(results) => BatchOutcome {
                results,
                db_transactions: 1,
            },
            Err(e) if batch.len() == 1 || !is_constraint(&e) => BatchOutcome {
                results: vec![Err(classify(&e)); batch.len()],
                db_transactions: 1,
            },
            Err(e) => {
                tracing::warn!(error = %e, batch = batch.len(), "group commit failed; retrying decisions one by one");
                let results = batch
                    .chunks(1)
                    .map(
                        |one| match try_batch(conn, &self.checkpoints, one, now_us) {
                            Ok(mut r) => r
                                .pop()
                                .unwrap_or(Err(DecisionError::Unavailable("empty result".into()))),
                            Err(e) => Err(classify(&e)),
                        },
                    )
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
/// not, but syncs the log and the database file: the writer's one stall, about 10 ms under
/// load on the test VM, once per `wal_rewind_pages` of log. The request is cleared first, so a
/// long reader that keeps the log from being fully copied costs one catch-up per request of
/// the checkpointer, not one per commit.
fn catch_up_and_rewind(conn: &Connection, checkpoints: &Checkpointer) {
    checkpoints.rewind_due.store(false, Ordering::Relaxed);
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL catch-up checkpoint failed");
    }
}

/// One database transaction for the whole batch.
fn try_batch(
    conn: &mut Connection,
    checkpoints: &Checkpointer,
    decisions: &[Decision],
    now_us: i64,
) -> Result<Vec<Result<Committed, DecisionError>>, rusqlite::Error> {
    if checkpoints.rewind_due.load(Ordering::Relaxed) {
        catch_up_and_rewind(conn, checkpoints);
    }
    let (pre, keys) = plan::prepare(decisions);
    // IMMEDIATE: the write lock from the start, so the transaction never fails half-way
    // on a lock upgrade. Dropped without commit, it rolls back.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let loaded = load(&tx, &keys)?;
    let plan = plan::plan(decisions, pre, loaded, now_us);
    let seqs = write(&tx, decisions, &plan, now_us)?;
    tx.commit()?;
    Ok(plan::committed(plan, decisions, seqs))
}

/// The rows the batch touches, one indexed lookup per key.
fn load(tx: &Transaction<'_>, keys: &BatchKeys) -> Result<Loaded, rusqlite::Error> {
    let mut loaded = Loaded::default();
    let mut account_ids = keys.accounts.clone();
    if !keys.holds.is_empty() {
        let mut q = tx.prepare_cached(
            "SELECT account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, \
             expires_at_us, closed_at_us FROM hold WHERE hold_id = ?1",
        )?;
        for id in &keys.holds {
            let row = q
                .query_row([uuid_blob(&id.0)], |r| {
                    let state: String = r.get(4)?;
                    Ok(HoldRow {
                        account_id: AccountId(r.get(0)?),
                        transaction_id: TransactionId(uuid_from(
                            "hold.transaction_id",
                            &r.get::<_, Vec<u8>>(1)?,
                        )?),
                        amount_fen: r.get(2)?,
                        captured_fen: r.get(3)?,
                        state: HoldState::from_sql(&state)
                            .ok_or_else(|| corrupt("hold.state", state))?,
                        created_at_us: r.get(5)?,
                        expires_at_us: r.get(6)?,
                        closed_at_us: r.get(7)?,
                    })
                })
                .optional()?;
            if let Some(h) = row {
                account_ids.push(h.account_id);
                loaded.holds.insert(*id, h);
            }
        }
    }
    account_ids.sort();
    account_ids.dedup();
    if !account_ids.is_empty() {
        let mut q =
            tx.prepare_cached("SELECT balance_fen, held_fen FROM account WHERE account_id = ?1")?;
        for id in account_ids {
            let row = q
                .query_row([id.0], |r| {
                    Ok(AccountRow {
                        balance_fen: r.get(0)?,
                        held_fen: r.get(1)?,
                    })
                })
                .optional()?;
            if let Some(a) = row {
                loaded.accounts.insert(id, a);
            }
        }
    }
    if !keys.duplicate_keys.is_empty() {
        let mut q = tx.prepare_cached(
            "SELECT transaction_id FROM duplicate_key WHERE terminal_id = ?1 AND stan = ?2 \
             AND rrn = ?3 AND transmission_at = ?4 AND message_class = ?5",
        )?;
        for k in &keys.duplicate_keys {
            let found: Option<Vec<u8>> = q
                .query_row(
                    params![
                        k.terminal_id.as_str(),
                        k.stan.to_string(),
                        k.rrn.as_str(),
                        k.transmission_at.as_str(),
                        k.message_class,
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = found {
                let id = uuid_from("duplicate_key.transaction_id", &id)?;
                loaded.duplicate_keys.insert(k.clone(), TransactionId(id));
            }
        }
    }
    if !keys.cards.is_empty() {
        let mut q = tx.prepare_cached("SELECT atc_max FROM card WHERE card_id = ?1")?;
        for id in &keys.cards {
            let atc: Option<Option<i64>> = q.query_row([id.0], |r| r.get(0)).optional()?;
            if let Some(Some(atc)) = atc {
                let atc = u16::try_from(atc).map_err(|e| corrupt("card.atc_max", e))?;
                loaded.card_atcs.insert(*id, atc);
            }
        }
    }
    Ok(loaded)
}

/// Writes a planned batch: the accepted decisions' rows, the planned balances, holds and
/// journal, ATCs, and the outbox with gap-free sequence numbers. Returns each decision's
/// outbox position.
fn write(
    tx: &Transaction<'_>,
    decisions: &[Decision],
    plan: &Plan,
    now_us: i64,
) -> Result<Vec<Option<i64>>, rusqlite::Error> {
    let mut seqs = vec![None; decisions.len()];
    let accepted: Vec<usize> = plan.accepted().collect();
    if accepted.is_empty() {
        return Ok(seqs);
    }
    {
        let mut txn = tx.prepare_cached(
            "INSERT INTO txn (transaction_id, kind, mti, processing_code, card_id, pan_masked, \
             acquirer_institution_id, issuer_institution_id, terminal_id, stan, rrn, \
             transmission_at, amount_fen, decision, response_code, original_transaction_id, \
             event_id, decided_at_us) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )?;
        let mut leg = tx.prepare_cached(
            "INSERT INTO txn_leg (transaction_id, leg_no, kind, institution_id, account_id, \
             amount_fen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut key = tx.prepare_cached(
            "INSERT INTO duplicate_key (terminal_id, stan, rrn, transmission_at, message_class, \
             transaction_id, created_at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for &i in &accepted {
            let d = &decisions[i];
            let t = &d.transaction;
            let id = uuid_blob(&t.transaction_id.0);
            txn.execute(params![
                id,
                t.kind.as_sql(),
                t.mti,
                t.processing_code,
                t.card_id.map(|c| c.0),
                t.pan_masked,
                t.acquirer.as_str(),
                t.issuer.as_ref().map(|i| i.as_str()),
                t.terminal_id.as_str(),
                t.stan.to_string(),
                t.rrn.as_str(),
                t.transmission_at.as_str(),
                t.amount_fen.get(),
                if t.is_approved() {
                    "approved"
                } else {
                    "declined"
                },
                t.response_code.as_str(),
                t.original_transaction_id.as_ref().map(|o| uuid_blob(&o.0)),
                d.event.as_ref().map(|e| uuid_blob(&e.event_id)),
                t.decided_at_us,
            ])?;
            for l in &d.legs {
                leg.execute(params![
                    id,
                    i64::from(l.leg_no),
                    leg_kind_sql(l.kind),
                    l.institution.as_str(),
                    l.account_id.map(|a| a.0),
                    l.amount_fen.get(),
                ])?;
            }
            let k = t.duplicate_key();
            key.execute(params![
                k.terminal_id.as_str(),
                k.stan.to_string(),
                k.rrn.as_str(),
                k.transmission_at.as_str(),
                k.message_class,
                id,
                now_us,
            ])?;
        }
    }
    write_holds(tx, plan)?;
    {
        let mut account = tx.prepare_cached(
            "UPDATE account SET balance_fen = ?2, held_fen = ?3 WHERE account_id = ?1",
        )?;
        for (id, a) in &plan.accounts {
            account.execute(params![id.0, a.balance_fen, a.held_fen])?;
        }
        let mut movement = tx.prepare_cached(
            "INSERT INTO account_movement (account_id, transaction_id, hold_id, kind, amount_fen, \
             balance_after_fen, held_after_fen, at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for m in &plan.movements {
            movement.execute(params![
                m.account_id.0,
                uuid_blob(&m.transaction_id.0),
                m.hold_id.as_ref().map(|h| uuid_blob(&h.0)),
                m.kind.as_sql(),
                m.amount_fen,
                m.balance_after_fen,
                m.held_after_fen,
                now_us,
            ])?;
        }
        let mut atc = tx.prepare_cached("UPDATE card SET atc_max = ?2 WHERE card_id = ?1")?;
        for (card, a) in &plan.card_atcs {
            atc.execute(params![card.0, i64::from(*a)])?;
        }
    }
    write_queues(tx, decisions, &accepted, now_us)?;
    let events = accepted
        .iter()
        .filter(|&&i| decisions[i].event.is_some())
        .count() as i64;
    if events == 0 {
        return Ok(seqs);
    }
    // The sequence row is taken inside the transaction: gap-free, in commit order.
    let next: i64 = tx
        .prepare_cached(
            "UPDATE outbox_sequence SET next_seq = next_seq + ?1 WHERE id = 1 RETURNING next_seq",
        )?
        .query_row([events], |r| r.get(0))?;
    let mut seq = next - events;
    let mut outbox = tx.prepare_cached(
        "INSERT INTO outbox (outbox_seq, event_id, partition_key, event_type, schema_version, \
         payload, created_at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for &i in &accepted {
        if let Some(e) = &decisions[i].event {
            let payload = e
                .to_json()
                .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
            outbox.execute(params![
                seq,
                uuid_blob(&e.event_id),
                e.partition_key().as_str(),
                e.event_type.as_str(),
                i64::from(e.schema_version),
                payload,
                now_us,
            ])?;
            seqs[i] = Some(seq);
            seq += 1;
        }
    }
    Ok(seqs)
}

/// Holds created by the batch, and existing ones whose state changed (pre-authorizations and
/// their completions: rare next to purchases and bills).
fn write_holds(tx: &Transaction<'_>, plan: &Plan) -> Result<(), rusqlite::Error> {
    if !plan.new_holds.is_empty() {
        let mut q = tx.prepare_cached(
            "INSERT INTO hold (hold_id, account_id, transaction_id, amount_fen, captured_fen, \
             state, created_at_us, expires_at_us, closed_at_us) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (id, h) in &plan.new_holds {
            q.execute(params![
                uuid_blob(&id.0),
                h.account_id.0,
                uuid_blob(&h.transaction_id.0),
                h.amount_fen,
                h.captured_fen,
                h.state.as_sql(),
                h.created_at_us,
                h.expires_at_us,
                h.closed_at_us,
            ])?;
        }
    }
    if !plan.changed_holds.is_empty() {
        let mut q = tx.prepare_cached(
            "UPDATE hold SET state = ?2, captured_fen = ?3, closed_at_us = ?4 WHERE hold_id = ?1",
        )?;
        for (id, h) in &plan.changed_holds {
            q.execute(params![
                uuid_blob(&id.0),
                h.state.as_sql(),
                h.captured_fen,
                h.closed_at_us
            ])?;
        }
    }
    Ok(())
}

/// Store-and-forward rows: reversals (0420) and stand-in advices (0220) of accepted decisions.
fn write_queues(
    tx: &Transaction<'_>,
    decisions: &[Decision],
    accepted: &[usize],
    now_us: i64,
) -> Result<(), rusqlite::Error> {
    for &i in accepted {
        let d = &decisions[i];
        let id = uuid_blob(&d.transaction.transaction_id.0);
        if let Some(r) = &d.reversal {
            tx.prepare_cached(
                "INSERT INTO reversal_queue (reversal_id, original_transaction_id, \
                 destination_institution_id, reason, amount_fen, stan, transmission_at, \
                 next_attempt_at_us, created_at_us, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending')",
            )?
            .execute(params![
                uuid_blob(&r.reversal_id.0),
                id,
                r.destination.as_str(),
                r.reason.as_sql(),
                r.amount_fen.get(),
                r.stan.to_string(),
                r.transmission_at.as_str(),
                r.first_attempt_at_us,
                now_us,
            ])?;
        }
        if let Some(a) = &d.advice {
            tx.prepare_cached(
                "INSERT INTO advice_queue (advice_id, transaction_id, card_id, \
                 destination_institution_id, mti_class, processing_code, amount_fen, stan, \
                 transmission_at, reason_code, auth_code, next_attempt_at_us, created_at_us, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'pending')",
            )?
            .execute(params![
                uuid_blob(&a.advice_id.0),
                id,
                d.transaction.card_id.map(|c| c.0),
                a.destination.as_str(),
                a.class.as_sql(),
                a.processing_code,
                a.amount_fen.get(),
                a.stan.to_string(),
                a.transmission_at.as_str(),
                a.reason.as_str(),
                a.auth_code,
                a.first_attempt_at_us,
                now_us,
            ])?;
        }
    }
    Ok(())
}

/// True when SQLite refused a statement on a constraint: the database's answer about one of
/// the batch's rows, which retrying the decisions one by one isolates.
fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

/// What each caller of a failed batch is told (as `sql::classify` does for sqlx errors).
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
