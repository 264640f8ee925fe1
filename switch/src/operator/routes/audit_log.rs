//! `GET /audit[?cursor=&limit=]`: the audit log for auditors, oldest first, cursor = the last
//! entry's sequence number. The switch's own auditors read every entry; another institution's
//! read the entries whose detail names their institution (their operators' logins and
//! actions). Each item says whether it carries a MAC; `switch audit verify` checks them.

use super::{json, page_query};
use crate::http::HttpState;
use crate::operator::problem::{store_failed, Problem};
use crate::operator::{Caller, Permission, Scope};
use crate::store::Store;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;

/// `GET /audit`.
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
    caller.require(Permission::ReadAuditLog)?;
    let page = page_query(query)?;
    let after = match page.cursor.as_deref() {
        Some(c) => c
            .parse::<i64>()
            .map_err(|_| Problem::invalid("bad cursor"))?,
        None => 0,
    };
    let rows = st
        .store
        .audit_page(after, page.limit)
        .await
        .map_err(store_failed)?;
    let scope = caller.scope();
    let items: Vec<Value> = rows
        .iter()
        .filter_map(|r| {
            let detail: Value = serde_json::from_str(&r.entry.detail).unwrap_or(Value::Null);
            let seen = match &scope {
                Scope::All => true,
                Scope::Institution(me) => detail["institution"] == me.as_str(),
            };
            seen.then(|| {
                json!({
                    "audit_seq": r.audit_seq,
                    "at_us": r.entry.at_us,
                    "actor": r.entry.actor,
                    "action": r.entry.action,
                    "subject": r.entry.subject,
                    "source": detail["source"],
                    "reason": detail["reason"],
                    "detail": detail,
                    "keyed": r.keyed,
                })
            })
        })
        .collect();
    let next = (rows.len() == page.limit as usize)
        .then(|| rows.last().map(|r| r.audit_seq.to_string()))
        .flatten();
    Ok(json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next }),
    ))
}
