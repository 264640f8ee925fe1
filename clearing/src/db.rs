//! Clearing's own database: connection to SQLite (embedded default, WAL) or PostgreSQL, and the
//! migrations of `schemas::migrations::{CLEARING_SQLITE, CLEARING_POSTGRES}` run at start-up.
//!
//! One enum over the two pools rather than a trait object: every SQL statement is written once
//! with `sqlx::QueryBuilder` (which numbers placeholders per dialect) and run on either pool.

use crate::error::{ClearingError, Result};
use futures_core::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions;
use std::borrow::Cow;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where the ledger lives.
#[derive(Debug, Clone)]
pub enum LedgerDbConfig {
    /// A SQLite file (created if missing), WAL journal.
    Sqlite {
        /// Database file.
        path: PathBuf,
        /// Connections in the pool (readers; writes serialise on SQLite's write lock).
        connections_max: u32,
        /// How long a writer waits for the write lock.
        busy_timeout_ms: u64,
    },
    /// A PostgreSQL database, optionally inside its own schema (tests, tenants).
    Postgres {
        /// `postgres://...` URL.
        url: String,
        /// Schema to create and use (`[a-z_][a-z0-9_]*`), or the default search path.
        schema: Option<String>,
        /// Connections in the pool.
        connections_max: u32,
    },
}

impl LedgerDbConfig {
    /// SQLite at `path` with defaults (4 connections, 5 s busy timeout).
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        LedgerDbConfig::Sqlite {
            path: path.into(),
            connections_max: 4,
            busy_timeout_ms: 5_000,
        }
    }

    /// PostgreSQL at `url` with defaults (default schema, 8 connections).
    pub fn postgres(url: impl Into<String>) -> Self {
        LedgerDbConfig::Postgres {
            url: url.into(),
            schema: None,
            connections_max: 8,
        }
    }

    /// Parses `sqlite:PATH` / a bare path, or a `postgres://` URL (the CLI's `--ledger`).
    pub fn parse(spec: &str) -> Self {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Self::postgres(spec)
        } else {
            Self::sqlite(spec.strip_prefix("sqlite:").unwrap_or(spec))
        }
    }
}

/// A connected ledger database.
#[derive(Debug, Clone)]
pub enum Db {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// A schema name we are willing to interpolate into DDL.
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Microseconds since the Unix epoch (the `*_at_us` columns).
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// `CREATE SCHEMA IF NOT EXISTS`, serialized under a transaction-scoped advisory lock: that
/// statement alone fails with a unique violation (`pg_namespace_nspname_index`) in all but one
/// of several callers at once, as relays and consumers started together would be.
async fn create_schema(conn: &mut sqlx::PgConnection, schema: &str) -> Result<()> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("ssc: create schema {schema}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

impl Db {
    /// Connects, runs clearing's migrations, and starts the first settlement window at the
    /// ledger's start if it is new.
    pub async fn connect(config: &LedgerDbConfig) -> Result<Self> {
        match config {
            LedgerDbConfig::Sqlite {
                path,
                connections_max,
                busy_timeout_ms,
            } => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // Power-safe: a ledger batch is fsynced before its offsets count as applied.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_millis(*busy_timeout_ms))
                    .foreign_keys(true)
                    // 64 MiB page cache per connection: the posting and applied_event indexes
                    // stay in memory while batches append to them.
                    .pragma("cache_size", "-65536")
                    .pragma("temp_store", "memory");
                let pool = SqlitePoolOptions::new()
                    .max_connections((*connections_max).max(1))
                    .connect_with(options)
                    .await?;
                migrator(schemas::migrations::CLEARING_SQLITE)
                    .await?
                    .run(&pool)
                    .await?;
                let db = Db::Sqlite(pool);
                crate::window::start_first_window(&db, now_us()).await?;
                Ok(db)
            }
            LedgerDbConfig::Postgres {
                url,
                schema,
                connections_max,
            } => {
                // Commits wait for their WAL flush whatever the server's default says.
                let mut options =
                    PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on")]);
                if let Some(schema) = schema {
                    if !valid_schema(schema) {
                        return Err(ClearingError::Config(
                            "schema name must be [a-z_][a-z0-9_]*".into(),
                        ));
                    }
                    let mut conn = options.connect().await?;
                    create_schema(&mut conn, schema).await?;
                    sqlx::Connection::close(conn).await?;
                    options = options.options([("search_path", schema.as_str())]);
                }
                let pool = PgPoolOptions::new()
                    .max_connections((*connections_max).max(2))
                    .connect_with(options)
                    .await?;
                migrator(schemas::migrations::CLEARING_POSTGRES)
                    .await?
                    .run(&pool)
                    .await?;
                let db = Db::Postgres(pool);
                crate::window::start_first_window(&db, now_us()).await?;
                Ok(db)
            }
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }

    /// Drops a PostgreSQL schema and everything in it (test clean-up).
    pub async fn drop_pg_schema(url: &str, schema: &str) -> Result<()> {
        if !valid_schema(schema) {
            return Err(ClearingError::Config(
                "schema name must be [a-z_][a-z0-9_]*".into(),
            ));
        }
        let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await?;
        sqlx::Connection::close(conn).await?;
        Ok(())
    }
}

/// A migration list from `schemas::migrations`, fed to sqlx's migrator (which records applied
/// versions and checksums in `_sqlx_migrations` and refuses a changed migration).
#[derive(Debug)]
struct Embedded(&'static [schemas::migrations::Migration]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|m| {
                    Migration::new(
                        m.version,
                        Cow::Borrowed(m.description),
                        MigrationType::Simple,
                        Cow::Borrowed(m.sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

async fn migrator(
    list: &'static [schemas::migrations::Migration],
) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(list)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_schema_names_reach_ddl() {
        assert!(valid_schema("clearing_test_1"));
        assert!(!valid_schema("x; DROP TABLE posting"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
    }

    #[test]
    fn ledger_spec_parses_both_backends() {
        assert!(matches!(
            LedgerDbConfig::parse("postgres://u@h/db"),
            LedgerDbConfig::Postgres { .. }
        ));
        match LedgerDbConfig::parse("sqlite:/tmp/l.db") {
            LedgerDbConfig::Sqlite { path, .. } => assert_eq!(path, PathBuf::from("/tmp/l.db")),
            other => panic!("{other:?}"),
        }
    }

    /// A ledger from before migration 0004 (postings in `posting`, one row per leg, legs stored
    /// out of leg_no order) reads back the same postings after it, legs in canonical order.
    #[tokio::test]
    async fn migration_0004_packs_the_postings_of_a_ledger_from_before() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("l.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        let before = &schemas::migrations::CLEARING_SQLITE[..2];
        assert_eq!(before.last().map(|m| m.version), Some(3));
        migrator(before).await.unwrap().run(&pool).await.unwrap();
        let event = |id: u8, event_type: &str, outcome: &str| {
            sqlx::query(
                "INSERT INTO applied_event (event_id, event_type, acquirer_id, amount_fen, \
                 occurred_at_us, applied_at_us, window_id, outcome) \
                 VALUES ($1, $2, '3100001', 10000, 5, 7, 1, $3)",
            )
            .bind(vec![id; 16])
            .bind(event_type.to_owned())
            .bind(outcome.to_owned())
        };
        event(1, "medical_bill_split", "posted")
            .execute(&pool)
            .await
            .unwrap();
        event(2, "authorization_hold", "held")
            .execute(&pool)
            .await
            .unwrap();
        let legs = [
            (2, "personal_account", "3100900", "personal_accounts", 2_500),
            (1, "pooled_fund", "3100900", "pooled_fund", 6_000),
            (3, "bank", "01020000", "bank_settlement", 1_500),
        ];
        for (leg_no, kind, debit, account, amount) in legs {
            sqlx::query(
                "INSERT INTO posting (window_id, event_id, leg_no, event_type, leg_kind, \
                 debit_institution, debit_account, credit_institution, credit_account, \
                 amount_fen, hold_id, posted_at_us) VALUES (1, $1, $2, 'medical_bill_split', \
                 $3, $4, $5, '3100001', 'merchant', $6, NULL, 7)",
            )
            .bind(vec![1u8; 16])
            .bind(leg_no)
            .bind(kind)
            .bind(debit)
            .bind(account)
            .bind(amount)
            .execute(&pool)
            .await
            .unwrap();
        }
        migrator(schemas::migrations::CLEARING_SQLITE)
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let ledger = crate::ledger::Ledger::new(Db::Sqlite(pool));
        let postings = crate::window::window_postings(&ledger, 1, None)
            .await
            .unwrap();
        let lines: Vec<String> = postings.iter().map(|p| p.canonical_line()).collect();
        assert_eq!(
            lines,
            [
                "01010101-0101-0101-0101-010101010101|1|medical_bill_split|3100900|pooled_fund|3100001|merchant|6000\n",
                "01010101-0101-0101-0101-010101010101|2|medical_bill_split|3100900|personal_accounts|3100001|merchant|2500\n",
                "01010101-0101-0101-0101-010101010101|3|medical_bill_split|01020000|bank_settlement|3100001|merchant|1500\n",
            ]
        );
        let kinds: Vec<&str> = postings.iter().map(|p| p.leg_kind.as_str()).collect();
        assert_eq!(kinds, ["pooled_fund", "personal_account", "bank"]);
        assert!(postings.iter().all(|p| p.posted_at_us == 7));
        let counts = ledger.counts().await.unwrap();
        assert_eq!((counts.postings, counts.events_applied), (3, 2));
        assert_eq!(ledger.posted_total_fen().await.unwrap(), 10_000);
    }
}
