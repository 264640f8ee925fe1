//! `Idempotency-Key` on every POST (Stripe's and Hyperswitch's rule): a client that did not
//! see the answer may send the request again with the same key and get the first answer,
//! instead of creating a second user or proposing a second role change. The same key with
//! another body is a client bug: 422. Keys belong to the caller (user or API key), so two
//! callers' keys never meet. Answers of 5xx are not kept (the request may succeed next time).
//!
//! One-time secrets (a new user's password and TOTP secret) are never stored: the kept answer
//! is the first one with those fields replaced by `null` ([`Outcome::replay_body`]).

use super::problem::{store_failed, Problem};
use crate::store::operator::IdempotentAnswer;
use crate::store::{now_us, OperatorStore};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ring::digest::{Context, SHA256};
use serde_json::Value;
use std::future::Future;

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The answer header of a replay.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key.
pub const KEY_LEN_MAX_BYTES: usize = 255;

/// A handler's success.
#[derive(Debug)]
pub struct Outcome {
    /// Status (2xx).
    pub status: StatusCode,
    /// Body.
    pub body: Value,
    /// What a replay answers instead of `body` (secrets removed); None: `body`.
    pub replay_body: Option<Value>,
}

impl Outcome {
    /// An answer replayed as it is.
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            replay_body: None,
        }
    }
}

fn request_hash(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    for part in [method.as_bytes(), path.as_bytes(), body] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut r = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if replayed {
        r.headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    r
}

/// Runs `handler` once per (`principal`, key): without a key it simply runs; with a key seen
/// before, the first answer comes back (or 422 when the body differs).
pub async fn run<S, F, Fut>(
    store: &S,
    principal: &str,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    handler: F,
) -> Response
where
    S: OperatorStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Outcome, Problem>>,
{
    let key = match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= KEY_LEN_MAX_BYTES => Some(k.to_owned()),
        Some(_) => {
            return Problem::invalid(format!(
                "an Idempotency-Key is 1 to {KEY_LEN_MAX_BYTES} visible ASCII characters"
            ))
            .into_response()
        }
    };
    let Some(key) = key else {
        return match handler().await {
            Ok(o) => json_response(o.status, o.body.to_string(), false),
            Err(p) => p.into_response(),
        };
    };
    let hash = request_hash("POST", path, body);
    match store.idempotent_answer(principal, &key).await {
        Err(e) => return store_failed(e).into_response(),
        Ok(Some(first)) if first.request_hash == hash => {
            let status = StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK);
            return json_response(status, first.body, true);
        }
        Ok(Some(_)) => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this key was used with another request; use a new key",
            )
            .into_response()
        }
        Ok(None) => {}
    }
    let (status, body, kept) = match handler().await {
        Ok(o) => {
            let kept = o.replay_body.as_ref().unwrap_or(&o.body).to_string();
            (o.status, o.body.to_string(), kept)
        }
        Err(p) => {
            let r = p.clone().into_response();
            if p.status.is_server_error() {
                return r;
            }
            let body = serde_json::json!({
                "type": p.type_uri(), "title": p.title, "status": p.status.as_u16(),
                "detail": p.detail,
            })
            .to_string();
            (p.status, body.clone(), body)
        }
    };
    let answer = IdempotentAnswer {
        request_hash: hash,
        status: status.as_u16(),
        body: kept,
    };
    if let Err(e) = store
        .put_idempotent_answer(principal, &key, &answer, now_us())
        .await
    {
        tracing::warn!(error = %e, "idempotent answer not kept");
    }
    json_response(status, body, false)
}
