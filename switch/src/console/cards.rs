//! Cardholders and cards: search by citizen ID or the card number's last four digits, a
//! card's page with its history, and the life-cycle actions (hand over, activate, report lost
//! or stolen, suspend and lift, unblock, replace, PIN reset, close), each behind a confirmation
//! page that asks for the reason. Every read and action is the card API's own handler
//! ([`crate::operator::routes::cms`]): its permission, its tenant scope, `If-Match` with the
//! version the confirmation page showed, the audit entry with the reason.
//!
//! A card's history is read by card, never by scanning: its life-cycle events are its audit
//! entries (subject `card:<id>`, the `audit_log_by_subject` index of migration 0016, newest
//! first), its transactions those of `GET /transactions?card_id=` (the card's chain of
//! transactions from its newest, migration 0024; the API's permission and scope: a caller sees the card's transactions its institution
//! took part in).

use super::format::{cst_time, mask_pan};
use super::layout::{error_page, problem_page, Page};
use super::names::Names;
use super::transactions::TxnRow;
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

/// Life-cycle events a card's page shows at most (newest first).
pub const HISTORY_EVENTS_MAX: u32 = 100;
/// Transactions a card's page shows at most (newest first; transaction search has the rest).
pub const HISTORY_TRANSACTIONS_MAX: u32 = 20;

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
        out.error = answer.problem_in(out.page.tr);
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
    /// Its life-cycle events, newest first: (time, action, operator, reason, from → to).
    pub history: Vec<(String, String, String, String, String)>,
    /// Its transactions, newest first (None: the caller may not read transactions).
    pub transactions: Option<Vec<TxnRow>>,
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
        return problem_page(page, &answer);
    }
    let mut card = CardView::of(&answer.body);
    card.issuer = Names::load(&*st.store).await.name(page.tr, &card.issuer);
    let done = super::Form::parse(query.as_deref().unwrap_or("").as_bytes())
        .get("done")
        .to_owned();
    let done = if done == "issue" || ACTIONS.iter().any(|(n, _)| *n == done) {
        done
    } else {
        String::new()
    };
    let transactions = if caller.permissions.contains(Permission::ViewTransactions) {
        Some(card_transactions(&st, &caller, id).await)
    } else {
        None
    };
    html(&DetailPage {
        actions: card.actions(&caller),
        history: history(&*st.store, id).await,
        transactions,
        card,
        page,
        done,
    })
}

/// The life-cycle events of card `id`: its audit entries, newest first.
async fn history<S: OperatorStore>(
    store: &S,
    id: i64,
) -> Vec<(String, String, String, String, String)> {
    let rows = match store
        .audit_of_subject(&format!("card:{id}"), HISTORY_EVENTS_MAX)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "console: a card's history not read");
            return Vec::new();
        }
    };
    rows.iter()
        .map(|r| {
            let d: Value = serde_json::from_str(&r.entry.detail).unwrap_or(Value::Null);
            let s = |k: &str| d[k].as_str().unwrap_or("").to_owned();
            let change = if s("from").is_empty() {
                s("to")
            } else {
                format!("{} → {}", s("from"), s("to"))
            };
            (
                cst_time(r.entry.at_us),
                r.entry.action.clone(),
                r.entry.actor.clone(),
                s("reason"),
                change,
            )
        })
        .collect()
}

/// The transactions of card `id` the caller sees, newest first, through the API's search.
async fn card_transactions<S: CmsStore>(
    st: &Arc<HttpState<S>>,
    caller: &Caller,
    id: i64,
) -> Vec<TxnRow> {
    let q = format!("card_id={id}&limit={HISTORY_TRANSACTIONS_MAX}");
    let answer = call(
        crate::operator::routes::transactions::search(
            State(Arc::clone(st)),
            caller.clone(),
            RawQuery(Some(q)),
        )
        .await,
    )
    .await;
    list(&answer.body).iter().map(TxnRow::of).collect()
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
        return problem_page(page, &answer);
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
        return problem_page(page, &answer);
    }
    html_status(
        answer.status,
        &ConfirmPage {
            page,
            card: CardView::of(&card.body),
            needs_pin,
            op,
            reason,
            error: answer.problem_in(tr),
        },
    )
}
