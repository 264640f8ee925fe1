//! The card's risk state in PostgreSQL's group commit: the day's spend of the batch's cards,
//! loaded and locked, and the planned wrong-PIN resets and spend written back.
//!
//! Why a row lock even for a first spend of the day: two nodes spending on the same card day
//! must not both read "nothing spent" and overwrite each other. The batch first inserts the
//! missing rows at zero (`ON CONFLICT DO NOTHING` waits for another node's insert of the same
//! row), then locks them all `FOR UPDATE` in (card, day) order, after the cards, like every
//! other lock of a batch, so nodes cannot deadlock.

use crate::store::model::{CardId, DayUsage};
use crate::store::plan::{CardDay, Loaded, Plan};
use crate::store::sql::rows::corrupt;
use sqlx::{Postgres, Row};

type Tx<'c> = sqlx::Transaction<'c, Postgres>;

const ENSURE_CARD_DAYS: &str = "INSERT INTO card_day_usage (card_id, day_start_us, \
    approved_count, amount_fen, stand_in_fen) SELECT id, day, 0, 0, 0 FROM UNNEST($1::bigint[], $2::bigint[]) \
    AS v(id, day) ORDER BY id, day ON CONFLICT (card_id, day_start_us) DO NOTHING";
const LOAD_CARD_DAYS: &str = "SELECT u.card_id, u.day_start_us, u.approved_count, u.amount_fen, \
    u.stand_in_fen FROM card_day_usage AS u JOIN UNNEST($1::bigint[], $2::bigint[]) AS v(id, day) \
    ON u.card_id = v.id AND u.day_start_us = v.day ORDER BY u.card_id, u.day_start_us \
    FOR UPDATE OF u";
const UPDATE_CARD_DAYS: &str = "UPDATE card_day_usage AS u SET approved_count = v.n, \
    amount_fen = v.fen, stand_in_fen = v.stand_in FROM UNNEST($1::bigint[], $2::bigint[], \
    $3::integer[], $4::bigint[], $5::bigint[]) AS v(id, day, n, fen, stand_in) WHERE u.card_id = v.id AND u.day_start_us = v.day";
const RESET_PIN_TRIES: &str = "UPDATE card SET pin_tries_failed = 0 \
    WHERE card_id = ANY($1::bigint[])";

/// The spend of `days` (sorted), each row created at zero if missing and locked.
pub(super) async fn load_card_days(
    tx: &mut Tx<'_>,
    days: &[CardDay],
    loaded: &mut Loaded,
) -> Result<(), sqlx::Error> {
    let (ids, starts): (Vec<i64>, Vec<i64>) =
        days.iter().map(|d| (d.card_id.0, d.day_start_us)).unzip();
    sqlx::query(ENSURE_CARD_DAYS)
        .bind(&ids)
        .bind(&starts)
        .execute(&mut **tx)
        .await?;
    let rows = sqlx::query(LOAD_CARD_DAYS)
        .bind(&ids)
        .bind(&starts)
        .fetch_all(&mut **tx)
        .await?;
    for row in &rows {
        let count: i32 = row.try_get("approved_count")?;
        let approved_count = u32::try_from(count)
            .map_err(|_| sqlx::Error::Decode(Box::new(corrupt("card_day_usage.approved_count"))))?;
        let day = CardDay {
            card_id: CardId(row.try_get("card_id")?),
            day_start_us: row.try_get("day_start_us")?,
        };
        let usage = DayUsage {
            approved_count,
            amount_fen: row.try_get("amount_fen")?,
            stand_in_fen: row.try_get("stand_in_fen")?,
        };
        loaded.card_days.insert(day, usage);
    }
    Ok(())
}

/// The planned wrong-PIN resets and card-day spend.
pub(super) async fn write(tx: &mut Tx<'_>, plan: &Plan) -> Result<(), sqlx::Error> {
    if !plan.pin_resets.is_empty() {
        let ids: Vec<i64> = plan.pin_resets.iter().map(|c| c.0).collect();
        sqlx::query(RESET_PIN_TRIES)
            .bind(ids)
            .execute(&mut **tx)
            .await?;
    }
    if !plan.card_days.is_empty() {
        let mut ids = Vec::with_capacity(plan.card_days.len());
        let mut starts = Vec::with_capacity(plan.card_days.len());
        let mut counts = Vec::with_capacity(plan.card_days.len());
        let mut amounts = Vec::with_capacity(plan.card_days.len());
        let mut stand_ins = Vec::with_capacity(plan.card_days.len());
        for (day, u) in &plan.card_days {
            ids.push(day.card_id.0);
            starts.push(day.day_start_us);
            counts.push(i32::try_from(u.approved_count).unwrap_or(i32::MAX));
            amounts.push(u.amount_fen);
            stand_ins.push(u.stand_in_fen);
        }
        sqlx::query(UPDATE_CARD_DAYS)
            .bind(ids)
            .bind(starts)
            .bind(counts)
            .bind(amounts)
            .bind(stand_ins)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
