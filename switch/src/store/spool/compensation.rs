//! The compensation of an approval whose commit outcome is unknown: the reversal that undoes it,
//! recorded with the decline the acquirer was answered, and committed only once the store shows
//! that the approval did commit after all.
//!
//! Why: when PostgreSQL's connection dies while COMMIT is in flight, the server may have
//! committed the approval or not (PostgreSQL manual 9.26, `pg_xact_status`). The store asks it
//! (`store::postgres::failover::resolve_commits`); when it does not answer in time, the pipeline
//! answers `96` and records a decline under the request's duplicate key. If the approval had in
//! fact committed, that decline comes back `Duplicate { existing: approval }`: the customer was
//! told "declined" and was charged. Then, and only then, this reversal is committed: the
//! approval's legs mirrored, its account debits credited back, a `reversal` settlement event
//! naming the approval's, and the 0420 (ISO 8583:1987 reversal advice) that gives the bank its
//! money back, keyed by the bank leg's STAN and field 7 or, after a stand-in, by its 0220
//! advice's (the store holds the 0420 back until that advice is acknowledged). It is built here
//! from the approval itself, which the pipeline has in hand, so the node's reversal spool can
//! carry it through a restart and replay it without the pipeline.

use crate::store::{
    BalanceOp, Decision, ReversalRequest, TransactionId, TransactionKind, TransactionRecord, TxnLeg,
};
use chrono::Utc;
use schemas::domain::ResponseCode;
use schemas::events::{EventType, Leg, References, SettlementEvent};
use uuid::Uuid;

/// The MTI the compensation is recorded under: a reversal advice of the switch's own (message
/// class 04, so its duplicate key differs from the request's 02 and from the decline's).
pub const COMPENSATION_MTI: &str = "0420";

/// What undoes an approval that may have committed although the acquirer was answered a decline.
#[derive(Debug, Clone, PartialEq)]
pub struct Compensation {
    /// The approval whose commit outcome was unknown.
    pub approval_id: TransactionId,
    /// Its reversal, committed only when the store shows the approval committed.
    pub reversal: Decision,
}

/// Why an approval cannot be compensated by mirroring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompensationError {
    /// It places, captures or releases a hold: undoing it is a reversal of its own kind
    /// (`pipeline::services::reversal`), not a mirror.
    #[error("the approval moves a hold")]
    Hold,
    /// Its settlement event's legs are not its store legs (a decision not built by
    /// `pipeline::decision::Movement`).
    #[error("the approval's event legs do not match its legs")]
    Legs,
}

impl Compensation {
    /// The compensation of `approval`, with `bank` the 0420 that gives the bank back what it
    /// booked (its leg, or its stand-in advice's amount); `None` when the approval moves nothing
    /// at all. `decided_at_us` is when the compensation was decided.
    pub fn of(
        approval: &Decision,
        bank: Option<ReversalRequest>,
        decided_at_us: i64,
    ) -> Result<Option<Self>, CompensationError> {
        let a = &approval.transaction;
        if approval.event.is_none() && approval.balance_ops.is_empty() && bank.is_none() {
            return Ok(None);
        }
        let record = TransactionRecord {
            transaction_id: TransactionId(Uuid::now_v7()),
            kind: TransactionKind::Reversal,
            mti: COMPENSATION_MTI.to_owned(),
            processing_code: a.processing_code.clone(),
            card_id: a.card_id,
            pan_masked: a.pan_masked.clone(),
            acquirer: a.acquirer.clone(),
            issuer: a.issuer.clone(),
            terminal_id: a.terminal_id.clone(),
            stan: a.stan,
            rrn: a.rrn.clone(),
            transmission_at: a.transmission_at.clone(),
            amount_fen: a.amount_fen,
            response_code: ResponseCode::Approved,
            original_transaction_id: Some(a.transaction_id),
            decided_at_us,
        };
        let balance_ops = approval
            .balance_ops
            .iter()
            .map(|op| match op {
                BalanceOp::Debit {
                    account_id,
                    amount_fen,
                } => Ok(BalanceOp::Credit {
                    account_id: *account_id,
                    amount_fen: *amount_fen,
                }),
                BalanceOp::Credit {
                    account_id,
                    amount_fen,
                } => Ok(BalanceOp::Debit {
                    account_id: *account_id,
                    amount_fen: *amount_fen,
                }),
                _ => Err(CompensationError::Hold),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let event_legs = approval.event.as_ref().map_or(&[][..], |e| &e.legs[..]);
        if event_legs.len() != approval.legs.len() {
            return Err(CompensationError::Legs);
        }
        // Each leg the other way: who received pays back (as `services::reversal` mirrors a
        // stored original, the store leg names the payer of the reversal).
        let legs = approval
            .legs
            .iter()
            .zip(event_legs)
            .map(|(l, e)| TxnLeg {
                leg_no: l.leg_no,
                kind: l.kind,
                institution: e.credit.institution.clone(),
                account_id: l.account_id,
                amount_fen: l.amount_fen,
            })
            .collect();
        let event = approval.event.as_ref().map(|e| SettlementEvent {
            event_id: record.transaction_id.0,
            schema_version: e.schema_version,
            event_type: EventType::Reversal,
            occurred_at: Utc::now(),
            transaction_id: record.transaction_id.0,
            institutions: e.institutions.clone(),
            currency: e.currency,
            amount_fen: e.amount_fen,
            legs: e
                .legs
                .iter()
                .map(|l| Leg {
                    leg_no: l.leg_no,
                    kind: l.kind,
                    debit: l.credit.clone(),
                    credit: l.debit.clone(),
                    amount_fen: l.amount_fen,
                })
                .collect(),
            references: References {
                rrn: record.rrn.clone(),
                stan: record.stan,
                terminal_id: record.terminal_id.clone(),
                transmission_at: record.transmission_at.clone(),
                original_event_id: Some(e.event_id),
                hold_id: None,
            },
        });
        Ok(Some(Self {
            approval_id: a.transaction_id,
            reversal: Decision {
                transaction: record,
                legs,
                balance_ops,
                event,
                reversal: bank,
                advice: None,
                atc: None,
                risk: None,
            },
        }))
    }
}
