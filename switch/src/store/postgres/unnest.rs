//! PostgreSQL batch writes as `UNNEST` of typed arrays: one constant, prepared statement per
//! table whatever the batch size, binary parameters, no JSON to build or parse. (JSON rows cost
//! the server about 40% of an outbox insert in parsing alone.)

use super::json_rows;
use crate::store::model::{leg_kind_sql, Decision};
use crate::store::plan::Plan;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

type Tx<'c> = Transaction<'c, Postgres>;

// The statement also answers the transaction's id (`txid_current()`, with its epoch): the
// store asks the database for that transaction's status when the connection dies during COMMIT
// (`super::failover::resolve_commits`). In a CTE, not a statement of its own: no round trip more
// (a data-modifying WITH runs exactly once, whether or not the outer query reads it,
// PostgreSQL manual 7.8.4).
const INSERT_TXNS: &str =
    "WITH inserted AS (INSERT INTO txn (transaction_id, kind, mti, processing_code, card_id, \
    pan_masked, acquirer_institution_id, issuer_institution_id, terminal_id, stan, rrn, \
    transmission_at, amount_fen, decision, response_code, original_transaction_id, event_id, \
    decided_at_us, prev_card_txn_id) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], \
    $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
    $11::text[], $12::text[], $13::bigint[], $14::text[], $15::text[], $16::uuid[], $17::uuid[], \
    $18::bigint[], $19::uuid[])) SELECT txid_current()";
const INSERT_LEGS: &str = "INSERT INTO txn_leg (transaction_id, leg_no, kind, institution_id, \
    account_id, amount_fen) SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], \
    $4::text[], $5::bigint[], $6::bigint[])";
const INSERT_KEYS: &str = "INSERT INTO duplicate_key (terminal_id, stan, rrn, transmission_at, \
    message_class, transaction_id, created_at_us, acquirer) SELECT t, s, r, x, c, i, $7, a FROM \
    UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], $8::text[]) \
    AS u(t, s, r, x, c, i, a)";
const UPDATE_ACCOUNTS: &str = "UPDATE account SET balance_fen = v.b, held_fen = v.h FROM \
    UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, b, h) WHERE account.account_id = v.id";
const INSERT_MOVEMENTS: &str =
    "INSERT INTO account_movement (account_id, transaction_id, hold_id, \
    kind, amount_fen, balance_after_fen, held_after_fen, at_us) SELECT a, t, h, k, m, b, d, $8 \
    FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::bigint[], \
    $7::bigint[]) AS u(a, t, h, k, m, b, d)";
const INSERT_OUTBOX: &str = "INSERT INTO outbox (outbox_seq, event_id, partition_key, event_type, \
    schema_version, payload, created_at_us) SELECT q, e, p, t, v, j, $7 FROM UNNEST($1::bigint[], \
    $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS u(q, e, p, t, v, j)";

// The rare batch inserts take their rows as one JSON array (`json_rows::new_hold_rows`, `reversal_rows`,
// `advice_rows`): a constant statement whatever the batch size.
const INSERT_HOLDS: &str = "INSERT INTO hold (hold_id, account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, expires_at_us, closed_at_us) SELECT (r->>0)::uuid, (r->>1)::bigint, (r->>2)::uuid, (r->>3)::bigint, (r->>4)::bigint, r->>5, (r->>6)::bigint, (r->>7)::bigint, (r->>8)::bigint FROM jsonb_array_elements($1::jsonb) AS r";
// Typed arrays: with a JSON array this could be planned as a hash join over a sequential scan
// of every hold ever placed (see `batch::UPDATE_CARD_ATCS`).
const UPDATE_HOLDS: &str = "UPDATE hold SET state = v.s, captured_fen = v.c, closed_at_us = v.t \
    FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::bigint[]) AS v(id, s, c, t) \
    WHERE hold.hold_id = v.id";
const INSERT_REVERSALS: &str = "INSERT INTO reversal_queue (reversal_id, original_transaction_id, destination_institution_id, reason, amount_fen, stan, transmission_at, next_attempt_at_us, created_at_us, state) SELECT (r->>0)::uuid, (r->>1)::uuid, r->>2, r->>3, (r->>4)::bigint, r->>5, r->>6, (r->>7)::bigint, (r->>8)::bigint, 'pending' FROM jsonb_array_elements($1::jsonb) AS r";
const INSERT_ADVICES: &str = "INSERT INTO advice_queue (advice_id, transaction_id, card_id, destination_institution_id, mti_class, processing_code, amount_fen, stan, transmission_at, reason_code, auth_code, next_attempt_at_us, created_at_us, state) SELECT (r->>0)::uuid, (r->>1)::uuid, (r->>2)::bigint, r->>3, r->>4, r->>5, (r->>6)::bigint, r->>7, r->>8, r->>9, r->>10, (r->>11)::bigint, (r->>12)::bigint, 'pending' FROM jsonb_array_elements($1::jsonb) AS r";

/// Inserts the accepted decisions' rows, each linked to its card's previous transaction
/// (`prev`, aligned with `accepted`); answers the database transaction's id.
async fn insert_txns(
    tx: &mut Tx<'_>,
    accepted: &[&Decision],
    prev: Vec<Option<Uuid>>,
) -> Result<i64, sqlx::Error> {
    let n = accepted.len();
    let mut id = Vec::with_capacity(n);
    let (mut kind, mut mti, mut pcode) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut card, mut masked) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut acq, mut iss) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut term, mut stan, mut rrn, mut at) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut amount, mut decision, mut rc) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut orig, mut event, mut decided) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for d in accepted {
        let t = &d.transaction;
        id.push(t.transaction_id.0);
        kind.push(t.kind.as_sql());
        mti.push(t.mti.as_str());
        pcode.push(t.processing_code.as_str());
        card.push(t.card_id.map(|c| c.0));
        masked.push(t.pan_masked.as_deref());
        acq.push(t.acquirer.as_str());
        iss.push(t.issuer.as_ref().map(|i| i.as_str()));
        term.push(t.terminal_id.as_str());
        stan.push(t.stan.to_string());
        rrn.push(t.rrn.as_str());
        at.push(t.transmission_at.as_str());
        amount.push(t.amount_fen.get());
        decision.push(if t.is_approved() {
            "approved"
        } else {
            "declined"
        });
        rc.push(t.response_code.as_str());
        orig.push(t.original_transaction_id.map(|o| o.0));
        event.push(d.event.as_ref().map(|e| e.event_id));
        decided.push(t.decided_at_us);
    }
    sqlx::query(INSERT_TXNS)
        .bind(id)
        .bind(kind)
        .bind(mti)
        .bind(pcode)
        .bind(card)
        .bind(masked)
        .bind(acq)
        .bind(iss)
        .bind(term)
        .bind(stan)
        .bind(rrn)
        .bind(at)
        .bind(amount)
        .bind(decision)
        .bind(rc)
        .bind(orig)
        .bind(event)
        .bind(decided)
        .bind(prev)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)
}

async fn insert_legs_and_keys(
    tx: &mut Tx<'_>,
    accepted: &[&Decision],
    now_us: i64,
) -> Result<(), sqlx::Error> {
    let (mut id, mut no, mut kind, mut inst, mut account, mut amount) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for d in accepted {
        for l in &d.legs {
            id.push(d.transaction.transaction_id.0);
            no.push(i64::from(l.leg_no));
            kind.push(leg_kind_sql(l.kind));
            inst.push(l.institution.as_str());
            account.push(l.account_id.map(|a| a.0));
            amount.push(l.amount_fen.get());
        }
    }
    if !id.is_empty() {
        sqlx::query(INSERT_LEGS)
            .bind(id)
            .bind(no)
            .bind(kind)
            .bind(inst)
            .bind(account)
            .bind(amount)
            .execute(&mut **tx)
            .await?;
    }
    let keys: Vec<_> = accepted
        .iter()
        .map(|d| d.transaction.duplicate_key())
        .collect();
    sqlx::query(INSERT_KEYS)
        .bind(
            keys.iter()
                .map(|k| k.terminal_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(keys.iter().map(|k| k.stan.to_string()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.rrn.as_str()).collect::<Vec<_>>())
        .bind(
            keys.iter()
                .map(|k| k.transmission_at.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            keys.iter()
                .map(|k| k.message_class.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            accepted
                .iter()
                .map(|d| d.transaction.transaction_id.0)
                .collect::<Vec<Uuid>>(),
        )
        .bind(now_us)
        .bind(keys.iter().map(|k| k.acquirer.as_str()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_balances(tx: &mut Tx<'_>, plan: &Plan, now_us: i64) -> Result<(), sqlx::Error> {
    if !plan.accounts.is_empty() {
        sqlx::query(UPDATE_ACCOUNTS)
            .bind(plan.accounts.iter().map(|(id, _)| id.0).collect::<Vec<_>>())
            .bind(
                plan.accounts
                    .iter()
                    .map(|(_, a)| a.balance_fen)
                    .collect::<Vec<_>>(),
            )
            .bind(
                plan.accounts
                    .iter()
                    .map(|(_, a)| a.held_fen)
                    .collect::<Vec<_>>(),
            )
            .execute(&mut **tx)
            .await?;
    }
    if !plan.movements.is_empty() {
        let m = &plan.movements;
        sqlx::query(INSERT_MOVEMENTS)
            .bind(m.iter().map(|r| r.account_id.0).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.transaction_id.0).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.hold_id.map(|h| h.0)).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.kind.as_sql()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.amount_fen).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.balance_after_fen).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.held_after_fen).collect::<Vec<_>>())
            .bind(now_us)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// What a written batch will have once committed: each decision's outbox position, and the
/// database transaction's id (`None` when no decision was accepted: nothing was written).
pub struct Written {
    pub seqs: Vec<Option<i64>>,
    pub xid: Option<i64>,
}

/// Writes a planned batch; holds, reversals and advices (rare) go through the JSON statements.
pub async fn write_batch(
    tx: &mut Tx<'_>,
    decisions: &[Decision],
    plan: &Plan,
    now_us: i64,
) -> Result<Written, sqlx::Error> {
    let mut seqs = vec![None; decisions.len()];
    let accepted: Vec<&Decision> = plan.accepted().map(|i| &decisions[i]).collect();
    if accepted.is_empty() {
        return Ok(Written { seqs, xid: None });
    }
    let prev = plan
        .accepted()
        .map(|i| plan.prev_card_txns.get(i).copied().flatten().map(|t| t.0))
        .collect();
    let xid = insert_txns(tx, &accepted, prev).await?;
    insert_legs_and_keys(tx, &accepted, now_us).await?;
    write_holds(tx, plan).await?;
    write_balances(tx, plan, now_us).await?;
    if accepted.iter().any(|d| d.reversal.is_some()) {
        sqlx::query(INSERT_REVERSALS)
            .bind(json_rows::reversal_rows(decisions, plan, now_us))
            .execute(&mut **tx)
            .await?;
    }
    if accepted.iter().any(|d| d.advice.is_some()) {
        sqlx::query(INSERT_ADVICES)
            .bind(json_rows::advice_rows(decisions, plan, now_us))
            .execute(&mut **tx)
            .await?;
    }
    // Last, so the sequence row is locked only from here to the commit.
    write_outbox(tx, decisions, plan, &mut seqs, now_us).await?;
    Ok(Written {
        seqs,
        xid: Some(xid),
    })
}

/// Holds created by the batch (JSON rows, rare) and existing ones whose state changed.
async fn write_holds(tx: &mut Tx<'_>, plan: &Plan) -> Result<(), sqlx::Error> {
    if !plan.new_holds.is_empty() {
        sqlx::query(INSERT_HOLDS)
            .bind(json_rows::new_hold_rows(plan))
            .execute(&mut **tx)
            .await?;
    }
    if !plan.changed_holds.is_empty() {
        let h = &plan.changed_holds;
        sqlx::query(UPDATE_HOLDS)
            .bind(h.iter().map(|(id, _)| id.0).collect::<Vec<_>>())
            .bind(h.iter().map(|(_, r)| r.state.as_sql()).collect::<Vec<_>>())
            .bind(h.iter().map(|(_, r)| r.captured_fen).collect::<Vec<_>>())
            .bind(h.iter().map(|(_, r)| r.closed_at_us).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The accepted decisions' settlement events, numbered from the sequence row (locked from here
/// to the commit): gap-free, in commit order. Records each decision's position in `seqs`.
async fn write_outbox(
    tx: &mut Tx<'_>,
    decisions: &[Decision],
    plan: &Plan,
    seqs: &mut [Option<i64>],
    now_us: i64,
) -> Result<(), sqlx::Error> {
    let events = plan
        .accepted()
        .filter(|i| decisions[*i].event.is_some())
        .count() as i64;
    if events == 0 {
        return Ok(());
    }
    let next: i64 = sqlx::query_scalar(
        "UPDATE outbox_sequence SET next_seq = next_seq + $1 WHERE id = 1 RETURNING next_seq",
    )
    .bind(events)
    .fetch_one(&mut **tx)
    .await?;
    let mut seq = next - events;
    let (mut q, mut ids, mut keys, mut types, mut versions, mut payloads) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in plan.accepted() {
        if let Some(e) = &decisions[i].event {
            q.push(seq);
            ids.push(e.event_id);
            keys.push(e.partition_key().as_str());
            types.push(e.event_type.as_str());
            versions.push(i64::from(e.schema_version));
            payloads.push(
                e.to_json()
                    .map_err(|err| sqlx::Error::Encode(Box::new(err)))?,
            );
            seqs[i] = Some(seq);
            seq += 1;
        }
    }
    sqlx::query(INSERT_OUTBOX)
        .bind(q)
        .bind(ids)
        .bind(keys)
        .bind(types)
        .bind(versions)
        .bind(payloads)
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
