//! The operator console (issue 26): server-rendered HTML pages for the people who work the
//! network in a browser (issuance operators, counter clerks, hospital cashiers, bank operators,
//! the clearing centre, auditors, administrators), served by the switch's own HTTP face under
//! `/console/`.
//!
//! Why a layer of its own and not a second API: every page acts through the operator API's
//! own handlers ([`crate::operator::routes`], [`crate::http`]) with the same [`Caller`], so
//! sessions (argon2id + TOTP), CSRF, permissions, tenant scoping, `If-Match`, idempotency and
//! the audit log are exactly the JSON API's. The console only turns HTML forms into the API's
//! requests and its JSON answers into pages ([`call`]).
//!
//! - [`session`]: log in, log out, change password; [`layout`]: the page frame, its
//!   navigation (only what the role may do) and the language switch;
//! - [`transactions`], [`cards`], [`batches`], [`dashboard`] (server-sent events, with
//!   [`dashboard_clearing`]), [`settlement`], [`admin`] (audit log, users), [`role_changes`]
//!   (open proposals, four eyes): the pages;
//! - [`i18n`]: zh-CN (default) and English, API problems in the page's language
//!   ([`Answer::problem_in`]); [`names`]: institutions by name; [`format`]: yuan with two
//!   decimals, China Standard Time, masked PANs.
//!
//! Works with JavaScript off, but for the dashboard's live figures: forms post, a running
//! import refreshes itself (`<meta http-equiv="refresh">`), confirmations are pages. The
//! few lines of JavaScript (`assets/console/console.js`) and the stylesheet are compiled in;
//! nothing is fetched from elsewhere at run time.
//!
//! A browser form cannot send the `X-CSRF-Token` header, so the console keeps the session's
//! CSRF token in a second `HttpOnly; SameSite=Strict` cookie, writes it into each form, and
//! puts the posted field back into the header before the [`Caller`] extractor checks it.

pub mod admin;
pub mod batches;
pub mod cards;
pub mod dashboard;
pub mod dashboard_clearing;
pub mod format;
pub mod i18n;
pub mod layout;
pub mod names;
pub mod role_changes;
pub mod session;
pub mod settlement;
pub mod transactions;

use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::caller::CSRF_HEADER;
use crate::operator::Caller;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use i18n::{Lang, Tr};
use serde_json::Value;
use std::sync::Arc;

/// Where the console lives.
pub const BASE: &str = "/console";
/// The cookie holding the session's CSRF token for the console's forms.
pub const CSRF_COOKIE: &str = "console_csrf";
/// The cookie holding the chosen language.
pub const LANG_COOKIE: &str = "console_lang";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The pages' Content Security Policy: everything from the console itself, nothing inline but
/// the SVG charts' markup, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// Largest answer of an API handler the console reads.
const ANSWER_LEN_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The console's routes (full paths under [`BASE`]), served beside the API's
/// ([`crate::http::router`]) by the HTTP face ([`crate::node::http_face`]).
pub fn router<S: CmsStore>() -> Router<Arc<HttpState<S>>> {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .route(
            "/console/login",
            get(session::login_page).post(session::login::<S>),
        )
        .route("/console/lang", get(layout::switch_lang))
        .route("/console/logout", post(session::logout::<S>))
        .route(
            "/console/password",
            get(session::password_page::<S>).post(session::change_password::<S>),
        )
        .route("/console/transactions", get(transactions::search::<S>))
        .route(
            "/console/transactions/{rrn}",
            get(transactions::detail::<S>),
        )
        .merge(cards::routes::<S>())
        .merge(batches::routes::<S>())
        .merge(dashboard::routes::<S>())
        .merge(admin::routes::<S>())
        .merge(settlement::routes::<S>())
        .merge(role_changes::routes::<S>())
}

/// `GET /console/`: the first page the caller may use, or the login page.
async fn home(page: layout::Page) -> Response {
    Redirect::to(&page.nav.first_href()).into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../assets/console/console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../assets/console/console.js"),
    )
        .into_response()
}

/// The login page, for a request without a session.
pub fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

/// A rendered page, or a plain 500 when the template fails (it does not, for the types
/// the pages hand it).
pub fn html<T: Template>(t: &T) -> Response {
    html_status(StatusCode::OK, t)
}

/// [`html`] with another status.
pub fn html_status<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                // Only the console's own script, styles and forms; never inside another
                // site's frame (clickjacking); no URL leaks to another site.
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// A cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// What an API handler answered: its status, headers and JSON body (Null when none).
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers (ETag, Set-Cookie, ...).
    pub headers: HeaderMap,
    /// The body (a problem document when the status is not a success).
    pub body: Value,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem in the page's language: on a Chinese page the sentence of the problem's
    /// stable `type` (`/problems/four-eyes`, ...) from [`i18n`], as the API's own words are
    /// English; on an English page the API's title and detail, which say most.
    pub fn problem_in(&self, tr: Tr) -> String {
        if tr.is_en() {
            return self.problem();
        }
        let kind = self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("/problems/"))
            .unwrap_or("");
        match tr.t(&format!("problem.{kind}")) {
            "?" => format!("{}（HTTP {}）", tr.t("problem.other"), self.status.as_u16()),
            words => words.to_owned(),
        }
    }

    /// The problem document's detail (or title), for the page's error line.
    pub fn problem(&self) -> String {
        let detail = self.body["detail"].as_str().unwrap_or("");
        let title = self.body["title"].as_str().unwrap_or("");
        match (title.is_empty(), detail.is_empty()) {
            (false, false) => format!("{title}: {detail}"),
            (false, true) => title.to_owned(),
            (true, false) => detail.to_owned(),
            (true, true) => format!("HTTP {}", self.status.as_u16()),
        }
    }
}

/// Reads an API handler's answer.
pub async fn call(r: Response) -> Answer {
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, ANSWER_LEN_MAX_BYTES)
        .await
        .unwrap_or_default();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// A form's fields (`application/x-www-form-urlencoded`).
#[derive(Debug, Default, Clone)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Parses a body.
    pub fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A field's value, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }
}

/// A request to the console from a session: the caller (authenticated by the operator API's
/// own extractor), the request's headers and, for a POST, its form.
pub struct Posted {
    /// Who.
    pub caller: Caller,
    /// The form.
    pub form: Form,
    /// The request's headers (cookies, language).
    pub headers: HeaderMap,
}

/// The caller of a POST whose CSRF token comes in a form field (or, for a multipart body,
/// `csrf` given by the handler): the field is put into the `X-CSRF-Token` header, then the
/// operator API's [`Caller`] extractor authenticates and checks it.
pub async fn caller_with_csrf<S: CmsStore>(
    parts: &mut Parts,
    st: &Arc<HttpState<S>>,
    csrf: &str,
) -> Result<Caller, Response> {
    if let Ok(v) = HeaderValue::from_str(csrf) {
        parts.headers.insert(CSRF_HEADER, v);
    }
    Caller::from_request_parts(parts, st)
        .await
        .map_err(|r| refused(r.status(), &parts.headers))
}

/// Reads a POSTed form and its caller.
pub async fn posted<S: CmsStore>(st: &Arc<HttpState<S>>, req: Request) -> Result<Posted, Response> {
    let (mut parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let form = Form::parse(&bytes);
    let csrf = form.get(CSRF_FIELD).to_owned();
    let caller = caller_with_csrf(&mut parts, st, &csrf).await?;
    Ok(Posted {
        caller,
        form,
        headers: parts.headers,
    })
}

/// What the console answers when the operator API refused the caller: the login page for
/// no session (401), else a short page saying the request was refused.
pub fn refused(status: StatusCode, headers: &HeaderMap) -> Response {
    if status == StatusCode::UNAUTHORIZED {
        return Redirect::to("/console/login").into_response();
    }
    let page = layout::Page::anonymous(Tr(Lang::of(headers, None)), "/console/");
    layout::error_page(page, status, String::new())
}

/// A new `Idempotency-Key` for a form (each rendering gets its own, so a double submit is
/// answered once and a corrected form is a new request).
pub fn idempotency_key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Headers for an API call from a form: its `Idempotency-Key` and, when given, `If-Match`.
pub fn api_headers(form: &Form, if_match: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let key = form.get("idempotency_key");
    if !key.is_empty() {
        if let Ok(v) = HeaderValue::from_str(key) {
            h.insert(crate::operator::idempotency::IDEMPOTENCY_KEY, v);
        }
    }
    if let Some(v) = if_match.and_then(|m| HeaderValue::from_str(&format!("\"{m}\"")).ok()) {
        h.insert(header::IF_MATCH, v);
    }
    h
}

/// A query string being built (`form_urlencoded::Serializer` is not `Send`, so it cannot be
/// held across an await in a handler).
#[derive(Debug, Default, Clone)]
pub struct QueryString(Vec<(String, String)>);

impl QueryString {
    /// Adds `name=value`.
    pub fn append_pair(&mut self, name: &str, value: &str) -> &mut Self {
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The encoded query.
    pub fn finish(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, kind: &str) -> Answer {
        Answer {
            status,
            headers: HeaderMap::new(),
            body: serde_json::json!({
                "type": format!("/problems/{kind}"),
                "title": "Four eyes",
                "detail": "a role change is approved by another administrator",
            }),
        }
    }

    #[test]
    fn an_api_problem_is_shown_in_the_pages_language() {
        let four_eyes = answer(StatusCode::FORBIDDEN, "four-eyes");
        assert!(four_eyes.problem_in(Tr(Lang::Zh)).starts_with("四眼原则"));
        assert_eq!(
            four_eyes.problem_in(Tr(Lang::En)),
            "Four eyes: a role change is approved by another administrator"
        );
        let unknown = answer(StatusCode::IM_A_TEAPOT, "teapot");
        assert_eq!(unknown.problem_in(Tr(Lang::Zh)), "请求未成功（HTTP 418）");
    }
}
