//! One spooled decision as it is written to the spool file: a decline that carries the reversal
//! (ISO 8583:1987 0420, reversal advice) of a bank leg the bank may have booked.
//!
//! Why a format of its own rather than the store's types: the file outlives the process and
//! may be read by a later version of it, so every field is named, versioned (`v`) and checked
//! again when read (the domain types validate as they deserialize). What it holds is what the
//! store would hold for the same decision, and nothing more: the masked PAN (first six, last
//! four), the card's store id, never a PIN, a key, a track or a clear PAN.

use crate::store::{
    CardAtc, CardId, Decision, ReversalId, ReversalReason, ReversalRequest, TransactionId,
    TransactionKind, TransactionRecord,
};
use schemas::domain::{
    AmountFen, InstitutionId, ResponseCode, Rrn, Stan, TerminalId, TransmissionDateTime,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The version of the record format written today.
const RECORD_VERSION: u32 = 1;

/// A decline with its reversal that the store could not take.
#[derive(Debug, Clone, PartialEq)]
pub struct SpooledReversal {
    /// The decline (no money moves).
    pub transaction: TransactionRecord,
    /// The card's ATC the decline consumes, if its cryptogram verified.
    pub atc: Option<CardAtc>,
    /// The 0420 of the bank leg, keyed at the bank by its STAN and field 7.
    pub reversal: ReversalRequest,
}

impl SpooledReversal {
    /// The spoolable part of `decision`: `None` unless it is a decline carrying a reversal and
    /// nothing else that the spool would not keep (legs, balances, an event, an advice, risk).
    pub fn of(decision: &Decision) -> Option<Self> {
        let plain = decision.legs.is_empty()
            && decision.balance_ops.is_empty()
            && decision.event.is_none()
            && decision.advice.is_none()
            && decision.risk.is_none()
            && !decision.transaction.is_approved();
        match (&decision.reversal, plain) {
            (Some(reversal), true) => Some(Self {
                transaction: decision.transaction.clone(),
                atc: decision.atc,
                reversal: reversal.clone(),
            }),
            _ => None,
        }
    }

    /// The decision to submit to the store again.
    pub fn decision(&self) -> Decision {
        Decision {
            transaction: self.transaction.clone(),
            legs: Vec::new(),
            balance_ops: Vec::new(),
            event: None,
            reversal: Some(self.reversal.clone()),
            advice: None,
            atc: self.atc,
            risk: None,
        }
    }

    /// The id the spool knows it by.
    pub fn id(&self) -> ReversalId {
        self.reversal.reversal_id
    }

    /// The JSON text of the record (one line: JSON escapes every newline).
    pub fn to_json(&self) -> String {
        let t = &self.transaction;
        let r = &self.reversal;
        let wire = Wire {
            v: RECORD_VERSION,
            transaction: WireTransaction {
                transaction_id: t.transaction_id.0.to_string(),
                kind: t.kind.as_sql().to_owned(),
                mti: t.mti.clone(),
                processing_code: t.processing_code.clone(),
                card_id: t.card_id.map(|c| c.0),
                pan_masked: t.pan_masked.clone(),
                acquirer: t.acquirer.clone(),
                issuer: t.issuer.clone(),
                terminal_id: t.terminal_id.clone(),
                stan: t.stan,
                rrn: t.rrn.clone(),
                transmission_at: t.transmission_at.clone(),
                amount_fen: t.amount_fen,
                response_code: t.response_code,
                original_transaction_id: t.original_transaction_id.map(|o| o.0.to_string()),
                decided_at_us: t.decided_at_us,
            },
            atc: self.atc.map(|a| WireAtc {
                card_id: a.card_id.0,
                atc: a.atc,
            }),
            reversal: WireReversal {
                reversal_id: r.reversal_id.0.to_string(),
                destination: r.destination.clone(),
                reason: r.reason.as_sql().to_owned(),
                amount_fen: r.amount_fen,
                stan: r.stan,
                transmission_at: r.transmission_at.clone(),
                first_attempt_at_us: r.first_attempt_at_us,
            },
        };
        // Every field is a string, a number or null: serialising cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a record back; an error names what is wrong, never a value.
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        let w: Wire = serde_json::from_str(text).map_err(|_| RecordError::Malformed)?;
        if w.v != RECORD_VERSION {
            return Err(RecordError::Version(w.v));
        }
        let t = w.transaction;
        let transaction = TransactionRecord {
            transaction_id: TransactionId(uuid(&t.transaction_id)?),
            kind: TransactionKind::from_sql(&t.kind).ok_or(RecordError::Field("kind"))?,
            mti: t.mti,
            processing_code: t.processing_code,
            card_id: t.card_id.map(CardId),
            pan_masked: t.pan_masked,
            acquirer: t.acquirer,
            issuer: t.issuer,
            terminal_id: t.terminal_id,
            stan: t.stan,
            rrn: t.rrn,
            transmission_at: t.transmission_at,
            amount_fen: t.amount_fen,
            response_code: t.response_code,
            original_transaction_id: match t.original_transaction_id {
                Some(o) => Some(TransactionId(uuid(&o)?)),
                None => None,
            },
            decided_at_us: t.decided_at_us,
        };
        if transaction.is_approved() {
            return Err(RecordError::Field("response_code"));
        }
        let r = w.reversal;
        let reversal = ReversalRequest {
            reversal_id: ReversalId(uuid(&r.reversal_id)?),
            destination: r.destination,
            reason: ReversalReason::from_sql(&r.reason).ok_or(RecordError::Field("reason"))?,
            amount_fen: r.amount_fen,
            stan: r.stan,
            transmission_at: r.transmission_at,
            first_attempt_at_us: r.first_attempt_at_us,
        };
        Ok(Self {
            transaction,
            atc: w.atc.map(|a| CardAtc {
                card_id: CardId(a.card_id),
                atc: a.atc,
            }),
            reversal,
        })
    }
}

/// Why a record's text is not a spooled reversal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not JSON of the record's shape, or a field out of its domain.
    #[error("malformed record")]
    Malformed,
    /// Written by a format version this node does not read.
    #[error("record version {0} unknown")]
    Version(u32),
    /// One field does not parse.
    #[error("record field {0} invalid")]
    Field(&'static str),
}

fn uuid(s: &str) -> Result<Uuid, RecordError> {
    Uuid::parse_str(s).map_err(|_| RecordError::Field("id"))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    transaction: WireTransaction,
    atc: Option<WireAtc>,
    reversal: WireReversal,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTransaction {
    transaction_id: String,
    kind: String,
    mti: String,
    processing_code: String,
    card_id: Option<i64>,
    pan_masked: Option<String>,
    acquirer: InstitutionId,
    issuer: Option<InstitutionId>,
    terminal_id: TerminalId,
    stan: Stan,
    rrn: Rrn,
    transmission_at: TransmissionDateTime,
    amount_fen: AmountFen,
    response_code: ResponseCode,
    original_transaction_id: Option<String>,
    decided_at_us: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireAtc {
    card_id: i64,
    atc: u16,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireReversal {
    reversal_id: String,
    destination: InstitutionId,
    reason: String,
    amount_fen: AmountFen,
    stan: Stan,
    transmission_at: TransmissionDateTime,
    first_attempt_at_us: i64,
}
