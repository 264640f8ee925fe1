//! Balance inquiries (0200, field 3 `31xxxx`): of the personal medical-insurance account (60.1
//! `04`), answered by the switch from the store, or of the bank account, asked of the card's
//! bank. Nothing moves; the inquiry is recorded like any decision.
//!
//! Parse: nothing beyond the request. Check: the card, the ATC and ARQC of a chip card (field
//! 55 over amount 0, as `schemas/iso8583/ssc87.md` requires of every chip card: 05, 59), under
//! the card's lock, and its PIN (verified here for the personal account, carried to the bank
//! for the bank account). Decide: read the account, or
//! ask the bank (no stand-in: only the bank knows its balance). Commit: the inquiry's row and
//! the ATC it used. Respond: the balances in field 54 and the ARPC in 55.

use crate::pipeline::bank_leg::{BankAnswer, BankLeg, IfBankDown};
use crate::pipeline::cardholder::{Checks, PinRule};
use crate::pipeline::decision::no_movement;
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::Pipeline;
use crate::store::{Store, TransactionKind};
use hsm_sim::keys::Tpk;
use schemas::domain::{AmountFen, Currency, ProcessingCode, ResponseCode};
use schemas::iso8583::{AccountType, AdditionalAmount, AdditionalAmounts, AmountType};

/// The card, its cryptogram (under its lock, so the ATC is consumed once) and a PIN,
/// verified by `pin`.
fn checks(pin: PinRule<'_>) -> Checks<'_> {
    Checks {
        lock: true,
        arqc: true,
        pin,
        ..Checks::CARD_ONLY
    }
}

/// Field 54 (ISO 8583:1987 additional amounts) of a personal-account balance: the ledger
/// (`01`) then the available (`02`) balance of account type `96`, in fen with their sign;
/// `None` when one needs more than 12 digits.
fn balance_field54(ledger_fen: i64, available_fen: i64) -> Option<String> {
    let amount = |amount_type, fen| {
        AdditionalAmount::new(
            AccountType::MEDICAL_INSURANCE,
            amount_type,
            Currency::Cny,
            fen,
        )
    };
    let amounts = vec![
        amount(AmountType::LEDGER_BALANCE, ledger_fen).ok()?,
        amount(AmountType::AVAILABLE_BALANCE, available_fen).ok()?,
    ];
    AdditionalAmounts::new(amounts).ok().map(|a| a.to_string())
}

impl<S: Store> Pipeline<S> {
    /// Balance of the personal medical-insurance account (field 54).
    pub(crate) async fn personal_balance(&self, req: &Request, tpk: &Tpk) -> Outcome {
        let kind = TransactionKind::BalanceInquiry;
        let card = match self
            .check_cardholder(req, kind, checks(PinRule::Verify(tpk)))
            .await
        {
            Ok(card) => card,
            Err(out) => return out,
        };
        let Some(account) = card.entry.personal else {
            return card.decline(ResponseCode::NotPermittedToCardholder).await;
        };
        let field54 = match self.store.account(account).await {
            Ok(Some(a)) => balance_field54(a.balance_fen, a.balance_fen - a.held_fen),
            _ => None,
        };
        let Some(field54) = field54 else {
            return card.decline(ResponseCode::SystemMalfunction).await;
        };
        let mut decision = no_movement(card.approval_record(None), card.atc());
        decision.risk = card.risk();
        match self.commit(decision).await {
            Ok(_) => Outcome {
                code: Some(ResponseCode::Approved),
                field54: Some(field54),
                field55: card.approved_field55().await,
                ..Outcome::default()
            },
            Err(code) => Outcome::answer(code),
        }
    }

    /// Balance of the bank account, asked of the bank; its field 54 is passed on.
    pub(crate) async fn bank_balance(&self, req: &Request, tpk: &Tpk) -> Outcome {
        let kind = TransactionKind::BalanceInquiry;
        let checks = checks(PinRule::ForTheBank(tpk));
        let card = match self.check_cardholder(req, kind, checks).await {
            Ok(card) => card,
            Err(out) => return out,
        };
        let leg = BankLeg {
            processing_code: ProcessingCode::BALANCE_INQUIRY,
            amount: AmountFen::ZERO,
            pin: card.pin_for_bank(),
            if_bank_down: IfBankDown::Decline,
        };
        match card.ask_bank(&leg).await {
            Ok(BankAnswer::Approved { field54, .. }) => {
                let issuer = Some(card.entry.card.issuer.clone());
                let decision = no_movement(card.approval_record(issuer), card.atc());
                match self.commit(decision).await {
                    Ok(_) => Outcome {
                        code: Some(ResponseCode::Approved),
                        field54,
                        field55: card.approved_field55().await,
                        ..Outcome::default()
                    },
                    Err(code) => Outcome::answer(code),
                }
            }
            Ok(BankAnswer::Declined(code)) | Err(code) => card.decline(code).await,
            Ok(BankAnswer::StandIn(..) | BankAnswer::Unanswered { .. }) => {
                card.decline(ResponseCode::IssuerUnavailable).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_54_carries_ledger_then_available_each_with_its_sign() {
        assert_eq!(
            balance_field54(50_000, -7).as_deref(),
            Some("9601156C0000000500009602156D000000000007")
        );
        assert_eq!(balance_field54(1_000_000_000_000, 0), None);
    }
}
