//! Transaction search and detail: the form in front of `GET /transactions` (RRN, terminal,
//! a date range in China Standard Time, the PAN's last four digits, response code), and a
//! transaction's page (its legs, i.e. the bill's split, the cryptogram outcome, reversal and
//! store-and-forward status, settlement event). Only what the caller's institution took part in
//! is found: the API's scope, not the console's.

use super::format::{cst_day_bounds, cst_time, mask_pan, yuan};
use super::layout::{error_page, problem_page, Page};
use super::{call, html};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::routes::transactions as api;
use crate::operator::Permission;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// A row of the search, as shown.
#[derive(Debug, Clone)]
pub struct TxnRow {
    /// RRN (field 37).
    pub rrn: String,
    /// Decision time, CST.
    pub time: String,
    /// Kind (`medical_bill`, ...).
    pub kind: String,
    /// Masked PAN.
    pub pan: String,
    /// Amount, yuan.
    pub amount: String,
    /// Field 39.
    pub code: String,
    /// Approved.
    pub approved: bool,
    /// Field 32.
    pub acquirer: String,
    /// Issuing bank.
    pub issuer: String,
    /// Field 41.
    pub terminal: String,
    /// Field 11.
    pub stan: String,
    /// Store id.
    pub id: String,
    /// The transaction it reverses, completes or refunds.
    pub original: String,
    /// Settlement event id.
    pub event: String,
    /// Legs: (number, kind, institution, yuan).
    pub legs: Vec<(String, String, String, String)>,
}

impl TxnRow {
    /// From the API's transaction JSON.
    pub fn of(t: &Value) -> Self {
        let s = |k: &str| t[k].as_str().unwrap_or("").to_owned();
        Self {
            rrn: s("rrn"),
            time: cst_time(t["decided_at_us"].as_i64().unwrap_or(0)),
            kind: s("kind"),
            pan: mask_pan(&s("pan")),
            amount: yuan(t["amount_fen"].as_i64().unwrap_or(0)),
            code: s("response_code"),
            approved: t["approved"].as_bool().unwrap_or(false),
            acquirer: s("acquirer"),
            issuer: s("issuer"),
            terminal: s("terminal_id"),
            stan: s("stan"),
            id: s("transaction_id"),
            original: s("original_transaction_id"),
            event: s("event_id"),
            legs: t["legs"]
                .as_array()
                .map(|legs| {
                    legs.iter()
                        .map(|l| {
                            (
                                l["leg_no"].to_string(),
                                l["kind"].as_str().unwrap_or("").to_owned(),
                                l["institution"].as_str().unwrap_or("").to_owned(),
                                yuan(l["amount_fen"].as_i64().unwrap_or(0)),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The cryptogram outcome this decision implies (the store keeps the decision, not the
    /// check's own record): `ok`, `failed` or `not_reached`. ssc87 codes: 05 cryptogram, 59
    /// ATC; 14, 41, 43, 54, 62 come from the card check before the cryptogram (a lost card's
    /// genuine ARQC still gets an ARPC with its APPLICATION BLOCK script).
    pub fn arqc(&self) -> &'static str {
        match self.code.as_str() {
            "05" | "59" => "txn.arqc_failed",
            "41" | "43" => "txn.arqc_blocked",
            "14" | "54" | "62" | "30" | "12" | "A0" | "96" => "txn.arqc_not_reached",
            _ => "txn.arqc_ok",
        }
    }
}

/// Institution names by id (ids stay where a name is unknown).
async fn names<S: CmsStore>(st: &HttpState<S>) -> std::collections::HashMap<String, String> {
    st.store
        .institutions()
        .await
        .map(|list| {
            list.into_iter()
                .map(|i| (i.institution_id.as_str().to_owned(), i.name))
                .collect()
        })
        .unwrap_or_default()
}

impl TxnRow {
    /// Institutions by name.
    fn named(mut self, names: &std::collections::HashMap<String, String>) -> Self {
        let name = |id: &mut String| {
            if let Some(n) = names.get(id.as_str()) {
                *id = n.clone();
            }
        };
        name(&mut self.acquirer);
        name(&mut self.issuer);
        for leg in &mut self.legs {
            name(&mut leg.2);
        }
        self
    }
}

/// The search page.
#[derive(Template)]
#[template(path = "console/transactions.html")]
pub struct SearchPage {
    /// Frame.
    pub page: Page,
    /// The form's values: rrn, terminal, from, to, pan_last4, response_code.
    pub q: Vec<(&'static str, String)>,
    /// Whether a search was made.
    pub searched: bool,
    /// Found.
    pub rows: Vec<TxnRow>,
    /// What the API refused.
    pub error: String,
    /// The next page's link.
    pub next: String,
}

impl SearchPage {
    /// The form's value of `name`.
    pub fn v(&self, name: &str) -> &str {
        self.q
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

const FIELDS: [&str; 6] = [
    "rrn",
    "terminal",
    "from",
    "to",
    "pan_last4",
    "response_code",
];

/// `GET /console/transactions[?rrn=&terminal=&from=&to=&pan_last4=&response_code=&cursor=]`.
pub async fn search<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    RawQuery(query): RawQuery,
) -> Response {
    let form = super::Form::parse(query.as_deref().unwrap_or("").as_bytes());
    let q: Vec<(&'static str, String)> = FIELDS
        .iter()
        .map(|k| (*k, form.get(k).to_owned()))
        .collect();
    let searched = q.iter().any(|(_, v)| !v.is_empty()) || !form.get("cursor").is_empty();
    let mut out = SearchPage {
        page: page.clone().in_section("transactions"),
        q,
        searched,
        rows: Vec::new(),
        error: String::new(),
        next: String::new(),
    };
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    if let Err(p) = caller.require(Permission::ViewTransactions) {
        return error_page(out.page, p.status, p.detail);
    }
    // The API's query: the date range is China Standard Time days, the API's microseconds.
    let mut api_query = super::QueryString::default();
    for (k, v) in &out.q {
        if v.is_empty() {
            continue;
        }
        match *k {
            "from" | "to" => match cst_day_bounds(v) {
                Some((start, _)) if *k == "from" => {
                    api_query.append_pair("from_us", &start.to_string());
                }
                Some((_, end)) => {
                    api_query.append_pair("to_us", &end.to_string());
                }
                None => out.error = format!("{}: {v}", out.page.tr.t("txn.invalid")),
            },
            _ => {
                api_query.append_pair(k, v);
            }
        }
    }
    let cursor = form.get("cursor");
    if !cursor.is_empty() {
        api_query.append_pair("cursor", cursor);
    }
    api_query.append_pair("limit", "25");
    if !out.error.is_empty() {
        return html(&out);
    }
    let answer = call(
        api::search(
            State(Arc::clone(&st)),
            caller.clone(),
            RawQuery(Some(api_query.finish())),
        )
        .await,
    )
    .await;
    if !answer.ok() {
        out.error = format!(
            "{}: {}",
            out.page.tr.t("txn.invalid"),
            answer.problem_in(out.page.tr)
        );
        return html(&out);
    }
    let names = names(&st).await;
    out.rows = answer.body["items"]
        .as_array()
        .map(|items| items.iter().map(|t| TxnRow::of(t).named(&names)).collect())
        .unwrap_or_default();
    if let Some(next) = answer.body["next_cursor"].as_str() {
        let mut link = super::QueryString::default();
        for (k, v) in &out.q {
            if !v.is_empty() {
                link.append_pair(k, v);
            }
        }
        link.append_pair("cursor", next);
        out.next = format!("/console/transactions?{}", link.finish());
    }
    html(&out)
}

/// A transaction's page.
#[derive(Template)]
#[template(path = "console/transaction.html")]
pub struct DetailPage {
    /// Frame.
    pub page: Page,
    /// The RRN.
    pub rrn: String,
    /// Every transaction with the RRN the caller sees (an original and its reversal).
    pub rows: Vec<TxnRow>,
    /// Store-and-forward messages of these transactions: (transaction id, kind, bank,
    /// attempts, last response code, held).
    pub saf: Vec<(String, String, String, String, String, bool)>,
    /// Whether the caller may read the store-and-forward queue.
    pub saf_visible: bool,
}

impl DetailPage {
    /// The RRN of the transaction whose id is `id`, if on the page.
    pub fn reversed_by(&self, id: &str) -> Vec<&TxnRow> {
        self.rows.iter().filter(|r| r.original == id).collect()
    }
}

/// `GET /console/transactions/{rrn}`.
pub async fn detail<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    page: Page,
    Path(rrn): Path<String>,
) -> Response {
    let page = page.in_section("transactions");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    let mut q = super::QueryString::default();
    q.append_pair("rrn", &rrn).append_pair("limit", "50");
    let answer = call(
        api::search(
            State(Arc::clone(&st)),
            caller.clone(),
            RawQuery(Some(q.finish())),
        )
        .await,
    )
    .await;
    if !answer.ok() {
        return problem_page(page, &answer);
    }
    let names = names(&st).await;
    let rows: Vec<TxnRow> = answer.body["items"]
        .as_array()
        .map(|items| items.iter().map(|t| TxnRow::of(t).named(&names)).collect())
        .unwrap_or_default();
    if rows.is_empty() {
        return error_page(page, StatusCode::NOT_FOUND, rrn);
    }
    let saf_visible = caller.permissions.contains(Permission::ViewSaf);
    let mut saf = Vec::new();
    if saf_visible {
        let backlog = call(
            crate::http::store_and_forward(State(st), caller, RawQuery(Some("limit=500".into())))
                .await,
        )
        .await;
        for i in backlog.body["oldest"].as_array().into_iter().flatten() {
            let id = i["transaction_id"].as_str().unwrap_or("");
            if rows.iter().any(|r| r.id == id) {
                saf.push((
                    id.to_owned(),
                    i["kind"].as_str().unwrap_or("").to_owned(),
                    i["bank"].as_str().unwrap_or("").to_owned(),
                    i["attempts"].to_string(),
                    i["last_response_code"].as_str().unwrap_or("").to_owned(),
                    i["held"].as_bool().unwrap_or(false),
                ));
            }
        }
    }
    html(&DetailPage {
        page,
        rrn,
        rows,
        saf,
        saf_visible,
    })
}
