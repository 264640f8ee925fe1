//! At most one approved reversal per original, checked inside the group commit: an approved
//! reversal commits only if its original has no approved reversal yet (stored by an earlier
//! batch or another node, or taken by an earlier decision of this batch).
//!
//! Why here and not only in the reversal service: the service reads "not yet reversed" before
//! it decides, and two reversals of one approval decided at once would each pass alone — two
//! 0400s from a kiosk (or a 0400 and its 0420 repeat) in one batch or in two commits in flight,
//! on one node or two sharing PostgreSQL, or the switch's own compensation of an approval
//! answered 96 (`store::spool::Compensation`) racing the kiosk's 0400 for it. Each gave the
//! money back. The batch loads the approved reversal each reversed original already has
//! (locking the original's row on PostgreSQL with the refunded originals, so two nodes take
//! turns), and the planner adds the batch's own as it replays them. The partial unique index
//! `txn_one_approved_reversal` (migration 0023) is the database's backstop for a race the
//! planner cannot see.

use super::Planner;
use crate::store::error::DecisionError;
use crate::store::model::{Decision, TransactionId, TransactionKind};

/// The original of an approved reversal: the one it gives the money back for.
pub(super) fn reversed_original(d: &Decision) -> Option<TransactionId> {
    let t = &d.transaction;
    (t.kind == TransactionKind::Reversal && t.is_approved())
        .then_some(t.original_transaction_id)
        .flatten()
}

impl Planner {
    /// Refuses an approved reversal whose original is reversed already.
    pub(super) fn check_not_reversed(&self, d: &Decision) -> Result<(), DecisionError> {
        let Some(original) = reversed_original(d) else {
            return Ok(());
        };
        match self.loaded.reversals.get(&original) {
            Some(reversal) => Err(DecisionError::AlreadyReversed {
                original,
                reversal: Some(*reversal),
            }),
            None => Ok(()),
        }
    }

    /// Records an accepted reversal as its original's (after every other check passed).
    pub(super) fn note_reversal(&mut self, d: &Decision) {
        if let Some(original) = reversed_original(d) {
            self.loaded
                .reversals
                .insert(original, d.transaction.transaction_id);
        }
    }
}

/// What a lone decision refused by the database is told: `AlreadyReversed` when the refusal is
/// the unique index `txn_one_approved_reversal` (PostgreSQL names the index, SQLite its column)
/// and the decision is an approved reversal; `err` otherwise.
pub fn refused_alone(err: DecisionError, one: &[Decision]) -> DecisionError {
    let [d] = one else { return err };
    match (&err, reversed_original(d)) {
        (DecisionError::Rejected(msg), Some(original))
            if msg.contains("txn_one_approved_reversal")
                || msg.contains("txn.original_transaction_id") =>
        {
            DecisionError::AlreadyReversed {
                original,
                reversal: None,
            }
        }
        _ => err,
    }
}
