//! Application batches: upload a CSV (a multipart form), follow its import job (a progress
//! bar; the page refreshes itself while the job runs, so it needs no JavaScript), download the
//! per-row error report, list the batch's applications and issue a card from one (with the PIN
//! block of the counter's PIN pad). Each step is the card API's own handler:
//! `POST /application-batches`, `GET /import-jobs/{id}` and `/errors`, `GET /applications`,
//! `POST /applications/{id}/issue`.

use super::cards::ApplicationView;
use super::layout::{error_page, problem_page, Page};
use super::{api_headers, call, caller_with_csrf, html, html_status, Form};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::routes::cms as api;
use crate::operator::Permission;
use askama::Template;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::sync::Arc;

/// The batch routes.
pub fn routes<S: CmsStore>() -> Router<Arc<HttpState<S>>> {
    Router::new()
        .route(
            "/console/batches",
            get(index::<S>)
                .post(upload::<S>)
                .layer(DefaultBodyLimit::max(api::BATCH_LEN_MAX_BYTES + 64 * 1024)),
        )
        .route("/console/batches/open", get(open))
        .route("/console/batches/jobs/{id}", get(job::<S>))
        .route(
            "/console/batches/jobs/{id}/errors.csv",
            get(errors_csv::<S>),
        )
        .route("/console/batches/{batch}", get(batch::<S>))
        .route(
            "/console/applications/{id}/issue",
            get(issue_page::<S>).post(issue::<S>),
        )
}

/// The batches page: the upload form and a batch to open.
#[derive(Template)]
#[template(path = "console/batches.html")]
pub struct IndexPage {
    /// Frame.
    pub page: Page,
    /// What the API refused.
    pub error: String,
    /// Whether the caller may upload.
    pub can_import: bool,
}

/// `GET /console/batches`.
pub async fn index<S: CmsStore>(page: Page) -> Response {
    let page = page.in_section("batches");
    let can_import = page
        .caller
        .as_ref()
        .is_some_and(|c| c.permissions.contains(Permission::ImportApplications));
    html(&IndexPage {
        page,
        error: String::new(),
        can_import,
    })
}

/// `POST /console/batches` (multipart: `csrf_token`, `idempotency_key`, `batch_id`, `file`):
/// `POST /application-batches?batch_id=`, then the job's page.
pub async fn upload<S: CmsStore>(State(st): State<Arc<HttpState<S>>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut multipart =
        match Multipart::from_request(Request::from_parts(parts.clone(), body), &()).await {
            Ok(m) => m,
            Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
        };
    let mut fields = Form::default();
    let mut csv = Bytes::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_owned();
                let Ok(data) = field.bytes().await else {
                    return (StatusCode::BAD_REQUEST, "unreadable upload").into_response();
                };
                if name == "file" {
                    csv = data;
                } else {
                    fields
                        .0
                        .push((name, String::from_utf8_lossy(&data).into_owned()));
                }
            }
            Ok(None) => break,
            Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
        }
    }
    let caller = match caller_with_csrf(&mut parts, &st, fields.get(super::CSRF_FIELD)).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let batch_id = fields.get("batch_id").to_owned();
    let mut q = super::QueryString::default();
    q.append_pair("batch_id", &batch_id);
    let answer = call(
        api::import_batch(
            State(Arc::clone(&st)),
            caller.clone(),
            RawQuery(Some(q.finish())),
            api_headers(&fields, None),
            csv,
        )
        .await,
    )
    .await;
    if let (true, Some(job)) = (answer.ok(), answer.body["job_id"].as_str()) {
        return Redirect::to(&format!("/console/batches/jobs/{job}")).into_response();
    }
    let tr = super::i18n::Tr(super::i18n::Lang::of(&parts.headers, None));
    let csrf = fields.get(super::CSRF_FIELD).to_owned();
    let page = Page::of(caller, tr, csrf, "/console/batches").in_section("batches");
    html_status(
        answer.status,
        &IndexPage {
            page,
            error: answer.problem_in(tr),
            can_import: true,
        },
    )
}

/// `GET /console/batches/open?batch=`: the batch's page.
pub async fn open(RawQuery(query): RawQuery) -> Response {
    let form = Form::parse(query.as_deref().unwrap_or("").as_bytes());
    let b: String = form_urlencoded::byte_serialize(form.get("batch").as_bytes()).collect();
    Redirect::to(&format!("/console/batches/{b}")).into_response()
}

/// An import job's page.
#[derive(Template)]
#[template(path = "console/job.html")]
pub struct JobPage {
    /// Frame.
    pub page: Page,
    /// Job id.
    pub id: String,
    /// Its batch.
    pub batch: String,
    /// `running`, `done`, `failed`.
    pub state: String,
    /// 0-100.
    pub percent: u64,
    /// Rows in the file, done, created, duplicate, rejected.
    pub rows: [u64; 5],
    /// The first refused rows: (row, field, reason).
    pub errors: Vec<(String, String, String)>,
}

/// `GET /console/batches/jobs/{id}`.
pub async fn job<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    let page = page.in_section("batches");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let answer = call(api::import_job(State(st), caller, Path(id.clone())).await).await;
    if !answer.ok() {
        return problem_page(page, &answer);
    }
    let b = &answer.body;
    let n = |k: &str| b[k].as_u64().unwrap_or(0);
    html(&JobPage {
        page,
        id,
        batch: b["batch_id"].as_str().unwrap_or("").to_owned(),
        state: b["state"].as_str().unwrap_or("").to_owned(),
        percent: n("percent").min(100),
        rows: [
            n("rows_total"),
            n("rows_done"),
            n("rows_created"),
            n("rows_duplicate"),
            n("rows_rejected"),
        ],
        errors: b["row_errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["row"].to_string(),
                    e["field"].as_str().unwrap_or("").to_owned(),
                    e["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
    })
}

/// `GET /console/batches/jobs/{id}/errors.csv`: the API's error report, as a download.
pub async fn errors_csv<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let r = api::import_errors(State(st), caller, Path(id.clone())).await;
    if !r.status().is_success() {
        let answer = call(r).await;
        return problem_page(page, &answer);
    }
    let (mut parts, body) = r.into_parts();
    let name: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if let Ok(v) = format!("attachment; filename=\"import-{name}-errors.csv\"").parse() {
        parts.headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Response::from_parts(parts, body)
}

/// A batch's applications.
#[derive(Template)]
#[template(path = "console/batch.html")]
pub struct BatchPage {
    /// Frame.
    pub page: Page,
    /// Batch id.
    pub batch: String,
    /// Its applications the caller sees.
    pub applications: Vec<ApplicationView>,
    /// Whether the caller may issue cards.
    pub can_issue: bool,
    /// The next page's link.
    pub next: String,
}

/// `GET /console/batches/{batch}[?cursor=]`.
pub async fn batch<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path(batch): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let page = page.in_section("batches");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let cursor = Form::parse(query.as_deref().unwrap_or("").as_bytes())
        .get("cursor")
        .to_owned();
    let mut q = super::QueryString::default();
    q.append_pair("batch_id", &batch).append_pair("limit", "50");
    if !cursor.is_empty() {
        q.append_pair("cursor", &cursor);
    }
    let can_issue = caller.permissions.contains(Permission::IssueCards);
    let answer = call(api::applications(State(st), caller, RawQuery(Some(q.finish()))).await).await;
    if !answer.ok() {
        return problem_page(page, &answer);
    }
    let next = answer.body["next_cursor"]
        .as_str()
        .map(|c| {
            let b: String = form_urlencoded::byte_serialize(batch.as_bytes()).collect();
            format!("/console/batches/{b}?cursor={c}")
        })
        .unwrap_or_default();
    html(&BatchPage {
        page,
        applications: answer.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ApplicationView::of)
            .collect(),
        batch,
        can_issue,
        next,
    })
}

/// The issuance form of an application.
#[derive(Template)]
#[template(path = "console/issue.html")]
pub struct IssuePage {
    /// Frame.
    pub page: Page,
    /// The application.
    pub application: ApplicationView,
    /// What the API refused.
    pub error: String,
}

/// `GET /console/applications/{id}/issue`.
pub async fn issue_page<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path(id): Path<i64>,
) -> Response {
    let page = page.in_section("batches");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    if let Err(p) = caller.require(Permission::IssueCards) {
        return error_page(page, p.status, p.detail);
    }
    let answer = call(api::application(State(st), caller, Path(id)).await).await;
    if !answer.ok() {
        return problem_page(page, &answer);
    }
    html(&IssuePage {
        page,
        application: ApplicationView::of(&answer.body),
        error: String::new(),
    })
}

/// `POST /console/applications/{id}/issue`: `POST /applications/{id}/issue` with the PIN
/// block; then the new card's page.
pub async fn issue<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let p = match super::posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut body = json!({ "pin_block": p.form.get("pin_block") });
    if !p.form.get("reason").is_empty() {
        body["reason"] = p.form.get("reason").into();
    }
    let answer = call(
        api::issue(
            State(Arc::clone(&st)),
            p.caller.clone(),
            Path(id),
            api_headers(&p.form, None),
            Bytes::from(body.to_string()),
        )
        .await,
    )
    .await;
    if let (true, Some(card)) = (answer.ok(), answer.body["card_id"].as_i64()) {
        return Redirect::to(&format!("/console/cards/{card}?done=issue")).into_response();
    }
    let tr = super::i18n::Tr(super::i18n::Lang::of(&p.headers, None));
    let csrf = p.form.get(super::CSRF_FIELD).to_owned();
    let page = Page::of(p.caller.clone(), tr, csrf, "/console/batches").in_section("batches");
    let app = call(api::application(State(st), p.caller, Path(id)).await).await;
    if !app.ok() {
        return problem_page(page, &answer);
    }
    html_status(
        answer.status,
        &IssuePage {
            page,
            application: ApplicationView::of(&app.body),
            error: answer.problem_in(tr),
        },
    )
}
