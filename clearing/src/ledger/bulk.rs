//! The journal insert of every batch (`applied_event`: one row per event, its posted legs packed
//! in it since clearing migration 0004), written the fastest way each backend offers:
//! multi-row VALUES with bound parameters on SQLite (the batch's constants bound once), and one INSERT ... SELECT FROM UNNEST of
//! typed arrays on PostgreSQL (one statement and 10 parameters whatever the batch size, instead
//! of thousands of parameters to bind and plan).

use super::plan::Plan;
use schemas::events::EventType;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Postgres, Sqlite, Transaction};
use std::fmt::Write as _;

/// Writes a plan's event records and their postings.
pub(crate) trait JournalWriter {
    /// Inserts `plan.applied` (with the legs they posted) into `window_id`, stamped `now`.
    async fn insert_journal(
        &mut self,
        plan: &Plan<'_>,
        window_id: i64,
        now: i64,
    ) -> Result<(), sqlx::Error>;
}

/// Bound values per journal row on SQLite: the per-batch values (applied_at_us, window_id) are
/// bound once per statement, and the event type and outcome as their codes (position + 1 in
/// [`EventType::ALL`] and [`OUTCOMES`]), which the statement turns back into the column's
/// text: integers bind without the two copies sqlx and SQLite make of every text value
/// (issue 27).
const SQLITE_VALUES_PER_ROW: usize = 8;

/// `applied_event.outcome` values by code − 1 (the statement's CASE; the column keeps text).
const OUTCOMES: [&str; 5] = [
    "posted",
    "held",
    "hold_posted",
    "hold_voided",
    "dead_letter",
];

/// `CASE column WHEN 1 THEN 'name1' ... END` over `names` (position + 1 → name).
fn sql_case(sql: &mut String, column: &str, names: impl Iterator<Item = &'static str>) {
    let _ = write!(sql, "CASE {column}");
    for (i, name) in names.enumerate() {
        let _ = write!(sql, " WHEN {} THEN '{name}'", i + 1);
    }
    sql.push_str(" END");
}

/// The SQLite journal INSERT for `rows` rows: eight anonymous values per row in a VALUES
/// list, then applied_at_us and window_id as `?N` and `?N+1` once, after every anonymous value
/// (sqlx numbers anonymous values in order; a named one scans SQLite's list of names, so
/// naming every value made binding quadratic).
fn sqlite_journal_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(1_000 + rows * 26);
    sql.push_str("WITH v (e, t, q, amt, occ, o, r, l) AS (VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "" } else { ", " });
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?)");
    }
    sql.push_str(
        ") INSERT INTO applied_event (event_id, event_type, acquirer_id, amount_fen, \
         occurred_at_us, applied_at_us, window_id, outcome, reverses_event_id, legs) SELECT e, ",
    );
    sql_case(
        &mut sql,
        "t",
        EventType::ALL.into_iter().map(EventType::as_str),
    );
    let constants = rows * SQLITE_VALUES_PER_ROW + 1;
    let _ = write!(sql, ", q, amt, occ, ?{}, ?{}, ", constants, constants + 1);
    sql_case(&mut sql, "o", OUTCOMES.into_iter());
    sql.push_str(", r, l FROM v");
    sql
}

/// Most journal rows per SQLite statement (8,194 bound values, below SQLite's 32,766).
const SQLITE_JOURNAL_ROWS_MAX: usize = 1_024;

/// The statements of every power-of-two row count up to [`SQLITE_JOURNAL_ROWS_MAX`], built
/// once. A batch is written as a sum of these sizes ([`sqlite_chunk_rows`]), so whatever the
/// batch size a connection prepares at most eleven journal statements and keeps them in its
/// statement cache; with fixed chunks and a tail of any size, batches of varying size (Kafka
/// polls) prepared a new statement for almost every tail.
fn sqlite_journal_sql_of(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=SQLITE_JOURNAL_ROWS_MAX.trailing_zeros())
            .map(|p| sqlite_journal_sql(1 << p))
            .collect()
    });
    all.get(rows.trailing_zeros() as usize)
        .map_or("", String::as_str)
}

/// The size of the next chunk of `remaining` rows: the largest power of two not above it,
/// at most [`SQLITE_JOURNAL_ROWS_MAX`].
fn sqlite_chunk_rows(remaining: usize) -> usize {
    if remaining >= SQLITE_JOURNAL_ROWS_MAX {
        SQLITE_JOURNAL_ROWS_MAX
    } else {
        1 << remaining.ilog2()
    }
}

/// The code of a value in `names` (position + 1), as [`sqlite_journal_sql`] decodes it.
fn code(names: impl Iterator<Item = &'static str>, value: &str) -> Result<i64, sqlx::Error> {
    names
        .zip(1..)
        .find_map(|(name, code)| (name == value).then_some(code))
        .ok_or_else(|| sqlx::Error::Encode(format!("no journal code for {value:?}").into()))
}

impl JournalWriter for Transaction<'_, Sqlite> {
    async fn insert_journal(
        &mut self,
        plan: &Plan<'_>,
        window_id: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut rest = plan.applied.as_slice();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(sqlite_chunk_rows(rest.len()));
            rest = tail;
            let mut args = SqliteArguments::default();
            args.reserve(2 + chunk.len() * SQLITE_VALUES_PER_ROW, 0);
            let encode = |e: sqlx::error::BoxDynError| sqlx::Error::Encode(e);
            for r in chunk {
                let event_type = code(
                    EventType::ALL.into_iter().map(EventType::as_str),
                    r.event_type,
                )?;
                args.add(r.event_id).map_err(encode)?;
                args.add(event_type).map_err(encode)?;
                args.add(r.acquirer_id).map_err(encode)?;
                args.add(r.amount_fen).map_err(encode)?;
                args.add(r.occurred_at_us).map_err(encode)?;
                args.add(code(OUTCOMES.into_iter(), r.outcome)?)
                    .map_err(encode)?;
                args.add(r.reverses_event_id).map_err(encode)?;
                args.add(plan.legs(r)).map_err(encode)?;
            }
            args.add(now).map_err(encode)?;
            args.add(window_id).map_err(encode)?;
            sqlx::query_with(sqlite_journal_sql_of(chunk.len()), args)
                .execute(&mut **self)
                .await?;
        }
        Ok(())
    }
}

impl JournalWriter for Transaction<'_, Postgres> {
    async fn insert_journal(
        &mut self,
        plan: &Plan<'_>,
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
            .bind(a.iter().map(|r| r.acquirer_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.amount_fen).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.occurred_at_us).collect::<Vec<_>>())
            .bind(now)
            .bind(window_id)
            .bind(a.iter().map(|r| r.outcome).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.reverses_event_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| plan.legs(r)).collect::<Vec<_>>())
            .execute(&mut **self)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_into_powers_of_two_that_add_up_to_it() {
        for n in [1, 2, 3, 400, 1_000, 1_023, 1_024, 1_025, 2_000, 4_096] {
            let (mut rest, mut sizes) = (n, Vec::new());
            while rest > 0 {
                let rows = sqlite_chunk_rows(rest);
                assert!(
                    rows.is_power_of_two() && rows <= SQLITE_JOURNAL_ROWS_MAX,
                    "{n}: {rows}"
                );
                sizes.push(rows);
                rest -= rows;
            }
            assert_eq!(sizes.iter().sum::<usize>(), n);
            for rows in sizes {
                let sql = sqlite_journal_sql_of(rows);
                assert_eq!(
                    sql.matches('?').count(),
                    rows * SQLITE_VALUES_PER_ROW + 2,
                    "{rows}"
                );
                assert!(sql.ends_with(&format!(
                    "?{}, ?{}, CASE o WHEN 1 THEN 'posted' WHEN 2 THEN 'held' WHEN 3 THEN \
                     'hold_posted' WHEN 4 THEN 'hold_voided' WHEN 5 THEN 'dead_letter' END, r, l \
                     FROM v",
                    rows * SQLITE_VALUES_PER_ROW + 1,
                    rows * SQLITE_VALUES_PER_ROW + 2
                )));
            }
        }
    }
}
