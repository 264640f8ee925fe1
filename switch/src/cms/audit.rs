//! Every CMS operation's audit entry: who (operator at institution), what (`card.activate`,
//! `applications.import` ...), on what (`card:17`, `application:3`, `batch:2026-12-07-01`),
//! from where and why, appended to the store's hash-chained audit log.
//!
//! A change's entry is made here and handed to the store, which appends it in the change's
//! own transaction ([`crate::cms::store::CmsStore`]): the change and its record commit together.
//!
//! Why one function: the entry's shape is the same for every operation, so an auditor's query
//! and the HTTP layer's audit view read one format. Never put a PAN, PIN, key or citizen ID in
//! `detail`.

use super::model::Actor;
use crate::store::{now_us, AuditEntry, AuditRecord, Store, StoreError};

/// Appends one entry for `actor` doing `action` on `subject` in a transaction of its own (an
/// import's outcome, which changes nothing of its own).
pub async fn record<S: Store>(
    store: &S,
    actor: &Actor,
    action: &str,
    subject: String,
    detail: serde_json::Value,
) -> Result<AuditRecord, StoreError> {
    store
        .append_audit(&entry(actor, action, subject, detail))
        .await
}

/// The entry of `actor` doing `action` on `subject`; `detail` gains the actor's source address,
/// reason and institution.
pub fn entry(
    actor: &Actor,
    action: &str,
    subject: String,
    mut detail: serde_json::Value,
) -> AuditEntry {
    if let Some(map) = detail.as_object_mut() {
        map.insert("source".into(), actor.source.clone().into());
        map.insert("reason".into(), actor.reason.clone().into());
        map.insert(
            "institution".into(),
            actor.institution.as_str().to_owned().into(),
        );
    }
    AuditEntry {
        actor: format!("{}@{}", actor.operator, actor.institution.as_str()),
        action: action.to_owned(),
        subject,
        detail: detail.to_string(),
        at_us: now_us(),
    }
}
