//! What the store keeps for the bank cut-over (issue 29, [`crate::issuer::cutover`]): the
//! switch's totals of each bank's legs over a settlement day, and one reconciliation record per
//! bank and day: claimed before its 0500 goes out, finished with the bank's 0510 (in balance, or
//! out of balance with both sets of figures and the fields that differ), and, when out of
//! balance, an exception until an operator resolves it.
//!
//! "Never twice for the same bank and day" is the store's rule, not a node's: the record's key
//! is (bank, day), a 0500 is sent only by the node that claimed the record's next attempt
//! ([`CutoverStore::claim_bank_reconciliation`]), and a finished record is never claimed again.

use super::StoreError;
use chrono::NaiveDate;
use schemas::domain::InstitutionId;
use schemas::iso8583::ReconciliationTotals;
use std::future::Future;

/// Most records one page of `GET /reconciliations` returns.
pub const RECONCILIATION_PAGE_MAX: u32 = 500;

/// Where a bank's reconciliation of a day stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReconciliationStatus {
    /// Claimed, not answered yet (the bank's link was down, or it did not answer).
    Pending,
    /// The bank's figures equal the switch's.
    InBalance,
    /// They differ: a reconciliation exception, open until an operator resolves it.
    OutOfBalance,
    /// Out of balance, and resolved by an operator (with a reason).
    Resolved,
}

impl ReconciliationStatus {
    /// Every status, in the order above.
    pub const ALL: [ReconciliationStatus; 4] = [
        ReconciliationStatus::Pending,
        ReconciliationStatus::InBalance,
        ReconciliationStatus::OutOfBalance,
        ReconciliationStatus::Resolved,
    ];

    /// Its stable name (API, filters).
    pub const fn as_str(self) -> &'static str {
        match self {
            ReconciliationStatus::Pending => "pending",
            ReconciliationStatus::InBalance => "in_balance",
            ReconciliationStatus::OutOfBalance => "out_of_balance",
            ReconciliationStatus::Resolved => "resolved",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What the bank answered, as the switch records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAnswer {
    /// The switch's totals, as sent in the 0500.
    pub switch_totals: ReconciliationTotals,
    /// The bank's totals from its 0510.
    pub bank_totals: ReconciliationTotals,
    /// Field 66 of the 0510 (`1`, `2`).
    pub bank_settlement_code: String,
    /// The fields that differ (74-77, 86-89, 97), in field order; empty: in balance.
    pub differing_fields: Vec<u16>,
    /// Field 11 of the 0500.
    pub stan: String,
    /// When the answer came.
    pub at_us: i64,
}

/// One bank's reconciliation of one settlement day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankReconciliation {
    /// Id (the cursor of the list).
    pub reconciliation_id: i64,
    /// The bank.
    pub bank: InstitutionId,
    /// The settlement day (China Standard Time).
    pub settlement_day: NaiveDate,
    /// Where it stands.
    pub status: ReconciliationStatus,
    /// Attempts so far: 0500s sent, and looks that found the bank's link down or its
    /// store-and-forward messages pending (nothing sent).
    pub attempts: u32,
    /// Why the last attempt got no usable answer, if it did not.
    pub last_error: Option<String>,
    /// When the record was claimed first.
    pub created_at_us: i64,
    /// The answer, once the bank gave one.
    pub answer: Option<BankAnswer>,
    /// Who resolved the exception (`user:<id>`), why and when.
    pub resolution: Option<Resolution>,
}

/// An operator's resolution of a reconciliation exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The actor (`user:<id>`, `api_key:<id>`).
    pub by: String,
    /// The operator's reason.
    pub reason: String,
    /// When.
    pub at_us: i64,
}

/// A query of `GET /reconciliations`: each filter optional, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconciliationQuery {
    /// Only this bank's (the scope of a bank's caller, or the `bank` filter).
    pub bank: Option<InstitutionId>,
    /// Only this day's.
    pub day: Option<NaiveDate>,
    /// Only these.
    pub status: Option<ReconciliationStatus>,
    /// Ids below this one (the previous page's last).
    pub before_id: Option<i64>,
    /// Most rows, at most [`RECONCILIATION_PAGE_MAX`].
    pub limit: u32,
}

/// Reconciliations counted per bank and status: what `/metrics` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationCount {
    /// The bank.
    pub bank: InstitutionId,
    /// The status.
    pub status: ReconciliationStatus,
    /// How many.
    pub count: u64,
}

/// What resolving an exception did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveOutcome {
    /// Resolved now.
    Resolved(BankReconciliation),
    /// No such record.
    NotFound,
    /// Not an open exception (pending, in balance, or resolved before): nothing changed.
    NotAnException(BankReconciliation),
}

/// The cut-over's persistence (every [`super::Store`] has it).
pub trait CutoverStore: Send + Sync + 'static {
    /// The switch's totals of `bank`'s legs decided in `[from_us, to_us)`, as the bank should
    /// have them: approved transactions whose issuer is `bank` and that moved the bank's money
    /// (a bank leg, or the benefit credit the bank received), purchases and bill-split bank legs
    /// as the bank's debits, refunds and benefit credits as its credits, an approved reversal as
    /// a reversal of its original's side; counts are transactions, amounts the bank's legs.
    fn bank_totals(
        &self,
        bank: &InstitutionId,
        from_us: i64,
        to_us: i64,
    ) -> impl Future<Output = Result<ReconciliationTotals, StoreError>> + Send;

    /// Claims the next attempt of `bank`'s reconciliation of `day`: creates the record if it
    /// does not exist, then, if it is unanswered and its next attempt is due at `now_us`, moves
    /// that attempt to `lease_until_us`, counts it and returns the record's id. None: the day is
    /// reconciled already, or another node holds the attempt.
    fn claim_bank_reconciliation(
        &self,
        bank: &InstitutionId,
        day: NaiveDate,
        now_us: i64,
        lease_until_us: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Records why a claimed attempt got no usable answer, and when to try again.
    fn record_reconciliation_attempt(
        &self,
        reconciliation_id: i64,
        error: &str,
        next_attempt_at_us: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the bank's answer (once: an answered record does not change). False when the
    /// record was answered already.
    fn finish_bank_reconciliation(
        &self,
        reconciliation_id: i64,
        answer: &BankAnswer,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// One record.
    fn bank_reconciliation(
        &self,
        reconciliation_id: i64,
    ) -> impl Future<Output = Result<Option<BankReconciliation>, StoreError>> + Send;

    /// A page of records, newest first.
    fn bank_reconciliations(
        &self,
        query: &ReconciliationQuery,
    ) -> impl Future<Output = Result<Vec<BankReconciliation>, StoreError>> + Send;

    /// The banks whose reconciliation of `day` is answered.
    fn reconciled_banks(
        &self,
        day: NaiveDate,
    ) -> impl Future<Output = Result<Vec<InstitutionId>, StoreError>> + Send;

    /// Resolves an open exception (out of balance, not resolved): by whom, why, when.
    fn resolve_bank_reconciliation(
        &self,
        reconciliation_id: i64,
        resolution: &Resolution,
    ) -> impl Future<Output = Result<ResolveOutcome, StoreError>> + Send;

    /// Records counted per bank and status.
    fn reconciliation_counts(
        &self,
    ) -> impl Future<Output = Result<Vec<ReconciliationCount>, StoreError>> + Send;
}
