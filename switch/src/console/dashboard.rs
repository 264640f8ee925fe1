//! The live dashboard: transactions per second, the response-code mix, latency percentiles,
//! the bank links and their store-and-forward backlog, each institution's net position and
//! clearing's lag ([`super::dashboard_clearing`]), as numbers and small inline SVG charts.
//! The page renders a snapshot (what a browser without JavaScript sees); a few lines of
//! JavaScript replace it with each server-sent event (`GET /console/dashboard/events`, one a
//! second), each event being the same panel rendered again.
//!
//! Who sees what: the switch's counters ([`crate::metrics`]) need `metrics.read`; the backlog
//! comes from `GET /saf` (its handler, so its `saf.read` and its scope: a bank sees the queues
//! bound for it); positions from `GET /clearing/positions` (`clearing.read`, a bank its own
//! line). An event stream ends after [`STREAM_TICKS`] events and the browser
//! reconnects, so each reconnection authenticates the session again (a logged-out or expired
//! session stops getting figures) and no stream outlives the HTTP face's stall timeout.
//!
//! Transactions per second come from samples of the response counter, kept per node (the
//! node's [`crate::metrics::Metrics`]) for [`HISTORY_SECS`] seconds and shared by every viewer.

use super::dashboard_clearing::{ClearingTiles, BAR_HEIGHT};
use super::i18n::Tr;
use super::layout::{error_page, Page};
use super::names::Names;
use super::{call, html};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::metrics::Metrics;
use crate::operator::{Caller, Permission};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Events one stream sends before it ends (and the browser reconnects).
pub const STREAM_TICKS: u32 = 10;
/// Seconds of transactions-per-second history the chart shows.
pub const HISTORY_SECS: usize = 60;
const TICK: Duration = Duration::from_secs(1);

/// The dashboard routes.
pub fn routes<S: CmsStore>() -> Router<Arc<HttpState<S>>> {
    Router::new()
        .route("/console/dashboard", get(page::<S>))
        .route("/console/dashboard/events", get(events::<S>))
}

/// Samples of one node's response counter.
#[derive(Debug, Default)]
struct Sampler {
    samples: VecDeque<(Instant, u64)>,
}

impl Sampler {
    /// Adds a sample (at most one a second) and returns the per-second rates, oldest first.
    fn observe(&mut self, now: Instant, total: u64) -> Vec<f64> {
        let due = self
            .samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= Duration::from_millis(900));
        if due {
            self.samples.push_back((now, total));
            while self.samples.len() > HISTORY_SECS + 1 {
                self.samples.pop_front();
            }
        }
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|((t0, n0), (t1, n1))| {
                let secs = t1.duration_since(*t0).as_secs_f64().max(0.001);
                n1.saturating_sub(*n0) as f64 / secs
            })
            .collect()
    }
}

/// The samplers of every node in this process, by the address of its metrics.
fn rates(metrics: &Arc<Metrics>) -> Vec<f64> {
    static SAMPLERS: OnceLock<Mutex<HashMap<usize, Sampler>>> = OnceLock::new();
    let key = Arc::as_ptr(metrics) as usize;
    let total = metrics.responses_total();
    SAMPLERS
        .get_or_init(Default::default)
        .lock()
        .map(|mut m| m.entry(key).or_default().observe(Instant::now(), total))
        .unwrap_or_default()
}

/// A bank's line: (bank, link up (None: unknown), pending, held, its name).
pub type BankLine = (String, Option<bool>, u64, u64, String);

/// One rendering of the live panel.
#[derive(Template)]
#[template(path = "console/dashboard_panel.html")]
pub struct Panel {
    /// Strings.
    pub tr: Tr,
    /// Whether the caller sees the switch's counters.
    pub metrics: bool,
    /// Whether the caller sees the store-and-forward backlog.
    pub saf: bool,
    /// Transactions per second now (one decimal).
    pub tps: String,
    /// Responses since the node started.
    pub total: u64,
    /// The TPS chart's polyline points (`x,y x,y`), 300 × 60.
    pub tps_points: String,
    /// The chart's top, in transactions per second.
    pub tps_max: String,
    /// Response codes: (code, count, share in percent, bar width of 300).
    pub codes: Vec<(String, u64, String, u64)>,
    /// Latency percentiles: (label, milliseconds, bar width of 300).
    pub latency: Vec<(&'static str, String, u64)>,
    /// Banks.
    pub banks: Vec<BankLine>,
    /// Net positions and clearing's lag.
    pub clearing: ClearingTiles,
}

impl Panel {
    /// The panel as `caller` may see it now.
    async fn now<S: CmsStore>(st: &Arc<HttpState<S>>, caller: &Caller, tr: Tr) -> Self {
        let names = Names::load(&*st.store).await;
        let metrics = caller.permissions.contains(Permission::ViewMetrics);
        let saf = caller.permissions.contains(Permission::ViewSaf);
        let mut p = Panel {
            tr,
            metrics,
            saf,
            tps: "—".into(),
            total: 0,
            tps_points: String::new(),
            tps_max: "0".into(),
            codes: Vec::new(),
            latency: Vec::new(),
            banks: Vec::new(),
            clearing: ClearingTiles::now(st, caller, tr, &names).await,
        };
        if metrics {
            p.fill_metrics(&st.metrics);
            if let Some(links) = &st.links {
                let mut banks: Vec<_> = links.banks().cloned().collect();
                banks.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                p.banks = banks
                    .iter()
                    .map(|b| {
                        let id = b.as_str();
                        (
                            id.to_owned(),
                            Some(links.is_up(b)),
                            0,
                            0,
                            names.name(tr, id),
                        )
                    })
                    .collect();
            }
        }
        if saf {
            let backlog = call(
                crate::http::store_and_forward(
                    State(Arc::clone(st)),
                    caller.clone(),
                    RawQuery(Some("limit=0".into())),
                )
                .await,
            )
            .await;
            for q in backlog.body["queues"].as_array().into_iter().flatten() {
                let bank = q["bank"].as_str().unwrap_or("").to_owned();
                let (pending, held) = (
                    q["pending"].as_u64().unwrap_or(0),
                    q["held"].as_u64().unwrap_or(0),
                );
                match p.banks.iter_mut().find(|b| b.0 == bank) {
                    Some(line) => {
                        line.2 += pending;
                        line.3 += held;
                    }
                    None => {
                        let name = names.name(tr, &bank);
                        p.banks.push((bank, None, pending, held, name));
                    }
                }
            }
        }
        p
    }

    fn fill_metrics(&mut self, m: &Arc<Metrics>) {
        let series = rates(m);
        if let Some(last) = series.last() {
            self.tps = format!("{last:.1}");
        }
        let top = series.iter().copied().fold(1.0_f64, f64::max).ceil();
        self.tps_max = format!("{top:.0}");
        let n = series.len().max(2) - 1;
        self.tps_points = series
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = (i as f64) * 300.0 / n as f64;
                let y = 58.0 - (v / top) * 56.0;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
        for ((_, code), n) in m.responses() {
            *by_code.entry(code).or_default() += n;
        }
        self.total = by_code.values().sum();
        let most = by_code.values().copied().max().unwrap_or(1).max(1);
        let mut codes: Vec<_> = by_code.into_iter().collect();
        codes.sort_by_key(|c| std::cmp::Reverse(c.1));
        self.codes = codes
            .into_iter()
            .take(8)
            .map(|(code, n)| {
                let share = n as f64 * 100.0 / self.total.max(1) as f64;
                (code, n, format!("{share:.1}"), n * 300 / most)
            })
            .collect();
        let quantiles = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)];
        let values: Vec<Option<u64>> = quantiles
            .iter()
            .map(|(_, q)| m.latency.quantile_us(*q))
            .collect();
        let top = values.iter().flatten().copied().max().unwrap_or(1).max(1);
        self.latency = quantiles
            .iter()
            .zip(values)
            .map(|((label, _), v)| match v {
                Some(us) => (
                    *label,
                    format!("≤ {:.2}", us as f64 / 1000.0),
                    us * 300 / top,
                ),
                None => (*label, "—".to_owned(), 0),
            })
            .collect();
    }

    /// Height of the positions chart, px.
    pub fn bars_height(&self) -> usize {
        self.clearing.bars.len() * BAR_HEIGHT + 2
    }

    /// The panel's HTML on one line (an event's data).
    fn one_line(&self) -> String {
        self.render().unwrap_or_default().replace(['\r', '\n'], " ")
    }
}

/// The dashboard page.
#[derive(Template)]
#[template(path = "console/dashboard.html")]
pub struct DashboardPage {
    /// Frame.
    pub page: Page,
    /// The panel, rendered.
    pub panel: String,
}

fn allowed(caller: &Caller) -> bool {
    caller.permissions.contains(Permission::ViewMetrics)
        || caller.permissions.contains(Permission::ViewSaf)
        || caller.permissions.contains(Permission::ViewClearing)
}

/// `GET /console/dashboard`.
pub async fn page<S: CmsStore>(State(st): State<Arc<HttpState<S>>>, page: Page) -> Response {
    let page = page.in_section("dashboard");
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    if !allowed(&caller) {
        return error_page(page, StatusCode::FORBIDDEN, "metrics.read".into());
    }
    let panel = Panel::now(&st, &caller, page.tr).await.one_line();
    html(&DashboardPage { page, panel })
}

/// `GET /console/dashboard/events`: the panel once a second, [`STREAM_TICKS`] times.
pub async fn events<S: CmsStore>(State(st): State<Arc<HttpState<S>>>, page: Page) -> Response {
    let Some(caller) = page.who() else {
        return super::to_login();
    };
    if !allowed(&caller) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let tr = page.tr;
    let stream = futures_util::stream::unfold(0u32, move |tick| {
        let (st, caller) = (Arc::clone(&st), caller.clone());
        async move {
            if tick >= STREAM_TICKS {
                return None;
            }
            if tick > 0 {
                tokio::time::sleep(TICK).await;
            }
            let html = Panel::now(&st, &caller, tr).await.one_line();
            let event = Event::default().data(html).retry(TICK);
            Some((Ok::<_, Infallible>(event), tick + 1))
        }
    });
    Sse::new(stream).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_deltas_of_the_counter() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        assert!(s.observe(t0, 0).is_empty());
        assert!(s.observe(t0 + Duration::from_millis(100), 5).is_empty());
        let r = s.observe(t0 + Duration::from_secs(1), 10);
        assert_eq!(r.len(), 1);
        assert!((r[0] - 10.0).abs() < 1e-9);
        for i in 2..200u64 {
            s.observe(t0 + Duration::from_secs(i), 10 * i);
        }
        assert_eq!(s.samples.len(), HISTORY_SECS + 1);
    }
}
