//! Tenant scoping: which institution sees what. This is the one place the rule is written;
//! every route asks [`Scope`].
//!
//! - The switch's own institution (kind `switch`, which also runs the clearing centre) sees
//!   everything.
//! - Any other institution sees a transaction it took part in: as its acquirer (a hospital's
//!   or a job centre's kiosk, a bank's own device), as its issuer (a bank: its cards), or as
//!   the institution of one of its legs (the insurance fund's and the social-security fund's
//!   shares of a split bill, a hospital's credit).
//! - It sees the store-and-forward messages bound for itself (a bank's reversals and
//!   advices), and its own users, roles and role changes.
//!
//! What is not seen does not exist: a route answers 404 for it, never 403.

use crate::store::{Institution, InstitutionKind, StoredTransaction};
use schemas::domain::InstitutionId;

/// What a caller's institution sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything (the switch's own institution).
    All,
    /// What this institution takes part in.
    Institution(InstitutionId),
}

impl Scope {
    /// The scope of a caller of `institution`.
    pub fn of(institution: &Institution) -> Self {
        match institution.kind {
            InstitutionKind::Switch => Scope::All,
            _ => Scope::Institution(institution.institution_id.clone()),
        }
    }

    /// Whether a record that belongs to `owner` is seen.
    pub fn sees(&self, owner: &InstitutionId) -> bool {
        match self {
            Scope::All => true,
            Scope::Institution(me) => me == owner,
        }
    }

    /// Whether the transaction is seen: the caller's institution is its acquirer, its issuer
    /// or the institution of one of its legs.
    pub fn sees_transaction(&self, t: &StoredTransaction) -> bool {
        match self {
            Scope::All => true,
            Scope::Institution(me) => {
                t.record.acquirer == *me
                    || t.record.issuer.as_ref() == Some(me)
                    || t.legs.iter().any(|l| l.institution == *me)
            }
        }
    }

    /// The institution a list is limited to (None: every one).
    pub fn only(&self) -> Option<&InstitutionId> {
        match self {
            Scope::All => None,
            Scope::Institution(me) => Some(me),
        }
    }
}
