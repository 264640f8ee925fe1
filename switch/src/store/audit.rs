//! The audit hash chain: each entry's hash covers the previous entry's hash and the entry's
//! fields, so removing, reordering or editing an entry breaks every later hash.
//!
//! `entry_hash = SHA-256(prev_hash || seq || at_us || len‖actor || len‖action || len‖subject
//! || len‖detail)`, integers big-endian 8 bytes, strings prefixed with their byte length so
//! field boundaries cannot be shifted. The first entry's `prev_hash` is 32 zero bytes.
//!
//! The chain alone proves order and integrity only to someone who trusts its head: whoever can
//! write the database can also rewrite the chain from the entry they changed. So each entry is
//! also keyed: `mac = HMAC-SHA-256(K, "audit_log.mac" || entry_hash)` (RFC 2104) under a data
//! key the HSM releases ([`AuditMacKey`]; its LMK token is in the configuration, the clear key
//! only in memory). Entries appended before a key was installed carry no MAC; once one entry
//! carries a MAC, every later one must.

use super::model::AuditEntry;
use ring::digest::{Context, SHA256};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The key that MACs audit entries: in production a data key unwrapped by the HSM.
pub trait AuditMacKey: Send + Sync + 'static {
    /// The MAC of the entry whose chain hash is `entry_hash`.
    fn mac(&self, entry_hash: &[u8; 32]) -> [u8; 32];
}

/// Domain separation of the audit MAC from every other use of a data key.
const MAC_LABEL: &[u8] = b"audit_log.mac";

impl AuditMacKey for hsm_sim::datakey::DataKey {
    fn mac(&self, entry_hash: &[u8; 32]) -> [u8; 32] {
        let mut input = Vec::with_capacity(MAC_LABEL.len() + 32);
        input.extend_from_slice(MAC_LABEL);
        input.extend_from_slice(entry_hash);
        self.keyed_hash(&input)
    }
}

/// Where a store keeps its audit MAC key once installed (see [`super::Store::install_audit_mac_key`]).
#[derive(Default)]
pub struct AuditKeySlot(std::sync::OnceLock<std::sync::Arc<dyn AuditMacKey>>);

impl std::fmt::Debug for AuditKeySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKeySlot(****)")
    }
}

impl AuditKeySlot {
    /// The key, once installed.
    pub fn get(&self) -> Option<&dyn AuditMacKey> {
        self.0.get().map(|k| &**k)
    }

    /// Installs the key; false when one is installed already (it is never replaced).
    pub fn install(&self, key: std::sync::Arc<dyn AuditMacKey>) -> bool {
        self.0.set(key).is_ok()
    }
}

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
    fn the_mac_depends_on_the_key_and_the_entry_hash() {
        let k = |b| hsm_sim::datakey::DataKey::from_bytes([b; 32]).unwrap();
        let h = entry_hash(&GENESIS_HASH, 1, &entry("card:1"));
        let h2 = entry_hash(&GENESIS_HASH, 1, &entry("card:2"));
        assert_eq!(k(1).mac(&h), k(1).mac(&h));
        assert_ne!(k(1).mac(&h), k(2).mac(&h));
        assert_ne!(k(1).mac(&h), k(1).mac(&h2));
        // Not the bare keyed hash of the entry hash: the label separates the uses of the key.
        assert_ne!(k(1).mac(&h), k(1).keyed_hash(&h));
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
