//! The bank cut-over for operators (issue 29, [`crate::issuer::cutover`]):
//!
//! - `GET /reconciliations[?bank=&day=&status=&cursor=&limit=]` (`clearing.read`): each bank's
//!   reconciliation of each settlement day, newest first, with the switch's figures, the
//!   bank's, the lines that differ and the resolution; the cursor is the last item's id. A bank
//!   sees its own ([`crate::operator::Scope`]); the switch sees every bank's.
//! - `POST /reconciliations/{id}/resolve` (`reconciliation.resolve`, `Idempotency-Key`, a
//!   `reason`): closes an out-of-balance day's exception, audited with the operator's reason.
//!   Anything but an open exception is 409.
//! - `POST /cutover` (`clearing.close_window`, the switch's own operators): cuts a settlement
//!   day over now (`{"day": "YYYY-MM-DD"}`), for a day the scheduled task has not reached or
//!   a demo; what was reconciled before is not sent again. Audited.

use super::{json, json_body, PAGE_DEFAULT, PAGE_MAX};
use crate::http::HttpState;
use crate::issuer::cutover::{BankOutcome, CutoverError};
use crate::operator::audit::{self, action, Event};
use crate::operator::idempotency::{self, Outcome};
use crate::operator::problem::{store_failed, Problem};
use crate::operator::{Caller, Permission, Scope};
use crate::store::cutover::{
    BankReconciliation, ReconciliationQuery, ReconciliationStatus, Resolution, ResolveOutcome,
};
use crate::store::{now_us, Store};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use schemas::domain::InstitutionId;
use schemas::iso8583::{ReconciliationTotals, TotalsLine, NET_SETTLEMENT_NAME};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Longest resolution reason, characters.
pub const REASON_LEN_MAX: usize = 500;

fn totals_json(t: &ReconciliationTotals) -> Value {
    let line = |l: TotalsLine| {
        let tally = t.line(l);
        json!({ "count": tally.count, "amount_fen": tally.amount.get() })
    };
    let net = t.net().ok();
    json!({
        "credits": line(TotalsLine::Credits),
        "credit_reversals": line(TotalsLine::CreditReversals),
        "debits": line(TotalsLine::Debits),
        "debit_reversals": line(TotalsLine::DebitReversals),
        "net_fen": net.map(|n| n.fen()),
        "net": net.map(|n| n.to_string()),
    })
}

/// One figure of `t` by its field (74-77, 86-89, 97).
fn figure(t: &ReconciliationTotals, field: u16) -> Option<(&'static str, i64)> {
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    if field == 97 {
        return Some((NET_SETTLEMENT_NAME, t.net().ok()?.fen()));
    }
    TotalsLine::ALL.into_iter().find_map(|l| {
        if l.count_field() == field {
            Some((l.count_name(), int(t.line(l).count)))
        } else if l.amount_field() == field {
            Some((l.amount_name(), t.line(l).amount.get()))
        } else {
            None
        }
    })
}

/// A record as the API shows it.
pub fn reconciliation_json(r: &BankReconciliation) -> Value {
    let answer = r.answer.as_ref();
    let differing: Vec<Value> = answer
        .map(|a| {
            a.differing_fields
                .iter()
                .map(|f| {
                    let ours = figure(&a.switch_totals, *f);
                    let theirs = figure(&a.bank_totals, *f);
                    json!({
                        "field": f,
                        "name": ours.or(theirs).map(|(n, _)| n),
                        "switch": ours.map(|(_, v)| v),
                        "bank": theirs.map(|(_, v)| v),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "reconciliation_id": r.reconciliation_id,
        "bank": r.bank.as_str(),
        "settlement_day": r.settlement_day.format("%Y-%m-%d").to_string(),
        "status": r.status.as_str(),
        "attempts": r.attempts,
        "last_error": r.last_error,
        "created_at_us": r.created_at_us,
        "answered_at_us": answer.map(|a| a.at_us),
        "stan": answer.map(|a| a.stan.as_str()),
        "bank_settlement_code": answer.map(|a| a.bank_settlement_code.as_str()),
        "switch_totals": answer.map(|a| totals_json(&a.switch_totals)),
        "bank_totals": answer.map(|a| totals_json(&a.bank_totals)),
        "differing": differing,
        "resolution": r.resolution.as_ref().map(|x| json!({
            "by": x.by, "reason": x.reason, "at_us": x.at_us,
        })),
    })
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    (s.len() == 10)
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
}

/// The list's query: each parameter at most once, each value checked.
pub fn parse(query: Option<&str>) -> Result<ReconciliationQuery, Problem> {
    let mut q = ReconciliationQuery {
        limit: PAGE_DEFAULT,
        ..ReconciliationQuery::default()
    };
    let mut seen = BTreeSet::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !seen.insert(name.to_string()) {
            return Err(Problem::invalid(format!("{name} comes at most once")));
        }
        let bad = |what: &str| Problem::invalid(format!("{name}: {what}"));
        match &*name {
            "bank" => {
                q.bank = Some(InstitutionId::parse(&value).map_err(|_| bad("an institution id"))?)
            }
            "day" => q.day = Some(parse_day(&value).ok_or_else(|| bad("a date, YYYY-MM-DD"))?),
            "status" => {
                q.status = Some(
                    ReconciliationStatus::parse(&value)
                        .ok_or_else(|| bad("pending, in_balance, out_of_balance or resolved"))?,
                )
            }
            "cursor" => {
                q.before_id = Some(
                    value
                        .parse()
                        .map_err(|_| bad("the next_cursor of a previous page"))?,
                )
            }
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=PAGE_MAX).contains(n))
                    .ok_or_else(|| bad(&format!("a whole number from 1 to {PAGE_MAX}")))?;
            }
            _ => {
                return Err(Problem::invalid(
                    "the parameters are bank, day, status, cursor and limit",
                ))
            }
        }
    }
    Ok(q)
}

/// `GET /reconciliations`.
pub async fn list<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    list_inner(&st, &caller, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn list_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    query: Option<&str>,
) -> Result<Response, Problem> {
    caller.require(Permission::ViewClearing)?;
    let mut q = parse(query)?;
    let empty = || json(StatusCode::OK, &json!({ "items": [], "next_cursor": null }));
    if let Scope::Institution(me) = caller.scope() {
        // A bank sees its own days; asking for another's finds nothing.
        if q.bank.as_ref().is_some_and(|b| *b != me) {
            return Ok(empty());
        }
        q.bank = Some(me);
    }
    let found = st
        .store
        .bank_reconciliations(&q)
        .await
        .map_err(store_failed)?;
    let next = (found.len() == q.limit as usize)
        .then(|| found.last().map(|r| r.reconciliation_id.to_string()))
        .flatten();
    Ok(json(
        StatusCode::OK,
        &json!({
            "items": found.iter().map(reconciliation_json).collect::<Vec<_>>(),
            "next_cursor": next,
        }),
    ))
}

/// The body of `POST /reconciliations/{id}/resolve`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolve {
    reason: String,
}

/// `POST /reconciliations/{id}/resolve`.
pub async fn resolve<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ResolveReconciliation) {
        return p.into_response();
    }
    let id = match visible(&st, &caller, id).await {
        Ok(r) => r.reconciliation_id,
        Err(p) => return p.into_response(),
    };
    let path = format!("/reconciliations/{id}/resolve");
    let actor = caller.actor();
    idempotency::run(&*st.store, &actor, &headers, &path, &body, || {
        resolve_inner(&st, &caller, id, &body)
    })
    .await
}

/// The record `id` names, if the caller's institution sees it (else 404).
async fn visible<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<BankReconciliation, Problem> {
    let not_found = || Problem::not_found("reconciliation");
    let id: i64 = id
        .ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(not_found)?;
    match st
        .store
        .bank_reconciliation(id)
        .await
        .map_err(store_failed)?
    {
        Some(r) if caller.scope().sees(&r.bank) => Ok(r),
        _ => Err(not_found()),
    }
}

async fn resolve_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    id: i64,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let req: Resolve = json_body(body)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_LEN_MAX {
        return Err(Problem::invalid(format!(
            "reason has 1 to {REASON_LEN_MAX} characters"
        )));
    }
    let resolution = Resolution {
        by: caller.actor(),
        reason: reason.to_owned(),
        at_us: now_us(),
    };
    let resolved = match st
        .store
        .resolve_bank_reconciliation(id, &resolution)
        .await
        .map_err(store_failed)?
    {
        ResolveOutcome::Resolved(r) => r,
        ResolveOutcome::NotFound => return Err(Problem::not_found("reconciliation")),
        ResolveOutcome::NotAnException(r) => {
            return Err(Problem::conflict(format!(
                "the reconciliation is {}, not an open exception",
                r.status.as_str()
            )))
        }
    };
    let e = Event::by(
        caller,
        action::RECONCILIATION_RESOLVE,
        format!("reconciliation:{id}"),
    )
    .because(reason)
    .with("bank", resolved.bank.as_str().into())
    .with(
        "settlement_day",
        resolved
            .settlement_day
            .format("%Y-%m-%d")
            .to_string()
            .into(),
    );
    audit::record(&*st.store, e).await?;
    Ok(Outcome::new(StatusCode::OK, reconciliation_json(&resolved)))
}

/// The body of `POST /cutover`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunCutover {
    day: String,
}

/// `POST /cutover`.
pub async fn run<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::CloseWindow) {
        return p.into_response();
    }
    if caller.scope() != Scope::All {
        // Cutting the network's day over is the switch's own operators' task.
        return Problem::forbidden(Permission::CloseWindow.as_str()).into_response();
    }
    let actor = caller.actor();
    idempotency::run(&*st.store, &actor, &headers, "/cutover", &body, || {
        run_inner(&st, &caller, &body)
    })
    .await
}

async fn run_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let req: RunCutover = json_body(body)?;
    let day = parse_day(&req.day).ok_or_else(|| Problem::invalid("day: a date, YYYY-MM-DD"))?;
    let Some(cutover) = &st.cutover else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "No cut-over",
            "this node runs no bank cut-over",
        ));
    };
    let report = match cutover.run_day(day).await {
        Ok(r) => r,
        Err(CutoverError::DayNotOver(_)) => {
            return Err(Problem::conflict(format!(
                "the settlement day {day} is not over"
            )))
        }
        Err(CutoverError::Store(e)) => return Err(store_failed(e)),
        Err(e) => {
            tracing::error!(error = %e, "cut-over failed");
            return Err(Problem::unavailable());
        }
    };
    let banks: Vec<Value> = report
        .banks
        .iter()
        .map(|(bank, outcome)| {
            let detail = match outcome {
                BankOutcome::OutOfBalance(fields) => json!(fields),
                BankOutcome::Deferred(why) | BankOutcome::Failed(why) => json!(why),
                _ => Value::Null,
            };
            json!({ "bank": bank.as_str(), "outcome": outcome.as_str(), "detail": detail })
        })
        .collect();
    let day = day.format("%Y-%m-%d").to_string();
    let e = Event::by(caller, action::CUTOVER_RUN, format!("settlement_day:{day}"))
        .with("banks", Value::from(banks.clone()));
    audit::record(&*st.store, e).await?;
    Ok(Outcome::new(
        StatusCode::OK,
        json!({ "settlement_day": day, "banks": banks }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_query_is_strict() {
        let q = parse(Some(
            "bank=0803000010&day=2026-11-23&status=out_of_balance&limit=5",
        ))
        .unwrap();
        assert_eq!(q.bank.as_ref().map(|b| b.as_str()), Some("0803000010"));
        assert_eq!(q.day, NaiveDate::from_ymd_opt(2026, 11, 23));
        assert_eq!(q.status, Some(ReconciliationStatus::OutOfBalance));
        assert_eq!(q.limit, 5);
        for bad in [
            "day=2026-13-01",
            "day=20261123",
            "status=open",
            "limit=0",
            "limit=201",
            "cursor=x",
            "bank=0803000010&bank=0803000010",
            "window=1",
        ] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
