//! Errors of the store: [`StoreError`] for operations, [`DecisionError`] for one decision of a
//! group commit (cloneable, so a batch-wide failure can be reported to every caller).

use super::model::{AccountId, CardId, HoldId, TransactionId};

/// An operation on the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error (connection, constraint, I/O).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The group commit's own SQLite connection failed to open or configure.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Running the embedded migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not parse back into its domain type: the database was changed
    /// outside the switch, or a migration is missing.
    #[error("corrupt stored value in {column}")]
    Corrupt {
        /// `table.column` of the bad value.
        column: &'static str,
    },
    /// The record to change does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change is not allowed in the record's current state.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// PAN protection (hashing, sealing, opening) failed.
    #[error("pan protection: {0}")]
    Pan(#[from] super::pan_protector::PanProtectError),
    /// The audit chain does not verify at this sequence number.
    #[error("audit chain broken at entry {audit_seq}")]
    AuditChainBroken {
        /// First entry whose hash or link does not match.
        audit_seq: i64,
    },
    /// An audit entry's MAC is missing (after an entry that had one) or wrong: the entry was
    /// written or changed by someone without the audit key.
    #[error("audit entry {audit_seq} has a missing or wrong MAC")]
    AuditMacMismatch {
        /// The first entry whose MAC fails.
        audit_seq: i64,
    },
    /// The database URL's list of hosts is malformed.
    #[error("database url: {0}")]
    HostList(#[from] super::postgres::HostListError),
    /// None of the database hosts accepts writes (each host with its reason).
    #[error("no database host accepts writes: {0}")]
    NoWritableHost(String),
    /// A value does not fit its column (e.g. a count above `i64::MAX`).
    #[error("value out of range: {0}")]
    OutOfRange(&'static str),
    /// The node's local reversal spool (`store::spool`) cannot be opened.
    #[error(transparent)]
    Spool(#[from] super::spool::SpoolError),
}

/// Why one decision was not committed. Every other decision of its batch is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// Terminal + STAN + RRN + transmission time (+ message class) already recorded.
    #[error("duplicate transmission of transaction {existing:?}")]
    Duplicate {
        /// The transaction that holds the key (None when another node won a race for it).
        existing: Option<TransactionId>,
    },
    /// A debit, hold or capture would take the account's available balance below zero.
    #[error("insufficient funds on account {0:?}")]
    InsufficientFunds(AccountId),
    /// The decision names an account that does not exist.
    #[error("unknown account {0:?}")]
    UnknownAccount(AccountId),
    /// The decision captures or releases a hold that does not exist.
    #[error("unknown hold {0:?}")]
    UnknownHold(HoldId),
    /// The hold was already captured or released.
    #[error("hold {0:?} is not pending")]
    HoldNotPending(HoldId),
    /// The decision's ATC is not above the highest the card has used (a replayed cryptogram,
    /// or a race with another node that accepted a later one).
    #[error("ATC {atc} of card {card_id:?} not above {atc_max}")]
    AtcNotIncreasing {
        /// The card.
        card_id: CardId,
        /// The ATC of the decision.
        atc: u16,
        /// The highest ATC already committed.
        atc_max: u16,
    },
    /// An approved refund that, with the approved refunds of the same original before it,
    /// would give back more than the original's amount.
    #[error("refunds exceed original {0:?}")]
    RefundsExceedOriginal(TransactionId),
    /// An approved reversal of an original that already has one (an earlier batch's, another
    /// node's, or an earlier decision of this batch): a reversal gives the money back once.
    #[error("original {original:?} already reversed by {reversal:?}")]
    AlreadyReversed {
        /// The original.
        original: TransactionId,
        /// Its approved reversal (None when the database's unique index caught a race the
        /// planner did not see).
        reversal: Option<TransactionId>,
    },
    /// The approval would take its card over its daily amount (answered 61), counting what
    /// every node has committed today.
    #[error("daily amount limit of card {0:?} exceeded")]
    DailyAmountExceeded(CardId),
    /// The bank leg approved in stand-in would take its card over the day's stand-in limit,
    /// counting every node's stand-ins (answered 91, as the bank is unavailable).
    #[error("daily stand-in limit of card {0:?} exceeded")]
    StandInLimitExceeded(CardId),
    /// The approval would take its card over its daily count (answered 65).
    #[error("daily count limit of card {0:?} exceeded")]
    DailyCountExceeded(CardId),
    /// The card reached its wrong-PIN maximum (on any node) before this decision with a
    /// verified PIN committed (answered 75).
    #[error("PIN tries of card {0:?} exceeded")]
    PinTriesExceeded(CardId),
    /// A capture above the held amount.
    #[error("capture exceeds hold {0:?}")]
    CaptureExceedsHold(HoldId),
    /// The decision is malformed (caught before touching the database).
    #[error("invalid decision: {0}")]
    Invalid(String),
    /// The database rejected this decision alone (constraint), after it was retried on its
    /// own.
    #[error("rejected by the database: {0}")]
    Rejected(String),
    /// The batch could not be committed (database unavailable). The decision is not durable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The connection died while COMMIT was in flight and the database did not come back in
    /// time to say whether it committed: the decision may be durable or not. The pipeline
    /// answers `96` and records the compensation of an approval (`store::spool::Compensation`),
    /// which the store applies only if the approval turns out to have committed.
    #[error("commit outcome unknown: {0}")]
    OutcomeUnknown(String),
}
