//! The switch's small HTTP face (axum): liveness, readiness, Prometheus metrics, a
//! transaction lookup by RRN for operators and kiosks' help desks, and the store-and-forward
//! backlog (`GET /saf`): reversals and advices a bank has not acknowledged yet, and the
//! reversals held back behind a pending advice, which otherwise wait without a sign.
//!
//! Errors are RFC 9457 problem documents (`application/problem+json`). PANs appear masked
//! only (first six, last four), as stored.
//!
//! Every route but `/health`, `/ready` (probes, no data) and `POST /session` (login) needs a
//! caller ([`crate::operator::Caller`]: a session or an API key) holding the route's
//! permission, and shows only what the caller's institution sees ([`crate::operator::Scope`]).
//! The operator API's own routes are [`crate::operator::routes`].

use crate::cms::CmsStore;
use crate::metrics::{Metrics, SeriesKind};
use crate::operator::routes::{
    api_keys, audit_log, clearing, cms, reconciliations, role_changes, roles, session,
    transactions, users,
};
use crate::operator::{Caller, OperatorContext, Permission};
use crate::store::writer::WriterHandle;
use crate::store::{SafBacklog, Store, StoredTransaction};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use rust_decimal::Decimal;
use schemas::domain::Rrn;
use serde_json::json;
use std::sync::Arc;

/// What the handlers need.
pub struct HttpState<S: Store> {
    /// The store (lookups, readiness).
    pub store: Arc<S>,
    /// The writer (queue depth for /metrics).
    pub writer: WriterHandle,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The issuer links, for their per-bank counters (none on a node without banks).
    pub links: Option<Arc<crate::issuer::IssuerLinks>>,
    /// The operator API's keys and session policy.
    pub operator: Arc<OperatorContext>,
    /// The card management system (None: a node without `[cms]`; its routes answer 503).
    pub cms: Option<Arc<crate::operator::routes::cms::CmsFace<S>>>,
    /// Settlement windows, positions and statements (None: a node without `[clearing_api]`;
    /// the `/clearing/...` routes answer 503).
    pub clearing: Option<Arc<dyn crate::clearing_link::SettlementSource>>,
    /// The bank cut-over (None: `POST /cutover` answers 503).
    pub cutover: Option<Arc<dyn crate::issuer::cutover::RunCutover>>,
}

/// Per-bank counters of the issuer links (label `bank`), in the Prometheus text format: what
/// an operator watches to see a bank go down, time out, or send answers that fail their MAC.
pub fn render_links(out: &mut String, links: &crate::issuer::IssuerLinks) {
    use crate::issuer::LinkState;
    use std::fmt::Write as _;
    let mut banks: Vec<_> = links
        .banks()
        .filter_map(|b| links.stats(b).map(|s| (b.clone(), s)))
        .collect();
    banks.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    type Pick = fn(&crate::issuer::LinkStats) -> u64;
    let series: [(&str, &str, &str, Pick); 10] = [
        (
            "switch_bank_link_up",
            "gauge",
            "1 when the link is signed on.",
            |s| u64::from(s.state == LinkState::SignedOn),
        ),
        (
            "switch_bank_link_connections_total",
            "counter",
            "TCP connections made.",
            |s| s.connections,
        ),
        (
            "switch_bank_link_key_exchanges_total",
            "counter",
            "Key exchanges approved.",
            |s| s.key_exchanges,
        ),
        (
            "switch_bank_link_mac_failures_total",
            "counter",
            "Answers dropped for a missing or wrong MAC.",
            |s| s.mac_failures,
        ),
        (
            "switch_bank_link_mac_algorithm_mismatches_total",
            "counter",
            "Sign-ons and key exchanges refused: the bank said another MAC algorithm.",
            |s| s.mac_algorithm_mismatches,
        ),
        (
            "switch_bank_link_undecodable_total",
            "counter",
            "Messages from the bank that could not be decoded.",
            |s| s.undecodable,
        ),
        (
            "switch_bank_link_in_flight",
            "gauge",
            "Requests waiting for the bank.",
            |s| s.mux.in_flight,
        ),
        (
            "switch_bank_link_timeouts_total",
            "counter",
            "Requests the bank did not answer in time.",
            |s| s.mux.timeouts,
        ),
        (
            "switch_bank_link_late_total",
            "counter",
            "Answers that came after their request gave up.",
            |s| s.mux.late,
        ),
        (
            "switch_bank_link_unmatched_total",
            "counter",
            "Answers matching no request.",
            |s| s.mux.unmatched,
        ),
    ];
    for (name, kind, help, pick) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (bank, stats) in &banks {
            let _ = writeln!(out, "{name}{{bank=\"{}\"}} {}", bank.as_str(), pick(stats));
        }
    }
}

/// The store-and-forward backlog per queue and bank (labels `kind`, `bank`), in the
/// Prometheus text format: what an operator alerts on when a bank stops acknowledging
/// reversals or advices, or a reversal waits behind an advice.
pub fn render_saf(out: &mut String, backlog: &SafBacklog, now_us: i64) {
    use std::fmt::Write as _;
    type Pick = fn(&crate::store::SafQueue, i64) -> String;
    let series: [(&str, &str, Pick); 4] = [
        (
            "switch_saf_pending",
            "Store-and-forward messages not yet acknowledged by the bank.",
            |q, _| q.pending.to_string(),
        ),
        (
            "switch_saf_held",
            "Reversals held back until the advice of their original is acknowledged.",
            |q, _| q.held.to_string(),
        ),
        (
            "switch_saf_oldest_age_seconds",
            "Age of the oldest unacknowledged message.",
            |q, now| seconds(now - q.oldest_created_at_us),
        ),
        (
            "switch_saf_attempts_max",
            "Most attempts made for one unacknowledged message.",
            |q, _| q.attempts_max.to_string(),
        ),
    ];
    for (name, help, pick) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for q in &backlog.queues {
            let _ = writeln!(
                out,
                "{name}{{kind=\"{}\",bank=\"{}\"}} {}",
                q.kind.as_str(),
                q.destination.as_str(),
                pick(q, now_us)
            );
        }
    }
}

/// Whether the store-and-forward backlog could be read for this scrape: without it, a scrape
/// whose `switch_saf_*` series have no samples could mean "nothing pending" as well as "the
/// store did not answer", and an alert on the backlog would stay silent while it grows.
pub fn render_saf_readable(out: &mut String, readable: bool) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP switch_saf_backlog_readable 1 when the store-and-forward backlog was read for this scrape, 0 when the store could not read it (the switch_saf_* series then have no samples).\n# TYPE switch_saf_backlog_readable gauge\nswitch_saf_backlog_readable {}",
        u8::from(readable)
    );
}

/// Microseconds as seconds with millisecond precision, never negative.
fn seconds(us: i64) -> String {
    Decimal::new(us.max(0) / 1_000, 3).to_string()
}

/// The router. What no handler serves is answered with a problem document too: a path the API
/// does not have gets 404, another method than GET or HEAD gets 405 (axum keeps its `Allow`
/// header). The 405 fallback applies to the routes registered before it, so it comes last.
pub fn router<S: CmsStore>(state: Arc<HttpState<S>>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/transactions", get(transactions::search::<S>))
        .route("/transactions/{rrn}", get(transaction_by_rrn::<S>))
        .route("/saf", get(store_and_forward::<S>))
        .route(
            "/session",
            post(session::login::<S>).delete(session::logout::<S>),
        )
        .route("/session/password", post(session::change_password::<S>))
        .route("/me", get(session::me::<S>))
        .route("/users", get(users::list::<S>).post(users::create::<S>))
        .route("/users/{id}/roles", post(users::propose_roles::<S>))
        .route("/role-changes", get(role_changes::open::<S>))
        .route(
            "/role-changes/{id}/approve",
            post(users::approve_role_change::<S>),
        )
        .route("/role-changes/{id}/reject", post(role_changes::reject::<S>))
        .route("/roles", get(roles::list::<S>).post(roles::create::<S>))
        .route("/audit", get(audit_log::list::<S>))
        .route(
            "/api-keys",
            get(api_keys::list::<S>).post(api_keys::issue::<S>),
        )
        .route("/api-keys/{id}", delete(api_keys::revoke::<S>))
        .route(
            "/application-batches",
            post(cms::import_batch::<S>).layer(DefaultBodyLimit::max(cms::BATCH_LEN_MAX_BYTES)),
        )
        .route("/import-jobs/{id}", get(cms::import_job::<S>))
        .route("/import-jobs/{id}/errors", get(cms::import_errors::<S>))
        .route("/applications", get(cms::applications::<S>))
        .route("/applications/{id}", get(cms::application::<S>))
        .route("/applications/{id}/photo", put(cms::put_photo::<S>))
        .route("/applications/{id}/issue", post(cms::issue::<S>))
        .route(
            "/perso-files",
            get(cms::perso_files::<S>).post(cms::close_perso_file::<S>),
        )
        .route("/perso-files/{id}", get(cms::perso_file::<S>))
        .route("/cards", get(cms::cards::<S>))
        .route("/cards/{id}", get(cms::card::<S>))
        .route("/cards/{id}/replace", post(cms::replace::<S>))
        .route("/cards/{id}/pin-reset", post(cms::pin_reset::<S>))
        .route(
            "/cards/{id}/ssse-pin-unblock",
            post(cms::ssse_pin_unblock::<S>),
        )
        .route("/cards/{id}/records/ef06", post(cms::ef06_record::<S>))
        .route("/cards/{id}/{operation}", post(cms::card_operation::<S>))
        .route("/clearing/windows", get(clearing::windows::<S>))
        .route("/clearing/windows/close", post(clearing::close_window::<S>))
        .route("/clearing/windows/{id}", get(clearing::window::<S>))
        .route(
            "/clearing/windows/{id}/reports/{institution}",
            get(clearing::statement::<S>),
        )
        .route("/clearing/positions", get(clearing::positions::<S>))
        // The bank cut-over (issue 29).
        .route("/reconciliations", get(reconciliations::list::<S>))
        .route(
            "/reconciliations/{id}/resolve",
            post(reconciliations::resolve::<S>),
        )
        .route("/cutover", post(reconciliations::run::<S>))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not Found",
        "the API has no such path",
    )
}

async fn method_not_allowed() -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        "this path does not take this method (see the Allow header)",
    )
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready<S: Store>(State(st): State<Arc<HttpState<S>>>) -> Response {
    match st.store.institutions().await {
        Ok(_) if !st.writer.is_closed() => (StatusCode::OK, "ready\n").into_response(),
        Ok(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready",
            "the decision writer has stopped",
        ),
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready",
            "the store is unreachable",
        ),
    }
}

/// The content type of the Prometheus text exposition format 0.0.4 as Prometheus documents
/// it: the format is UTF-8, and the header says so, as those of `/health` and `/ready` do.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics<S: Store>(State(st): State<Arc<HttpState<S>>>, caller: Caller) -> Response {
    if let Err(p) = caller.require(Permission::ViewMetrics) {
        return p.into_response();
    }
    let depth = st.writer.queue_depth() as u64;
    let stats = st.writer.stats();
    let text = st.metrics.render(&[
        (
            "switch_writer_queue_depth",
            "Decisions waiting for the group-commit writer.",
            SeriesKind::Gauge,
            depth,
        ),
        (
            "switch_writer_batches_total",
            "Group commits.",
            SeriesKind::Counter,
            stats.batches,
        ),
        (
            "switch_writer_decisions_total",
            "Decisions committed or refused by the writer.",
            SeriesKind::Counter,
            stats.decisions,
        ),
    ]);
    let mut text = text;
    if let Some(links) = &st.links {
        render_links(&mut text, links);
    }
    let readable = match st.store.store_and_forward_backlog(0).await {
        Ok(backlog) => {
            render_saf(&mut text, &backlog, crate::store::now_us());
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "store-and-forward backlog unreadable for /metrics");
            false
        }
    };
    render_saf_readable(&mut text, readable);
    match st.store.reconciliation_counts().await {
        Ok(counts) => crate::issuer::cutover::render_metrics(&mut text, &counts),
        Err(e) => tracing::warn!(error = %e, "bank reconciliations unreadable for /metrics"),
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

fn yuan(fen: i64) -> String {
    Decimal::new(fen, 2).to_string()
}

/// A transaction as the API shows it (PAN masked, amounts in yuan and fen, its legs).
pub fn transaction_json(t: &StoredTransaction) -> serde_json::Value {
    let r = &t.record;
    json!({
        "transaction_id": r.transaction_id.0.to_string(),
        "kind": r.kind.as_sql(),
        "mti": r.mti,
        "processing_code": r.processing_code,
        "pan": r.pan_masked,
        "acquirer": r.acquirer.as_str(),
        "issuer": r.issuer.as_ref().map(|i| i.as_str().to_owned()),
        "terminal_id": r.terminal_id.as_str(),
        "stan": format!("{:06}", r.stan.value()),
        "rrn": r.rrn.as_str(),
        "amount": yuan(r.amount_fen.get()),
        "amount_fen": r.amount_fen.get(),
        "currency": "CNY",
        "response_code": r.response_code.as_str(),
        "approved": r.is_approved(),
        "original_transaction_id": r.original_transaction_id.map(|o| o.0.to_string()),
        "event_id": t.event_id.map(|e| e.to_string()),
        "decided_at_us": r.decided_at_us,
        "legs": t.legs.iter().map(|l| json!({
            "leg_no": l.leg_no,
            "kind": crate::store::leg_kind_sql(l.kind),
            "institution": l.institution.as_str(),
            "amount": yuan(l.amount_fen.get()),
            "amount_fen": l.amount_fen.get(),
        })).collect::<Vec<_>>(),
    })
}

/// Most messages `GET /saf` lists.
pub const SAF_LIST_MAX: u32 = 500;

/// Messages `GET /saf` lists without a `limit`.
pub const SAF_LIST_DEFAULT: u32 = 20;

/// Why a `GET /saf` query is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SafQueryError {
    /// A parameter other than `limit`.
    UnknownParameter,
    /// `limit` more than once.
    RepeatedParameter,
    /// A `limit` that is not a whole number from 0 to [`SAF_LIST_MAX`].
    InvalidLimit,
}

impl SafQueryError {
    fn problem(self) -> Response {
        let (title, detail) = match self {
            SafQueryError::UnknownParameter => (
                "Unknown parameter",
                "the only parameter is limit".to_owned(),
            ),
            SafQueryError::RepeatedParameter => {
                ("Repeated parameter", "give limit at most once".to_owned())
            }
            SafQueryError::InvalidLimit => (
                "Invalid limit",
                format!("limit is a whole number from 0 to {SAF_LIST_MAX}"),
            ),
        };
        problem(StatusCode::BAD_REQUEST, title, &detail)
    }
}

/// The `limit` of `GET /saf`'s query. The query is `application/x-www-form-urlencoded`: names
/// and values are percent-decoded (`limit=%35` is 5) and `+` is a space. `limit` is the only
/// parameter and comes at most once: with a repeat the caller could not know which one counts.
/// Its value is decimal digits only, 0 to [`SAF_LIST_MAX`]: no sign, no space, not empty
/// (`?limit` alone is an empty value).
fn saf_limit(query: Option<&str>) -> Result<u32, SafQueryError> {
    let mut limit = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name != "limit" {
            return Err(SafQueryError::UnknownParameter);
        }
        if limit.is_some() {
            return Err(SafQueryError::RepeatedParameter);
        }
        let n = Some(&*value)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| *n <= SAF_LIST_MAX)
            .ok_or(SafQueryError::InvalidLimit)?;
        limit = Some(n);
    }
    Ok(limit.unwrap_or(SAF_LIST_DEFAULT))
}

/// `GET /saf[?limit=N]`: per queue and bank, what waits for an acknowledgement, and the `N`
/// oldest messages (default [`SAF_LIST_DEFAULT`], at most [`SAF_LIST_MAX`]; see [`saf_limit`]).
/// No card data: messages are named by id and transaction id, which `/transactions/{rrn}` and
/// the audit log lead back to.
pub async fn store_and_forward<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(p) = caller.require(Permission::ViewSaf) {
        return p.into_response();
    }
    let limit = match saf_limit(query.as_deref()) {
        Ok(n) => n,
        Err(e) => return e.problem(),
    };
    let backlog = match st.store.store_and_forward_backlog(limit).await {
        Ok(mut b) => {
            // A bank sees what waits for it; the switch sees every queue.
            let scope = caller.scope();
            b.queues.retain(|q| scope.sees(&q.destination));
            b.oldest.retain(|i| scope.sees(&i.destination));
            b
        }
        Err(e) => {
            tracing::error!(error = %e, "store-and-forward backlog unreadable");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Store unavailable",
                "try again",
            );
        }
    };
    let now = crate::store::now_us();
    let mut body = json!({
        "as_of_us": now,
        "queues": backlog.queues.iter().map(|q| json!({
            "kind": q.kind.as_str(),
            "bank": q.destination.as_str(),
            "pending": q.pending,
            "held": q.held,
            "oldest_age_seconds": seconds(now - q.oldest_created_at_us),
            "attempts_max": q.attempts_max,
        })).collect::<Vec<_>>(),
        "oldest": backlog.oldest.iter().map(|i| json!({
            "kind": i.kind.as_str(),
            "id": i.id.to_string(),
            "transaction_id": i.transaction_id.0.to_string(),
            "bank": i.destination.as_str(),
            "amount": yuan(i.amount_fen),
            "amount_fen": i.amount_fen,
            "currency": "CNY",
            "attempts": i.attempts,
            "last_response_code": i.last_response_code,
            "held": i.held,
            "age_seconds": seconds(now - i.created_at_us),
            "next_attempt_at_us": i.next_attempt_at_us,
        })).collect::<Vec<_>>(),
    });
    if caller.scope() == crate::operator::scope::Scope::All {
        // The node's own spool (declines whose 0420 wait for the store), all banks together:
        // shown to the switch's institution only.
        body["reversals_spooled"] = json!(st
            .metrics
            .reversals_spooled
            .load(std::sync::atomic::Ordering::Relaxed));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /transactions/{rrn}`. The path segment is taken with its rejection, so a segment that
/// is not UTF-8 once percent-decoded (`%FF`) gets the same problem document as any other
/// segment that is not an RRN, not axum's plain-text 400. `rrn` is the route's only
/// parameter, so a rejection can only be about it.
async fn transaction_by_rrn<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    rrn: Result<Path<String>, PathRejection>,
) -> Response {
    if let Err(p) = caller.require(Permission::ViewTransactions) {
        return p.into_response();
    }
    let Some(rrn) = rrn.ok().and_then(|Path(rrn)| Rrn::parse(&rrn).ok()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid RRN",
            "a retrieval reference number is 12 alphanumeric characters (ISO 8583 field 37)",
        );
    };
    let scope = caller.scope();
    let visible = st.store.transactions_by_rrn(&rrn).await.map(|mut list| {
        // Another institution's transactions do not exist for this caller.
        list.retain(|t| scope.sees_transaction(t));
        list
    });
    match visible {
        Ok(list) if list.is_empty() => problem(
            StatusCode::NOT_FOUND,
            "No such transaction",
            "no transaction carries this RRN",
        ),
        Ok(list) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "rrn": rrn.as_str(), "transactions": list.iter().map(transaction_json).collect::<Vec<_>>() })
                .to_string(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "lookup by RRN failed");
            problem(StatusCode::SERVICE_UNAVAILABLE, "Store unavailable", "try again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saf_query_is_form_decoded_and_strict() {
        use SafQueryError::*;
        for (query, expected) in [
            (None, Ok(SAF_LIST_DEFAULT)),
            (Some(""), Ok(SAF_LIST_DEFAULT)),
            (Some("&"), Ok(SAF_LIST_DEFAULT)),
            (Some("limit=5"), Ok(5)),
            (Some("limit=%35"), Ok(5)),
            (Some("%6Cimit=5"), Ok(5)),
            (Some("limit=0"), Ok(0)),
            (Some("limit=007"), Ok(7)),
            (Some("limit=500"), Ok(500)),
            (Some("&limit=3&"), Ok(3)),
            (Some("limit=+5"), Err(InvalidLimit)),
            (Some("limit=%2B5"), Err(InvalidLimit)),
            (Some("limit=-1"), Err(InvalidLimit)),
            (Some("limit=x"), Err(InvalidLimit)),
            (Some("limit="), Err(InvalidLimit)),
            (Some("limit"), Err(InvalidLimit)),
            (Some("limit=5%20"), Err(InvalidLimit)),
            (Some("limit=501"), Err(InvalidLimit)),
            (Some("limit=4294967296"), Err(InvalidLimit)),
            (Some("limit=%FF"), Err(InvalidLimit)),
            (Some("limit=1&limit=2"), Err(RepeatedParameter)),
            (Some("limit=1&limit=1"), Err(RepeatedParameter)),
            (Some("since=1"), Err(UnknownParameter)),
            (Some("limit=1&since=1"), Err(UnknownParameter)),
            (Some("=5"), Err(UnknownParameter)),
            (Some("Limit=5"), Err(UnknownParameter)),
        ] {
            assert_eq!(saf_limit(query), expected, "{query:?}");
        }
    }
}
