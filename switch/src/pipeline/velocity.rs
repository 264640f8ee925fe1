//! Limits and velocity: how much one card may spend per transaction and per day, and how often.
//!
//! Why in memory: the check runs on every authorization and must cost nanoseconds, not a
//! database read. A card's counters live in one of many mutex-protected shards. A request
//! *reserves* its amount before it goes on (to the bank, to the writer); the reservation is kept
//! when the decision commits and given back when a later step declines (the jPOS "abort" of this
//! step), simply by dropping it. Days are counted in China Standard Time (UTC+8).
//!
//! Scope: the counters are a per-node pre-check in front of the store, which is the authority:
//! the group commit counts the day's spend of every node in `card_day_usage` and refuses an
//! approval over a limit (`store::plan::risk`). So that the pre-check does not let a spend
//! through that the commit will refuse (after its bank leg went out and had to be reversed),
//! a card's counters for the day start from what the store has committed, read the first time
//! this node sees the card that day ([`Velocity::needs_seed`], [`Velocity::seed`]): a restarted
//! node, or one that joins, knows the spend committed before it.

use crate::store::CardId;
use schemas::domain::ResponseCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 64;
const CST_OFFSET_US: i64 = 8 * 3_600 * 1_000_000;
const DAY_US: i64 = 86_400 * 1_000_000;

/// The start (µs since the epoch) of the China Standard Time day holding `now_us`: daily
/// limits run from midnight CST.
pub fn cst_day_start_us(now_us: i64) -> i64 {
    (now_us + CST_OFFSET_US).div_euclid(DAY_US) * DAY_US - CST_OFFSET_US
}

/// Per-card limits (fen and counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardLimits {
    /// Largest single transaction.
    pub per_transaction_fen_max: i64,
    /// Largest total per day.
    pub daily_fen_max: i64,
    /// Most approved transactions per day.
    pub daily_count_max: u32,
}

impl Default for CardLimits {
    fn default() -> Self {
        Self {
            per_transaction_fen_max: 5_000_000, // 50,000.00 CNY
            daily_fen_max: 10_000_000,
            daily_count_max: 200,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct DayCounters {
    day: i64,
    count: u32,
    amount_fen: i64,
    /// The day's committed spend read from the store is included.
    seeded: bool,
}

/// The velocity table of one switch node.
#[derive(Debug)]
pub struct Velocity {
    limits: CardLimits,
    shards: Vec<Mutex<HashMap<CardId, DayCounters>>>,
}

/// Counters held for one request; released on drop unless [`Reservation::keep`] is called.
#[derive(Debug)]
pub struct Reservation {
    velocity: Arc<Velocity>,
    card: CardId,
    day: i64,
    amount_fen: i64,
    kept: bool,
}

impl Reservation {
    /// The decision committed: the spend counts.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            self.velocity.release(self.card, self.day, self.amount_fen);
        }
    }
}

impl Velocity {
    /// An empty table enforcing `limits`.
    pub fn new(limits: CardLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// The configured limits.
    pub fn limits(&self) -> CardLimits {
        self.limits
    }

    fn shard(&self, card: CardId) -> &Mutex<HashMap<CardId, DayCounters>> {
        let i = (card.0.unsigned_abs() as usize) % SHARDS;
        &self.shards[i]
    }

    /// Reserves `amount_fen` for `card` at `now_us`, or the response code to decline with:
    /// 61 over an amount limit, 65 over the daily count.
    pub fn reserve(
        self: &Arc<Self>,
        card: CardId,
        amount_fen: i64,
        now_us: i64,
    ) -> Result<Reservation, ResponseCode> {
        if amount_fen > self.limits.per_transaction_fen_max {
            return Err(ResponseCode::ExceedsAmountLimit);
        }
        let day = (now_us + CST_OFFSET_US).div_euclid(DAY_US);
        let mut map = self
            .shard(card)
            .lock()
            .map_err(|_| ResponseCode::SystemMalfunction)?;
        let c = map.entry(card).or_default();
        if c.day != day {
            *c = DayCounters {
                day,
                ..DayCounters::default()
            };
        }
        if c.count >= self.limits.daily_count_max {
            return Err(ResponseCode::ExceedsFrequencyLimit);
        }
        if c.amount_fen.saturating_add(amount_fen) > self.limits.daily_fen_max {
            return Err(ResponseCode::ExceedsAmountLimit);
        }
        c.count += 1;
        c.amount_fen += amount_fen;
        Ok(Reservation {
            velocity: Arc::clone(self),
            card,
            day,
            amount_fen,
            kept: false,
        })
    }

    /// True when this node has not yet taken `card`'s spend of the day holding `now_us` from
    /// the store (false on a poisoned shard: the commit still checks).
    pub fn needs_seed(&self, card: CardId, now_us: i64) -> bool {
        let day = (now_us + CST_OFFSET_US).div_euclid(DAY_US);
        self.shard(card)
            .lock()
            .map(|m| !m.get(&card).is_some_and(|c| c.day == day && c.seeded))
            .unwrap_or(false)
    }

    /// Adds the spend the store has committed for `card` on the day holding `now_us` (every
    /// node's, before this one saw the card), once per card and day. Reservations this node
    /// holds meanwhile are kept on top: at worst the pre-check counts one of them twice (when
    /// it committed before the read), which declines early, never late.
    pub fn seed(&self, card: CardId, now_us: i64, committed_count: u32, committed_fen: i64) {
        let day = (now_us + CST_OFFSET_US).div_euclid(DAY_US);
        let Ok(mut map) = self.shard(card).lock() else {
            return;
        };
        let c = map.entry(card).or_default();
        if c.day != day {
            *c = DayCounters {
                day,
                ..DayCounters::default()
            };
        }
        if c.seeded {
            return;
        }
        c.count = c.count.saturating_add(committed_count);
        c.amount_fen = c.amount_fen.saturating_add(committed_fen.max(0));
        c.seeded = true;
    }

    fn release(&self, card: CardId, day: i64, amount_fen: i64) {
        if let Ok(mut map) = self.shard(card).lock() {
            if let Some(c) = map.get_mut(&card) {
                if c.day == day {
                    c.count = c.count.saturating_sub(1);
                    c.amount_fen = (c.amount_fen - amount_fen).max(0);
                }
            }
        }
    }

    /// Today's count and amount for a card (for tests and the console).
    pub fn usage(&self, card: CardId, now_us: i64) -> (u32, i64) {
        let day = (now_us + CST_OFFSET_US).div_euclid(DAY_US);
        self.shard(card)
            .lock()
            .ok()
            .and_then(|m| m.get(&card).copied())
            .filter(|c| c.day == day)
            .map(|c| (c.count, c.amount_fen))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i64 = 1_763_870_400_000_000; // 2025-11-23 04:00 UTC = 12:00 CST

    fn limits() -> CardLimits {
        CardLimits {
            per_transaction_fen_max: 1_000,
            daily_fen_max: 2_500,
            daily_count_max: 3,
        }
    }

    #[test]
    fn a_single_transaction_over_the_limit_is_declined_with_61() {
        let v = Velocity::new(limits());
        assert_eq!(
            v.reserve(CardId(1), 1_001, NOON).unwrap_err(),
            ResponseCode::ExceedsAmountLimit
        );
    }

    #[test]
    fn the_daily_amount_and_count_are_enforced_and_kept_reservations_count() {
        let v = Velocity::new(limits());
        v.reserve(CardId(1), 1_000, NOON).unwrap().keep();
        v.reserve(CardId(1), 1_000, NOON).unwrap().keep();
        assert_eq!(
            v.reserve(CardId(1), 600, NOON).unwrap_err(),
            ResponseCode::ExceedsAmountLimit
        );
        v.reserve(CardId(1), 500, NOON).unwrap().keep();
        assert_eq!(
            v.reserve(CardId(1), 1, NOON).unwrap_err(),
            ResponseCode::ExceedsFrequencyLimit
        );
        // Another card is not affected.
        assert!(v.reserve(CardId(2), 1_000, NOON).is_ok());
    }

    #[test]
    fn a_dropped_reservation_gives_its_amount_back() {
        let v = Velocity::new(limits());
        let r = v.reserve(CardId(7), 900, NOON).unwrap();
        assert_eq!(v.usage(CardId(7), NOON), (1, 900));
        drop(r);
        assert_eq!(v.usage(CardId(7), NOON), (0, 0));
    }

    #[test]
    fn counters_start_again_at_midnight_china_time() {
        let v = Velocity::new(limits());
        for _ in 0..3 {
            v.reserve(CardId(1), 100, NOON).unwrap().keep();
        }
        assert!(v.reserve(CardId(1), 100, NOON).is_err());
        let next_day = NOON + 12 * 3_600 * 1_000_000; // 00:00 CST the next day
        assert!(v.reserve(CardId(1), 100, next_day).is_ok());
    }

    #[test]
    fn the_spend_committed_before_is_counted_once_per_card_and_day() {
        let v = Velocity::new(limits());
        assert!(v.needs_seed(CardId(1), NOON));
        v.seed(CardId(1), NOON, 2, 2_000);
        assert!(!v.needs_seed(CardId(1), NOON));
        assert_eq!(
            v.reserve(CardId(1), 600, NOON).unwrap_err(),
            ResponseCode::ExceedsAmountLimit,
            "2,000 committed + 600 is past 2,500"
        );
        v.reserve(CardId(1), 500, NOON).unwrap().keep();
        // A second seed of the same day changes nothing.
        v.seed(CardId(1), NOON, 2, 2_000);
        assert_eq!(v.usage(CardId(1), NOON), (3, 2_500));
        assert_eq!(
            v.reserve(CardId(1), 1, NOON).unwrap_err(),
            ResponseCode::ExceedsFrequencyLimit
        );
        // The next day needs its own seed.
        let next_day = NOON + 12 * 3_600 * 1_000_000;
        assert!(v.needs_seed(CardId(1), next_day));
        v.seed(CardId(1), next_day, 0, 0);
        assert_eq!(v.usage(CardId(1), next_day), (0, 0));
    }

    #[test]
    fn the_china_day_starts_at_midnight_china_time() {
        let midnight = NOON - 12 * 3_600 * 1_000_000; // 2025-11-22 16:00 UTC
        assert_eq!(cst_day_start_us(NOON), midnight);
        assert_eq!(cst_day_start_us(midnight), midnight);
        assert_eq!(cst_day_start_us(midnight - 1), midnight - DAY_US);
    }
}
