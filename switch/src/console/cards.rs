//! Cardholders and cards: search by citizen ID or the card number's last four digits, a
//! card's page with its history, and the life-cycle actions (hand over, activate, report lost
//! or stolen, suspend and lift, unblock, replace, PIN reset, close), each behind a confirmation
//! page that asks for the reason. Every read and action is the card API's own handler
//! ([`crate::operator::routes::cms`]): its permission, its tenant scope, `If-Match` with the
//! version the confirmation page showed, the audit entry with the reason.
//!
//! A card's history is its entries in the audit log (`card:<id>`); the log is read in chain
//! order and only its first [`HISTORY_SCAN_MAX`] entries are looked at (a store query by
//! subject is what a long-lived node wants).

use super::format::{cst_time, mask_pan};
use super::layout::{error_page, Page};
use super::{api_headers, call, html, html_status, posted};
use crate::cms::lifecycle::{next, Lifecycle};
use crate::cms::{CardOperation, CmsStore};
use crate::http::HttpState;
use crate::operator::routes::cms as api;
use crate::operator::{Caller, Permission};
use crate::store::OperatorStore;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

/// Audit entries read for a card's history at most.
pub const HISTORY_SCAN_MAX: u32 = 20_000;
const HISTORY_PAGE: u32 = 500;

/// The card routes.
pub fn routes<S: CmsStore>() -> Router<Arc<HttpState<S>>> {
    Router::new()
        .route("/console/cards", get(search::<S>))
        .route("/console/cards/{id}", get(detail::<S>))
        .route(
            "/console/cards/{id}/{op}",
            get(confirm_page::<S>).post(act::<S>),
        )
}

/// The console's card actions, in the order the page offers them: (route name, operation).
pub const ACTIONS: [(&str, CardOperation); 10] = [
    ("hand-over", CardOperation::HandOver),
    ("activate", CardOperation::Activate),
    ("report-lost", CardOperation::ReportLost),
    ("report-stolen", CardOperation::ReportStolen),
    ("suspend", CardOperation::Suspend),
    ("lift-suspension", CardOperation::Lift),
    ("unblock", CardOperation::Unblock),
    ("pin-reset", CardOperation::ResetPin),
    ("replace", CardOperation::Replace),
    ("close", CardOperation::Close),
];

/// The permission of an action (the API's table for the named operations).
fn permission(name: &str) -> Option<Permission> {
    match name {
        "replace" => Some(Permission::ReplaceCard),
        "pin-reset" => Some(Permission::ResetPin),
        other => api::operation(other).map(|(_, p)| p),
    }
}

/// A card as shown.
#[derive(Debug, Clone, Default)]
pub struct CardView {
    /// Store id.
    pub id: i64,
    /// Masked PAN.
    pub pan: String,
    /// Bank.
    pub issuer: String,
    /// `YYMM`.
    pub expiry: String,
    /// Life-cycle state.
    pub lifecycle: String,
    /// Version (ETag).
    pub version: i64,
    /// Wrong PIN tries.
    pub pin_tries: String,
    /// The card that replaced it.
    pub replaced_by: String,
}

impl CardView {
    fn of(c: &Value) -> Self {
        Self {
            id: c["card_id"].as_i64().unwrap_or(0),
            pan: mask_pan(c["pan_masked"].as_str().unwrap_or("")),
            issuer: c["issuer"].as_str().unwrap_or("").to_owned(),
            expiry: c["expiry_yymm"].as_str().unwrap_or("").to_owned(),
            lifecycle: c["lifecycle"].as_str().unwrap_or("").to_owned(),
            version: c["version"].as_i64().unwrap_or(0),
            pin_tries: c["pin_tries_failed"].to_string(),
            replaced_by: c["replaced_by"]
                .as_i64()
                .map(|r| r.to_string())
                .unwrap_or_default(),
        }
    }

    /// The actions `caller` may take on this card now (permission and life-cycle table).
    fn actions(&self, caller: &Caller) -> Vec<&'static str> {
        let Some(from) = Lifecycle::from_sql(&self.lifecycle) else {
            return Vec::new();
        };
        ACTIONS
            .iter()
            .filter(|(name, op)| {
                permission(name).is_some_and(|p| caller.permissions.contains(p))
                    && next(*op, from).is_ok()
            })
            .map(|(name, _)| *name)
            .collect()
    }
}

/// An application as shown in a cardholder search.
#[derive(Debug, Clone)]
pub struct ApplicationView {
    /// Id.
    pub id: i64,
    /// Batch.
    pub batch: String,
    /// Masked citizen ID.
    pub citizen: String,
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Bank.
    pub bank: String,
    /// Applied or personalised.
    pub status: String,
    /// Its card.
    pub card: String,
}

impl ApplicationView {
    /// From the API's application JSON.
    pub fn of(a: &Value) -> Self {
        let s = |k: &str| a[k].as_str().unwrap_or("").to_owned();
        Self {
            id: a["application_id"].as_i64().unwrap_or(0),
            batch: s("batch_id"),
            citizen: s("citizen_id_masked"),
            name: s("name"),
            region: s("region_code"),
            bank: s("bank"),
            status: s("status"),
            card: a["card_id"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_default(),
        }
    }
}

/// The search page.
#[derive(Template)]
#[template(path = "console/cards.html")]
pub struct SearchPage {
    /// Frame.
    pub page: Page,
    /// Citizen ID typed.
    pub citizen_id: String,
    /// Last four typed.
    pub pan_last4: String,
    /// Whether a search was made.
    pub searched: bool,
    /// Cards found.
    pub cards: Vec<CardView>,
    /// The person's applications (a search by citizen ID).
    pub applications: Vec<ApplicationView>,
    /// What the API refused.
    pub error: String,
}

/// `GET /console/cards[?citizen_id=|pan_last4=]`.
pub async fn search<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    RawQuery(query): RawQuery,
) -> Response {
    let form = super::Form::parse(query.as_deref().unwrap_or("").as_bytes());
    let citizen_id = form.get("citizen_id").to_uppercase();
    let pan_last4 = form.get("pan_last4").to_owned();
    let mut out = SearchPage {
        page: page.clone().in_section("cards"),
        searched: !(citizen_id.is_empty() && pan_last4.is_empty()),
        citizen_id,
        pan_last4,
        cards: Vec::new(),
        applications: Vec::new(),
        error: String::new(),
    };
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    if let Err(p) = caller.require(Permission::ViewCards) {
        return error_page(out.page, p.status, p.detail);
    }
    if !out.searched {
        return html(&out);
    }
    let mut q = super::QueryString::default();
    if !out.citizen_id.is_empty() {
        q.append_pair("citizen_id", &out.citizen_id);
    } else {
        q.append_pair("pan_last4", &out.pan_last4);
    }
    let q = q.finish();
    let answer =
        call(api::cards(State(Arc::clone(&st)), caller.clone(), RawQuery(Some(q))).await).await;
    if !answer.ok() {
        out.error = answer.problem();
        return html(&out);
    }
    out.cards = list(&answer.body).iter().map(CardView::of).collect();
    if !out.citizen_id.is_empty() {
        let q = format!("citizen_id={}", out.citizen_id);
        let apps = call(api::applications(State(st), caller, RawQuery(Some(q))).await).await;
        out.applications = list(&apps.body).iter().map(ApplicationView::of).collect();
    }
    html(&out)
}

fn list(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

/// A card's page.
#[derive(Template)]
#[template(path = "console/card.html")]
pub struct DetailPage {
    /// Frame.
    pub page: Page,
    /// The card.
    pub card: CardView,
    /// What the caller may do with it now.
    pub actions: Vec<&'static str>,
    /// Its history: (time, action, operator, reason, from → to).
    pub history: Vec<(String, String, String, String, String)>,
    /// The action just done (`?done=`).
    pub done: String,
}

/// `GET /console/cards/{id}[?done=op]`.
pub async fn detail<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path(id): Path<i64>,
    RawQuery(query): RawQuery,
) -> Response {
    let page = page.in_section("cards");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let answer = call(api::card(State(Arc::clone(&st)), caller.clone(), Path(id)).await).await;
    if !answer.ok() {
        return error_page(page, answer.status, answer.problem());
    }
    let card = CardView::of(&answer.body);
    let done = super::Form::parse(query.as_deref().unwrap_or("").as_bytes())
        .get("done")
        .to_owned();
    let done = if done == "issue" || ACTIONS.iter().any(|(n, _)| *n == done) {
        done
    } else {
        String::new()
    };
    html(&DetailPage {
        actions: card.actions(&caller),
        history: history(&*st.store, id).await,
        card,
        page,
        done,
    })
}

/// The audit entries of card `id` (see [`HISTORY_SCAN_MAX`]).
async fn history<S: OperatorStore>(
    store: &S,
    id: i64,
) -> Vec<(String, String, String, String, String)> {
    let subject = format!("card:{id}");
    let (mut after, mut read, mut out) = (0, 0, Vec::new());
    while read < HISTORY_SCAN_MAX {
        let Ok(rows) = store.audit_page(after, HISTORY_PAGE).await else {
            break;
        };
        read += HISTORY_PAGE;
        for r in &rows {
            if r.entry.subject == subject {
                let d: Value = serde_json::from_str(&r.entry.detail).unwrap_or(Value::Null);
                let s = |k: &str| d[k].as_str().unwrap_or("").to_owned();
                let change = if s("from").is_empty() {
                    s("to")
                } else {
                    format!("{} → {}", s("from"), s("to"))
                };
                out.push((
                    cst_time(r.entry.at_us),
                    r.entry.action.clone(),
                    r.entry.actor.clone(),
                    s("reason"),
                    change,
                ));
            }
        }
        match rows.last() {
            Some(last) if rows.len() == HISTORY_PAGE as usize => after = last.audit_seq,
            _ => break,
        }
    }
    out
}

/// The confirmation page of an action.
#[derive(Template)]
#[template(path = "console/card_confirm.html")]
pub struct ConfirmPage {
    /// Frame.
    pub page: Page,
    /// The card as read (its version goes into If-Match).
    pub card: CardView,
    /// The action's route name.
    pub op: String,
    /// Whether it takes a PIN block (replace, PIN reset).
    pub needs_pin: bool,
    /// The reason typed (kept after a refusal).
    pub reason: String,
    /// What the API refused.
    pub error: String,
}

/// `GET /console/cards/{id}/{op}`: the confirmation, with the reason to give.
pub async fn confirm_page<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path((id, op)): Path<(i64, String)>,
) -> Response {
    let page = page.in_section("cards");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let Some(p) = permission(&op) else {
        return error_page(page, StatusCode::NOT_FOUND, op);
    };
    if let Err(problem) = caller.require(p) {
        return error_page(page, problem.status, problem.detail);
    }
    let answer = call(api::card(State(st), caller, Path(id)).await).await;
    if !answer.ok() {
        return error_page(page, answer.status, answer.problem());
    }
    html(&ConfirmPage {
        page,
        card: CardView::of(&answer.body),
        needs_pin: matches!(op.as_str(), "replace" | "pin-reset"),
        op,
        reason: String::new(),
        error: String::new(),
    })
}

/// `POST /console/cards/{id}/{op}`: the API's operation with `If-Match` (the version the
/// confirmation showed), the reason and, for replace and PIN reset, the PIN block.
pub async fn act<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    Path((id, op)): Path<(i64, String)>,
    req: Request,
) -> Response {
    let p = match posted(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let version = p.form.get("version").to_owned();
    let headers = api_headers(&p.form, Some(&version));
    let reason = p.form.get("reason").to_owned();
    let needs_pin = matches!(op.as_str(), "replace" | "pin-reset");
    let body = if needs_pin {
        json!({ "reason": reason, "pin_block": p.form.get("pin_block") })
    } else {
        json!({ "reason": reason })
    };
    let body = Bytes::from(body.to_string());
    let state = State(Arc::clone(&st));
    let caller = p.caller.clone();
    let r = match op.as_str() {
        "replace" => api::replace(state, caller, Path(id), headers, body).await,
        "pin-reset" => api::pin_reset(state, caller, Path(id), headers, body).await,
        _ => api::card_operation(state, caller, Path((id, op.clone())), headers, body).await,
    };
    let answer = call(r).await;
    if answer.ok() {
        let target = match answer.body["new"]["card_id"].as_i64() {
            Some(new) => format!("/console/cards/{new}?done={op}"),
            None => format!("/console/cards/{id}?done={op}"),
        };
        return Redirect::to(&target).into_response();
    }
    let tr = super::i18n::Tr(super::i18n::Lang::of(&p.headers, None));
    let csrf = p.form.get(super::CSRF_FIELD).to_owned();
    let page =
        Page::of(p.caller.clone(), tr, csrf, &format!("/console/cards/{id}")).in_section("cards");
    // Show the card as it is now (a 412 means someone else changed it meanwhile).
    let card = call(api::card(State(st), p.caller, Path(id)).await).await;
    if !card.ok() {
        return error_page(page, answer.status, answer.problem());
    }
    html_status(
        answer.status,
        &ConfirmPage {
            page,
            card: CardView::of(&card.body),
            needs_pin,
            op,
            reason,
            error: answer.problem(),
        },
    )
}
