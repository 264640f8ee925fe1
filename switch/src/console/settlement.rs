//! Settlement (issue 26): the clearing centre's and each bank's view of the settlement windows,
//! through the operator API's `/clearing/...` handlers ([`crate::operator::routes::clearing`]),
//! so scoping (a bank sees its own line), the close's permission, idempotency, CSRF and audit
//! are the API's.
//!
//! - `GET /console/settlement`: the open window's live positions and the windows, newest first;
//! - `GET /console/settlement/{id}`: one window's positions, instructions and statements;
//! - `GET /console/settlement/close`, `POST /console/settlement/close`: closing the open window
//!   takes a confirmation page and a reason;
//! - `GET /console/settlement/{id}/reports/{institution}?format=csv|camt053`: a statement as a
//!   download.

use super::format::{cst_time, yuan};
use super::i18n::Tr;
use super::layout::{error_page, Page};
use super::names::{window_state, Names};
use super::{api_headers, call, html, posted};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::routes::clearing;
use crate::operator::Permission;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

/// The routes.
pub fn routes<S: CmsStore>() -> Router<Arc<HttpState<S>>> {
    Router::new()
        .route("/console/settlement", get(overview::<S>))
        .route(
            "/console/settlement/close",
            get(close_page::<S>).post(close::<S>),
        )
        .route("/console/settlement/{id}", get(window::<S>))
        .route(
            "/console/settlement/{id}/reports/{institution}",
            get(report::<S>),
        )
}

/// One institution's line: (institution id, its name, debits, credits, net), amounts in yuan.
pub type Line = [String; 5];

/// The lines of a `positions` array of the API, institutions by name.
pub fn lines(positions: &Value, names: &Names, tr: Tr) -> Vec<Line> {
    positions
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let fen = |k: &str| yuan(p[k].as_i64().unwrap_or(0));
            let id = p["institution_id"].as_str().unwrap_or("");
            [
                id.to_owned(),
                names.name(tr, id),
                fen("debits_fen"),
                fen("credits_fen"),
                fen("net_fen"),
            ]
        })
        .collect()
}

/// The overview page.
#[derive(Template)]
#[template(path = "console/settlement.html")]
pub struct Overview {
    /// Frame.
    pub page: Page,
    /// The open window's id ("" when clearing has none).
    pub open_id: String,
    /// Its positions.
    pub open_lines: Vec<Line>,
    /// Windows: (id, state in words, state code, opened, closed).
    pub windows: Vec<[String; 5]>,
    /// Whether the caller may close the window.
    pub may_close: bool,
    /// A notice (after a close).
    pub notice: String,
}

/// `GET /console/settlement`.
pub async fn overview<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    RawQuery(query): RawQuery,
) -> Response {
    let page = page.in_section("settlement");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let closed = super::Form::parse(query.as_deref().unwrap_or("").as_bytes())
        .get("closed")
        .to_owned();
    let open = call(clearing::positions(State(Arc::clone(&st)), caller.clone()).await).await;
    let list = call(
        clearing::windows(
            State(Arc::clone(&st)),
            caller.clone(),
            RawQuery(Some("limit=50".into())),
        )
        .await,
    )
    .await;
    if !list.ok() {
        let why = list.problem_in(page.tr);
        return error_page(page, list.status, why);
    }
    let (tr, names) = (page.tr, Names::load(&*st.store).await);
    let windows = list.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let at = |k: &str| w[k].as_i64().map(cst_time).unwrap_or_default();
            let state = w["state"].as_str().unwrap_or("").to_owned();
            [
                w["window_id"].to_string(),
                window_state(tr, &state),
                state,
                at("opened_at_us"),
                at("closed_at_us"),
            ]
        })
        .collect();
    let notice = if closed.is_empty() {
        String::new()
    } else {
        format!("{} {closed}", page.tr.t("settlement.closed_notice"))
    };
    let may_close = caller.permissions.contains(Permission::CloseWindow);
    html(&Overview {
        open_id: if open.ok() {
            open.body["window_id"].to_string()
        } else {
            String::new()
        },
        open_lines: lines(&open.body["positions"], &names, tr),
        windows,
        may_close,
        notice,
        page,
    })
}

/// One window.
#[derive(Template)]
#[template(path = "console/settlement_window.html")]
pub struct WindowPage {
    /// Frame.
    pub page: Page,
    /// The window's id.
    pub id: String,
    /// Its state (`open`, `closed`).
    pub state: String,
    /// Its state in words.
    pub state_name: String,
    /// Opened and closed (China Standard Time).
    pub opened: String,
    /// Closed ("" while open).
    pub closed: String,
    /// Positions.
    pub lines: Vec<Line>,
    /// Instructions: (payer's name, payee's name, amount in yuan).
    pub instructions: Vec<[String; 3]>,
}

/// `GET /console/settlement/{id}`.
pub async fn window<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    let page = page.in_section("settlement");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let answer =
        call(clearing::window(State(Arc::clone(&st)), caller, Ok(Path(id.clone()))).await).await;
    if !answer.ok() {
        let why = answer.problem_in(page.tr);
        return error_page(page, answer.status, why);
    }
    let (tr, names) = (page.tr, Names::load(&*st.store).await);
    let w = &answer.body;
    let at = |k: &str| w[k].as_i64().map(cst_time).unwrap_or_default();
    let instructions = answer.body["instructions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            [
                names.name(tr, i["payer_id"].as_str().unwrap_or("")),
                names.name(tr, i["payee_id"].as_str().unwrap_or("")),
                yuan(i["amount_fen"].as_i64().unwrap_or(0)),
            ]
        })
        .collect();
    html(&WindowPage {
        id: w["window_id"].to_string(),
        state: w["state"].as_str().unwrap_or("").to_owned(),
        state_name: window_state(tr, w["state"].as_str().unwrap_or("")),
        opened: at("opened_at_us"),
        closed: at("closed_at_us"),
        lines: lines(&answer.body["positions"], &names, tr),
        instructions,
        page,
    })
}

/// The close's confirmation.
#[derive(Template)]
#[template(path = "console/settlement_close.html")]
pub struct ClosePage {
    /// Frame.
    pub page: Page,
    /// The open window's id.
    pub open_id: String,
    /// Why the last attempt failed.
    pub error: String,
}

/// `GET /console/settlement/close`.
pub async fn close_page<S: CmsStore>(State(st): State<Arc<HttpState<S>>>, page: Page) -> Response {
    let page = page.in_section("settlement");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let open = call(clearing::positions(State(st), caller).await).await;
    if !open.ok() {
        let why = open.problem_in(page.tr);
        return error_page(page, open.status, why);
    }
    html(&ClosePage {
        open_id: open.body["window_id"].to_string(),
        error: String::new(),
        page,
    })
}

/// `POST /console/settlement/close`: closes the open window the confirmation named.
pub async fn close<S: CmsStore>(State(st): State<Arc<HttpState<S>>>, req: Request) -> Response {
    let p = match posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut body = json!({ "reason": p.form.get("reason") });
    if let Ok(id) = p.form.get("window_id").parse::<i64>() {
        body["window_id"] = id.into();
    }
    let answer = call(
        clearing::close_window(
            State(Arc::clone(&st)),
            p.caller.clone(),
            api_headers(&p.form, None),
            Bytes::from(body.to_string()),
        )
        .await,
    )
    .await;
    if answer.ok() {
        let id = answer.body["window_id"].to_string();
        return Redirect::to(&format!("/console/settlement?closed={id}")).into_response();
    }
    let tr = super::i18n::Tr(super::i18n::Lang::of(&p.headers, None));
    let page = Page::of(
        p.caller,
        tr,
        p.form.get(super::CSRF_FIELD).to_owned(),
        "/console/settlement/close",
    )
    .in_section("settlement");
    html(&ClosePage {
        open_id: p.form.get("window_id").to_owned(),
        error: answer.problem_in(tr),
        page,
    })
}

/// `GET /console/settlement/{id}/reports/{institution}?format=`: the statement, as a download.
pub async fn report<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path((id, institution)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let format = super::Form::parse(query.as_deref().unwrap_or("").as_bytes())
        .get("format")
        .to_owned();
    let ext = if format == "camt053" { "xml" } else { "csv" };
    let mut r = clearing::statement(
        State(st),
        caller,
        Ok(Path((id.clone(), institution.clone()))),
        RawQuery(query),
    )
    .await;
    if r.status().is_success() {
        let name = format!("attachment; filename=\"statement-{id}-{institution}.{ext}\"");
        if let Ok(v) = HeaderValue::from_str(&name) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return r;
    }
    let answer = call(r).await;
    let why = answer.problem_in(page.tr);
    error_page(page.in_section("settlement"), answer.status, why)
}
