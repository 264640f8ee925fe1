//! Every CMS operation's audit entry: who (operator at institution), what (`card.activate`,
//! `applications.import` ...), on what (`card:17`, `application:3`, `batch:2026-12-07-01`),
//! from where and why, appended to the store's hash-chained audit log.
//!
//! Why one function: the entry's shape is the same for every operation, so an auditor's query
//! and the HTTP layer's audit view read one format. Never put a PAN, PIN, key or citizen ID in
//! `detail`.

use super::model::Actor;
use crate::store::{now_us, AuditEntry, AuditRecord, Store, StoreError};

/// Appends one entry for `actor` doing `action` on `subject`; `detail` gains the actor's source
/// address and reason.
pub async fn record<S: Store>(
    store: &S,
    actor: &Actor,
    action: &str,
    subject: String,
    mut detail: serde_json::Value,
) -> Result<AuditRecord, StoreError> {
    if let Some(map) = detail.as_object_mut() {
        map.insert("source".into(), actor.source.clone().into());
        map.insert("reason".into(), actor.reason.clone().into());
        map.insert(
            "institution".into(),
            actor.institution.as_str().to_owned().into(),
        );
    }
    store
        .append_audit(&AuditEntry {
            actor: format!("{}@{}", actor.operator, actor.institution.as_str()),
            action: action.to_owned(),
            subject,
            detail: detail.to_string(),
            at_us: now_us(),
        })
        .await
}
