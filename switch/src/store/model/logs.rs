//! The append-only logs: the outbox of settlement events and the hash-chained audit log.

use uuid::Uuid;

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Gap-free, commit-ordered position.
    pub outbox_seq: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// Ordering key (acquirer institution).
    pub partition_key: String,
    /// `EventType::as_str`.
    pub event_type: String,
    /// Event schema version.
    pub schema_version: i64,
    /// The event JSON.
    pub payload: String,
    /// Commit time.
    pub created_at_us: i64,
    /// When a relay published it.
    pub relayed_at_us: Option<i64>,
}

/// An audit entry to append. Never put a PAN, PIN or key in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who (operator id, `switch`).
    pub actor: String,
    /// What (`card.status`, `key.exchange`).
    pub action: String,
    /// On what (card id, institution id).
    pub subject: String,
    /// Details as JSON.
    pub detail: String,
    /// When.
    pub at_us: i64,
}

/// An appended audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub audit_seq: i64,
    /// SHA-256 of the previous entry's hash and this entry.
    pub entry_hash: [u8; 32],
}
