//! Each card's transactions as a chain (migration 0024), kept by the group commit: every
//! accepted decision with a card, approved or declined, links to the card's newest transaction
//! (`txn.prev_card_txn_id`) and becomes it (`card.last_txn_id`).
//!
//! Why a chain and not an index: `txn_by_card (card_id, decided_at_us)` made every decision
//! insert into a leaf chosen by its card id, at random; on SQLite it was the largest B-tree the
//! group commit wrote (21.5 % of the WAL frames, benches/README.md). The card row is written
//! by the batch anyway (its ATC), so its head costs no page more, and the link rides the new
//! transaction row. The card's history walks the chain from the head (`sql::card_history`).
//!
//! The batch loads the head of every card it names (locking the card row on PostgreSQL, where
//! two group commits run at once and nodes share the database: the second batch on a card
//! waits for the first and reads the head it wrote, so the chain never forks), the planner
//! links the batch's decisions in submission order, and each card's head is written once.

use super::{BatchKeys, Planner};
use crate::store::model::{CardId, Decision, TransactionId};

/// Adds the card whose chain `d` extends.
pub(super) fn keys_of(d: &Decision, keys: &mut BatchKeys) {
    if let Some(card) = d.transaction.card_id {
        keys.cards.push(card);
    }
}

impl Planner {
    /// Links an accepted decision to its card's newest transaction and makes it the newest;
    /// answers the link (`None`: the card's first transaction, or a card the store does not
    /// hold, which has no head to keep).
    pub(super) fn chain(&mut self, d: &Decision) -> Option<TransactionId> {
        let card = d.transaction.card_id?;
        let head = self.loaded.card_heads.get_mut(&card)?;
        let prev = head.replace(d.transaction.transaction_id);
        self.dirty_heads.insert(card);
        prev
    }

    /// The new head of each card whose chain the batch extended, sorted by card.
    pub(super) fn finish_chain(&mut self) -> Vec<(CardId, TransactionId)> {
        let mut heads: Vec<(CardId, TransactionId)> = self
            .dirty_heads
            .drain()
            .filter_map(|c| {
                self.loaded
                    .card_heads
                    .get(&c)
                    .copied()
                    .flatten()
                    .map(|t| (c, t))
            })
            .collect();
        heads.sort();
        heads
    }
}
