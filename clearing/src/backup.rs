//! Online backup and restore of a SQLite ledger (issue 28): a copy taken while the consumer
//! applies, consistent as of one ledger transaction, and its restore into a new place.
//!
//! The backup is SQLite's `VACUUM INTO` (<https://www.sqlite.org/lang_vacuum.html#vacuuminto>)
//! run on the ledger's own pool: it reads inside one read transaction, so in WAL mode it holds
//! exactly the batches committed before it began, each with the consumer offsets stored in the
//! same transaction. A restored ledger therefore says where to resume: the consumer (or the
//! embedded relay, whose offsets are outbox sequences) starts at the stored offsets and applies
//! the rest once. The restore checks the copy (`PRAGMA integrity_check`), writes it beside the
//! target under a temporary name, fsyncs it and renames it into place: a crash during a restore
//! leaves nothing or the whole copy. Neither overwrites a file.
//!
//! A PostgreSQL ledger is backed up as the switch's PostgreSQL is: `ops/pg-pitr.sh`.

use crate::db::Db;
use crate::error::{ClearingError, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::path::Path;

fn io(what: &str, path: &Path, e: std::io::Error) -> ClearingError {
    ClearingError::Config(format!("{what} {}: {e}", path.display()))
}

fn sync_dir_of(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing", dir, e))?;
    }
    Ok(())
}

/// Copies the SQLite ledger behind `db` into the new file `to`, consistent as of the last
/// transaction committed before the copy began; returns the copy's size in bytes.
pub async fn backup_sqlite(db: &Db, to: &Path) -> Result<u64> {
    let Db::Sqlite(pool) = db else {
        return Err(ClearingError::Config(
            "a PostgreSQL ledger is backed up with pg_basebackup (ops/pg-pitr.sh)".into(),
        ));
    };
    if to.exists() {
        return Err(ClearingError::Config(format!(
            "{} exists: a backup never overwrites",
            to.display()
        )));
    }
    let target = to
        .to_str()
        .ok_or_else(|| ClearingError::Config(format!("{} is not UTF-8", to.display())))?;
    sqlx::query("VACUUM INTO ?1")
        .bind(target)
        .execute(pool)
        .await?;
    let file = std::fs::File::open(to).map_err(|e| io("opening", to, e))?;
    file.sync_all().map_err(|e| io("syncing", to, e))?;
    sync_dir_of(to)?;
    Ok(file.metadata().map_err(|e| io("reading", to, e))?.len())
}

/// Puts the backup `from` in place as the ledger file `to` (which must not exist), after
/// checking it is a sound database.
pub async fn restore_sqlite(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        return Err(ClearingError::Config(format!(
            "{} exists: restore into a new place",
            to.display()
        )));
    }
    let check = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(from).read_only(true))
        .await?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&check)
        .await?;
    check.close().await;
    if verdict != "ok" {
        return Err(ClearingError::Config(format!(
            "{} is not a sound database: {verdict}",
            from.display()
        )));
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".restoring");
    let partial = std::path::PathBuf::from(partial);
    std::fs::copy(from, &partial).map_err(|e| io("copying to", &partial, e))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("syncing", &partial, e))?;
    std::fs::rename(&partial, to).map_err(|e| io("renaming to", to, e))?;
    sync_dir_of(to)
}
