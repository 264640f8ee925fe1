//! Refund of a bank purchase (0200, field 3 `20xxxx`, field 37 = the purchase's RRN): the card's
//! bank credits the account and the merchant pays it back at settlement.
//!
//! Parse: nothing beyond the request. Check: the card. Decide: the purchase it refunds (same
//! RRN, acquirer and terminal, same card), whose amount must cover this refund and every
//! approved, unreversed refund of it before (`13` otherwise: a refund on a new STAN is a new
//! request, not a duplicate, so only this running total stops a purchase being refunded twice),
//! then the bank leg (no stand-in: the bank must agree to credit). Commit: the leg from the
//! merchant, linked to the purchase; the store checks the running total again inside the group
//! commit (`store::plan`'s refund cap), where two refunds decided at once meet. Respond: the
//! bank's authorization code.

use crate::pipeline::bank_leg::BankLeg;
use crate::pipeline::cardholder::Checks;
use crate::pipeline::decision::{party, Movement, PlannedLeg};
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::Pipeline;
use crate::store::{Store, StoredTransaction, TransactionKind};
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
        let refunded_fen = match self.refunded_fen(req, &original).await {
            Ok(f) => f,
            Err(code) => return Outcome::answer(code),
        };
        if original.record.card_id != Some(card.entry.card.card_id)
            || refunded_fen.saturating_add(req.amount_fen.get()) > original.record.amount_fen.get()
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
        let decision = movement.decision(record);
        let sent = decision.clone();
        match self.commit(decision).await {
            Ok(_) => Outcome {
                code: Some(ResponseCode::Approved),
                auth_code,
                ..Outcome::default()
            },
            Err(code) => {
                card.undo_failed_approval(&sent, Some(req.amount_fen), code)
                    .await
            }
        }
    }
}

impl<S: Store> Pipeline<S> {
    /// What the approved, unreversed refunds of `original` gave back so far (refunds carry
    /// the purchase's RRN, so they are among the transactions of the request's RRN).
    async fn refunded_fen(
        &self,
        req: &Request,
        original: &StoredTransaction,
    ) -> Result<i64, ResponseCode> {
        let found = self
            .store
            .transactions_by_rrn(&req.rrn)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "refund lookup failed");
                ResponseCode::SystemMalfunction
            })?;
        let of = |kind: TransactionKind, id| {
            move |t: &&StoredTransaction| {
                t.record.kind == kind
                    && t.record.is_approved()
                    && t.record.original_transaction_id == Some(id)
            }
        };
        let original_id = original.record.transaction_id;
        Ok(found
            .iter()
            .filter(of(TransactionKind::Refund, original_id))
            .filter(|r| {
                !found
                    .iter()
                    .any(|v| of(TransactionKind::Reversal, r.record.transaction_id)(&v))
            })
            .map(|r| r.record.amount_fen.get())
            .fold(0i64, i64::saturating_add))
    }
}
