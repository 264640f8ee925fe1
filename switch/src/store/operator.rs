//! What the store keeps for the operator API (issue 25, [`crate::operator`]): users and their
//! institution, roles as named sets of permissions, four-eyes role changes, sessions, API keys,
//! the first answers of idempotent POSTs, and pages of the audit log.
//!
//! Every write that is an operator's action takes that action's audit entry and appends it in
//! the same transaction (`None` only for fixtures and the demo's seed): the action and its
//! record commit together or not at all.
//!
//! Secrets are kept only hashed or sealed: a user's password as an argon2id PHC string, the
//! TOTP secret sealed under the operator data key, session tokens, CSRF tokens and API keys as
//! SHA-256 hashes. The records here never print those fields (`Debug` shows `****`).

use super::model::AuditEntry;
use super::StoreError;
use schemas::domain::InstitutionId;
use std::future::Future;
use uuid::Uuid;

/// Most rows one page of users, roles or audit entries returns.
pub const OPERATOR_PAGE_MAX: u32 = 500;

/// A role: a named set of permission names (the catalogue is [`crate::operator::Permission`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRole {
    /// Stable id (`auditor`, or an institution's own, e.g. `H0001.night-cashier`).
    pub role_id: String,
    /// None: a built-in role, offered to every institution.
    pub institution: Option<InstitutionId>,
    /// What operators read.
    pub name: String,
    /// Permission names, sorted, no repeats.
    pub permissions: Vec<String>,
    /// When it was created.
    pub created_at_us: i64,
}

/// An operator (a person). Belongs to exactly one institution.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorUser {
    /// Id (UUID v7).
    pub user_id: Uuid,
    /// Login name, unique across the switch.
    pub username: String,
    /// The user's institution (tenant).
    pub institution: InstitutionId,
    /// argon2id PHC string (RFC 9106), never the password.
    pub password_hash: String,
    /// The TOTP secret sealed (AES-256-GCM) under the operator data key.
    pub totp_sealed: Vec<u8>,
    /// Failed logins in a row (reset by a successful one).
    pub failed_logins: u32,
    /// Logins are refused until then.
    pub locked_until_us: Option<i64>,
    /// When the user was created.
    pub created_at_us: i64,
}

impl std::fmt::Debug for OperatorUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorUser")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("institution", &self.institution)
            .field("password_hash", &"****")
            .field("totp_sealed", &"****")
            .field("failed_logins", &self.failed_logins)
            .field("locked_until_us", &self.locked_until_us)
            .finish()
    }
}

/// A login session: the SHA-256 of its cookie token and of its CSRF token.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorSession {
    /// SHA-256 of the session token (the cookie's value).
    pub token_hash: [u8; 32],
    /// Whose session.
    pub user_id: Uuid,
    /// SHA-256 of the CSRF token the client sends back in a header.
    pub csrf_hash: [u8; 32],
    /// Login time (absolute expiry counts from here).
    pub created_at_us: i64,
    /// Last request (idle expiry counts from here).
    pub last_seen_at_us: i64,
    /// Logout time.
    pub ended_at_us: Option<i64>,
}

impl std::fmt::Debug for OperatorSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorSession")
            .field("user_id", &self.user_id)
            .field("created_at_us", &self.created_at_us)
            .field("last_seen_at_us", &self.last_seen_at_us)
            .field("ended_at_us", &self.ended_at_us)
            .finish_non_exhaustive()
    }
}

/// A proposed change of a user's roles (four eyes: applied when another administrator
/// approves it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    /// Id (UUID v7).
    pub change_id: Uuid,
    /// Whose roles change.
    pub user_id: Uuid,
    /// The user's roles once approved (replacing the current ones).
    pub role_ids: Vec<String>,
    /// Why (from the proposer).
    pub reason: String,
    /// The proposing administrator.
    pub proposed_by: Uuid,
    /// When.
    pub proposed_at_us: i64,
    /// The approving administrator, once approved.
    pub approved_by: Option<Uuid>,
    /// When approved.
    pub approved_at_us: Option<i64>,
}

/// A machine client's key (a hospital's HIS, a bank's back office): only its SHA-256 is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// SHA-256 of the key.
    pub key_hash: [u8; 32],
    /// Public id, for the audit log and revocation.
    pub key_id: String,
    /// The client's institution.
    pub institution: InstitutionId,
    /// The client's role.
    pub role_id: String,
    /// What the client is.
    pub name: String,
    /// When issued.
    pub created_at_us: i64,
    /// When revoked.
    pub revoked_at_us: Option<i64>,
    /// When a node last resolved it for a request (to within the key cache's lifetime,
    /// [`crate::operator::caller::KEY_CACHE_TTL_US`]); None: never used.
    pub last_used_at_us: Option<i64>,
    /// The counter terminal the key belongs to (its PIN pad's own TPK); None: not a counter.
    pub counter_id: Option<String>,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("key_id", &self.key_id)
            .field("institution", &self.institution)
            .field("role_id", &self.role_id)
            .finish_non_exhaustive()
    }
}

/// The first answer to a POST with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAnswer {
    /// SHA-256 of the request (method, path, body): a repeat with another body is refused.
    pub request_hash: [u8; 32],
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// An audit entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the chain.
    pub audit_seq: i64,
    /// The entry.
    pub entry: AuditEntry,
    /// Whether it carries a MAC.
    pub keyed: bool,
}

/// An institution's names: the console shows an institution by name in the operator's
/// language, not by its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstitutionName {
    /// ISO 8583 institution id.
    pub institution_id: InstitutionId,
    /// Its name (the institution table's `name`).
    pub name: String,
    /// Its Chinese name, when set.
    pub name_zh: Option<String>,
}

/// How far clearing is behind the switch's settlement events: the outbox rows clearing has not
/// applied yet (when it tells which), else those the relay has not marked relayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxLag {
    /// Rows waiting, at most [`OUTBOX_LAG_COUNT_MAX`].
    pub waiting: u64,
    /// Whether more than [`OUTBOX_LAG_COUNT_MAX`] wait.
    pub more: bool,
    /// When the oldest of them was written (None: none waits).
    pub oldest_created_at_us: Option<i64>,
}

/// Most waiting outbox rows [`OperatorStore::outbox_lag`] counts (a stopped relay would
/// otherwise have the dashboard count a growing table every second).
pub const OUTBOX_LAG_COUNT_MAX: u64 = 100_000;

/// Longest Chinese name of an institution, characters (migration 0016's CHECK).
pub const INSTITUTION_NAME_ZH_LEN_MAX_CHARS: usize = 100;

/// A transaction search (`GET /transactions`): every given filter must hold; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionSearch {
    /// Only transactions this institution took part in (acquirer, issuer or a leg); None: all.
    pub visible_to: Option<InstitutionId>,
    /// Retrieval reference number (field 37).
    pub rrn: Option<String>,
    /// Terminal id (field 41).
    pub terminal_id: Option<String>,
    /// Decided at or after.
    pub from_us: Option<i64>,
    /// Decided before.
    pub to_us: Option<i64>,
    /// Response code (field 39).
    pub response_code: Option<String>,
    /// The PAN's last four digits (the masked PAN ends with them).
    pub pan_last4: Option<String>,
    /// Only the transactions of this card (read by walking its chain of transactions,
    /// `sql::card_history`).
    pub card_id: Option<i64>,
    /// Keyset cursor: strictly older than this (decided_at_us, transaction id).
    pub before: Option<(i64, Uuid)>,
    /// Most transactions returned (at most [`OPERATOR_PAGE_MAX`]).
    pub limit: u32,
}

/// The operator API's persistence (every [`super::Store`] has it).
pub trait OperatorStore: Send + Sync + 'static {
    /// Adds a role; with `replace`, replaces one of the same id (built-in roles at start),
    /// without, an existing id is [`StoreError::Conflict`]. `audit` is appended in the same
    /// transaction.
    fn put_role(
        &self,
        role: &OperatorRole,
        replace: bool,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A role by id.
    fn role(
        &self,
        role_id: &str,
    ) -> impl Future<Output = Result<Option<OperatorRole>, StoreError>> + Send;
    /// The built-in roles and `institution`'s own (every role when None), by id.
    fn roles(
        &self,
        institution: Option<&InstitutionId>,
    ) -> impl Future<Output = Result<Vec<OperatorRole>, StoreError>> + Send;
    /// Adds a user and appends `audit`, in one transaction; a taken username is
    /// [`StoreError::Conflict`].
    fn create_user(
        &self,
        user: &OperatorUser,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A user by id.
    fn user(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Option<OperatorUser>, StoreError>> + Send;
    /// A user by login name.
    fn user_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<OperatorUser>, StoreError>> + Send;
    /// Up to `limit` users with ids above `after`, of `institution` (every one when None).
    fn users_page(
        &self,
        institution: Option<&InstitutionId>,
        after: Option<Uuid>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OperatorUser>, StoreError>> + Send;
    /// The roles a user holds.
    fn user_roles(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Vec<OperatorRole>, StoreError>> + Send;
    /// Replaces a user's roles without four eyes: only for the first administrator
    /// (`switch users bootstrap-admin`) and the demo's users. `audit` in the same transaction.
    fn set_user_roles(
        &self,
        user_id: Uuid,
        role_ids: &[String],
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Counts a failed login, atomically; at `failures_max` in a row the user is locked until
    /// `lock_until_us`. Returns the failures in a row.
    fn record_login_failure(
        &self,
        user_id: Uuid,
        failures_max: u32,
        lock_until_us: i64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// Accepts the TOTP time step `step` for the user once: true (and `step` kept) when it is
    /// later than the last step accepted, false for that step or an earlier one (a code seen
    /// before, RFC 6238 §5.2). Atomic: of two logins with the same code, one is accepted.
    fn accept_totp_step(
        &self,
        user_id: Uuid,
        step: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// A successful login: failures back to 0, lock lifted.
    fn record_login_success(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A password change, in one transaction: replaces the user's password hash, ends every
    /// open session of the user at `at_us` and appends `audit`. Returns the sessions ended.
    fn set_password_hash(
        &self,
        user_id: Uuid,
        password_hash: &str,
        at_us: i64,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Stores a new session.
    fn create_session(
        &self,
        session: &OperatorSession,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A session by the hash of its token.
    fn session(
        &self,
        token_hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<OperatorSession>, StoreError>> + Send;
    /// Records a request on a session (idle expiry).
    fn touch_session(
        &self,
        token_hash: &[u8; 32],
        at_us: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ends one session (logout).
    fn end_session(
        &self,
        token_hash: &[u8; 32],
        at_us: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ends every open session of a user (after a password change).
    fn end_sessions_of(
        &self,
        user_id: Uuid,
        at_us: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Stores a proposed role change and appends `audit`, in one transaction.
    fn propose_role_change(
        &self,
        change: &RoleChange,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A role change by id.
    fn role_change(
        &self,
        change_id: Uuid,
    ) -> impl Future<Output = Result<Option<RoleChange>, StoreError>> + Send;
    /// Approves a proposed change and applies it, in one transaction. Refused
    /// ([`StoreError::Conflict`]) when `approver` proposed it or is the user it changes (four
    /// eyes), or when it is no longer proposed; [`StoreError::NotFound`] when there is none.
    /// `audit` is appended in the same transaction.
    fn approve_role_change(
        &self,
        change_id: Uuid,
        approver: Uuid,
        at_us: i64,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<RoleChange, StoreError>> + Send;
    /// Stores an API key (its hash) and appends `audit`, in one transaction.
    fn put_api_key(
        &self,
        key: &ApiKeyRecord,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An API key by its public id.
    fn api_key_by_id(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;
    /// Revokes the key `key_id` at `at_us` (a key already revoked keeps its first revocation);
    /// the key as it now is, or None when there is no such key. `audit` is appended in the
    /// same transaction when this call revoked the key (not for a repeat).
    fn revoke_api_key(
        &self,
        key_id: &str,
        at_us: i64,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;
    /// Up to `limit` API keys with ids above `after`, by id, of `institution` (every one when
    /// None).
    fn api_keys_page(
        &self,
        institution: Option<&InstitutionId>,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ApiKeyRecord>, StoreError>> + Send;
    /// Records that the key was used at `at_us` (kept only when later than the last use).
    fn touch_api_key(
        &self,
        key_hash: &[u8; 32],
        at_us: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An API key by the hash of the key.
    fn api_key(
        &self,
        key_hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;
    /// The first answer given to `principal` for `idem_key`.
    fn idempotent_answer(
        &self,
        principal: &str,
        idem_key: &str,
    ) -> impl Future<Output = Result<Option<IdempotentAnswer>, StoreError>> + Send;
    /// Keeps the first answer for `principal` and `idem_key`; false when one was kept already
    /// (a concurrent repeat), which stays.
    fn put_idempotent_answer(
        &self,
        principal: &str,
        idem_key: &str,
        answer: &IdempotentAnswer,
        at_us: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Transactions matching `search`, newest first, with their legs.
    fn search_transactions(
        &self,
        search: &TransactionSearch,
    ) -> impl Future<Output = Result<Vec<super::StoredTransaction>, StoreError>> + Send;
    /// Every institution's names, by id.
    fn institution_names(
        &self,
    ) -> impl Future<Output = Result<Vec<InstitutionName>, StoreError>> + Send;
    /// Sets (or, with None, clears) an institution's Chinese name; false when there is no
    /// such institution.
    fn set_institution_name_zh(
        &self,
        institution: &InstitutionId,
        name_zh: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Up to `limit` audit entries about `subject` (`card:42`), newest first, read through
    /// the `audit_log_by_subject` index.
    fn audit_of_subject(
        &self,
        subject: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditRow>, StoreError>> + Send;
    /// Role changes still proposed, oldest first, at most `limit`.
    fn open_role_changes(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RoleChange>, StoreError>> + Send;
    /// Rejects a proposed change, with a reason. Refused ([`StoreError::Conflict`]) when
    /// `rejecter` proposed it or is the user it changes (four eyes), or when it is no longer
    /// proposed; [`StoreError::NotFound`] when there is none. `audit` is appended in the
    /// rejection's transaction.
    fn reject_role_change(
        &self,
        change_id: Uuid,
        rejecter: Uuid,
        reason: &str,
        at_us: i64,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<RoleChange, StoreError>> + Send;
    /// The settlement events clearing has not taken yet: with `applied_through`, those after
    /// that outbox sequence (what clearing applied); without, those not marked relayed.
    fn outbox_lag(
        &self,
        applied_through: Option<i64>,
    ) -> impl Future<Output = Result<OutboxLag, StoreError>> + Send;
    /// Up to `limit` audit entries after `after_seq`, in chain order.
    fn audit_page(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditRow>, StoreError>> + Send;
}
