//! The switch's small HTTP face (axum): liveness, readiness, Prometheus metrics and a
//! transaction lookup by RRN for operators and kiosks' help desks.
//!
//! Errors are RFC 9457 problem documents (`application/problem+json`). PANs appear masked
//! only (first six, last four), as stored.

use crate::metrics::Metrics;
use crate::store::writer::WriterHandle;
use crate::store::{Store, StoredTransaction};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
    pub links: Option<Arc<crate::link::issuer::IssuerLinks>>,
}

/// Per-bank counters of the issuer links (label `bank`), in the Prometheus text format: what
/// an operator watches to see a bank go down, time out, or send answers that fail their MAC.
pub fn render_links(out: &mut String, links: &crate::link::issuer::IssuerLinks) {
    use crate::link::issuer::LinkState;
    use std::fmt::Write as _;
    let mut banks: Vec<_> = links
        .banks()
        .filter_map(|b| links.stats(b).map(|s| (b.clone(), s)))
        .collect();
    banks.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    type Pick = fn(&crate::link::issuer::LinkStats) -> u64;
    let series: [(&str, &str, &str, Pick); 9] = [
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

/// The router.
pub fn router<S: Store>(state: Arc<HttpState<S>>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/transactions/{rrn}", get(transaction_by_rrn::<S>))
        .with_state(state)
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

async fn metrics<S: Store>(State(st): State<Arc<HttpState<S>>>) -> Response {
    let depth = st.writer.queue_depth() as u64;
    let stats = st.writer.stats();
    let text = st.metrics.render(&[
        (
            "switch_writer_queue_depth",
            "Decisions waiting for the group-commit writer.",
            depth,
        ),
        (
            "switch_writer_batches",
            "Group commits so far.",
            stats.batches,
        ),
        (
            "switch_writer_decisions",
            "Decisions committed or refused by the writer so far.",
            stats.decisions,
        ),
    ]);
    let mut text = text;
    if let Some(links) = &st.links {
        render_links(&mut text, links);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

fn yuan(fen: i64) -> String {
    Decimal::new(fen, 2).to_string()
}

fn transaction_json(t: &StoredTransaction) -> serde_json::Value {
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

async fn transaction_by_rrn<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    Path(rrn): Path<String>,
) -> Response {
    let Ok(rrn) = Rrn::parse(&rrn) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid RRN",
            "a retrieval reference number is 12 alphanumeric characters (ISO 8583 field 37)",
        );
    };
    match st.store.transactions_by_rrn(&rrn).await {
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
