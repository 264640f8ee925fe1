//! The two large inserts of every batch (`applied_event`, `posting`), written the fastest way
//! each backend offers: multi-row VALUES with bound parameters on SQLite, and one INSERT ...
//! SELECT FROM UNNEST of typed arrays on PostgreSQL (one statement and 9–12 parameters whatever
//! the batch size, instead of thousands of parameters to bind and plan).

use super::plan::Plan;
use super::ROWS_PER_STATEMENT;
use sqlx::{Postgres, QueryBuilder, Sqlite, Transaction};

/// Writes a plan's event records and postings.
pub(crate) trait JournalWriter {
    /// Inserts `plan.applied` and `plan.postings` into `window_id`, stamped `now`.
    async fn insert_journal(
        &mut self,
        plan: &Plan,
        window_id: i64,
        now: i64,
    ) -> Result<(), sqlx::Error>;
}

impl JournalWriter for Transaction<'_, Sqlite> {
    async fn insert_journal(
        &mut self,
        plan: &Plan,
        window_id: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        for chunk in plan.applied.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::new(
                "INSERT INTO applied_event (event_id, event_type, acquirer_id, amount_fen, \
                 occurred_at_us, applied_at_us, window_id, outcome, reverses_event_id) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.event_id)
                    .push_bind(r.event_type)
                    .push_bind(r.acquirer_id.as_str())
                    .push_bind(r.amount_fen)
                    .push_bind(r.occurred_at_us)
                    .push_bind(now)
                    .push_bind(window_id)
                    .push_bind(r.outcome)
                    .push_bind(r.reverses_event_id);
            });
            qb.build().execute(&mut **self).await?;
        }
        for chunk in plan.postings.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::new(
                "INSERT INTO posting (window_id, event_id, leg_no, event_type, leg_kind, \
                 debit_institution, debit_account, credit_institution, credit_account, \
                 amount_fen, hold_id, posted_at_us) ",
            );
            qb.push_values(chunk, |mut b, p| {
                b.push_bind(window_id)
                    .push_bind(p.event_id)
                    .push_bind(p.leg.leg_no)
                    .push_bind(p.event_type)
                    .push_bind(p.leg_kind)
                    .push_bind(p.leg.debit_institution.as_str())
                    .push_bind(p.leg.debit_account)
                    .push_bind(p.leg.credit_institution.as_str())
                    .push_bind(p.leg.credit_account)
                    .push_bind(p.leg.amount_fen)
                    .push_bind(p.hold_id)
                    .push_bind(now);
            });
            qb.build().execute(&mut **self).await?;
        }
        Ok(())
    }
}

impl JournalWriter for Transaction<'_, Postgres> {
    async fn insert_journal(
        &mut self,
        plan: &Plan,
        window_id: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        if !plan.applied.is_empty() {
            let a = &plan.applied;
            sqlx::query(
                "INSERT INTO applied_event (event_id, event_type, acquirer_id, amount_fen, \
                 occurred_at_us, applied_at_us, window_id, outcome, reverses_event_id) \
                 SELECT e, t, q, amt, occ, $6, $7, o, r FROM UNNEST($1::uuid[], $2::text[], \
                 $3::text[], $4::int8[], $5::int8[], $8::text[], $9::uuid[]) AS u(e, t, q, amt, occ, o, r)",
            )
            .bind(a.iter().map(|r| r.event_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.event_type).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.acquirer_id.as_str()).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.amount_fen).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.occurred_at_us).collect::<Vec<_>>())
            .bind(now)
            .bind(window_id)
            .bind(a.iter().map(|r| r.outcome).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.reverses_event_id).collect::<Vec<_>>())
            .execute(&mut **self)
            .await?;
        }
        if !plan.postings.is_empty() {
            let p = &plan.postings;
            sqlx::query(
                "INSERT INTO posting (window_id, event_id, leg_no, event_type, leg_kind, \
                 debit_institution, debit_account, credit_institution, credit_account, \
                 amount_fen, hold_id, posted_at_us) \
                 SELECT $1, e, l, t, k, di, da, ci, ca, amt, h, $12 FROM UNNEST($2::uuid[], \
                 $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                 $9::text[], $10::int8[], $11::uuid[]) AS u(e, l, t, k, di, da, ci, ca, amt, h)",
            )
            .bind(window_id)
            .bind(p.iter().map(|r| r.event_id).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.leg.leg_no).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.event_type).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.leg_kind).collect::<Vec<_>>())
            .bind(
                p.iter()
                    .map(|r| r.leg.debit_institution.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(p.iter().map(|r| r.leg.debit_account).collect::<Vec<_>>())
            .bind(
                p.iter()
                    .map(|r| r.leg.credit_institution.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(p.iter().map(|r| r.leg.credit_account).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.leg.amount_fen).collect::<Vec<_>>())
            .bind(p.iter().map(|r| r.hold_id).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut **self)
            .await?;
        }
        Ok(())
    }
}
