//! The PostgreSQL backend: a connection pool, batch reads that lock the rows they will change
//! (`FOR UPDATE`, in id order so concurrent switch nodes cannot deadlock), and an optional
//! schema so several stores (tests, tenants) share one database.

use super::pan_protector::PanProtector;
use super::sql::{impl_store, Dialect};
use super::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres};
use std::str::FromStr;
use std::sync::Arc;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db`.
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
    pub(super) read: PgPool,
    pub(super) write: PgPool,
    pub(super) pan: Arc<dyn PanProtector>,
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
        let mut options = PgConnectOptions::from_str(&config.url)?;
        if let Some(schema) = &config.schema {
            if !valid_schema(schema) {
                return Err(StoreError::Conflict("schema name must be [a-z_][a-z0-9_]*"));
            }
            let mut conn = options.connect().await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.connections_max.max(2))
            .connect_with(options)
            .await?;
        super::migrate::migrator(schemas::migrations::POSTGRES)
            .await?
            .run(&pool)
            .await?;
        Ok(Self {
            read: pool.clone(),
            write: pool,
            pan,
        })
    }

    /// Drops a schema and everything in it (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        if !valid_schema(schema) {
            return Err(StoreError::Conflict("schema name must be [a-z_][a-z0-9_]*"));
        }
        let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
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

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.write.begin().await
    }

    /// Rows as `UNNEST` of typed arrays (see `postgres_unnest`).
    async fn write_batch(
        tx: &mut sqlx::Transaction<'static, Postgres>,
        decisions: &[super::Decision],
        plan: &super::plan::Plan,
        now_us: i64,
    ) -> Result<Vec<Option<i64>>, sqlx::Error> {
        super::postgres_unnest::write_batch(tx, decisions, plan, now_us, &Self::DIALECT).await
    }

    const DIALECT: Dialect = Dialect {
    lock: " FOR UPDATE",
    // `= ANY(ARRAY(...))` is an index scan over the ids whatever the table statistics say.
    load_accounts: "SELECT account_id, balance_fen, held_fen FROM account WHERE account_id = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb))) ORDER BY account_id FOR UPDATE",
    load_holds: "SELECT hold_id, account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, expires_at_us, closed_at_us FROM hold WHERE hold_id = ANY(ARRAY(SELECT value::uuid FROM jsonb_array_elements_text($1::jsonb))) ORDER BY hold_id FOR UPDATE",
    // One index probe per key, whatever the statistics say: the LIMIT keeps the planner from
    // flattening the subquery into a join, which on a young, fast-growing table it planned as a
    // sequential scan (the probe time grew with the table, 2 ms to 15 ms per 512 keys).
    load_duplicate_keys: "SELECT d.terminal_id, d.stan, d.rrn, d.transmission_at, d.message_class, d.transaction_id FROM jsonb_array_elements($1::jsonb) AS j CROSS JOIN LATERAL (SELECT k.terminal_id, k.stan, k.rrn, k.transmission_at, k.message_class, k.transaction_id FROM duplicate_key AS k WHERE k.terminal_id = j->>0 AND k.stan = j->>1 AND k.rrn = j->>2 AND k.transmission_at = j->>3 AND k.message_class = j->>4 LIMIT 1) AS d",
    mark_relayed: "UPDATE outbox SET relayed_at_us = $1 WHERE relayed_at_us IS NULL AND outbox_seq IN (SELECT value::bigint FROM jsonb_array_elements_text($2::jsonb))",
    insert_holds: "INSERT INTO hold (hold_id, account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, expires_at_us, closed_at_us) SELECT (r->>0)::uuid, (r->>1)::bigint, (r->>2)::uuid, (r->>3)::bigint, (r->>4)::bigint, r->>5, (r->>6)::bigint, (r->>7)::bigint, (r->>8)::bigint FROM jsonb_array_elements($1::jsonb) AS r",
    insert_reversals: "INSERT INTO reversal_queue (reversal_id, original_transaction_id, destination_institution_id, reason, amount_fen, stan, transmission_at, next_attempt_at_us, created_at_us, state) SELECT (r->>0)::uuid, (r->>1)::uuid, r->>2, r->>3, (r->>4)::bigint, r->>5, r->>6, (r->>7)::bigint, (r->>8)::bigint, 'pending' FROM jsonb_array_elements($1::jsonb) AS r",
    insert_advices: "INSERT INTO advice_queue (advice_id, transaction_id, card_id, destination_institution_id, mti_class, processing_code, amount_fen, stan, transmission_at, reason_code, auth_code, next_attempt_at_us, created_at_us, state) SELECT (r->>0)::uuid, (r->>1)::uuid, (r->>2)::bigint, r->>3, r->>4, r->>5, (r->>6)::bigint, r->>7, r->>8, r->>9, r->>10, (r->>11)::bigint, (r->>12)::bigint, 'pending' FROM jsonb_array_elements($1::jsonb) AS r",
    update_holds: "UPDATE hold SET state = r->>1, captured_fen = (r->>2)::bigint, closed_at_us = (r->>3)::bigint FROM jsonb_array_elements($1::jsonb) AS r WHERE hold.hold_id = (r->>0)::uuid",
    // Locked after the accounts, in card order: every batch takes its locks in the same order.
    load_card_atcs: "SELECT card_id, atc_max FROM card WHERE card_id = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb))) ORDER BY card_id FOR UPDATE",
    update_card_atcs: "UPDATE card SET atc_max = (r->>1)::integer FROM jsonb_array_elements($1::jsonb) AS r WHERE card.card_id = (r->>0)::bigint",
    };
}

impl_store!(PostgresStore, Postgres, writer_on_own_thread = false);

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
