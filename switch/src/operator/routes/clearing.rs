//! Settlement on the operator API (issue 25): the clearing centre's analysts and each bank's
//! back office read settlement windows, net positions and statements, and the centre closes
//! the open window, through the switch's own sessions, roles and audit log. The figures come
//! from clearing ([`SettlementSource`]: its settlement API over mutual TLS, or the demo's
//! embedded ledger).
//!
//! | route | permission |
//! |---|---|
//! | `GET /clearing/windows` (cursor, limit) | `clearing.read` |
//! | `GET /clearing/windows/{id}` | `clearing.read` |
//! | `GET /clearing/positions` | `clearing.read` |
//! | `POST /clearing/windows/close` (reason, optional window_id) | `clearing.close_window` |
//! | `GET /clearing/windows/{id}/reports/{institution}?format=csv\|camt053` | `clearing.read` |
//!
//! Scope ([`Viewer`]): the switch's own institution (the clearing centre) sees every
//! institution's position; a bank sees its own position line (the others are left out), the
//! instructions it pays or receives and its own statements; any other institution sees no
//! window (404; its list is empty). Only the centre closes a window (elsewhere 404). The route
//! filters what clearing answers, and clearing filters by the same rule before it answers.
//!
//! A node without `[clearing_api]` answers these routes 503 `/problems/clearing-not-configured`.

use super::{json, json_body, page_query};
use crate::clearing_link::{SettlementError, SettlementOperator, SettlementSource};
use crate::http::HttpState;
use crate::operator::audit::{self, action, Event};
use crate::operator::idempotency::{self, Outcome};
use crate::operator::problem::Problem;
use crate::operator::{Caller, Permission};
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use schemas::domain::InstitutionId;
use schemas::settlement_api::{
    CloseWindow, Instruction, NetPosition, StatementFormat, Viewer, WindowDetail, WindowItem,
    REASON_LEN_MAX_CHARS,
};
use serde_json::{json, Value};
use std::sync::Arc;

fn yuan(fen: i64) -> String {
    Decimal::new(fen, 2).to_string()
}

/// The settlement source, or 503 when the node has none.
fn source<S: Store>(st: &HttpState<S>) -> Result<&Arc<dyn SettlementSource>, Problem> {
    st.clearing.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "clearing-not-configured",
            "Clearing not configured",
            "this node has no [clearing_api]: settlement is not reachable from it",
        )
    })
}

fn viewer(caller: &Caller) -> Viewer {
    Viewer::of(
        caller.institution.institution_id.as_str(),
        caller.institution.kind.as_sql(),
    )
}

fn failed(e: SettlementError) -> Problem {
    match e {
        // What clearing refuses to show or do for this institution does not exist for it.
        SettlementError::NotFound | SettlementError::Forbidden(_) => {
            Problem::not_found("settlement window")
        }
        SettlementError::Conflict(why) => Problem::conflict(why),
        SettlementError::Invalid(why) => Problem::invalid(why),
        SettlementError::Unavailable(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "clearing-unavailable",
            "Clearing unavailable",
            "clearing did not answer; try again",
        ),
    }
}

fn window_json(w: &WindowItem) -> Value {
    json!({
        "window_id": w.window_id,
        "state": w.state,
        "opened_at_us": w.opened_at_us,
        "closed_at_us": w.closed_at_us,
        "posting_count": w.posting_count,
        "posted_total": w.posted_total_fen.map(yuan),
        "posted_total_fen": w.posted_total_fen,
        "currency": "CNY",
        "digest_sha256": w.digest_sha256,
    })
}

fn positions_json(positions: &[NetPosition], viewer: &Viewer) -> Vec<Value> {
    positions
        .iter()
        .filter(|p| viewer.sees(&p.institution_id))
        .map(|p| {
            json!({
                "institution_id": p.institution_id,
                "debits": yuan(p.debits_fen),
                "debits_fen": p.debits_fen,
                "credits": yuan(p.credits_fen),
                "credits_fen": p.credits_fen,
                "net": yuan(p.net_fen),
                "net_fen": p.net_fen,
                "digest_sha256": p.digest_sha256,
            })
        })
        .collect()
}

fn instructions_json(instructions: &[Instruction], viewer: &Viewer) -> Vec<Value> {
    instructions
        .iter()
        .filter(|i| viewer.sees(&i.payer_id) || viewer.sees(&i.payee_id))
        .map(|i| {
            json!({
                "instruction_no": i.instruction_no,
                "payer_id": i.payer_id,
                "payee_id": i.payee_id,
                "amount": yuan(i.amount_fen),
                "amount_fen": i.amount_fen,
            })
        })
        .collect()
}

fn detail_json(d: &WindowDetail, viewer: &Viewer) -> Value {
    let mut body = window_json(&d.window);
    if *viewer != Viewer::Centre {
        // The network's totals are the centre's; clearing leaves them out for a bank too.
        body["posting_count"] = Value::Null;
        body["posted_total"] = Value::Null;
        body["posted_total_fen"] = Value::Null;
    }
    body["positions"] = Value::from(positions_json(&d.positions, viewer));
    body["instructions"] = Value::from(instructions_json(&d.instructions, viewer));
    body
}

/// A window id of the path: a positive whole number, else the window does not exist.
fn window_id(id: &str) -> Result<i64, Problem> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Problem::not_found("settlement window"))
}

/// `GET /clearing/windows`: newest first, a page at a time (the cursor is the last window's
/// id).
pub async fn windows<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    windows_inner(&st, &caller, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn windows_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    query: Option<&str>,
) -> Result<Response, Problem> {
    caller.require(Permission::ViewClearing)?;
    let page = page_query(query)?;
    let clearing = source(st)?;
    let before = page
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Problem::invalid("cursor: the next_cursor of a previous page"))
        })
        .transpose()?;
    if viewer(caller) == Viewer::Nothing {
        return Ok(json(
            StatusCode::OK,
            &json!({ "items": [], "next_cursor": null }),
        ));
    }
    let found = clearing
        .windows(&SettlementOperator::of(caller), before, page.limit)
        .await
        .map_err(failed)?;
    let mut items: Vec<Value> = found.items.iter().map(window_json).collect();
    if viewer(caller) != Viewer::Centre {
        for w in &mut items {
            w["posting_count"] = Value::Null;
            w["posted_total"] = Value::Null;
            w["posted_total_fen"] = Value::Null;
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "items": items,
            "next_cursor": found.next_before.map(|b| b.to_string()),
        }),
    ))
}

/// `GET /clearing/windows/{id}`: a window with the positions and instructions the caller's
/// institution sees.
pub async fn window<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    window_inner(&st, &caller, id)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn window_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    caller.require(Permission::ViewClearing)?;
    let clearing = source(st)?;
    let Ok(Path(id)) = id else {
        return Err(Problem::not_found("settlement window"));
    };
    let id = window_id(&id)?;
    let viewer = viewer(caller);
    if viewer == Viewer::Nothing {
        return Err(Problem::not_found("settlement window"));
    }
    let detail = clearing
        .window(&SettlementOperator::of(caller), id)
        .await
        .map_err(failed)?;
    Ok(json(StatusCode::OK, &detail_json(&detail, &viewer)))
}

/// `GET /clearing/positions`: the open window's positions so far.
pub async fn positions<S: Store>(State(st): State<Arc<HttpState<S>>>, caller: Caller) -> Response {
    positions_inner(&st, &caller)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn positions_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
) -> Result<Response, Problem> {
    caller.require(Permission::ViewClearing)?;
    let clearing = source(st)?;
    let viewer = viewer(caller);
    if viewer == Viewer::Nothing {
        return Err(Problem::not_found("settlement window"));
    }
    let open = clearing
        .positions(&SettlementOperator::of(caller))
        .await
        .map_err(failed)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "window_id": open.window_id,
            "opened_at_us": open.opened_at_us,
            "as_of_us": open.as_of_us,
            "currency": "CNY",
            "positions": positions_json(&open.positions, &viewer),
        }),
    ))
}

/// `POST /clearing/windows/close`: closes the open window (the clearing centre only), with a
/// reason; audited.
pub async fn close_window<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::CloseWindow) {
        return p.into_response();
    }
    let who = caller.actor();
    idempotency::run(
        &*st.store,
        &who,
        &headers,
        "/clearing/windows/close",
        &body,
        || close_inner(&st, &caller, &body),
    )
    .await
}

async fn close_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let clearing = source(st)?;
    if viewer(caller) != Viewer::Centre {
        return Err(Problem::not_found("settlement window"));
    }
    let request: CloseWindow = json_body(body)?;
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_LEN_MAX_CHARS {
        return Err(Problem::invalid(format!(
            "reason: 1 to {REASON_LEN_MAX_CHARS} characters"
        )));
    }
    let closed = clearing
        .close_window(&SettlementOperator::of(caller), &request)
        .await
        .map_err(failed)?;
    let w = &closed.window;
    let e = Event::by(
        caller,
        action::CLEARING_WINDOW_CLOSE,
        format!("settlement_window:{}", w.window_id),
    )
    .because(reason)
    .with("posting_count", w.posting_count.into())
    .with("posted_total_fen", w.posted_total_fen.into())
    .with("digest_sha256", w.digest_sha256.clone().into());
    audit::record(&*st.store, e).await?;
    Ok(Outcome::new(
        StatusCode::OK,
        detail_json(&closed, &Viewer::Centre),
    ))
}

/// `GET /clearing/windows/{id}/reports/{institution}?format=csv|camt053`: an institution's
/// statement of a window (a bank only its own).
pub async fn statement<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    statement_inner(&st, &caller, path, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn statement_format(query: Option<&str>) -> Result<StatementFormat, Problem> {
    let mut format = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match (&*name, format) {
            ("format", None) => {
                format = Some(
                    StatementFormat::parse(&value)
                        .ok_or_else(|| Problem::invalid("format: csv or camt053"))?,
                )
            }
            _ => {
                return Err(Problem::invalid(
                    "the one parameter is format, at most once",
                ))
            }
        }
    }
    Ok(format.unwrap_or(StatementFormat::Csv))
}

async fn statement_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Option<&str>,
) -> Result<Response, Problem> {
    caller.require(Permission::ViewClearing)?;
    let clearing = source(st)?;
    let format = statement_format(query)?;
    let Ok(Path((id, institution))) = path else {
        return Err(Problem::not_found("statement"));
    };
    let id = window_id(&id)?;
    let institution =
        InstitutionId::parse(&institution).map_err(|_| Problem::not_found("statement"))?;
    if !viewer(caller).sees(institution.as_str()) {
        return Err(Problem::not_found("statement"));
    }
    let text = clearing
        .statement(
            &SettlementOperator::of(caller),
            id,
            institution.as_str(),
            format,
        )
        .await
        .map_err(|e| match e {
            SettlementError::NotFound | SettlementError::Forbidden(_) => {
                Problem::not_found("statement")
            }
            other => failed(other),
        })?;
    let extension = match format {
        StatementFormat::Csv => "csv",
        StatementFormat::Camt053 => "xml",
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"statement-{}-window-{id}.{extension}\"",
                    institution.as_str()
                ),
            ),
        ],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::settlement_api::WindowState;

    fn position(institution: &str, net_fen: i64) -> NetPosition {
        NetPosition {
            institution_id: institution.into(),
            debits_fen: net_fen.min(0).abs(),
            credits_fen: net_fen.max(0),
            net_fen,
            digest_sha256: None,
        }
    }

    /// Even if clearing answered every line (a fault there), the route shows a bank its own.
    #[test]
    fn a_bank_is_shown_its_own_line_and_instructions_whatever_clearing_answers() {
        let detail = WindowDetail {
            window: WindowItem {
                window_id: 1,
                state: WindowState::Closed,
                opened_at_us: 0,
                closed_at_us: Some(1),
                posting_count: Some(3),
                posted_total_fen: Some(300),
                digest_sha256: None,
            },
            positions: vec![position("01020000", -100), position("01030000", 100)],
            instructions: vec![Instruction {
                instruction_no: 1,
                payer_id: "01030000".into(),
                payee_id: "3100001".into(),
                amount_fen: 100,
            }],
        };
        let bank = Viewer::of("01020000", "bank");
        let shown = detail_json(&detail, &bank);
        assert_eq!(shown["positions"].as_array().map(Vec::len), Some(1));
        assert_eq!(shown["positions"][0]["net"], "-1.00");
        assert_eq!(shown["instructions"], json!([]));
        assert!(shown["posting_count"].is_null() && shown["posted_total_fen"].is_null());
        let centre = detail_json(&detail, &Viewer::Centre);
        assert_eq!(centre["positions"].as_array().map(Vec::len), Some(2));
        assert_eq!(centre["posted_total"], "3.00");
    }

    #[test]
    fn the_statement_format_is_csv_or_camt053_once() {
        assert_eq!(statement_format(None).unwrap(), StatementFormat::Csv);
        assert_eq!(
            statement_format(Some("format=camt053")).unwrap(),
            StatementFormat::Camt053
        );
        for bad in ["format=pdf", "format=csv&format=csv", "window=1"] {
            assert!(statement_format(Some(bad)).is_err(), "{bad}");
        }
    }
}
