//! The medical-insurance fund's reconciliation view of a closed window: totals per hospital and
//! overall by funding source (3201-like), and one detail row per event (3202-like). Layout:
//! docs/settlement-files.md.

use crate::error::{add_fen, ClearingError, Result};
use crate::window::PostingRecord;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use uuid::Uuid;

/// Column header of the totals section (documented in docs/settlement-files.md).
pub(crate) const TOTALS_HEADER: &str =
    "section,hospital_id,events,pooled_fund_fen,personal_account_fen,bank_fen,total_fen";
/// Column header of the detail section (documented in docs/settlement-files.md).
pub(crate) const DETAIL_HEADER: &str = "section,event_id,event_type,hospital_id,pooled_fund_fen,\
personal_account_fen,bank_fen,total_fen";

/// Amounts by funding source, fen (negative for reversals and refunds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MedicalTotals {
    /// Settlement events counted.
    pub events: i64,
    /// Paid by the pooled fund.
    pub pooled_fund_fen: i64,
    /// Paid from personal accounts.
    pub personal_account_fen: i64,
    /// Paid by the cardholder's bank.
    pub bank_fen: i64,
}

impl MedicalTotals {
    /// Total medical expense covered by the three sources.
    pub fn total_fen(&self) -> Result<i64> {
        let what = "medical total";
        add_fen(self.pooled_fund_fen, self.personal_account_fen, what)
            .and_then(|t| add_fen(t, self.bank_fen, what))
    }

    fn add(&mut self, o: &MedicalTotals) -> Result<()> {
        *self = MedicalTotals {
            events: add_fen(self.events, o.events, "medical events")?,
            pooled_fund_fen: add_fen(self.pooled_fund_fen, o.pooled_fund_fen, "pooled fund")?,
            personal_account_fen: add_fen(
                self.personal_account_fen,
                o.personal_account_fen,
                "personal accounts",
            )?,
            bank_fen: add_fen(self.bank_fen, o.bank_fen, "bank")?,
        };
        Ok(())
    }
}

/// One settled medical payment (detail, 3202-like).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalDetail {
    /// The event.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// The hospital (acceptor).
    pub hospital_id: String,
    /// The amounts.
    pub totals: MedicalTotals,
}

/// The medical-insurance fund's reconciliation view of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalReconciliation {
    /// The fund.
    pub fund_id: String,
    /// The window.
    pub window_id: i64,
    /// Totals over everything (3201-like).
    pub totals: MedicalTotals,
    /// Totals per hospital.
    pub per_hospital: BTreeMap<String, MedicalTotals>,
    /// One row per event.
    pub detail: Vec<MedicalDetail>,
}

/// Builds the medical-insurance view from a window's postings: every event with a leg on the
/// fund's pooled-fund or personal-accounts account.
pub fn medical_reconciliation(
    fund_id: &str,
    window_id: i64,
    postings: &[PostingRecord],
) -> Result<MedicalReconciliation> {
    let mut by_event: BTreeMap<Uuid, Vec<&PostingRecord>> = BTreeMap::new();
    for p in postings {
        by_event.entry(p.event_id).or_default().push(p);
    }
    let fund_account = |inst: &str, acct: &str| {
        inst == fund_id && (acct == "pooled_fund" || acct == "personal_accounts")
    };
    let mut detail = Vec::new();
    for (event_id, legs) in by_event {
        if !legs.iter().any(|p| {
            fund_account(&p.debit_institution, &p.debit_account)
                || fund_account(&p.credit_institution, &p.credit_account)
        }) {
            continue;
        }
        let mut t = MedicalTotals {
            events: 1,
            ..Default::default()
        };
        let mut hospital = String::new();
        for p in &legs {
            // A payment flows to the merchant account; a reversal flows back from it.
            let (sign, source_acct, merchant) = if p.credit_account == "merchant" {
                (1, p.debit_account.as_str(), &p.credit_institution)
            } else if p.debit_account == "merchant" {
                (-1, p.credit_account.as_str(), &p.debit_institution)
            } else {
                continue;
            };
            hospital.clone_from(merchant);
            let (slot, what) = match source_acct {
                "pooled_fund" => (&mut t.pooled_fund_fen, "pooled fund"),
                "personal_accounts" => (&mut t.personal_account_fen, "personal accounts"),
                "bank_settlement" => (&mut t.bank_fen, "bank"),
                _ => continue,
            };
            let signed = p
                .amount_fen
                .checked_mul(sign)
                .ok_or(ClearingError::Overflow(what))?;
            *slot = add_fen(*slot, signed, what)?;
        }
        detail.push(MedicalDetail {
            event_id,
            event_type: legs
                .first()
                .map(|p| p.event_type.clone())
                .unwrap_or_default(),
            hospital_id: hospital,
            totals: t,
        });
    }
    let mut totals = MedicalTotals::default();
    let mut per_hospital: BTreeMap<String, MedicalTotals> = BTreeMap::new();
    for d in &detail {
        totals.add(&d.totals)?;
        per_hospital
            .entry(d.hospital_id.clone())
            .or_default()
            .add(&d.totals)?;
    }
    Ok(MedicalReconciliation {
        fund_id: fund_id.to_owned(),
        window_id,
        totals,
        per_hospital,
        detail,
    })
}

impl MedicalReconciliation {
    /// CSV: a `#` header line, the totals section (per hospital in id order, then `ALL`) and the
    /// detail section (per event in event id order), each with its own column header.
    pub fn to_csv(&self) -> Result<String> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# medical-insurance reconciliation fund={} window={}",
            self.fund_id, self.window_id
        );
        out.push_str(TOTALS_HEADER);
        out.push('\n');
        for (h, t) in &self.per_hospital {
            let _ = writeln!(
                out,
                "totals,{h},{},{},{},{},{}",
                t.events,
                t.pooled_fund_fen,
                t.personal_account_fen,
                t.bank_fen,
                t.total_fen()?
            );
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "totals,ALL,{},{},{},{},{}",
            t.events,
            t.pooled_fund_fen,
            t.personal_account_fen,
            t.bank_fen,
            t.total_fen()?
        );
        out.push_str(DETAIL_HEADER);
        out.push('\n');
        for d in &self.detail {
            let t = &d.totals;
            let _ = writeln!(
                out,
                "detail,{},{},{},{},{},{},{}",
                d.event_id.hyphenated(),
                d.event_type,
                d.hospital_id,
                t.pooled_fund_fen,
                t.personal_account_fen,
                t.bank_fen,
                t.total_fen()?
            );
        }
        Ok(out)
    }
}
