//! SQLite batch writes as multi-row `VALUES` with bound parameters. Binding is in-process on
//! SQLite, and this measured about 40% faster end to end than one JSON parameter per table.
//! Chunks of [`ROWS_PER_STATEMENT`] rows keep the number of distinct statements (and of
//! prepared statements cached per connection) small.

use super::model::{leg_kind_sql, Decision, TxnLeg};
use super::plan::Plan;
use super::sql;
use sqlx::{QueryBuilder, Sqlite, Transaction};

type Tx = Transaction<'static, Sqlite>;

/// Rows per `INSERT ... VALUES` statement (18 columns x 32 rows = 576 parameters).
pub const ROWS_PER_STATEMENT: usize = 32;

/// Writes a planned batch; holds, reversals and advices (rare) go through the JSON statements.
pub(super) async fn write_batch(
    tx: &mut Tx,
    decisions: &[Decision],
    plan: &Plan,
    now_us: i64,
    d: &sql::Dialect,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let accepted: Vec<&Decision> = plan.accepted().map(|i| &decisions[i]).collect();
    if accepted.is_empty() {
        return Ok(vec![None; decisions.len()]);
    }
    for chunk in accepted.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO txn (transaction_id, kind, mti, processing_code, card_id, pan_masked, acquirer_institution_id, \
             issuer_institution_id, terminal_id, stan, rrn, transmission_at, amount_fen, decision, response_code, \
             original_transaction_id, event_id, decided_at_us) ",
        );
        q.push_values(chunk, |mut b, dec| {
            let t = &dec.transaction;
            b.push_bind(t.transaction_id.0)
                .push_bind(t.kind.as_sql())
                .push_bind(t.mti.clone())
                .push_bind(t.processing_code.clone())
                .push_bind(t.card_id.map(|c| c.0))
                .push_bind(t.pan_masked.clone())
                .push_bind(t.acquirer.as_str().to_owned())
                .push_bind(t.issuer.as_ref().map(|i| i.as_str().to_owned()))
                .push_bind(t.terminal_id.as_str().to_owned())
                .push_bind(t.stan.to_string())
                .push_bind(t.rrn.as_str().to_owned())
                .push_bind(t.transmission_at.as_str().to_owned())
                .push_bind(t.amount_fen.get())
                .push_bind(if t.is_approved() {
                    "approved"
                } else {
                    "declined"
                })
                .push_bind(t.response_code.as_str().to_owned())
                .push_bind(t.original_transaction_id.map(|o| o.0))
                .push_bind(dec.event.as_ref().map(|e| e.event_id))
                .push_bind(t.decided_at_us);
        });
        q.build().execute(&mut **tx).await?;
    }
    let legs: Vec<(uuid::Uuid, &TxnLeg)> = accepted
        .iter()
        .flat_map(|dec| {
            dec.legs
                .iter()
                .map(|l| (dec.transaction.transaction_id.0, l))
        })
        .collect();
    for chunk in legs.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO txn_leg (transaction_id, leg_no, kind, institution_id, account_id, amount_fen) ");
        q.push_values(chunk, |mut b, (id, l)| {
            b.push_bind(*id)
                .push_bind(i64::from(l.leg_no))
                .push_bind(leg_kind_sql(l.kind))
                .push_bind(l.institution.as_str().to_owned())
                .push_bind(l.account_id.map(|a| a.0))
                .push_bind(l.amount_fen.get());
        });
        q.build().execute(&mut **tx).await?;
    }
    for chunk in accepted.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO duplicate_key (terminal_id, stan, rrn, transmission_at, message_class, transaction_id, created_at_us) ",
        );
        q.push_values(chunk, |mut b, dec| {
            let k = dec.transaction.duplicate_key();
            b.push_bind(k.terminal_id.as_str().to_owned())
                .push_bind(k.stan.to_string())
                .push_bind(k.rrn.as_str().to_owned())
                .push_bind(k.transmission_at.as_str().to_owned())
                .push_bind(k.message_class)
                .push_bind(dec.transaction.transaction_id.0)
                .push_bind(now_us);
        });
        q.build().execute(&mut **tx).await?;
    }
    let [_, new_holds, changed_holds, _] = sql::plan_rows(plan, now_us);
    if !plan.new_holds.is_empty() {
        sqlx::query(d.insert_holds)
            .bind(new_holds)
            .execute(&mut **tx)
            .await?;
    }
    if !plan.changed_holds.is_empty() {
        sqlx::query(d.update_holds)
            .bind(changed_holds)
            .execute(&mut **tx)
            .await?;
    }
    for chunk in plan.accounts.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE account SET balance_fen = v.column2, held_fen = v.column3 FROM (",
        );
        q.push_values(chunk, |mut b, (id, a)| {
            b.push_bind(id.0)
                .push_bind(a.balance_fen)
                .push_bind(a.held_fen);
        });
        q.push(") AS v WHERE account.account_id = v.column1");
        q.build().execute(&mut **tx).await?;
    }
    for chunk in plan.movements.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO account_movement (account_id, transaction_id, hold_id, kind, amount_fen, balance_after_fen, held_after_fen, at_us) ",
        );
        q.push_values(chunk, |mut b, m| {
            b.push_bind(m.account_id.0)
                .push_bind(m.transaction_id.0)
                .push_bind(m.hold_id.map(|h| h.0))
                .push_bind(m.kind.as_sql())
                .push_bind(m.amount_fen)
                .push_bind(m.balance_after_fen)
                .push_bind(m.held_after_fen)
                .push_bind(now_us);
        });
        q.build().execute(&mut **tx).await?;
    }
    if accepted.iter().any(|dec| dec.reversal.is_some()) {
        let rows = sql::reversal_rows(decisions, plan, now_us);
        sqlx::query(d.insert_reversals)
            .bind(rows)
            .execute(&mut **tx)
            .await?;
    }
    if accepted.iter().any(|dec| dec.advice.is_some()) {
        sqlx::query(d.insert_advices)
            .bind(sql::advice_rows(decisions, plan, now_us))
            .execute(&mut **tx)
            .await?;
    }
    let events = sql::event_count(decisions, plan);
    let mut seqs = vec![None; decisions.len()];
    if events == 0 {
        return Ok(seqs);
    }
    let next: i64 = sqlx::query_scalar(
        "UPDATE outbox_sequence SET next_seq = next_seq + $1 WHERE id = 1 RETURNING next_seq",
    )
    .bind(events)
    .fetch_one(&mut **tx)
    .await?;
    let mut seq = next - events;
    let mut outbox = Vec::with_capacity(events as usize);
    for i in plan.accepted() {
        if let Some(e) = &decisions[i].event {
            let payload = e
                .to_json()
                .map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
            outbox.push((seq, e, payload));
            seqs[i] = Some(seq);
            seq += 1;
        }
    }
    for chunk in outbox.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (outbox_seq, event_id, partition_key, event_type, schema_version, payload, created_at_us) ",
        );
        q.push_values(chunk, |mut b, (seq, e, payload)| {
            b.push_bind(*seq)
                .push_bind(e.event_id)
                .push_bind(e.partition_key().as_str().to_owned())
                .push_bind(e.event_type.as_str())
                .push_bind(i64::from(e.schema_version))
                .push_bind(payload.clone())
                .push_bind(now_us);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(seqs)
}
