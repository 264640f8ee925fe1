//! The audit hash chain: each entry's hash covers the previous entry's hash and the entry's
//! fields, so removing, reordering or editing an entry breaks every later hash.
//!
//! `entry_hash = SHA-256(prev_hash || seq || at_us || len‖actor || len‖action || len‖subject
//! || len‖detail)`, integers big-endian 8 bytes, strings prefixed with their byte length so
//! field boundaries cannot be shifted. The first entry's `prev_hash` is 32 zero bytes.

use super::model::AuditEntry;
use ring::digest::{Context, SHA256};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The hash of entry `audit_seq` chained to `prev_hash`.
pub fn entry_hash(prev_hash: &[u8; 32], audit_seq: i64, entry: &AuditEntry) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(prev_hash);
    ctx.update(&audit_seq.to_be_bytes());
    ctx.update(&entry.at_us.to_be_bytes());
    for field in [&entry.actor, &entry.action, &entry.subject, &entry.detail] {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subject: &str) -> AuditEntry {
        AuditEntry {
            actor: "op1".into(),
            action: "card.status".into(),
            subject: subject.into(),
            detail: "{}".into(),
            at_us: 1,
        }
    }

    #[test]
    fn the_hash_depends_on_the_previous_hash_position_and_every_field() {
        let h = entry_hash(&GENESIS_HASH, 1, &entry("card:1"));
        assert_ne!(h, entry_hash(&[1; 32], 1, &entry("card:1")));
        assert_ne!(h, entry_hash(&GENESIS_HASH, 2, &entry("card:1")));
        assert_ne!(h, entry_hash(&GENESIS_HASH, 1, &entry("card:2")));
        // Moving a character across a field boundary changes the hash.
        let mut shifted = entry("card:1");
        shifted.actor = "op".into();
        shifted.action = "1card.status".into();
        assert_ne!(h, entry_hash(&GENESIS_HASH, 1, &shifted));
    }
}
