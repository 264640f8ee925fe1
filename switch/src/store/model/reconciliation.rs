//! The switch's reconciliation totals per acquirer, the figures of a 0510.

use super::TransactionKind;

/// Reconciliation totals (ISO 8583:1987 fields 74-77 counts and 86-89 amounts, fen), by the
/// cardholder side of the transaction: purchases and bill payments are debits, refunds and
/// benefit credits are credits, a reversal counts against the side of its original. The switch
/// keeps them per acquirer ([`crate::store::Store::acquirer_totals`]); a bank keeps its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconciliationTotals {
    /// Fields 74 / 86.
    pub credits: (u64, i64),
    /// Fields 75 / 87.
    pub credit_reversals: (u64, i64),
    /// Fields 76 / 88.
    pub debits: (u64, i64),
    /// Fields 77 / 89.
    pub debit_reversals: (u64, i64),
}

impl ReconciliationTotals {
    /// Adds `count` approved decisions of `kind` worth `fen` (for a reversal, `original` is
    /// the kind it reversed). Kinds that move no cardholder money at the acquirer
    /// (pre-authorization holds, their release, balance inquiries) count nowhere.
    pub fn add(
        &mut self,
        kind: TransactionKind,
        original: Option<TransactionKind>,
        count: u64,
        fen: i64,
    ) {
        let slot = match (kind, original.map(cardholder_side)) {
            (TransactionKind::Reversal, Some(Some(Side::Debit))) => &mut self.debit_reversals,
            (TransactionKind::Reversal, Some(Some(Side::Credit))) => &mut self.credit_reversals,
            (k, _) => match cardholder_side(k) {
                Some(Side::Debit) => &mut self.debits,
                Some(Side::Credit) => &mut self.credits,
                None => return,
            },
        };
        slot.0 += count;
        slot.1 += fen;
    }

    /// Field 97: credits − credit reversals − debits + debit reversals (positive: the
    /// acquirer's cardholders were credited on balance).
    pub fn net_fen(&self) -> i64 {
        self.credits.1 - self.credit_reversals.1 - self.debits.1 + self.debit_reversals.1
    }
}

#[derive(Clone, Copy)]
enum Side {
    Debit,
    Credit,
}

/// Which side of the cardholder's account a kind of transaction moves (ISO 8583:1987
/// processing codes 00/19 debit, 20/21 credit).
fn cardholder_side(kind: TransactionKind) -> Option<Side> {
    match kind {
        TransactionKind::Purchase
        | TransactionKind::MedicalBillSplit
        | TransactionKind::Completion => Some(Side::Debit),
        TransactionKind::Refund | TransactionKind::BenefitCredit => Some(Side::Credit),
        TransactionKind::Preauthorization
        | TransactionKind::HoldRelease
        | TransactionKind::BalanceInquiry
        | TransactionKind::Reversal => None,
    }
}
