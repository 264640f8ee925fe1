//! The packed form of an event's posted legs in `applied_event.legs` (clearing migration 0004):
//! one journal row per event instead of one `posting` row per leg, because inserting the journal
//! was most of the CPU an event cost (issue 27).
//!
//! Legs in leg_no order, joined by `;`; each leg is
//! `leg_no,kind,debit_institution,debit_account,credit_institution,credit_account,amount_fen`
//! in decimal, the leg kind and the accounts as the codes of [`LEG_KINDS`] and [`ACCOUNTS`]
//! (position + 1). Institution ids are 1 to 11 digits (`schemas::domain::InstitutionId`), so
//! neither separator can occur inside a field. The migration documents the same form and packs
//! the postings that existed before it with the same codes.
//!
//! Readers unpack a row into the posting records `window` always produced ([`unpack`]): the
//! names are the ones `posting` stored ([`account_str`], [`leg_kind_str`]).

use super::plan::{account_str, leg_kind_str};
use schemas::events::{LedgerAccount, Leg, LegKind};

/// Leg kinds by code − 1 (reading).
const LEG_KINDS: [LegKind; 5] = [
    LegKind::PooledFund,
    LegKind::PersonalAccount,
    LegKind::Bank,
    LegKind::SocialSecurityFund,
    LegKind::Fee,
];

/// Ledger accounts by code − 1 (reading).
const ACCOUNTS: [LedgerAccount; 6] = [
    LedgerAccount::PooledFund,
    LedgerAccount::PersonalAccounts,
    LedgerAccount::Merchant,
    LedgerAccount::BankSettlement,
    LedgerAccount::SocialSecurityFund,
    LedgerAccount::Fees,
];

/// The code of a leg kind (exhaustive: a new kind needs its code here and in the migration).
fn kind_code(kind: LegKind) -> u8 {
    match kind {
        LegKind::PooledFund => 1,
        LegKind::PersonalAccount => 2,
        LegKind::Bank => 3,
        LegKind::SocialSecurityFund => 4,
        LegKind::Fee => 5,
    }
}

/// The code of a ledger account (exhaustive, as [`kind_code`]).
fn account_code(account: LedgerAccount) -> u8 {
    match account {
        LedgerAccount::PooledFund => 1,
        LedgerAccount::PersonalAccounts => 2,
        LedgerAccount::Merchant => 3,
        LedgerAccount::BankSettlement => 4,
        LedgerAccount::SocialSecurityFund => 5,
        LedgerAccount::Fees => 6,
    }
}

/// The column-form name of a code of `table`.
fn name<T: Copy>(table: &[T], code: &str, name_of: fn(T) -> &'static str) -> Option<&'static str> {
    let i: usize = code.parse().ok()?;
    table.get(i.checked_sub(1)?).map(|v| name_of(*v))
}

/// Appends one posted leg (of `amount_fen`) to an event's packed legs, which start at `start`
/// in `out` (a batch packs all its events' legs into one buffer). Legs must be appended in
/// leg_no order (the planner's `post_legs`). Numbers are written with `itoa`, not `write!`: the
/// formatting machinery was a sixth of the planner's CPU (issue 27).
pub(crate) fn push_leg(out: &mut String, start: usize, leg: &Leg, amount_fen: i64) {
    let mut n = itoa::Buffer::new();
    if out.len() > start {
        out.push(';');
    }
    out.push_str(n.format(leg.leg_no));
    out.push(',');
    out.push(char::from(b'0' + kind_code(leg.kind)));
    out.push(',');
    out.push_str(leg.debit.institution.as_str());
    out.push(',');
    out.push(char::from(b'0' + account_code(leg.debit.account)));
    out.push(',');
    out.push_str(leg.credit.institution.as_str());
    out.push(',');
    out.push(char::from(b'0' + account_code(leg.credit.account)));
    out.push(',');
    out.push_str(n.format(amount_fen));
}

/// One leg read back from its packed form, names in column form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnpackedLeg<'a> {
    pub leg_no: i64,
    pub leg_kind: &'static str,
    pub debit_institution: &'a str,
    pub debit_account: &'static str,
    pub credit_institution: &'a str,
    pub credit_account: &'static str,
    pub amount_fen: i64,
}

/// Why a packed `legs` value could not be read (a ledger this code did not write).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packed legs {0:?} are not in the journal's form")]
pub struct BadLegs(pub String);

/// Reads packed legs back, in the order they were packed (leg_no order).
pub(crate) fn unpack(legs: &str) -> Result<Vec<UnpackedLeg<'_>>, BadLegs> {
    let bad = || BadLegs(legs.to_owned());
    legs.split(';')
        .map(|leg| {
            let mut f = leg.split(',');
            let mut next = || f.next().ok_or_else(bad);
            let out = UnpackedLeg {
                leg_no: next()?.parse().map_err(|_| bad())?,
                leg_kind: name(&LEG_KINDS, next()?, leg_kind_str).ok_or_else(bad)?,
                debit_institution: next()?,
                debit_account: name(&ACCOUNTS, next()?, account_str).ok_or_else(bad)?,
                credit_institution: next()?,
                credit_account: name(&ACCOUNTS, next()?, account_str).ok_or_else(bad)?,
                amount_fen: next()?.parse().map_err(|_| bad())?,
            };
            if f.next().is_some() {
                return Err(bad());
            }
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::events::sample::{self, ids};
    use schemas::events::EventType;

    #[test]
    fn legs_read_back_as_packed_with_their_column_names() {
        let e = sample::event(EventType::MedicalBillSplit, ids::HOSPITAL, 1);
        let mut packed = String::from("before;");
        let start = packed.len();
        for leg in &e.legs {
            push_leg(&mut packed, start, leg, leg.amount_fen.get());
        }
        let packed = &packed[start..];
        assert_eq!(
            packed,
            "1,1,3100900,1,3100001,3,6000;2,2,3100900,2,3100001,3,2500;3,3,01020000,4,3100001,3,1500"
        );
        let back = unpack(packed).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(
            back[1],
            UnpackedLeg {
                leg_no: 2,
                leg_kind: "personal_account",
                debit_institution: "3100900",
                debit_account: "personal_accounts",
                credit_institution: "3100001",
                credit_account: "merchant",
                amount_fen: 2500,
            }
        );
    }

    #[test]
    fn every_code_names_what_the_posting_table_stored() {
        // The codes are the migration's (its CASE expressions): changing one would misread
        // every ledger.
        let names: Vec<&str> = ACCOUNTS.iter().map(|a| account_str(*a)).collect();
        assert_eq!(
            names,
            [
                "pooled_fund",
                "personal_accounts",
                "merchant",
                "bank_settlement",
                "social_security_fund",
                "fees"
            ]
        );
        for (i, a) in ACCOUNTS.iter().enumerate() {
            assert_eq!(usize::from(account_code(*a)), i + 1);
        }
        for (i, k) in LEG_KINDS.iter().enumerate() {
            assert_eq!(usize::from(kind_code(*k)), i + 1);
        }
        let kinds: Vec<&str> = LEG_KINDS.iter().map(|k| leg_kind_str(*k)).collect();
        assert_eq!(
            kinds,
            [
                "pooled_fund",
                "personal_account",
                "bank",
                "social_security_fund",
                "fee"
            ]
        );
    }

    #[test]
    fn a_value_not_in_the_form_is_refused() {
        for bad in [
            "",
            "1,3",
            "1,9,1,1,2,3,5",
            "1,3,1,0,2,3,5",
            "1,3,1,1,2,3,5,7",
            "x,3,1,1,2,3,5",
        ] {
            assert!(unpack(bad).is_err(), "{bad:?}");
        }
    }
}
