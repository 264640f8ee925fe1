//! Every login (success and failure) and every operator action into the store's audit log
//! (hash-chained, and MACed under the HSM-held audit key: `store::audit`), with who (the
//! actor), what (the action and its subject), when, from where (the source address) and why
//! (the reason the operator gave). Where and why go into the entry's JSON detail, which the
//! chain hash and the MAC cover.
//!
//! An action that changes the store hands its entry ([`entry`]) to the store method that makes
//! the change, which appends it in the same transaction: an action whose audit entry cannot be
//! written is not done, and is answered 503 (GB/T 22239-2019 level 3, 8.1.4.3 security audit).
//! Logins, logouts and actions done elsewhere (a window closed by the clearing centre) are
//! recorded on their own ([`record`]).

use super::caller::{Caller, SourceAddr};
use super::problem::{store_failed, Problem};
use crate::store::{now_us, AuditEntry, Store};
use serde_json::{json, Value};

/// Audit actions of the operator API (stable names, read by auditors).
pub mod action {
    /// A login succeeded.
    pub const LOGIN: &str = "operator.login";
    /// A login failed (wrong password or code, unknown user, locked user).
    pub const LOGIN_FAILED: &str = "operator.login_failed";
    /// A logout.
    pub const LOGOUT: &str = "operator.logout";
    /// A password change.
    pub const PASSWORD_CHANGE: &str = "operator.password_change";
    /// A user created.
    pub const USER_CREATE: &str = "user.create";
    /// A role change proposed.
    pub const ROLE_CHANGE_PROPOSE: &str = "role_change.propose";
    /// A role change approved (and applied).
    pub const ROLE_CHANGE_APPROVE: &str = "role_change.approve";
    /// A role change rejected (not applied).
    pub const ROLE_CHANGE_REJECT: &str = "role_change.reject";
    /// A role defined.
    pub const ROLE_CREATE: &str = "role.create";
    /// A machine client's API key issued.
    pub const API_KEY_ISSUE: &str = "api_key.issue";
    /// An API key revoked.
    pub const API_KEY_REVOKE: &str = "api_key.revoke";
    /// A settlement window closed (through clearing's settlement API).
    pub const CLEARING_WINDOW_CLOSE: &str = "clearing.window_close";
    /// A bank reconciliation exception resolved (`POST /reconciliations/{id}/resolve`).
    pub const RECONCILIATION_RESOLVE: &str = "reconciliation.resolve";
    /// A settlement day cut over on demand (`POST /cutover`).
    pub const CUTOVER_RUN: &str = "cutover.run";
    /// A personalisation file closed and kept for the card bureau (`POST /perso-files`).
    pub const PERSO_FILE_CLOSE: &str = "perso_file.close";
}

/// One entry: who, what, on what, from where, why, and the rest as JSON.
#[derive(Debug)]
pub struct Event<'a> {
    /// `user:<id>`, `api_key:<id>`, or `anonymous`.
    pub actor: String,
    /// One of [`action`].
    pub action: &'static str,
    /// On what (`user:<id>`, `role:<id>`).
    pub subject: String,
    /// Where from.
    pub source: &'a SourceAddr,
    /// Why (the operator's words), if given.
    pub reason: Option<&'a str>,
    /// More, as JSON (never a secret, PAN or PIN).
    pub detail: Value,
}

impl<'a> Event<'a> {
    /// An event of `caller`.
    pub fn by(caller: &'a Caller, action: &'static str, subject: String) -> Self {
        Self {
            actor: caller.actor(),
            action,
            subject,
            source: &caller.source,
            reason: None,
            detail: json!({ "institution": caller.institution.institution_id.as_str() }),
        }
    }

    /// With a reason.
    pub fn because(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// With more detail (merged into the JSON object).
    pub fn with(mut self, key: &str, value: Value) -> Self {
        if let Value::Object(map) = &mut self.detail {
            map.insert(key.to_owned(), value);
        }
        self
    }
}

/// Appends the event in a transaction of its own.
pub async fn record<S: Store>(store: &S, e: Event<'_>) -> Result<(), Problem> {
    store
        .append_audit(&entry(e))
        .await
        .map(|_| ())
        .map_err(store_failed)
}

/// The entry of the event, for a store method to append with the change it records.
pub fn entry(e: Event<'_>) -> AuditEntry {
    let mut detail = e.detail;
    if let Value::Object(map) = &mut detail {
        map.insert("source".into(), Value::from(e.source.0.as_str()));
        map.insert(
            "reason".into(),
            e.reason.map(Value::from).unwrap_or(Value::Null),
        );
    }
    AuditEntry {
        actor: e.actor,
        action: e.action.to_owned(),
        subject: e.subject,
        detail: detail.to_string(),
        at_us: now_us(),
    }
}
