//! Purchase on the card's bank application (0200, field 3 `00xxxx`): the bank pays all of it.
//!
//! Parse: nothing beyond the request. Check: the card, its ARQC, a PIN block for the bank to
//! verify, the card's limits. Decide: the bank leg, with stand-in when the bank's link is down.
//! Commit: the bank leg to the merchant, the stand-in advice and the ATC. Respond: the bank's
//! authorization code (or the stand-in's) and the ARPC.

use crate::pipeline::bank_leg::{BankLeg, IfBankDown};
use crate::pipeline::cardholder::{Checks, PinRule};
use crate::pipeline::decision::{party, Movement, PlannedLeg};
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::Pipeline;
use crate::store::{Store, TransactionKind};
use hsm_sim::keys::Tpk;
use schemas::domain::{ProcessingCode, ResponseCode};
use schemas::events::{EventType, LedgerAccount, LegKind};

/// The card, its cryptogram and limits; the PIN is the bank's to verify.
fn checks(tpk: &Tpk) -> Checks<'_> {
    Checks {
        block_lost_chip: true,
        lock: true,
        arqc: true,
        pin: PinRule::ForTheBank(tpk),
        limits: true,
    }
}

impl<S: Store> Pipeline<S> {
    /// A purchase paid entirely by the card's bank.
    pub(crate) async fn bank_purchase(&self, req: &Request, tpk: &Tpk) -> Outcome {
        let kind = TransactionKind::Purchase;
        let mut card = match self.check_cardholder(req, kind, checks(tpk)).await {
            Ok(card) => card,
            Err(out) => return out,
        };
        let leg = BankLeg {
            processing_code: ProcessingCode::PURCHASE,
            amount: req.amount_fen,
            pin: card.pin_for_bank(),
            if_bank_down: IfBankDown::StandIn,
        };
        let approval = match card.money_leg(leg).await {
            Ok(approval) => approval,
            Err(out) => return out,
        };
        let bank = card.entry.card.issuer.clone();
        let legs = [PlannedLeg {
            kind: LegKind::Bank,
            debit: party(&bank, LedgerAccount::BankSettlement),
            credit: party(&req.acquirer, LedgerAccount::Merchant),
            account: None,
            amount_fen: req.amount_fen.get(),
        }];
        let movement = Movement {
            issuer: Some(bank.clone()),
            ..Movement::new(EventType::Purchase, &legs)
        };
        let mut decision = movement.decision(card.approval_record(Some(bank)));
        decision.advice = approval.advice.clone();
        decision.atc = card.atc();
        decision.risk = card.risk_with(&approval);
        let sent = decision.clone();
        match self.commit_detailed(decision).await {
            Ok(_) => {
                self.count_advice(&approval);
                card.keep_reservation();
                Outcome {
                    code: Some(ResponseCode::Approved),
                    auth_code: approval.auth_code,
                    field55: card.approved_field55().await,
                    ..Outcome::default()
                }
            }
            // The bank booked the leg: its 0420, and the approval's compensation in case the
            // approval committed after all.
            Err(r) if approval.bank_saw_it() => {
                card.undo_failed_approval(&sent, Some(req.amount_fen), r.code)
                    .await
            }
            // A stand-in approval whose commit outcome is unknown: if it committed, its advice
            // (0220) is queued, and its compensation reverses it with a 0420 after the advice.
            Err(r) if r.outcome_unknown => card.undo_failed_approval(&sent, None, r.code).await,
            Err(r) => Outcome::answer(r.code),
        }
    }
}
