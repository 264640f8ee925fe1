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
//! - Of the card management system ([`CardScope`]): a bank sees the cards and applications
//!   that carry its application (PAN); a social-security bureau those of cardholders insured in
//!   its region (GB/T 2260 prefix, from the node's `[cms]` configuration); the switch and
//!   clearing centre every one; anyone else none.
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

/// A social-security bureau of the card management system: its institution and the GB/T 2260
/// prefix of the region it serves (`41` a province, `4101` a city, `410102` a district).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bureau {
    /// The bureau's institution.
    pub institution: InstitutionId,
    /// Leading digits of the region codes it serves (2, 4 or 6 digits).
    pub region_prefix: String,
}

/// What a caller's institution sees of cards and applications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardScope {
    /// Every card (the switch and clearing centre).
    All,
    /// The cards that carry this bank's application.
    Bank(InstitutionId),
    /// The cards of cardholders insured in this region (GB/T 2260 prefix).
    Region(String),
    /// No card (a hospital, a fund, an institution the configuration names as no bureau).
    Nothing,
}

impl CardScope {
    /// The card scope of a caller of `institution`, with the node's `bureaus`.
    pub fn of(institution: &Institution, bureaus: &[Bureau]) -> Self {
        match institution.kind {
            InstitutionKind::Switch => CardScope::All,
            InstitutionKind::Bank => CardScope::Bank(institution.institution_id.clone()),
            _ => bureaus
                .iter()
                .find(|b| b.institution == institution.institution_id)
                .map_or(CardScope::Nothing, |b| {
                    CardScope::Region(b.region_prefix.clone())
                }),
        }
    }

    /// Whether a card or application of bank `bank`, for a cardholder insured in `region`
    /// (None: a card seeded outside the CMS), is seen.
    pub fn sees(&self, bank: &InstitutionId, region: Option<&str>) -> bool {
        match self {
            CardScope::All => true,
            CardScope::Bank(me) => me == bank,
            CardScope::Region(prefix) => region.is_some_and(|r| r.starts_with(prefix.as_str())),
            CardScope::Nothing => false,
        }
    }

    /// Whether personalisation files (every bank's cards of the node's bureau) are seen.
    pub fn sees_perso_files(&self) -> bool {
        matches!(self, CardScope::All | CardScope::Region(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, kind: InstitutionKind) -> Institution {
        Institution {
            institution_id: InstitutionId::parse(id).unwrap(),
            name: id.into(),
            kind,
        }
    }

    #[test]
    fn a_bureau_sees_its_region_a_bank_its_cards_the_switch_all_others_nothing() {
        let bureau = inst("4101008", InstitutionKind::SocialSecurityFund);
        let bureaus = [Bureau {
            institution: bureau.institution_id.clone(),
            region_prefix: "4101".into(),
        }];
        let bank = inst("1030001", InstitutionKind::Bank);
        let other_bank = InstitutionId::parse("1040001").unwrap();
        let own = &bank.institution_id;
        let b = CardScope::of(&bureau, &bureaus);
        assert!(b.sees(&other_bank, Some("410102")));
        assert!(!b.sees(own, Some("420100")));
        assert!(!b.sees(own, None));
        assert!(b.sees_perso_files());
        let k = CardScope::of(&bank, &bureaus);
        assert!(k.sees(own, Some("420100")) && k.sees(own, None));
        assert!(!k.sees(&other_bank, Some("410102")));
        assert!(!k.sees_perso_files());
        let s = CardScope::of(&inst("0000001", InstitutionKind::Switch), &bureaus);
        assert!(s.sees(&other_bank, None) && s.sees_perso_files());
        for kind in [
            InstitutionKind::Hospital,
            InstitutionKind::SocialSecurityFund,
        ] {
            let h = CardScope::of(&inst("5000001", kind), &bureaus);
            assert_eq!(h, CardScope::Nothing);
            assert!(!h.sees(own, Some("410102")));
        }
    }
}
