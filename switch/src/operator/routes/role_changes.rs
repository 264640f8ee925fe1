//! The open role-change proposals and their rejection (issue 26): `GET /role-changes` lists
//! the changes still proposed that the caller's institution sees, with the usernames an
//! administrator recognises, so the second administrator finds them without being handed an
//! id; `POST /role-changes/{id}/reject` turns one down with a reason. A rejection takes four
//! eyes like an approval (an administrator other than the proposer and the user changed):
//! otherwise a proposer could drop a colleague's objection unseen by rejecting and proposing
//! again. The list needs `users.read` (an auditor sees what waits), a rejection
//! `users.manage`; a rejection is audited with its reason.

use super::json;
use super::json_body;
use super::users::{change_json, second_administrator, visible_change, REASON_LEN_MAX_CHARS};
use crate::http::HttpState;
use crate::operator::audit::{self, action, Event};
use crate::operator::idempotency::{self, Outcome};
use crate::operator::problem::{store_failed, Problem};
use crate::operator::{Caller, Permission};
use crate::store::operator::RoleChange;
use crate::store::{now_us, Store, StoreError};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Most open proposals listed (a backlog larger than this is an incident, not a page).
pub const OPEN_CHANGES_MAX: u32 = 200;

/// `GET /role-changes`: the proposals still open, oldest first.
pub async fn open<S: Store>(State(st): State<Arc<HttpState<S>>>, caller: Caller) -> Response {
    open_inner(&st, &caller)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn open_inner<S: Store>(st: &HttpState<S>, caller: &Caller) -> Result<Response, Problem> {
    caller.require(Permission::ViewUsers)?;
    let changes = st
        .store
        .open_role_changes(OPEN_CHANGES_MAX)
        .await
        .map_err(store_failed)?;
    let scope = caller.scope();
    let mut names: HashMap<Uuid, Option<(String, String)>> = HashMap::new();
    let mut items = Vec::new();
    for c in &changes {
        for id in [c.user_id, c.proposed_by] {
            if let std::collections::hash_map::Entry::Vacant(e) = names.entry(id) {
                let user = st.store.user(id).await.map_err(store_failed)?;
                e.insert(user.map(|u| (u.username, u.institution.as_str().to_owned())));
            }
        }
        let Some(Some((username, institution))) = names.get(&c.user_id).cloned() else {
            continue;
        };
        let Ok(institution_id) = schemas::domain::InstitutionId::parse(&institution) else {
            continue;
        };
        if !scope.sees(&institution_id) {
            continue;
        }
        let mut item = change_json(c);
        item["username"] = username.into();
        item["institution"] = institution.into();
        item["proposed_by_username"] = names
            .get(&c.proposed_by)
            .cloned()
            .flatten()
            .map(|(n, _)| n)
            .into();
        items.push(item);
    }
    Ok(json(StatusCode::OK, &json!({ "items": items })))
}

/// The body of a rejection.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reject {
    reason: String,
}

/// `POST /role-changes/{id}/reject`: turns a proposed change down, with a reason.
pub async fn reject<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ManageUsers) {
        return p.into_response();
    }
    let change = match visible_change(&st, &caller, id).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let path = format!("/role-changes/{}/reject", change.change_id);
    let actor = caller.actor();
    idempotency::run(&*st.store, &actor, &headers, &path, &body, || {
        reject_inner(&st, &caller, change, &body)
    })
    .await
}

async fn reject_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    change: RoleChange,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let rejecter = second_administrator(caller, &change, "rejected")?;
    let req: Reject = json_body(body)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_LEN_MAX_CHARS {
        return Err(Problem::invalid(format!(
            "a rejection gives its reason, 1 to {REASON_LEN_MAX_CHARS} characters"
        )));
    }
    // What the entry names is fixed at the proposal; it is appended in the rejection's own
    // transaction (no rejection without its entry).
    let e = Event::by(
        caller,
        action::ROLE_CHANGE_REJECT,
        format!("user:{}", change.user_id),
    )
    .because(reason)
    .with("change_id", change.change_id.to_string().into())
    .with("role_ids", change.role_ids.clone().into())
    .with("proposed_by", change.proposed_by.to_string().into());
    let entry = audit::entry(e);
    let rejected = match st
        .store
        .reject_role_change(change.change_id, rejecter, reason, now_us(), Some(&entry))
        .await
    {
        Ok(c) => c,
        Err(StoreError::Conflict(why)) => return Err(Problem::conflict(why)),
        Err(StoreError::NotFound(_)) => return Err(Problem::not_found("role change")),
        Err(e) => return Err(store_failed(e)),
    };
    let mut body = change_json(&rejected);
    body["state"] = "rejected".into();
    Ok(Outcome::new(StatusCode::OK, body))
}
