//! The card management system on the operator API: what issuance operators and counter clerks
//! do over HTTP. Each handler asks its permission ([`Caller::require`]), then what the caller's
//! institution sees ([`CardScope`]: a bureau its region's cards and applications, a bank its
//! own, the switch all; the rest is 404), and calls [`CardManagement`] with the caller as the
//! audited [`Actor`] (who, institution, source address, the `reason` of the request).
//!
//! | route | permission |
//! |---|---|
//! | `POST /application-batches?batch_id=` (CSV) → 202 job | `applications.import` |
//! | `GET /import-jobs/{id}`, `GET /import-jobs/{id}/errors` (CSV) | `cards.read` |
//! | `GET /applications[?batch_id=&citizen_id=]`, `GET /applications/{id}` | `cards.read` |
//! | `PUT /applications/{id}/photo` (JPEG) | `cards.issue` |
//! | `POST /applications/{id}/issue` (PIN block) | `cards.issue` |
//! | `GET /perso-files`, `POST /perso-files` (close), `GET /perso-files/{id}` (JSON Lines) | `cards.issue` |
//! | `GET /cards[?citizen_id=\|pan_last4=]`, `GET /cards/{id}` (ETag) | `cards.read` |
//! | `POST /cards/{id}/{operation}` (If-Match, reason) | per operation, see [`operation`] |
//! | `POST /cards/{id}/replace` (If-Match, reason, PIN block) | `cards.replace` |
//! | `POST /cards/{id}/pin-reset` (If-Match, reason, PIN block) | `cards.pin_reset` |
//! | `POST /cards/{id}/ssse-pin-unblock`, `POST /cards/{id}/records/ef06` (kiosk terminal, reason) | `cards.kiosk_relay`, see [`relay`] |
//!
//! A PIN arrives only as an ISO 9564-1 block under a counter's TPK (an LMK token of the node's
//! configuration); the HSM turns it into an IBM 3624 offset, and nothing here sees it in clear.
//! With counters configured (`[[cms.counter]]`, [`CounterTerminal`]) each counter's PIN pad has
//! its own TPK, and the TPK is the one of the counter whose API key authenticated the request
//! (the key's `counter_id`), never one the request names: a block under another counter's TPK
//! does not decrypt to a PIN and is refused, and a caller that is not a counter enters no PIN
//! (403). Without counters every PIN pad shares `[cms] counter_tpk` (one key for every counter:
//! a deployment configures counters).
//!
//! A closed personalisation file is kept in the store (sealed: it holds PANs and names; migration
//! 0017), with its audit entry in the same transaction, so a restart or another node serves its
//! download; `GET /perso-files` lists the latest [`PERSO_FILES_LISTED_MAX`]. The file being
//! written is held by the node that issues into it (a restart loses its records: their cards
//! stay personalised and are issued again as replacements). An import job is stored with the
//! institution that started it (it and the switch see the job, from any node).

use super::{json, json_body};
use crate::cms::store::{ApplicationSearch, CardSearch};
use crate::cms::{
    Actor, Application, CardManagement, CardOperation, CmsCard, CmsError, CmsStore, CounterPin,
    ImportJob, PersoBatch,
};
use crate::http::HttpState;
use crate::operator::idempotency::{self, Outcome};
use crate::operator::problem::Problem;
use crate::operator::scope::{Bureau, CardScope};
use crate::operator::{Caller, Permission};
use crate::store::{now_us, CardId};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hsm_sim::keys::{PinKey, Tpk};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use serde::Deserialize;
use serde_json::{json, Value};

use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Closed personalisation files `GET /perso-files` lists (newest first; older ones are still
/// downloaded by id).
pub const PERSO_FILES_LISTED_MAX: u32 = 32;
/// Longest `reason` of an action.
pub const REASON_LEN_MAX_CHARS: usize = 500;
/// Longest CSV batch `POST /application-batches` takes (larger ones: `switch applications
/// import`).
pub const BATCH_LEN_MAX_BYTES: usize = 16 * 1024 * 1024;

/// A counter terminal (a PIN pad at a bureau's or a bank's counter) and its own TPK.
#[derive(Debug, Clone)]
pub struct CounterTerminal {
    /// The counter's id (an API key's `counter_id`).
    pub counter_id: String,
    /// Whose counter it is (the key's institution must be this one).
    pub institution: schemas::domain::InstitutionId,
    /// Its PIN pad's TPK (LMK token: the clear key is only in the pad and the HSM).
    pub tpk: Tpk,
}

/// What the HTTP face needs of the card management system.
pub struct CmsFace<S> {
    /// The service.
    pub service: CardManagement<S>,
    /// The bureaus and their regions (tenant scoping).
    pub bureaus: Vec<Bureau>,
    /// The TPK every counter's PIN pad shares when no counter is configured (LMK token).
    pub counter_tpk: Tpk,
    /// The counters, each with its own TPK (empty: [`CmsFace::counter_tpk`] for every one).
    pub counters: Vec<CounterTerminal>,
    batch: tokio::sync::Mutex<Option<PersoBatch>>,
    /// The kiosks the switch drives cards at (None: the card relay routes answer 503).
    card_relay: Option<crate::cms::card_relay::CardRelay>,
}

impl<S> std::fmt::Debug for CmsFace<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmsFace")
            .field("bureaus", &self.bureaus)
            .finish_non_exhaustive()
    }
}

impl<S> CmsFace<S> {
    /// The face over `service`.
    pub fn new(service: CardManagement<S>, bureaus: Vec<Bureau>, counter_tpk: Tpk) -> Self {
        Self {
            service,
            bureaus,
            counter_tpk,
            counters: Vec::new(),
            batch: tokio::sync::Mutex::new(None),
            card_relay: None,
        }
    }
}

impl<S> CmsFace<S> {
    /// With counters, each with its own TPK.
    pub fn with_counters(mut self, counters: Vec<CounterTerminal>) -> Self {
        self.counters = counters;
        self
    }

    /// With the card relay to the job centres' kiosks.
    pub fn with_card_relay(mut self, relay: crate::cms::card_relay::CardRelay) -> Self {
        self.card_relay = Some(relay);
        self
    }

    /// The counter `counter_id` of `institution`, if configured.
    pub fn counter(
        &self,
        counter_id: &str,
        institution: &schemas::domain::InstitutionId,
    ) -> Option<&CounterTerminal> {
        self.counters
            .iter()
            .find(|c| c.counter_id == counter_id && c.institution == *institution)
    }
}

/// The TPK of the PIN pad the caller typed at: with counters configured, the one of the counter
/// its API key belongs to (403 for any other caller); without, the shared one.
pub(super) async fn caller_tpk<S: crate::store::Store>(
    st: &HttpState<S>,
    f: &CmsFace<S>,
    caller: &Caller,
) -> Result<Tpk, Problem> {
    if f.counters.is_empty() {
        return Ok(f.counter_tpk.clone());
    }
    let not_a_counter = || {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "a PIN is entered at a counter: send it with the counter terminal's own API key",
        )
    };
    let crate::operator::Principal::ApiKey { key_id } = &caller.principal else {
        return Err(not_a_counter());
    };
    let key = st
        .store
        .api_key_by_id(key_id)
        .await
        .map_err(crate::operator::problem::store_failed)?;
    key.and_then(|k| k.counter_id)
        .and_then(|id| f.counter(&id, &caller.institution.institution_id))
        .map(|c| c.tpk.clone())
        .ok_or_else(not_a_counter)
}

/// The problem document of a service error (its `http_status()`).
pub fn cms_problem(e: CmsError) -> Problem {
    match e.http_status() {
        404 => Problem::not_found(match e {
            CmsError::NotFound(what) => what,
            _ => "resource",
        }),
        409 => Problem::conflict(e.to_string()),
        412 => Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Changed since read",
            format!("{e}; read it again and send its ETag in If-Match"),
        ),
        422 => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            "Invalid input",
            e.to_string(),
        ),
        502 => {
            tracing::error!(error = %e, "operator API: HSM failed");
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "hsm",
                "HSM failed",
                "the HSM refused or failed; try again",
            )
        }
        _ => {
            tracing::error!(error = %e, "operator API: card management failed");
            Problem::unavailable()
        }
    }
}

fn face<S>(st: &HttpState<S>) -> Result<&Arc<CmsFace<S>>, Problem>
where
    S: crate::store::Store,
{
    st.cms.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cms-not-configured",
            "Card management not configured",
            "this node has no [cms] section",
        )
    })
}

fn card_scope<S>(f: &CmsFace<S>, caller: &Caller) -> CardScope {
    CardScope::of(&caller.institution, &f.bureaus)
}

fn actor(caller: &Caller, reason: String) -> Actor {
    Actor {
        operator: caller.actor(),
        institution: caller.institution.institution_id.clone(),
        source: caller.source.0.clone(),
        reason,
    }
}

fn reason_of(reason: Option<String>, required: bool) -> Result<String, Problem> {
    match reason.map(|r| r.trim().to_owned()) {
        Some(r) if r.is_empty() && required => Err(Problem::invalid("a reason is required")),
        Some(r) if r.chars().count() > REASON_LEN_MAX_CHARS => Err(Problem::invalid(format!(
            "a reason is at most {REASON_LEN_MAX_CHARS} characters"
        ))),
        Some(r) => Ok(r),
        None if required => Err(Problem::invalid("a reason is required")),
        None => Ok(String::new()),
    }
}

fn card_json(c: &CmsCard) -> Value {
    json!({
        "card_id": c.card_id.0,
        "pan_masked": c.pan_masked,
        "issuer": c.issuer.as_str(),
        "expiry_yymm": c.expiry_yymm,
        "lifecycle": c.lifecycle.as_sql(),
        "status": c.status.as_sql(),
        "version": c.version,
        "pin_tries_failed": c.pin_tries_failed,
        "cardholder_id": c.cardholder_id.map(|h| h.0),
        "replaced_by": c.replaced_by.map(|r| r.0),
    })
}

/// A citizen ID shown to operators: region and the last four characters.
fn citizen_id_masked(id: &str) -> String {
    let n = id.chars().count();
    id.chars()
        .enumerate()
        .map(|(i, c)| if i < 6 || i + 4 >= n { c } else { '*' })
        .collect()
}

fn application_json(a: &Application) -> Value {
    json!({
        "application_id": a.application_id.0,
        "batch_id": a.batch_id,
        "citizen_id_masked": citizen_id_masked(&a.citizen_id),
        "name": a.name,
        "insurance": a.insurance.as_sql(),
        "region_code": a.region_code,
        "bank": a.bank.as_str(),
        "status": a.status.as_sql(),
        "card_id": a.card_id.map(|c| c.0),
        "has_photo": a.has_photo,
    })
}

fn job_json(j: &ImportJob) -> Value {
    json!({
        "job_id": j.job_id.to_string(),
        "batch_id": j.batch_id,
        "state": j.state.as_sql(),
        "percent": j.percent(),
        "rows_total": j.rows_total,
        "rows_done": j.rows_done,
        "rows_created": j.rows_created,
        "rows_duplicate": j.rows_duplicate,
        "rows_rejected": j.rows_rejected,
        "row_errors": j.row_errors.iter().map(|e| json!({
            "row": e.row, "field": e.field, "reason": e.reason,
        })).collect::<Vec<_>>(),
        "started_at_us": j.started_at_us,
        "finished_at_us": j.finished_at_us,
    })
}

fn with_etag(mut r: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// The version in `If-Match` (`"3"` or `W/"3"`): missing 428, unreadable 400.
fn if_match(headers: &HeaderMap) -> Result<i64, Problem> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "If-Match required",
            "send the card's ETag (GET /cards/{id}) in If-Match",
        ));
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Problem::invalid("If-Match is the card's ETag, a quoted version"))
}

/// The card `id`, if the caller's institution sees it (else 404).
async fn seen_card<S: CmsStore>(
    f: &CmsFace<S>,
    caller: &Caller,
    id: i64,
) -> Result<CmsCard, Problem> {
    let card = f.service.card(CardId(id)).await.map_err(cms_problem)?;
    let region = f
        .service
        .store()
        .card_region(card.card_id)
        .await
        .map_err(|e| cms_problem(e.into()))?;
    if card_scope(f, caller).sees(&card.issuer, region.as_deref()) {
        Ok(card)
    } else {
        Err(Problem::not_found("card"))
    }
}

/// The application `id`, if the caller's institution sees it (else 404).
async fn seen_application<S: CmsStore>(
    f: &CmsFace<S>,
    caller: &Caller,
    id: i64,
) -> Result<Application, Problem> {
    let app = f
        .service
        .application(crate::cms::ApplicationId(id))
        .await
        .map_err(cms_problem)?;
    if card_scope(f, caller).sees(&app.bank, Some(&app.region_code)) {
        Ok(app)
    } else {
        Err(Problem::not_found("application"))
    }
}

/// The PIN a counter's PIN pad sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    /// Why (required for replace and PIN reset).
    reason: Option<String>,
    /// The encrypted block, hex (16 or 32 digits), under the counters' TPK.
    pin_block: String,
    /// `iso0`, `iso1` (default), `iso3`, `iso4`.
    pin_block_format: Option<String>,
}

impl PinBody {
    fn counter_pin(&self, tpk: &Tpk) -> Result<CounterPin, Problem> {
        let format = match self.pin_block_format.as_deref().unwrap_or("iso1") {
            "iso0" => PinBlockFormat::Iso0,
            "iso1" => PinBlockFormat::Iso1,
            "iso3" => PinBlockFormat::Iso3,
            "iso4" => PinBlockFormat::Iso4,
            _ => {
                return Err(Problem::invalid(
                    "pin_block_format is iso0, iso1, iso3 or iso4",
                ))
            }
        };
        let block = EncryptedPinBlock::from_hex(&self.pin_block)
            .map_err(|_| Problem::invalid("pin_block is 16 or 32 hexadecimal digits"))?;
        Ok(CounterPin {
            key: PinKey::Tpk(tpk.clone()),
            block,
            format,
        })
    }
}

/// The body of a life-cycle operation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

mod applications;
mod cards;
mod perso;
pub mod relay;
pub use applications::{
    application, applications, import_batch, import_errors, import_job, issue, put_photo,
};
pub use cards::{card, card_operation, cards, operation, pin_reset, replace};
pub use perso::{close_perso_file, perso_file, perso_files};
pub use relay::{ef06_record, ssse_pin_unblock};

/// A list's query: its filters (each at most once), `cursor` (an id) and `limit`.
struct ListQuery {
    filters: Vec<(String, String)>,
    after: i64,
    limit: u32,
}

impl ListQuery {
    fn get(&self, name: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn list_query(query: Option<&str>, filters: &[&str]) -> Result<ListQuery, Problem> {
    let mut q = ListQuery {
        filters: Vec::new(),
        after: 0,
        limit: super::PAGE_DEFAULT,
    };
    let (mut cursor_seen, mut limit_seen) = (false, false);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "cursor" if !cursor_seen => {
                cursor_seen = true;
                q.after = v.parse().map_err(|_| Problem::invalid("bad cursor"))?;
            }
            "limit" if !limit_seen => {
                limit_seen = true;
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=super::PAGE_MAX).contains(n))
                    .ok_or_else(|| {
                        Problem::invalid(format!(
                            "limit is a whole number from 1 to {}",
                            super::PAGE_MAX
                        ))
                    })?;
            }
            name if filters.contains(&name) && q.get(name).is_none() => {
                q.filters.push((name.to_owned(), v.into_owned()));
            }
            _ => {
                return Err(Problem::invalid(format!(
                    "the parameters are {}, cursor and limit, each at most once",
                    filters.join(", ")
                )))
            }
        }
    }
    Ok(q)
}

/// The bank and region a list is limited to; None: the caller sees nothing.
fn scope_filter(scope: &CardScope) -> Option<(Option<&str>, Option<&str>)> {
    match scope {
        CardScope::All => Some((None, None)),
        CardScope::Bank(b) => Some((Some(b.as_str()), None)),
        CardScope::Region(r) => Some((None, Some(r.as_str()))),
        CardScope::Nothing => None,
    }
}

fn empty_page() -> Response {
    json(StatusCode::OK, &json!({"items": [], "next_cursor": null}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_is_required_and_read_strong_or_weak() {
        let mut h = HeaderMap::new();
        assert_eq!(if_match(&h).unwrap_err().status.as_u16(), 428);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(if_match(&h).unwrap(), 7);
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"8\""));
        assert_eq!(if_match(&h).unwrap(), 8);
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_match(&h).unwrap_err().status.as_u16(), 400);
    }

    #[test]
    fn every_operation_but_issuance_replace_and_pin_reset_has_a_route() {
        let named: Vec<CardOperation> = [
            "hand-over",
            "activate",
            "suspend",
            "lift-suspension",
            "block",
            "report-lost",
            "report-stolen",
            "unblock",
            "close",
        ]
        .iter()
        .filter_map(|n| operation(n).map(|(op, _)| op))
        .collect();
        assert_eq!(named.len(), 9);
        assert_eq!(operation("personalise"), None);
        assert_eq!(operation("Activate"), None);
    }

    #[test]
    fn a_citizen_id_is_shown_masked() {
        assert_eq!(
            citizen_id_masked("41010219900307001X"),
            "410102********001X"
        );
    }

    #[test]
    fn a_reason_is_required_where_asked_and_bounded() {
        assert!(reason_of(None, true).is_err());
        assert!(reason_of(Some("  ".into()), true).is_err());
        assert_eq!(reason_of(None, false).unwrap(), "");
        assert!(reason_of(Some("x".repeat(REASON_LEN_MAX_CHARS + 1)), false).is_err());
        assert_eq!(reason_of(Some(" lost ".into()), true).unwrap(), "lost");
    }
}
