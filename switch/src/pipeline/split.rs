//! The medical-insurance bill split: who pays how much of a hospital bill.
//!
//! Why this exists: a hospital payment is paid by up to three sources, decided here and nowhere
//! else, so the rule can be read, configured and tested on its own:
//!
//! 1. the **pooled fund** (统筹基金) pays `ratio × (bill − deductible)`, rounded down to the fen,
//!    never more than what is left of the cardholder's annual cap;
//! 2. the cardholder's **personal account** (个人账户) pays what it can of the rest;
//! 3. the **bank** application of the card pays the remainder (a 0200 to the card's bank).
//!
//! The deductible (起付标准) applies per bill (per settlement, as for an inpatient stay). The
//! policy table is keyed by the cardholder's insurance scheme, the medical category of the bill
//! (field 62.1) and the hospital's level; a row with category `None` is the default for its scheme
//! and level. Amounts are `rust_decimal::Decimal` yuan in the table and integer fen in the result.

use crate::store::InsuranceCategory;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::HashMap;

/// Level of a designated hospital (一级/二级/三级), which sets deductible and ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
pub struct HospitalLevel(pub u8);

/// Medical category of a bill (field 62.1): 11 outpatient, 12 emergency, 21 inpatient, 31
/// pharmacy, 41 chronic-disease outpatient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
pub struct MedicalCategory(pub u8);

/// One row of the policy table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Paid by the patient before the fund pays anything (yuan, per bill).
    pub deductible: Decimal,
    /// Share of the bill above the deductible the pooled fund pays, 0..=1.
    pub reimbursement_ratio: Decimal,
    /// Most the pooled fund pays for one cardholder in a year (yuan). Enforced through the
    /// cardholder's entitlement account, opened with this amount.
    pub annual_cap: Decimal,
}

/// Why a policy row is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Ratio outside 0..=1.
    #[error("reimbursement ratio {0} outside 0..=1")]
    Ratio(Decimal),
    /// A negative amount or one with more than two decimals.
    #[error("{0} must be a non-negative amount in yuan with at most two decimals")]
    Amount(&'static str),
}

impl Policy {
    /// A checked policy row.
    pub fn new(
        deductible: Decimal,
        reimbursement_ratio: Decimal,
        annual_cap: Decimal,
    ) -> Result<Self, PolicyError> {
        if reimbursement_ratio < Decimal::ZERO || reimbursement_ratio > Decimal::ONE {
            return Err(PolicyError::Ratio(reimbursement_ratio));
        }
        for (name, v) in [("deductible", deductible), ("annual cap", annual_cap)] {
            if v < Decimal::ZERO || v.normalize().scale() > 2 || to_fen(v).is_none() {
                return Err(PolicyError::Amount(name));
            }
        }
        Ok(Self {
            deductible,
            reimbursement_ratio,
            annual_cap,
        })
    }

    /// The annual cap in fen.
    pub fn annual_cap_fen(&self) -> i64 {
        to_fen(self.annual_cap).unwrap_or(0)
    }
}

/// Yuan to fen, exactly (the caller checked the scale).
fn to_fen(yuan: Decimal) -> Option<i64> {
    (yuan * Decimal::ONE_HUNDRED).to_i64()
}

/// The policy table.
#[derive(Debug, Clone, Default)]
pub struct PolicyTable {
    rows: HashMap<(InsuranceCategory, Option<MedicalCategory>, HospitalLevel), Policy>,
}

impl PolicyTable {
    /// Adds a row; `medical = None` is the default for the scheme and level.
    pub fn insert(
        &mut self,
        insurance: InsuranceCategory,
        medical: Option<MedicalCategory>,
        level: HospitalLevel,
        policy: Policy,
    ) {
        self.rows.insert((insurance, medical, level), policy);
    }

    /// Every row: scheme, medical category (`None`: the default row), hospital level, policy
    /// (a configuration's `[[policy]]` entries, `sim::serve_config`).
    pub fn rows(
        &self,
    ) -> impl Iterator<
        Item = (
            InsuranceCategory,
            Option<MedicalCategory>,
            HospitalLevel,
            &Policy,
        ),
    > + '_ {
        self.rows.iter().map(|((i, m, l), p)| (*i, *m, *l, p))
    }

    /// The row for a bill: the exact medical category first, then the default.
    pub fn lookup(
        &self,
        insurance: InsuranceCategory,
        medical: MedicalCategory,
        level: HospitalLevel,
    ) -> Option<&Policy> {
        self.rows
            .get(&(insurance, Some(medical), level))
            .or_else(|| self.rows.get(&(insurance, None, level)))
    }

    /// The largest annual cap of a scheme: the opening balance of a new cardholder's
    /// entitlement account.
    pub fn annual_cap_fen(&self, insurance: InsuranceCategory) -> i64 {
        self.rows
            .iter()
            .filter(|((i, _, _), _)| *i == insurance)
            .map(|(_, p)| p.annual_cap_fen())
            .max()
            .unwrap_or(0)
    }

    /// The demo table: employees and residents at hospital levels 1–3, with the pharmacy
    /// category paid by the personal account only. Figures are in the range Chinese cities
    /// publish; they are examples, not any city's policy.
    pub fn demo() -> Self {
        let mut t = PolicyTable::default();
        let d = |s: &str| s.parse::<Decimal>().unwrap_or(Decimal::ZERO);
        let rows = [
            (InsuranceCategory::Employee, 1, "200", "0.90", "400000"),
            (InsuranceCategory::Employee, 2, "400", "0.85", "400000"),
            (InsuranceCategory::Employee, 3, "800", "0.80", "400000"),
            (InsuranceCategory::Resident, 1, "100", "0.75", "200000"),
            (InsuranceCategory::Resident, 2, "300", "0.65", "200000"),
            (InsuranceCategory::Resident, 3, "600", "0.55", "200000"),
        ];
        for (ins, level, deductible, ratio, cap) in rows {
            if let Ok(p) = Policy::new(d(deductible), d(ratio), d(cap)) {
                t.insert(ins, None, HospitalLevel(level), p.clone());
                if let Ok(pharmacy) = Policy::new(Decimal::ZERO, Decimal::ZERO, p.annual_cap) {
                    t.insert(
                        ins,
                        Some(MedicalCategory(31)),
                        HospitalLevel(level),
                        pharmacy,
                    );
                }
            }
        }
        t
    }
}

/// What the split needs to know besides the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitInput {
    /// The bill (field 62.4 = field 4), fen.
    pub bill_fen: i64,
    /// What is left of the cardholder's annual pooled-fund cap, fen.
    pub entitlement_remaining_fen: i64,
    /// Available balance of the personal account, fen (0 when there is none).
    pub personal_available_fen: i64,
}

/// Who pays what, in fen. `pooled + personal + bank = bill`, each ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Split {
    /// The pooled fund's share.
    pub pooled_fen: i64,
    /// The personal account's share.
    pub personal_fen: i64,
    /// The bank application's share.
    pub bank_fen: i64,
}

/// Splits a bill. Never fails: a policy of ratio 0 leaves everything to the cardholder.
pub fn split_bill(policy: &Policy, input: SplitInput) -> Split {
    let bill = input.bill_fen.max(0);
    let deductible = to_fen(policy.deductible).unwrap_or(i64::MAX);
    let above = bill.saturating_sub(deductible).max(0);
    let pooled_share = (Decimal::from(above) * policy.reimbursement_ratio)
        .round_dp_with_strategy(0, RoundingStrategy::ToZero)
        .to_i64()
        .unwrap_or(0);
    let pooled_fen = pooled_share
        .min(input.entitlement_remaining_fen.max(0))
        .clamp(0, bill);
    let rest = bill - pooled_fen;
    let personal_fen = rest.min(input.personal_available_fen.max(0));
    let bank_fen = rest - personal_fen;
    debug_assert_eq!(pooled_fen + personal_fen + bank_fen, bill);
    Split {
        pooled_fen,
        personal_fen,
        bank_fen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(deductible: &str, ratio: &str) -> Policy {
        Policy::new(
            deductible.parse().unwrap(),
            ratio.parse().unwrap(),
            "100000".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn fund_pays_its_ratio_above_the_deductible_and_the_personal_account_the_rest() {
        // 1000.00 bill, 200.00 deductible, 90 %: fund 720.00, personal pays 280.00.
        let s = split_bill(
            &policy("200", "0.90"),
            SplitInput {
                bill_fen: 100_000,
                entitlement_remaining_fen: 10_000_000,
                personal_available_fen: 50_000,
            },
        );
        assert_eq!(
            s,
            Split {
                pooled_fen: 72_000,
                personal_fen: 28_000,
                bank_fen: 0
            }
        );
    }

    #[test]
    fn the_bank_pays_what_the_personal_account_cannot() {
        let s = split_bill(
            &policy("200", "0.90"),
            SplitInput {
                bill_fen: 100_000,
                entitlement_remaining_fen: 10_000_000,
                personal_available_fen: 8_000,
            },
        );
        assert_eq!(
            (s.pooled_fen, s.personal_fen, s.bank_fen),
            (72_000, 8_000, 20_000)
        );
    }

    #[test]
    fn the_annual_cap_limits_the_pooled_fund() {
        let s = split_bill(
            &policy("0", "0.80"),
            SplitInput {
                bill_fen: 100_000,
                entitlement_remaining_fen: 30_000,
                personal_available_fen: 0,
            },
        );
        assert_eq!(
            (s.pooled_fen, s.personal_fen, s.bank_fen),
            (30_000, 0, 70_000)
        );
    }

    #[test]
    fn a_bill_under_the_deductible_is_paid_by_the_cardholder() {
        let s = split_bill(
            &policy("200", "0.90"),
            SplitInput {
                bill_fen: 15_000,
                entitlement_remaining_fen: 10_000_000,
                personal_available_fen: 10_000,
            },
        );
        assert_eq!(
            (s.pooled_fen, s.personal_fen, s.bank_fen),
            (0, 10_000, 5_000)
        );
    }

    #[test]
    fn the_fund_share_is_rounded_down_to_the_fen() {
        // 0.85 × 333 fen = 283.05 → 283.
        let s = split_bill(
            &policy("0", "0.85"),
            SplitInput {
                bill_fen: 333,
                entitlement_remaining_fen: 1_000,
                personal_available_fen: 1_000,
            },
        );
        assert_eq!((s.pooled_fen, s.personal_fen), (283, 50));
    }

    #[test]
    fn pharmacy_bills_fall_back_to_their_own_row_and_others_to_the_default() {
        let t = PolicyTable::demo();
        let level = HospitalLevel(3);
        let pharmacy = t
            .lookup(InsuranceCategory::Employee, MedicalCategory(31), level)
            .unwrap();
        assert_eq!(pharmacy.reimbursement_ratio, Decimal::ZERO);
        let outpatient = t
            .lookup(InsuranceCategory::Employee, MedicalCategory(11), level)
            .unwrap();
        assert_eq!(outpatient.reimbursement_ratio, "0.80".parse().unwrap());
        assert!(t
            .lookup(
                InsuranceCategory::Employee,
                MedicalCategory(11),
                HospitalLevel(9)
            )
            .is_none());
        assert_eq!(t.annual_cap_fen(InsuranceCategory::Resident), 20_000_000);
    }

    #[test]
    fn bad_policy_rows_are_refused() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert!(matches!(
            Policy::new(d("0"), d("1.2"), d("1")),
            Err(PolicyError::Ratio(_))
        ));
        assert!(matches!(
            Policy::new(d("-1"), d("0.5"), d("1")),
            Err(PolicyError::Amount("deductible"))
        ));
        assert!(matches!(
            Policy::new(d("0.001"), d("0.5"), d("1")),
            Err(PolicyError::Amount("deductible"))
        ));
    }

    proptest! {
        #[test]
        fn legs_always_add_up_to_the_bill_and_respect_every_bound(
            bill in 0i64..10_000_000_000,
            deductible_fen in 0i64..1_000_000,
            ratio_pct in 0u32..=100,
            remaining in 0i64..10_000_000_000,
            personal in 0i64..10_000_000_000,
        ) {
            let p = Policy::new(
                Decimal::new(deductible_fen, 2),
                Decimal::new(i64::from(ratio_pct), 2),
                Decimal::new(1_000_000, 0),
            ).unwrap();
            let s = split_bill(&p, SplitInput {
                bill_fen: bill,
                entitlement_remaining_fen: remaining,
                personal_available_fen: personal,
            });
            prop_assert_eq!(s.pooled_fen + s.personal_fen + s.bank_fen, bill);
            prop_assert!(s.pooled_fen >= 0 && s.personal_fen >= 0 && s.bank_fen >= 0);
            prop_assert!(s.pooled_fen <= remaining);
            prop_assert!(s.personal_fen <= personal);
            prop_assert!(s.pooled_fen <= (bill - deductible_fen).max(0));
        }
    }
}
