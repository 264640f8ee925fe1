//! One spooled decision as it is written to the spool file: a decline that carries the reversal
//! (ISO 8583:1987 0420, reversal advice) of a bank leg the bank may have booked, and, when the
//! decline follows an approval whose commit outcome was unknown, that approval's compensation
//! ([`Compensation`]).
//!
//! Why a format of its own rather than the store's types: the file outlives the process and
//! may be read by a later version of it, so every field is named, versioned (`v`) and checked
//! again when read (the domain types validate as they deserialize). What it holds is what the
//! store would hold for the same decision, and nothing more: the masked PAN (first six, last
//! four), the card's store id, never a PIN, a key, a track or a clear PAN.
//!
//! Versions: 1 (a decline and its reversal) is still read; 2 adds the compensation and lets the
//! decline carry no reversal of its own (an approval in stand-in, or one with no bank leg, whose
//! compensation carries whatever reaches the bank).

use super::compensation::Compensation;
use crate::store::{
    AccountId, BalanceOp, CardAtc, CardId, Decision, ReversalId, ReversalReason, ReversalRequest,
    TransactionId, TransactionKind, TransactionRecord, TxnLeg,
};
use schemas::domain::{
    AmountFen, InstitutionId, ResponseCode, Rrn, Stan, TerminalId, TransmissionDateTime,
};
use schemas::events::SettlementEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The version of the record format written today.
const RECORD_VERSION: u32 = 2;
/// The first version, still read: a decline and its reversal, no compensation.
const RECORD_VERSION_1: u32 = 1;

/// A decline with its reversal (and an approval's compensation) that the store could not take.
#[derive(Debug, Clone, PartialEq)]
pub struct SpooledReversal {
    /// The decline (no money moves).
    pub transaction: TransactionRecord,
    /// The card's ATC the decline consumes, if its cryptogram verified.
    pub atc: Option<CardAtc>,
    /// The 0420 of the bank leg, keyed at the bank by its STAN and field 7 (`None`: the bank
    /// saw no leg of this request).
    pub reversal: Option<ReversalRequest>,
    /// The reversal of the approval that preceded this decline, committed instead of it when
    /// the store shows the approval committed.
    pub compensation: Option<Compensation>,
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
                reversal: Some(reversal.clone()),
                compensation: None,
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
            reversal: self.reversal.clone(),
            advice: None,
            atc: self.atc,
            risk: None,
        }
    }

    /// The id the spool knows it by: the decline's transaction id.
    pub fn id(&self) -> TransactionId {
        self.transaction.transaction_id
    }

    /// The JSON text of the record (one line: JSON escapes every newline).
    pub fn to_json(&self) -> String {
        let wire = Wire {
            v: RECORD_VERSION,
            transaction: wire_transaction(&self.transaction),
            atc: self.atc.map(|a| WireAtc {
                card_id: a.card_id.0,
                atc: a.atc,
            }),
            reversal: self.reversal.as_ref().map(wire_reversal),
            compensation: self.compensation.as_ref().map(|c| {
                let d = &c.reversal;
                WireCompensation {
                    approval_id: c.approval_id.0.to_string(),
                    transaction: wire_transaction(&d.transaction),
                    legs: d
                        .legs
                        .iter()
                        .map(|l| WireLeg {
                            leg_no: l.leg_no,
                            kind: crate::store::model::leg_kind_sql(l.kind).to_owned(),
                            institution: l.institution.clone(),
                            account_id: l.account_id.map(|a| a.0),
                            amount_fen: l.amount_fen,
                        })
                        .collect(),
                    balance_ops: d.balance_ops.iter().filter_map(wire_balance_op).collect(),
                    event: d.event.clone(),
                    reversal: d.reversal.as_ref().map(wire_reversal),
                }
            }),
        };
        // Every field is a string, a number or null: serialising cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a record back; an error names what is wrong, never a value.
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        let w: Wire = serde_json::from_str(text).map_err(|_| RecordError::Malformed)?;
        if w.v != RECORD_VERSION && w.v != RECORD_VERSION_1 {
            return Err(RecordError::Version(w.v));
        }
        if w.v == RECORD_VERSION_1 && (w.reversal.is_none() || w.compensation.is_some()) {
            return Err(RecordError::Field("reversal"));
        }
        let transaction = transaction(w.transaction)?;
        if transaction.is_approved() {
            return Err(RecordError::Field("response_code"));
        }
        let compensation = match w.compensation {
            Some(c) => Some(compensation(c)?),
            None => None,
        };
        Ok(Self {
            transaction,
            atc: w.atc.map(|a| CardAtc {
                card_id: CardId(a.card_id),
                atc: a.atc,
            }),
            reversal: w.reversal.map(reversal).transpose()?,
            compensation,
        })
    }
}

fn wire_transaction(t: &TransactionRecord) -> WireTransaction {
    WireTransaction {
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
    }
}

fn wire_reversal(r: &ReversalRequest) -> WireReversal {
    WireReversal {
        reversal_id: r.reversal_id.0.to_string(),
        destination: r.destination.clone(),
        reason: r.reason.as_sql().to_owned(),
        amount_fen: r.amount_fen,
        stan: r.stan,
        transmission_at: r.transmission_at.clone(),
        first_attempt_at_us: r.first_attempt_at_us,
    }
}

/// A compensation moves only available balances (`Compensation::of` refuses holds).
fn wire_balance_op(op: &BalanceOp) -> Option<WireBalanceOp> {
    match op {
        BalanceOp::Debit {
            account_id,
            amount_fen,
        } => Some(WireBalanceOp {
            op: "debit".into(),
            account_id: account_id.0,
            amount_fen: *amount_fen,
        }),
        BalanceOp::Credit {
            account_id,
            amount_fen,
        } => Some(WireBalanceOp {
            op: "credit".into(),
            account_id: account_id.0,
            amount_fen: *amount_fen,
        }),
        _ => None,
    }
}

fn transaction(t: WireTransaction) -> Result<TransactionRecord, RecordError> {
    Ok(TransactionRecord {
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
    })
}

fn reversal(r: WireReversal) -> Result<ReversalRequest, RecordError> {
    Ok(ReversalRequest {
        reversal_id: ReversalId(uuid(&r.reversal_id)?),
        destination: r.destination,
        reason: ReversalReason::from_sql(&r.reason).ok_or(RecordError::Field("reason"))?,
        amount_fen: r.amount_fen,
        stan: r.stan,
        transmission_at: r.transmission_at,
        first_attempt_at_us: r.first_attempt_at_us,
    })
}

/// A compensation read back: an approved reversal of the named approval.
fn compensation(c: WireCompensation) -> Result<Compensation, RecordError> {
    let approval_id = TransactionId(uuid(&c.approval_id)?);
    let record = transaction(c.transaction)?;
    if record.kind != TransactionKind::Reversal
        || !record.is_approved()
        || record.original_transaction_id != Some(approval_id)
    {
        return Err(RecordError::Field("compensation"));
    }
    let legs = c
        .legs
        .into_iter()
        .map(|l| {
            Ok(TxnLeg {
                leg_no: l.leg_no,
                kind: crate::store::model::leg_kind_from_sql(&l.kind)
                    .ok_or(RecordError::Field("leg kind"))?,
                institution: l.institution,
                account_id: l.account_id.map(AccountId),
                amount_fen: l.amount_fen,
            })
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    let balance_ops = c
        .balance_ops
        .into_iter()
        .map(|b| {
            let (account_id, amount_fen) = (AccountId(b.account_id), b.amount_fen);
            match b.op.as_str() {
                "debit" => Ok(BalanceOp::Debit {
                    account_id,
                    amount_fen,
                }),
                "credit" => Ok(BalanceOp::Credit {
                    account_id,
                    amount_fen,
                }),
                _ => Err(RecordError::Field("balance op")),
            }
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    if c.event
        .as_ref()
        .is_some_and(|e| e.transaction_id != record.transaction_id.0)
    {
        return Err(RecordError::Field("event"));
    }
    Ok(Compensation {
        approval_id,
        reversal: Decision {
            transaction: record,
            legs,
            balance_ops,
            event: c.event,
            reversal: c.reversal.map(reversal).transpose()?,
            advice: None,
            atc: None,
            risk: None,
        },
    })
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
    reversal: Option<WireReversal>,
    /// Version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compensation: Option<WireCompensation>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCompensation {
    approval_id: String,
    transaction: WireTransaction,
    legs: Vec<WireLeg>,
    balance_ops: Vec<WireBalanceOp>,
    event: Option<SettlementEvent>,
    reversal: Option<WireReversal>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireLeg {
    leg_no: u8,
    kind: String,
    institution: InstitutionId,
    account_id: Option<i64>,
    amount_fen: AmountFen,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBalanceOp {
    op: String,
    account_id: i64,
    amount_fen: AmountFen,
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
