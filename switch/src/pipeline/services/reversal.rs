//! Reversals from acquirers (0400/0401 requests, 0420/0421 advices).
//!
//! A reversal finds its original by RRN (field 37), acquirer, terminal and original STAN (90.2), undoes
//! every leg in one decision (personal account and entitlement credited back, a pending hold
//! released), queues a 0420 for the bank when the original had a bank leg, and publishes a
//! `reversal` event whose legs mirror the original's. It is idempotent: a repeat (0421, or the
//! same reversal again) finds the original already reversed and answers 00 without moving
//! money twice — also when the two are decided at once (on one node or two): the group commit
//! refuses the second approved reversal of an original (`store::plan::reversed_once`), and
//! the loser is answered 00 as a repeat. A reversal of something that does not exist is answered 25 (0400) or simply
//! acknowledged (0420: advices cannot be declined).
//!
//! Parse: the original's references (field 90). Check: none on the card (the original was
//! checked; a reversal only gives back). Decide: the original, not yet reversed, for its whole
//! amount (partial reversals are not offered: 13), and what undoing it moves. Commit: the
//! mirrored legs, the credits or the hold release, the 0420 for the bank. Respond: 00.

use crate::pipeline::bank_leg::cst_now;
use crate::pipeline::decision::{fen, party, Movement, PlannedLeg};
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::Pipeline;
use crate::store::{
    AccountId, BalanceOp, HoldId, HoldState, ReversalId, ReversalReason, ReversalRequest, Store,
    StoredTransaction, TransactionKind, TransactionRecord,
};
use schemas::domain::{InstitutionId, ResponseCode, TransmissionDateTime};
use schemas::events::{EventType, LedgerAccount, LegKind, Party};
use std::sync::atomic::Ordering;

const REVERSIBLE: [TransactionKind; 6] = [
    TransactionKind::MedicalBillSplit,
    TransactionKind::Purchase,
    TransactionKind::Preauthorization,
    TransactionKind::Completion,
    TransactionKind::BenefitCredit,
    TransactionKind::Refund,
];

/// What undoing an original moves.
struct Undo {
    event_type: EventType,
    legs: Vec<PlannedLeg>,
    balance_ops: Vec<BalanceOp>,
    /// What the mirrored balances get back once committed.
    mirror: Vec<(AccountId, i64)>,
    /// What the bank booked of the original (its bank legs, or the benefit credit it
    /// received), for the 0420 to the bank.
    bank_fen: i64,
    /// The pre-authorization's hold, released.
    hold: Option<uuid::Uuid>,
}

impl<S: Store> Pipeline<S> {
    /// A reversal or reversal advice.
    pub(crate) async fn reversal(&self, req: &Request) -> Outcome {
        let advice = req.mti.as_str().starts_with("042");
        let acknowledge = |code: ResponseCode| {
            if advice {
                Outcome::answer(ResponseCode::Approved)
            } else {
                Outcome::answer(code)
            }
        };
        let original_stan = req.original.as_ref().map(|o| o.stan);
        let found = match self.store.transactions_by_rrn(&req.rrn).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "reversal lookup failed");
                return Outcome::answer(ResponseCode::SystemMalfunction);
            }
        };
        // The acquirer too: terminal ids and RRNs are each acquirer's own numbering, and one
        // acquirer must not undo another's transaction.
        let original = found.iter().find(|t| {
            REVERSIBLE.contains(&t.record.kind)
                && t.record.acquirer == req.acquirer
                && t.record.terminal_id == req.terminal_id
                && original_stan.is_none_or(|s| t.record.stan == s)
        });
        let Some(original) = original else {
            return acknowledge(ResponseCode::UnableToLocateRecord);
        };
        let already = found.iter().any(|t| {
            t.record.kind == TransactionKind::Reversal
                && t.record.is_approved()
                && t.record.original_transaction_id == Some(original.record.transaction_id)
        });
        if already || !original.record.is_approved() {
            // Nothing (more) to undo: a declined original moved no money.
            return Outcome::answer(ResponseCode::Approved);
        }
        if req.amount_fen != original.record.amount_fen {
            // Partial reversals are not offered.
            return acknowledge(ResponseCode::InvalidAmount);
        }
        let card_lock = match original.record.card_id {
            Some(c) => Some(self.cards.lock(c).lock().await),
            None => None,
        };
        let out = self.reverse(req, original).await;
        drop(card_lock);
        match out {
            Ok(o) => o,
            // A repeat, or the original reversed meanwhile by another reversal (the store keeps
            // one approved reversal per original: `store::plan::reversed_once`): nothing moved.
            Err(ResponseCode::DuplicateTransmission) => Outcome::answer(ResponseCode::Approved),
            Err(code) => acknowledge(code),
        }
    }

    /// Undoes `original` in one decision, with a 0420 for its bank legs.
    async fn reverse(
        &self,
        req: &Request,
        original: &StoredTransaction,
    ) -> Result<Outcome, ResponseCode> {
        let o = &original.record;
        let mut record = self.record(
            req,
            TransactionKind::Reversal,
            None,
            o.issuer.clone(),
            ResponseCode::Approved,
        );
        record.card_id = o.card_id;
        record.pan_masked = o.pan_masked.clone();
        record.original_transaction_id = Some(o.transaction_id);
        let Some(undo) = self.undo(original).await? else {
            // Captured or released already: its completion is reversed on its own.
            return Ok(Outcome::answer(ResponseCode::Approved));
        };
        let movement = Movement {
            event_type: undo.event_type,
            legs: &undo.legs,
            balance_ops: undo.balance_ops,
            issuer: o.issuer.clone(),
            original_event_id: original.event_id,
            hold_id: undo.hold,
        };
        let mut decision = movement.decision(record);
        decision.reversal = self.bank_reversal(o, undo.bank_fen)?;
        self.commit(decision).await?;
        for (account, amount) in undo.mirror {
            self.cards.adjust(account, amount);
        }
        Ok(Outcome::answer(ResponseCode::Approved))
    }

    /// What undoing `original` moves: its legs the other way (a pending hold is released
    /// instead); `None` when its hold was captured or released already.
    async fn undo(&self, original: &StoredTransaction) -> Result<Option<Undo>, ResponseCode> {
        let o = &original.record;
        let mut undo = Undo {
            event_type: EventType::Reversal,
            legs: Vec::new(),
            balance_ops: Vec::new(),
            mirror: Vec::new(),
            bank_fen: 0,
            hold: None,
        };
        if o.kind == TransactionKind::Preauthorization {
            let hold_id = HoldId(o.transaction_id.0);
            match self.store.hold(hold_id).await {
                Ok(Some(h)) if h.state == HoldState::Pending => {
                    undo.balance_ops.push(BalanceOp::ReleaseHold { hold_id });
                    undo.mirror.push((h.account_id, h.amount_fen));
                    undo.event_type = EventType::HoldRelease;
                    undo.hold = Some(hold_id.0);
                }
                Ok(Some(_)) => return Ok(None),
                _ => return Err(ResponseCode::UnableToLocateRecord),
            }
        }
        let release = undo.event_type == EventType::HoldRelease;
        for leg in &original.legs {
            let (debit, credit) = self.original_parties(o, leg.kind, &leg.institution);
            // The reversal moves the money back: credit becomes debit (a released hold never
            // moved it).
            let (debit, credit) = if release {
                (debit, credit)
            } else {
                (credit, debit)
            };
            undo.legs.push(PlannedLeg {
                kind: leg.kind,
                debit,
                credit,
                account: leg.account_id,
                amount_fen: leg.amount_fen.get(),
            });
            // What the bank booked: its own legs, and the benefit credit it received from the
            // fund (a social-security-fund leg); both are given back to it by the 0420.
            if matches!(leg.kind, LegKind::Bank | LegKind::SocialSecurityFund) {
                undo.bank_fen += leg.amount_fen.get();
            }
            match (leg.kind, leg.account_id) {
                (LegKind::Bank, _) => {}
                (_, Some(account)) if !release => {
                    undo.balance_ops.push(BalanceOp::Credit {
                        account_id: account,
                        amount_fen: leg.amount_fen,
                    });
                    undo.mirror.push((account, leg.amount_fen.get()));
                }
                _ => {}
            }
        }
        Ok(Some(undo))
    }

    /// The 0420 that gives the bank back its legs of `o` (`bank_fen`), on the bank link's next
    /// STAN.
    fn bank_reversal(
        &self,
        o: &TransactionRecord,
        bank_fen: i64,
    ) -> Result<Option<ReversalRequest>, ResponseCode> {
        let (true, Some(bank)) = (bank_fen > 0, &o.issuer) else {
            return Ok(None);
        };
        let (f7, _, _) = cst_now();
        let reversal = ReversalRequest {
            reversal_id: ReversalId(uuid::Uuid::now_v7()),
            destination: bank.clone(),
            reason: ReversalReason::AcquirerRequest,
            amount_fen: fen(bank_fen),
            stan: self.banks.next_stan(bank),
            transmission_at: TransmissionDateTime::parse(&f7)
                .map_err(|_| ResponseCode::SystemMalfunction)?,
            first_attempt_at_us: crate::store::now_us(),
        };
        self.metrics
            .reversals_queued
            .fetch_add(1, Ordering::Relaxed);
        Ok(Some(reversal))
    }

    /// Who paid and who received a leg of `o`, as its event said.
    fn original_parties(
        &self,
        o: &TransactionRecord,
        kind: LegKind,
        payer: &InstitutionId,
    ) -> (Party, Party) {
        let fund = &self.cfg.insurance_fund;
        match kind {
            LegKind::PooledFund => (
                party(fund, LedgerAccount::PooledFund),
                party(&o.acquirer, LedgerAccount::Merchant),
            ),
            LegKind::PersonalAccount => (
                party(fund, LedgerAccount::PersonalAccounts),
                party(&o.acquirer, LedgerAccount::Merchant),
            ),
            LegKind::SocialSecurityFund => (
                party(payer, LedgerAccount::SocialSecurityFund),
                party(
                    o.issuer.as_ref().unwrap_or(payer),
                    LedgerAccount::BankSettlement,
                ),
            ),
            LegKind::Bank | LegKind::Fee if o.kind == TransactionKind::Refund => (
                party(&o.acquirer, LedgerAccount::Merchant),
                party(
                    o.issuer.as_ref().unwrap_or(payer),
                    LedgerAccount::BankSettlement,
                ),
            ),
            LegKind::Bank | LegKind::Fee => (
                party(payer, LedgerAccount::BankSettlement),
                party(&o.acquirer, LedgerAccount::Merchant),
            ),
        }
    }
}
