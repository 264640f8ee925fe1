//! Settlement files per institution per window: a CSV statement, an ISO 20022 camt.053-style
//! XML statement, and the medical-insurance reconciliation view (totals and detail, in the
//! spirit of the national medical-insurance platform's 3201 totals and 3202 detail).
//!
//! The CSV's first eight columns are the canonical posting form of `window` (joined with `|`),
//! so an institution recomputes its digest from its own statement and compares it with the
//! digest in the header (see `window` for the canonical form).

use crate::error::{add_fen, ClearingError, Result};
use crate::ledger::Ledger;
use crate::window::{self, PostingRecord, WindowSummary};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use uuid::Uuid;

/// Report formats of `clearing report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// CSV statement.
    Csv,
    /// camt.053-style XML statement.
    Camt053,
    /// Medical-insurance reconciliation (CSV, totals then detail).
    Medical,
}

impl std::str::FromStr for ReportFormat {
    type Err = ClearingError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "csv" => Ok(ReportFormat::Csv),
            "camt053" => Ok(ReportFormat::Camt053),
            "medical" => Ok(ReportFormat::Medical),
            other => Err(ClearingError::Config(format!(
                "report format {other:?}: use csv, camt053 or medical"
            ))),
        }
    }
}

/// Renders a report.
pub async fn render(
    ledger: &Ledger,
    institution: &str,
    window_id: i64,
    format: ReportFormat,
) -> Result<String> {
    let summary = window::window_summary(ledger, window_id).await?;
    let postings = window::window_postings(ledger, window_id, Some(institution)).await?;
    match format {
        ReportFormat::Csv => statement_csv(institution, &summary, &postings),
        ReportFormat::Camt053 => statement_camt053(institution, &summary, &postings),
        ReportFormat::Medical => {
            let all = window::window_postings(ledger, window_id, None).await?;
            medical_reconciliation(institution, window_id, &all)?.to_csv()
        }
    }
}

fn yuan(fen: i64) -> Decimal {
    Decimal::new(fen, 2)
}

fn time(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// CSV statement of `institution` in a window.
pub fn statement_csv(
    institution: &str,
    w: &WindowSummary,
    postings: &[PostingRecord],
) -> Result<String> {
    let digest = window::digest_of(postings);
    let net = postings.iter().try_fold(0, |net, p| {
        add_fen(net, signed_for(institution, p)?, "statement net")
    })?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# statement institution={institution} window={} status={} opened_at={} closed_at={}",
        w.window_id,
        if w.closed { "closed" } else { "open" },
        time(w.opened_at_us),
        w.closed_at_us.map(time).unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "# institution_digest_sha256={} window_digest_sha256={} net_fen={net}",
        hex::encode(digest),
        w.digest
            .map(hex::encode)
            .unwrap_or_else(|| "pending".into())
    );
    out.push_str(
        "event_id,leg_no,event_type,debit_institution,debit_account,credit_institution,\
         credit_account,amount_fen,leg_kind,direction,amount_yuan,posted_at\n",
    );
    for p in postings {
        let direction = if p.debit_institution == institution {
            "DBIT"
        } else {
            "CRDT"
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            p.event_id.hyphenated(),
            p.leg_no,
            p.event_type,
            p.debit_institution,
            p.debit_account,
            p.credit_institution,
            p.credit_account,
            p.amount_fen,
            p.leg_kind,
            direction,
            yuan(p.amount_fen),
            time(p.posted_at_us)
        );
    }
    Ok(out)
}

/// Recomputes the institution digest from a CSV statement (what a participant does with its
/// own file). Returns the digest and the one the header claims.
pub fn verify_statement_csv(csv: &str) -> Result<([u8; 32], String)> {
    use sha2::{Digest, Sha256};
    let claimed = csv
        .lines()
        .find_map(|l| l.strip_prefix("# institution_digest_sha256="))
        .and_then(|l| l.split_whitespace().next())
        .ok_or_else(|| ClearingError::Report("no digest header".into()))?
        .to_owned();
    let mut lines: Vec<String> = csv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("event_id,"))
        .map(|l| l.split(',').take(8).collect::<Vec<_>>().join("|") + "\n")
        .collect();
    lines.sort_by(|a, b| {
        let key = |l: &str| {
            let mut f = l.split('|');
            let id = f.next().and_then(|s| Uuid::parse_str(s).ok());
            let leg: i64 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            (id, leg)
        };
        key(a).cmp(&key(b))
    });
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l.as_bytes());
    }
    Ok((h.finalize().into(), claimed))
}

/// What a posting adds to `institution`'s net: its amount received less its amount paid.
fn signed_for(institution: &str, p: &PostingRecord) -> Result<i64> {
    let side = |ours: bool| if ours { p.amount_fen } else { 0 };
    side(p.credit_institution == institution)
        .checked_sub(side(p.debit_institution == institution))
        .ok_or(ClearingError::Overflow("statement net"))
}

/// Escapes text for XML element content and attribute values.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// camt.053-style statement (ISO 20022 BankToCustomerStatementV08 shape: group header, one
/// statement with opening/closing balances, transaction summary and one entry per posting
/// side). Amounts in yuan with two decimals, currency CNY.
pub fn statement_camt053(
    institution: &str,
    w: &WindowSummary,
    postings: &[PostingRecord],
) -> Result<String> {
    let digest = window::digest_of(postings);
    let inst = xml(institution);
    let created = time(w.closed_at_us.unwrap_or(w.opened_at_us));
    let mut entries = String::new();
    let (mut credits, mut debits, mut n_cr, mut n_dr) = (0i64, 0i64, 0, 0);
    for p in postings {
        for (side, is_ours) in [
            ("DBIT", p.debit_institution == institution),
            ("CRDT", p.credit_institution == institution),
        ] {
            if !is_ours {
                continue;
            }
            if side == "CRDT" {
                credits = add_fen(credits, p.amount_fen, "statement credits")?;
                n_cr += 1;
            } else {
                debits = add_fen(debits, p.amount_fen, "statement debits")?;
                n_dr += 1;
            }
            let counterparty = if side == "CRDT" {
                &p.debit_institution
            } else {
                &p.credit_institution
            };
            let _ = write!(
                entries,
                "      <Ntry>\n        <NtryRef>{id}-{leg}</NtryRef>\n        <Amt Ccy=\"CNY\">{amt}</Amt>\n        <CdtDbtInd>{side}</CdtDbtInd>\n        <Sts><Cd>BOOK</Cd></Sts>\n        <BookgDt><DtTm>{at}</DtTm></BookgDt>\n        <BkTxCd><Prtry><Cd>{ty}</Cd><Issr>SSC</Issr></Prtry></BkTxCd>\n        <NtryDtls><TxDtls>\n          <Refs><EndToEndId>{id}</EndToEndId></Refs>\n          <RltdAgts><{agent}><FinInstnId><Othr><Id>{cp}</Id></Othr></FinInstnId></{agent}></RltdAgts>\n          <AddtlTxInf>{kind} {da}/{ca}</AddtlTxInf>\n        </TxDtls></NtryDtls>\n      </Ntry>\n",
                id = p.event_id.hyphenated(),
                leg = p.leg_no,
                amt = yuan(p.amount_fen),
                at = time(p.posted_at_us),
                ty = xml(&p.event_type),
                agent = if side == "CRDT" { "DbtrAgt" } else { "CdtrAgt" },
                cp = xml(counterparty),
                kind = xml(&p.leg_kind),
                da = xml(&p.debit_account),
                ca = xml(&p.credit_account),
            );
        }
    }
    let overflow = || ClearingError::Overflow("statement net");
    let net = credits.checked_sub(debits).ok_or_else(overflow)?;
    let net_abs = net.checked_abs().ok_or_else(overflow)?;
    let sum = add_fen(credits, debits, "statement sum")?;
    let ind = |v: i64| if v >= 0 { "CRDT" } else { "DBIT" };
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">\n  <BkToCstmrStmt>\n    <GrpHdr>\n      <MsgId>SSC-W{w}-{inst}</MsgId>\n      <CreDtTm>{created}</CreDtTm>\n    </GrpHdr>\n    <Stmt>\n      <Id>W{w}-{inst}</Id>\n      <ElctrncSeqNb>{w}</ElctrncSeqNb>\n      <CreDtTm>{created}</CreDtTm>\n      <FrToDt><FrDtTm>{from}</FrDtTm><ToDtTm>{to}</ToDtTm></FrToDt>\n      <Acct><Id><Othr><Id>{inst}</Id><SchmeNm><Prtry>SSC-INSTITUTION</Prtry></SchmeNm></Othr></Id><Ccy>CNY</Ccy></Acct>\n      <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><DtTm>{from}</DtTm></Dt></Bal>\n      <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">{net_abs}</Amt><CdtDbtInd>{net_ind}</CdtDbtInd><Dt><DtTm>{to}</DtTm></Dt></Bal>\n      <TxsSummry>\n        <TtlNtries><NbOfNtries>{n}</NbOfNtries><Sum>{sum}</Sum><TtlNetNtry><Amt>{net_abs}</Amt><CdtDbtInd>{net_ind}</CdtDbtInd></TtlNetNtry></TtlNtries>\n        <TtlCdtNtries><NbOfNtries>{n_cr}</NbOfNtries><Sum>{cr}</Sum></TtlCdtNtries>\n        <TtlDbtNtries><NbOfNtries>{n_dr}</NbOfNtries><Sum>{dr}</Sum></TtlDbtNtries>\n      </TxsSummry>\n{entries}      <AddtlStmtInf>institution-digest-sha256={idg} window-digest-sha256={wdg}</AddtlStmtInf>\n    </Stmt>\n  </BkToCstmrStmt>\n</Document>\n",
        w = w.window_id,
        from = time(w.opened_at_us),
        to = w.closed_at_us.map(time).unwrap_or_default(),
        net_abs = yuan(net_abs),
        net_ind = ind(net),
        n = n_cr + n_dr,
        sum = yuan(sum),
        cr = yuan(credits),
        dr = yuan(debits),
        idg = hex::encode(digest),
        wdg = w.digest.map(hex::encode).unwrap_or_else(|| "pending".into()),
    );
    Ok(out)
}

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
    /// CSV: a totals section (per hospital, then all) and a detail section.
    pub fn to_csv(&self) -> Result<String> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# medical-insurance reconciliation fund={} window={}",
            self.fund_id, self.window_id
        );
        out.push_str(
            "section,hospital_id,events,pooled_fund_fen,personal_account_fen,bank_fen,total_fen\n",
        );
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
        out.push_str("section,event_id,event_type,hospital_id,pooled_fund_fen,personal_account_fen,bank_fen,total_fen\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(event: u128, debit_account: &str, amount_fen: i64) -> PostingRecord {
        PostingRecord {
            event_id: Uuid::from_u128(event),
            leg_no: 1,
            event_type: "medical_bill".into(),
            leg_kind: "fund".into(),
            debit_institution: "FUND".into(),
            debit_account: debit_account.into(),
            credit_institution: "HOSP".into(),
            credit_account: "merchant".into(),
            amount_fen,
            posted_at_us: 0,
        }
    }

    fn summary() -> WindowSummary {
        WindowSummary {
            window_id: 1,
            opened_at_us: 0,
            closed_at_us: None,
            closed: false,
            digest: None,
            posting_count: 0,
            posted_total_fen: 0,
            net_positions: Vec::new(),
            instructions: Vec::new(),
        }
    }

    #[test]
    fn report_totals_that_overflow_are_errors_not_wraps() {
        let postings = [
            posting(1, "pooled_fund", i64::MAX),
            posting(2, "pooled_fund", 1),
        ];
        assert!(matches!(
            medical_reconciliation("FUND", 1, &postings),
            Err(ClearingError::Overflow("pooled fund"))
        ));
        assert!(matches!(
            statement_csv("HOSP", &summary(), &postings),
            Err(ClearingError::Overflow("statement net"))
        ));
        assert!(matches!(
            statement_camt053("HOSP", &summary(), &postings),
            Err(ClearingError::Overflow("statement credits"))
        ));
        let fine = [
            posting(1, "pooled_fund", 700),
            posting(1, "bank_settlement", 300),
        ];
        let view = medical_reconciliation("FUND", 1, &fine).unwrap();
        assert_eq!(view.totals.total_fen().unwrap(), 1_000);
    }
}
