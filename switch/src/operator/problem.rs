//! Problem documents of the operator API (RFC 9457, `application/problem+json`), each with a
//! stable `type` a client can branch on (`/problems/forbidden`, ...), as Stripe's and
//! Hyperswitch's error codes are. The words never name what the caller may not see: a
//! resource of another institution is [`Problem::not_found`], like one that does not exist.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A problem to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// The last segment of the `type` URI.
    pub kind: &'static str,
    /// Short summary.
    pub title: &'static str,
    /// This occurrence.
    pub detail: String,
}

impl Problem {
    /// Any problem.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
        }
    }

    /// 401: no credentials, or credentials that do not open a session.
    pub fn unauthenticated(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail,
        )
    }

    /// 403: the caller's roles lack `permission`.
    pub fn forbidden(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Permission missing",
            format!("this needs the permission {permission}"),
        )
    }

    /// 404: no such resource, or not the caller's institution's (never said which).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no such {what}"),
        )
    }

    /// 400: the request's body or parameters are wrong.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    /// 409: the change is not allowed in the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 503: the store did not answer (the cause is logged, not shown).
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Store unavailable",
            "try again",
        )
    }

    /// The `type` URI.
    pub fn type_uri(&self) -> String {
        format!("/problems/{}", self.kind)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// A store failure as a problem, logged with its cause.
pub fn store_failed(e: crate::store::StoreError) -> Problem {
    tracing::error!(error = %e, "operator API: store failed");
    Problem::unavailable()
}
