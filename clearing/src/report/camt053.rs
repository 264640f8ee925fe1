//! The ISO 20022 camt.053.001.08 statement (BankToCustomerStatementV08) of one institution for
//! one closed window, written with an XML writer so escaping and nesting are the writer's job.
//!
//! Every bounded field of the schema is checked before it is written (`Max35Text` and the like,
//! amounts of at most 18 digits), so a value that would make the file invalid is an error here,
//! never a file a bank's import rejects. The mapping of the ledger onto the schema is documented
//! in docs/settlement-files.md; the tests validate every statement they produce against the
//! official schema (schemas/iso20022/camt.053.001.08.xsd) with xmllint.

use super::{canonical_order, time, yuan, ClosedWindow, SideTotals};
use crate::error::{add_fen, ClearingError, Result};
use crate::window::{PostingRecord, WindowSummary};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

/// The message's namespace (ISO 20022 message identifier camt.053.001.08).
const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08";
/// Every leg is in yuan (ISO 4217 CNY).
const CURRENCY: &str = "CNY";
/// Issuer of the proprietary bank transaction codes (our event types) and account scheme.
const ISSUER: &str = "SSC";
/// Proprietary scheme of the account identification: the institution id of ISO 8583 field 32.
const ACCOUNT_SCHEME: &str = "SSC-INSTITUTION";
/// The largest amount, in fen, whose yuan form fits the schema's amounts and sums
/// (`totalDigits` 18): 10^18 − 1.
pub(super) const AMOUNT_FEN_MAX: i64 = 999_999_999_999_999_999;

/// camt.053.001.08 statement of `institution` in the closed window `w`: the group header, one
/// statement with its opening (OPBD, zero: every window is settled on its own) and closing
/// (CLBD, the window's net) booked balances, the transaction summary, and one entry per side of
/// each posting the institution is on, in canonical order. Postings of other institutions are
/// left out.
pub fn statement_camt053(
    institution: &str,
    w: &WindowSummary,
    postings: &[PostingRecord],
) -> Result<String> {
    let closed = ClosedWindow::of(w)?;
    let owned: Vec<PostingRecord> = postings
        .iter()
        .filter(|p| p.involves(institution))
        .cloned()
        .collect();
    let ours = canonical_order(&owned);
    let totals = SideTotals::of(institution, &owned)?;
    let net_fen = totals.net_fen()?;
    let net_abs_fen = net_fen
        .checked_abs()
        .ok_or(ClearingError::Overflow("statement net"))?;
    let entry_count = add_fen(totals.credit_count, totals.debit_count, "statement entries")?;
    let sum_fen = add_fen(totals.credits_fen, totals.debits_fen, "statement sum")?;
    let (from, to) = (time(closed.opened_at_us)?, time(closed.closed_at_us)?);
    let w_id = closed.window_id;

    let mut d = Doc::new();
    d.w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    d.open_with("Document", ("xmlns", NAMESPACE))?;
    d.open("BkToCstmrStmt")?;
    d.open("GrpHdr")?;
    d.leaf(
        "MsgId",
        &max_text(format!("SSC-W{w_id}-{institution}"), 35, "MsgId")?,
    )?;
    // The window's close, not the wall clock: the same window renders to the same bytes.
    d.leaf("CreDtTm", &to)?;
    d.close("GrpHdr")?;
    d.open("Stmt")?;
    d.leaf(
        "Id",
        &max_text(format!("W{w_id}-{institution}"), 35, "Stmt/Id")?,
    )?;
    d.leaf("ElctrncSeqNb", &w_id.to_string())?;
    d.leaf("CreDtTm", &to)?;
    d.open("FrToDt")?;
    d.leaf("FrDtTm", &from)?;
    d.leaf("ToDtTm", &to)?;
    d.close("FrToDt")?;
    account(&mut d, institution)?;
    balance(&mut d, "OPBD", 0, &from)?;
    balance(&mut d, "CLBD", net_fen, &to)?;
    d.open("TxsSummry")?;
    d.open("TtlNtries")?;
    d.leaf("NbOfNtries", &entry_count.to_string())?;
    d.leaf("Sum", &amount(sum_fen, "TtlNtries/Sum")?)?;
    d.open("TtlNetNtry")?;
    d.leaf("Amt", &amount(net_abs_fen, "TtlNetNtry/Amt")?)?;
    d.leaf("CdtDbtInd", indicator(net_fen))?;
    d.close("TtlNetNtry")?;
    d.close("TtlNtries")?;
    for (name, count, fen) in [
        ("TtlCdtNtries", totals.credit_count, totals.credits_fen),
        ("TtlDbtNtries", totals.debit_count, totals.debits_fen),
    ] {
        d.open(name)?;
        d.leaf("NbOfNtries", &count.to_string())?;
        d.leaf("Sum", &amount(fen, name)?)?;
        d.close(name)?;
    }
    d.close("TxsSummry")?;
    for p in ours {
        if p.debit_institution == institution {
            entry(&mut d, p, Side::Debit)?;
        }
        if p.credit_institution == institution {
            entry(&mut d, p, Side::Credit)?;
        }
    }
    d.leaf(
        "AddtlStmtInf",
        &format!(
            "institution-digest-sha256={} window-digest-sha256={}",
            hex::encode(crate::window::digest_of(&owned)),
            hex::encode(closed.digest)
        ),
    )?;
    d.close("Stmt")?;
    d.close("BkToCstmrStmt")?;
    d.close("Document")?;
    let mut bytes = d.w.into_inner();
    bytes.push(b'\n');
    String::from_utf8(bytes).map_err(|e| ClearingError::Report(format!("camt.053: {e}")))
}

/// Which side of a posting an entry shows.
#[derive(Debug, Clone, Copy)]
enum Side {
    Debit,
    Credit,
}

fn indicator(signed_fen: i64) -> &'static str {
    if signed_fen < 0 {
        "DBIT"
    } else {
        "CRDT"
    }
}

/// `Acct`: the institution's settlement position with the network, identified by its
/// institution id under our proprietary scheme.
fn account(d: &mut Doc, institution: &str) -> Result<()> {
    d.open("Acct")?;
    d.open("Id")?;
    d.open("Othr")?;
    d.leaf("Id", &max_text(institution.to_owned(), 34, "Acct/Id")?)?;
    d.open("SchmeNm")?;
    d.leaf("Prtry", ACCOUNT_SCHEME)?;
    d.close("SchmeNm")?;
    d.close("Othr")?;
    d.close("Id")?;
    d.leaf("Ccy", CURRENCY)?;
    d.close("Acct")
}

/// `Bal` with an ISO 20022 balance type code (ExternalBalanceType1Code: OPBD opening booked,
/// CLBD closing booked).
fn balance(d: &mut Doc, code: &str, signed_fen: i64, at: &str) -> Result<()> {
    let abs = signed_fen
        .checked_abs()
        .ok_or(ClearingError::Overflow("statement balance"))?;
    d.open("Bal")?;
    d.open("Tp")?;
    d.open("CdOrPrtry")?;
    d.leaf("Cd", code)?;
    d.close("CdOrPrtry")?;
    d.close("Tp")?;
    d.amount("Amt", abs, "Bal/Amt")?;
    d.leaf("CdtDbtInd", indicator(signed_fen))?;
    d.open("Dt")?;
    d.leaf("DtTm", at)?;
    d.close("Dt")?;
    d.close("Bal")
}

/// One `Ntry`: one side of one posting, booked (`BOOK`) when the posting was written.
fn entry(d: &mut Doc, p: &PostingRecord, side: Side) -> Result<()> {
    let leg = u8::try_from(p.leg_no)
        .ok()
        .filter(|l| *l > 0)
        .ok_or_else(|| {
            ClearingError::Report(format!(
                "event {} leg {} is not 1..=255",
                p.event_id, p.leg_no
            ))
        })?;
    let (ind, side_letter, agent, counterparty) = match side {
        Side::Debit => ("DBIT", 'D', "CdtrAgt", &p.credit_institution),
        Side::Credit => ("CRDT", 'C', "DbtrAgt", &p.debit_institution),
    };
    // 32 hex digits of the event id, the leg in 2 hex digits, the side: 35 characters, unique
    // per entry even when an institution is on both sides of a posting.
    let ntry_ref = format!("{}{leg:02x}{side_letter}", p.event_id.simple());
    d.open("Ntry")?;
    d.leaf("NtryRef", &ntry_ref)?;
    d.amount("Amt", p.amount_fen, "Ntry/Amt")?;
    d.leaf("CdtDbtInd", ind)?;
    if p.event_type == "reversal" {
        // ISO 20022: the entry undoes an earlier entry of the opposite direction.
        d.leaf("RvslInd", "true")?;
    }
    d.open("Sts")?;
    d.leaf("Cd", "BOOK")?;
    d.close("Sts")?;
    d.open("BookgDt")?;
    d.leaf("DtTm", &time(p.posted_at_us)?)?;
    d.close("BookgDt")?;
    d.open("BkTxCd")?;
    d.open("Prtry")?;
    d.leaf(
        "Cd",
        &max_text(p.event_type.clone(), 35, "BkTxCd/Prtry/Cd")?,
    )?;
    d.leaf("Issr", ISSUER)?;
    d.close("Prtry")?;
    d.close("BkTxCd")?;
    d.open("NtryDtls")?;
    d.open("TxDtls")?;
    d.open("Refs")?;
    d.leaf("EndToEndId", &p.event_id.simple().to_string())?;
    d.close("Refs")?;
    d.open("RltdAgts")?;
    d.open(agent)?;
    d.open("FinInstnId")?;
    d.open("Othr")?;
    d.leaf(
        "Id",
        &max_text(counterparty.clone(), 35, "FinInstnId/Othr/Id")?,
    )?;
    d.close("Othr")?;
    d.close("FinInstnId")?;
    d.close(agent)?;
    d.close("RltdAgts")?;
    let info = format!(
        "{} {}/{} event {} leg {}",
        p.leg_kind,
        p.debit_account,
        p.credit_account,
        p.event_id.hyphenated(),
        p.leg_no
    );
    d.leaf("AddtlTxInf", &max_text(info, 500, "AddtlTxInf")?)?;
    d.close("TxDtls")?;
    d.close("NtryDtls")?;
    d.close("Ntry")
}

/// A yuan amount of the schema: not negative, two decimals, at most 18 digits.
fn amount(fen: i64, what: &str) -> Result<String> {
    if !(0..=AMOUNT_FEN_MAX).contains(&fen) {
        return Err(ClearingError::Report(format!(
            "camt.053 {what}: {fen} fen is outside 0..={AMOUNT_FEN_MAX}"
        )));
    }
    Ok(yuan(fen).to_string())
}

/// Text of a bounded schema type (`Max35Text` and the like): 1..=`max_chars` characters, all
/// of them allowed in XML 1.0.
fn max_text(value: String, max_chars: usize, what: &str) -> Result<String> {
    let xml_char = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    let n = value.chars().count();
    if n == 0 || n > max_chars || !value.chars().all(xml_char) {
        return Err(ClearingError::Report(format!(
            "camt.053 {what}: {value:?} is not 1..={max_chars} XML characters"
        )));
    }
    Ok(value)
}

fn io(e: std::io::Error) -> ClearingError {
    ClearingError::Report(format!("writing camt.053: {e}"))
}

/// The document being written, indented by two spaces.
struct Doc {
    w: Writer<Vec<u8>>,
}

impl Doc {
    fn new() -> Self {
        Doc {
            w: Writer::new_with_indent(Vec::new(), b' ', 2),
        }
    }

    fn open(&mut self, name: &str) -> Result<()> {
        self.w
            .write_event(Event::Start(BytesStart::new(name)))
            .map_err(io)
    }

    fn open_with(&mut self, name: &str, attr: (&str, &str)) -> Result<()> {
        self.w
            .write_event(Event::Start(BytesStart::new(name).with_attributes([attr])))
            .map_err(io)
    }

    fn close(&mut self, name: &str) -> Result<()> {
        self.w
            .write_event(Event::End(BytesEnd::new(name)))
            .map_err(io)
    }

    fn leaf(&mut self, name: &str, text: &str) -> Result<()> {
        self.w
            .create_element(name)
            .write_text_content(BytesText::new(text))
            .map(|_| ())
            .map_err(io)
    }

    /// `<name Ccy="CNY">yuan</name>`.
    fn amount(&mut self, name: &str, fen: i64, what: &str) -> Result<()> {
        let value = amount(fen, what)?;
        self.w
            .create_element(name)
            .with_attribute(("Ccy", CURRENCY))
            .write_text_content(BytesText::new(&value))
            .map(|_| ())
            .map_err(io)
    }
}
