//! The last step of a SQLite group commit: the planned batch written row by row through cached
//! statements (a row costs a function call into SQLite, not a round trip), in a fixed order:
//! the accepted decisions' transactions (each linked to its card's previous one) and legs;
//! holds; balances and their journal; card rows (ATC and newest transaction, one write per
//! card) and risk state; the store-and-forward queues; and last the outbox, whose sequence row is
//! taken inside the transaction so that sequences are gap-free and in commit order.
//!
//! No duplicate keys: the `txn` row carries every column of its key, and the batch's keys join
//! the memory tier once it committed, to be flushed to `duplicate_key` in bulk
//! ([`super::key_tier`]).

use super::batch::uuid_blob;
use crate::store::model::{leg_kind_sql, Decision, TransactionId};
use crate::store::plan::Plan;
use rusqlite::{params, CachedStatement, Transaction};

const INSERT_TXN: &str = "INSERT INTO txn (transaction_id, kind, mti, processing_code, card_id, \
     pan_masked, acquirer_institution_id, issuer_institution_id, terminal_id, stan, rrn, \
     transmission_at, amount_fen, decision, response_code, original_transaction_id, event_id, \
     decided_at_us, prev_card_txn_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";
const INSERT_LEG: &str = "INSERT INTO txn_leg (transaction_id, leg_no, kind, institution_id, \
     account_id, amount_fen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Writes a planned batch: the accepted decisions' rows, the planned balances, holds and
/// journal, ATCs, and the outbox with gap-free sequence numbers. Returns each decision's
/// outbox position.
pub fn write(
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
    insert_transactions(tx, decisions, plan, &accepted)?;
    write_holds(tx, plan)?;
    write_balances(tx, plan, now_us)?;
    write_cards(tx, plan)?;
    write_card_risk(tx, plan)?;
    write_queues(tx, decisions, &accepted, now_us)?;
    write_outbox(tx, decisions, &accepted, &mut seqs, now_us)?;
    Ok(seqs)
}

/// The transaction row and legs of each accepted decision.
fn insert_transactions(
    tx: &Transaction<'_>,
    decisions: &[Decision],
    plan: &Plan,
    accepted: &[usize],
) -> Result<(), rusqlite::Error> {
    let mut txn = tx.prepare_cached(INSERT_TXN)?;
    let mut leg = tx.prepare_cached(INSERT_LEG)?;
    for &i in accepted {
        let d = &decisions[i];
        let prev = plan.prev_card_txns.get(i).copied().flatten();
        insert_txn(&mut txn, d, prev)?;
        let id = uuid_blob(&d.transaction.transaction_id.0);
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
    }
    Ok(())
}

/// One `txn` row, linked to its card's previous transaction.
fn insert_txn(
    txn: &mut CachedStatement<'_>,
    d: &Decision,
    prev_card_txn: Option<TransactionId>,
) -> Result<(), rusqlite::Error> {
    let t = &d.transaction;
    txn.execute(params![
        uuid_blob(&t.transaction_id.0),
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
        prev_card_txn.as_ref().map(|p| uuid_blob(&p.0)),
    ])?;
    Ok(())
}

/// The planned balances, and the journal of the movements that led to them.
fn write_balances(tx: &Transaction<'_>, plan: &Plan, now_us: i64) -> Result<(), rusqlite::Error> {
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
    Ok(())
}

/// The cards' new highest verified ATCs and newest transactions: one row write per card.
fn write_cards(tx: &Transaction<'_>, plan: &Plan) -> Result<(), rusqlite::Error> {
    let mut card = tx.prepare_cached(
        "UPDATE card SET atc_max = COALESCE(?2, atc_max), \
         last_txn_id = COALESCE(?3, last_txn_id) WHERE card_id = ?1",
    )?;
    for c in plan.card_rows() {
        card.execute(params![
            c.card_id.0,
            c.atc_max.map(i64::from),
            c.last_txn_id.as_ref().map(|t| uuid_blob(&t.0)),
        ])?;
    }
    Ok(())
}

/// The cards whose wrong-PIN count went back to 0, and the card days' new spend.
fn write_card_risk(tx: &Transaction<'_>, plan: &Plan) -> Result<(), rusqlite::Error> {
    if !plan.pin_resets.is_empty() {
        let mut reset =
            tx.prepare_cached("UPDATE card SET pin_tries_failed = 0 WHERE card_id = ?1")?;
        for card in &plan.pin_resets {
            reset.execute([card.0])?;
        }
    }
    if !plan.card_days.is_empty() {
        let mut usage = tx.prepare_cached(
            "INSERT INTO card_day_usage (card_id, day_start_us, approved_count, amount_fen, \
             stand_in_fen) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (card_id, day_start_us) \
             DO UPDATE SET approved_count = excluded.approved_count, \
             amount_fen = excluded.amount_fen, stand_in_fen = excluded.stand_in_fen",
        )?;
        for (day, u) in &plan.card_days {
            let count = i64::from(u.approved_count);
            usage.execute(params![
                day.card_id.0,
                day.day_start_us,
                count,
                u.amount_fen,
                u.stand_in_fen
            ])?;
        }
    }
    Ok(())
}

/// The accepted decisions' settlement events, numbered from the sequence row, which is taken
/// inside the transaction: gap-free, in commit order. Records each decision's position.
fn write_outbox(
    tx: &Transaction<'_>,
    decisions: &[Decision],
    accepted: &[usize],
    seqs: &mut [Option<i64>],
    now_us: i64,
) -> Result<(), rusqlite::Error> {
    let events = accepted
        .iter()
        .filter(|&&i| decisions[i].event.is_some())
        .count() as i64;
    if events == 0 {
        return Ok(());
    }
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
    for &i in accepted {
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
    Ok(())
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
