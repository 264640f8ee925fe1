//! The operator API's own handlers (JSON in and out, problem+json errors, cursor pagination,
//! `Idempotency-Key` on POSTs). The router that serves them, with the routes that predate
//! them (`/transactions/{rrn}`, `/saf`, `/metrics`, behind the same [`super::Caller`]), is
//! [`crate::http::router`]: one table of every route, which `tests/openapi.rs` checks against
//! `schemas/openapi/switch.json`.
//!
//! | route | permission |
//! |---|---|
//! | `POST /session` | none (login) |
//! | `DELETE /session`, `POST /session/password`, `GET /me` | a session (or a key, for `/me`) |
//! | `GET /users`, `GET /roles`, `GET /role-changes` | `users.read` |
//! | `POST /users`, `POST /users/{id}/roles`, `POST /role-changes/{id}/approve`, `POST /role-changes/{id}/reject` | `users.manage` |
//! | `POST /roles` | `roles.manage` |
//! | `GET /api-keys` | `users.read` (see [`api_keys`]) |
//! | `POST /api-keys`, `DELETE /api-keys/{id}` | `users.manage` (see [`api_keys`]) |
//! | `GET /audit` | `audit.read` |
//! | `GET /transactions`, `GET /transactions/{rrn}` | `transactions.read` |
//! | `GET /saf` | `saf.read` |
//! | `GET /metrics` | `metrics.read` |
//! | `GET /reconciliations` | `clearing.read` |
//! | `POST /reconciliations/{id}/resolve` | `reconciliation.resolve` |
//! | `POST /cutover` | `clearing.close_window` (the switch's operators) |
//! | the card management routes | see [`cms`] |
//! | the settlement routes (`/clearing/...`) | see [`clearing`] |

pub mod api_keys;
pub mod audit_log;
pub mod clearing;
pub mod cms;
pub mod reconciliations;
pub mod role_changes;
pub mod roles;
pub mod session;
pub mod transactions;
pub mod users;

use super::problem::Problem;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Items a page lists without a `limit`.
pub const PAGE_DEFAULT: u32 = 50;
/// Most items a page lists.
pub const PAGE_MAX: u32 = 200;

/// A JSON body, or 400.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| Problem::invalid(format!("body: {e}")))
}

/// A JSON answer.
fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `cursor` and `limit` of a list's query (nothing else is accepted).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageQuery {
    /// Where the previous page ended (opaque to the client).
    pub cursor: Option<String>,
    /// Items wanted, 1 to [`PAGE_MAX`].
    pub limit: u32,
}

/// Parses `cursor` and `limit`, each at most once.
pub fn page_query(query: Option<&str>) -> Result<PageQuery, Problem> {
    let mut page = PageQuery {
        cursor: None,
        limit: PAGE_DEFAULT,
    };
    let mut limit_seen = false;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "cursor" if page.cursor.is_none() => page.cursor = Some(value.into_owned()),
            "limit" if !limit_seen => {
                limit_seen = true;
                page.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=PAGE_MAX).contains(n))
                    .ok_or_else(|| {
                        Problem::invalid(format!("limit is a whole number from 1 to {PAGE_MAX}"))
                    })?;
            }
            _ => {
                return Err(Problem::invalid(
                    "the parameters are cursor and limit, each at most once",
                ))
            }
        }
    }
    Ok(page)
}
