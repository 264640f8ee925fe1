//! The double-entry ledger: settlement events in, balanced postings, two-phase holds and live
//! net positions out, exactly once.
//!
//! Exactly-once without Kafka transactions: every event id is recorded in `applied_event`
//! (primary key), and the consumer's next offset per (group, topic, partition) is written in the
//! same database transaction as the postings. A redelivered offset is skipped by the offset, a
//! republished event (same id, new offset) by its id. Many deliveries go into one transaction
//! (the batch), so the per-commit cost is paid once per batch.
//!
//! Accounts are `(institution, LedgerAccount)`; each keeps TigerBeetle's four running sums
//! (debits/credits, pending/posted). An institution's net position is the sum over its accounts
//! of `credits_posted - debits_posted`: what the network owes it. Every leg adds the same amount
//! to one debit and one credit, so positions always sum to zero (see [`Positions::sum_fen`]).

mod batch;
mod bulk;
mod gap;
pub(crate) mod legs;
mod plan;

pub use gap::{GapRecord, OFFSET_GAP_CODE};
pub use plan::{account_str, dry_run, ApplyReport, DryRun, HoldState, PoisonReason};

use crate::bus::Delivery;
use crate::db::{now_us, Db};
use crate::error::{ClearingError, Result};
use batch::BatchSteps;
use plan::Input;
use rust_decimal::Decimal;
use sqlx::QueryBuilder;
use std::collections::HashSet;
use uuid::Uuid;

/// Most deliveries one `apply_batch` call takes (bounds bind-parameter counts and lock time).
pub const BATCH_DELIVERIES_MAX: usize = 4_096;

/// Rows per multi-row INSERT (10 columns x 400 rows stays well below SQLite's 32,766 binds).
const ROWS_PER_STATEMENT: usize = 400;

/// An institution's live net position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstitutionPosition {
    /// Institution id (ISO 8583 field 32/100 form).
    pub institution_id: String,
    /// Posted debits over all its accounts (what it paid), fen.
    pub debits_fen: i64,
    /// Posted credits over all its accounts (what it received), fen.
    pub credits_fen: i64,
    /// `credits_fen - debits_fen`: positive, the network owes it; negative, it owes.
    pub net_fen: i64,
}

impl InstitutionPosition {
    /// The net position in yuan.
    pub fn net_yuan(&self) -> Decimal {
        Decimal::new(self.net_fen, 2)
    }
}

/// The net position between two institutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairPosition {
    /// The lower institution id.
    pub institution_a: String,
    /// The higher institution id.
    pub institution_b: String,
    /// What `institution_b` owes `institution_a` (negative: `a` owes `b`), fen.
    pub net_fen: i64,
}

/// Live positions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    /// Per institution, by id.
    pub institutions: Vec<InstitutionPosition>,
    /// Per pair of institutions with a non-zero history, by (a, b).
    pub pairs: Vec<PairPosition>,
}

impl Positions {
    /// Sum of all institutions' net positions: zero unless the ledger is broken.
    pub fn sum_fen(&self) -> i64 {
        self.institutions.iter().map(|p| p.net_fen).sum()
    }

    /// The net position of one institution (zero if it never appeared).
    pub fn net_fen(&self, institution_id: &str) -> i64 {
        self.institutions
            .iter()
            .find(|p| p.institution_id == institution_id)
            .map_or(0, |p| p.net_fen)
    }

    /// Each institution's net recomputed from the pairs: equals `net_fen` for every institution.
    pub fn net_from_pairs_fen(&self, institution_id: &str) -> i64 {
        self.pairs
            .iter()
            .map(|p| {
                if p.institution_a == institution_id {
                    p.net_fen
                } else if p.institution_b == institution_id {
                    -p.net_fen
                } else {
                    0
                }
            })
            .sum()
    }
}

/// An account's four running sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    /// Owner.
    pub institution_id: String,
    /// Which of its accounts (`LedgerAccount` in column form).
    pub account_kind: String,
    /// Reserved by pending holds, paying side.
    pub debits_pending_fen: i64,
    /// Posted, paying side.
    pub debits_posted_fen: i64,
    /// Reserved by pending holds, receiving side.
    pub credits_pending_fen: i64,
    /// Posted, receiving side.
    pub credits_posted_fen: i64,
}

/// A dead-lettered delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Bus topic.
    pub topic: String,
    /// Bus partition.
    pub partition: i32,
    /// Bus offset.
    pub offset: i64,
    /// The event id, when the payload decoded far enough.
    pub event_id: Option<Uuid>,
    /// Stable reason code ([`PoisonReason::code`], or [`OFFSET_GAP_CODE`]).
    pub reason_code: String,
    /// Human-readable reason.
    pub reason: String,
    /// The payload as received (lossy UTF-8); for an offset gap, its [`GapRecord`] in JSON.
    pub payload: String,
}

impl DeadLetter {
    /// The missing offsets, when this row records an offset gap rather than a delivery
    /// (`offset` is then the first of them).
    pub fn offset_gap(&self) -> Option<GapRecord> {
        if self.reason_code != OFFSET_GAP_CODE {
            return None;
        }
        serde_json::from_str(&self.payload).ok()
    }
}

/// Counters over the whole ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    /// Events recorded with an effect (not dead-lettered).
    pub events_applied: i64,
    /// Dead-lettered deliveries (offset gaps not included).
    pub dead_letters: i64,
    /// Offset gaps recorded: jumps over offsets the bus never delivered.
    pub offset_gaps: i64,
    /// Postings.
    pub postings: i64,
    /// Holds still pending.
    pub holds_pending: i64,
}

/// The ledger over its database.
#[derive(Debug, Clone)]
pub struct Ledger {
    db: Db,
}

/// A batch of deliveries decoded and validated ahead of its transaction ([`Ledger::decode`]).
#[derive(Debug)]
pub struct DecodedBatch {
    deliveries: Vec<Delivery>,
    parsed: Vec<plan::Parsed>,
    refs: References,
}

impl DecodedBatch {
    /// The deliveries, in the order given.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// Gives the deliveries back.
    pub fn into_deliveries(self) -> Vec<Delivery> {
        self.deliveries
    }
}

/// Refuses a batch above [`BATCH_DELIVERIES_MAX`].
fn check_size(deliveries: usize) -> Result<()> {
    if deliveries > BATCH_DELIVERIES_MAX {
        return Err(ClearingError::Config(format!(
            "batch of {deliveries} deliveries exceeds {BATCH_DELIVERIES_MAX}"
        )));
    }
    Ok(())
}

/// Runs `$body` inside a write transaction on either backend, binding `$tx` to the transaction
/// and `$lock` to the SQL that locks the window head (shared on PostgreSQL, so appliers run
/// concurrently and only `close-window` excludes them; SQLite's BEGIN IMMEDIATE already holds the
/// single write lock).
macro_rules! write_tx {
    ($db:expr, |$tx:ident, $window:ident| $body:block) => {
        match $db {
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let result: Result<_> = async {
                    let mut $tx =
                        sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
                    let $window: i64 = sqlx::query_scalar(
                        "SELECT current_window_id FROM window_head WHERE id = 1",
                    )
                    .fetch_one(&mut *$tx)
                    .await?;
                    let out = $body;
                    $tx.commit().await?;
                    Ok(out)
                }
                .await;
                if result.is_err() {
                    // SQLite rolls a transaction back by itself on some failures (SQLITE_FULL,
                    // I/O errors: https://www.sqlite.org/lang_transaction.html); sqlx's ROLLBACK
                    // then fails and leaves the connection counting a transaction that no
                    // longer exists, refusing every later BEGIN ("begin_with at non-zero
                    // transaction depth") for as long as the pool keeps it. Seen with the
                    // ledger's disk full (clearing/tests/ledger_disk_full.rs). Such a
                    // connection is closed, and the pool opens a fresh one.
                    conn.close_on_drop();
                }
                result?
            }
            Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let $window: i64 = sqlx::query_scalar(
                    "SELECT current_window_id FROM window_head WHERE id = 1 FOR SHARE",
                )
                .fetch_one(&mut *$tx)
                .await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Runs `$body` against the pool of either backend, as `$conn`.
macro_rules! read {
    ($db:expr, |$pool:ident| $body:block) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

pub(crate) use read;

impl Ledger {
    /// A ledger over a connected (migrated) database.
    pub fn new(db: Db) -> Self {
        Ledger { db }
    }

    /// The database, for the other clearing components sharing it.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Applies a batch of deliveries in one transaction: postings, holds, positions, dead
    /// letters, offset gaps and the consumer group's offsets commit together or not at all.
    pub async fn apply_batch(
        &self,
        consumer_group: &str,
        deliveries: &[Delivery],
    ) -> Result<ApplyReport> {
        check_size(deliveries.len())?;
        if deliveries.is_empty() {
            return Ok(ApplyReport::default());
        }
        // Decode outside the transaction: CPU work should not hold the write lock.
        let parsed = parse_all(deliveries);
        let refs = References::of(&parsed);
        self.apply_parsed(consumer_group, deliveries, &parsed, &refs)
            .await
    }

    /// Decodes and validates a batch without touching the database (CPU only, on the calling
    /// thread), so a caller can decode the next batch on another core while
    /// [`Ledger::apply_decoded`] writes this one (issue 27: decoding was a quarter of the CPU
    /// an event cost, and ran between one batch's commit and the next one's start).
    pub fn decode(deliveries: Vec<Delivery>) -> Result<DecodedBatch> {
        check_size(deliveries.len())?;
        let parsed: Vec<plan::Parsed> =
            deliveries.iter().map(|d| plan::parse(&d.payload)).collect();
        let refs = References::of(&parsed);
        Ok(DecodedBatch {
            deliveries,
            parsed,
            refs,
        })
    }

    /// Applies a batch decoded by [`Ledger::decode`], exactly as [`Ledger::apply_batch`] would
    /// apply its deliveries.
    pub async fn apply_decoded(
        &self,
        consumer_group: &str,
        batch: &DecodedBatch,
    ) -> Result<ApplyReport> {
        if batch.deliveries.is_empty() {
            return Ok(ApplyReport::default());
        }
        self.apply_parsed(
            consumer_group,
            &batch.deliveries,
            &batch.parsed,
            &batch.refs,
        )
        .await
    }

    async fn apply_parsed(
        &self,
        consumer_group: &str,
        deliveries: &[Delivery],
        parsed: &[plan::Parsed],
        refs: &References,
    ) -> Result<ApplyReport> {
        let partitions: Vec<(String, i32)> = {
            let mut p: Vec<(&str, i32)> = deliveries
                .iter()
                .map(|d| (d.topic.as_str(), d.partition))
                .collect();
            p.sort_unstable();
            p.dedup();
            p.into_iter().map(|(t, n)| (t.to_owned(), n)).collect()
        };
        let now = now_us();
        let (report, gaps) = write_tx!(&self.db, |tx, window_id| {
            let stored = tx.stored_offsets(consumer_group, &partitions).await?;
            let mut known = tx.known(refs).await?;
            let inputs = deliveries.iter().zip(parsed).map(|(d, parsed)| Input {
                topic: &d.topic,
                partition: d.partition,
                offset: d.offset,
                payload: &d.payload,
                parsed,
            });
            let plan = plan::plan(inputs, &stored, &mut known);
            bulk::JournalWriter::insert_journal(&mut tx, &plan, window_id, now).await?;
            tx.write_holds(&plan, now).await?;
            tx.write_accounts(&plan).await?;
            tx.write_pairs(&plan).await?;
            tx.write_dead_letters(&plan, now).await?;
            tx.write_offsets(consumer_group, &plan, now).await?;
            tx.write_offset_gaps(consumer_group, &plan, now).await?;
            (plan.report, plan.gaps)
        });
        // After the commit, so a rolled-back attempt (retried) does not report a gap twice.
        for gap in &gaps {
            tracing::error!(topic = gap.topic, partition = gap.partition,
                first_missing = gap.missing.start, last_missing = gap.missing.end - 1,
                missing = gap.count(), consumer_group,
                "offsets never delivered: events lost on the bus, recorded as an offset_gap dead letter");
        }
        Ok(report)
    }

    /// The next offset the group will apply in a partition (None: never consumed).
    pub async fn stored_offset(
        &self,
        consumer_group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>> {
        let sql = "SELECT next_offset FROM consumer_offset \
                   WHERE consumer_group = $1 AND topic = $2 AND partition_no = $3";
        Ok(read!(&self.db, |pool| {
            sqlx::query_scalar(sql)
                .bind(consumer_group)
                .bind(topic)
                .bind(i64::from(partition))
                .fetch_optional(pool)
                .await?
        }))
    }

    /// All stored offsets of a group: (topic, partition, next offset).
    pub async fn stored_offsets(&self, consumer_group: &str) -> Result<Vec<(String, i32, i64)>> {
        let sql = "SELECT topic, partition_no, next_offset FROM consumer_offset \
                   WHERE consumer_group = $1 ORDER BY topic, partition_no";
        let rows: Vec<(String, i64, i64)> = read!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(consumer_group)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(t, p, o)| {
                let p = i32::try_from(p)
                    .map_err(|_| ClearingError::Invariant(format!("partition {p}")))?;
                Ok((t, p, o))
            })
            .collect()
    }

    /// Live net positions per institution and per pair.
    pub async fn positions(&self) -> Result<Positions> {
        let inst_sql = "SELECT institution_id, CAST(SUM(debits_posted_fen) AS BIGINT), \
                        CAST(SUM(credits_posted_fen) AS BIGINT) FROM ledger_account \
                        GROUP BY institution_id ORDER BY institution_id";
        let pair_sql = "SELECT institution_a, institution_b, net_fen FROM pair_position \
                        WHERE net_fen <> 0 ORDER BY institution_a, institution_b";
        type Rows = (Vec<(String, i64, i64)>, Vec<(String, String, i64)>);
        let (inst, pairs): Rows = read!(&self.db, |pool| {
            (
                sqlx::query_as(inst_sql).fetch_all(pool).await?,
                sqlx::query_as(pair_sql).fetch_all(pool).await?,
            )
        });
        Ok(Positions {
            institutions: inst
                .into_iter()
                .map(|(id, d, c)| InstitutionPosition {
                    institution_id: id,
                    debits_fen: d,
                    credits_fen: c,
                    net_fen: c - d,
                })
                .collect(),
            pairs: pairs
                .into_iter()
                .map(|(a, b, n)| PairPosition {
                    institution_a: a,
                    institution_b: b,
                    net_fen: n,
                })
                .collect(),
        })
    }

    /// Every account's running sums.
    pub async fn account_balances(&self) -> Result<Vec<AccountBalance>> {
        let sql = "SELECT institution_id, account_kind, debits_pending_fen, debits_posted_fen, \
                   credits_pending_fen, credits_posted_fen FROM ledger_account \
                   ORDER BY institution_id, account_kind";
        let rows: Vec<(String, String, i64, i64, i64, i64)> = read!(&self.db, |pool| {
            sqlx::query_as(sql).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(i, k, dp, dpo, cp, cpo)| AccountBalance {
                institution_id: i,
                account_kind: k,
                debits_pending_fen: dp,
                debits_posted_fen: dpo,
                credits_pending_fen: cp,
                credits_posted_fen: cpo,
            })
            .collect())
    }

    /// Dead letters, oldest first, at most `limit`.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        let sql = "SELECT topic, partition_no, bus_offset, event_id, reason_code, reason, payload \
                   FROM dead_letter ORDER BY dead_letter_id LIMIT $1";
        type DeadRow = (String, i64, i64, Option<Uuid>, String, String, String);
        let rows: Vec<DeadRow> = read!(&self.db, |pool| {
            sqlx::query_as(sql).bind(limit).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(
                |(topic, p, offset, event_id, reason_code, reason, payload)| {
                    Ok(DeadLetter {
                        topic,
                        partition: i32::try_from(p)
                            .map_err(|_| ClearingError::Invariant(format!("partition {p}")))?,
                        offset,
                        event_id,
                        reason_code,
                        reason,
                        payload,
                    })
                },
            )
            .collect()
    }

    /// Counters over the whole ledger (postings: the legs packed in the journal, one `;`
    /// between two legs).
    pub async fn counts(&self) -> Result<LedgerCounts> {
        let sql = "SELECT \
            (SELECT COUNT(*) FROM applied_event WHERE outcome <> 'dead_letter'), \
            (SELECT COUNT(*) FROM dead_letter WHERE reason_code <> $1), \
            (SELECT COUNT(*) FROM dead_letter WHERE reason_code = $2), \
            (SELECT CAST(COALESCE(SUM(length(legs) - length(replace(legs, ';', '')) + 1), 0) \
             AS BIGINT) FROM applied_event WHERE legs IS NOT NULL), \
            (SELECT COUNT(*) FROM pending_hold WHERE state = 'pending')";
        type CountsRow = (i64, i64, i64, i64, i64);
        let (events_applied, dead_letters, offset_gaps, postings, holds_pending): CountsRow =
            read!(&self.db, |pool| {
                sqlx::query_as(sql)
                    .bind(OFFSET_GAP_CODE)
                    .bind(OFFSET_GAP_CODE)
                    .fetch_one(pool)
                    .await?
            });
        Ok(LedgerCounts {
            events_applied,
            dead_letters,
            offset_gaps,
            postings,
            holds_pending,
        })
    }

    /// Sum of all posted amounts (each leg once), fen: the amounts of the events that posted,
    /// since an event posts all its legs at their amounts and validation made the legs sum to
    /// the event's amount (`SettlementEvent::validate`).
    pub async fn posted_total_fen(&self) -> Result<i64> {
        let sql = "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM applied_event \
                   WHERE legs IS NOT NULL";
        Ok(read!(&self.db, |pool| {
            sqlx::query_scalar(sql).fetch_one(pool).await?
        }))
    }
}

/// Text safe for every backend's TEXT column (PostgreSQL refuses NUL).
fn text_column(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Deliveries per decoding thread below which one thread decodes the whole batch.
const PARSE_CHUNK_MIN: usize = 512;
/// Most decoding threads per batch.
const PARSE_THREADS_MAX: usize = 4;

/// Decodes a batch, on several threads when it is large (JSON decoding is most of the CPU
/// cost of a batch).
fn parse_all(deliveries: &[Delivery]) -> Vec<plan::Parsed> {
    // Asked once: on Linux it reads the cgroup's CPU quota from /proc and /sys, which cost
    // 3 % of a batch's planning thread when asked per batch (issue 27).
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = (*CORES
        .get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())))
    .min(PARSE_THREADS_MAX)
    .min(deliveries.len() / PARSE_CHUNK_MIN)
    .max(1);
    if threads == 1 {
        return deliveries.iter().map(|d| plan::parse(&d.payload)).collect();
    }
    let chunk = deliveries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = deliveries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|d| plan::parse(&d.payload))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                // parse never panics (serde errors are values); resume a panic if it ever did.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

/// What the batch refers to, for the lookups.
#[derive(Debug)]
struct References {
    event_ids: Vec<Uuid>,
    originals: Vec<Uuid>,
    holds: Vec<Uuid>,
}

impl References {
    fn of(parsed: &[plan::Parsed]) -> Self {
        let mut ids = HashSet::new();
        let mut originals = HashSet::new();
        let mut holds = HashSet::new();
        for p in parsed {
            let event = match p {
                Ok(e) => e,
                Err(poisoned) => match &poisoned.0 {
                    Some(e) => e,
                    None => continue,
                },
            };
            ids.insert(event.event_id);
            if let Some(o) = event.references.original_event_id {
                originals.insert(o);
            }
            if let Some(h) = event.references.hold_id {
                holds.insert(h);
            }
        }
        References {
            event_ids: ids.into_iter().collect(),
            originals: originals.into_iter().collect(),
            holds: holds.into_iter().collect(),
        }
    }
}

/// Appends `a, b, c)` to an `... IN (` query.
fn push_list<'a, DB>(qb: &mut QueryBuilder<'a, DB>, ids: &'a [Uuid])
where
    DB: sqlx::Database,
    Uuid: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    sep.push_unseparated(")");
}

fn account_from_str(s: String) -> Result<&'static str> {
    use schemas::events::LedgerAccount as A;
    [
        A::PooledFund,
        A::PersonalAccounts,
        A::Merchant,
        A::BankSettlement,
        A::SocialSecurityFund,
        A::Fees,
    ]
    .into_iter()
    .map(account_str)
    .find(|a| *a == s)
    .ok_or_else(|| ClearingError::Invariant(format!("account kind {s}")))
}

/// The event type of an `applied_event.event_type` column.
pub fn event_type_from_str(s: &str) -> Option<schemas::events::EventType> {
    schemas::events::EventType::ALL
        .into_iter()
        .find(|t| t.as_str() == s)
}
