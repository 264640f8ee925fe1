//! What a decision does to its card's risk state: the wrong-PIN count and the day's spend.
//!
//! Why in the store and not in each node's memory (issue 24, finding 5): a restart must not give
//! a thief more PIN tries, and two nodes must not double a daily limit. The pipeline still
//! reserves in memory in front of the store (fast, per node); the group commit is the
//! authority: it checks and writes this state in the same transaction as the decision.

use super::CardId;

/// A decision's effect on its card's risk state, planned and written inside the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardRisk {
    /// The card.
    pub card_id: CardId,
    /// The switch verified the card's PIN: the wrong-PIN count goes back to 0, unless it has
    /// reached this maximum meanwhile (a third wrong PIN on another node), which refuses the
    /// decision as [`crate::store::DecisionError::PinTriesExceeded`].
    pub pin_verified_tries_max: Option<u32>,
    /// An approval's spend, counted against the card's daily limits.
    pub spend: Option<DailySpend>,
    /// A bank leg the switch approved in stand-in for the card's bank, counted against the
    /// card's daily stand-in limit (refused as
    /// [`crate::store::DecisionError::StandInLimitExceeded`] over it).
    pub stand_in: Option<StandInSpend>,
}

/// A bank leg approved in stand-in against the card's daily stand-in limit (days in China
/// Standard Time): counted in the commit, so that two nodes standing in for the same card at
/// once cannot both fit under the limit that each checked alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandInSpend {
    /// Midnight CST of the day, µs since the epoch.
    pub day_start_us: i64,
    /// The bank leg's amount.
    pub amount_fen: i64,
    /// Most approved in stand-in for the card in a day (`pipeline::StandIn`).
    pub daily_fen_max: i64,
}

/// An approval's amount against its card's daily limits (days in China Standard Time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailySpend {
    /// Midnight CST of the day, µs since the epoch (`pipeline::velocity::cst_day_start_us`).
    pub day_start_us: i64,
    /// The amount spent.
    pub amount_fen: i64,
    /// Largest total per day.
    pub daily_fen_max: i64,
    /// Most approved transactions per day.
    pub daily_count_max: u32,
}

/// A card's approved spend of one day, as stored in `card_day_usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayUsage {
    /// Approved transactions.
    pub approved_count: u32,
    /// Their total.
    pub amount_fen: i64,
    /// Of that day, the bank legs approved in stand-in.
    pub stand_in_fen: i64,
}
