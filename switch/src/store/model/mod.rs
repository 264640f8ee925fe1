//! Records the store reads and writes, and the [`Decision`] the pipeline hands to the writer.
//!
//! Amounts are [`AmountFen`] (integer fen, never negative) and times are microseconds since
//! the Unix epoch (`*_at_us`), exactly as in the tables of `schemas/migrations`. One file per
//! concern: reference data, cards, accounts, transactions, the store-and-forward queues,
//! reconciliation, and the outbox and audit logs; the ids and the `sql_enum!` macro live here.
//!
//! [`AmountFen`]: schemas::domain::AmountFen

use uuid::Uuid;

/// Store key of a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardId(pub i64);
/// Store key of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);
/// A transaction (decision) id, chosen by the pipeline (UUID v7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub Uuid);
/// An authorization hold id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HoldId(pub Uuid);
/// A queued reversal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReversalId(pub Uuid);
/// A queued advice id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdviceId(pub Uuid);

/// Defines a string-backed enum with its SQL text form.
macro_rules! sql_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            /// The text stored in the database.
            pub fn as_sql(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses the stored text.
            pub fn from_sql(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }
    };
}

mod accounts;
mod card_risk;
mod cards;
mod logs;
mod queues;
mod reconciliation;
mod reference;
mod transactions;

pub use accounts::{Account, AccountKind, BalanceOp, Hold, HoldState, MovementKind, NewAccount};
pub use card_risk::{CardRisk, DailySpend, DayUsage, StandInSpend};
pub use cards::{
    Card, CardAtc, CardIssuance, CardStatus, DirectoryCard, IccAlgorithm, InsuranceCategory,
    NewCard,
};
pub use logs::{AuditEntry, AuditRecord, OutboxRecord};
pub use queues::{
    AdviceClass, AdviceRequest, PendingAdvice, PendingReversal, ReversalReason, ReversalRequest,
    SafBacklog, SafItem, SafKind, SafQueue,
};
pub use reconciliation::totals_line;
pub use reference::{BinRoute, Institution, InstitutionKind};
pub use transactions::{
    leg_kind_from_sql, leg_kind_sql, BatchOutcome, Committed, Decision, DuplicateKey,
    StoredTransaction, TransactionKind, TransactionRecord, TxnLeg, BALANCE_OPS_PER_DECISION_MAX,
    LEGS_PER_DECISION_MAX,
};
