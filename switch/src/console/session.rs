//! Log in (password and TOTP code), log out, change password: the console's forms in front
//! of `POST /session`, `DELETE /session` and `POST /session/password`. The login is the API's
//! own (same lockout, same audit, same session cookie); the console keeps the answer's CSRF
//! token in its own cookie for the forms.

use super::i18n::{Lang, Tr};
use super::layout::Page;
use super::{api_headers, call, html, html_status, posted, CSRF_COOKIE};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::caller::SourceAddr;
use crate::operator::routes::session as api;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use std::sync::Arc;

/// The login page.
#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    /// Frame (no user).
    pub page: Page,
    /// The login failed.
    pub failed: bool,
    /// The username typed (kept after a failure).
    pub username: String,
    /// A notice (logged out, password changed).
    pub notice: String,
}

/// `GET /console/login[?m=out|pw]` (why the login page is shown).
pub async fn login_page(headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let tr = Tr(Lang::of(&headers, None));
    let q = super::Form::parse(q.as_deref().unwrap_or("").as_bytes());
    let notice = match q.get("m") {
        "out" => tr.t("login.logged_out"),
        "pw" => tr.t("password.done"),
        _ => "",
    };
    html(&LoginPage {
        page: Page::anonymous(tr, "/console/login"),
        failed: false,
        username: String::new(),
        notice: notice.to_owned(),
    })
}

/// `POST /console/login`: `POST /session` with the form's fields.
pub async fn login<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    source: SourceAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = super::Form::parse(&body);
    let username = form.get("username").to_owned();
    let request = json!({
        "username": username,
        "password": form.0.iter().find(|(k, _)| k == "password").map_or("", |(_, v)| v.as_str()),
        "totp": form.get("totp"),
    });
    let answer = call(
        api::login(
            State(Arc::clone(&st)),
            source,
            Bytes::from(request.to_string()),
        )
        .await,
    )
    .await;
    if !answer.ok() {
        let tr = Tr(Lang::of(&headers, None));
        return html_status(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                page: Page::anonymous(tr, "/console/login"),
                failed: true,
                username,
                notice: String::new(),
            },
        );
    }
    let mut r = Redirect::to("/console/").into_response();
    if let Some(session) = answer.headers.get(header::SET_COOKIE) {
        r.headers_mut().append(header::SET_COOKIE, session.clone());
    }
    let csrf = answer.body["csrf_token"].as_str().unwrap_or("");
    set_csrf_cookie(&mut r, &st, Some(csrf));
    r
}

/// Sets the console's CSRF cookie (or clears it with None), with the session cookie's
/// attributes.
fn set_csrf_cookie<S: CmsStore>(r: &mut Response, st: &HttpState<S>, token: Option<&str>) {
    let policy = st.operator.policy;
    let secure = if policy.secure_cookie { "; Secure" } else { "" };
    let value = match token {
        Some(t) => format!(
            "{CSRF_COOKIE}={t}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            policy.absolute_timeout.as_secs()
        ),
        None => {
            format!("{CSRF_COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
        }
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `POST /console/logout`: `DELETE /session`.
pub async fn logout<S: CmsStore>(State(st): State<Arc<HttpState<S>>>, req: Request) -> Response {
    let p = match posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let answer = call(api::logout(State(Arc::clone(&st)), p.caller).await).await;
    let mut r = Redirect::to("/console/login?m=out").into_response();
    if let Some(cleared) = answer.headers.get(header::SET_COOKIE) {
        r.headers_mut().append(header::SET_COOKIE, cleared.clone());
    }
    set_csrf_cookie(&mut r, &st, None);
    r
}

/// The password page.
#[derive(Template)]
#[template(path = "console/password.html")]
pub struct PasswordPage {
    /// Frame.
    pub page: Page,
    /// What the API refused.
    pub error: String,
}

/// `GET /console/password`.
pub async fn password_page<S: CmsStore>(page: Page) -> Response {
    html(&PasswordPage {
        page: page.in_section("password"),
        error: String::new(),
    })
}

/// `POST /console/password`: `POST /session/password`; every session of the user ends, so
/// the operator logs in again.
pub async fn change_password<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    req: Request,
) -> Response {
    let p = match posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let raw = |name: &str| {
        p.form
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let body = json!({
        "current_password": raw("current_password"),
        "new_password": raw("new_password"),
    });
    let headers = api_headers(&p.form, None);
    let tr = Tr(Lang::of(&p.headers, None));
    let csrf = p.form.get(super::CSRF_FIELD).to_owned();
    let answer = call(
        api::change_password(
            State(Arc::clone(&st)),
            p.caller.clone(),
            headers,
            Bytes::from(body.to_string()),
        )
        .await,
    )
    .await;
    if answer.ok() {
        let mut r = Redirect::to("/console/login?m=pw").into_response();
        set_csrf_cookie(&mut r, &st, None);
        return r;
    }
    let page = Page::of(p.caller, tr, csrf, "/console/password").in_section("password");
    html_status(
        answer.status,
        &PasswordPage {
            page,
            error: answer.problem_in(tr),
        },
    )
}
