//! Accounts, their authorization holds and the balance journal, and the [`BalanceOp`]s a
//! decision applies to them.

use super::{AccountId, CardId, HoldId, TransactionId};
use schemas::domain::{AmountFen, InstitutionId};

sql_enum!(
    /// What an account holds.
    AccountKind {
        /// A cardholder's personal medical-insurance account.
        PersonalMedical = "personal_medical",
        /// The medical-insurance pooled fund.
        PooledFund = "pooled_fund",
        /// The social-security fund paying benefits.
        SocialSecurityFund = "social_security_fund",
    }
);

sql_enum!(
    /// State of an authorization hold.
    HoldState {
        /// Funds reserved.
        Pending = "pending",
        /// Completed: the captured amount left the balance.
        Captured = "captured",
        /// Released without capture.
        Released = "released",
    }
);

sql_enum!(
    /// Kind of an account movement (the balance journal).
    MovementKind {
        /// The balance an account was opened with.
        Opening = "opening",
        /// Money out.
        Debit = "debit",
        /// Money in.
        Credit = "credit",
        /// Funds reserved.
        Hold = "hold",
        /// Reservation lifted.
        Release = "release",
        /// Held funds taken.
        Capture = "capture",
    }
);

/// An account to open.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The institution keeping the account (the insurance fund for personal accounts).
    pub institution: InstitutionId,
    /// The card it belongs to, for personal accounts.
    pub card_id: Option<CardId>,
    /// What it holds.
    pub kind: AccountKind,
    /// Opening balance, journalled as an `opening` movement.
    pub opening_balance: AmountFen,
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Store key.
    pub account_id: AccountId,
    /// Keeping institution.
    pub institution: InstitutionId,
    /// Owning card.
    pub card_id: Option<CardId>,
    /// What it holds.
    pub kind: AccountKind,
    /// Ledger balance.
    pub balance_fen: i64,
    /// Reserved by pending holds.
    pub held_fen: i64,
}

impl Account {
    /// What can still be spent: balance minus holds.
    pub fn available_fen(&self) -> i64 {
        self.balance_fen - self.held_fen
    }
}

/// A stored hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Id.
    pub hold_id: HoldId,
    /// Account the funds are reserved on.
    pub account_id: AccountId,
    /// The authorizing transaction.
    pub transaction_id: TransactionId,
    /// Reserved amount.
    pub amount_fen: i64,
    /// Captured amount (0 unless captured).
    pub captured_fen: i64,
    /// State.
    pub state: HoldState,
    /// When an uncaptured hold should be released.
    pub expires_at_us: i64,
}

/// A change to account balances, applied atomically with its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalanceOp {
    /// Take money from the available balance.
    Debit {
        /// Account.
        account_id: AccountId,
        /// Amount (> 0).
        amount_fen: AmountFen,
    },
    /// Add money (refund, reversal of a debit).
    Credit {
        /// Account.
        account_id: AccountId,
        /// Amount (> 0).
        amount_fen: AmountFen,
    },
    /// Reserve funds (pre-authorization).
    PlaceHold {
        /// New hold id.
        hold_id: HoldId,
        /// Account.
        account_id: AccountId,
        /// Amount (> 0).
        amount_fen: AmountFen,
        /// When it lapses if not captured.
        expires_at_us: i64,
    },
    /// Take up to the held amount; the rest of the hold is released.
    CaptureHold {
        /// The pending hold.
        hold_id: HoldId,
        /// Amount to take (<= held).
        amount_fen: AmountFen,
    },
    /// Lift a pending hold.
    ReleaseHold {
        /// The pending hold.
        hold_id: HoldId,
    },
}
