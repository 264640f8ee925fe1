//! Reversals from acquirers (0400/0401 requests, 0420/0421 advices) and the release of
//! authorization holds that were never completed.
//!
//! A reversal finds its original by RRN (field 37), terminal and original STAN (90.2), undoes
//! every leg in one decision (personal account and entitlement credited back, a pending hold
//! released), queues a 0420 for the bank when the original had a bank leg, and publishes a
//! `reversal` event whose legs mirror the original's. It is idempotent: a repeat (0421, or the
//! same reversal again) finds the original already reversed and answers 00 without moving
//! money twice. A reversal of something that does not exist is answered 25 (0400) or simply
//! acknowledged (0420: advices cannot be declined).

use super::request::Request;
use super::services::{cst_now, party, PlannedLeg};
use super::{Outcome, Pipeline};
use crate::store::{
    BalanceOp, HoldId, HoldState, ReversalId, ReversalReason, ReversalRequest, Store,
    StoredTransaction, TransactionId, TransactionKind, TransactionRecord,
};
use schemas::domain::{AmountFen, ResponseCode, TransmissionDateTime};
use schemas::events::{EventType, LedgerAccount, LegKind};

fn fen(v: i64) -> AmountFen {
    AmountFen::new(v).unwrap_or(AmountFen::ZERO)
}

const REVERSIBLE: [TransactionKind; 6] = [
    TransactionKind::MedicalBillSplit,
    TransactionKind::Purchase,
    TransactionKind::Preauthorization,
    TransactionKind::Completion,
    TransactionKind::BenefitCredit,
    TransactionKind::Refund,
];

impl<S: Store> Pipeline<S> {
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
        let original = found.iter().find(|t| {
            REVERSIBLE.contains(&t.record.kind)
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
            Err(ResponseCode::DuplicateTransmission) => Outcome::answer(ResponseCode::Approved),
            Err(code) => acknowledge(code),
        }
    }

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
        let mut ops = Vec::new();
        let mut legs = Vec::new();
        let mut mirror = Vec::new();
        let mut bank_fen = 0;
        let mut event_type = EventType::Reversal;
        let mut hold = None;
        if o.kind == TransactionKind::Preauthorization {
            let hold_id = HoldId(o.transaction_id.0);
            match self.store.hold(hold_id).await {
                Ok(Some(h)) if h.state == HoldState::Pending => {
                    ops.push(BalanceOp::ReleaseHold { hold_id });
                    mirror.push((h.account_id, h.amount_fen));
                    event_type = EventType::HoldRelease;
                    hold = Some(hold_id.0);
                }
                // Captured or released already: its completion is reversed on its own.
                Ok(Some(_)) => return Ok(Outcome::answer(ResponseCode::Approved)),
                _ => return Err(ResponseCode::UnableToLocateRecord),
            }
        }
        for leg in &original.legs {
            let (debit, credit) = self.original_parties(o, leg.kind, &leg.institution);
            // The reversal moves the money back: credit becomes debit.
            legs.push(PlannedLeg {
                kind: leg.kind,
                debit: if event_type == EventType::HoldRelease {
                    debit.clone()
                } else {
                    credit.clone()
                },
                credit: if event_type == EventType::HoldRelease {
                    credit
                } else {
                    debit
                },
                account: leg.account_id,
                amount_fen: leg.amount_fen.get(),
            });
            match (leg.kind, leg.account_id) {
                (LegKind::Bank, _) => bank_fen += leg.amount_fen.get(),
                (_, Some(account)) if event_type != EventType::HoldRelease => {
                    ops.push(BalanceOp::Credit {
                        account_id: account,
                        amount_fen: leg.amount_fen,
                    });
                    mirror.push((account, leg.amount_fen.get()));
                }
                _ => {}
            }
        }
        let mut decision = self.money_decision(
            record,
            event_type,
            &legs,
            ops,
            o.issuer.clone(),
            original.event_id,
            hold,
        );
        if bank_fen > 0 {
            if let Some(bank) = &o.issuer {
                let (f7, _, _) = cst_now();
                decision.reversal = Some(ReversalRequest {
                    reversal_id: ReversalId(uuid::Uuid::now_v7()),
                    destination: bank.clone(),
                    reason: ReversalReason::AcquirerRequest,
                    amount_fen: fen(bank_fen),
                    stan: self.banks.next_stan(bank),
                    transmission_at: TransmissionDateTime::parse(&f7)
                        .map_err(|_| ResponseCode::SystemMalfunction)?,
                    first_attempt_at_us: crate::store::now_us(),
                });
                self.metrics
                    .reversals_queued
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.commit(decision).await?;
        for (account, amount) in mirror {
            self.cards.adjust(account, amount);
        }
        Ok(Outcome::answer(ResponseCode::Approved))
    }

    /// Who paid and who received a leg of `o`, as its event said.
    fn original_parties(
        &self,
        o: &TransactionRecord,
        kind: LegKind,
        payer: &schemas::domain::InstitutionId,
    ) -> (schemas::events::Party, schemas::events::Party) {
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

    /// Releases holds past their expiry (at most `limit`), each as its own decision with a
    /// `hold_release` event. Returns how many were released.
    pub async fn release_expired_holds(
        &self,
        limit: u32,
    ) -> Result<usize, crate::store::StoreError> {
        let now = crate::store::now_us();
        let expired = self.store.expired_holds(now, limit).await?;
        let mut released = 0;
        for hold in expired {
            let Some(original) = self.store.transaction(hold.transaction_id).await? else {
                continue;
            };
            let o = &original.record;
            // Recorded as a switch-originated administrative advice (0620), so its duplicate
            // key never collides with the acquirer's own messages.
            let record = TransactionRecord {
                transaction_id: TransactionId(uuid::Uuid::now_v7()),
                kind: TransactionKind::HoldRelease,
                mti: "0620".into(),
                processing_code: o.processing_code.clone(),
                card_id: o.card_id,
                pan_masked: o.pan_masked.clone(),
                acquirer: o.acquirer.clone(),
                issuer: o.issuer.clone(),
                terminal_id: o.terminal_id.clone(),
                stan: o.stan,
                rrn: o.rrn.clone(),
                transmission_at: o.transmission_at.clone(),
                amount_fen: fen(hold.amount_fen),
                response_code: ResponseCode::Approved,
                original_transaction_id: Some(o.transaction_id),
                decided_at_us: now,
            };
            let legs = [PlannedLeg {
                kind: LegKind::PersonalAccount,
                debit: party(&self.cfg.insurance_fund, LedgerAccount::PersonalAccounts),
                credit: party(&o.acquirer, LedgerAccount::Merchant),
                account: Some(hold.account_id),
                amount_fen: hold.amount_fen,
            }];
            let ops = vec![BalanceOp::ReleaseHold {
                hold_id: hold.hold_id,
            }];
            let decision = self.money_decision(
                record,
                EventType::HoldRelease,
                &legs,
                ops,
                None,
                original.event_id,
                Some(hold.hold_id.0),
            );
            if self.commit(decision).await.is_ok() {
                self.cards.adjust(hold.account_id, hold.amount_fen);
                released += 1;
                self.metrics
                    .holds_released
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(released)
    }
}
