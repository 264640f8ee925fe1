//! The demo's live screen: every two seconds one line of figures (rate, answers by response
//! code, latency, the writer's queue, reversals and advices queued and acknowledged, banks
//! signed on, and the in-process clearing's progress), until Ctrl-C or the demo's duration.

use crate::node::Node;
use crate::store::Store;
use clearing::embedded::EmbeddedClearing;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::sim::world::INSURANCE_FUND_ID;

/// Time between two status lines.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

/// Prints a status line every [`STATUS_INTERVAL`] until Ctrl-C or SIGTERM or, when `duration` is set, the
/// first line printed after it has passed.
pub(super) async fn report_until_stopped<S: Store>(
    node: &Node<S>,
    clearing: Option<&EmbeddedClearing>,
    duration: Option<Duration>,
    stop: crate::node::signal::StopSignal,
) {
    let started = Instant::now();
    let mut last = (0u64, Instant::now());
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    // One waiter for the whole run, so a signal between two ticks is not missed.
    let stop = stop.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
        let total = node.metrics.responses_total();
        let rate = (total - last.0) as f64 / last.1.elapsed().as_secs_f64().max(0.001);
        last = (total, Instant::now());
        let clearing = clearing_figures(clearing).await;
        println!("{}", status_line(node, started, rate, total, &clearing));
        if duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
}

/// The node's figures on one line.
fn status_line<S: Store>(
    node: &Node<S>,
    started: Instant,
    rate: f64,
    total: u64,
    clearing: &str,
) -> String {
    let metrics = &node.metrics;
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, code), n) in metrics.responses() {
        *by_code.entry(code).or_default() += n;
    }
    let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{c}:{n}")).collect();
    let forwarded = node.forwarder.totals();
    format!(
        "[{:>5.0}s] {:>6.0} tps  total {:>7}  codes {}  p50 {}µs p99 {}µs  writer queue {}  reversals queued {} acked {}  advices queued {} acked {}  banks up {}/{}  {}",
        started.elapsed().as_secs_f64(),
        rate,
        total,
        codes.join(" "),
        metrics.latency.quantile_us(0.5).unwrap_or(0),
        metrics.latency.quantile_us(0.99).unwrap_or(0),
        node.writer.queue_depth(),
        metrics.reversals_queued.load(Ordering::Relaxed),
        forwarded.reversals_acknowledged,
        metrics.advices_queued.load(Ordering::Relaxed),
        forwarded.advices_acknowledged,
        node.banks_up(),
        node.links.banks().count(),
        clearing,
    )
}

/// The clearing's part of the line: events applied, lag, the insurance fund's net position, and
/// events lost on the bus when there are any (the lag does not show those: the ledger's offset
/// moved past them with the gap recorded).
async fn clearing_figures(clearing: Option<&EmbeddedClearing>) -> String {
    let Some(clearing) = clearing else {
        return "clearing: off".to_owned();
    };
    match (clearing.stats().await, clearing.positions().await) {
        (Ok(st), Ok(pos)) => {
            let fund = pos.net_fen(INSURANCE_FUND_ID);
            let lost = if st.offset_gaps > 0 {
                format!(
                    ", OFFSET GAPS {} ({} events never delivered)",
                    st.offset_gaps, st.offsets_missing
                )
            } else {
                String::new()
            };
            format!(
                "clearing: {} events applied, lag {}, fund net {:.2} CNY, sum {}{lost}",
                st.events_applied,
                st.lag_events,
                rust_decimal::Decimal::new(fund, 2),
                pos.sum_fen()
            )
        }
        _ => "clearing: unavailable".to_owned(),
    }
}
