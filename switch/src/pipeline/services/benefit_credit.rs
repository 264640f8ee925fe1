//! Benefit credit (0200, field 3 `21xxxx`, 60.1 `02`): the social-security fund pays a benefit
//! into the card's bank account.
//!
//! Parse: nothing beyond the request. Check: the card. Decide: only the fund itself or a job
//! centre may pay benefits (58), the fund's account must cover it (51), then the bank leg (no
//! stand-in: the bank must agree to credit). Commit: the leg from the fund and the debit of its
//! account. Respond: the bank's authorization code.

use crate::pipeline::bank_leg::BankLeg;
use crate::pipeline::cardholder::Checks;
use crate::pipeline::decision::{fen, party, Movement, PlannedLeg};
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::Pipeline;
use crate::store::{BalanceOp, InstitutionKind, Store, TransactionKind};
use schemas::domain::{ProcessingCode, ResponseCode};
use schemas::events::{EventType, LedgerAccount, LegKind};

impl<S: Store> Pipeline<S> {
    /// Benefit credit from the social-security fund to the card's bank account.
    pub(crate) async fn benefit_credit(&self, req: &Request) -> Outcome {
        let kind = TransactionKind::BenefitCredit;
        let card = match self.check_cardholder(req, kind, Checks::CARD_ONLY).await {
            Ok(card) => card,
            Err(out) => return out,
        };
        if req.acquirer != self.cfg.social_security_fund
            && self.institution_kind(&req.acquirer) != Some(InstitutionKind::JobCentre)
        {
            return card.decline(ResponseCode::NotPermittedToTerminal).await;
        }
        let Some(fund_account) = self.cfg.social_security_fund_account else {
            return card.decline(ResponseCode::InvalidTransaction).await;
        };
        let amount = req.amount_fen.get();
        match self.cards.available(&*self.store, fund_account).await {
            Ok(v) if v >= amount => {}
            Ok(_) => return card.decline(ResponseCode::InsufficientFunds).await,
            Err(_) => return card.decline(ResponseCode::SystemMalfunction).await,
        }
        let leg = BankLeg::credit(ProcessingCode::DEPOSIT, req.amount_fen);
        let auth_code = match card.money_leg(leg).await {
            Ok(approval) => approval.auth_code,
            Err(out) => return out,
        };
        let bank = card.entry.card.issuer.clone();
        let fund = &self.cfg.social_security_fund;
        let legs = [PlannedLeg {
            kind: LegKind::SocialSecurityFund,
            debit: party(fund, LedgerAccount::SocialSecurityFund),
            credit: party(&bank, LedgerAccount::BankSettlement),
            account: Some(fund_account),
            amount_fen: amount,
        }];
        let movement = Movement {
            balance_ops: vec![BalanceOp::Debit {
                account_id: fund_account,
                amount_fen: fen(amount),
            }],
            issuer: Some(bank.clone()),
            ..Movement::new(EventType::BenefitCredit, &legs)
        };
        let record = card.approval_record(Some(bank));
        let decision = movement.decision(record);
        let sent = decision.clone();
        match self.commit(decision).await {
            Ok(_) => {
                self.cards.adjust(fund_account, -amount);
                Outcome {
                    code: Some(ResponseCode::Approved),
                    auth_code,
                    ..Outcome::default()
                }
            }
            Err(code) => {
                card.undo_failed_approval(&sent, Some(req.amount_fen), code)
                    .await
            }
        }
    }
}
