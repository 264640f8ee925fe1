//! The open role-change proposals (administrators, issue 26): the list the second
//! administrator works from (`GET /role-changes`), and for each an approval or a rejection
//! behind a confirmation page (`POST /role-changes/{id}/approve|reject`; a rejection needs its
//! reason). Four eyes is the API's rule: the proposer and the user changed are refused
//! (`/problems/four-eyes`); the page does not offer them the buttons either.

use super::format::cst_time;
use super::layout::{problem_page, Page};
use super::names::Names;
use super::{api_headers, call, html, html_status, posted};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::routes::{role_changes as api, users};
use crate::operator::{Caller, Permission};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

/// The routes.
pub fn routes<S: CmsStore>() -> Router<Arc<HttpState<S>>> {
    Router::new()
        .route("/console/role-changes", get(list::<S>))
        .route(
            "/console/role-changes/{id}/{decision}",
            get(confirm_page::<S>).post(decide::<S>),
        )
}

/// An open proposal as shown.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    /// Change id.
    pub id: String,
    /// The user changed.
    pub username: String,
    /// That user's institution, by name.
    pub institution: String,
    /// The roles after the change.
    pub roles: String,
    /// The proposer's reason.
    pub reason: String,
    /// The proposer.
    pub proposed_by: String,
    /// When (China Standard Time).
    pub proposed_at: String,
    /// Whether the caller may decide it (neither its proposer nor its subject).
    pub decidable: bool,
}

impl Proposal {
    fn of(v: &Value, caller: &Caller, names: &Names, page: &Page) -> Self {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let me = caller.user_id().map(|u| u.to_string()).unwrap_or_default();
        let roles: Vec<&str> = v["role_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        Self {
            id: s("change_id"),
            username: s("username"),
            institution: names.name(page.tr, &s("institution")),
            roles: roles.join(", "),
            reason: s("reason"),
            proposed_by: s("proposed_by_username"),
            proposed_at: v["proposed_at_us"]
                .as_i64()
                .map(cst_time)
                .unwrap_or_default(),
            decidable: caller.permissions.contains(Permission::ManageUsers)
                && !me.is_empty()
                && me != s("proposed_by")
                && me != s("user_id"),
        }
    }
}

/// The list.
#[derive(Template)]
#[template(path = "console/role_changes.html")]
pub struct ListPage {
    /// Frame.
    pub page: Page,
    /// The open proposals, oldest first.
    pub proposals: Vec<Proposal>,
    /// What was just done.
    pub notice: String,
}

async fn open_proposals<S: CmsStore>(
    st: &Arc<HttpState<S>>,
    caller: &Caller,
    page: &Page,
) -> Result<Vec<Proposal>, super::Answer> {
    let answer = call(api::open(State(Arc::clone(st)), caller.clone()).await).await;
    if !answer.ok() {
        return Err(answer);
    }
    let names = Names::load(&*st.store).await;
    Ok(answer.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| Proposal::of(v, caller, &names, page))
        .collect())
}

/// `GET /console/role-changes[?done=approved|rejected]`.
pub async fn list<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    RawQuery(query): RawQuery,
) -> Response {
    let page = page.in_section("role_changes");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let proposals = match open_proposals(&st, &caller, &page).await {
        Ok(p) => p,
        Err(answer) => return problem_page(page, &answer),
    };
    let notice = match super::Form::parse(query.as_deref().unwrap_or("").as_bytes()).get("done") {
        "approved" => page.tr.t("rc.approved"),
        "rejected" => page.tr.t("rc.rejected"),
        _ => "",
    }
    .to_owned();
    html(&ListPage {
        page,
        proposals,
        notice,
    })
}

/// The confirmation of a decision.
#[derive(Template)]
#[template(path = "console/role_change_confirm.html")]
pub struct ConfirmPage {
    /// Frame.
    pub page: Page,
    /// The proposal.
    pub proposal: Proposal,
    /// `approve` or `reject`.
    pub decision: &'static str,
    /// The rejection's reason as typed.
    pub reason: String,
    /// What the API refused.
    pub error: String,
}

fn decision(name: &str) -> Option<&'static str> {
    match name {
        "approve" => Some("approve"),
        "reject" => Some("reject"),
        _ => None,
    }
}

/// `GET /console/role-changes/{id}/{approve|reject}`.
pub async fn confirm_page<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let page = page.in_section("role_changes");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let Some(decision) = decision(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let proposals = match open_proposals(&st, &caller, &page).await {
        Ok(p) => p,
        Err(answer) => return problem_page(page, &answer),
    };
    let Some(proposal) = proposals.into_iter().find(|p| p.id == id) else {
        let detail = page.tr.t("problem.not-found").to_owned();
        return super::layout::error_page(page, StatusCode::NOT_FOUND, detail);
    };
    html(&ConfirmPage {
        page,
        proposal,
        decision,
        reason: String::new(),
        error: String::new(),
    })
}

/// `POST /console/role-changes/{id}/{approve|reject}`: the decision, through the API.
pub async fn decide<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    Path((id, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let p = match posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(decision) = decision(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let headers = api_headers(&p.form, None);
    let reason = p.form.get("reason").to_owned();
    let answer = if decision == "approve" {
        let r = users::approve_role_change(
            State(Arc::clone(&st)),
            p.caller.clone(),
            Ok(Path(id.clone())),
            headers,
            Bytes::from_static(b"{}"),
        );
        call(r.await).await
    } else {
        let body = json!({ "reason": reason }).to_string();
        let r = api::reject(
            State(Arc::clone(&st)),
            p.caller.clone(),
            Ok(Path(id.clone())),
            headers,
            Bytes::from(body),
        );
        call(r.await).await
    };
    if answer.ok() {
        let done = if decision == "approve" {
            "approved"
        } else {
            "rejected"
        };
        return Redirect::to(&format!("/console/role-changes?done={done}")).into_response();
    }
    let tr = super::i18n::Tr(super::i18n::Lang::of(&p.headers, None));
    let csrf = p.form.get(super::CSRF_FIELD).to_owned();
    let here = format!("/console/role-changes/{id}/{decision}");
    let page = Page::of(p.caller.clone(), tr, csrf, &here).in_section("role_changes");
    let proposal = open_proposals(&st, &p.caller, &page)
        .await
        .ok()
        .and_then(|all| all.into_iter().find(|x| x.id == id))
        .unwrap_or(Proposal {
            id,
            ..Proposal::default()
        });
    html_status(
        answer.status,
        &ConfirmPage {
            error: answer.problem_in(tr),
            page,
            proposal,
            decision,
            reason,
        },
    )
}
