//! Users and their roles: `GET /users`, `POST /users` (a new user with a one-time password and
//! TOTP secret, shown once), `POST /users/{id}/roles` (propose a role change) and
//! `POST /role-changes/{id}/approve` (another administrator approves it: four eyes); the open
//! proposals and their rejection are [`super::role_changes`].
//!
//! An administrator of an institution sees and changes only its own users (the switch's own
//! administrators every institution's); anyone else's user or role change is 404.

use super::{json, json_body, page_query};
use crate::http::HttpState;
use crate::operator::audit::{self, action, Event};
use crate::operator::idempotency::{self, Outcome};
use crate::operator::problem::{store_failed, Problem};
use crate::operator::provision::{self, ProvisionError};
use crate::operator::{Caller, Permission};
use crate::store::operator::{OperatorUser, RoleChange};
use crate::store::{now_us, Store, StoreError};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use schemas::domain::InstitutionId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// Longest reason of a role change.
pub const REASON_LEN_MAX_CHARS: usize = 500;

async fn user_json<S: Store>(store: &S, u: &OperatorUser) -> Result<Value, Problem> {
    let roles = store.user_roles(u.user_id).await.map_err(store_failed)?;
    Ok(json!({
        "user_id": u.user_id.to_string(),
        "username": u.username,
        "institution": u.institution.as_str(),
        "roles": roles.iter().map(|r| r.role_id.as_str()).collect::<Vec<_>>(),
        "locked_until_us": u.locked_until_us.filter(|t| *t > now_us()),
        "created_at_us": u.created_at_us,
    }))
}

pub(super) fn change_json(c: &RoleChange) -> Value {
    json!({
        "change_id": c.change_id.to_string(),
        "user_id": c.user_id.to_string(),
        "role_ids": c.role_ids,
        "reason": c.reason,
        "proposed_by": c.proposed_by.to_string(),
        "proposed_at_us": c.proposed_at_us,
        "state": if c.approved_by.is_some() { "approved" } else { "proposed" },
        "approved_by": c.approved_by.map(|a| a.to_string()),
        "approved_at_us": c.approved_at_us,
    })
}

/// `GET /users[?cursor=&limit=]`.
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
    caller.require(Permission::ViewUsers)?;
    let page = page_query(query)?;
    let after = match page.cursor.as_deref() {
        Some(c) => Some(Uuid::parse_str(c).map_err(|_| Problem::invalid("bad cursor"))?),
        None => None,
    };
    let scope = caller.scope();
    let users = st
        .store
        .users_page(scope.only(), after, page.limit)
        .await
        .map_err(store_failed)?;
    let mut items = Vec::with_capacity(users.len());
    for u in &users {
        items.push(user_json(&*st.store, u).await?);
    }
    let next = (users.len() == page.limit as usize)
        .then(|| users.last().map(|u| u.user_id.to_string()))
        .flatten();
    Ok(json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next }),
    ))
}

/// The body of `POST /users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    /// Default: the caller's institution.
    institution: Option<String>,
}

/// `POST /users`.
pub async fn create<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ManageUsers) {
        return p.into_response();
    }
    let actor = caller.actor();
    idempotency::run(&*st.store, &actor, &headers, "/users", &body, || {
        create_inner(&st, &caller, &body)
    })
    .await
}

async fn create_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let req: NewUser = json_body(body)?;
    let institution = match req.institution {
        Some(i) => InstitutionId::parse(&i).map_err(|_| Problem::not_found("institution"))?,
        None => caller.institution.institution_id.clone(),
    };
    if !caller.scope().sees(&institution) {
        return Err(Problem::not_found("institution"));
    }
    let audit = |user: &crate::store::operator::OperatorUser| {
        let subject = format!("user:{}", user.user_id);
        let e = Event::by(caller, action::USER_CREATE, subject)
            .with("username", user.username.as_str().into())
            .with("user_institution", institution.as_str().into());
        Some(audit::entry(e))
    };
    let created = provision::create_user(
        &*st.store,
        &st.operator.secrets,
        &req.username,
        &institution,
        None,
        None,
        audit,
    )
    .await;
    let (user, secrets) = match created {
        Ok(c) => c,
        Err(ProvisionError::Store(StoreError::Conflict(_))) => {
            return Err(Problem::conflict("the username is taken"))
        }
        Err(ProvisionError::Store(e)) => return Err(store_failed(e)),
        Err(ProvisionError::Institution) => return Err(Problem::not_found("institution")),
        Err(e) => return Err(Problem::invalid(e.to_string())),
    };
    let mut body = user_json(&*st.store, &user).await?;
    let replay = body.clone();
    body["password"] = secrets.password.expose().into();
    body["totp_secret"] = secrets.totp.to_base32().into();
    body["otpauth_uri"] = format!(
        "otpauth://totp/switch:{}?secret={}&issuer=switch&algorithm=SHA1&digits=6&period=30",
        user.username,
        secrets.totp.to_base32()
    )
    .into();
    let mut replay = replay;
    for k in ["password", "totp_secret", "otpauth_uri"] {
        replay[k] = Value::Null;
    }
    Ok(Outcome {
        status: StatusCode::CREATED,
        body,
        replay_body: Some(replay),
    })
}

/// A user the caller sees, or 404.
async fn visible_user<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<OperatorUser, Problem> {
    let id = id
        .ok()
        .and_then(|Path(id)| Uuid::parse_str(&id).ok())
        .ok_or_else(|| Problem::not_found("user"))?;
    st.store
        .user(id)
        .await
        .map_err(store_failed)?
        .filter(|u| caller.scope().sees(&u.institution))
        .ok_or_else(|| Problem::not_found("user"))
}

/// The body of `POST /users/{id}/roles`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeRoles {
    role_ids: Vec<String>,
    reason: String,
}

/// `POST /users/{id}/roles`: proposes the user's new set of roles.
pub async fn propose_roles<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ManageUsers) {
        return p.into_response();
    }
    let user = match visible_user(&st, &caller, id).await {
        Ok(u) => u,
        Err(p) => return p.into_response(),
    };
    let path = format!("/users/{}/roles", user.user_id);
    let actor = caller.actor();
    idempotency::run(&*st.store, &actor, &headers, &path, &body, || {
        propose_inner(&st, &caller, user, &body)
    })
    .await
}

async fn propose_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    user: OperatorUser,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let Some(proposer) = caller.user_id() else {
        return Err(Problem::forbidden("users.manage (as a person: four eyes)"));
    };
    let req: ProposeRoles = json_body(body)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_LEN_MAX_CHARS {
        return Err(Problem::invalid(format!(
            "a role change gives its reason, 1 to {REASON_LEN_MAX_CHARS} characters"
        )));
    }
    let mut role_ids = req.role_ids;
    role_ids.sort();
    role_ids.dedup();
    for id in &role_ids {
        let role = st.store.role(id).await.map_err(store_failed)?;
        let offered = role.is_some_and(|r| r.institution.is_none_or(|i| i == user.institution));
        if !offered {
            return Err(Problem::invalid(format!("no role {id} for this user")));
        }
    }
    let change = RoleChange {
        change_id: Uuid::now_v7(),
        user_id: user.user_id,
        role_ids,
        reason: reason.to_owned(),
        proposed_by: proposer,
        proposed_at_us: now_us(),
        approved_by: None,
        approved_at_us: None,
    };
    let e = Event::by(
        caller,
        action::ROLE_CHANGE_PROPOSE,
        format!("user:{}", user.user_id),
    )
    .because(reason)
    .with("change_id", change.change_id.to_string().into())
    .with("role_ids", change.role_ids.clone().into());
    st.store
        .propose_role_change(&change, Some(&audit::entry(e)))
        .await
        .map_err(store_failed)?;
    Ok(Outcome::new(StatusCode::ACCEPTED, change_json(&change)))
}

/// `POST /role-changes/{id}/approve`: applies a proposed change; the approver is another
/// administrator than the proposer and than the user changed.
pub async fn approve_role_change<S: Store>(
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
    let path = format!("/role-changes/{}/approve", change.change_id);
    let actor = caller.actor();
    idempotency::run(&*st.store, &actor, &headers, &path, &body, || {
        approve_inner(&st, &caller, change)
    })
    .await
}

pub(super) async fn visible_change<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<RoleChange, Problem> {
    let id = id
        .ok()
        .and_then(|Path(id)| Uuid::parse_str(&id).ok())
        .ok_or_else(|| Problem::not_found("role change"))?;
    let change = st
        .store
        .role_change(id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| Problem::not_found("role change"))?;
    let user = st.store.user(change.user_id).await.map_err(store_failed)?;
    match user {
        Some(u) if caller.scope().sees(&u.institution) => Ok(change),
        _ => Err(Problem::not_found("role change")),
    }
}

/// The caller deciding `change` (`verb`: approved or rejected): a person who neither proposed
/// it nor is the user it changes (four eyes), or the 403 problem.
pub(super) fn second_administrator(
    caller: &Caller,
    change: &RoleChange,
    verb: &str,
) -> Result<Uuid, Problem> {
    match caller.user_id() {
        Some(id) if id != change.proposed_by && id != change.user_id => Ok(id),
        _ => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "four-eyes",
            "Four eyes",
            format!(
                "a role change is {verb} by another administrator than the one who proposed it \
                 and the user it changes"
            ),
        )),
    }
}

async fn approve_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    change: RoleChange,
) -> Result<Outcome, Problem> {
    let approver = second_administrator(caller, &change, "approved")?;
    // What the entry names is fixed at the proposal: the user, the roles, the proposer.
    let e = Event::by(
        caller,
        action::ROLE_CHANGE_APPROVE,
        format!("user:{}", change.user_id),
    )
    .because(&change.reason)
    .with("change_id", change.change_id.to_string().into())
    .with("role_ids", change.role_ids.clone().into())
    .with("proposed_by", change.proposed_by.to_string().into());
    let entry = audit::entry(e);
    let approved = match st
        .store
        .approve_role_change(change.change_id, approver, now_us(), Some(&entry))
        .await
    {
        Ok(c) => c,
        Err(StoreError::Conflict(why)) => return Err(Problem::conflict(why)),
        Err(StoreError::NotFound(_)) => return Err(Problem::not_found("role change")),
        Err(e) => return Err(store_failed(e)),
    };
    Ok(Outcome::new(StatusCode::OK, change_json(&approved)))
}
