//! The dashboard's clearing tiles (issue 26): each institution's net position in the open
//! settlement window, and clearing's lag, live with the rest of the panel.
//!
//! - Positions come from `GET /clearing/positions`, the handler the settlement page uses
//!   ([`crate::operator::routes::clearing`], over the node's [`SettlementSource`]), so a bank
//!   sees its own line only and `clearing.read` is checked by the API. A node without a
//!   clearing source says so on its dashboard instead of failing the page. The chart is a
//!   diverging bar per institution (payers left, payees right), drawn as inline SVG on the
//!   server; the sum of the nets is shown beside it (multilateral netting sums to zero).
//! - The lag is the settlement events the switch wrote to its outbox that clearing has not
//!   taken yet, and how long the oldest has waited ([`OutboxLag`]). When the clearing source
//!   says how far its ledger has applied the outbox
//!   ([`SettlementSource::applied_outbox_seq`]: the demo's embedded ledger) the lag is what it
//!   has not applied; otherwise (clearing over the network, whose broker offsets are not
//!   outbox sequences, or no clearing source) it is what the relay has not handed to the bus
//!   yet (`outbox.relayed_at_us`), and the page says which. A chart shows the waiting count
//!   over the last [`super::dashboard::HISTORY_SECS`] seconds.
//!
//! [`SettlementSource`]: crate::clearing_link::SettlementSource

use super::format::{cst_time, yuan};
use super::i18n::Tr;
use super::names::Names;
use super::{call, Answer};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::routes::clearing;
use crate::operator::{Caller, Permission};
use crate::store::operator::OutboxLag;
use crate::store::{now_us, InstitutionKind};
use axum::extract::State;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Width of the positions chart, px.
const CHART_WIDTH: i64 = 300;
/// Height of one institution's bar, px.
pub const BAR_HEIGHT: usize = 18;

/// One institution's bar: name, code, net in yuan, bar x, bar width, class (`ok` receives,
/// `bad` pays).
pub type Bar = (String, String, String, i64, i64, &'static str);

/// The clearing tiles as the caller may see them now.
#[derive(Debug, Clone, Default)]
pub struct ClearingTiles {
    /// Whether the caller sees positions (`clearing.read`).
    pub positions_shown: bool,
    /// Whether it sees every institution's line (the switch's own institution, the clearing
    /// centre), so that their sum means something.
    pub all_lines: bool,
    /// Why there are no positions to show ("" when there are).
    pub note: String,
    /// The open window.
    pub window_id: String,
    /// When clearing read the positions (China Standard Time).
    pub as_of: String,
    /// The bars.
    pub bars: Vec<Bar>,
    /// The nets' sum, yuan ("" for a viewer who sees only its own line: a bank).
    pub net_sum: String,
    /// Whether the caller sees the lag (`metrics.read`, or `clearing.read` at the centre).
    pub lag_shown: bool,
    /// Events waiting ("—" when unknown).
    pub lag_events: String,
    /// What they wait for: the key of its words (`dash.lag_unapplied`, `dash.lag_unrelayed`).
    pub lag_basis: &'static str,
    /// Seconds the oldest has waited, one decimal ("0.0" when none waits).
    pub lag_secs: String,
    /// The waiting count's chart polyline, 300 × 40.
    pub lag_points: String,
    /// The chart's top.
    pub lag_max: u64,
}

impl ClearingTiles {
    /// The tiles for `caller`.
    pub async fn now<S: CmsStore>(
        st: &Arc<HttpState<S>>,
        caller: &Caller,
        tr: Tr,
        names: &Names,
    ) -> Self {
        let all_lines = caller.institution.kind == InstitutionKind::Switch;
        let has = |p| caller.permissions.contains(p);
        let mut t = Self {
            positions_shown: has(Permission::ViewClearing),
            all_lines,
            // The network's backlog is the centre's figure (and the switch's operators'), not
            // a bank's, which sees its own line only.
            lag_shown: has(Permission::ViewMetrics) || (has(Permission::ViewClearing) && all_lines),
            lag_events: "—".into(),
            lag_basis: "dash.lag_unrelayed",
            ..Self::default()
        };
        if t.positions_shown {
            if st.clearing.is_none() {
                t.note = tr.t("dash.no_clearing").to_owned();
            } else {
                let open =
                    call(clearing::positions(State(Arc::clone(st)), caller.clone()).await).await;
                t.fill_positions(&open, names, tr);
            }
        }
        if t.lag_shown {
            let applied = match &st.clearing {
                Some(source) => source.applied_outbox_seq().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "console: clearing's applied sequence not read");
                    None
                }),
                None => None,
            };
            if applied.is_some() {
                t.lag_basis = "dash.lag_unapplied";
            }
            match st.store.outbox_lag(applied).await {
                Ok(lag) => {
                    let node = Arc::as_ptr(&st.store) as usize;
                    t.fill_lag(lag, now_us(), lag_history(node, lag.waiting));
                }
                Err(e) => tracing::warn!(error = %e, "console: the outbox lag not read"),
            }
        }
        t
    }

    fn fill_positions(&mut self, open: &Answer, names: &Names, tr: Tr) {
        if !open.ok() {
            self.note = open.problem_in(tr);
            return;
        }
        self.window_id = open.body["window_id"].to_string();
        self.as_of = open.body["as_of_us"]
            .as_i64()
            .map(cst_time)
            .unwrap_or_default();
        let nets: Vec<(String, i64)> = open.body["positions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["institution_id"].as_str().unwrap_or("").to_owned(),
                    p["net_fen"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        if self.all_lines {
            self.net_sum = yuan(nets.iter().map(|(_, n)| n).sum());
        }
        self.bars = bars(&nets, names, tr);
        if self.bars.is_empty() {
            self.note = tr.t("dash.no_positions").to_owned();
        }
    }

    fn fill_lag(&mut self, lag: OutboxLag, now_us: i64, series: Vec<u64>) {
        self.lag_events = if lag.more {
            format!("> {}", lag.waiting)
        } else {
            lag.waiting.to_string()
        };
        let waited_us = lag
            .oldest_created_at_us
            .map_or(0, |at| now_us.saturating_sub(at).max(0));
        self.lag_secs = format!("{:.1}", waited_us as f64 / 1e6);
        self.lag_max = series.iter().copied().max().unwrap_or(0).max(1);
        let n = series.len().max(2) - 1;
        self.lag_points = series
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = i as u64 * 300 / n as u64;
                let y = 38 - v * 36 / self.lag_max;
                format!("{x},{y}")
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
}

/// The diverging bars: zero in the middle, the largest |net| reaching an edge.
pub fn bars(nets: &[(String, i64)], names: &Names, tr: Tr) -> Vec<Bar> {
    let largest = nets
        .iter()
        .map(|(_, n)| n.unsigned_abs())
        .max()
        .unwrap_or(0)
        .max(1);
    let half = CHART_WIDTH / 2 - 2;
    nets.iter()
        .map(|(id, net)| {
            let width = i64::try_from(net.unsigned_abs().saturating_mul(half as u64) / largest)
                .unwrap_or(half);
            let x = if *net < 0 {
                CHART_WIDTH / 2 - width
            } else {
                CHART_WIDTH / 2
            };
            let class = if *net < 0 { "bad" } else { "ok" };
            (names.name(tr, id), id.clone(), yuan(*net), x, width, class)
        })
        .collect()
}

/// (when, events waiting) of one node, oldest first.
type Samples = VecDeque<(Instant, u64)>;

/// The waiting counts of one node's outbox, one a second at most, for
/// [`super::dashboard::HISTORY_SECS`] seconds, shared by every viewer.
fn lag_history(node: usize, waiting: u64) -> Vec<u64> {
    static HISTORY: OnceLock<Mutex<HashMap<usize, Samples>>> = OnceLock::new();
    let now = Instant::now();
    let Ok(mut all) = HISTORY.get_or_init(Default::default).lock() else {
        return vec![waiting];
    };
    let samples = all.entry(node).or_default();
    let due = samples
        .back()
        .is_none_or(|(at, _)| now.duration_since(*at) >= Duration::from_millis(900));
    if due {
        samples.push_back((now, waiting));
        while samples.len() > super::dashboard::HISTORY_SECS {
            samples.pop_front();
        }
    }
    samples.iter().map(|(_, n)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::i18n::Lang;

    #[test]
    fn a_payer_is_drawn_left_of_zero_a_payee_right_and_the_largest_reaches_the_edge() {
        let names = Names::of_table(&[("01020000", "ICBC", Some("工商银行"))]);
        let nets = [
            ("01020000".to_owned(), -12_300),
            ("4101001".to_owned(), 6_150),
        ];
        let b = bars(&nets, &names, Tr(Lang::Zh));
        assert_eq!(b[0].0, "工商银行");
        assert_eq!(
            (b[0].2.as_str(), b[0].3, b[0].4, b[0].5),
            ("-123.00", 2, 148, "bad")
        );
        assert_eq!((b[1].0.as_str(), b[1].2.as_str()), ("4101001", "61.50"));
        assert_eq!((b[1].3, b[1].4, b[1].5), (150, 74, "ok"));
    }

    #[test]
    fn the_nets_are_summed_only_for_the_centre_which_sees_every_line() {
        let open = Answer {
            status: axum::http::StatusCode::OK,
            headers: axum::http::HeaderMap::new(),
            body: serde_json::json!({"window_id": 3, "as_of_us": 0, "positions": [
                {"institution_id": "4101001", "net_fen": 12_300},
                {"institution_id": "4101009", "net_fen": -12_300},
            ]}),
        };
        let names = Names::default();
        let mut centre = ClearingTiles {
            all_lines: true,
            ..ClearingTiles::default()
        };
        centre.fill_positions(&open, &names, Tr(Lang::Zh));
        assert_eq!((centre.net_sum.as_str(), centre.bars.len()), ("0.00", 2));
        assert_eq!(centre.window_id, "3");
        let mut bank = ClearingTiles::default();
        bank.fill_positions(&open, &names, Tr(Lang::Zh));
        assert_eq!(bank.net_sum, "", "a bank's own line sums to nothing");
    }

    #[test]
    fn the_lag_is_the_waiting_events_and_the_oldest_ones_wait() {
        let mut t = ClearingTiles::default();
        let lag = OutboxLag {
            waiting: 4,
            more: false,
            oldest_created_at_us: Some(1_000_000),
        };
        t.fill_lag(lag, 3_500_000, vec![0, 2, 4]);
        assert_eq!((t.lag_events.as_str(), t.lag_secs.as_str()), ("4", "2.5"));
        assert_eq!(t.lag_points, "0,38 150,20 300,2");
        t.fill_lag(OutboxLag::default(), 3_500_000, vec![0]);
        assert_eq!((t.lag_events.as_str(), t.lag_secs.as_str()), ("0", "0.0"));
        let many = OutboxLag {
            waiting: 100_000,
            more: true,
            oldest_created_at_us: Some(0),
        };
        t.fill_lag(many, 3_500_000, vec![100_000]);
        assert_eq!(t.lag_events, "> 100000");
    }
}
