//! Settlement windows: when postings are cut over, what closing a window computes, and the
//! digest participants recompute from their own reports.
//!
//! Exactly one window is open. Postings go to the window named by `window_head`; appliers lock
//! that row shared and [`close_window`] locks it exclusively, so once a window is closed no
//! posting can land in it (its postings are frozen: the table is append-only as well).
//!
//! Closing computes, from the window's postings:
//! - each institution's net (credits − debits): the multilateral net settlement position;
//! - settlement instructions, payer → payee, that settle every net with at most n − 1 transfers
//!   (net debtors and net creditors matched in institution-id order, so the result is
//!   deterministic);
//! - SHA-256 digests in the canonical form below.
//!
//! # Canonical posting form (digests)
//!
//! One line per posting, fields joined by `|`, each line ending in `\n`:
//!
//! ```text
//! event_id|leg_no|event_type|debit_institution|debit_account|credit_institution|credit_account|amount_fen
//! 0190a5e2-7c4e-7b7a-9c1e-3f2a1b0c9d8e|1|purchase|01020000|bank_settlement|3100001|merchant|10000
//! ```
//!
//! `event_id` in lowercase hyphenated form, `leg_no` and `amount_fen` in decimal without
//! padding, accounts in their snake_case names. Lines are sorted by (`event_id`, `leg_no`). The
//! **window digest** is SHA-256 over all lines of the window; an **institution digest** is
//! SHA-256 over the lines of the postings where the institution is debit or credit party. The
//! CSV report carries exactly those columns, so an institution recomputes its digest from its
//! own report and compares it with the one published for the window.

use crate::db::{now_us, Db};
use crate::error::{add_fen, ClearingError, Result};
use crate::ledger::{read, Ledger};
use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, TimeZone, Timelike, Utc};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Beijing time (UTC+08:00, no daylight saving): daily cut-overs are given in it.
fn beijing() -> FixedOffset {
    // 8 hours is a valid offset; FixedOffset::east_opt only fails beyond ±24 h.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| unreachable!("UTC+8 is valid"))
}

/// When windows are cut over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSchedule {
    /// Every `n` minutes, aligned to multiples of `n` minutes since the Unix epoch.
    EveryMinutes(u32),
    /// Once a day at this Beijing time.
    DailyAt {
        /// 0..=23.
        hour: u8,
        /// 0..=59.
        minute: u8,
    },
    /// Only by `close-window`.
    Manual,
}

impl WindowSchedule {
    /// Parses `15m`, `daily@16:30` or `manual`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            ClearingError::Config(format!(
                "window schedule {s:?}: use 15m, daily@HH:MM or manual"
            ))
        };
        if s == "manual" {
            return Ok(WindowSchedule::Manual);
        }
        if let Some(m) = s.strip_suffix('m') {
            let n: u32 = m.parse().map_err(|_| bad())?;
            if n == 0 || n > 7 * 24 * 60 {
                return Err(bad());
            }
            return Ok(WindowSchedule::EveryMinutes(n));
        }
        let hm = s.strip_prefix("daily@").ok_or_else(bad)?;
        let (h, m) = hm.split_once(':').ok_or_else(bad)?;
        let (hour, minute): (u8, u8) =
            (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(WindowSchedule::DailyAt { hour, minute })
    }

    /// The first cut-over strictly after `t` (None for manual windows).
    pub fn next_cutover_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match *self {
            WindowSchedule::Manual => None,
            WindowSchedule::EveryMinutes(n) => {
                let step = i64::from(n) * 60;
                let secs = t.timestamp();
                let next = (secs.div_euclid(step) + 1) * step;
                Utc.timestamp_opt(next, 0).single()
            }
            WindowSchedule::DailyAt { hour, minute } => {
                let local = t.with_timezone(&beijing());
                let today = local
                    .with_hour(u32::from(hour))?
                    .with_minute(u32::from(minute))?
                    .with_second(0)?
                    .with_nanosecond(0)?;
                let at = if today > local {
                    today
                } else {
                    today + ChronoDuration::days(1)
                };
                Some(at.with_timezone(&Utc))
            }
        }
    }
}

/// One posting of a window, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingRecord {
    /// The event.
    pub event_id: Uuid,
    /// Leg number within the event.
    pub leg_no: i64,
    /// Event type name.
    pub event_type: String,
    /// Leg kind name.
    pub leg_kind: String,
    /// Payer.
    pub debit_institution: String,
    /// Payer's account.
    pub debit_account: String,
    /// Payee.
    pub credit_institution: String,
    /// Payee's account.
    pub credit_account: String,
    /// Amount, fen.
    pub amount_fen: i64,
    /// When it was posted (µs since the epoch).
    pub posted_at_us: i64,
}

impl PostingRecord {
    /// The canonical line (see the module docs), newline included.
    pub fn canonical_line(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}\n",
            self.event_id.hyphenated(),
            self.leg_no,
            self.event_type,
            self.debit_institution,
            self.debit_account,
            self.credit_institution,
            self.credit_account,
            self.amount_fen
        )
    }

    /// True if `institution` pays or receives in this posting.
    pub fn involves(&self, institution: &str) -> bool {
        self.debit_institution == institution || self.credit_institution == institution
    }
}

/// SHA-256 over the canonical lines of `postings` (sorted here by event id and leg).
pub fn digest_of(postings: &[PostingRecord]) -> [u8; 32] {
    let mut sorted: Vec<&PostingRecord> = postings.iter().collect();
    sorted.sort_by_key(|p| (p.event_id, p.leg_no));
    let mut h = Sha256::new();
    for p in sorted {
        h.update(p.canonical_line().as_bytes());
    }
    h.finalize().into()
}

/// An institution's result in a closed window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowNetPosition {
    /// Institution.
    pub institution_id: String,
    /// What it paid, fen.
    pub debits_fen: i64,
    /// What it received, fen.
    pub credits_fen: i64,
    /// `credits_fen - debits_fen`.
    pub net_fen: i64,
    /// Its institution digest.
    pub digest: [u8; 32],
}

/// "payer pays payee amount": one transfer of the net settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementInstruction {
    /// 1, 2, ...
    pub instruction_no: i64,
    /// Net debtor.
    pub payer_id: String,
    /// Net creditor.
    pub payee_id: String,
    /// Amount, fen.
    pub amount_fen: i64,
}

/// A window and, once closed, its settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSummary {
    /// Window id (1, 2, ...).
    pub window_id: i64,
    /// Open or closed.
    pub closed: bool,
    /// When it opened.
    pub opened_at_us: i64,
    /// When it closed.
    pub closed_at_us: Option<i64>,
    /// Postings in it (closed windows).
    pub posting_count: i64,
    /// Sum of its postings, fen (closed windows).
    pub posted_total_fen: i64,
    /// The window digest (closed windows).
    pub digest: Option<[u8; 32]>,
    /// Net positions (closed windows).
    pub net_positions: Vec<WindowNetPosition>,
    /// Instructions (closed windows).
    pub instructions: Vec<SettlementInstruction>,
}

/// Matches net debtors with net creditors, both in institution-id order.
pub fn net_settlement(nets: &BTreeMap<String, i64>) -> Vec<SettlementInstruction> {
    let mut debtors: Vec<(String, i64)> = nets
        .iter()
        .filter(|(_, n)| **n < 0)
        .map(|(i, n)| (i.clone(), -n))
        .collect();
    let mut creditors: Vec<(String, i64)> = nets
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| (i.clone(), *n))
        .collect();
    let (mut d, mut c) = (0, 0);
    let mut out = Vec::new();
    while d < debtors.len() && c < creditors.len() {
        let amount = debtors[d].1.min(creditors[c].1);
        out.push(SettlementInstruction {
            instruction_no: out.len() as i64 + 1,
            payer_id: debtors[d].0.clone(),
            payee_id: creditors[c].0.clone(),
            amount_fen: amount,
        });
        debtors[d].1 -= amount;
        creditors[c].1 -= amount;
        if debtors[d].1 == 0 {
            d += 1;
        }
        if creditors[c].1 == 0 {
            c += 1;
        }
    }
    out
}

/// A window's journal rows that posted, in canonical order: the events by id through the index
/// `applied_event_window` (window_id, event_id), each row's legs packed in leg_no order
/// (`ledger::legs`, clearing migration 0004).
const WINDOW_JOURNAL: &str = "SELECT event_id, event_type, applied_at_us, legs FROM applied_event \
     WHERE window_id = $1 AND legs IS NOT NULL ORDER BY event_id";

/// The postings of one journal row, in leg_no order.
fn postings_from_row<R: Row>(row: &R) -> Result<Vec<PostingRecord>>
where
    for<'r> Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let event_id: Uuid = row.try_get(0)?;
    let event_type: &str = row.try_get(1)?;
    let posted_at_us: i64 = row.try_get(2)?;
    let legs: &str = row.try_get(3)?;
    let legs = crate::ledger::legs::unpack(legs)
        .map_err(|e| ClearingError::Invariant(format!("event {event_id}: {e}")))?;
    Ok(legs
        .into_iter()
        .map(|l| PostingRecord {
            event_id,
            leg_no: l.leg_no,
            event_type: event_type.to_owned(),
            leg_kind: l.leg_kind.to_owned(),
            debit_institution: l.debit_institution.to_owned(),
            debit_account: l.debit_account.to_owned(),
            credit_institution: l.credit_institution.to_owned(),
            credit_account: l.credit_account.to_owned(),
            amount_fen: l.amount_fen,
            posted_at_us,
        })
        .collect())
}

/// Accumulates a window's settlement while its postings stream by (sorted by event, leg).
#[derive(Default)]
struct Accumulator {
    count: i64,
    total_fen: i64,
    window: Sha256,
    per_institution: BTreeMap<String, (i64, i64, Sha256)>,
}

impl Accumulator {
    /// Adds one posting; a total that would leave the 64-bit range is an error and the window
    /// is not closed.
    fn add(&mut self, p: &PostingRecord) -> Result<()> {
        let line = p.canonical_line();
        self.count += 1;
        self.total_fen = add_fen(self.total_fen, p.amount_fen, "window total")?;
        self.window.update(line.as_bytes());
        let d = self
            .per_institution
            .entry(p.debit_institution.clone())
            .or_insert_with(|| (0, 0, Sha256::new()));
        d.0 = add_fen(d.0, p.amount_fen, "institution debits")?;
        d.2.update(line.as_bytes());
        if p.credit_institution != p.debit_institution {
            let c = self
                .per_institution
                .entry(p.credit_institution.clone())
                .or_insert_with(|| (0, 0, Sha256::new()));
            c.1 = add_fen(c.1, p.amount_fen, "institution credits")?;
            c.2.update(line.as_bytes());
        } else {
            d.1 = add_fen(d.1, p.amount_fen, "institution credits")?;
        }
        Ok(())
    }

    fn finish(self) -> Result<([u8; 32], i64, i64, Vec<WindowNetPosition>)> {
        let nets = self
            .per_institution
            .into_iter()
            .map(|(i, (debits, credits, h))| {
                Ok(WindowNetPosition {
                    institution_id: i,
                    debits_fen: debits,
                    credits_fen: credits,
                    net_fen: credits
                        .checked_sub(debits)
                        .ok_or(ClearingError::Overflow("institution net"))?,
                    digest: h.finalize().into(),
                })
            })
            .collect::<Result<_>>()?;
        Ok((
            self.window.finalize().into(),
            self.count,
            self.total_fen,
            nets,
        ))
    }
}

/// The body of [`close_window`] on either backend's transaction.
macro_rules! close_in_tx {
    ($tx:ident, $now:expr, $lock:expr) => {{
        let window_id: i64 = sqlx::query_scalar($lock).fetch_one(&mut *$tx).await?;
        let mut acc = Accumulator::default();
        {
            let mut rows = sqlx::query(WINDOW_JOURNAL)
                .bind(window_id)
                .fetch(&mut *$tx);
            while let Some(row) = rows.try_next().await? {
                for p in postings_from_row(&row)? {
                    acc.add(&p)?;
                }
            }
        }
        let (digest, count, total, nets) = acc.finish()?;
        let nets_by_id: BTreeMap<String, i64> = nets
            .iter()
            .map(|n| (n.institution_id.clone(), n.net_fen))
            .collect();
        debug_assert_eq!(nets_by_id.values().sum::<i64>(), 0);
        for n in &nets {
            sqlx::query(
                "INSERT INTO window_net_position (window_id, institution_id, debits_fen, \
                 credits_fen, net_fen, digest) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(window_id)
            .bind(&n.institution_id)
            .bind(n.debits_fen)
            .bind(n.credits_fen)
            .bind(n.net_fen)
            .bind(&n.digest[..])
            .execute(&mut *$tx)
            .await?;
        }
        for i in net_settlement(&nets_by_id) {
            sqlx::query(
                "INSERT INTO settlement_instruction (window_id, instruction_no, payer_id, \
                 payee_id, amount_fen) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(window_id)
            .bind(i.instruction_no)
            .bind(&i.payer_id)
            .bind(&i.payee_id)
            .bind(i.amount_fen)
            .execute(&mut *$tx)
            .await?;
        }
        let closed = sqlx::query(
            "UPDATE settlement_window SET state = 'closed', closed_at_us = $1, \
             posting_count = $2, posted_total_fen = $3, digest = $4 \
             WHERE window_id = $5 AND state = 'open'",
        )
        .bind($now)
        .bind(count)
        .bind(total)
        .bind(&digest[..])
        .bind(window_id)
        .execute(&mut *$tx)
        .await?;
        if closed.rows_affected() != 1 {
            return Err(ClearingError::Invariant(format!(
                "window {window_id} named by window_head is not open"
            )));
        }
        sqlx::query(
            "INSERT INTO settlement_window (window_id, state, opened_at_us) VALUES ($1, 'open', $2)",
        )
        .bind(window_id + 1)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE window_head SET current_window_id = $1 WHERE id = 1")
            .bind(window_id + 1)
            .execute(&mut *$tx)
            .await?;
        window_id
    }};
}

/// Closes the open window and opens the next, in one transaction. Returns the closed window's
/// settlement.
pub async fn close_window(ledger: &Ledger) -> Result<WindowSummary> {
    let now = now_us();
    let window_id = match ledger.db() {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            let result: Result<i64> = async {
                let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
                let id = close_in_tx!(
                    tx,
                    now,
                    "SELECT current_window_id FROM window_head WHERE id = 1"
                );
                tx.commit().await?;
                Ok(id)
            }
            .await;
            if result.is_err() {
                // A transaction SQLite rolled back by itself (disk full) leaves sqlx's count
                // of it behind: the connection is closed, not reused (see `ledger::write_tx`).
                conn.close_on_drop();
            }
            result?
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let id = close_in_tx!(
                tx,
                now,
                "SELECT current_window_id FROM window_head WHERE id = 1 FOR UPDATE"
            );
            tx.commit().await?;
            id
        }
    };
    window_summary(ledger, window_id).await
}

/// Starts the first window at the ledger's start. The migration creates window 1 with
/// `opened_at_us = 0` (1970); the first connection to a new ledger stamps it with the time the
/// ledger started. A ledger from before this rule gets the earliest sign of life of window 1:
/// its first posting, or its close, whichever came first. Runs on every connection and changes
/// nothing once stamped.
pub(crate) async fn start_first_window(db: &Db, now_us: i64) -> Result<()> {
    let head = "SELECT opened_at_us, closed_at_us FROM settlement_window WHERE window_id = 1";
    let first_posting =
        "SELECT MIN(applied_at_us) FROM applied_event WHERE window_id = 1 AND legs IS NOT NULL";
    let stamp = "UPDATE settlement_window SET opened_at_us = $1 \
                 WHERE window_id = 1 AND opened_at_us = 0";
    let (opened, closed): (i64, Option<i64>) =
        read!(db, |pool| { sqlx::query_as(head).fetch_one(pool).await? });
    if opened != 0 {
        return Ok(());
    }
    let posted: Option<i64> = read!(db, |pool| {
        sqlx::query_scalar(first_posting).fetch_one(pool).await?
    });
    let start = [Some(now_us), closed, posted]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now_us);
    read!(db, |pool| {
        sqlx::query(stamp).bind(start).execute(pool).await?;
    });
    Ok(())
}

/// The open window's id.
pub async fn current_window(ledger: &Ledger) -> Result<i64> {
    let sql = "SELECT current_window_id FROM window_head WHERE id = 1";
    Ok(read!(ledger.db(), |pool| {
        sqlx::query_scalar(sql).fetch_one(pool).await?
    }))
}

/// A window with its settlement (if closed).
pub async fn window_summary(ledger: &Ledger, window_id: i64) -> Result<WindowSummary> {
    let sql = "SELECT state, opened_at_us, closed_at_us, posting_count, posted_total_fen, digest \
               FROM settlement_window WHERE window_id = $1";
    type Head = (
        String,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<Vec<u8>>,
    );
    let head: Option<Head> = read!(ledger.db(), |pool| {
        sqlx::query_as(sql)
            .bind(window_id)
            .fetch_optional(pool)
            .await?
    });
    let (state, opened, closed_at, count, total, digest) =
        head.ok_or(ClearingError::WindowNotFound(window_id))?;
    let nets_sql = "SELECT institution_id, debits_fen, credits_fen, net_fen, digest \
                    FROM window_net_position WHERE window_id = $1 ORDER BY institution_id";
    let instr_sql = "SELECT instruction_no, payer_id, payee_id, amount_fen \
                     FROM settlement_instruction WHERE window_id = $1 ORDER BY instruction_no";
    type Nets = Vec<(String, i64, i64, i64, Vec<u8>)>;
    type Instr = Vec<(i64, String, String, i64)>;
    let (nets, instr): (Nets, Instr) = read!(ledger.db(), |pool| {
        (
            sqlx::query_as(nets_sql)
                .bind(window_id)
                .fetch_all(pool)
                .await?,
            sqlx::query_as(instr_sql)
                .bind(window_id)
                .fetch_all(pool)
                .await?,
        )
    });
    Ok(WindowSummary {
        window_id,
        closed: state == "closed",
        opened_at_us: opened,
        closed_at_us: closed_at,
        posting_count: count.unwrap_or(0),
        posted_total_fen: total.unwrap_or(0),
        digest: digest.as_deref().map(to_digest).transpose()?,
        net_positions: nets
            .into_iter()
            .map(|(i, d, c, n, h)| {
                Ok(WindowNetPosition {
                    institution_id: i,
                    debits_fen: d,
                    credits_fen: c,
                    net_fen: n,
                    digest: to_digest(&h)?,
                })
            })
            .collect::<Result<_>>()?,
        instructions: instr
            .into_iter()
            .map(|(n, p, q, a)| SettlementInstruction {
                instruction_no: n,
                payer_id: p,
                payee_id: q,
                amount_fen: a,
            })
            .collect(),
    })
}

fn to_digest(b: &[u8]) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| ClearingError::Invariant("digest is not 32 bytes".into()))
}

/// The postings of a window (all, or those involving `institution`), in canonical order.
pub async fn window_postings(
    ledger: &Ledger,
    window_id: i64,
    institution: Option<&str>,
) -> Result<Vec<PostingRecord>> {
    Ok(read!(ledger.db(), |pool| {
        let rows = sqlx::query(WINDOW_JOURNAL)
            .bind(window_id)
            .fetch_all(pool)
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            out.extend(
                postings_from_row(row)?
                    .into_iter()
                    .filter(|p| institution.is_none_or(|i| p.involves(i))),
            );
        }
        out
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_n_minutes_cuts_at_the_next_multiple() {
        let s = WindowSchedule::parse("15m").unwrap();
        assert_eq!(
            s.next_cutover_after(at("2026-11-23T10:07:12Z")),
            Some(at("2026-11-23T10:15:00Z"))
        );
        assert_eq!(
            s.next_cutover_after(at("2026-11-23T10:15:00Z")),
            Some(at("2026-11-23T10:30:00Z"))
        );
    }

    #[test]
    fn daily_cut_over_is_in_beijing_time() {
        let s = WindowSchedule::parse("daily@16:30").unwrap();
        // 16:30 Beijing = 08:30 UTC.
        assert_eq!(
            s.next_cutover_after(at("2026-11-23T08:00:00Z")),
            Some(at("2026-11-23T08:30:00Z"))
        );
        assert_eq!(
            s.next_cutover_after(at("2026-11-23T08:30:00Z")),
            Some(at("2026-11-24T08:30:00Z"))
        );
        assert!(WindowSchedule::parse("daily@24:00").is_err());
        assert!(WindowSchedule::parse("0m").is_err());
        assert_eq!(
            WindowSchedule::Manual.next_cutover_after(at("2026-11-23T08:00:00Z")),
            None
        );
    }

    #[test]
    fn a_window_whose_totals_overflow_is_refused_not_wrapped() {
        let posting = |event: u128, amount_fen: i64| PostingRecord {
            event_id: Uuid::from_u128(event),
            leg_no: 1,
            event_type: "purchase".into(),
            leg_kind: "bank".into(),
            debit_institution: "BANK".into(),
            debit_account: "bank_settlement".into(),
            credit_institution: "HOSP".into(),
            credit_account: "merchant".into(),
            amount_fen,
            posted_at_us: 0,
        };
        let mut acc = Accumulator::default();
        acc.add(&posting(1, i64::MAX)).unwrap();
        assert!(matches!(
            acc.add(&posting(2, 1)),
            Err(ClearingError::Overflow("window total"))
        ));
        let mut acc = Accumulator::default();
        acc.add(&posting(1, 5)).unwrap();
        let (_, count, total, nets) = acc.finish().unwrap();
        assert_eq!((count, total, nets.len()), (1, 5, 2));
    }

    #[test]
    fn net_settlement_settles_every_net_with_at_most_n_minus_one_transfers() {
        let nets: BTreeMap<String, i64> = [("A", -700), ("B", 300), ("C", -100), ("D", 500)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let ins = net_settlement(&nets);
        assert!(ins.len() <= 3);
        let mut after = nets.clone();
        for i in &ins {
            *after.get_mut(&i.payer_id).unwrap() += i.amount_fen;
            *after.get_mut(&i.payee_id).unwrap() -= i.amount_fen;
        }
        assert!(after.values().all(|v| *v == 0), "{after:?}");
        assert_eq!(
            (
                ins[0].payer_id.as_str(),
                ins[0].payee_id.as_str(),
                ins[0].amount_fen
            ),
            ("A", "B", 300)
        );
    }

    #[test]
    fn the_digest_does_not_depend_on_row_order() {
        let p = |id: Uuid, leg| PostingRecord {
            event_id: id,
            leg_no: leg,
            event_type: "purchase".into(),
            leg_kind: "bank".into(),
            debit_institution: "01020000".into(),
            debit_account: "bank_settlement".into(),
            credit_institution: "3100001".into(),
            credit_account: "merchant".into(),
            amount_fen: 100,
            posted_at_us: 0,
        };
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let one = digest_of(&[p(a, 1), p(b, 1), p(a, 2)]);
        let two = digest_of(&[p(b, 1), p(a, 2), p(a, 1)]);
        assert_eq!(one, two);
        assert_ne!(one, digest_of(&[p(a, 1), p(b, 1)]));
        assert!(p(a, 1)
            .canonical_line()
            .ends_with("|01020000|bank_settlement|3100001|merchant|100\n"));
    }
}
