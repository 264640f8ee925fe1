//! Commit: a service's decision becomes one [`Decision`] for the group-commit writer (the
//! transaction row, its legs and balance operations, the settlement event, a queued reversal or
//! stand-in advice, the ATC it consumes), and the pipeline waits until it is durable before it
//! answers.
//!
//! Why one place: every service, approval or decline, records the same transaction row and
//! reads the same commit errors (94 duplicate, 59 an ATC another node used first, 51 a balance
//! the store refused); an approval that moves money describes its legs once ([`Movement`]) and
//! gets both the store's legs and the settlement event's from them.
//!
//! Event ids are the transaction ids (both UUID v7, one event per transaction), and a hold's id
//! is its pre-authorization's transaction id, so completions, releases and reversals name their
//! original without another lookup.

use super::cards::CardEntry;
use super::request::Request;
use super::response::Outcome;
use super::Pipeline;
use crate::store::writer::WriteError;
use crate::store::{
    AccountId, BalanceOp, CardAtc, Committed, Decision, DecisionError, Store, TransactionId,
    TransactionKind, TransactionRecord, TxnLeg,
};
use chrono::Utc;
use schemas::domain::{AmountFen, Currency, InstitutionId, Pan, ResponseCode};
use schemas::events::{
    EventType, Institutions, LedgerAccount, Leg, LegKind, Party, References, SettlementEvent,
    SCHEMA_VERSION,
};
use std::time::Instant;
use uuid::Uuid;

/// One funding leg before it becomes a store leg and an event leg.
#[derive(Debug, Clone)]
pub(crate) struct PlannedLeg {
    pub kind: LegKind,
    pub debit: Party,
    pub credit: Party,
    pub account: Option<AccountId>,
    pub amount_fen: i64,
}

/// `account` of `institution` as a party of a leg.
pub(crate) fn party(institution: &InstitutionId, account: LedgerAccount) -> Party {
    Party {
        institution: institution.clone(),
        account,
    }
}

/// A computed amount as the money type; amounts here are never negative.
pub(crate) fn fen(v: i64) -> AmountFen {
    AmountFen::new(v).unwrap_or(AmountFen::ZERO)
}

/// An authorization code for a decision the switch made itself (field 38, 6 characters).
pub(crate) fn local_auth_code(req: &Request) -> String {
    format!("{:06}", req.stan.value())
}

/// The money an approval moves: its legs (those of zero fen are left out), the balance
/// operations, and what its settlement event names.
#[derive(Debug)]
pub(crate) struct Movement<'l> {
    /// The settlement event's type.
    pub event_type: EventType,
    /// The legs, in order.
    pub legs: &'l [PlannedLeg],
    /// What the store does to the accounts, checked at commit.
    pub balance_ops: Vec<BalanceOp>,
    /// The issuer the settlement event names.
    pub issuer: Option<InstitutionId>,
    /// The event of the transaction this one completes, refunds or reverses.
    pub original_event_id: Option<Uuid>,
    /// The authorization hold this movement places, captures or releases.
    pub hold_id: Option<Uuid>,
}

impl<'l> Movement<'l> {
    /// `legs` settled as an event of `event_type`, with no balance operation and nothing else
    /// named.
    pub(crate) fn new(event_type: EventType, legs: &'l [PlannedLeg]) -> Self {
        Self {
            event_type,
            legs,
            balance_ops: Vec::new(),
            issuer: None,
            original_event_id: None,
            hold_id: None,
        }
    }

    /// The decision recording `record` with this movement: its store legs and its settlement
    /// event (none when no leg moves money).
    pub(crate) fn decision(self, record: TransactionRecord) -> Decision {
        let legs: Vec<&PlannedLeg> = self.legs.iter().filter(|l| l.amount_fen > 0).collect();
        let store_legs = legs
            .iter()
            .enumerate()
            .map(|(i, l)| TxnLeg {
                leg_no: (i + 1) as u8,
                kind: l.kind,
                institution: l.debit.institution.clone(),
                account_id: l.account,
                amount_fen: fen(l.amount_fen),
            })
            .collect();
        let event_legs: Vec<Leg> = legs
            .iter()
            .enumerate()
            .map(|(i, l)| Leg {
                leg_no: (i + 1) as u8,
                kind: l.kind,
                debit: l.debit.clone(),
                credit: l.credit.clone(),
                amount_fen: fen(l.amount_fen),
            })
            .collect();
        let total: i64 = legs.iter().map(|l| l.amount_fen).sum();
        let event = (!event_legs.is_empty()).then(|| SettlementEvent {
            event_id: record.transaction_id.0,
            schema_version: SCHEMA_VERSION,
            event_type: self.event_type,
            occurred_at: Utc::now(),
            transaction_id: record.transaction_id.0,
            institutions: Institutions {
                acquirer: record.acquirer.clone(),
                issuer: self.issuer,
            },
            currency: Currency::Cny,
            amount_fen: fen(total),
            legs: event_legs,
            references: References {
                rrn: record.rrn.clone(),
                stan: record.stan,
                terminal_id: record.terminal_id.clone(),
                transmission_at: record.transmission_at.clone(),
                original_event_id: self.original_event_id,
                hold_id: self.hold_id,
            },
        });
        Decision {
            transaction: record,
            legs: store_legs,
            balance_ops: self.balance_ops,
            event,
            reversal: None,
            advice: None,
            atc: None,
            risk: None,
        }
    }
}

/// Why a decision was not committed, as the pipeline answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// What the acquirer is answered.
    pub code: ResponseCode,
    /// The connection died during COMMIT and the store could not learn in time whether it
    /// committed: an approval must then be declined with its compensation recorded
    /// ([`crate::store::spool::Compensation`]).
    pub outcome_unknown: bool,
}

/// The decision of a transaction that moves no money (a decline, a balance inquiry).
pub(crate) fn no_movement(record: TransactionRecord, atc: Option<CardAtc>) -> Decision {
    Decision {
        transaction: record,
        legs: Vec::new(),
        balance_ops: Vec::new(),
        event: None,
        reversal: None,
        advice: None,
        atc,
        risk: None,
    }
}

impl<S: Store> Pipeline<S> {
    /// The transaction row of a decision on `req`.
    pub(crate) fn record(
        &self,
        req: &Request,
        kind: TransactionKind,
        card: Option<&CardEntry>,
        issuer: Option<InstitutionId>,
        code: ResponseCode,
    ) -> TransactionRecord {
        TransactionRecord {
            transaction_id: TransactionId(Uuid::now_v7()),
            kind,
            mti: req.mti.as_str().to_owned(),
            processing_code: req.processing_code.clone(),
            card_id: card.map(|c| c.card.card_id),
            pan_masked: req.pan.as_ref().map(Pan::masked),
            acquirer: req.acquirer.clone(),
            issuer,
            terminal_id: req.terminal_id.clone(),
            stan: req.stan,
            rrn: req.rrn.clone(),
            transmission_at: req.transmission_at.clone(),
            amount_fen: req.amount_fen,
            response_code: code,
            original_transaction_id: None,
            decided_at_us: crate::store::now_us(),
        }
    }

    /// Commits a decision through the writer and waits until it is durable.
    pub(crate) async fn commit(&self, decision: Decision) -> Result<Committed, ResponseCode> {
        self.commit_detailed(decision).await.map_err(|r| r.code)
    }

    /// [`Pipeline::commit`], telling a refusal apart from a commit whose outcome is unknown.
    pub(crate) async fn commit_detailed(&self, decision: Decision) -> Result<Committed, Refusal> {
        let refused = |code| Refusal {
            code,
            outcome_unknown: false,
        };
        let atc = decision.atc;
        let submitted = Instant::now();
        let result = self.writer.submit(decision).await;
        self.metrics
            .commit_wait
            .observe_us(u64::try_from(submitted.elapsed().as_micros()).unwrap_or(u64::MAX));
        match result {
            Ok(c) => {
                if let Some(a) = atc {
                    self.cards.note_atc(a.card_id, a.atc);
                }
                Ok(c)
            }
            Err(WriteError::Decision(DecisionError::AtcNotIncreasing {
                card_id, atc_max, ..
            })) => {
                // Another node accepted this ATC or a later one first.
                tracing::warn!(card = card_id.0, "ATC not above the card's last at commit");
                self.cards.note_atc(card_id, atc_max);
                Err(refused(ResponseCode::SuspectedFraud))
            }
            Err(WriteError::Decision(e @ DecisionError::DailyAmountExceeded(_))) => {
                tracing::info!(error = %e, "daily limit reached at commit");
                Err(refused(ResponseCode::ExceedsAmountLimit))
            }
            Err(WriteError::Decision(e @ DecisionError::DailyCountExceeded(_))) => {
                tracing::info!(error = %e, "daily count reached at commit");
                Err(refused(ResponseCode::ExceedsFrequencyLimit))
            }
            Err(WriteError::Decision(e @ DecisionError::StandInLimitExceeded(_))) => {
                // Another node stood in for this card meanwhile, up to the day's limit.
                tracing::info!(error = %e, "stand-in limit reached at commit");
                Err(refused(ResponseCode::IssuerUnavailable))
            }
            Err(WriteError::Decision(DecisionError::PinTriesExceeded(card))) => {
                // Another node (or this one before a restart) counted the last wrong PIN.
                self.cards
                    .set_status(card, crate::store::CardStatus::Blocked);
                Err(refused(ResponseCode::PinTriesExceeded))
            }
            Err(WriteError::Decision(DecisionError::Duplicate { .. })) => {
                Err(refused(ResponseCode::DuplicateTransmission))
            }
            Err(WriteError::Decision(e @ DecisionError::AlreadyReversed { .. })) => {
                // Only an approved reversal is refused so: its original was reversed meanwhile
                // (another 0400, its 0420 repeat, or the switch's compensation of an approval
                // answered 96, on this node or another). Like a repeat, the reversal service
                // answers it 00 with nothing moved.
                tracing::info!(error = %e, "original reversed meanwhile: nothing more to undo");
                Err(refused(ResponseCode::DuplicateTransmission))
            }
            Err(WriteError::Decision(DecisionError::RefundsExceedOriginal(_))) => {
                // Another refund of the same original committed first (ISO 8583:1987 13).
                Err(refused(ResponseCode::InvalidAmount))
            }
            Err(WriteError::Decision(DecisionError::InsufficientFunds(a))) => {
                self.cards.forget_balance(a);
                Err(refused(ResponseCode::InsufficientFunds))
            }
            Err(WriteError::Decision(e @ DecisionError::OutcomeUnknown(_))) => {
                // The connection died during COMMIT and the database did not answer in time:
                // the caller records the decision's compensation with its decline.
                tracing::error!(error = %e, "decision's commit outcome unknown; answered 96");
                Err(Refusal {
                    code: ResponseCode::SystemMalfunction,
                    outcome_unknown: true,
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "decision not committed");
                Err(refused(ResponseCode::SystemMalfunction))
            }
        }
    }

    /// Records a decline (no money moves). A decline that cannot be recorded is still
    /// answered with its code; a duplicate is answered 94.
    pub(crate) async fn decline(
        &self,
        req: &Request,
        kind: TransactionKind,
        card: Option<&CardEntry>,
        code: ResponseCode,
    ) -> Outcome {
        self.decline_consuming(req, kind, card, code, None).await
    }

    /// [`Pipeline::decline`] of a request whose cryptogram verified: the decline consumes its
    /// ATC, so the same field 55 cannot be tried again.
    pub(crate) async fn decline_consuming(
        &self,
        req: &Request,
        kind: TransactionKind,
        card: Option<&CardEntry>,
        code: ResponseCode,
        atc: Option<CardAtc>,
    ) -> Outcome {
        debug_assert!(!code.is_approved());
        let issuer = card.map(|c| c.card.issuer.clone());
        let decision = no_movement(self.record(req, kind, card, issuer, code), atc);
        match self.commit(decision).await {
            Err(ResponseCode::DuplicateTransmission) => {
                Outcome::answer(ResponseCode::DuplicateTransmission)
            }
            _ => Outcome::answer(code),
        }
    }
}
