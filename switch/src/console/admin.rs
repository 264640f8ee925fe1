//! The audit log (auditors) and user administration (administrators): `GET /audit`,
//! `GET /users`, `POST /users` (the new user's first password and TOTP secret are shown once),
//! `POST /users/{id}/roles` (a proposal) and `POST /role-changes/{id}/approve` (four eyes: the
//! API refuses the proposer and the user changed). The open proposals, with approval and
//! rejection behind a confirmation, are [`super::role_changes`]'s page.

use super::format::cst_time;
use super::layout::{problem_page, Page};
use super::{api_headers, call, html, html_status, posted};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::routes::{audit_log, users};
use crate::operator::Caller;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

/// The routes.
pub fn routes<S: CmsStore>() -> Router<Arc<HttpState<S>>> {
    Router::new()
        .route("/console/audit", get(audit::<S>))
        .route(
            "/console/users",
            get(users_page::<S>).post(create_user::<S>),
        )
        .route("/console/users/{id}/roles", post(propose::<S>))
        .route("/console/role-changes/approve", post(approve::<S>))
}

/// The audit log page.
#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    /// Frame.
    pub page: Page,
    /// Entries: (seq, time, actor, action, subject, source, reason).
    pub rows: Vec<[String; 7]>,
    /// The next page.
    pub next: String,
}

/// `GET /console/audit[?cursor=]`.
pub async fn audit<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    RawQuery(query): RawQuery,
) -> Response {
    let page = page.in_section("audit");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let cursor = super::Form::parse(query.as_deref().unwrap_or("").as_bytes())
        .get("cursor")
        .to_owned();
    let mut q = super::QueryString::default();
    q.append_pair("limit", "100");
    if !cursor.is_empty() {
        q.append_pair("cursor", &cursor);
    }
    let answer = call(audit_log::list(State(st), caller, RawQuery(Some(q.finish()))).await).await;
    if !answer.ok() {
        return problem_page(page, &answer);
    }
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let rows = answer.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            [
                s(&e["audit_seq"]),
                cst_time(e["at_us"].as_i64().unwrap_or(0)),
                s(&e["actor"]),
                s(&e["action"]),
                s(&e["subject"]),
                s(&e["source"]),
                s(&e["reason"]),
            ]
        })
        .collect();
    let next = answer.body["next_cursor"]
        .as_str()
        .map(|c| format!("/console/audit?cursor={c}"))
        .unwrap_or_default();
    html(&AuditPage { page, rows, next })
}

/// The users page.
#[derive(Template)]
#[template(path = "console/users.html")]
pub struct UsersPage {
    /// Frame.
    pub page: Page,
    /// Users: (id, username, institution, roles, locked until).
    pub rows: Vec<[String; 5]>,
    /// The next page.
    pub next: String,
    /// A result to show (user created, change proposed or approved).
    pub notice: String,
    /// The new user's first secrets: (username, password, TOTP secret).
    pub secrets: Option<[String; 3]>,
    /// What the API refused.
    pub error: String,
    /// Whether the caller may create users and propose and approve role changes.
    pub can_manage: bool,
}

async fn users_of<S: CmsStore>(
    st: &Arc<HttpState<S>>,
    page: Page,
    caller: Caller,
    cursor: &str,
) -> Result<UsersPage, Response> {
    let can_manage = caller
        .permissions
        .contains(crate::operator::Permission::ManageUsers);
    let mut q = super::QueryString::default();
    q.append_pair("limit", "100");
    if !cursor.is_empty() {
        q.append_pair("cursor", cursor);
    }
    let answer =
        call(users::list(State(Arc::clone(st)), caller, RawQuery(Some(q.finish()))).await).await;
    if !answer.ok() {
        return Err(problem_page(page, &answer));
    }
    let rows = answer.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let roles: Vec<&str> = u["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            [
                u["user_id"].as_str().unwrap_or("").to_owned(),
                u["username"].as_str().unwrap_or("").to_owned(),
                u["institution"].as_str().unwrap_or("").to_owned(),
                roles.join(", "),
                u["locked_until_us"]
                    .as_i64()
                    .map(cst_time)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let next = answer.body["next_cursor"]
        .as_str()
        .map(|c| format!("/console/users?cursor={c}"))
        .unwrap_or_default();
    Ok(UsersPage {
        page,
        rows,
        next,
        notice: String::new(),
        secrets: None,
        error: String::new(),
        can_manage,
    })
}

/// `GET /console/users[?cursor=]`.
pub async fn users_page<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    RawQuery(query): RawQuery,
) -> Response {
    let page = page.in_section("users");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let cursor = super::Form::parse(query.as_deref().unwrap_or("").as_bytes())
        .get("cursor")
        .to_owned();
    match users_of(&st, page, caller, &cursor).await {
        Ok(p) => html(&p),
        Err(r) => r,
    }
}

/// The users page after a POST: the list again with what the API answered.
async fn after_post<S: CmsStore>(
    st: &Arc<HttpState<S>>,
    p: super::Posted,
    answer: super::Answer,
    notice: String,
    secrets: Option<[String; 3]>,
) -> Response {
    let tr = super::i18n::Tr(super::i18n::Lang::of(&p.headers, None));
    let csrf = p.form.get(super::CSRF_FIELD).to_owned();
    let page = Page::of(p.caller.clone(), tr, csrf, "/console/users").in_section("users");
    let mut out = match users_of(st, page, p.caller, "").await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if answer.ok() {
        out.notice = notice;
        out.secrets = secrets;
    } else {
        out.error = answer.problem_in(out.page.tr);
    }
    html_status(answer.status, &out)
}

/// `POST /console/users`: a new user of the caller's institution.
pub async fn create_user<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    req: Request,
) -> Response {
    let p = match posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut body = json!({ "username": p.form.get("username") });
    if !p.form.get("institution").is_empty() {
        body["institution"] = p.form.get("institution").into();
    }
    let answer = call(
        users::create(
            State(Arc::clone(&st)),
            p.caller.clone(),
            api_headers(&p.form, None),
            Bytes::from(body.to_string()),
        )
        .await,
    )
    .await;
    let s = |k: &str| answer.body[k].as_str().unwrap_or("").to_owned();
    let secrets = Some([s("username"), s("password"), s("totp_secret")]);
    let tr = super::i18n::Tr(super::i18n::Lang::of(&p.headers, None));
    let notice = tr.t("users.created").to_owned();
    after_post(&st, p, answer, notice, secrets).await
}

/// `POST /console/users/{id}/roles`: proposes the user's roles (comma-separated) with a
/// reason.
pub async fn propose<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let p = match posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let role_ids: Vec<&str> = p
        .form
        .get("role_ids")
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    let body = json!({ "role_ids": role_ids, "reason": p.form.get("reason") });
    let answer = call(
        users::propose_roles(
            State(Arc::clone(&st)),
            p.caller.clone(),
            Ok(Path(id)),
            api_headers(&p.form, None),
            Bytes::from(body.to_string()),
        )
        .await,
    )
    .await;
    let tr = super::i18n::Tr(super::i18n::Lang::of(&p.headers, None));
    let notice = format!(
        "{} {}: {}",
        tr.t("users.proposed"),
        tr.t("users.change_id"),
        answer.body["change_id"].as_str().unwrap_or("")
    );
    after_post(&st, p, answer, notice, None).await
}

/// `POST /console/role-changes/approve` (`change_id`): another administrator approves.
pub async fn approve<S: CmsStore>(State(st): State<Arc<HttpState<S>>>, req: Request) -> Response {
    let p = match posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = p.form.get("change_id").to_owned();
    let answer = call(
        users::approve_role_change(
            State(Arc::clone(&st)),
            p.caller.clone(),
            Ok(Path(id)),
            api_headers(&p.form, None),
            Bytes::from_static(b"{}"),
        )
        .await,
    )
    .await;
    let tr = super::i18n::Tr(super::i18n::Lang::of(&p.headers, None));
    let notice = tr.t("users.approved").to_owned();
    after_post(&st, p, answer, notice, None).await
}
