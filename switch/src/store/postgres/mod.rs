//! The PostgreSQL backend: a connection pool, batch reads that lock the rows they will change
//! (`FOR UPDATE`, in id order so concurrent switch nodes cannot deadlock), and an optional
//! schema so several stores (tests, tenants) share one database.
//!
//! Here: connecting and the store's [`Backend`] (the control plane is shared, `super::sql`).
//! The group commit is [`batch`], which writes through [`unnest`] (typed arrays) and
//! [`json_rows`] (the rare rows).

mod batch;
mod card_risk;
mod failover;
mod json_rows;
pub mod session;
mod unnest;

use super::model::{BatchOutcome, Decision};
use super::pan_protector::PanProtector;
use super::sql::driver::{Backend, Run};
use super::sql::Dialect;
use super::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use failover::{host_urls, HostListError, HostUrls, PrimaryWatch};

/// How long a writer waits for a pooled connection (sqlx's default is 30 s). With the database
/// gone, each group commit waits this long before its decisions are answered `96`: with 30 s
/// the writer's queue stalled past any acquirer's timeout. When the pool follows a primary
/// across hosts, sqlx's retries back off up to a fifth of this, so a short bound also means the
/// pool tries the new primary soon after the watch found it.
const ACQUIRE_TIMEOUT_S: u64 = 5;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db`, or libpq's list of hosts
    /// `postgres://user@host1:port1,host2:port2/db?target_session_attrs=read-write`: the store
    /// then writes to whichever accepts writes and follows it ([`failover`]).
    pub url: String,
    /// Schema to create (if missing) and use; `None` uses the server's search path.
    pub schema: Option<String>,
    /// Pool size.
    pub connections_max: u32,
}

impl PostgresConfig {
    /// Defaults for `url`: no schema, 8 connections.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            connections_max: 8,
        }
    }
}

/// The PostgreSQL store.
pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
    pan: Arc<dyn PanProtector>,
    audit_key: crate::store::audit::AuditKeySlot,
    /// With several hosts: which one is the primary, and the task that keeps watching.
    watch: Option<(Arc<PrimaryWatch>, tokio::task::JoinHandle<()>)>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.watch {
            task.abort();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

/// A schema name we are willing to interpolate into DDL.
fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

impl PostgresStore {
    /// Connects, creates the schema if configured, and runs the embedded migrations.
    pub async fn connect(
        config: &PostgresConfig,
        pan: Arc<dyn PanProtector>,
    ) -> Result<Self, StoreError> {
        let hosts = host_urls(&config.url)?;
        // Every commit waits for its WAL flush (and a synchronous standby's, where configured)
        // whatever the server's default says: an approval is durable before it is answered.
        // And the server ends a session whose client vanished ([`session`]).
        let mut candidates: Vec<PgConnectOptions> = failover::candidates(&hosts)?
            .into_iter()
            .map(|o| session::with_session_limits(o.options([("synchronous_commit", "on")])))
            .collect();
        if let Some(schema) = &config.schema {
            if !valid_schema(schema) {
                return Err(StoreError::Conflict("schema name must be [a-z_][a-z0-9_]*"));
            }
            candidates = candidates
                .into_iter()
                .map(|o| o.options([("search_path", schema.as_str())]))
                .collect();
        }
        let follows = hosts.follows_primary();
        let (primary, monitor) = if follows {
            let (i, conn) = failover::find_primary(&candidates, 0)
                .await
                .map_err(StoreError::NoWritableHost)?;
            (i, Some(conn))
        } else {
            (0, None)
        };
        let options = candidates[primary].clone();
        if let Some(schema) = &config.schema {
            let mut conn = options.connect().await?;
            create_schema(&mut conn, schema).await?;
            conn.close().await?;
        }
        let mut pool_options = PgPoolOptions::new()
            .max_connections(config.connections_max.max(2))
            .acquire_timeout(Duration::from_secs(ACQUIRE_TIMEOUT_S));
        let watch = follows.then(|| PrimaryWatch::new(candidates, primary));
        if let Some(watch) = &watch {
            // A connection opened on a host that no longer accepts writes is refused (the pool
            // retries), and one opened before the pool last moved is dropped, not handed out.
            let stale = watch.clone();
            pool_options = pool_options
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        if failover::accepts_writes(conn).await? {
                            Ok(())
                        } else {
                            Err(sqlx::Error::Protocol(
                                "the database host is read-only (not the primary)".into(),
                            ))
                        }
                    })
                })
                .before_acquire(move |_, meta| {
                    let fresh = !stale.stale(meta.age);
                    Box::pin(async move { Ok(fresh) })
                });
        }
        let pool = pool_options.connect_with(options).await?;
        super::migrate::migrator(schemas::migrations::POSTGRES)
            .await?
            .run(&pool)
            .await?;
        let watch = watch.map(|w| {
            let task = tokio::spawn(w.clone().run(pool.clone(), monitor));
            (w, task)
        });
        Ok(Self {
            read: pool.clone(),
            write: pool,
            pan,
            audit_key: Default::default(),
            watch,
        })
    }

    /// With several hosts, the one the store writes to now and how often it moved; `None`
    /// with one host.
    pub fn primary_watch(&self) -> Option<&PrimaryWatch> {
        self.watch.as_ref().map(|(w, _)| &**w)
    }

    /// Drops a schema and everything in it (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        if !valid_schema(schema) {
            return Err(StoreError::Conflict("schema name must be [a-z_][a-z0-9_]*"));
        }
        let hosts = host_urls(url)?;
        let mut conn = if hosts.follows_primary() {
            failover::find_primary(&failover::candidates(&hosts)?, 0)
                .await
                .map_err(StoreError::NoWritableHost)?
                .1
        } else {
            PgConnectOptions::from_str(url)?.connect().await?
        };
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.write.close().await;
    }
}

/// What [`PostgresStore`]'s control-plane writes hold: nothing.
pub struct Ungated;

impl Backend for PostgresStore {
    type Row = PgRow;
    type Tx = sqlx::Transaction<'static, Postgres>;
    /// PostgreSQL needs no in-process write lock: its row locks order the writers.
    type Gate<'a> = Ungated;

    const DIALECT: Dialect = Dialect {
        audit_head_for_update: "SELECT last_seq, last_hash FROM audit_head WHERE id = 1 FOR UPDATE",
        mark_relayed: "UPDATE outbox SET relayed_at_us = $1 WHERE relayed_at_us IS NULL AND \
            outbox_seq IN (SELECT value::bigint FROM jsonb_array_elements_text($2::jsonb))",
        applications_in_batch: "SELECT citizen_id, application_id FROM card_application \
            WHERE batch_id = $1 AND citizen_id IN \
            (SELECT value FROM jsonb_array_elements_text($2::jsonb))",
    };
    const WRITER_ON_OWN_THREAD: bool = false;
    const GROUP_COMMITS_IN_FLIGHT: usize = 2;

    fn reader(&self) -> impl Run<Row = PgRow> + '_ {
        &self.read
    }

    fn writer(&self) -> impl Run<Row = PgRow> + '_ {
        &self.write
    }

    fn pan(&self) -> &dyn PanProtector {
        &*self.pan
    }

    fn audit_key_slot(&self) -> &crate::store::audit::AuditKeySlot {
        &self.audit_key
    }

    async fn write_gate(&self) -> Ungated {
        Ungated
    }

    async fn begin_write(&self) -> Result<Self::Tx, sqlx::Error> {
        self.write.begin().await
    }

    async fn group_commit(&self, batch: Vec<Decision>, now_us: i64) -> BatchOutcome {
        let batch::Outcome {
            batch: mut outcome,
            unknown,
        } = batch::group_commit(self, &batch, now_us).await;
        if let Some((watch, _)) = &self.watch {
            // A lost connection or a read-only host (25006): look for the primary now.
            if outcome.results.iter().any(|r| {
                matches!(
                    r,
                    Err(super::DecisionError::Unavailable(_)
                        | super::DecisionError::OutcomeUnknown(_))
                )
            }) {
                watch.wake();
            }
        }
        if !unknown.is_empty() {
            // The connection died during COMMIT: learn from the database (this host, or the
            // new primary) whether it committed before answering anyone.
            failover::resolve_commits(&self.read, &batch, &mut outcome.results, unknown).await;
        }
        outcome
    }
}

/// `CREATE SCHEMA IF NOT EXISTS`, serialized under a transaction-scoped advisory lock: that
/// statement alone fails with a unique violation (`pg_namespace_nspname_index`) in all but one
/// of several callers at once, as nodes started together on a fresh schema would be.
async fn create_schema(conn: &mut sqlx::PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("ssc: create schema {schema}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::valid_schema;

    #[test]
    fn only_plain_schema_names_reach_ddl() {
        assert!(valid_schema("store_test_1"));
        assert!(!valid_schema("x; DROP TABLE card"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
    }
}
