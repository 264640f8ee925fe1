//! The duplicate-detection keys of the last moments, in memory: the upper tier of a two-tier
//! (LSM-style) store of the keys on SQLite, whose lower tier is the `duplicate_key` table.
//!
//! Why (issue 27, bytes written per request): the key (acquirer, terminal, STAN, RRN, field 7,
//! message class) is the primary key of a WITHOUT ROWID B-tree that starts with the terminal.
//! A group commit that inserted its decisions' keys dirtied one leaf per terminal in the batch:
//! with the benchmark's 16 terminals, 12.7 % of the WAL frames of a 16 x 16 load
//! (`benches/scripts/wal_pages.py`, benches/README.md); with hundreds of terminals every key
//! lands on a leaf of its own, written twice (log, then checkpoint) at 2 KiB a page for a
//! ~60-byte row. Yet every column of the key is already in the decision's `txn` row, written in
//! the same commit at the right edge of a rowid B-tree ([`crate::store::model::TransactionRecord::duplicate_key`]).
//! So a commit writes no key: the keys it committed enter this tier, and every
//! [`FLUSH_AGE_MAX`] or [`FLUSH_KEYS_MAX`] keys the tier's oldest commits are inserted into the
//! table, sorted by its key, inside the next group commit's transaction (no sync of their own;
//! a transaction of its own only when traffic stopped, [`KeyTier::flush_overdue`]). Migration
//! 0025 orders the table by field 7 first, so a flush of the last quarter second's keys lands
//! at the right edge of the tree: a leaf is written once per flush, not once per commit.
//!
//! Measured (benches/scripts/run.sh, `--no-clearing`, CPB=300, 16 connections, release builds
//! in alternation on the busy 2-core VM, `benches/scripts/wal_pages.py` on a copy of the WAL
//! taken 8 s into the load): open loop at 2,500 requests/s, 16.6-17.3 KB written per request
//! before and 11.1-12.3 KB after, `duplicate_key` 27-30 % of the WAL frames before and 3.9 %
//! after; closed loop 16 x 16 (batches of ~250, already ~16 keys per terminal per commit),
//! 11.1-11.9 KB before and 10.2-11.4 KB after (the writer's log 7.2-7.6 KB and 6.9-7.2 KB),
//! `duplicate_key` 16-17 % of the frames before and 0-3 % after (the log generations copied
//! held one flush or none). With the table keyed by terminal first, a flush of its own still
//! wrote ~110-160 pages for ~1,000 keys (the leaves in the middle of the tree, where each
//! terminal's newest keys go) and synced once more: hence field 7 first and the flush carried
//! by the group commit (benches/README.md has the runs after both).
//!
//! The truth is this tier plus the table, because the SQLite node is its database's only
//! writer: the group commit's duplicate check ([`super::batch`]), `Store::find_duplicate`,
//! `Store::find_answer` and the staged answers all look here first, then in the table. The
//! order of events keeps every reader right: a commit's keys enter the tier only after its
//! COMMIT (a failed batch adds none), and leave it only after the flush that wrote them to the
//! table committed, so a key missing from the tier is in the table by the time a reader looks
//! there.
//!
//! Durability without the key rows: a one-row table (migration 0025,
//! `duplicate_key_watermark`) holds the highest `txn` rowid whose key is in the table, written
//! in the flush's transaction. At open, the store rebuilds the tier from the `txn` rows above
//! it ([`KeyTier::rebuild`]); a crash loses nothing the commits made durable. This relies on
//! `txn` rowids growing in commit order: `txn` rows are never deleted (so SQLite's next rowid
//! is always the largest plus one) and only the group commit inserts them. A migration that
//! rebuilds `txn` must keep its rows in rowid order (an `INSERT ... SELECT` over the old table
//! does) or set the watermark again.
//!
//! The purge of old keys (`Store::purge_duplicate_keys`) deletes from the table; it first
//! flushes the whole tier, so a cutoff, whatever it is, sees every key.
//!
//! PostgreSQL, shared by several nodes, keeps its table and unique key: no node could know the
//! others' tiers.

use super::batch::{corrupt, uuid_blob, uuid_from};
use crate::store::model::{DuplicateKey, TransactionId};
use rusqlite::{params, Connection};
use schemas::domain::{InstitutionId, Rrn, Stan, TerminalId, TransmissionDateTime};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest a committed key waits in the tier before a flush is due. At 5,000 decisions/s
/// (the open-loop target) a group commit comes every 2-10 ms, so a flush gathers 25-125
/// commits' keys (about 1,250): one terminal's keys then fill its leaf in one write instead of
/// one write per commit. Longer would save little more and keep more keys to rebuild at open;
/// shorter would bring back the per-commit leaves.
pub const FLUSH_AGE_MAX: Duration = Duration::from_millis(250);

/// A flush is due once the tier holds this many keys, and takes about this many (whole
/// commits, oldest first, at least one). It bounds the work a flush adds to the group commit
/// that carries it: 2,000 sorted inserts into a copy of a loaded database took 8-11 ms
/// (python's sqlite3, its overhead included) on the busy 2-core VM, the most one batch should
/// take on. It is [`FLUSH_AGE_MAX`]'s worth of keys at 8,000 decisions/s, past which flushes
/// come by count.
pub const FLUSH_KEYS_MAX: usize = 2_000;

/// The most keys the tier holds before a group commit flushes on its own, ahead of its batch.
/// The flushes carried by group commits keep the tier far below it; it bounds the memory when
/// flushes keep failing.
pub const TIER_KEYS_MAX: usize = 4 * FLUSH_KEYS_MAX;

const INSERT_KEY: &str = "INSERT INTO duplicate_key (terminal_id, stan, rrn, transmission_at, \
     message_class, transaction_id, created_at_us, acquirer) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING";
const SET_WATERMARK: &str = "UPDATE duplicate_key_watermark SET txn_rowid = ?1 WHERE id = 1";
const WATERMARK: &str = "SELECT txn_rowid FROM duplicate_key_watermark WHERE id = 1";
/// The keys of the `txn` rows above the watermark, in commit order.
const UNFLUSHED: &str = "SELECT rowid, acquirer_institution_id, terminal_id, stan, rrn, \
     transmission_at, substr(mti, 1, 2), transaction_id, decided_at_us FROM txn \
     WHERE rowid > ?1 ORDER BY rowid";
/// The highest `txn` rowid, read inside a group commit after its inserts.
pub const TXN_ROWID_MAX: &str = "SELECT COALESCE(MAX(rowid), 0) FROM txn";

/// A committed key not yet in the table: the row a flush will insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unflushed {
    pub key: DuplicateKey,
    pub transaction_id: TransactionId,
    /// `duplicate_key.created_at_us`, which the purge compares with its cutoff: the commit's
    /// time (the decision's, for keys rebuilt at open).
    pub created_at_us: i64,
}

/// The tier: shared by the writer's thread (which adds and flushes) and the readers.
#[derive(Debug, Default)]
pub struct KeyTier {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<DuplicateKey, TransactionId>,
    /// Oldest first; a flush takes a prefix, so the watermark is always a commit's last row.
    commits: VecDeque<Commit>,
    keys: usize,
}

/// The keys of one group commit.
#[derive(Debug)]
struct Commit {
    /// The highest `txn` rowid after this commit: every row up to it has its key here (in this
    /// commit or an older one) or in the table.
    txn_rowid_max: i64,
    at: Instant,
    keys: Vec<Unflushed>,
}

impl KeyTier {
    /// The tier as the database left it: the keys of the `txn` rows above the watermark.
    pub fn rebuild(conn: &Connection) -> Result<Self, rusqlite::Error> {
        let watermark: i64 = conn.query_row(WATERMARK, [], |r| r.get(0))?;
        let mut q = conn.prepare(UNFLUSHED)?;
        let mut rows = q.query([watermark])?;
        let tier = Self::default();
        let mut commit = Vec::new();
        let mut last_rowid = watermark;
        while let Some(r) = rows.next()? {
            last_rowid = r.get(0)?;
            commit.push(unflushed_from(r)?);
            if commit.len() == FLUSH_KEYS_MAX {
                tier.admit(last_rowid, std::mem::take(&mut commit));
            }
        }
        if !commit.is_empty() {
            tier.admit(last_rowid, commit);
        }
        Ok(tier)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The tier's updates never panic half-way; a poisoned lock still holds whole entries.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The transaction holding `key`, if it is in the tier.
    pub fn get(&self, key: &DuplicateKey) -> Option<TransactionId> {
        self.lock().by_key.get(key).copied()
    }

    /// The keys of `keys` that the tier holds, with their transactions; they are taken out of
    /// `keys`, which is left with those to look up in the table.
    pub fn take_known(&self, keys: &mut Vec<DuplicateKey>) -> Vec<(DuplicateKey, TransactionId)> {
        let inner = self.lock();
        let mut known = Vec::new();
        keys.retain(|k| match inner.by_key.get(k) {
            Some(id) => {
                known.push((k.clone(), *id));
                false
            }
            None => true,
        });
        known
    }

    /// Adds a committed group commit's keys (call only after its COMMIT succeeded).
    pub fn admit(&self, txn_rowid_max: i64, keys: Vec<Unflushed>) {
        if keys.is_empty() {
            return;
        }
        let mut inner = self.lock();
        debug_assert!(inner
            .commits
            .back()
            .is_none_or(|c| c.txn_rowid_max < txn_rowid_max));
        for u in &keys {
            inner.by_key.insert(u.key.clone(), u.transaction_id);
        }
        inner.keys += keys.len();
        inner.commits.push_back(Commit {
            txn_rowid_max,
            at: Instant::now(),
            keys,
        });
    }

    /// Keys in the tier.
    pub fn len(&self) -> usize {
        self.lock().keys
    }

    /// True when every key is in the table.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when a flush is due: [`FLUSH_KEYS_MAX`] keys, or the oldest older than
    /// [`FLUSH_AGE_MAX`].
    pub fn flush_due(&self, now: Instant) -> bool {
        let inner = self.lock();
        inner.keys >= FLUSH_KEYS_MAX
            || inner
                .commits
                .front()
                .is_some_and(|c| now.saturating_duration_since(c.at) >= FLUSH_AGE_MAX)
    }

    /// True when a flush is overdue: the oldest key older than twice [`FLUSH_AGE_MAX`], so no
    /// group commit has come to carry the flush (traffic stopped), and the writer flushes in a
    /// transaction of its own.
    pub fn flush_overdue(&self, now: Instant) -> bool {
        self.lock()
            .commits
            .front()
            .is_some_and(|c| now.saturating_duration_since(c.at) >= 2 * FLUSH_AGE_MAX)
    }

    /// Writes the oldest commits' keys (whole commits, at least one, up to about `keys_max`
    /// keys) to the table, sorted by its primary key, with the new watermark, in one
    /// transaction of its own; they leave the tier once it committed. Returns the keys written.
    pub fn flush(&self, conn: &mut Connection, keys_max: usize) -> Result<usize, rusqlite::Error> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (commits, keys) = self.write_oldest(&tx, keys_max)?;
        tx.commit()?;
        self.forget_oldest(commits);
        Ok(keys)
    }

    /// Inserts the oldest commits' keys (whole commits, at least one, up to about `keys_max`
    /// keys), sorted by the table's primary key, and the new watermark, inside `tx`: a flush
    /// of its own ([`KeyTier::flush`]) or a group commit's transaction, which then carries the
    /// flush without a sync of its own. Returns how many commits and keys it wrote; the caller
    /// forgets those commits ([`KeyTier::forget_oldest`]) once `tx` committed, and only then.
    pub fn write_oldest(
        &self,
        tx: &rusqlite::Transaction<'_>,
        keys_max: usize,
    ) -> Result<(usize, usize), rusqlite::Error> {
        let (mut rows, commits, watermark) = self.oldest(keys_max);
        let Some(watermark) = watermark else {
            return Ok((0, 0));
        };
        rows.sort_by_cached_key(|u| primary_key(&u.key));
        let mut inserted = 0;
        let mut q = tx.prepare_cached(INSERT_KEY)?;
        for u in &rows {
            let k = &u.key;
            inserted += q.execute(params![
                k.terminal_id.as_str(),
                k.stan.to_string(),
                k.rrn.as_str(),
                k.transmission_at.as_str(),
                k.message_class,
                uuid_blob(&u.transaction_id.0),
                u.created_at_us,
                k.acquirer.as_str(),
            ])?;
        }
        tx.prepare_cached(SET_WATERMARK)?.execute([watermark])?;
        if inserted < rows.len() {
            // The group commit refuses a key the tier or the table holds, so only a key written
            // outside it (by hand) can be here already; the table's row is kept.
            tracing::warn!(
                keys = rows.len(),
                inserted,
                "duplicate keys already in the table at flush"
            );
        }
        Ok((commits, rows.len()))
    }

    /// Copies of the oldest commits' keys (whole commits, at least one, up to about
    /// `keys_max`), how many commits they are, and the last one's rowid.
    fn oldest(&self, keys_max: usize) -> (Vec<Unflushed>, usize, Option<i64>) {
        let inner = self.lock();
        let mut rows = Vec::new();
        let mut commits = 0;
        let mut watermark = None;
        for c in &inner.commits {
            if commits > 0 && rows.len() + c.keys.len() > keys_max {
                break;
            }
            rows.extend(c.keys.iter().cloned());
            commits += 1;
            watermark = Some(c.txn_rowid_max);
        }
        (rows, commits, watermark)
    }

    /// Drops the `n` oldest commits, written to the table.
    pub fn forget_oldest(&self, n: usize) {
        let mut inner = self.lock();
        let n = n.min(inner.commits.len());
        let gone: Vec<Commit> = inner.commits.drain(..n).collect();
        for c in gone {
            inner.keys -= c.keys.len();
            for u in c.keys {
                inner.by_key.remove(&u.key);
            }
        }
    }
}

/// `duplicate_key`'s primary key (migration 0025: field 7 first), as SQLite orders it (text
/// compared byte by byte; a STAN is six digits).
fn primary_key(k: &DuplicateKey) -> (String, String, String, String, String, String) {
    (
        k.transmission_at.as_str().to_owned(),
        k.terminal_id.as_str().to_owned(),
        k.stan.to_string(),
        k.rrn.as_str().to_owned(),
        k.message_class.clone(),
        k.acquirer.as_str().to_owned(),
    )
}

/// A row of [`UNFLUSHED`].
fn unflushed_from(r: &rusqlite::Row<'_>) -> Result<Unflushed, rusqlite::Error> {
    let text = |i: usize| r.get::<_, String>(i);
    let key = DuplicateKey {
        acquirer: InstitutionId::parse(&text(1)?).map_err(|e| corrupt("txn.acquirer", e))?,
        terminal_id: TerminalId::parse(&text(2)?).map_err(|e| corrupt("txn.terminal_id", e))?,
        stan: Stan::parse(&text(3)?).map_err(|e| corrupt("txn.stan", e))?,
        rrn: Rrn::parse(&text(4)?).map_err(|e| corrupt("txn.rrn", e))?,
        transmission_at: TransmissionDateTime::parse(&text(5)?)
            .map_err(|e| corrupt("txn.transmission_at", e))?,
        message_class: text(6)?,
    };
    Ok(Unflushed {
        key,
        transaction_id: TransactionId(uuid_from("txn.transaction_id", &r.get::<_, Vec<u8>>(7)?)?),
        created_at_us: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(terminal: &str, stan: u32) -> DuplicateKey {
        DuplicateKey {
            acquirer: InstitutionId::parse("10000001").expect("acquirer"),
            terminal_id: TerminalId::parse(terminal).expect("terminal"),
            stan: Stan::new(stan).expect("stan"),
            rrn: Rrn::parse(&format!("{stan:012}")).expect("rrn"),
            transmission_at: TransmissionDateTime::parse("1207142000").expect("field 7"),
            message_class: "02".into(),
        }
    }

    fn unflushed(terminal: &str, stan: u32) -> Unflushed {
        Unflushed {
            key: key(terminal, stan),
            transaction_id: TransactionId(uuid::Uuid::from_u128(u128::from(stan))),
            created_at_us: 1,
        }
    }

    /// The two tables a flush writes, as migrations 0019 and 0025 make them.
    fn database() -> Connection {
        let conn = Connection::open_in_memory().expect("memory db");
        conn.execute_batch(
            "CREATE TABLE duplicate_key (terminal_id TEXT NOT NULL, stan TEXT NOT NULL, \
             rrn TEXT NOT NULL, transmission_at TEXT NOT NULL, message_class TEXT NOT NULL, \
             transaction_id BLOB NOT NULL, created_at_us INTEGER NOT NULL, \
             acquirer TEXT NOT NULL, PRIMARY KEY (transmission_at, terminal_id, stan, rrn, \
             message_class, acquirer)) STRICT, WITHOUT ROWID; \
             CREATE TABLE duplicate_key_watermark (id INTEGER PRIMARY KEY CHECK (id = 1), \
             txn_rowid INTEGER NOT NULL) STRICT; \
             INSERT INTO duplicate_key_watermark VALUES (1, 0);",
        )
        .expect("schema");
        conn
    }

    fn watermark(conn: &Connection) -> i64 {
        conn.query_row(WATERMARK, [], |r| r.get(0))
            .expect("watermark")
    }

    #[test]
    fn a_flush_takes_whole_commits_oldest_first_and_sets_the_watermark_to_the_last_one() {
        let mut conn = database();
        let tier = KeyTier::default();
        tier.admit(
            3,
            vec![
                unflushed("KIOSK002", 1),
                unflushed("KIOSK001", 2),
                unflushed("KIOSK002", 3),
            ],
        );
        tier.admit(5, vec![unflushed("KIOSK001", 4), unflushed("KIOSK003", 5)]);
        assert_eq!(tier.len(), 5);
        assert_eq!(
            tier.flush(&mut conn, 4).expect("flush"),
            3,
            "the second would pass 4"
        );
        assert_eq!(watermark(&conn), 3);
        assert_eq!(tier.len(), 2);
        assert_eq!(tier.get(&key("KIOSK002", 1)), None, "in the table now");
        assert_eq!(
            tier.get(&key("KIOSK003", 5)),
            Some(unflushed("KIOSK003", 5).transaction_id)
        );
        let rows: Vec<String> = conn
            .prepare("SELECT terminal_id || '/' || stan FROM duplicate_key")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            rows,
            ["KIOSK001/000002", "KIOSK002/000001", "KIOSK002/000003"]
        );
        assert_eq!(
            tier.flush(&mut conn, 1).expect("flush"),
            2,
            "at least one commit"
        );
        assert_eq!(watermark(&conn), 5);
        assert!(tier.is_empty());
        assert_eq!(tier.flush(&mut conn, 1).expect("flush"), 0, "nothing left");
    }

    #[test]
    fn a_failed_flush_keeps_every_key_in_the_tier_and_the_watermark_where_it_was() {
        let mut conn = database();
        let tier = KeyTier::default();
        tier.admit(2, vec![unflushed("KIOSK001", 1), unflushed("KIOSK001", 2)]);
        conn.execute_batch(
            "CREATE TRIGGER key_down BEFORE INSERT ON duplicate_key WHEN NEW.stan = '000002' \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .expect("trigger");
        assert!(tier.flush(&mut conn, FLUSH_KEYS_MAX).is_err());
        assert_eq!(tier.len(), 2);
        assert_eq!(
            tier.get(&key("KIOSK001", 1)),
            Some(unflushed("KIOSK001", 1).transaction_id)
        );
        assert_eq!(watermark(&conn), 0);
        let keys: i64 = conn
            .query_row("SELECT count(*) FROM duplicate_key", [], |r| r.get(0))
            .expect("count");
        assert_eq!(keys, 0, "rolled back");
    }

    #[test]
    fn a_flush_is_due_by_count_or_by_the_oldest_keys_age() {
        let tier = KeyTier::default();
        let now = Instant::now();
        assert!(!tier.flush_due(now), "empty");
        tier.admit(1, vec![unflushed("KIOSK001", 1)]);
        assert!(!tier.flush_due(Instant::now()));
        assert!(tier.flush_due(Instant::now() + FLUSH_AGE_MAX));
        let many = (2..=FLUSH_KEYS_MAX as u32 + 1)
            .map(|n| unflushed("KIOSK001", n))
            .collect();
        tier.admit(2, many);
        assert!(tier.flush_due(Instant::now()));
    }

    #[test]
    fn keys_the_tier_holds_are_taken_out_of_the_lookup_for_the_table() {
        let tier = KeyTier::default();
        tier.admit(1, vec![unflushed("KIOSK001", 1)]);
        let mut keys = vec![key("KIOSK001", 1), key("KIOSK001", 2)];
        let known = tier.take_known(&mut keys);
        assert_eq!(
            known,
            vec![(key("KIOSK001", 1), unflushed("KIOSK001", 1).transaction_id)]
        );
        assert_eq!(keys, vec![key("KIOSK001", 2)]);
    }
}
