//! The control plane's writes on SQLite (sqlx's write connection, outside the group commit:
//! audit log, operator tables, CMS, queue attempts and acks, cut-overs, remembered answers):
//! a write that fails closes its connection, and the pool opens a fresh one.
//!
//! Why: SQLite rolls a transaction back by itself on some failures (`SQLITE_FULL`, I/O
//! errors: <https://www.sqlite.org/lang_transaction.html>, "Response To Errors Within A
//! Transaction"). sqlx's `ROLLBACK` then failed and its connection kept counting a transaction
//! that no longer existed, so every later `BEGIN IMMEDIATE` on it failed with "attempted to
//! call begin_with at non-zero transaction depth": with the disk full, the audit log and the
//! operator tables went on refusing writes after the space returned
//! (`switch/tests/faults/sqlite.rs`; the same defect as the clearing ledger's,
//! `clearing::ledger::write_tx`). Here the transaction is plain SQL on a pooled connection
//! (sqlx counts nothing), and a connection whose transaction did not commit, or whose
//! statement failed, is closed instead of going back to the pool: closing a SQLite connection
//! rolls back whatever it still had open (<https://www.sqlite.org/c3ref/close.html>).

use crate::store::sql::driver::{Param, Run, WriteTx};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, SqlitePool};

/// A control-plane write transaction (`BEGIN IMMEDIATE` … `COMMIT`) on its own connection of
/// the write pool; dropped without a commit, or after a failed one, it closes the connection.
pub struct SqliteWriteTx {
    conn: PoolConnection<Sqlite>,
    committed: bool,
}

impl SqliteWriteTx {
    /// Begins on a connection of `pool`. `BEGIN IMMEDIATE` takes the write lock at the start,
    /// so a transaction never fails half-way on a lock upgrade.
    pub async fn begin(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        let conn = pool.acquire().await?;
        // Built first: a failed BEGIN drops it uncommitted, closing the connection.
        let mut tx = SqliteWriteTx {
            conn,
            committed: false,
        };
        (&mut *tx.conn).execute("BEGIN IMMEDIATE", &[]).await?;
        Ok(tx)
    }
}

impl WriteTx for SqliteWriteTx {
    type Row = SqliteRow;

    fn run(&mut self) -> impl Run<Row = SqliteRow> + '_ {
        &mut *self.conn
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        (&mut *self.conn).execute("COMMIT", &[]).await?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for SqliteWriteTx {
    fn drop(&mut self) {
        if !self.committed {
            // Rolled back by the close, whether SQLite still had the transaction open or had
            // rolled it back by itself.
            self.conn.close_on_drop();
        }
    }
}

/// One control-plane statement outside a transaction (autocommit) on the write pool; the
/// connection of a statement that failed is closed rather than reused.
#[derive(Debug, Clone, Copy)]
pub struct SqliteWrites<'p>(pub &'p SqlitePool);

/// Closes `conn` instead of returning it to the pool if its statement failed.
fn close_if_failed<T>(conn: &mut PoolConnection<Sqlite>, result: &Result<T, sqlx::Error>) {
    if result.is_err() {
        conn.close_on_drop();
    }
}

impl Run for SqliteWrites<'_> {
    type Row = SqliteRow;

    async fn fetch_all<'a>(
        self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> Result<Vec<SqliteRow>, sqlx::Error>
    where
        Self: 'a,
    {
        let mut conn = self.0.acquire().await?;
        let result = (&mut *conn).fetch_all(sql, params).await;
        close_if_failed(&mut conn, &result);
        result
    }

    async fn fetch_optional<'a>(
        self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> Result<Option<SqliteRow>, sqlx::Error>
    where
        Self: 'a,
    {
        let mut conn = self.0.acquire().await?;
        let result = (&mut *conn).fetch_optional(sql, params).await;
        close_if_failed(&mut conn, &result);
        result
    }

    async fn fetch_one<'a>(
        self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> Result<SqliteRow, sqlx::Error>
    where
        Self: 'a,
    {
        let mut conn = self.0.acquire().await?;
        let result = (&mut *conn).fetch_one(sql, params).await;
        close_if_failed(&mut conn, &result);
        result
    }

    async fn execute<'a>(
        self,
        sql: &'static str,
        params: &'a [Param<'a>],
    ) -> Result<u64, sqlx::Error>
    where
        Self: 'a,
    {
        let mut conn = self.0.acquire().await?;
        let result = (&mut *conn).execute(sql, params).await;
        close_if_failed(&mut conn, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sql::driver::{Backend, Columns, Run, WriteTx};
    use crate::store::{DataKeyPanProtector, SqliteConfig, SqliteStore};
    use std::sync::Arc;

    const HEAD: &str = "SELECT last_seq FROM audit_head WHERE id = 1";
    const SET_HEAD: &str = "UPDATE audit_head SET last_seq = $1 WHERE id = 1";

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store")
    }

    async fn head(store: &SqliteStore) -> i64 {
        let row = store.reader().fetch_one(HEAD, &[]).await.expect("head");
        row.first().expect("last_seq")
    }

    #[tokio::test]
    async fn a_transaction_dropped_uncommitted_leaves_nothing_and_the_next_one_commits() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(&dir).await;
        {
            let mut tx = store.begin_write().await.expect("begin");
            tx.run()
                .execute(SET_HEAD, &[99i64.into()])
                .await
                .expect("update");
        }
        assert_eq!(head(&store).await, 0, "rolled back by the close");
        let mut tx = store
            .begin_write()
            .await
            .expect("a fresh connection begins");
        tx.run()
            .execute(SET_HEAD, &[5i64.into()])
            .await
            .expect("update");
        tx.commit().await.expect("commit");
        assert_eq!(head(&store).await, 5);
    }

    #[tokio::test]
    async fn a_failed_statement_does_not_stop_the_next_writes() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(&dir).await;
        assert!(store
            .writer()
            .execute("INSERT INTO no_such_table VALUES (1)", &[])
            .await
            .is_err());
        store
            .writer()
            .execute(SET_HEAD, &[3i64.into()])
            .await
            .expect("the next statement");
        let mut tx = store.begin_write().await.expect("begin");
        assert!(tx
            .run()
            .execute("INSERT INTO no_such_table VALUES (1)", &[])
            .await
            .is_err());
        drop(tx);
        assert_eq!(head(&store).await, 3);
        let mut tx = store
            .begin_write()
            .await
            .expect("the next transaction begins");
        tx.run()
            .execute(SET_HEAD, &[4i64.into()])
            .await
            .expect("update");
        tx.commit().await.expect("commit");
        assert_eq!(head(&store).await, 4);
    }
}
