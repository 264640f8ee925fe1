//! The CSV statement of one institution for one closed window, and the check a participant runs
//! on it (recompute the institution digest from the rows). Layout: docs/settlement-files.md.

use super::{canonical_order, time, yuan, ClosedWindow, SideTotals};
use crate::error::{ClearingError, Result};
use crate::window::{self, PostingRecord, WindowSummary};
use std::fmt::Write as _;
use uuid::Uuid;

/// The column header, documented in docs/settlement-files.md (a test compares the two). The
/// first eight columns are the canonical posting form of `window`.
pub(crate) const HEADER: &str = "event_id,leg_no,event_type,debit_institution,debit_account,\
credit_institution,credit_account,amount_fen,leg_kind,direction,net_effect_fen,amount_yuan,\
posted_at";

/// CSV statement of `institution` in the closed window `w`: three `#` header lines (window,
/// digests, totals), the column header, then one row per posting the institution pays or
/// receives in, in canonical order (event id, leg). Postings of other institutions are left out.
pub fn statement_csv(
    institution: &str,
    w: &WindowSummary,
    postings: &[PostingRecord],
) -> Result<String> {
    let closed = ClosedWindow::of(w)?;
    let ours: Vec<PostingRecord> = postings
        .iter()
        .filter(|p| p.involves(institution))
        .cloned()
        .collect();
    let totals = SideTotals::of(institution, &ours)?;
    let net_fen = totals.net_fen()?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# statement institution={institution} window={} status=closed opened_at={} closed_at={}",
        closed.window_id,
        time(closed.opened_at_us)?,
        time(closed.closed_at_us)?
    );
    let _ = writeln!(
        out,
        "# institution_digest_sha256={} window_digest_sha256={}",
        hex::encode(window::digest_of(&ours)),
        hex::encode(closed.digest),
    );
    let _ = writeln!(
        out,
        "# totals postings={} debits_fen={} credits_fen={} net_fen={net_fen}",
        ours.len(),
        totals.debits_fen,
        totals.credits_fen,
    );
    out.push_str(HEADER);
    out.push('\n');
    for p in canonical_order(&ours) {
        row(&mut out, institution, p)?;
    }
    Ok(out)
}

/// One row. A field that would break the CSV or the canonical form (`,`, `|`, a quote, a line
/// break) is refused rather than quoted: quoting would change the digested form.
fn row(out: &mut String, institution: &str, p: &PostingRecord) -> Result<()> {
    for (what, value) in [
        ("event type", &p.event_type),
        ("leg kind", &p.leg_kind),
        ("debit institution", &p.debit_institution),
        ("debit account", &p.debit_account),
        ("credit institution", &p.credit_institution),
        ("credit account", &p.credit_account),
    ] {
        if value.is_empty() || value.contains([',', '|', '"', '\r', '\n']) {
            return Err(ClearingError::Report(format!(
                "event {} leg {}: {what} {value:?} cannot be written to a CSV statement",
                p.event_id, p.leg_no
            )));
        }
    }
    let pays = p.debit_institution == institution;
    let receives = p.credit_institution == institution;
    // A transfer between two of the institution's own accounts moves nothing net.
    let (direction, net_effect_fen) = match (pays, receives) {
        (true, true) => ("BOTH", 0),
        (true, false) => (
            "DBIT",
            p.amount_fen
                .checked_neg()
                .ok_or(ClearingError::Overflow("statement net"))?,
        ),
        _ => ("CRDT", p.amount_fen),
    };
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{},{direction},{net_effect_fen},{},{}",
        p.event_id.hyphenated(),
        p.leg_no,
        p.event_type,
        p.debit_institution,
        p.debit_account,
        p.credit_institution,
        p.credit_account,
        p.amount_fen,
        p.leg_kind,
        yuan(p.amount_fen),
        time(p.posted_at_us)?
    );
    Ok(())
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
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("event_id,"))
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
