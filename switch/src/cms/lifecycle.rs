//! The card life cycle as one explicit state machine: the states a card passes through from
//! the application to its closing, the operator actions that move it, and the one table
//! ([`TRANSITIONS`]) of what is allowed. Everything else is refused.
//!
//! Why a table and not scattered `if`s: the counter clerk's screen, the HTTP API and the tests
//! all ask the same question ("may this card be reported lost now?") and get the same answer;
//! an auditor reads the rules in one place.
//!
//! The switch's authorization view of a card ([`CardStatus`], the hot list) follows from the
//! life-cycle state ([`Lifecycle::switch_status`]): lost and stolen cards are declined with
//! 41 / 43 and an APPLICATION BLOCK script, suspended, blocked and replaced ones with 62 (on
//! the hot list, without a script: a suspension is lifted later), closed and expired ones with 14.

use crate::store::CardStatus;

/// A card's life-cycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lifecycle {
    /// An accepted application, no card yet (the application's own state).
    Applied,
    /// PAN and keys assigned, the personalisation record written for the card bureau.
    Personalised,
    /// Made by the bureau and handed to the cardholder; not yet usable.
    Issued,
    /// In use.
    Active,
    /// Temporarily suspended (临时挂失 or at the bureau's request); can be lifted.
    Suspended,
    /// Reported lost (挂失); can be lifted if found (解挂).
    Lost,
    /// Reported stolen.
    Stolen,
    /// Blocked (too many wrong PINs, fraud).
    Blocked,
    /// Replaced by a new card (补换卡).
    Replaced,
    /// Past its expiry.
    Expired,
    /// Closed for good (销户).
    Closed,
}

impl Lifecycle {
    /// Every state, in life order.
    pub const ALL: [Lifecycle; 11] = [
        Lifecycle::Applied,
        Lifecycle::Personalised,
        Lifecycle::Issued,
        Lifecycle::Active,
        Lifecycle::Suspended,
        Lifecycle::Lost,
        Lifecycle::Stolen,
        Lifecycle::Blocked,
        Lifecycle::Replaced,
        Lifecycle::Expired,
        Lifecycle::Closed,
    ];

    /// The text stored in `card.lifecycle` and shown by the API.
    pub fn as_sql(self) -> &'static str {
        match self {
            Lifecycle::Applied => "applied",
            Lifecycle::Personalised => "personalised",
            Lifecycle::Issued => "issued",
            Lifecycle::Active => "active",
            Lifecycle::Suspended => "suspended",
            Lifecycle::Lost => "lost",
            Lifecycle::Stolen => "stolen",
            Lifecycle::Blocked => "blocked",
            Lifecycle::Replaced => "replaced",
            Lifecycle::Expired => "expired",
            Lifecycle::Closed => "closed",
        }
    }

    /// Parses the stored text.
    pub fn from_sql(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_sql() == s)
    }

    /// The state of a card the CMS never moved (seeded through `Store::issue_card`, or whose
    /// status the switch itself changed): read from its switch status.
    pub fn from_switch_status(s: CardStatus) -> Self {
        match s {
            CardStatus::Issued => Lifecycle::Issued,
            CardStatus::Active => Lifecycle::Active,
            CardStatus::Lost => Lifecycle::Lost,
            CardStatus::Stolen => Lifecycle::Stolen,
            CardStatus::Blocked => Lifecycle::Blocked,
            CardStatus::Closed => Lifecycle::Closed,
        }
    }

    /// What the authorization pipeline sees (`card.status`).
    pub fn switch_status(self) -> CardStatus {
        match self {
            Lifecycle::Applied | Lifecycle::Personalised | Lifecycle::Issued => CardStatus::Issued,
            Lifecycle::Active => CardStatus::Active,
            Lifecycle::Lost => CardStatus::Lost,
            Lifecycle::Stolen => CardStatus::Stolen,
            Lifecycle::Suspended | Lifecycle::Blocked | Lifecycle::Replaced => CardStatus::Blocked,
            Lifecycle::Expired | Lifecycle::Closed => CardStatus::Closed,
        }
    }
}

/// An operator action on a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardOperation {
    /// Assign PAN and keys, write the personalisation record.
    Personalise,
    /// The bureau's card handed to the cardholder.
    HandOver,
    /// First use allowed (at a counter or a kiosk).
    Activate,
    /// Suspend temporarily.
    Suspend,
    /// Lift a suspension or a loss report (解挂).
    Lift,
    /// Report lost.
    ReportLost,
    /// Report stolen.
    ReportStolen,
    /// Block (fraud, or the switch after too many wrong PINs).
    Block,
    /// Unblock after too many wrong PINs (the wrong-PIN count goes back to 0).
    Unblock,
    /// A new PIN set at a counter (the wrong-PIN count goes back to 0).
    ResetPin,
    /// The old card of a replacement.
    Replace,
    /// Past its expiry date.
    Expire,
    /// Closed for good.
    Close,
}

impl CardOperation {
    /// Every operation.
    pub const ALL: [CardOperation; 13] = [
        CardOperation::Personalise,
        CardOperation::HandOver,
        CardOperation::Activate,
        CardOperation::Suspend,
        CardOperation::Lift,
        CardOperation::ReportLost,
        CardOperation::ReportStolen,
        CardOperation::Block,
        CardOperation::Unblock,
        CardOperation::ResetPin,
        CardOperation::Replace,
        CardOperation::Expire,
        CardOperation::Close,
    ];

    /// The audit log's action name (`card.<operation>`).
    pub fn audit_action(self) -> &'static str {
        match self {
            CardOperation::Personalise => "card.personalise",
            CardOperation::HandOver => "card.hand_over",
            CardOperation::Activate => "card.activate",
            CardOperation::Suspend => "card.suspend",
            CardOperation::Lift => "card.lift",
            CardOperation::ReportLost => "card.report_lost",
            CardOperation::ReportStolen => "card.report_stolen",
            CardOperation::Block => "card.block",
            CardOperation::Unblock => "card.unblock",
            CardOperation::ResetPin => "card.reset_pin",
            CardOperation::Replace => "card.replace",
            CardOperation::Expire => "card.expire",
            CardOperation::Close => "card.close",
        }
    }
}

use CardOperation as Op;
use Lifecycle as L;

/// THE table: `(operation, from, to)`. A pair (operation, from) not listed is refused.
pub const TRANSITIONS: &[(CardOperation, Lifecycle, Lifecycle)] = &[
    (Op::Personalise, L::Applied, L::Personalised),
    (Op::HandOver, L::Personalised, L::Issued),
    (Op::Activate, L::Issued, L::Active),
    (Op::Suspend, L::Active, L::Suspended),
    (Op::Lift, L::Suspended, L::Active),
    (Op::Lift, L::Lost, L::Active),
    (Op::ReportLost, L::Issued, L::Lost),
    (Op::ReportLost, L::Active, L::Lost),
    (Op::ReportLost, L::Suspended, L::Lost),
    (Op::ReportLost, L::Blocked, L::Lost),
    (Op::ReportStolen, L::Issued, L::Stolen),
    (Op::ReportStolen, L::Active, L::Stolen),
    (Op::ReportStolen, L::Suspended, L::Stolen),
    (Op::ReportStolen, L::Lost, L::Stolen),
    (Op::ReportStolen, L::Blocked, L::Stolen),
    (Op::Block, L::Active, L::Blocked),
    (Op::Block, L::Suspended, L::Blocked),
    (Op::Unblock, L::Blocked, L::Active),
    (Op::ResetPin, L::Active, L::Active),
    (Op::ResetPin, L::Blocked, L::Active),
    (Op::Replace, L::Issued, L::Replaced),
    (Op::Replace, L::Active, L::Replaced),
    (Op::Replace, L::Suspended, L::Replaced),
    (Op::Replace, L::Lost, L::Replaced),
    (Op::Replace, L::Stolen, L::Replaced),
    (Op::Replace, L::Blocked, L::Replaced),
    (Op::Replace, L::Expired, L::Replaced),
    (Op::Expire, L::Issued, L::Expired),
    (Op::Expire, L::Active, L::Expired),
    (Op::Expire, L::Suspended, L::Expired),
    (Op::Expire, L::Blocked, L::Expired),
    (Op::Close, L::Personalised, L::Closed),
    (Op::Close, L::Issued, L::Closed),
    (Op::Close, L::Active, L::Closed),
    (Op::Close, L::Suspended, L::Closed),
    (Op::Close, L::Lost, L::Closed),
    (Op::Close, L::Stolen, L::Closed),
    (Op::Close, L::Blocked, L::Closed),
    (Op::Close, L::Replaced, L::Closed),
    (Op::Close, L::Expired, L::Closed),
];

/// An operation not allowed in the card's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{operation:?} is not allowed on a card that is {from:?}")]
pub struct TransitionRefused {
    /// What was asked.
    pub operation: CardOperation,
    /// The card's state.
    pub from: Lifecycle,
}

/// The state `operation` moves a card in state `from` to, per [`TRANSITIONS`].
pub fn next(operation: CardOperation, from: Lifecycle) -> Result<Lifecycle, TransitionRefused> {
    TRANSITIONS
        .iter()
        .find(|(op, f, _)| *op == operation && *f == from)
        .map(|(_, _, to)| *to)
        .ok_or(TransitionRefused { operation, from })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_not_in_the_table_is_refused_and_every_listed_one_allowed() {
        let mut allowed = 0;
        for op in CardOperation::ALL {
            for from in Lifecycle::ALL {
                let listed = TRANSITIONS.iter().find(|(o, f, _)| *o == op && *f == from);
                match (listed, next(op, from)) {
                    (Some((_, _, to)), Ok(got)) => {
                        assert_eq!(*to, got);
                        allowed += 1;
                    }
                    (None, Err(e)) => assert_eq!(
                        e,
                        TransitionRefused {
                            operation: op,
                            from
                        }
                    ),
                    (l, r) => panic!("{op:?} from {from:?}: table {l:?}, next {r:?}"),
                }
            }
        }
        assert_eq!(allowed, TRANSITIONS.len());
        assert!(allowed < CardOperation::ALL.len() * Lifecycle::ALL.len());
    }

    #[test]
    fn the_table_is_a_function_and_nothing_leaves_closed() {
        for (i, (op, from, _)) in TRANSITIONS.iter().enumerate() {
            assert!(
                !TRANSITIONS[i + 1..]
                    .iter()
                    .any(|(o, f, _)| o == op && f == from),
                "{op:?} from {from:?} listed twice"
            );
        }
        assert!(TRANSITIONS.iter().all(|(_, from, _)| *from != L::Closed));
        assert!(TRANSITIONS.iter().all(|(_, _, to)| *to != L::Applied));
        assert_eq!(
            next(Op::Lift, L::Stolen).map_err(|e| e.from),
            Err(L::Stolen)
        );
    }

    #[test]
    fn lost_and_stolen_reach_the_hot_list_with_their_decline_codes() {
        use schemas::domain::ResponseCode;
        assert_eq!(
            L::Lost.switch_status().decline_code(),
            Some(ResponseCode::LostCard)
        );
        assert_eq!(
            L::Stolen.switch_status().decline_code(),
            Some(ResponseCode::StolenCard)
        );
        for s in [L::Suspended, L::Blocked, L::Replaced, L::Lost, L::Stolen] {
            assert!(s.switch_status().is_hot_listed(), "{s:?}");
        }
        assert_eq!(L::Active.switch_status().decline_code(), None);
        for s in Lifecycle::ALL {
            assert_eq!(Lifecycle::from_sql(s.as_sql()), Some(s));
        }
    }
}
