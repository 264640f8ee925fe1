//! A ledger batch on SQLite, run through rusqlite on a connection of its own, on a blocking
//! thread (issue 27: at least 200,000 events/s with `synchronous = FULL`).
//!
//! Why not sqlx here: sqlx runs every SQLite connection on a worker thread and reaches it by
//! message, and binds every argument through boxed, owned values. A batch of 2,000 events is
//! about 5,000 rows (events, postings, accounts, offsets): in the profile of the sqlx path the
//! worker spent more time copying and freeing arguments than SQLite spent in its B-trees, and
//! the JSON decoding waited for it. SQLite is an in-process library: here the whole batch (read
//! what it refers to, plan, write, commit) runs where the batch already is, with cached prepared
//! statements and one row per execution, which costs a function call. The switch's group commit
//! does the same (`switch::store::sqlite::batch`).
//!
//! The rules are the planner's ([`super::plan`]); this module only reads and writes rows, in the
//! same order and with the same checks as the PostgreSQL steps of [`super::batch`]. Everything
//! else (reads, windows, relays, migrations) stays on sqlx: the two meet in SQLite's own write
//! lock (`BEGIN IMMEDIATE` here, a busy timeout on both sides).

use super::plan::{self, ApplyReport, HoldState, Input, Known, KnownHold, LegRow, Plan};
use super::{account_from_str, event_type_from_str, parse_all, text_column, References};
use crate::bus::Delivery;
use crate::error::{ClearingError, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

/// Prepared statements kept on the connection (a batch uses about twenty).
const STATEMENT_CACHE: usize = 48;

/// How long a batch waits for SQLite's write lock (held by `close-window` or another process).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The write connection of a SQLite ledger, opened at the first batch.
#[derive(Debug)]
pub(crate) struct SqliteWriter {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl SqliteWriter {
    /// A writer for the (migrated) ledger file at `path`.
    pub(crate) fn new(path: PathBuf) -> Self {
        SqliteWriter {
            path,
            conn: Mutex::new(None),
        }
    }

    /// The connection with the ledger's pragmas: WAL, power-safe commits (`FULL`: the WAL is
    /// fsynced at every commit, so a batch's offsets count only once it survives a power loss).
    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(ClearingError::Config(format!(
                "ledger {} is in journal mode {mode}, not WAL",
                self.path.display()
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
             PRAGMA cache_size = -65536;",
        )?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    /// Decodes, plans and writes `deliveries` as one transaction (see
    /// [`Ledger::apply_batch`](super::Ledger::apply_batch)). Blocking.
    pub(crate) fn apply(
        &self,
        consumer_group: &str,
        deliveries: &[Delivery],
        now: i64,
    ) -> Result<ApplyReport> {
        // Decoded before the write lock is taken: CPU work should not hold it.
        let parsed = parse_all(deliveries);
        let refs = References::of(&parsed);
        let mut partitions: Vec<(&str, i32)> = deliveries
            .iter()
            .map(|d| (d.topic.as_str(), d.partition))
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        // A panic while the lock was held left no transaction open (dropping it rolled back).
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(ClearingError::Invariant("ledger connection missing".into()));
        };
        // IMMEDIATE: the write lock from the start, so the batch never fails half-way on a lock
        // upgrade. Dropped without commit (any error below), it rolls back.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let window_id: i64 = tx.query_row(
            "SELECT current_window_id FROM window_head WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        let stored = stored_offsets(&tx, consumer_group, &partitions)?;
        let mut known = known(&tx, &refs)?;
        let inputs: Vec<Input<'_>> = deliveries
            .iter()
            .zip(parsed)
            .map(|(d, parsed)| Input {
                topic: &d.topic,
                partition: d.partition,
                offset: d.offset,
                payload: &d.payload,
                parsed,
            })
            .collect();
        let plan = plan::plan(inputs, &stored, &mut known);
        write_journal(&tx, &plan, window_id, now)?;
        write_holds(&tx, &plan, now)?;
        write_accounts(&tx, &plan)?;
        write_pairs(&tx, &plan)?;
        write_dead_letters(&tx, &plan, now)?;
        write_offsets(&tx, consumer_group, &plan, now)?;
        tx.commit()?;
        Ok(plan.report)
    }
}

/// A UUID column as sqlx stores it in SQLite: a 16-byte BLOB.
fn blob(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

fn stored_offsets(
    tx: &Connection,
    consumer_group: &str,
    partitions: &[(&str, i32)],
) -> Result<HashMap<(String, i32), i64>> {
    let mut stmt = tx.prepare_cached(
        "SELECT next_offset FROM consumer_offset \
         WHERE consumer_group = ?1 AND topic = ?2 AND partition_no = ?3",
    )?;
    let mut stored = HashMap::new();
    for (topic, partition) in partitions {
        let next: Option<i64> = stmt
            .query_row(params![consumer_group, topic, i64::from(*partition)], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(next) = next {
            stored.insert(((*topic).to_owned(), *partition), next);
        }
    }
    Ok(stored)
}

/// What the ledger already holds about the batch's events, originals and holds: one indexed
/// point lookup each (the pages they touch are the ones the inserts below go to).
fn known(tx: &Connection, refs: &References) -> Result<Known> {
    let mut known = Known::default();
    let mut recorded = tx.prepare_cached("SELECT 1 FROM applied_event WHERE event_id = ?1")?;
    for id in &refs.event_ids {
        if recorded.exists([blob(id)])? {
            known.recorded.insert(*id);
        }
    }
    if !refs.originals.is_empty() {
        let mut original = tx.prepare_cached(
            "SELECT event_type FROM applied_event WHERE event_id = ?1 AND outcome <> 'dead_letter'",
        )?;
        let mut reversed =
            tx.prepare_cached("SELECT 1 FROM applied_event WHERE reverses_event_id = ?1")?;
        for id in &refs.originals {
            let kind: Option<String> = original.query_row([blob(id)], |r| r.get(0)).optional()?;
            if let Some(t) = kind.as_deref().and_then(event_type_from_str) {
                known.originals.insert(*id, t);
            }
            if reversed.exists([blob(id)])? {
                known.reversed.insert(*id);
            }
        }
    }
    if !refs.holds.is_empty() {
        let mut hold = tx.prepare_cached("SELECT state FROM pending_hold WHERE hold_id = ?1")?;
        let mut legs = tx.prepare_cached(
            "SELECT leg_no, debit_institution, debit_account, credit_institution, \
             credit_account, amount_fen FROM pending_hold_leg WHERE hold_id = ?1 ORDER BY leg_no",
        )?;
        for id in &refs.holds {
            let state: Option<String> = hold.query_row([blob(id)], |r| r.get(0)).optional()?;
            let Some(state) = state else { continue };
            let state = HoldState::parse(&state)
                .ok_or_else(|| ClearingError::Invariant(format!("hold state {state}")))?;
            let mut rows = legs.query([blob(id)])?;
            let mut hold_legs = Vec::new();
            while let Some(row) = rows.next()? {
                hold_legs.push(LegRow {
                    leg_no: row.get(0)?,
                    debit_institution: row.get(1)?,
                    debit_account: account_from_str(row.get(2)?)?,
                    credit_institution: row.get(3)?,
                    credit_account: account_from_str(row.get(4)?)?,
                    amount_fen: row.get(5)?,
                });
            }
            known.holds.insert(
                *id,
                KnownHold {
                    state,
                    legs: hold_legs,
                },
            );
        }
    }
    Ok(known)
}

/// The journal: one `applied_event` row per event, one `posting` row per posted leg.
fn write_journal(tx: &Connection, plan: &Plan, window_id: i64, now: i64) -> Result<()> {
    let mut event = tx.prepare_cached(
        "INSERT INTO applied_event (event_id, event_type, acquirer_id, amount_fen, \
         occurred_at_us, applied_at_us, window_id, outcome, reverses_event_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for r in &plan.applied {
        event.execute(params![
            blob(&r.event_id),
            r.event_type,
            r.acquirer_id,
            r.amount_fen,
            r.occurred_at_us,
            now,
            window_id,
            r.outcome,
            r.reverses_event_id.as_ref().map(blob),
        ])?;
    }
    let mut posting = tx.prepare_cached(
        "INSERT INTO posting (window_id, event_id, leg_no, event_type, leg_kind, \
         debit_institution, debit_account, credit_institution, credit_account, \
         amount_fen, hold_id, posted_at_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for p in &plan.postings {
        posting.execute(params![
            window_id,
            blob(&p.event_id),
            p.leg.leg_no,
            p.event_type,
            p.leg_kind,
            p.leg.debit_institution,
            p.leg.debit_account,
            p.leg.credit_institution,
            p.leg.credit_account,
            p.leg.amount_fen,
            p.hold_id.as_ref().map(blob),
            now,
        ])?;
    }
    Ok(())
}

/// New holds and their legs, then resolved holds (which must still be pending: a hold created
/// earlier in the same batch is inserted pending first).
fn write_holds(tx: &Connection, plan: &Plan, now: i64) -> Result<()> {
    if !plan.holds_new.is_empty() {
        let mut hold = tx.prepare_cached(
            "INSERT INTO pending_hold (hold_id, event_id, acquirer_id, amount_fen, state, \
             created_at_us) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
        )?;
        let mut leg = tx.prepare_cached(
            "INSERT INTO pending_hold_leg (hold_id, leg_no, debit_institution, debit_account, \
             credit_institution, credit_account, amount_fen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for h in &plan.holds_new {
            hold.execute(params![
                blob(&h.hold_id),
                blob(&h.event_id),
                h.acquirer_id,
                h.amount_fen,
                now
            ])?;
            for l in &h.legs {
                leg.execute(params![
                    blob(&h.hold_id),
                    l.leg_no,
                    l.debit_institution,
                    l.debit_account,
                    l.credit_institution,
                    l.credit_account,
                    l.amount_fen,
                ])?;
            }
        }
    }
    if !plan.holds_resolved.is_empty() {
        let mut resolve = tx.prepare_cached(
            "UPDATE pending_hold SET state = ?1, resolved_at_us = ?2, resolved_by_event_id = ?3 \
             WHERE hold_id = ?4 AND state = 'pending'",
        )?;
        for r in &plan.holds_resolved {
            let done = resolve.execute(params![
                r.state.as_str(),
                now,
                blob(&r.by_event_id),
                blob(&r.hold_id)
            ])?;
            if done != 1 {
                return Err(ClearingError::Invariant(format!(
                    "hold {} was not pending when resolved",
                    r.hold_id
                )));
            }
        }
    }
    Ok(())
}

/// The batch's account deltas, already summed per account by the planner: one row write per
/// account touched, whatever the number of postings.
fn write_accounts(tx: &Connection, plan: &Plan) -> Result<()> {
    // CHECK constraints apply to the proposed row of an upsert before the conflict is resolved,
    // so decrements (holds leaving `pending`, always on existing rows) go through an UPDATE and
    // only non-negative deltas through the upsert.
    let mut decrement = tx.prepare_cached(
        "UPDATE ledger_account SET debits_pending_fen = debits_pending_fen + ?3, \
         debits_posted_fen = debits_posted_fen + ?4, \
         credits_pending_fen = credits_pending_fen + ?5, \
         credits_posted_fen = credits_posted_fen + ?6 \
         WHERE institution_id = ?1 AND account_kind = ?2",
    )?;
    let mut upsert = tx.prepare_cached(
        "INSERT INTO ledger_account (institution_id, account_kind, debits_pending_fen, \
         debits_posted_fen, credits_pending_fen, credits_posted_fen) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (institution_id, account_kind) DO UPDATE SET \
         debits_pending_fen = ledger_account.debits_pending_fen + excluded.debits_pending_fen, \
         debits_posted_fen = ledger_account.debits_posted_fen + excluded.debits_posted_fen, \
         credits_pending_fen = ledger_account.credits_pending_fen + excluded.credits_pending_fen, \
         credits_posted_fen = ledger_account.credits_posted_fen + excluded.credits_posted_fen",
    )?;
    let (increments, decrements): (Vec<_>, Vec<_>) =
        plan.accounts.iter().partition(|(_, d)| d.non_negative());
    for ((institution, kind), d) in decrements {
        let done = decrement.execute(params![
            institution,
            kind,
            d.debits_pending_fen,
            d.debits_posted_fen,
            d.credits_pending_fen,
            d.credits_posted_fen
        ])?;
        if done != 1 {
            return Err(ClearingError::Invariant(
                "a hold was released on an account that does not exist".into(),
            ));
        }
    }
    for ((institution, kind), d) in increments {
        upsert.execute(params![
            institution,
            kind,
            d.debits_pending_fen,
            d.debits_posted_fen,
            d.credits_pending_fen,
            d.credits_posted_fen
        ])?;
    }
    Ok(())
}

fn write_pairs(tx: &Connection, plan: &Plan) -> Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO pair_position (institution_a, institution_b, net_fen) VALUES (?1, ?2, ?3) \
         ON CONFLICT (institution_a, institution_b) DO UPDATE SET \
         net_fen = pair_position.net_fen + excluded.net_fen",
    )?;
    for ((a, b), net) in plan.pairs.iter().filter(|(_, v)| **v != 0) {
        upsert.execute(params![a, b, net])?;
    }
    Ok(())
}

fn write_dead_letters(tx: &Connection, plan: &Plan, now: i64) -> Result<()> {
    if plan.dead.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO dead_letter (topic, partition_no, bus_offset, event_id, reason_code, \
         reason, payload, received_at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for d in &plan.dead {
        insert.execute(params![
            d.topic,
            i64::from(d.partition),
            d.offset,
            d.event_id.as_ref().map(blob),
            d.reason.code(),
            text_column(&d.reason.to_string()),
            text_column(&d.payload),
            now
        ])?;
    }
    Ok(())
}

/// The group's next offsets, never moved backwards.
fn write_offsets(tx: &Connection, consumer_group: &str, plan: &Plan, now: i64) -> Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO consumer_offset (consumer_group, topic, partition_no, next_offset, \
         updated_at_us) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (consumer_group, topic, partition_no) DO UPDATE SET \
         next_offset = CASE WHEN excluded.next_offset > consumer_offset.next_offset \
         THEN excluded.next_offset ELSE consumer_offset.next_offset END, \
         updated_at_us = excluded.updated_at_us",
    )?;
    for ((topic, partition), next) in &plan.offsets {
        upsert.execute(params![
            consumer_group,
            topic,
            i64::from(*partition),
            next,
            now
        ])?;
    }
    Ok(())
}
