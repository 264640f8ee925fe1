//! Counters and latency histograms of the switch, rendered in the Prometheus text format for
//! `/metrics` and summarised for the demo's live screen.
//!
//! Why our own: a handful of counters and one histogram per service do not justify a metrics
//! framework; these are lock-free on the hot path except the per-code map, which is touched
//! once per response.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (µs) of the latency buckets.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    250, 500, 1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 20_000, 50_000, 100_000, 250_000,
    1_000_000, 5_000_000,
];

/// A cumulative latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe_us(&self, us: u64) {
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The bucket bound under which `q` (0..1) of the observations fall, in µs.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let target = ((n as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= target {
                return Some(LATENCY_BUCKETS_US[i]);
            }
        }
        None
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS_US[i] as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count());
        let plain = labels.trim_end_matches(',');
        let braces = if plain.is_empty() {
            String::new()
        } else {
            format!("{{{plain}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {}", self.count());
    }
}

/// The Prometheus type of a series [`Metrics::render`] is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    /// Only ever increases (until a restart); its name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl SeriesKind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesKind::Counter => "counter",
            SeriesKind::Gauge => "gauge",
        }
    }
}

/// Everything the switch counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by (service, response code).
    responses: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// End-to-end latency of authorizations (request decoded → response encoded).
    pub latency: Histogram,
    /// Time a decision spends with the group-commit writer (queue + commit), the part of
    /// `latency` that durability costs.
    pub commit_wait: Histogram,
    /// Time a bank leg spends on its issuer link (sent → answered or timed out).
    pub bank_leg: Histogram,
    /// Frames that could not be decoded (answered 30 or connection closed).
    pub malformed: AtomicU64,
    /// Acquirer connections accepted.
    pub connections_accepted: AtomicU64,
    /// Acquirer connections open now.
    pub connections_open: AtomicU64,
    /// Decisions approved by stand-in while a bank was unreachable.
    pub stand_in_approvals: AtomicU64,
    /// Reversals queued for banks.
    pub reversals_queued: AtomicU64,
    /// Stand-in advices (0220) queued for banks, committed with their approvals.
    pub advices_queued: AtomicU64,
    /// Stand-in advices the banks acknowledged (0230).
    pub advices_acknowledged: AtomicU64,
    /// Holds released at expiry.
    pub holds_released: AtomicU64,
    /// Declines with a reversal waiting in the node's local spool for the store to take them
    /// (`store::spool`): above zero while the database is away or just back.
    pub reversals_spooled: AtomicU64,
    /// Bank legs found sent but undecided at start (the node had stopped between a 0200 and
    /// its decision), each declined and reversed unless the store holds its decision.
    pub bank_legs_recovered: AtomicU64,
}

impl Metrics {
    /// Counts one response.
    pub fn count_response(&self, service: &'static str, code: &str) {
        if let Ok(mut m) = self.responses.lock() {
            *m.entry((service, code.to_owned())).or_insert(0) += 1;
        }
    }

    /// Responses by (service, code).
    pub fn responses(&self) -> BTreeMap<(&'static str, String), u64> {
        self.responses.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// All responses so far.
    pub fn responses_total(&self) -> u64 {
        self.responses().values().sum()
    }

    /// Prometheus text exposition (version 0.0.4), with `extra` series kept elsewhere (name,
    /// help, type, value), such as the writer's.
    pub fn render(&self, extra: &[(&str, &str, SeriesKind, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP switch_responses_total Responses sent, by service and ISO 8583 response code.\n");
        out.push_str("# TYPE switch_responses_total counter\n");
        for ((service, code), n) in self.responses() {
            let _ = writeln!(
                out,
                "switch_responses_total{{service=\"{service}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP switch_authorization_seconds Time from request decoded to response ready.\n",
        );
        out.push_str("# TYPE switch_authorization_seconds histogram\n");
        self.latency
            .render(&mut out, "switch_authorization_seconds", "");
        out.push_str("# HELP switch_commit_wait_seconds Time a decision waits for its group commit (queue + commit).\n");
        out.push_str("# TYPE switch_commit_wait_seconds histogram\n");
        self.commit_wait
            .render(&mut out, "switch_commit_wait_seconds", "");
        out.push_str("# HELP switch_bank_leg_seconds Time a bank leg spends on its issuer link.\n");
        out.push_str("# TYPE switch_bank_leg_seconds histogram\n");
        self.bank_leg
            .render(&mut out, "switch_bank_leg_seconds", "");
        let counters = [
            (
                "switch_malformed_frames_total",
                "Frames that could not be decoded.",
                &self.malformed,
            ),
            (
                "switch_connections_accepted_total",
                "Acquirer connections accepted.",
                &self.connections_accepted,
            ),
            (
                "switch_stand_in_approvals_total",
                "Approvals given in stand-in for an unreachable bank.",
                &self.stand_in_approvals,
            ),
            (
                "switch_reversals_queued_total",
                "Reversals queued store-and-forward for banks.",
                &self.reversals_queued,
            ),
            (
                "switch_advices_queued_total",
                "Stand-in advices queued store-and-forward for banks.",
                &self.advices_queued,
            ),
            (
                "switch_advices_acknowledged_total",
                "Stand-in advices acknowledged by banks.",
                &self.advices_acknowledged,
            ),
            (
                "switch_holds_released_total",
                "Authorization holds released at expiry.",
                &self.holds_released,
            ),
            (
                "switch_bank_legs_recovered_total",
                "Bank legs found sent but undecided at start, reversed unless their decision was stored.",
                &self.bank_legs_recovered,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP switch_connections_open Acquirer connections open.\n# TYPE switch_connections_open gauge\nswitch_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP switch_reversals_spooled Reversals waiting in the node's local spool for the store (kept there while the database is away).\n# TYPE switch_reversals_spooled gauge\nswitch_reversals_spooled {}",
            self.reversals_spooled.load(Ordering::Relaxed)
        );
        for (name, help, kind, v) in extra {
            let kind = kind.as_str();
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets_and_render_is_prometheus_text() {
        let m = Metrics::default();
        for us in [100, 400, 900, 900, 4_000] {
            m.latency.observe_us(us);
        }
        assert_eq!(m.latency.quantile_us(0.5), Some(1_000));
        assert_eq!(m.latency.quantile_us(0.99), Some(5_000));
        m.count_response("medical_bill", "00");
        m.count_response("medical_bill", "00");
        m.count_response("medical_bill", "51");
        m.advices_queued.fetch_add(2, Ordering::Relaxed);
        m.advices_acknowledged.fetch_add(1, Ordering::Relaxed);
        let text = m.render(&[
            (
                "switch_writer_queue_depth",
                "Writer queue.",
                SeriesKind::Gauge,
                3,
            ),
            (
                "switch_writer_batches_total",
                "Group commits.",
                SeriesKind::Counter,
                7,
            ),
        ]);
        assert!(text.contains("switch_advices_queued_total 2"));
        assert!(text.contains("switch_advices_acknowledged_total 1"));
        assert!(text.contains("switch_responses_total{service=\"medical_bill\",code=\"00\"} 2"));
        assert!(text.contains("switch_authorization_seconds_bucket{le=\"+Inf\"} 5"));
        assert!(text.contains("switch_authorization_seconds_count 5"));
        assert!(
            text.contains("# TYPE switch_writer_queue_depth gauge\nswitch_writer_queue_depth 3\n")
        );
        assert!(text.contains(
            "# TYPE switch_writer_batches_total counter\nswitch_writer_batches_total 7\n"
        ));
        assert_eq!(m.responses_total(), 3);
    }
}
