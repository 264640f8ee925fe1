//! The card's risk state in the group-commit plan: its wrong-PIN count and its approved spend
//! per China Standard Time day, checked and updated like balances, in submission order.
//!
//! Why here: each node's memory was the authority before (issue 24, finding 5), so a restart
//! gave a thief three more PIN tries and two nodes doubled every daily limit. The commit sees
//! what every node has committed: an approval over a daily limit or over the card's daily
//! stand-in limit, or a decision with a verified PIN on a card that reached its wrong-PIN
//! maximum meanwhile, is left out of the batch.

use super::{BatchKeys, Planner, Undo};
use crate::store::error::DecisionError;
use crate::store::model::{CardId, CardRisk, DailySpend, DayUsage, Decision, StandInSpend};

/// A card and the start of a CST day (µs since the epoch): the key of `card_day_usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardDay {
    /// The card.
    pub card_id: CardId,
    /// Midnight CST of the day.
    pub day_start_us: i64,
}

/// Adds the rows `d`'s risk state needs loaded.
pub(super) fn keys_of(d: &Decision, keys: &mut BatchKeys) {
    let Some(r) = d.risk else { return };
    if r.pin_verified_tries_max.is_some() {
        keys.cards.push(r.card_id);
    }
    if let Some(s) = r.spend {
        keys.card_days.push(CardDay {
            card_id: r.card_id,
            day_start_us: s.day_start_us,
        });
    }
    if let Some(s) = r.stand_in {
        keys.card_days.push(CardDay {
            card_id: r.card_id,
            day_start_us: s.day_start_us,
        });
    }
}

impl Planner {
    /// Resets the wrong-PIN count of a verified PIN and counts the spend, or refuses.
    pub(super) fn apply_risk(&mut self, r: CardRisk) -> Result<(), DecisionError> {
        if let Some(tries_max) = r.pin_verified_tries_max {
            self.reset_pin_tries(r.card_id, tries_max)?;
        }
        if let Some(s) = r.spend {
            self.spend(r.card_id, s)?;
        }
        if let Some(s) = r.stand_in {
            self.stand_in(r.card_id, s)?;
        }
        Ok(())
    }

    fn stand_in(&mut self, card_id: CardId, s: StandInSpend) -> Result<(), DecisionError> {
        let day = CardDay {
            card_id,
            day_start_us: s.day_start_us,
        };
        let before = self.loaded.card_days.get(&day).copied();
        let used = before.unwrap_or_default();
        let stand_in_fen = used.stand_in_fen.saturating_add(s.amount_fen);
        if stand_in_fen > s.daily_fen_max {
            return Err(DecisionError::StandInLimitExceeded(card_id));
        }
        self.undo.push(Undo::Day(day, before));
        self.loaded.card_days.insert(
            day,
            DayUsage {
                stand_in_fen,
                ..used
            },
        );
        Ok(())
    }

    fn reset_pin_tries(&mut self, card_id: CardId, tries_max: u32) -> Result<(), DecisionError> {
        let tries = self
            .loaded
            .card_pin_tries
            .get(&card_id)
            .copied()
            .unwrap_or(0);
        if tries >= tries_max {
            return Err(DecisionError::PinTriesExceeded(card_id));
        }
        if tries > 0 {
            self.undo.push(Undo::PinTries(card_id, tries));
            self.loaded.card_pin_tries.insert(card_id, 0);
        }
        Ok(())
    }

    fn spend(&mut self, card_id: CardId, s: DailySpend) -> Result<(), DecisionError> {
        let day = CardDay {
            card_id,
            day_start_us: s.day_start_us,
        };
        let before = self.loaded.card_days.get(&day).copied();
        let used = before.unwrap_or_default();
        if used.approved_count >= s.daily_count_max {
            return Err(DecisionError::DailyCountExceeded(card_id));
        }
        let amount_fen = used.amount_fen.saturating_add(s.amount_fen);
        if amount_fen > s.daily_fen_max {
            return Err(DecisionError::DailyAmountExceeded(card_id));
        }
        self.undo.push(Undo::Day(day, before));
        let usage = DayUsage {
            approved_count: used.approved_count + 1,
            amount_fen,
            ..used
        };
        self.loaded.card_days.insert(day, usage);
        Ok(())
    }

    /// The cards whose wrong-PIN count goes back to 0 and the new spend of the card days, both
    /// sorted (PostgreSQL locks and writes in key order).
    pub(super) fn finish_risk(&mut self) -> (Vec<CardId>, Vec<(CardDay, DayUsage)>) {
        let mut resets: Vec<CardId> = self.dirty_pin_tries.drain().collect();
        resets.sort();
        let mut days: Vec<(CardDay, DayUsage)> = self
            .dirty_days
            .drain()
            .filter_map(|d| self.loaded.card_days.get(&d).map(|u| (d, *u)))
            .collect();
        days.sort_by_key(|(d, _)| *d);
        (resets, days)
    }
}
