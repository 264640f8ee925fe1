//! The little the shared control plane asks of a driver: run one statement with its parameters
//! (on the read pool, the write pool or inside a write transaction) and read its rows' columns.
//!
//! Why not generic sqlx code over `sqlx::Database`: sqlx's bounds (an `Encode` and a `Decode`
//! for every bound type, higher-ranked over lifetimes, an `Executor` for every connection)
//! would follow every function of the control plane. Here they are met once per concrete
//! driver (SQLite, PostgreSQL) by `impl_driver!` below, and the shared code sees four plain
//! traits: [`Backend`], [`Run`], [`WriteTx`] and [`Columns`].

use super::Dialect;
use crate::store::model::{BatchOutcome, Decision};
use crate::store::pan_protector::PanProtector;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Decode, Encode, PgConnection, Postgres, Row as _, Sqlite, SqliteConnection};
use sqlx::{PgPool, SqlitePool, Type};
use std::future::Future;
use uuid::Uuid;

/// A statement parameter: the SQL types the control plane binds.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// BIGINT.
    Int(i64),
    /// BIGINT or NULL.
    OptInt(Option<i64>),
    /// TEXT.
    Text(&'a str),
    /// TEXT or NULL.
    OptText(Option<&'a str>),
    /// BLOB (SQLite) or BYTEA (PostgreSQL).
    Bytes(&'a [u8]),
    /// BLOB or BYTEA, or NULL.
    OptBytes(Option<&'a [u8]>),
    /// UUID (on SQLite a 16-byte BLOB, as sqlx stores it).
    Uuid(Uuid),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Param::OptInt(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::OptText(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Bytes(v)
    }
}

impl From<Uuid> for Param<'_> {
    fn from(v: Uuid) -> Self {
        Param::Uuid(v)
    }
}

/// A column type both drivers decode.
pub trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// The columns of a fetched row.
pub trait Columns: Send + Sync + 'static {
    /// The column named `column`.
    fn get<T: Column>(&self, column: &str) -> Result<T, sqlx::Error>;
    /// A text column, borrowed from the row.
    fn text(&self, column: &str) -> Result<&str, sqlx::Error>;
    /// The first column (of a scalar query).
    fn first<T: Column>(&self) -> Result<T, sqlx::Error>;
}

/// Runs one statement: on a pool, or on the connection of a write transaction.
pub trait Run: Send + Sized {
    /// The driver's row.
    type Row: Columns;
    /// Every row.
    fn fetch_all<'a>(
        self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a
    where
        Self: 'a;
    /// The first row, if any.
    fn fetch_optional<'a>(
        self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a
    where
        Self: 'a;
    /// Exactly one row (`RowNotFound` otherwise).
    fn fetch_one<'a>(
        self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<Self::Row, sqlx::Error>> + Send + 'a
    where
        Self: 'a;
    /// A statement without rows; returns how many rows it changed.
    fn execute<'a>(
        self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a
    where
        Self: 'a;
}

/// A write transaction: statements on its connection, then commit (dropped, it rolls back).
pub trait WriteTx: Send {
    /// The driver's row.
    type Row: Columns;
    /// The transaction's connection, for one statement.
    fn run(&mut self) -> impl Run<Row = Self::Row> + '_;
    /// Commits.
    fn commit(self) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// A store backend: its pools, its write discipline and its group commit. Every backend gets
/// [`crate::store::Store`] from the shared control plane (`super::control`).
pub trait Backend: Send + Sync + 'static {
    /// The driver's row.
    type Row: Columns;
    /// A write transaction.
    type Tx: WriteTx<Row = Self::Row>;
    /// What a control-plane write holds while it runs (see [`Backend::write_gate`]).
    type Gate<'a>: Send
    where
        Self: 'a;
    /// The SQL that differs between the drivers.
    const DIALECT: Dialect;
    /// See [`crate::store::Store::WRITER_ON_OWN_THREAD`].
    const WRITER_ON_OWN_THREAD: bool;
    /// See [`crate::store::Store::GROUP_COMMITS_IN_FLIGHT`].
    const GROUP_COMMITS_IN_FLIGHT: usize;

    /// The read pool.
    fn reader(&self) -> impl Run<Row = Self::Row> + '_;
    /// The write pool (control-plane writes, under [`Backend::write_gate`]).
    fn writer(&self) -> impl Run<Row = Self::Row> + '_;
    /// Hashes, seals and opens PANs.
    fn pan(&self) -> &dyn PanProtector;
    /// Where the audit MAC key is installed.
    fn audit_key_slot(&self) -> &crate::store::audit::AuditKeySlot;
    /// The audit MAC key, once installed.
    fn audit_key(&self) -> Option<&dyn crate::store::audit::AuditMacKey> {
        self.audit_key_slot().get()
    }
    /// The turn of a control-plane write: on SQLite the lock the group commit also takes.
    fn write_gate(&self) -> impl Future<Output = Self::Gate<'_>> + Send;
    /// Begins a write transaction (callers hold [`Backend::write_gate`]).
    fn begin_write(&self) -> impl Future<Output = Result<Self::Tx, sqlx::Error>> + Send;
    /// The data plane's batch, already checked against [`crate::store::DECISIONS_PER_BATCH_MAX`].
    fn group_commit(
        &self,
        batch: Vec<Decision>,
        now_us: i64,
    ) -> impl Future<Output = BatchOutcome> + Send;
    /// `Store::record_answers` by a way of the backend's own, or `None` to let a control-plane
    /// transaction write them (the default).
    fn record_answers_own_way(
        &self,
        _answers: &[(crate::store::DuplicateKey, String)],
    ) -> impl Future<Output = Option<Result<u64, crate::store::StoreError>>> + Send {
        async { None }
    }
    /// The transaction holding a duplicate key that the backend keeps outside the
    /// `duplicate_key` table, looked up before the table (SQLite: the keys committed since the
    /// last flush, `sqlite::key_tier`). The default keeps every key in the table.
    fn unflushed_duplicate(
        &self,
        _k: &crate::store::DuplicateKey,
    ) -> Option<crate::store::model::TransactionId> {
        None
    }
    /// Writes the duplicate keys kept outside the table to it, under the write gate, so that
    /// `Store::purge_duplicate_keys` sees every key. The default keeps none outside.
    fn flush_duplicate_keys(
        &self,
        _gate: &mut Self::Gate<'_>,
    ) -> Result<(), crate::store::StoreError> {
        Ok(())
    }
    /// See [`crate::store::Store::between_group_commits`]; the default does nothing.
    fn between_group_commits(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// `sql` with `params` bound in order.
fn bind<'a, DB>(
    sql: &'static str,
    params: &'a [Param<'a>],
) -> sqlx::query::Query<'a, DB, <DB as Database>::Arguments<'a>>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    &'a [u8]: Encode<'a, DB> + Type<DB>,
    Option<&'a [u8]>: Encode<'a, DB> + Type<DB>,
    Uuid: Encode<'a, DB> + Type<DB>,
{
    params
        .iter()
        .fold(sqlx::query(sql), |q, param| match *param {
            Param::Int(v) => q.bind(v),
            Param::OptInt(v) => q.bind(v),
            Param::Text(v) => q.bind(v),
            Param::OptText(v) => q.bind(v),
            Param::Bytes(v) => q.bind(v),
            Param::OptBytes(v) => q.bind(v),
            Param::Uuid(v) => q.bind(v),
        })
}

/// [`Run`] for an sqlx executor (a pool or a connection) of driver `$db`.
macro_rules! impl_run {
    ($db:ty, $row:ty, $executor:ty) => {
        impl Run for $executor {
            type Row = $row;

            fn fetch_all<'a>(
                self,
                sql: &'static str,
                params: &'a [Param<'a>],
            ) -> impl Future<Output = Result<Vec<$row>, sqlx::Error>> + Send + 'a
            where
                Self: 'a,
            {
                bind::<$db>(sql, params).fetch_all(self)
            }

            fn fetch_optional<'a>(
                self,
                sql: &'static str,
                params: &'a [Param<'a>],
            ) -> impl Future<Output = Result<Option<$row>, sqlx::Error>> + Send + 'a
            where
                Self: 'a,
            {
                bind::<$db>(sql, params).fetch_optional(self)
            }

            fn fetch_one<'a>(
                self,
                sql: &'static str,
                params: &'a [Param<'a>],
            ) -> impl Future<Output = Result<$row, sqlx::Error>> + Send + 'a
            where
                Self: 'a,
            {
                bind::<$db>(sql, params).fetch_one(self)
            }

            async fn execute<'a>(
                self,
                sql: &'static str,
                params: &'a [Param<'a>],
            ) -> Result<u64, sqlx::Error>
            where
                Self: 'a,
            {
                Ok(bind::<$db>(sql, params)
                    .execute(self)
                    .await?
                    .rows_affected())
            }
        }
    };
}

/// Everything the shared code needs from one sqlx driver: its rows' [`Columns`], [`Run`] on
/// its pool and its connection, and [`WriteTx`] for its transaction.
macro_rules! impl_driver {
    ($db:ty, $row:ty, $pool:ty, $conn:ty) => {
        impl Columns for $row {
            fn get<T: Column>(&self, column: &str) -> Result<T, sqlx::Error> {
                self.try_get(column)
            }

            fn text(&self, column: &str) -> Result<&str, sqlx::Error> {
                self.try_get(column)
            }

            fn first<T: Column>(&self) -> Result<T, sqlx::Error> {
                self.try_get(0)
            }
        }

        impl_run!($db, $row, &'_ $pool);
        impl_run!($db, $row, &'_ mut $conn);

        impl WriteTx for sqlx::Transaction<'static, $db> {
            type Row = $row;

            fn run(&mut self) -> impl Run<Row = $row> + '_ {
                &mut **self
            }

            fn commit(self) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
                sqlx::Transaction::commit(self)
            }
        }
    };
}

impl_driver!(Sqlite, SqliteRow, SqlitePool, SqliteConnection);
impl_driver!(Postgres, PgRow, PgPool, PgConnection);
