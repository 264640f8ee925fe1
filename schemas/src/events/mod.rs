//! Settlement events: what the switch tells clearing about every financial decision.
//!
//! The switch writes one [`SettlementEvent`] per approved financial decision into its outbox, in
//! the same database transaction as the decision (issue 5); the outbox relay publishes it and
//! clearing turns its legs into balanced double-entry postings (issue 6). The JSON form is the
//! contract between the two and is described by `events/settlement-event.schema.json`
//! ([`SETTLEMENT_EVENT_SCHEMA_JSON`]); a test validates every event type against it.
//!
//! Versioning: `schema_version` is bumped for any change a consumer must understand; additive
//! optional fields keep the version. Consumers reject versions they do not know (dead-letter),
//! they never guess.

use crate::domain::{
    AmountFen, Currency, InstitutionId, Rrn, Stan, TerminalId, TransmissionDateTime,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u16 = 1;

/// Most legs one event may carry (a bill split has three; reversals mirror their original).
pub const LEGS_PER_EVENT_MAX: usize = 16;

/// The JSON Schema (draft 2020-12) of the event's JSON form.
pub const SETTLEMENT_EVENT_SCHEMA_JSON: &str =
    include_str!("../../events/settlement-event.schema.json");

/// What happened, from the settlement point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Pre-authorization (0100 approved): funds held, nothing moves yet (pending transfer).
    AuthorizationHold,
    /// A hold released without capture (expiry or cancellation): the pending transfer is voided.
    HoldRelease,
    /// Completion of a pre-authorization (0220/0200 completion): the hold is posted.
    Completion,
    /// A single-message purchase (0200 approved) paid from one source.
    Purchase,
    /// A hospital payment split between pooled fund, personal account and bank.
    MedicalBillSplit,
    /// A reversal (0400/0420) of an earlier event: its legs are undone.
    Reversal,
    /// A refund of an earlier purchase: money flows back to the payer.
    Refund,
    /// A benefit payment from the social-security fund to a cardholder's bank account.
    BenefitCredit,
}

impl EventType {
    /// Every event type, for tests and dispatch tables.
    pub const ALL: [EventType; 8] = [
        EventType::AuthorizationHold,
        EventType::HoldRelease,
        EventType::Completion,
        EventType::Purchase,
        EventType::MedicalBillSplit,
        EventType::Reversal,
        EventType::Refund,
        EventType::BenefitCredit,
    ];

    /// The snake_case name used in JSON, outbox rows and topic names.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AuthorizationHold => "authorization_hold",
            EventType::HoldRelease => "hold_release",
            EventType::Completion => "completion",
            EventType::Purchase => "purchase",
            EventType::MedicalBillSplit => "medical_bill_split",
            EventType::Reversal => "reversal",
            EventType::Refund => "refund",
            EventType::BenefitCredit => "benefit_credit",
        }
    }

    /// True for events that act on an earlier event and so must name it.
    pub fn requires_original(self) -> bool {
        matches!(
            self,
            EventType::HoldRelease
                | EventType::Completion
                | EventType::Reversal
                | EventType::Refund
        )
    }

    /// True for events about an authorization hold, which must carry its id.
    pub fn requires_hold(self) -> bool {
        matches!(
            self,
            EventType::AuthorizationHold | EventType::HoldRelease | EventType::Completion
        )
    }
}

/// Which of an institution's ledger accounts a leg touches. Clearing maps `(institution,
/// account)` to its ledger accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerAccount {
    /// The medical-insurance pooled (co-ordination) fund.
    PooledFund,
    /// Cardholders' personal medical-insurance accounts, aggregated per fund.
    PersonalAccounts,
    /// An acceptor's receivable (hospital, pharmacy).
    Merchant,
    /// A bank's settlement account with the switch.
    BankSettlement,
    /// The social-security fund paying benefits.
    SocialSecurityFund,
    /// Fees earned by an institution.
    Fees,
}

/// One side of a leg.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// The institution that owns the account.
    pub institution: InstitutionId,
    /// Which of its accounts.
    pub account: LedgerAccount,
}

/// Who pays a leg of a split payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegKind {
    /// Paid by the medical-insurance pooled fund.
    PooledFund,
    /// Paid from the cardholder's personal medical-insurance account.
    PersonalAccount,
    /// Paid by the card's bank (PBOC/EMV debit application).
    Bank,
    /// Paid by the social-security fund (benefits).
    SocialSecurityFund,
    /// A fee.
    Fee,
}

/// A movement of `amount_fen` from `debit` to `credit`. Every leg is balanced by construction:
/// clearing posts it as one debit and one credit of the same amount.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leg {
    /// Position of the leg in the event, from 1, unique within the event.
    pub leg_no: u8,
    /// The funding source this leg represents.
    pub kind: LegKind,
    /// The party that pays.
    pub debit: Party,
    /// The party that receives.
    pub credit: Party,
    /// Amount in fen, strictly positive.
    pub amount_fen: AmountFen,
}

/// The institutions named by the message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Institutions {
    /// Acquirer (hospital, job centre, acquiring bank): ISO 8583 field 32. Also the ordering
    /// key: all events of one acquirer are published in commit order.
    pub acquirer: InstitutionId,
    /// The card's issuing bank, when a bank leg exists: field 100 / routing result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<InstitutionId>,
}

/// References back to the messages and records the event comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// Field 37.
    pub rrn: Rrn,
    /// Field 11.
    pub stan: Stan,
    /// Field 41.
    pub terminal_id: TerminalId,
    /// Field 7.
    pub transmission_at: TransmissionDateTime,
    /// The event this one reverses, releases, completes or refunds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_event_id: Option<Uuid>,
    /// The authorization hold this event creates, completes or releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<Uuid>,
}

/// A versioned settlement event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementEvent {
    /// Unique id (UUID v7: time-ordered), the idempotency key in clearing.
    pub event_id: Uuid,
    /// [`SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u16,
    /// What happened.
    pub event_type: EventType,
    /// When the switch made the decision (UTC).
    pub occurred_at: DateTime<Utc>,
    /// The switch's transaction id (store primary key).
    pub transaction_id: Uuid,
    /// Institutions named by the message.
    pub institutions: Institutions,
    /// Currency of every leg (ISO 4217 numeric, always 156 today).
    pub currency: Currency,
    /// Sum of the legs, in fen.
    pub amount_fen: AmountFen,
    /// The movements, at least one.
    pub legs: Vec<Leg>,
    /// Message references.
    pub references: References,
}

/// Why an event is not well formed. Checked by the writer before it reaches the outbox and by
/// consumers after decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// `schema_version` is not one this crate understands.
    #[error("unsupported schema version {0}")]
    UnsupportedVersion(u16),
    /// `event_id` is not a UUID version 7.
    #[error("event id is not a UUID v7")]
    EventIdNotV7,
    /// No legs, or more than [`LEGS_PER_EVENT_MAX`].
    #[error("leg count {0} outside 1..={LEGS_PER_EVENT_MAX}")]
    LegCount(usize),
    /// A leg of zero fen.
    #[error("leg {0} has a zero amount")]
    ZeroLeg(u8),
    /// A leg whose debit and credit are the same party.
    #[error("leg {0} debits and credits the same party")]
    SelfTransfer(u8),
    /// Two legs with the same number.
    #[error("leg number {0} appears twice")]
    DuplicateLegNo(u8),
    /// The legs do not add up to `amount_fen`.
    #[error("legs sum to {legs_fen} fen, event says {amount_fen} fen")]
    Unbalanced {
        /// Sum of the legs.
        legs_fen: i64,
        /// The event's total.
        amount_fen: i64,
    },
    /// A reversal, refund, completion or release without `original_event_id`.
    #[error("{0:?} requires references.original_event_id")]
    MissingOriginal(EventType),
    /// A hold, its release or its completion without `hold_id`.
    #[error("{0:?} requires references.hold_id")]
    MissingHold(EventType),
    /// Leg numbers start at 1.
    #[error("leg number 0 is not allowed")]
    ZeroLegNo,
    /// Could not parse JSON.
    #[error("malformed event JSON: {0}")]
    Json(String),
}

impl SettlementEvent {
    /// Checks the invariants the JSON Schema cannot express (sums, uniqueness) and those it
    /// does (so Rust-built events are checked without a schema validator).
    pub fn validate(&self) -> Result<(), EventError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(EventError::UnsupportedVersion(self.schema_version));
        }
        if self.event_id.get_version_num() != 7 {
            return Err(EventError::EventIdNotV7);
        }
        if self.legs.is_empty() || self.legs.len() > LEGS_PER_EVENT_MAX {
            return Err(EventError::LegCount(self.legs.len()));
        }
        let mut seen = [false; 256];
        // Summed in i128: a saturating i64 sum let legs past i64::MAX equal the largest amount.
        let mut legs_fen: i128 = 0;
        for leg in &self.legs {
            if leg.leg_no == 0 {
                return Err(EventError::ZeroLegNo);
            }
            if std::mem::replace(&mut seen[usize::from(leg.leg_no)], true) {
                return Err(EventError::DuplicateLegNo(leg.leg_no));
            }
            if leg.amount_fen == AmountFen::ZERO {
                return Err(EventError::ZeroLeg(leg.leg_no));
            }
            if leg.debit == leg.credit {
                return Err(EventError::SelfTransfer(leg.leg_no));
            }
            legs_fen += i128::from(leg.amount_fen.get());
        }
        if legs_fen != i128::from(self.amount_fen.get()) {
            return Err(EventError::Unbalanced {
                legs_fen: i64::try_from(legs_fen).unwrap_or(i64::MAX),
                amount_fen: self.amount_fen.get(),
            });
        }
        if self.event_type.requires_original() && self.references.original_event_id.is_none() {
            return Err(EventError::MissingOriginal(self.event_type));
        }
        if self.event_type.requires_hold() && self.references.hold_id.is_none() {
            return Err(EventError::MissingHold(self.event_type));
        }
        Ok(())
    }

    /// The key that orders events on the bus (Kafka message key, outbox partition): the
    /// acquirer, so a hold, its completion and its reversal stay in order.
    pub fn partition_key(&self) -> &InstitutionId {
        &self.institutions.acquirer
    }

    /// Serialises to the JSON form stored in the outbox.
    pub fn to_json(&self) -> Result<String, EventError> {
        serde_json::to_string(self).map_err(|e| EventError::Json(e.to_string()))
    }

    /// Parses and validates the JSON form.
    pub fn from_json(json: &str) -> Result<Self, EventError> {
        let event: Self =
            serde_json::from_str(json).map_err(|e| EventError::Json(e.to_string()))?;
        event.validate()?;
        Ok(event)
    }
}

pub mod sample;

#[cfg(test)]
mod tests;
