//! Reconciliation with banks: a bank's ISO 8583 0500 reconciliation totals compared with the
//! ledger, answered with a 0510 (ISO 8583:1987 §4.3.8 reconciliation messages).
//!
//! Field use (ssc87, schemas/iso8583/ssc87.md): 74/75 credits and credit reversals (count),
//! 76/77 debits and debit reversals (count), 86–89 the matching amounts in fen, 97 the net
//! settlement amount (`C` the sender is owed, `D` it owes), 15 the settlement date, 99 the
//! settlement institution (else 32), and in the answer 66 the settlement code: 1 in balance,
//! 2 out of balance, 3 error.
//!
//! From the bank's side of the ledger in a window: its debits are the postings it pays
//! (purchases, bill-split bank legs), its credits those it receives (refunds, benefit credits);
//! a reversal posting counts as a reversal of the opposite side. Counts are events, amounts fen.

use crate::error::ClearingError;
use crate::ledger::Ledger;
use crate::window::{self, PostingRecord};
use schemas::iso8583::{Message, OwnedMessage};
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
    /// Building the answer failed.
    #[error("building the 0510: {0}")]
    Codec(String),
}

/// The reconciliation totals of ISO 8583 fields 74–77, 86–89 and 97.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconciliationTotals {
    /// Field 74.
    pub credits_count: u64,
    /// Field 75.
    pub credit_reversals_count: u64,
    /// Field 76.
    pub debits_count: u64,
    /// Field 77.
    pub debit_reversals_count: u64,
    /// Field 86, fen.
    pub credits_fen: i64,
    /// Field 87, fen.
    pub credit_reversals_fen: i64,
    /// Field 88, fen.
    pub debits_fen: i64,
    /// Field 89, fen.
    pub debit_reversals_fen: i64,
    /// Field 97, fen: positive, the sender is owed (`C`); negative, it owes (`D`).
    pub net_fen: i64,
}

/// Reads the totals of a 0500; `Err(field)` names the first field missing or malformed.
pub fn totals_from_0500(msg: &Message<'_>) -> Result<ReconciliationTotals, u16> {
    let count = |id: u16| msg.get_u64(id).map_err(|_| id);
    let fen = |id: u16| {
        msg.get_u64(id)
            .map_err(|_| id)
            .and_then(|v| i64::try_from(v).map_err(|_| id))
    };
    let net = msg.get_str(97).map_err(|_| 97u16)?;
    let (sign, digits) = net.split_at(net.len().min(1));
    let magnitude: i64 = digits.parse().map_err(|_| 97u16)?;
    let net_fen = match sign {
        "C" => magnitude,
        "D" => -magnitude,
        _ => return Err(97),
    };
    Ok(ReconciliationTotals {
        credits_count: count(74)?,
        credit_reversals_count: count(75)?,
        debits_count: count(76)?,
        debit_reversals_count: count(77)?,
        credits_fen: fen(86)?,
        credit_reversals_fen: fen(87)?,
        debits_fen: fen(88)?,
        debit_reversals_fen: fen(89)?,
        net_fen,
    })
}

/// The ledger's totals for `institution` over a window's postings.
pub fn ledger_totals(institution: &str, postings: &[PostingRecord]) -> ReconciliationTotals {
    let mut t = ReconciliationTotals::default();
    let mut seen: [HashSet<uuid::Uuid>; 4] = Default::default();
    for p in postings {
        let reversal = p.event_type == "reversal";
        let sides = [
            (p.credit_institution == institution, !reversal, 0), // credit
            (p.debit_institution == institution, reversal, 1),   // credit reversal
            (p.debit_institution == institution, !reversal, 2),  // debit
            (p.credit_institution == institution, reversal, 3),  // debit reversal
        ];
        for (ours, applies, slot) in sides {
            if !(ours && applies) {
                continue;
            }
            let first = seen[slot].insert(p.event_id);
            let (count, fen) = match slot {
                0 => (&mut t.credits_count, &mut t.credits_fen),
                1 => (&mut t.credit_reversals_count, &mut t.credit_reversals_fen),
                2 => (&mut t.debits_count, &mut t.debits_fen),
                _ => (&mut t.debit_reversals_count, &mut t.debit_reversals_fen),
            };
            *count += u64::from(first);
            *fen += p.amount_fen;
        }
    }
    t.net_fen = t.credits_fen - t.credit_reversals_fen - t.debits_fen + t.debit_reversals_fen;
    t
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// ISO 8583 field number.
    pub field: u16,
    /// What the field counts.
    pub name: &'static str,
    /// The bank's figure.
    pub bank: i64,
    /// The ledger's figure.
    pub ledger: i64,
}

/// The outcome of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationReport {
    /// The bank.
    pub institution: String,
    /// The window compared.
    pub window_id: i64,
    /// The bank's totals (None when its 0500 was malformed).
    pub bank: Option<ReconciliationTotals>,
    /// The ledger's totals.
    pub ledger: ReconciliationTotals,
    /// Fields that differ.
    pub mismatches: Vec<Mismatch>,
    /// Settlement code answered in field 66.
    pub settlement_code: u8,
}

/// Field-by-field comparison.
pub fn compare(bank: &ReconciliationTotals, ledger: &ReconciliationTotals) -> Vec<Mismatch> {
    let c = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    [
        (
            74,
            "credits, number",
            c(bank.credits_count),
            c(ledger.credits_count),
        ),
        (
            75,
            "credits, reversal number",
            c(bank.credit_reversals_count),
            c(ledger.credit_reversals_count),
        ),
        (
            76,
            "debits, number",
            c(bank.debits_count),
            c(ledger.debits_count),
        ),
        (
            77,
            "debits, reversal number",
            c(bank.debit_reversals_count),
            c(ledger.debit_reversals_count),
        ),
        (86, "credits, amount", bank.credits_fen, ledger.credits_fen),
        (
            87,
            "credits, reversal amount",
            bank.credit_reversals_fen,
            ledger.credit_reversals_fen,
        ),
        (88, "debits, amount", bank.debits_fen, ledger.debits_fen),
        (
            89,
            "debits, reversal amount",
            bank.debit_reversals_fen,
            ledger.debit_reversals_fen,
        ),
        (97, "amount, net settlement", bank.net_fen, ledger.net_fen),
    ]
    .into_iter()
    .filter(|(_, _, b, l)| b != l)
    .map(|(field, name, bank, ledger)| Mismatch {
        field,
        name,
        bank,
        ledger,
    })
    .collect()
}

/// Answers a bank's 0500 for `window_id`: a 0510 with field 39 and field 66 (1 in balance, 2 out
/// of balance, 3 error: a malformed 0500, also answered with 39 = 30, format error), and the
/// mismatch report. The switch calls this from its reconciliation handler.
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
    let ours = ledger_totals(&institution, &postings);
    let (bank, mismatches, code, rc) = match totals_from_0500(request) {
        Ok(bank) if !institution.is_empty() => {
            let m = compare(&bank, &ours);
            let code = if m.is_empty() { 1 } else { 2 };
            (Some(bank), m, code, "00")
        }
        _ => (None, Vec::new(), 3, "30"),
    };
    let mut response = request
        .to_response()
        .map_err(|e| ReconError::Codec(e.to_string()))?;
    response
        .set_str(39, rc)
        .and_then(|r| r.set_u64(66, u64::from(code)))
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
