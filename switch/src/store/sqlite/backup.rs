//! Online backup and restore of the SQLite store (issue 28): a copy taken while the switch
//! runs, consistent as of one commit, and its restore into a stopped node's place.
//!
//! The backup is SQLite's `VACUUM INTO` (<https://www.sqlite.org/lang_vacuum.html#vacuuminto>):
//! it reads the database inside one read transaction, so in WAL mode it sees exactly the commits
//! made before it began and none after, while the writer goes on; the copy is a compact,
//! self-contained database file (no WAL), written and synced before the command returns.
//! The restore checks the copy (`PRAGMA integrity_check`), writes it beside the target under a
//! temporary name, fsyncs it, renames it into place and fsyncs the folder: a crash during a
//! restore leaves either nothing or the whole copy. It refuses to overwrite a database.

use crate::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// Why a backup or restore was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination of a backup, or the database a restore would replace, exists.
    #[error("{0} exists: move it away first")]
    Exists(String),
    /// The copy to restore is not a sound SQLite database.
    #[error("{path} is not a sound database: {detail}")]
    Unsound {
        /// The copy.
        path: String,
        /// What `integrity_check` said.
        detail: String,
    },
    /// SQLite refused.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file system refused.
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

impl From<BackupError> for StoreError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Sqlite(e) => StoreError::Sqlite(e),
            _ => StoreError::Conflict("backup or restore refused"),
        }
    }
}

/// Copies the database at `db` to a new file `to`, consistent as of the last commit before
/// the copy began; returns the copy's size in bytes.
pub fn backup(db: &Path, to: &Path) -> Result<u64, BackupError> {
    if to.exists() {
        return Err(BackupError::Exists(to.display().to_string()));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = to.to_string_lossy().into_owned();
    conn.execute("VACUUM INTO ?1", [target])?;
    let file = std::fs::File::open(to)?;
    file.sync_all()?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(file.metadata()?.len())
}

/// Puts the backup `from` in place of the database `db`, which must not exist (a stopped node
/// whose database was moved away, or a new folder).
pub fn restore(from: &Path, db: &Path) -> Result<(), BackupError> {
    for existing in [db.to_path_buf(), wal_of(db, "-wal"), wal_of(db, "-shm")] {
        if existing.exists() {
            return Err(BackupError::Exists(existing.display().to_string()));
        }
    }
    {
        let conn = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if verdict != "ok" {
            return Err(BackupError::Unsound {
                path: from.display().to_string(),
                detail: verdict,
            });
        }
    }
    let partial = wal_of(db, ".restoring");
    std::fs::copy(from, &partial)?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, db)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `db` with `suffix` appended to its file name (SQLite's `-wal` and `-shm` companions).
fn wal_of(db: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_never_overwrites_and_a_restore_never_replaces_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        let copy = dir.path().join("copy.db");
        assert!(backup(&db, &copy).unwrap() > 0);
        assert!(matches!(backup(&db, &copy), Err(BackupError::Exists(_))));
        assert!(matches!(restore(&copy, &db), Err(BackupError::Exists(_))));

        let restored = dir.path().join("b.db");
        restore(&copy, &restored).unwrap();
        let x: i64 = Connection::open(&restored)
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 7);

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, b"not a database at all, not even close").unwrap();
        assert!(restore(&garbage, &dir.path().join("c.db")).is_err());
        assert!(!dir.path().join("c.db").exists(), "nothing half-restored");
    }
}
