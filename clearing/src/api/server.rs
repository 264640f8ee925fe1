//! The settlement API's routes (axum): JSON in and out, RFC 9457 problem documents, the
//! operator headers the switch sends. Only a connection that proved a switch node's
//! certificate reaches these handlers ([`super::tls`]); the headers name the operator the
//! switch acts for, and [`super::service`] scopes every answer to that operator's institution
//! again (defence in depth: a fault in the switch's own scoping does not leak another bank's
//! figures).

use super::service::{self, Operator};
use super::ApiError;
use crate::ledger::Ledger;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use schemas::settlement_api::{
    problem, CloseWindow, StatementFormat, Viewer, INSTITUTION_HEADER, INSTITUTION_KIND_HEADER,
    OPERATOR_HEADER,
};
use serde::Serialize;
use std::sync::Arc;

/// Windows a page lists without a `limit`.
pub const PAGE_DEFAULT: u32 = 50;
/// Longest value of an operator header, bytes.
const HEADER_LEN_MAX_BYTES: usize = 128;

/// What the handlers share.
pub struct ApiState {
    /// The ledger.
    pub ledger: Ledger,
    /// Closes one at a time: the check that the named window is the open one and the close
    /// happen together.
    close: tokio::sync::Mutex<()>,
}

impl ApiState {
    /// Over `ledger`.
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            close: tokio::sync::Mutex::new(()),
        }
    }
}

impl ApiState {
    /// Closes the open window for `who` ([`service::close_window`]), one close at a time.
    pub async fn close_window(
        &self,
        who: &Operator,
        request: &CloseWindow,
    ) -> Result<schemas::settlement_api::WindowDetail, ApiError> {
        let _one_at_a_time = self.close.lock().await;
        service::close_window(&self.ledger, who, request).await
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// The router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/windows", get(windows))
        .route("/v1/windows/close", post(close_window))
        .route("/v1/windows/{id}", get(window))
        .route("/v1/windows/{id}/reports/{institution}", get(statement))
        .route("/v1/positions", get(positions))
        .fallback(|| async {
            problem_response(StatusCode::NOT_FOUND, problem::NOT_FOUND, "no such path")
        })
        .with_state(state)
}

fn problem_response(status: StatusCode, kind: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("/problems/{kind}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, problem::NOT_FOUND),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, problem::FORBIDDEN),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, problem::CONFLICT),
            ApiError::Invalid(_) => (StatusCode::BAD_REQUEST, problem::INVALID),
            ApiError::Ledger(e) => {
                tracing::error!(error = %e, "settlement API: the ledger failed");
                return problem_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    problem::UNAVAILABLE,
                    "the ledger did not answer; try again",
                );
            }
        };
        problem_response(status, kind, &self.to_string())
    }
}

fn json_ok<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => ApiError::Ledger(crate::ClearingError::Report(e.to_string())).into_response(),
    }
}

/// The operator of a request, from the switch's headers.
pub struct OperatorHeaders(pub Operator);

impl<T: Send + Sync> FromRequestParts<T> for OperatorHeaders {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &T) -> Result<Self, Response> {
        let value = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= HEADER_LEN_MAX_BYTES)
                .map(str::to_owned)
        };
        match (
            value(OPERATOR_HEADER),
            value(INSTITUTION_HEADER),
            value(INSTITUTION_KIND_HEADER),
        ) {
            (Some(operator_id), Some(institution), Some(kind)) => Ok(Self(Operator {
                viewer: Viewer::of(&institution, &kind),
                operator_id,
                institution,
            })),
            _ => Err(problem_response(
                StatusCode::BAD_REQUEST,
                problem::NO_OPERATOR,
                "the switch names the operator in x-settlement-operator, \
                 x-settlement-institution and x-settlement-institution-kind",
            )),
        }
    }
}

async fn health(State(st): State<Arc<ApiState>>) -> Response {
    if service::ledger_ready(&st.ledger).await {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            problem::UNAVAILABLE,
            "the ledger did not answer",
        )
    }
}

/// `before` and `limit`, each at most once.
fn page(query: Option<&str>) -> Result<(Option<i64>, u32), ApiError> {
    let (mut before, mut limit) = (None, None);
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let bad = || ApiError::Invalid(format!("{name}: a positive whole number, once"));
        match &*name {
            "before" if before.is_none() => {
                before = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(bad)?,
                )
            }
            "limit" if limit.is_none() => limit = Some(value.parse::<u32>().map_err(|_| bad())?),
            _ => {
                return Err(ApiError::Invalid(
                    "the parameters are before and limit".into(),
                ))
            }
        }
    }
    Ok((before, limit.unwrap_or(PAGE_DEFAULT)))
}

async fn windows(
    State(st): State<Arc<ApiState>>,
    OperatorHeaders(who): OperatorHeaders,
    RawQuery(query): RawQuery,
) -> Response {
    let answer = async {
        let (before, limit) = page(query.as_deref())?;
        service::windows(&st.ledger, &who, before, limit).await
    };
    match answer.await {
        Ok(page) => json_ok(&page),
        Err(e) => e.into_response(),
    }
}

fn window_id(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    id.ok()
        .and_then(|Path(id)| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or(ApiError::NotFound("settlement window"))
}

async fn window(
    State(st): State<Arc<ApiState>>,
    OperatorHeaders(who): OperatorHeaders,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let answer = async { service::window(&st.ledger, &who, window_id(id)?).await };
    match answer.await {
        Ok(w) => json_ok(&w),
        Err(e) => e.into_response(),
    }
}

async fn positions(
    State(st): State<Arc<ApiState>>,
    OperatorHeaders(who): OperatorHeaders,
) -> Response {
    match service::open_positions(&st.ledger, &who).await {
        Ok(p) => json_ok(&p),
        Err(e) => e.into_response(),
    }
}

async fn close_window(
    State(st): State<Arc<ApiState>>,
    OperatorHeaders(who): OperatorHeaders,
    body: Bytes,
) -> Response {
    let request: CloseWindow = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return ApiError::Invalid(format!("body: {e}")).into_response(),
    };
    match st.close_window(&who, &request).await {
        Ok(w) => json_ok(&w),
        Err(e) => e.into_response(),
    }
}

async fn statement(
    State(st): State<Arc<ApiState>>,
    OperatorHeaders(who): OperatorHeaders,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let answer = async {
        let Ok(Path((id, institution))) = path else {
            return Err(ApiError::NotFound("statement"));
        };
        let id = window_id(Ok(Path(id)))?;
        let mut format = None;
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match (&*name, format) {
                ("format", None) => {
                    format = Some(
                        StatementFormat::parse(&value)
                            .ok_or_else(|| ApiError::Invalid("format: csv or camt053".into()))?,
                    )
                }
                _ => return Err(ApiError::Invalid("the one parameter is format".into())),
            }
        }
        let format = format.unwrap_or(StatementFormat::Csv);
        let text = service::statement(&st.ledger, &who, id, &institution, format).await?;
        Ok((format, text))
    };
    match answer.await {
        Ok((format, text)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, format.content_type())],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
