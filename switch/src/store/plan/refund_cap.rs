//! The running cap on refunds, checked inside the group commit: an approved refund commits
//! only if it and every approved refund of the same original before it (earlier batches,
//! and earlier decisions of this batch) add up to at most the original's amount.
//!
//! Why here and not only in the refund service: the service sees one refund at a time, and two
//! refunds of the same purchase on different STANs (different duplicate keys) decided at once,
//! on one node or two, would each pass alone. The batch loads the original (locking its row on
//! PostgreSQL, so two nodes take turns) with the sum of its refunds already committed, and the
//! planner adds the batch's own refunds as it replays them.
//!
//! A refund that was itself reversed no longer counts (the backends' queries leave it out); a
//! refund reversed in the same batch as a new refund still counts for that batch (the cap errs
//! on the side of refusing).

use super::{Planner, Undo};
use crate::store::error::DecisionError;
use crate::store::model::{Decision, TransactionId, TransactionKind};

/// An original with refunds against it, as loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundRoom {
    /// The original's amount (field 4).
    pub original_fen: i64,
    /// Approved, unreversed refunds of it so far.
    pub refunded_fen: i64,
}

/// The original of an approved refund: the one whose room the refund takes.
pub(super) fn refunded_original(d: &Decision) -> Option<TransactionId> {
    let t = &d.transaction;
    (t.kind == TransactionKind::Refund && t.is_approved())
        .then_some(t.original_transaction_id)
        .flatten()
}

impl Planner {
    /// Takes the refund's amount from its original's room, or refuses the refund.
    pub(super) fn take_refund_room(&mut self, d: &Decision) -> Result<(), DecisionError> {
        let Some(original) = refunded_original(d) else {
            return Ok(());
        };
        let room = *self
            .loaded
            .refunds
            .get(&original)
            .ok_or_else(|| DecisionError::Invalid("refund of an unknown original".into()))?;
        let amount = d.transaction.amount_fen.get();
        let refunded = room.refunded_fen.saturating_add(amount);
        if refunded > room.original_fen {
            return Err(DecisionError::RefundsExceedOriginal(original));
        }
        self.undo.push(Undo::Refund(original, room));
        self.loaded.refunds.insert(
            original,
            RefundRoom {
                refunded_fen: refunded,
                ..room
            },
        );
        Ok(())
    }
}
