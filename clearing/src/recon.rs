//! Reconciliation with banks: a bank's ISO 8583 0500 reconciliation totals compared with the
//! ledger, answered with a 0510 (ISO 8583:1987 §4.3.8 reconciliation messages).
//!
//! The field layout (74-77 counts, 86-89 amounts in fen, 97 the net with its `C`/`D` sign, 66
//! the settlement code) is [`schemas::iso8583::ReconciliationTotals`] and its companions, the
//! one definition the switch and its bank simulator use too (schemas/iso8583/ssc87.md). Here: 15
//! is the settlement date, 99 the settlement institution (else 32), and the answer's 66 is 1 in
//! balance, 2 out of balance, 3 error.
//!
//! From the bank's side of the ledger in a window: its debits are the postings it pays
//! (purchases, bill-split bank legs), its credits those it receives (refunds, benefit credits);
//! a reversal posting counts as a reversal of the opposite side. Counts are events, amounts fen.
//! Totals add with checked arithmetic: a window whose totals overflow their fields is an error
//! ([`ReconError::Totals`]), never a wrapped figure.
//!
//! The comparison itself is not here: the ledger's figures and the bank's are compared by
//! [`ReconciliationFigures::differences`], the one comparison the switch's bank cut-over and
//! acquirer reconciliation use too (schemas/iso8583/ssc87.md, "Bank cut-over"). What this module
//! adds is the ledger's side: which postings of a window count on which line.

use crate::error::ClearingError;
use crate::ledger::Ledger;
use crate::window::{self, PostingRecord};
use schemas::domain::AmountFen;
use schemas::iso8583::{
    FigureDifference, Message, OwnedMessage, ReconciliationError, ReconciliationFigures,
    ReconciliationTotals, SettlementCode, TotalsLine,
};
use std::collections::HashSet;

/// Why a 0500 could not be reconciled at all.
#[derive(Debug, thiserror::Error)]
pub enum ReconError {
    /// Not a 0500.
    #[error("expected MTI 0500, got {0}")]
    NotReconciliation(String),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] ClearingError),
    /// The ledger's totals do not fit their fields (or 64 bits).
    #[error("ledger totals: {0}")]
    Totals(#[from] ReconciliationError),
    /// Building the answer failed.
    #[error("building the 0510: {0}")]
    Codec(String),
}

/// The line and side of one posting, from `institution`'s point of view.
fn lines_of(institution: &str, p: &PostingRecord) -> [(TotalsLine, bool); 4] {
    let reversal = p.event_type == "reversal";
    let credited = p.credit_institution == institution;
    let debited = p.debit_institution == institution;
    [
        (TotalsLine::Credits, credited && !reversal),
        (TotalsLine::CreditReversals, debited && reversal),
        (TotalsLine::Debits, debited && !reversal),
        (TotalsLine::DebitReversals, credited && reversal),
    ]
}

/// The ledger's totals for `institution` over a window's postings: each event counted once per
/// line, every leg's amount added.
pub fn ledger_totals(
    institution: &str,
    postings: &[PostingRecord],
) -> Result<ReconciliationTotals, ReconError> {
    let mut t = ReconciliationTotals::default();
    let mut seen: [HashSet<uuid::Uuid>; 4] = Default::default();
    for p in postings {
        let amount = AmountFen::new(p.amount_fen).map_err(|_| {
            ClearingError::Invariant(format!("posting of event {} is negative", p.event_id))
        })?;
        for (slot, (line, applies)) in lines_of(institution, p).into_iter().enumerate() {
            if applies {
                let first = seen[slot].insert(p.event_id);
                t.add(line, u64::from(first), amount)?;
            }
        }
    }
    Ok(t)
}

/// The outcome of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationReport {
    /// The bank.
    pub institution: String,
    /// The window compared.
    pub window_id: i64,
    /// The bank's figures as its 0500 states them (None when its 0500 was malformed).
    pub bank: Option<ReconciliationFigures>,
    /// The ledger's totals and their net.
    pub ledger: ReconciliationFigures,
    /// The figures that differ: `ours` the ledger's, `theirs` the bank's.
    pub mismatches: Vec<FigureDifference>,
    /// Settlement code answered in field 66.
    pub settlement_code: SettlementCode,
}

/// Answers a bank's 0500 for `window_id`: a 0510 with field 39 and field 66 (1 in balance, 2 out
/// of balance, 3 error: a malformed 0500, also answered with 39 = 30, format error), and the
/// mismatch report. The switch's bank cut-over does not call this (it reconciles its own store's
/// figures, with the same comparison; schemas/iso8583/ssc87.md, "Bank cut-over").
pub async fn reconcile_0500<'s>(
    ledger: &Ledger,
    request: &Message<'s>,
    window_id: i64,
) -> Result<(OwnedMessage<'s>, ReconciliationReport), ReconError> {
    if request.mti().as_str() != "0500" {
        return Err(ReconError::NotReconciliation(
            request.mti().as_str().to_owned(),
        ));
    }
    let institution = request
        .get_str(99)
        .or_else(|_| request.get_str(32))
        .map(|s| s.into_owned())
        .unwrap_or_default();
    let postings = window::window_postings(ledger, window_id, Some(&institution)).await?;
    let ours = ReconciliationFigures::of(ledger_totals(&institution, &postings)?)?;
    let (bank, mismatches, code, rc) = match ReconciliationFigures::from_message(request) {
        Ok(bank) if !institution.is_empty() => {
            let m = ours.differences(&bank);
            let code = if m.is_empty() {
                SettlementCode::InBalance
            } else {
                SettlementCode::OutOfBalance
            };
            (Some(bank), m, code, "00")
        }
        _ => (None, Vec::new(), SettlementCode::Error, "30"),
    };
    let mut response = request
        .to_response()
        .map_err(|e| ReconError::Codec(e.to_string()))?;
    response
        .set_str(39, rc)
        .map_err(|e| ReconError::Codec(e.to_string()))?;
    code.to_message(&mut response)
        .map_err(|e| ReconError::Codec(e.to_string()))?;
    Ok((
        response,
        ReconciliationReport {
            institution,
            window_id,
            bank,
            ledger: ours,
            mismatches,
            settlement_code: code,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(event: u128, debit: &str, credit: &str, amount_fen: i64) -> PostingRecord {
        PostingRecord {
            event_id: uuid::Uuid::from_u128(event),
            leg_no: 1,
            event_type: "purchase".into(),
            leg_kind: "bank".into(),
            debit_institution: debit.into(),
            debit_account: "bank_settlement".into(),
            credit_institution: credit.into(),
            credit_account: "merchant".into(),
            amount_fen,
            posted_at_us: 0,
        }
    }

    #[test]
    fn a_banks_debits_are_the_postings_it_pays_and_each_event_counts_once() {
        let mut reversal = posting(3, "HOSP", "BANK", 400);
        reversal.event_type = "reversal".into();
        let postings = [
            posting(1, "BANK", "HOSP", 1_000),
            posting(1, "BANK", "HOSP", 500),
            posting(2, "HOSP", "BANK", 250),
            reversal,
        ];
        let t = ledger_totals("BANK", &postings).unwrap();
        assert_eq!((t.debits.count, t.debits.amount.get()), (1, 1_500));
        assert_eq!((t.credits.count, t.credits.amount.get()), (1, 250));
        assert_eq!(
            (t.debit_reversals.count, t.debit_reversals.amount.get()),
            (1, 400)
        );
        assert_eq!(t.net().unwrap().fen(), 250 - 1_500 + 400);
    }

    #[test]
    fn totals_that_overflow_are_an_error_not_a_wrap_or_a_panic() {
        let postings = [
            posting(1, "BANK", "HOSP", i64::MAX / 2 + 1),
            posting(2, "BANK", "HOSP", i64::MAX / 2 + 1),
        ];
        assert!(matches!(
            ledger_totals("BANK", &postings),
            Err(ReconError::Totals(ReconciliationError::Overflow {
                field: 88
            }))
        ));
    }
}
