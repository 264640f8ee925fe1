//! Settlement files per institution per closed window: a CSV statement, an ISO 20022
//! camt.053.001.08 statement, and the medical-insurance reconciliation view (totals and detail,
//! in the spirit of the national medical-insurance platform's 3201 totals and 3202 detail).
//!
//! Their layouts are documented in `docs/settlement-files.md`. The files exist only for closed
//! windows: a window that is still open has no end, no window digest and no settlement yet, and
//! a statement a bank imports must not change after it was sent. [`render`] and the statement
//! builders refuse an open window with [`ClearingError::WindowOpen`]; live figures are the
//! ledger's positions.
//!
//! The CSV's first eight columns are the canonical posting form of `window` (joined with `|`),
//! so an institution recomputes its digest from its own statement and compares it with the
//! digest in the header (see `window` for the canonical form).

mod camt053;
mod csv;
mod medical;

pub use camt053::statement_camt053;
pub use csv::{statement_csv, verify_statement_csv};
pub use medical::{medical_reconciliation, MedicalDetail, MedicalReconciliation, MedicalTotals};

use crate::error::{add_fen, ClearingError, Result};
use crate::ledger::Ledger;
use crate::window::{self, PostingRecord, WindowSummary};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// Report formats of `clearing report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// CSV statement.
    Csv,
    /// ISO 20022 camt.053.001.08 statement.
    Camt053,
    /// Medical-insurance reconciliation (CSV, totals then detail).
    Medical,
}

impl std::str::FromStr for ReportFormat {
    type Err = ClearingError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "csv" => Ok(ReportFormat::Csv),
            "camt053" => Ok(ReportFormat::Camt053),
            "medical" => Ok(ReportFormat::Medical),
            other => Err(ClearingError::Config(format!(
                "report format {other:?}: use csv, camt053 or medical"
            ))),
        }
    }
}

/// Renders a settlement file of a closed window ([`ClearingError::WindowOpen`] for the open
/// one, [`ClearingError::WindowNotFound`] for one that does not exist).
pub async fn render(
    ledger: &Ledger,
    institution: &str,
    window_id: i64,
    format: ReportFormat,
) -> Result<String> {
    let summary = window::window_summary(ledger, window_id).await?;
    ClosedWindow::of(&summary)?;
    match format {
        ReportFormat::Csv => {
            let postings = window::window_postings(ledger, window_id, Some(institution)).await?;
            statement_csv(institution, &summary, &postings)
        }
        ReportFormat::Camt053 => {
            let postings = window::window_postings(ledger, window_id, Some(institution)).await?;
            statement_camt053(institution, &summary, &postings)
        }
        ReportFormat::Medical => {
            let all = window::window_postings(ledger, window_id, None).await?;
            medical_reconciliation(institution, window_id, &all)?.to_csv()
        }
    }
}

/// What every statement needs of its window, present only once the window is closed.
struct ClosedWindow {
    window_id: i64,
    opened_at_us: i64,
    closed_at_us: i64,
    digest: [u8; 32],
}

impl ClosedWindow {
    fn of(w: &WindowSummary) -> Result<Self> {
        match (w.closed, w.closed_at_us, w.digest) {
            (true, Some(closed_at_us), Some(digest)) => Ok(ClosedWindow {
                window_id: w.window_id,
                opened_at_us: w.opened_at_us,
                closed_at_us,
                digest,
            }),
            _ => Err(ClearingError::WindowOpen(w.window_id)),
        }
    }
}

/// An institution's figures in a set of postings, each posting counted once per side it is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SideTotals {
    /// Postings where it pays.
    debit_count: i64,
    /// What it pays, fen.
    debits_fen: i64,
    /// Postings where it receives.
    credit_count: i64,
    /// What it receives, fen.
    credits_fen: i64,
}

impl SideTotals {
    fn of(institution: &str, postings: &[PostingRecord]) -> Result<Self> {
        let mut t = SideTotals::default();
        for p in postings {
            if p.debit_institution == institution {
                t.debit_count = add_fen(t.debit_count, 1, "statement debit count")?;
                t.debits_fen = add_fen(t.debits_fen, p.amount_fen, "statement debits")?;
            }
            if p.credit_institution == institution {
                t.credit_count = add_fen(t.credit_count, 1, "statement credit count")?;
                t.credits_fen = add_fen(t.credits_fen, p.amount_fen, "statement credits")?;
            }
        }
        Ok(t)
    }

    /// Credits − debits: what the network owes the institution for these postings.
    fn net_fen(&self) -> Result<i64> {
        self.credits_fen
            .checked_sub(self.debits_fen)
            .ok_or(ClearingError::Overflow("statement net"))
    }
}

/// The postings in canonical order (event id, leg), whatever order they were given in.
fn canonical_order(postings: &[PostingRecord]) -> Vec<&PostingRecord> {
    let mut sorted: Vec<&PostingRecord> = postings.iter().collect();
    sorted.sort_by_key(|p| (p.event_id, p.leg_no));
    sorted
}

fn yuan(fen: i64) -> Decimal {
    Decimal::new(fen, 2)
}

/// RFC 3339 UTC with seconds (`2026-12-07T05:47:01Z`), as ISO 20022's ISODateTime allows.
fn time(us: i64) -> Result<String> {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .ok_or_else(|| ClearingError::Report(format!("time {us} µs is out of range")))
}

#[cfg(test)]
mod tests;
