//! `GET /api-keys` (`users.read`: the keys of the institutions the caller sees, never a key or
//! its hash), `POST /api-keys` and `DELETE /api-keys/{id}`: machine clients' keys (a hospital's HIS, a
//! bank's back office, a Prometheus scraper) issued and revoked by an administrator, instead of
//! by fixtures. A key belongs to one institution and holds one role; it is 256 random bits,
//! shown once in the answer of its issue and stored only as its SHA-256 (a replay of the issue
//! answers `key: null`). An administrator issues keys for the institutions its own sees (the
//! switch's: any; another: its own), and never a key with an administrative permission
//! (`users.manage`, `roles.manage`): a key cannot be four-eyes approved as a user's roles are,
//! so it must not be a way around them.
//!
//! A revoked key is refused at once on this node (its cached resolution is dropped) and on
//! other nodes within the key cache's lifetime ([`crate::operator::caller::KEY_CACHE_TTL_US`]).

use super::{json, json_body, page_query};
use crate::http::HttpState;
use crate::operator::audit::{self, action, Event};
use crate::operator::idempotency::{self, Outcome};
use crate::operator::problem::{store_failed, Problem};
use crate::operator::token::Token;
use crate::operator::{Caller, Permission};
use crate::store::operator::ApiKeyRecord;
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

/// Longest name of a key, characters.
pub const KEY_NAME_LEN_MAX_CHARS: usize = 100;

/// Permissions a key may not hold.
const ADMINISTRATIVE: [Permission; 2] = [Permission::ManageUsers, Permission::ManageRoles];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// What the client is (`HIS of City Hospital`).
    name: String,
    /// The role it holds.
    role_id: String,
    /// Default: the caller's institution.
    institution: Option<String>,
    /// The counter terminal the key is (`[[cms.counter]]` of the key's institution): PINs sent
    /// with the key are taken under that counter's own TPK.
    counter_id: Option<String>,
}

fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "key_id": k.key_id,
        "institution": k.institution.as_str(),
        "role_id": k.role_id,
        "name": k.name,
        "created_at_us": k.created_at_us,
        "last_used_at_us": k.last_used_at_us,
        "counter_id": k.counter_id,
        "revoked_at_us": k.revoked_at_us,
    })
}

/// `GET /api-keys[?cursor=&limit=]`: the keys of the caller's institution (the switch's: every
/// institution's), by id, without the key or its hash.
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
    let keys = st
        .store
        .api_keys_page(caller.scope().only(), page.cursor.as_deref(), page.limit)
        .await
        .map_err(store_failed)?;
    let next = (keys.len() == page.limit as usize)
        .then(|| keys.last().map(|k| k.key_id.clone()))
        .flatten();
    let items: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next }),
    ))
}

/// `POST /api-keys`: a new key, shown once.
pub async fn issue<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ManageUsers) {
        return p.into_response();
    }
    let actor = caller.actor();
    idempotency::run(&*st.store, &actor, &headers, "/api-keys", &body, || {
        issue_inner(&st, &caller, &body)
    })
    .await
}

async fn issue_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let req: NewKey = json_body(body)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > KEY_NAME_LEN_MAX_CHARS {
        return Err(Problem::invalid(format!(
            "name: 1 to {KEY_NAME_LEN_MAX_CHARS} characters"
        )));
    }
    let institution = match req.institution {
        Some(i) => InstitutionId::parse(&i).map_err(|_| Problem::not_found("institution"))?,
        None => caller.institution.institution_id.clone(),
    };
    let known = st
        .store
        .institutions()
        .await
        .map_err(store_failed)?
        .iter()
        .any(|i| i.institution_id == institution);
    if !known || !caller.scope().sees(&institution) {
        return Err(Problem::not_found("institution"));
    }
    // A built-in role, or one of the key's institution.
    let role = st
        .store
        .role(&req.role_id)
        .await
        .map_err(store_failed)?
        .filter(|r| r.institution.as_ref().is_none_or(|i| *i == institution))
        .ok_or_else(|| Problem::invalid(format!("role {:?}: no such role", req.role_id)))?;
    if let Some(p) = ADMINISTRATIVE
        .iter()
        .find(|p| role.permissions.iter().any(|n| n == p.as_str()))
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            "Invalid input",
            format!(
                "an API key cannot hold {}: administrative permissions need a user, whose \
                 roles are approved by a second administrator",
                p.as_str()
            ),
        ));
    }
    if let Some(counter) = &req.counter_id {
        let known = st
            .cms
            .as_ref()
            .is_some_and(|f| f.counter(counter, &institution).is_some());
        if !known {
            return Err(Problem::invalid(format!(
                "counter {counter:?}: no such counter of the key's institution"
            )));
        }
    }
    let key = Token::generate().ok_or_else(Problem::unavailable)?;
    let record = ApiKeyRecord {
        key_hash: key.hash(),
        key_id: format!("key-{}", uuid::Uuid::now_v7()),
        institution,
        role_id: role.role_id,
        name: name.to_owned(),
        created_at_us: now_us(),
        revoked_at_us: None,
        last_used_at_us: None,
        counter_id: req.counter_id.clone(),
    };
    let e = Event::by(
        caller,
        action::API_KEY_ISSUE,
        format!("api_key:{}", record.key_id),
    )
    .with("key_institution", record.institution.as_str().into())
    .with("role_id", record.role_id.as_str().into())
    .with("name", record.name.as_str().into());
    st.store
        .put_api_key(&record, Some(&audit::entry(e)))
        .await
        .map_err(store_failed)?;
    let mut body = key_json(&record);
    let mut replay = body.clone();
    body["key"] = key.expose().into();
    replay["key"] = Value::Null;
    Ok(Outcome {
        status: StatusCode::CREATED,
        body,
        replay_body: Some(replay),
    })
}

/// `DELETE /api-keys/{id}`: revokes a key of an institution the caller sees (again: the same
/// answer, the first revocation's time).
pub async fn revoke<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    revoke_inner(&st, &caller, id)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn revoke_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    caller.require(Permission::ManageUsers)?;
    let Ok(Path(key_id)) = id else {
        return Err(Problem::not_found("API key"));
    };
    let seen = st
        .store
        .api_key_by_id(&key_id)
        .await
        .map_err(store_failed)?
        .filter(|k| caller.scope().sees(&k.institution))
        .ok_or_else(|| Problem::not_found("API key"))?;
    // Appended only by the call that revokes the key, not by a repeat.
    let e = Event::by(caller, action::API_KEY_REVOKE, format!("api_key:{key_id}"))
        .with("key_institution", seen.institution.as_str().into());
    let entry = audit::entry(e);
    let revoked = match st
        .store
        .revoke_api_key(&key_id, now_us(), Some(&entry))
        .await
    {
        Ok(Some(k)) => k,
        Ok(None) | Err(StoreError::NotFound(_)) => return Err(Problem::not_found("API key")),
        Err(e) => return Err(store_failed(e)),
    };
    st.operator.keys.forget(&revoked.key_hash);
    Ok(json(StatusCode::OK, &key_json(&revoked)))
}
