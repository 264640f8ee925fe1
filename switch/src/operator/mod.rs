//! The operator API (issue 25): who may do what through the switch's HTTP face, for which
//! institution, and the audit of it.
//!
//! - [`permission`]: the permission catalogue and the built-in roles (a role is a named set of
//!   permissions, stored, so an institution defines its own);
//! - [`password`] (argon2id), [`totp`] (RFC 6238), [`token`] (session, CSRF and API-key
//!   secrets, stored as hashes) and [`keys`] (HSM data keys sealing TOTP secrets and MACing
//!   the audit log): authentication;
//! - [`caller`]: the axum extractor every protected route takes, [`scope`]: the tenant rule;
//! - [`audit`]: every login and action into the hash-chained, MACed audit log;
//! - [`idempotency`]: `Idempotency-Key` on POSTs; [`problem`]: problem+json;
//! - [`routes`]: sessions, users, roles, role changes, the audit log;
//! - [`provision`]: creating users (API, `switch users bootstrap-admin`, the demo).
//!
//! A real deployment still wants an identity provider (SSO) in front of this; the API is
//! built so that one could mint the same sessions.

pub mod audit;
pub mod caller;
pub mod idempotency;
pub mod keys;
pub mod machine;
pub mod password;
pub mod permission;
pub mod problem;
pub mod provision;
pub mod routes;
pub mod scope;
pub mod token;
pub mod totp;

pub use caller::{Caller, Principal};
pub use permission::{Permission, PermissionSet};
pub use scope::Scope;

use std::time::Duration;

/// Sessions and lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    pub absolute_timeout: Duration,
    /// Failed logins in a row that lock a user.
    pub login_failures_max: u32,
    /// How long a locked user stays locked.
    pub lockout: Duration,
    /// Whether the session cookie is marked `Secure` (the HTTP listener serves TLS).
    pub secure_cookie: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(15 * 60),
            absolute_timeout: Duration::from_secs(8 * 3600),
            login_failures_max: 5,
            lockout: Duration::from_secs(15 * 60),
            secure_cookie: false,
        }
    }
}

/// What the operator routes need beside the store.
#[derive(Debug)]
pub struct OperatorContext {
    /// Seals and opens TOTP secrets.
    pub secrets: keys::SecretKey,
    /// Sessions and lockout.
    pub policy: SessionPolicy,
    /// API keys and machine clients recently resolved (see [`caller::KeyCache`]).
    pub(crate) keys: caller::KeyCache,
    /// Machine clients proven by their TLS certificate (`[[http.client_certificate]]`).
    pub machines: machine::MachineClients,
}

impl OperatorContext {
    /// With its secret key and policy.
    pub fn new(secrets: keys::SecretKey, policy: SessionPolicy) -> Self {
        Self {
            secrets,
            policy,
            keys: caller::KeyCache::default(),
            machines: machine::MachineClients::default(),
        }
    }

    /// With the machine clients its HTTP face's TLS admits by certificate.
    pub fn with_machine_clients(mut self, machines: machine::MachineClients) -> Self {
        self.machines = machines;
        self
    }

    /// Fixed, publicly known keys: tests and the demo only.
    pub fn for_tests() -> Self {
        Self::new(keys::SecretKey::for_tests(), SessionPolicy::default())
    }
}

/// A duration in microseconds, saturating.
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
