//! Completion (0220, field 37 = the pre-authorization's RRN): the hold is captured, for at most
//! the amount it holds; what it held beyond the completion goes back to the account.
//!
//! Parse: nothing beyond the request. Check: none on the card (an advice of what the acquirer
//! already did; the pre-authorization checked the card). Decide: the pre-authorization and its
//! hold. Commit: the capture. Respond: 00 once decided, as for every advice (a missing
//! original, or a hold no longer pending, is recorded as a decline, 25); 96 when the switch
//! could not read the original or record the capture, so the acquirer sends the completion
//! again (store-and-forward) and the resend is decided afresh (`Pipeline::authorize` forgets its
//! duplicate key). Acknowledged without the capture, it would be lost: the hold expires, and
//! the merchant is never paid.

use crate::pipeline::decision::{fen, party, Movement, PlannedLeg};
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::Pipeline;
use crate::store::{BalanceOp, HoldId, HoldState, Store, TransactionKind};
use schemas::domain::ResponseCode;
use schemas::events::{EventType, LedgerAccount, LegKind};

impl<S: Store> Pipeline<S> {
    /// Completion (0220) of a pre-authorization: captures the hold.
    pub(crate) async fn completion(&self, req: &Request) -> Outcome {
        let kind = TransactionKind::Completion;
        let original = match self
            .original(req, &[TransactionKind::Preauthorization])
            .await
        {
            Ok(Some(o)) => o,
            Ok(None) => return self.acknowledge_unknown(req, kind).await,
            Err(code) => return Outcome::answer(code),
        };
        let hold_id = HoldId(original.record.transaction_id.0);
        let hold = match self.store.hold(hold_id).await {
            Ok(Some(h)) => h,
            Ok(None) => return self.acknowledge_unknown(req, kind).await,
            Err(e) => {
                tracing::error!(error = %e, "hold of a completion not read");
                return Outcome::answer(ResponseCode::SystemMalfunction);
            }
        };
        if hold.state != HoldState::Pending {
            // Expired and released, or captured by an earlier completion: nothing to capture.
            return self.acknowledge_unknown(req, kind).await;
        }
        let amount = req.amount_fen.get().min(hold.amount_fen);
        let o = &original.record;
        let mut record = self.record(req, kind, None, None, ResponseCode::Approved);
        record.card_id = o.card_id;
        record.pan_masked = o.pan_masked.clone();
        record.original_transaction_id = Some(o.transaction_id);
        record.amount_fen = fen(amount);
        let legs = [PlannedLeg {
            kind: LegKind::PersonalAccount,
            debit: party(&self.cfg.insurance_fund, LedgerAccount::PersonalAccounts),
            credit: party(&o.acquirer, LedgerAccount::Merchant),
            account: Some(hold.account_id),
            amount_fen: amount,
        }];
        let movement = Movement {
            balance_ops: vec![BalanceOp::CaptureHold {
                hold_id,
                amount_fen: fen(amount),
            }],
            original_event_id: original.event_id,
            hold_id: Some(hold_id.0),
            ..Movement::new(EventType::Completion, &legs)
        };
        match self.commit(movement.decision(record)).await {
            Ok(_) => self.cards.adjust(hold.account_id, hold.amount_fen - amount),
            Err(ResponseCode::DuplicateTransmission) => {}
            Err(ResponseCode::SystemMalfunction) => {
                return Outcome::answer(ResponseCode::SystemMalfunction)
            }
            Err(code) => tracing::warn!(code = %code, "completion not applied"),
        }
        Outcome::answer(ResponseCode::Approved)
    }

    /// A completion of nothing known, or of nothing left to capture: recorded as a decline
    /// (25), acknowledged with 00.
    async fn acknowledge_unknown(&self, req: &Request, kind: TransactionKind) -> Outcome {
        let _ = self
            .decline(req, kind, None, ResponseCode::UnableToLocateRecord)
            .await;
        Outcome::answer(ResponseCode::Approved)
    }
}
