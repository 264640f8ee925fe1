//! The audit log in the database: appending under the chain's head row (locked on PostgreSQL,
//! behind the write gate on SQLite) and verifying the whole chain page by page. The hash
//! itself is [`crate::store::audit`].
//!
//! An operator action appends its entry inside the action's own write transaction
//! ([`append_in`]): both commit or neither does, so no action is done without its record
//! (GB/T 22239-2019 level 3, 8.1.4.3 security audit). The head row is read `FOR UPDATE` in that
//! transaction, so concurrent actions on PostgreSQL (other nodes included) chain one after the
//! other; the head is taken last, just before the commit, so it is held briefly and always
//! after the action's own rows (one lock order: no deadlock).

use super::driver::{Backend, Columns, Param, Run, WriteTx};
use super::rows::hash32;
use crate::store::audit;
use crate::store::model::{AuditEntry, AuditRecord};
use crate::store::StoreError;

const INSERT_ENTRY: &str = "INSERT INTO audit_log (audit_seq, at_us, actor, action, subject, \
     detail, prev_hash, entry_hash, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const UPDATE_HEAD: &str = "UPDATE audit_head SET last_seq = $1, last_hash = $2 WHERE id = 1";
const ENTRIES_FROM: &str = "SELECT audit_seq, at_us, actor, action, subject, detail, prev_hash, \
     entry_hash, mac FROM audit_log WHERE audit_seq >= $1 ORDER BY audit_seq LIMIT $2";
const HEAD_SEQ: &str = "SELECT last_seq FROM audit_head WHERE id = 1";
/// Entries read per page while verifying.
const ENTRIES_PER_PAGE: i64 = 10_000;

/// Appends `e` to the chain in a transaction of its own.
pub async fn append<B: Backend>(store: &B, e: &AuditEntry) -> Result<AuditRecord, StoreError> {
    let _gate = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    let record = append_in(store, &mut tx, e).await?;
    tx.commit().await?;
    Ok(record)
}

/// Appends `e` to the chain inside `tx` (the caller holds the write gate and commits): its
/// hash covers the head's hash, and it becomes the head when `tx` commits.
pub async fn append_in<B: Backend>(
    store: &B,
    tx: &mut B::Tx,
    e: &AuditEntry,
) -> Result<AuditRecord, StoreError> {
    let head = tx
        .run()
        .fetch_one(B::DIALECT.audit_head_for_update, &[])
        .await?;
    let last_seq: i64 = head.get("last_seq")?;
    let prev = hash32("audit_head.last_hash", head.get("last_hash")?)?;
    let audit_seq = last_seq + 1;
    let entry_hash = audit::entry_hash(&prev, audit_seq, e);
    let mac = store.audit_key().map(|k| k.mac(&entry_hash));
    let params = [
        audit_seq.into(),
        e.at_us.into(),
        (&e.actor).into(),
        (&e.action).into(),
        (&e.subject).into(),
        (&e.detail).into(),
        prev.as_slice().into(),
        entry_hash.as_slice().into(),
        Param::OptBytes(mac.as_ref().map(|m| m.as_slice())),
    ];
    tx.run().execute(INSERT_ENTRY, &params).await?;
    let params = [audit_seq.into(), entry_hash.as_slice().into()];
    tx.run().execute(UPDATE_HEAD, &params).await?;
    Ok(AuditRecord {
        audit_seq,
        entry_hash,
    })
}

/// Recomputes the chain, and with the store's audit key each entry's MAC (see
/// [`crate::store::audit`]); returns the number of entries or where it breaks.
pub async fn verify<B: Backend>(store: &B) -> Result<u64, StoreError> {
    let key = store.audit_key();
    let mut keyed = false;
    let mut prev = audit::GENESIS_HASH;
    let mut expected_seq = 1i64;
    loop {
        let params = [expected_seq.into(), ENTRIES_PER_PAGE.into()];
        let rows = store.reader().fetch_all(ENTRIES_FROM, &params).await?;
        if rows.is_empty() {
            // The head names the last entry appended: a shorter chain lost its tail.
            let last_seq: i64 = store.reader().fetch_one(HEAD_SEQ, &[]).await?.first()?;
            if last_seq != expected_seq - 1 {
                return Err(StoreError::AuditChainBroken {
                    audit_seq: expected_seq,
                });
            }
            return Ok(u64::try_from(expected_seq - 1).unwrap_or(0));
        }
        for row in &rows {
            prev = check_link(row, expected_seq, &prev)?;
            if let Some(key) = key {
                keyed |= check_mac(row, expected_seq, &prev, key, keyed)?;
            }
            expected_seq += 1;
        }
    }
}

/// Checks the MAC of entry `audit_seq` (hash `entry_hash`): present and right once any earlier
/// entry had one (`keyed`), right if present before. Returns whether the entry has a MAC.
fn check_mac(
    row: &impl Columns,
    audit_seq: i64,
    entry_hash: &[u8; 32],
    key: &dyn audit::AuditMacKey,
    keyed: bool,
) -> Result<bool, StoreError> {
    let mac: Option<Vec<u8>> = row.get("mac")?;
    match mac {
        None if !keyed => Ok(false),
        Some(mac) if mac.as_slice() == key.mac(entry_hash).as_slice() => Ok(true),
        _ => Err(StoreError::AuditMacMismatch { audit_seq }),
    }
}

/// Checks that `row` is entry `expected_seq`, chained to `prev`; returns its hash.
fn check_link(
    row: &impl Columns,
    expected_seq: i64,
    prev: &[u8; 32],
) -> Result<[u8; 32], StoreError> {
    let audit_seq: i64 = row.get("audit_seq")?;
    let entry = AuditEntry {
        at_us: row.get("at_us")?,
        actor: row.get("actor")?,
        action: row.get("action")?,
        subject: row.get("subject")?,
        detail: row.get("detail")?,
    };
    let stored_prev = hash32("audit_log.prev_hash", row.get("prev_hash")?)?;
    let stored = hash32("audit_log.entry_hash", row.get("entry_hash")?)?;
    if audit_seq != expected_seq
        || stored_prev != *prev
        || audit::entry_hash(prev, audit_seq, &entry) != stored
    {
        return Err(StoreError::AuditChainBroken {
            audit_seq: expected_seq,
        });
    }
    Ok(stored)
}
