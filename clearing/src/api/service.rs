//! What the settlement API answers, as functions of the ledger and the viewer: the axum
//! handlers of [`super::server`] call them, and so does `switch demo`'s in-process settlement
//! source, so the figures and the scoping are the same whether the switch reaches clearing over
//! mutual TLS or in its own process.
//!
//! Scoping ([`Viewer`]): the clearing centre sees every institution; a bank sees its own
//! position line, the instructions it pays or receives, and its own statements, and not the
//! network's totals; any other institution sees no window (not found). Closing a window is the
//! centre's alone.

use super::ApiError;
use crate::db::{now_us, Db};
use crate::error::add_fen;
use crate::ledger::{read, Ledger};
use crate::report::{self, ReportFormat};
use crate::window::{self, WindowSummary};
use crate::ClearingError;
use schemas::settlement_api::{
    CloseWindow, Instruction, NetPosition, OpenPositions, StatementFormat, Viewer, WindowDetail,
    WindowItem, WindowPage, WindowState, REASON_LEN_MAX_CHARS, WINDOW_PAGE_MAX,
};

/// Who asks: the operator (audit name), its institution and what it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// `user:<uuid>` or `api_key:<id>`.
    pub operator_id: String,
    /// Its institution.
    pub institution: String,
    /// What its institution sees.
    pub viewer: Viewer,
}

type WindowRow = (
    i64,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<Vec<u8>>,
);

fn item_of(row: WindowRow, viewer: &Viewer) -> WindowItem {
    let (window_id, state, opened_at_us, closed_at_us, count, total, digest) = row;
    let centre = *viewer == Viewer::Centre;
    WindowItem {
        window_id,
        state: if state == "closed" {
            WindowState::Closed
        } else {
            WindowState::Open
        },
        opened_at_us,
        closed_at_us,
        posting_count: count.filter(|_| centre),
        posted_total_fen: total.filter(|_| centre),
        digest_sha256: digest.map(hex::encode),
    }
}

/// Windows, newest first: those below `before` (all when None), at most `limit` (1 to
/// [`WINDOW_PAGE_MAX`]). A viewer that sees nothing of settlement gets an empty page.
pub async fn windows(
    ledger: &Ledger,
    who: &Operator,
    before: Option<i64>,
    limit: u32,
) -> Result<WindowPage, ApiError> {
    if !(1..=WINDOW_PAGE_MAX).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit is a whole number from 1 to {WINDOW_PAGE_MAX}"
        )));
    }
    if who.viewer == Viewer::Nothing {
        return Ok(WindowPage {
            items: Vec::new(),
            next_before: None,
        });
    }
    let sql = "SELECT window_id, state, opened_at_us, closed_at_us, posting_count, \
               posted_total_fen, digest FROM settlement_window WHERE window_id < $1 \
               ORDER BY window_id DESC LIMIT $2";
    let before = before.unwrap_or(i64::MAX);
    let rows: Vec<WindowRow> = read!(ledger.db(), |pool| {
        sqlx::query_as(sql)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(ClearingError::from)?
    });
    let full = rows.len() == limit as usize;
    let items: Vec<WindowItem> = rows.into_iter().map(|r| item_of(r, &who.viewer)).collect();
    let next_before = items
        .last()
        .filter(|_| full)
        .map(|w| w.window_id)
        .filter(|id| *id > 1);
    Ok(WindowPage { items, next_before })
}

/// Live positions of window `window_id` from its postings so far (an open window's), by
/// institution, as [`window::close_window`] will compute them.
async fn live_positions(ledger: &Ledger, window_id: i64) -> Result<Vec<NetPosition>, ApiError> {
    // Each posting counted once per side, as the closer counts them (window::Accumulator).
    let mut sums: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for p in window::window_postings(ledger, window_id, None).await? {
        let d = sums.entry(p.debit_institution).or_default();
        d.0 = add_fen(d.0, p.amount_fen, "institution debits")?;
        let c = sums.entry(p.credit_institution).or_default();
        c.1 = add_fen(c.1, p.amount_fen, "institution credits")?;
    }
    let rows = sums.into_iter().map(|(i, (d, c))| (i, d, c));
    rows.map(|(institution_id, debits_fen, credits_fen)| {
        Ok(NetPosition {
            net_fen: credits_fen
                .checked_sub(debits_fen)
                .ok_or(ClearingError::Overflow("institution net"))?,
            institution_id,
            debits_fen,
            credits_fen,
            digest_sha256: None,
        })
    })
    .collect()
}

fn detail_of(w: WindowSummary, live: Option<Vec<NetPosition>>, viewer: &Viewer) -> WindowDetail {
    let positions = live.unwrap_or_else(|| {
        w.net_positions
            .iter()
            .map(|n| NetPosition {
                institution_id: n.institution_id.clone(),
                debits_fen: n.debits_fen,
                credits_fen: n.credits_fen,
                net_fen: n.net_fen,
                digest_sha256: Some(hex::encode(n.digest)),
            })
            .collect()
    });
    let row = (
        w.window_id,
        if w.closed { "closed" } else { "open" }.to_owned(),
        w.opened_at_us,
        w.closed_at_us,
        w.closed.then_some(w.posting_count),
        w.closed.then_some(w.posted_total_fen),
        w.digest.map(|d| d.to_vec()),
    );
    WindowDetail {
        window: item_of(row, viewer),
        positions: positions
            .into_iter()
            .filter(|p| viewer.sees(&p.institution_id))
            .collect(),
        instructions: w
            .instructions
            .into_iter()
            .filter(|i| viewer.sees(&i.payer_id) || viewer.sees(&i.payee_id))
            .map(|i| Instruction {
                instruction_no: i.instruction_no,
                payer_id: i.payer_id,
                payee_id: i.payee_id,
                amount_fen: i.amount_fen,
            })
            .collect(),
    }
}

fn not_found(e: ClearingError) -> ApiError {
    match e {
        ClearingError::WindowNotFound(_) => ApiError::NotFound("settlement window"),
        other => ApiError::Ledger(other),
    }
}

/// A window with the positions and instructions `who` sees (an open window's positions are
/// live). Not found for a viewer that sees nothing of settlement.
pub async fn window(ledger: &Ledger, who: &Operator, id: i64) -> Result<WindowDetail, ApiError> {
    if who.viewer == Viewer::Nothing {
        return Err(ApiError::NotFound("settlement window"));
    }
    let w = window::window_summary(ledger, id)
        .await
        .map_err(not_found)?;
    let live = if w.closed {
        None
    } else {
        Some(live_positions(ledger, id).await?)
    };
    Ok(detail_of(w, live, &who.viewer))
}

/// The open window's positions so far, as `who` sees them.
pub async fn open_positions(ledger: &Ledger, who: &Operator) -> Result<OpenPositions, ApiError> {
    if who.viewer == Viewer::Nothing {
        return Err(ApiError::NotFound("settlement window"));
    }
    let id = window::current_window(ledger).await?;
    let w = window::window_summary(ledger, id).await?;
    let positions = live_positions(ledger, id).await?;
    Ok(OpenPositions {
        window_id: id,
        opened_at_us: w.opened_at_us,
        as_of_us: now_us(),
        positions: positions
            .into_iter()
            .filter(|p| who.viewer.sees(&p.institution_id))
            .collect(),
    })
}

/// Closes the open window for the clearing centre's operator `who`, with the reason; when the
/// request names a window, that one must be the open one. The caller serialises closes (see
/// [`super::server`]); the close itself is one ledger transaction ([`window::close_window`]).
pub async fn close_window(
    ledger: &Ledger,
    who: &Operator,
    request: &CloseWindow,
) -> Result<WindowDetail, ApiError> {
    if who.viewer != Viewer::Centre {
        return Err(ApiError::Forbidden(
            "only the clearing centre closes settlement windows",
        ));
    }
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_LEN_MAX_CHARS {
        return Err(ApiError::Invalid(format!(
            "reason: 1 to {REASON_LEN_MAX_CHARS} characters"
        )));
    }
    let open = window::current_window(ledger).await?;
    if let Some(asked) = request.window_id {
        if asked != open {
            return Err(ApiError::Conflict(format!(
                "window {asked} is not the open window (the open window is {open})"
            )));
        }
    }
    let closed = window::close_window(ledger).await?;
    // The audit trail of clearing: who closed which window and why (the switch keeps its own
    // hash-chained audit entry of the same action).
    tracing::info!(
        target: "clearing::audit",
        action = "window.close",
        window = closed.window_id,
        operator = %who.operator_id,
        institution = %who.institution,
        reason,
        postings = closed.posting_count,
        total_fen = closed.posted_total_fen,
        "settlement window closed"
    );
    Ok(detail_of(closed, None, &who.viewer))
}

/// The statement of `institution` in window `id`: a bank only its own, the centre any; not
/// found otherwise, or when the window does not exist.
pub async fn statement(
    ledger: &Ledger,
    who: &Operator,
    id: i64,
    institution: &str,
    format: StatementFormat,
) -> Result<String, ApiError> {
    if !who.viewer.sees(institution) {
        return Err(ApiError::NotFound("statement"));
    }
    let format = match format {
        StatementFormat::Csv => ReportFormat::Csv,
        StatementFormat::Camt053 => ReportFormat::Camt053,
    };
    report::render(ledger, institution, id, format)
        .await
        .map_err(not_found)
}

/// Whether the ledger answers (readiness).
pub async fn ledger_ready(ledger: &Ledger) -> bool {
    let db: &Db = ledger.db();
    read!(db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(pool)
            .await
            .is_ok()
    })
}
