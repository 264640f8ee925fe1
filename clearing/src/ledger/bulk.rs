//! The journal insert of every batch (`applied_event`: one row per event, its posted legs packed
//! in it since clearing migration 0004), written the fastest way each backend offers:
//! multi-row VALUES with bound parameters on SQLite, and one INSERT ... SELECT FROM UNNEST of
//! typed arrays on PostgreSQL (one statement and 10 parameters whatever the batch size, instead
//! of thousands of parameters to bind and plan).

use super::plan::Plan;
use super::ROWS_PER_STATEMENT;
use sqlx::{Postgres, QueryBuilder, Sqlite, Transaction};

/// Writes a plan's event records and their postings.
pub(crate) trait JournalWriter {
    /// Inserts `plan.applied` (with the legs they posted) into `window_id`, stamped `now`.
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
                 occurred_at_us, applied_at_us, window_id, outcome, reverses_event_id, legs) ",
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
                    .push_bind(r.reverses_event_id)
                    .push_bind(r.legs.as_deref());
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
                 occurred_at_us, applied_at_us, window_id, outcome, reverses_event_id, legs) \
                 SELECT e, t, q, amt, occ, $6, $7, o, r, l FROM UNNEST($1::uuid[], $2::text[], \
                 $3::text[], $4::int8[], $5::int8[], $8::text[], $9::uuid[], $10::text[]) \
                 AS u(e, t, q, amt, occ, o, r, l)",
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
            .bind(a.iter().map(|r| r.legs.as_deref()).collect::<Vec<_>>())
            .execute(&mut **self)
            .await?;
        }
        Ok(())
    }
}
