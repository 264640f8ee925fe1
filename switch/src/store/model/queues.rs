//! The store-and-forward queues: reversals (0420) and stand-in advices (0120/0220) queued with
//! their decision, what is pending, and the backlog operators watch.

use super::{AdviceId, ReversalId, TransactionId};
use schemas::domain::{AmountFen, InstitutionId, ResponseCode, Stan, TransmissionDateTime};
use uuid::Uuid;

sql_enum!(
    /// Why a reversal is queued.
    ReversalReason {
        /// The issuer did not answer in time.
        IssuerTimeout = "issuer_timeout",
        /// The issuer link was down.
        IssuerUnavailable = "issuer_unavailable",
        /// The issuer approved after the acquirer was declined.
        LateApproval = "late_approval",
        /// The acquirer asked for it (0400 from the terminal).
        AcquirerRequest = "acquirer_request",
    }
);

sql_enum!(
    /// The message class of a queued advice (ISO 8583:1987 §4.1): the MTI of its first
    /// attempt; a repeat adds 1 to the last digit (0121, 0221).
    AdviceClass {
        /// Authorization advice, 0120 → 0130.
        Authorization = "0120",
        /// Financial transaction advice, 0220 → 0230.
        Financial = "0220",
    }
);

impl AdviceClass {
    /// The MTI of an attempt: the class for the first, its repeat (…1) after.
    pub fn mti(self, attempts_before: i64) -> &'static str {
        match (self, attempts_before > 0) {
            (AdviceClass::Authorization, false) => "0120",
            (AdviceClass::Authorization, true) => "0121",
            (AdviceClass::Financial, false) => "0220",
            (AdviceClass::Financial, true) => "0221",
        }
    }
}

/// A reversal (0420) to send store-and-forward, queued with its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRequest {
    /// Id.
    pub reversal_id: ReversalId,
    /// Where to send it.
    pub destination: InstitutionId,
    /// Why.
    pub reason: ReversalReason,
    /// Amount to reverse.
    pub amount_fen: AmountFen,
    /// STAN of the 0420 (repeats as 0421 keep it).
    pub stan: Stan,
    /// Field 7 of the 0420.
    pub transmission_at: TransmissionDateTime,
    /// Earliest first attempt.
    pub first_attempt_at_us: i64,
}

/// An advice (0120/0220) telling a bank what the switch approved on its behalf in stand-in,
/// queued with the approval and sent store-and-forward until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdviceRequest {
    /// Id.
    pub advice_id: AdviceId,
    /// The bank that was stood in for.
    pub destination: InstitutionId,
    /// 0120 or 0220.
    pub class: AdviceClass,
    /// Field 3 of the bank leg.
    pub processing_code: String,
    /// Field 4: the bank leg's amount (> 0).
    pub amount_fen: AmountFen,
    /// Field 11 of the advice on the bank's link (repeats keep it).
    pub stan: Stan,
    /// Field 7 of the advice.
    pub transmission_at: TransmissionDateTime,
    /// Field 39: why the switch stood in.
    pub reason: ResponseCode,
    /// Field 38: the stand-in approval code (6 characters).
    pub auth_code: String,
    /// Earliest first attempt.
    pub first_attempt_at_us: i64,
}

/// A reversal waiting for acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReversal {
    /// Id.
    pub reversal_id: ReversalId,
    /// The transaction being reversed.
    pub original_transaction_id: TransactionId,
    /// Destination institution.
    pub destination: InstitutionId,
    /// Why.
    pub reason: ReversalReason,
    /// Amount.
    pub amount_fen: i64,
    /// STAN of the 0420.
    pub stan: Stan,
    /// Field 7 of the 0420.
    pub transmission_at: TransmissionDateTime,
    /// Attempts so far (the next one is a repeat, 0421, when > 0).
    pub attempts: i64,
    /// When it is due.
    pub next_attempt_at_us: i64,
}

/// An advice waiting for acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAdvice {
    /// Id.
    pub advice_id: AdviceId,
    /// The stand-in approval it advises.
    pub transaction_id: TransactionId,
    /// Destination bank.
    pub destination: InstitutionId,
    /// 0120 or 0220.
    pub class: AdviceClass,
    /// Field 3.
    pub processing_code: String,
    /// Amount (field 4).
    pub amount_fen: i64,
    /// Field 11.
    pub stan: Stan,
    /// Field 7.
    pub transmission_at: TransmissionDateTime,
    /// Field 39: the stand-in reason.
    pub reason: ResponseCode,
    /// Field 38: the stand-in approval code.
    pub auth_code: String,
    /// Attempts so far (the next one is a repeat when > 0).
    pub attempts: i64,
    /// When it is due.
    pub next_attempt_at_us: i64,
}

/// Which store-and-forward queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SafKind {
    /// Reversals (0420/0421).
    Reversal,
    /// Stand-in advices (0120/0121, 0220/0221).
    Advice,
}

impl SafKind {
    /// Lower-case name, as in metrics labels and the HTTP view.
    pub fn as_str(self) -> &'static str {
        match self {
            SafKind::Reversal => "reversal",
            SafKind::Advice => "advice",
        }
    }

    /// Parses [`SafKind::as_str`].
    pub fn from_sql(s: &str) -> Option<Self> {
        match s {
            "reversal" => Some(SafKind::Reversal),
            "advice" => Some(SafKind::Advice),
            _ => None,
        }
    }
}

/// The pending messages of one store-and-forward queue towards one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafQueue {
    /// Reversals or advices.
    pub kind: SafKind,
    /// Destination bank.
    pub destination: InstitutionId,
    /// Messages not yet acknowledged.
    pub pending: u64,
    /// Of those, reversals held back because the advice of their original is still pending
    /// (always 0 for advices): they cannot leave before that advice is acknowledged.
    pub held: u64,
    /// When the oldest pending message was queued.
    pub oldest_created_at_us: i64,
    /// Most attempts made for one of them.
    pub attempts_max: i64,
}

/// One pending store-and-forward message, for operators (no card data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafItem {
    /// Reversal or advice.
    pub kind: SafKind,
    /// The reversal or advice id.
    pub id: Uuid,
    /// The transaction it was queued with.
    pub transaction_id: TransactionId,
    /// Destination bank.
    pub destination: InstitutionId,
    /// Amount.
    pub amount_fen: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// Field 39 of the last answer that did not acknowledge it, if any.
    pub last_response_code: Option<String>,
    /// Held back behind the pending advice of its original (reversals only).
    pub held: bool,
    /// When it was queued.
    pub created_at_us: i64,
    /// When it is next due.
    pub next_attempt_at_us: i64,
}

/// The store-and-forward backlog: per queue and destination, and the oldest messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafBacklog {
    /// One entry per (kind, destination) with pending messages, in that order.
    pub queues: Vec<SafQueue>,
    /// The oldest pending messages of both kinds, oldest first.
    pub oldest: Vec<SafItem>,
}

impl SafBacklog {
    /// When the oldest pending message of any queue was queued.
    pub fn oldest_created_at_us(&self) -> Option<i64> {
        self.queues.iter().map(|q| q.oldest_created_at_us).min()
    }
}
