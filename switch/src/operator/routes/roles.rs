//! Roles: `GET /roles` (the built-in ones and the caller's institution's own) and
//! `POST /roles` (an institution defines a role from the permission catalogue, no code).

use super::{json, json_body};
use crate::http::HttpState;
use crate::operator::audit::{self, action, Event};
use crate::operator::idempotency::{self, Outcome};
use crate::operator::problem::{store_failed, Problem};
use crate::operator::{Caller, Permission, PermissionSet};
use crate::store::operator::OperatorRole;
use crate::store::{now_us, Store, StoreError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn role_json(r: &OperatorRole) -> Value {
    json!({
        "role_id": r.role_id,
        "institution": r.institution.as_ref().map(|i| i.as_str()),
        "name": r.name,
        "permissions": r.permissions,
        "built_in": r.institution.is_none(),
    })
}

/// `GET /roles`: one page holds them all (a role list is short).
pub async fn list<S: Store>(State(st): State<Arc<HttpState<S>>>, caller: Caller) -> Response {
    if let Err(p) = caller.require(Permission::ViewUsers) {
        return p.into_response();
    }
    match st.store.roles(caller.scope().only()).await {
        Ok(roles) => json(
            StatusCode::OK,
            &json!({ "items": roles.iter().map(role_json).collect::<Vec<_>>(), "next_cursor": null }),
        ),
        Err(e) => store_failed(e).into_response(),
    }
}

/// The body of `POST /roles`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    /// `a-z 0-9 . _ -`, 1 to 64; prefixed with the institution id and a dot when stored.
    role_id: String,
    name: String,
    permissions: Vec<String>,
}

/// `POST /roles`: a role of the caller's institution.
pub async fn create<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ManageRoles) {
        return p.into_response();
    }
    let actor = caller.actor();
    idempotency::run(&*st.store, &actor, &headers, "/roles", &body, || {
        create_inner(&st, &caller, &body)
    })
    .await
}

async fn create_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let req: NewRole = json_body(body)?;
    let institution = caller.institution.institution_id.clone();
    let role_id = format!("{}.{}", institution.as_str(), req.role_id);
    let id_ok = !req.role_id.is_empty()
        && role_id.len() <= 64
        && req
            .role_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !id_ok {
        return Err(Problem::invalid(
            "role_id is a-z, 0-9, '.', '_', '-' (with the institution prefix, 64 at most)",
        ));
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Problem::invalid("name has 1 to 64 characters"));
    }
    let mut set = PermissionSet::default();
    for p in &req.permissions {
        let known = Permission::parse(p)
            .ok_or_else(|| Problem::invalid(format!("no permission {p} in the catalogue")))?;
        set.add_names(&[known.as_str().to_owned()]);
    }
    let role = OperatorRole {
        role_id,
        institution: Some(institution),
        name: name.to_owned(),
        permissions: set.names().into_iter().map(str::to_owned).collect(),
        created_at_us: now_us(),
    };
    let e = Event::by(
        caller,
        action::ROLE_CREATE,
        format!("role:{}", role.role_id),
    )
    .with("permissions", role.permissions.clone().into());
    match st
        .store
        .put_role(&role, false, Some(&audit::entry(e)))
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(Problem::conflict("the role exists")),
        Err(e) => return Err(store_failed(e)),
    }
    Ok(Outcome::new(StatusCode::CREATED, role_json(&role)))
}
