//! PostgreSQL's rare batch inserts (new holds, reversals, advices) take their rows as one JSON
//! array: a constant statement whatever the batch size, for rows too few per batch to be worth
//! typed arrays (see [`super::unnest`]).

use crate::store::model::Decision;
use crate::store::plan::Plan;
use serde_json::{json, Value};
use uuid::Uuid;

/// A UUID as 32 lowercase hex digits (SQLite `unhex`, PostgreSQL `::uuid` both read it).
pub fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

/// `reversal_queue` rows of the accepted decisions, as one JSON array.
pub fn reversal_rows(decisions: &[Decision], plan: &Plan, now_us: i64) -> String {
    let rows: Vec<Value> = plan
        .accepted()
        .filter_map(|i| {
            let d = &decisions[i];
            d.reversal.as_ref().map(|r| {
                json!([
                    hex(r.reversal_id.0),
                    hex(d.transaction.transaction_id.0),
                    r.destination.as_str(),
                    r.reason.as_sql(),
                    r.amount_fen.get(),
                    r.stan.to_string(),
                    r.transmission_at.as_str(),
                    r.first_attempt_at_us,
                    now_us,
                ])
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// `advice_queue` rows of the accepted decisions, as one JSON array.
pub fn advice_rows(decisions: &[Decision], plan: &Plan, now_us: i64) -> String {
    let rows: Vec<Value> = plan
        .accepted()
        .filter_map(|i| {
            let d = &decisions[i];
            d.advice.as_ref().map(|a| {
                json!([
                    hex(a.advice_id.0),
                    hex(d.transaction.transaction_id.0),
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
                ])
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// The holds a plan creates, as one JSON array of rows.
pub fn new_hold_rows(plan: &Plan) -> String {
    let rows: Vec<Value> = plan
        .new_holds
        .iter()
        .map(|(id, h)| {
            json!([
                hex(id.0),
                h.account_id.0,
                hex(h.transaction_id.0),
                h.amount_fen,
                h.captured_fen,
                h.state.as_sql(),
                h.created_at_us,
                h.expires_at_us,
                h.closed_at_us,
            ])
        })
        .collect();
    Value::Array(rows).to_string()
}
