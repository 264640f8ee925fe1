//! The outbox relay: moves settlement events from the switch's `outbox` table to the bus in
//! outbox order, without losing or reordering an institution's events.
//!
//! Clearing never depends on the `switch` crate: [`OutboxSource`] is the seam, and
//! [`SqlOutboxSource`] reads the `outbox` table (schemas/migrations/*/0001_switch_core.sql)
//! directly. `outbox_seq` is gap-free and taken in commit order (a row lock held to commit), so
//! reading `outbox_seq > cursor` never skips a row that commits late.
//!
//! Several relays may run (one per switch node, say); exactly one publishes at a time. It holds a
//! lease row in the ledger database (`relay_lease`): an expiring lease with a fencing epoch,
//! taken and renewed by one conditional UPDATE (atomic on SQLite and PostgreSQL alike). The
//! holder publishes a batch, waits for every acknowledgement, then advances the cursor only if it
//! still holds the lease at the same epoch. A relay that lost its lease mid-batch may have
//! published a few events again: the ledger drops those by event id, and they precede the new
//! holder's copies, so per-institution order is kept. The lease outlives the publish timeout.

use crate::bus::{EventFamily, Outbound, SettlementBus};
use crate::db::{now_us, Db};
use crate::error::{ClearingError, Result};
use futures_core::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Most outbox rows one relay batch reads.
pub const RELAY_BATCH_MAX: usize = 2_000;

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Gap-free, commit-ordered sequence.
    pub outbox_seq: i64,
    /// The event id.
    pub event_id: Uuid,
    /// Ordering key (the acquirer).
    pub partition_key: String,
    /// Event type name.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: i64,
    /// The event's JSON form.
    pub payload: String,
}

/// Where outbox rows come from.
pub trait OutboxSource: Send + Sync {
    /// Rows with `outbox_seq > cursor`, in order, at most `limit`.
    fn rows_after(&self, cursor: i64, limit: usize) -> BoxFuture<'_, Result<Vec<OutboxRow>>>;
    /// Marks rows as relayed (`relayed_at_us`), for operators; the cursor is the truth.
    fn mark_relayed<'a>(&'a self, seqs: &'a [i64]) -> BoxFuture<'a, Result<u64>>;
    /// The highest sequence in the outbox (0 when empty), for lag figures.
    fn head_seq(&self) -> BoxFuture<'_, Result<i64>>;
}

/// The switch's outbox table read over SQL (SQLite file or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlOutboxSource {
    db: Db,
}

impl SqlOutboxSource {
    /// The outbox in the switch's SQLite file (must exist; no migrations are run).
    pub async fn sqlite(path: &std::path::Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        Ok(SqlOutboxSource {
            db: Db::Sqlite(pool),
        })
    }

    /// The outbox in the switch's PostgreSQL database (optionally a schema).
    pub async fn postgres(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on")]);
        if let Some(schema) = schema {
            if !crate::db::valid_schema(schema) {
                return Err(ClearingError::Config("invalid schema name".into()));
            }
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        Ok(SqlOutboxSource {
            db: Db::Postgres(pool),
        })
    }
}

impl OutboxSource for SqlOutboxSource {
    fn rows_after(&self, cursor: i64, limit: usize) -> BoxFuture<'_, Result<Vec<OutboxRow>>> {
        Box::pin(async move {
            let sql = "SELECT outbox_seq, event_id, partition_key, event_type, schema_version, \
                       payload FROM outbox WHERE outbox_seq > $1 ORDER BY outbox_seq LIMIT $2";
            let limit = i64::try_from(limit.min(RELAY_BATCH_MAX)).unwrap_or(1);
            type Row = (i64, Uuid, String, String, i64, String);
            let rows: Vec<Row> = crate::ledger::read!(&self.db, |pool| {
                sqlx::query_as(sql)
                    .bind(cursor)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            });
            Ok(rows
                .into_iter()
                .map(|(s, id, k, t, v, p)| OutboxRow {
                    outbox_seq: s,
                    event_id: id,
                    partition_key: k,
                    event_type: t,
                    schema_version: v,
                    payload: p,
                })
                .collect())
        })
    }

    fn mark_relayed<'a>(&'a self, seqs: &'a [i64]) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let (Some(first), Some(last)) = (seqs.first(), seqs.last()) else {
                return Ok(0);
            };
            let sql = "UPDATE outbox SET relayed_at_us = $1 \
                       WHERE relayed_at_us IS NULL AND outbox_seq BETWEEN $2 AND $3";
            let done = crate::ledger::read!(&self.db, |pool| {
                sqlx::query(sql)
                    .bind(now_us())
                    .bind(*first)
                    .bind(*last)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            Ok(done)
        })
    }

    fn head_seq(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            let sql = "SELECT CAST(COALESCE(MAX(outbox_seq), 0) AS BIGINT) FROM outbox";
            Ok(crate::ledger::read!(&self.db, |pool| {
                sqlx::query_scalar(sql).fetch_one(pool).await?
            }))
        })
    }
}

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Name of the relayed outbox (the lease row's key): relays of one outbox share it.
    pub relay_name: String,
    /// This relay's identity (host + process), for the lease.
    pub holder: String,
    /// Topic prefix ([`EventFamily::topic`]).
    pub topic_prefix: String,
    /// Rows per batch (≤ [`RELAY_BATCH_MAX`]).
    pub batch_size_max: usize,
    /// Sleep when the outbox has nothing new, ms.
    pub idle_poll_ms: u64,
    /// Lease length, ms; must exceed the bus's publish timeout.
    pub lease_ms: u64,
    /// Also set `outbox.relayed_at_us` (needs write access to the switch database).
    pub mark_relayed: bool,
    /// How this relay coordinates with others.
    pub coordination: Coordination,
}

/// How a relay makes sure it is the only one publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordination {
    /// Through the lease row (several relays may run; the default).
    Lease,
    /// This is the only relay (embedded: one process owns outbox, bus and ledger). The cursor
    /// is read from the lease row at start and then kept in memory, so publishing costs no
    /// ledger write.
    SingleRelay,
}

impl RelayConfig {
    /// Defaults: batches of 1,000, 5 ms idle poll, 30 s lease, marking on.
    pub fn new(relay_name: impl Into<String>, holder: impl Into<String>) -> Self {
        RelayConfig {
            relay_name: relay_name.into(),
            holder: holder.into(),
            topic_prefix: "ssc".into(),
            batch_size_max: 1_000,
            idle_poll_ms: 5,
            lease_ms: 30_000,
            mark_relayed: true,
            coordination: Coordination::Lease,
        }
    }
}

/// Counters of a relay.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Events published.
    pub published: AtomicU64,
    /// The cursor (last outbox_seq published).
    pub cursor_seq: AtomicI64,
    /// Batches skipped because another relay held the lease.
    pub lease_waits: AtomicU64,
}

/// The lease this relay holds.
#[derive(Debug, Clone, Copy)]
struct Lease {
    cursor: i64,
    epoch: i64,
}

/// Moves outbox rows to the bus.
pub struct Relay<'a> {
    ledger_db: &'a Db,
    source: &'a dyn OutboxSource,
    bus: &'a dyn SettlementBus,
    config: RelayConfig,
    /// The cursor of a [`Coordination::SingleRelay`] relay (-1: not read yet).
    single_cursor: AtomicI64,
}

impl<'a> Relay<'a> {
    /// A relay from `source` to `bus`, coordinating through `ledger_db`'s lease row.
    pub fn new(
        ledger_db: &'a Db,
        source: &'a dyn OutboxSource,
        bus: &'a dyn SettlementBus,
        config: RelayConfig,
    ) -> Self {
        Relay {
            ledger_db,
            source,
            bus,
            config,
            single_cursor: AtomicI64::new(-1),
        }
    }

    /// Sets the cursor (embedded restart: resume where the ledger's offset says).
    pub async fn reset_cursor(db: &Db, relay_name: &str, cursor_seq: i64) -> Result<()> {
        ensure_row(db, relay_name).await?;
        let sql = "UPDATE relay_lease SET cursor_seq = $1 WHERE relay_name = $2";
        crate::ledger::read!(db, |pool| {
            sqlx::query(sql)
                .bind(cursor_seq)
                .bind(relay_name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Relays until `shutdown` turns true.
    pub async fn run(&self, stats: &RelayStats, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        ensure_row(self.ledger_db, &self.config.relay_name).await?;
        let idle = Duration::from_millis(self.config.idle_poll_ms.max(1));
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let moved = match self.relay_once(stats).await {
                Ok(n) => n,
                Err(ClearingError::LeaseLost) => {
                    tracing::warn!(relay = %self.config.holder, "relay lease lost");
                    0
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay batch failed; retrying");
                    0
                }
            };
            if moved == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// One batch: take or renew the lease, read after the cursor, publish, advance the
    /// cursor. Returns how many events were published (0: nothing new, or not the holder).
    pub async fn relay_once(&self, stats: &RelayStats) -> Result<usize> {
        let Some(lease) = self.acquire().await? else {
            stats.lease_waits.fetch_add(1, Ordering::Relaxed);
            return Ok(0);
        };
        let rows = self
            .source
            .rows_after(
                lease.cursor,
                self.config.batch_size_max.clamp(1, RELAY_BATCH_MAX),
            )
            .await?;
        let Some(last) = rows.last().map(|r| r.outbox_seq) else {
            return Ok(0);
        };
        let topic = EventFamily::SettlementV1.topic(&self.config.topic_prefix);
        let batch: Vec<Outbound> = rows
            .iter()
            .map(|r| Outbound {
                topic: topic.clone(),
                key: r.partition_key.clone(),
                payload: r.payload.clone().into_bytes(),
                source_seq: r.outbox_seq,
            })
            .collect();
        self.bus.publish(&batch).await?;
        self.advance(lease, last).await?;
        if self.config.mark_relayed {
            let seqs: Vec<i64> = rows.iter().map(|r| r.outbox_seq).collect();
            if let Err(e) = self.source.mark_relayed(&seqs).await {
                tracing::warn!(error = %e, "could not mark outbox rows relayed");
            }
        }
        stats
            .published
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        stats.cursor_seq.store(last, Ordering::Relaxed);
        Ok(rows.len())
    }

    async fn acquire(&self) -> Result<Option<Lease>> {
        if self.config.coordination == Coordination::SingleRelay {
            let mut cursor = self.single_cursor.load(Ordering::Relaxed);
            if cursor < 0 {
                cursor = cursor_of(self.ledger_db, &self.config.relay_name).await?;
                self.single_cursor.store(cursor, Ordering::Relaxed);
            }
            return Ok(Some(Lease { cursor, epoch: 0 }));
        }
        let now = now_us();
        let until = now + i64::try_from(self.config.lease_ms).unwrap_or(30_000) * 1_000;
        let sql = "UPDATE relay_lease SET \
                   epoch = CASE WHEN holder = $1 THEN epoch ELSE epoch + 1 END, \
                   holder = $1, lease_until_us = $2 \
                   WHERE relay_name = $3 AND (holder = $1 OR holder IS NULL OR lease_until_us < $4) \
                   RETURNING cursor_seq, epoch";
        let row: Option<(i64, i64)> = crate::ledger::read!(self.ledger_db, |pool| {
            sqlx::query_as(sql)
                .bind(&self.config.holder)
                .bind(until)
                .bind(&self.config.relay_name)
                .bind(now)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(cursor, epoch)| Lease { cursor, epoch }))
    }

    async fn advance(&self, lease: Lease, cursor: i64) -> Result<()> {
        if self.config.coordination == Coordination::SingleRelay {
            self.single_cursor.store(cursor, Ordering::Relaxed);
            return Ok(());
        }
        let sql = "UPDATE relay_lease SET cursor_seq = $1 \
                   WHERE relay_name = $2 AND holder = $3 AND epoch = $4 AND cursor_seq = $5";
        let done = crate::ledger::read!(self.ledger_db, |pool| {
            sqlx::query(sql)
                .bind(cursor)
                .bind(&self.config.relay_name)
                .bind(&self.config.holder)
                .bind(lease.epoch)
                .bind(lease.cursor)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if done == 1 {
            Ok(())
        } else {
            Err(ClearingError::LeaseLost)
        }
    }

    /// Gives the lease up (clean shutdown), so another relay takes over at once; a single
    /// relay records its cursor.
    pub async fn release(&self) -> Result<()> {
        if self.config.coordination == Coordination::SingleRelay {
            let cursor = self.single_cursor.load(Ordering::Relaxed);
            if cursor >= 0 {
                Self::reset_cursor(self.ledger_db, &self.config.relay_name, cursor).await?;
            }
            return Ok(());
        }
        let sql = "UPDATE relay_lease SET holder = NULL, lease_until_us = 0 \
                   WHERE relay_name = $1 AND holder = $2";
        crate::ledger::read!(self.ledger_db, |pool| {
            sqlx::query(sql)
                .bind(&self.config.relay_name)
                .bind(&self.config.holder)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}

async fn ensure_row(db: &Db, relay_name: &str) -> Result<()> {
    let sql = "INSERT INTO relay_lease (relay_name, cursor_seq) VALUES ($1, 0) \
               ON CONFLICT (relay_name) DO NOTHING";
    crate::ledger::read!(db, |pool| {
        sqlx::query(sql)
            .bind(relay_name)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// The cursor of a relay (last outbox_seq published), 0 if it never ran.
pub async fn cursor_of(db: &Db, relay_name: &str) -> Result<i64> {
    let sql = "SELECT cursor_seq FROM relay_lease WHERE relay_name = $1";
    let c: Option<i64> = crate::ledger::read!(db, |pool| {
        sqlx::query_scalar(sql)
            .bind(relay_name)
            .fetch_optional(pool)
            .await?
    });
    Ok(c.unwrap_or(0))
}
