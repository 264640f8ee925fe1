//! Authorization holds that were never completed: past their expiry
//! ([`PipelineConfig::hold_ttl`](super::PipelineConfig::hold_ttl)) they are released, so the
//! personal account gets its money back (housekeeping, `switch::app`).
//!
//! Each release is its own decision with a `hold_release` event, recorded as a
//! switch-originated administrative advice (0620) so its duplicate key never collides with the
//! acquirer's own messages.

use super::decision::{fen, party, Movement, PlannedLeg};
use super::Pipeline;
use crate::store::{BalanceOp, Store, TransactionId, TransactionKind, TransactionRecord};
use schemas::domain::ResponseCode;
use schemas::events::{EventType, LedgerAccount, LegKind};

impl<S: Store> Pipeline<S> {
    /// Releases holds past their expiry (at most `limit`), each as its own decision with a
    /// `hold_release` event. Returns how many were released.
    pub async fn release_expired_holds(
        &self,
        limit: u32,
    ) -> Result<usize, crate::store::StoreError> {
        // Expiry by the pipeline's clock (the one the hold's expiry was set by): a jump back
        // releases nothing early, a jump forward past the expiry releases the hold, once (its
        // state is then released).
        let expired = self
            .store
            .expired_holds(self.cfg.clock.now_us(), limit)
            .await?;
        let now = crate::store::now_us();
        let mut released = 0;
        for hold in expired {
            let Some(original) = self.store.transaction(hold.transaction_id).await? else {
                continue;
            };
            let o = &original.record;
            // A switch-originated administrative advice (0620).
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
            let movement = Movement {
                balance_ops: vec![BalanceOp::ReleaseHold {
                    hold_id: hold.hold_id,
                }],
                original_event_id: original.event_id,
                hold_id: Some(hold.hold_id.0),
                ..Movement::new(EventType::HoldRelease, &legs)
            };
            let decision = movement.decision(record);
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
