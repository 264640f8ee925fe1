//! `POST /session` (login: password and TOTP code), `DELETE /session` (logout),
//! `POST /session/password` and `GET /me`.
//!
//! A login answers 401 with the same words whatever failed (unknown user, wrong password,
//! wrong code, locked user), after the same argon2 work, so it tells an attacker nothing; the
//! audit log says what happened. Five failures in a row lock the user for the policy's
//! lockout, counted in the store so a restart does not lift it. A login is never replayed by
//! `Idempotency-Key`: each one is a new session, and its answer holds the CSRF token.

use super::{json, json_body};
use crate::http::HttpState;
use crate::operator::audit::{self, action, Event};
use crate::operator::caller::{Caller, Principal, SourceAddr, SESSION_COOKIE};
use crate::operator::idempotency::{self, Outcome};
use crate::operator::password::{decoy_hash, Password};
use crate::operator::problem::{store_failed, Problem};
use crate::operator::token::Token;
use crate::operator::{micros, OperatorContext};
use crate::store::operator::{OperatorSession, OperatorUser};
use crate::store::{now_us, Store};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The login body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
    totp: String,
}

fn login_failed() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "login-failed",
        "Login failed",
        "the username, password or code is wrong, or the user is locked",
    )
}

/// `POST /session`.
pub async fn login<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    source: SourceAddr,
    body: Bytes,
) -> Response {
    match login_inner(&st, &source, &body).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn login_inner<S: Store>(
    st: &HttpState<S>,
    source: &SourceAddr,
    body: &[u8],
) -> Result<Response, Problem> {
    let req: Login = json_body(body)?;
    let password = Password::new(req.password);
    let now = now_us();
    let user = st
        .store
        .user_by_username(&req.username)
        .await
        .map_err(store_failed)?;
    let failure = |subject: String, why: &'static str| Event {
        actor: "anonymous".into(),
        action: action::LOGIN_FAILED,
        subject,
        source,
        reason: None,
        detail: json!({ "failure": why }),
    };
    let Some(user) = user else {
        let _ = password.verify(decoy_hash());
        let name: String = req.username.chars().take(64).collect();
        audit::record(
            &*st.store,
            failure(format!("username:{name}"), "unknown user"),
        )
        .await?;
        return Err(login_failed());
    };
    let subject = format!("user:{}", user.user_id);
    let password_ok = password.verify(&user.password_hash);
    if user.locked_until_us.is_some_and(|until| until > now) {
        let e = failure(subject, "locked").with("institution", user.institution.as_str().into());
        audit::record(&*st.store, e).await?;
        return Err(login_failed());
    }
    let step = st
        .operator
        .secrets
        .open(user.user_id, &user.totp_sealed)
        .ok()
        .and_then(|secret| {
            secret.verified_step(&req.totp, u64::try_from(now / 1_000_000).unwrap_or(0))
        });
    // RFC 6238 §5.2: a code is accepted once. Only a right password spends the step, so a
    // guess of the password cannot burn the holder's current code.
    let fresh = match (password_ok, step.and_then(|s| i64::try_from(s).ok())) {
        (true, Some(s)) => st
            .store
            .accept_totp_step(user.user_id, s)
            .await
            .map_err(store_failed)?,
        _ => false,
    };
    let code_ok = step.is_some();
    if !(password_ok && code_ok && fresh) {
        let policy = st.operator.policy;
        let failures = st
            .store
            .record_login_failure(
                user.user_id,
                policy.login_failures_max,
                now + micros(policy.lockout),
            )
            .await
            .map_err(store_failed)?;
        let why = match (password_ok, code_ok) {
            (false, _) => "wrong password",
            (true, false) => "wrong code",
            (true, true) => "code already used",
        };
        let e = failure(subject, why)
            .with("failures_in_a_row", failures.into())
            .with("institution", user.institution.as_str().into());
        audit::record(&*st.store, e).await?;
        return Err(login_failed());
    }
    st.store
        .record_login_success(user.user_id)
        .await
        .map_err(store_failed)?;
    open_session(st, &user, source, now).await
}

async fn open_session<S: Store>(
    st: &HttpState<S>,
    user: &OperatorUser,
    source: &SourceAddr,
    now: i64,
) -> Result<Response, Problem> {
    let (Some(token), Some(csrf)) = (Token::generate(), Token::generate()) else {
        return Err(Problem::unavailable());
    };
    st.store
        .create_session(&OperatorSession {
            token_hash: token.hash(),
            user_id: user.user_id,
            csrf_hash: csrf.hash(),
            created_at_us: now,
            last_seen_at_us: now,
            ended_at_us: None,
        })
        .await
        .map_err(store_failed)?;
    let e = Event {
        actor: format!("user:{}", user.user_id),
        action: action::LOGIN,
        subject: format!("user:{}", user.user_id),
        source,
        reason: None,
        detail: json!({ "institution": user.institution.as_str() }),
    };
    audit::record(&*st.store, e).await?;
    let policy = st.operator.policy;
    let body = json!({
        "user_id": user.user_id.to_string(),
        "username": user.username,
        "institution": user.institution.as_str(),
        "csrf_token": csrf.expose(),
        "expires_at_us": now + micros(policy.absolute_timeout),
    });
    let mut r = json(StatusCode::OK, &body);
    set_cookie(&mut r, &st.operator, Some(token.expose()));
    Ok(r)
}

/// Sets the session cookie (or clears it with None).
fn set_cookie(r: &mut Response, ctx: &OperatorContext, token: Option<&str>) {
    let secure = if ctx.policy.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = match token {
        Some(t) => format!(
            "{SESSION_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            ctx.policy.absolute_timeout.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
}

fn no_session() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "no-session",
        "Not a session",
        "an API key has no session or password",
    )
}

/// `DELETE /session`.
pub async fn logout<S: Store>(State(st): State<Arc<HttpState<S>>>, caller: Caller) -> Response {
    let Some(hash) = caller.session else {
        return no_session().into_response();
    };
    if let Err(e) = st.store.end_session(&hash, now_us()).await {
        return store_failed(e).into_response();
    }
    let subject = caller.actor();
    let e = Event::by(&caller, action::LOGOUT, subject);
    if let Err(p) = audit::record(&*st.store, e).await {
        return p.into_response();
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut r, &st.operator, None);
    r
}

/// The password-change body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /session/password`: the current password, then the new one; every session of the
/// user ends (log in again).
pub async fn change_password<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let actor = caller.actor();
    idempotency::run(
        &*st.store,
        &actor,
        &headers,
        "/session/password",
        &body,
        || change_password_inner(&st, &caller, &body),
    )
    .await
}

async fn change_password_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    body: &[u8],
) -> Result<Outcome, Problem> {
    let Principal::User { user_id, .. } = caller.principal else {
        return Err(no_session());
    };
    let req: PasswordChange = json_body(body)?;
    let (current, new) = (
        Password::new(req.current_password),
        Password::new(req.new_password),
    );
    let user = st
        .store
        .user(user_id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| Problem::unauthenticated("the user is gone"))?;
    if !current.verify(&user.password_hash) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "wrong-password",
            "Wrong password",
            "the current password is wrong",
        ));
    }
    new.check_new()
        .map_err(|e| Problem::invalid(e.to_string()))?;
    let hash = new.hash().map_err(|_| Problem::unavailable())?;
    st.store
        .set_password_hash(user_id, &hash)
        .await
        .map_err(store_failed)?;
    let ended = st
        .store
        .end_sessions_of(user_id, now_us())
        .await
        .map_err(store_failed)?;
    let e = Event::by(caller, action::PASSWORD_CHANGE, caller.actor());
    audit::record(&*st.store, e).await?;
    Ok(Outcome::new(
        StatusCode::OK,
        json!({ "changed": true, "sessions_ended": ended }),
    ))
}

/// `GET /me`: who the caller is and what it may do.
pub async fn me<S: Store>(State(_st): State<Arc<HttpState<S>>>, caller: Caller) -> Response {
    let who = match &caller.principal {
        Principal::User { user_id, username } => {
            json!({ "kind": "user", "user_id": user_id.to_string(), "username": username })
        }
        Principal::ApiKey { key_id } => json!({ "kind": "api_key", "key_id": key_id }),
        Principal::Certificate { spki_sha256, name } => {
            json!({ "kind": "certificate", "spki_sha256": spki_sha256, "name": name })
        }
    };
    json(
        StatusCode::OK,
        &json!({
            "principal": who,
            "institution": {
                "institution_id": caller.institution.institution_id.as_str(),
                "name": caller.institution.name,
                "kind": caller.institution.kind.as_sql(),
            },
            "permissions": caller.permissions.names(),
        }),
    )
}
