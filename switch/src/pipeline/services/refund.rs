//! Refund of a bank purchase (0200, field 3 `20xxxx`, field 37 = the purchase's RRN): the card's
//! bank credits the account and the merchant pays it back at settlement.
//!
//! Parse: nothing beyond the request. Check: the card. Decide: the purchase it refunds (same
//! RRN and terminal, same card, not less than the refund), then the bank leg (no stand-in: the
//! bank must agree to credit). Commit: the leg from the merchant, linked to the purchase.
//! Respond: the bank's authorization code.

use crate::pipeline::bank_leg::BankLeg;
use crate::pipeline::cardholder::Checks;
use crate::pipeline::decision::{party, Movement, PlannedLeg};
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::Pipeline;
use crate::store::{Store, TransactionKind};
use schemas::domain::{ProcessingCode, ResponseCode};
use schemas::events::{EventType, LedgerAccount, LegKind};

impl<S: Store> Pipeline<S> {
    /// Refund of a bank purchase, credited by the bank.
    pub(crate) async fn refund(&self, req: &Request) -> Outcome {
        let kind = TransactionKind::Refund;
        let card = match self.check_cardholder(req, kind, Checks::CARD_ONLY).await {
            Ok(card) => card,
            Err(out) => return out,
        };
        let original = match self.original(req, &[TransactionKind::Purchase]).await {
            Ok(Some(o)) => o,
            Ok(None) => return card.decline(ResponseCode::UnableToLocateRecord).await,
            Err(code) => return Outcome::answer(code),
        };
        if original.record.card_id != Some(card.entry.card.card_id)
            || req.amount_fen > original.record.amount_fen
        {
            return card.decline(ResponseCode::InvalidAmount).await;
        }
        let leg = BankLeg::credit(ProcessingCode::REFUND, req.amount_fen);
        let auth_code = match card.money_leg(leg).await {
            Ok(approval) => approval.auth_code,
            Err(out) => return out,
        };
        let bank = card.entry.card.issuer.clone();
        let legs = [PlannedLeg {
            kind: LegKind::Bank,
            debit: party(&req.acquirer, LedgerAccount::Merchant),
            credit: party(&bank, LedgerAccount::BankSettlement),
            account: None,
            amount_fen: req.amount_fen.get(),
        }];
        let mut record = card.approval_record(Some(bank.clone()));
        record.original_transaction_id = Some(original.record.transaction_id);
        let movement = Movement {
            issuer: Some(bank),
            original_event_id: original.event_id,
            ..Movement::new(EventType::Refund, &legs)
        };
        match self.commit(movement.decision(record)).await {
            Ok(_) => Outcome {
                code: Some(ResponseCode::Approved),
                auth_code,
                ..Outcome::default()
            },
            Err(code) => card.reverse_orphan_leg(req.amount_fen, code).await,
        }
    }
}
