//! Which line of the reconciliation totals a stored transaction counts on.
//!
//! Why this exists: the totals themselves (fields 74-77, 86-89 and 97 of a 0510) are one wire
//! fact, defined once in [`schemas::iso8583::ReconciliationTotals`]; what the store adds is the
//! mapping from its kinds of transaction to the cardholder side they move, used when it sums an
//! acquirer's day ([`crate::store::Store::acquirer_totals`]).

use schemas::iso8583::TotalsLine;

use super::TransactionKind;

/// The line of the totals on which approved decisions of `kind` count (for a reversal,
/// `original` is the kind it reversed): purchases and bill payments are debits, refunds and
/// benefit credits are credits, a reversal counts against the side of its original. Kinds that
/// move no cardholder money at the acquirer (pre-authorization holds, their release, balance
/// inquiries) count nowhere: `None`.
pub fn totals_line(kind: TransactionKind, original: Option<TransactionKind>) -> Option<TotalsLine> {
    match (kind, original.map(cardholder_side)) {
        (TransactionKind::Reversal, Some(Some(Side::Debit))) => Some(TotalsLine::DebitReversals),
        (TransactionKind::Reversal, Some(Some(Side::Credit))) => Some(TotalsLine::CreditReversals),
        (k, _) => match cardholder_side(k)? {
            Side::Debit => Some(TotalsLine::Debits),
            Side::Credit => Some(TotalsLine::Credits),
        },
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
