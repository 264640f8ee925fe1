//! [`OperatorStore`] for every [`Backend`]: the operator API's users, roles, sessions, API
//! keys and idempotent answers, in the tables of migration 0011 (and the last accepted TOTP step
//! of 0015). Writes take the backend's
//! write gate, as the rest of the control plane does; an operator action's audit entry is
//! appended in the action's transaction ([`super::audit_log::append_in`]).

use super::api_keys;
use super::audit_log::append_in;
use super::card_history::SEARCH_CARD_TRANSACTIONS;
use super::console;
use super::control::with_legs;
use super::driver::{Backend, Columns, Run, WriteTx};
use super::limit;
use super::rows::{hash32, parse};
use crate::store::model::AuditEntry;
use crate::store::operator::{
    ApiKeyRecord, AuditRow, IdempotentAnswer, InstitutionName, OperatorRole, OperatorSession,
    OperatorStore, OperatorUser, OutboxLag, RoleChange, TransactionSearch, OPERATOR_PAGE_MAX,
};
use crate::store::StoreError;
use crate::store::StoredTransaction;
use schemas::domain::InstitutionId;
use uuid::Uuid;

const INSERT_ROLE: &str = "INSERT INTO operator_role (role_id, institution_id, name, permissions, \
     created_at_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (role_id) DO NOTHING";
const UPSERT_ROLE: &str = "INSERT INTO operator_role (role_id, institution_id, name, permissions, \
     created_at_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (role_id) DO UPDATE SET \
     institution_id = excluded.institution_id, name = excluded.name, \
     permissions = excluded.permissions";
const ROLE: &str = "SELECT role_id, institution_id, name, permissions, created_at_us \
     FROM operator_role WHERE role_id = $1";
const ROLES_OF: &str = "SELECT role_id, institution_id, name, permissions, created_at_us \
     FROM operator_role WHERE institution_id IS NULL OR institution_id = $1 ORDER BY role_id";
const ROLES_ALL: &str = "SELECT role_id, institution_id, name, permissions, created_at_us \
     FROM operator_role ORDER BY role_id";

/// Columns read by [`user`].
macro_rules! user_columns {
    () => {
        "user_id, username, institution_id, password_hash, totp_sealed, \
         CAST(failed_logins AS BIGINT) AS failed_logins, locked_until_us, created_at_us"
    };
}

const INSERT_USER: &str = "INSERT INTO operator_user (user_id, username, institution_id, \
     password_hash, totp_sealed, failed_logins, locked_until_us, created_at_us) \
     VALUES ($1, $2, $3, $4, $5, 0, NULL, $6) ON CONFLICT DO NOTHING";
const USER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM operator_user WHERE user_id = $1"
);
const USER_BY_NAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM operator_user WHERE username = $1"
);
const USERS_OF: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM operator_user WHERE institution_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3"
);
const USERS_ALL: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM operator_user WHERE user_id > $1 ORDER BY user_id LIMIT $2"
);
const USER_ROLES: &str = "SELECT r.role_id, r.institution_id, r.name, r.permissions, \
     r.created_at_us FROM operator_role AS r JOIN operator_user_role AS u \
     ON u.role_id = r.role_id WHERE u.user_id = $1 ORDER BY r.role_id";
const CLEAR_USER_ROLES: &str = "DELETE FROM operator_user_role WHERE user_id = $1";
const ADD_USER_ROLE: &str = "INSERT INTO operator_user_role (user_id, role_id) VALUES ($1, $2) \
     ON CONFLICT DO NOTHING";
const LOGIN_FAILED: &str = "UPDATE operator_user SET failed_logins = failed_logins + 1, \
     locked_until_us = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until_us END \
     WHERE user_id = $1 RETURNING CAST(failed_logins AS BIGINT)";
const LOGIN_SUCCEEDED: &str =
    "UPDATE operator_user SET failed_logins = 0, locked_until_us = NULL WHERE user_id = $1";
const ACCEPT_TOTP_STEP: &str = "UPDATE operator_user SET totp_last_step = $2 WHERE user_id = $1 \
     AND (totp_last_step IS NULL OR totp_last_step < $2)";
const SET_PASSWORD: &str = "UPDATE operator_user SET password_hash = $2 WHERE user_id = $1";

const INSERT_SESSION: &str = "INSERT INTO operator_session (token_hash, user_id, csrf_hash, \
     created_at_us, last_seen_at_us, ended_at_us) VALUES ($1, $2, $3, $4, $5, NULL)";
const SESSION: &str = "SELECT token_hash, user_id, csrf_hash, created_at_us, last_seen_at_us, \
     ended_at_us FROM operator_session WHERE token_hash = $1";
const TOUCH_SESSION: &str =
    "UPDATE operator_session SET last_seen_at_us = $2 WHERE token_hash = $1";
const END_SESSION: &str = "UPDATE operator_session SET ended_at_us = $2 WHERE token_hash = $1 \
     AND ended_at_us IS NULL";
const END_SESSIONS_OF: &str = "UPDATE operator_session SET ended_at_us = $2 WHERE user_id = $1 \
     AND ended_at_us IS NULL";

/// Columns read by [`role_change`].
macro_rules! change_columns {
    () => {
        "change_id, user_id, role_ids, reason, proposed_by, proposed_at_us, approved_by, \
         approved_at_us"
    };
}
const INSERT_CHANGE: &str = "INSERT INTO operator_role_change (change_id, user_id, role_ids, \
     reason, proposed_by, proposed_at_us, state) VALUES ($1, $2, $3, $4, $5, $6, 'proposed')";
pub(super) const CHANGE: &str = concat!(
    "SELECT ",
    change_columns!(),
    " FROM operator_role_change WHERE change_id = $1"
);
pub(super) const OPEN_CHANGES: &str = concat!(
    "SELECT ",
    change_columns!(),
    " FROM operator_role_change WHERE state = 'proposed' \
     ORDER BY proposed_at_us, change_id LIMIT $1"
);
const APPROVE_CHANGE: &str = "UPDATE operator_role_change SET state = 'approved', \
     approved_by = $2, approved_at_us = $3 WHERE change_id = $1 AND state = 'proposed' \
     AND proposed_by <> $2 AND user_id <> $2";

const IDEMPOTENT: &str = "SELECT request_hash, CAST(status AS BIGINT) AS status, body \
     FROM operator_idempotency WHERE principal = $1 AND idem_key = $2";
const PUT_IDEMPOTENT: &str = "INSERT INTO operator_idempotency (principal, idem_key, \
     request_hash, status, body, created_at_us) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT DO NOTHING";

/// Every filter is `$n IS NULL OR ...`, so one statement serves every combination; the window
/// (`decided_at_us`) and the keyset cursor use `txn_by_decided_at`.
const SEARCH_TRANSACTIONS: &str = concat!(
    "SELECT ",
    txn_columns!(),
    " FROM txn",
    txn_search_filters!("txn")
);

const AUDIT_PAGE: &str = "SELECT audit_seq, at_us, actor, action, subject, detail, mac \
     FROM audit_log WHERE audit_seq > $1 ORDER BY audit_seq LIMIT $2";

fn uuid_col(row: &impl Columns, name: &str, column: &'static str) -> Result<Uuid, StoreError> {
    parse(column, Uuid::parse_str(row.text(name)?))
}

pub(super) fn institution(
    row: &impl Columns,
    column: &'static str,
) -> Result<InstitutionId, StoreError> {
    parse(column, InstitutionId::parse(row.text("institution_id")?))
}

/// Names in a space-separated list.
fn words(text: &str) -> Vec<String> {
    text.split_ascii_whitespace().map(str::to_owned).collect()
}

fn role(row: &impl Columns) -> Result<OperatorRole, StoreError> {
    let institution = match row.get::<Option<String>>("institution_id")? {
        Some(id) => Some(parse(
            "operator_role.institution_id",
            InstitutionId::parse(&id),
        )?),
        None => None,
    };
    Ok(OperatorRole {
        role_id: row.get("role_id")?,
        institution,
        name: row.get("name")?,
        permissions: words(row.text("permissions")?),
        created_at_us: row.get("created_at_us")?,
    })
}

fn user(row: &impl Columns) -> Result<OperatorUser, StoreError> {
    let failed: i64 = row.get("failed_logins")?;
    Ok(OperatorUser {
        user_id: uuid_col(row, "user_id", "operator_user.user_id")?,
        username: row.get("username")?,
        institution: institution(row, "operator_user.institution_id")?,
        password_hash: row.get("password_hash")?,
        totp_sealed: row.get("totp_sealed")?,
        failed_logins: parse("operator_user.failed_logins", u32::try_from(failed))?,
        locked_until_us: row.get("locked_until_us")?,
        created_at_us: row.get("created_at_us")?,
    })
}

fn session(row: &impl Columns) -> Result<OperatorSession, StoreError> {
    Ok(OperatorSession {
        token_hash: hash32("operator_session.token_hash", row.get("token_hash")?)?,
        user_id: uuid_col(row, "user_id", "operator_session.user_id")?,
        csrf_hash: hash32("operator_session.csrf_hash", row.get("csrf_hash")?)?,
        created_at_us: row.get("created_at_us")?,
        last_seen_at_us: row.get("last_seen_at_us")?,
        ended_at_us: row.get("ended_at_us")?,
    })
}

pub(super) fn role_change(row: &impl Columns) -> Result<RoleChange, StoreError> {
    let approved_by = match row.get::<Option<String>>("approved_by")? {
        Some(id) => Some(parse(
            "operator_role_change.approved_by",
            Uuid::parse_str(&id),
        )?),
        None => None,
    };
    Ok(RoleChange {
        change_id: uuid_col(row, "change_id", "operator_role_change.change_id")?,
        user_id: uuid_col(row, "user_id", "operator_role_change.user_id")?,
        role_ids: words(row.text("role_ids")?),
        reason: row.get("reason")?,
        proposed_by: uuid_col(row, "proposed_by", "operator_role_change.proposed_by")?,
        proposed_at_us: row.get("proposed_at_us")?,
        approved_by,
        approved_at_us: row.get("approved_at_us")?,
    })
}

/// A page size, at most [`OPERATOR_PAGE_MAX`].
pub(super) fn page(n: u32) -> i64 {
    limit(n.min(OPERATOR_PAGE_MAX))
}

/// The lowest id, for a first page.
const UUID_MIN: &str = "";

impl<B: Backend> OperatorStore for B {
    async fn put_role(
        &self,
        r: &OperatorRole,
        replace: bool,
        audit: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        let permissions = r.permissions.join(" ");
        let params = [
            r.role_id.as_str().into(),
            r.institution.as_ref().map(InstitutionId::as_str).into(),
            r.name.as_str().into(),
            permissions.as_str().into(),
            r.created_at_us.into(),
        ];
        let sql = if replace { UPSERT_ROLE } else { INSERT_ROLE };
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        if tx.run().execute(sql, &params).await? == 0 {
            return Err(StoreError::Conflict("a role with this id exists"));
        }
        commit_audited(self, tx, audit).await
    }

    async fn role(&self, role_id: &str) -> Result<Option<OperatorRole>, StoreError> {
        let params = [role_id.into()];
        let row = self.reader().fetch_optional(ROLE, &params).await?;
        row.as_ref().map(role).transpose()
    }

    async fn roles(
        &self,
        institution: Option<&InstitutionId>,
    ) -> Result<Vec<OperatorRole>, StoreError> {
        let rows = match institution {
            Some(i) => {
                let params = [i.as_str().into()];
                self.reader().fetch_all(ROLES_OF, &params).await?
            }
            None => self.reader().fetch_all(ROLES_ALL, &[]).await?,
        };
        rows.iter().map(role).collect()
    }

    async fn create_user(
        &self,
        u: &OperatorUser,
        audit: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        let id = u.user_id.to_string();
        let params = [
            id.as_str().into(),
            u.username.as_str().into(),
            u.institution.as_str().into(),
            u.password_hash.as_str().into(),
            u.totp_sealed.as_slice().into(),
            u.created_at_us.into(),
        ];
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        if tx.run().execute(INSERT_USER, &params).await? == 0 {
            return Err(StoreError::Conflict("a user with this name exists"));
        }
        commit_audited(self, tx, audit).await
    }

    async fn user(&self, user_id: Uuid) -> Result<Option<OperatorUser>, StoreError> {
        let id = user_id.to_string();
        let params = [id.as_str().into()];
        let row = self.reader().fetch_optional(USER, &params).await?;
        row.as_ref().map(user).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<OperatorUser>, StoreError> {
        let params = [username.into()];
        let row = self.reader().fetch_optional(USER_BY_NAME, &params).await?;
        row.as_ref().map(user).transpose()
    }

    async fn users_page(
        &self,
        institution: Option<&InstitutionId>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<OperatorUser>, StoreError> {
        let after = after.map(|a| a.to_string());
        let after = after.as_deref().unwrap_or(UUID_MIN);
        let rows = match institution {
            Some(i) => {
                let params = [i.as_str().into(), after.into(), page(limit).into()];
                self.reader().fetch_all(USERS_OF, &params).await?
            }
            None => {
                let params = [after.into(), page(limit).into()];
                self.reader().fetch_all(USERS_ALL, &params).await?
            }
        };
        rows.iter().map(user).collect()
    }

    async fn user_roles(&self, user_id: Uuid) -> Result<Vec<OperatorRole>, StoreError> {
        let id = user_id.to_string();
        let params = [id.as_str().into()];
        let rows = self.reader().fetch_all(USER_ROLES, &params).await?;
        rows.iter().map(role).collect()
    }

    async fn set_user_roles(
        &self,
        user_id: Uuid,
        role_ids: &[String],
        audit: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        replace_roles(&mut tx, user_id, role_ids).await?;
        commit_audited(self, tx, audit).await
    }

    async fn record_login_failure(
        &self,
        user_id: Uuid,
        failures_max: u32,
        lock_until_us: i64,
    ) -> Result<u32, StoreError> {
        let id = user_id.to_string();
        let params = [
            id.as_str().into(),
            i64::from(failures_max).into(),
            lock_until_us.into(),
        ];
        let _gate = self.write_gate().await;
        let row = self.writer().fetch_optional(LOGIN_FAILED, &params).await?;
        let n: i64 = row.ok_or(StoreError::NotFound("user"))?.first()?;
        parse("operator_user.failed_logins", u32::try_from(n))
    }

    async fn accept_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool, StoreError> {
        let id = user_id.to_string();
        let params = [id.as_str().into(), step.into()];
        let _gate = self.write_gate().await;
        Ok(self.writer().execute(ACCEPT_TOTP_STEP, &params).await? == 1)
    }

    async fn record_login_success(&self, user_id: Uuid) -> Result<(), StoreError> {
        let id = user_id.to_string();
        let params = [id.as_str().into()];
        let _gate = self.write_gate().await;
        self.writer().execute(LOGIN_SUCCEEDED, &params).await?;
        Ok(())
    }

    async fn set_password_hash(
        &self,
        user_id: Uuid,
        hash: &str,
        at_us: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<u64, StoreError> {
        let id = user_id.to_string();
        let params = [id.as_str().into(), hash.into()];
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        if tx.run().execute(SET_PASSWORD, &params).await? == 0 {
            return Err(StoreError::NotFound("user"));
        }
        let params = [id.as_str().into(), at_us.into()];
        let ended = tx.run().execute(END_SESSIONS_OF, &params).await?;
        commit_audited(self, tx, audit).await?;
        Ok(ended)
    }

    async fn create_session(&self, s: &OperatorSession) -> Result<(), StoreError> {
        let id = s.user_id.to_string();
        let params = [
            s.token_hash.as_slice().into(),
            id.as_str().into(),
            s.csrf_hash.as_slice().into(),
            s.created_at_us.into(),
            s.last_seen_at_us.into(),
        ];
        let _gate = self.write_gate().await;
        self.writer().execute(INSERT_SESSION, &params).await?;
        Ok(())
    }

    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<OperatorSession>, StoreError> {
        let params = [token_hash.as_slice().into()];
        let row = self.reader().fetch_optional(SESSION, &params).await?;
        row.as_ref().map(session).transpose()
    }

    async fn touch_session(&self, token_hash: &[u8; 32], at_us: i64) -> Result<(), StoreError> {
        let params = [token_hash.as_slice().into(), at_us.into()];
        let _gate = self.write_gate().await;
        self.writer().execute(TOUCH_SESSION, &params).await?;
        Ok(())
    }

    async fn end_session(&self, token_hash: &[u8; 32], at_us: i64) -> Result<(), StoreError> {
        let params = [token_hash.as_slice().into(), at_us.into()];
        let _gate = self.write_gate().await;
        self.writer().execute(END_SESSION, &params).await?;
        Ok(())
    }

    async fn end_sessions_of(&self, user_id: Uuid, at_us: i64) -> Result<u64, StoreError> {
        let id = user_id.to_string();
        let params = [id.as_str().into(), at_us.into()];
        let _gate = self.write_gate().await;
        Ok(self.writer().execute(END_SESSIONS_OF, &params).await?)
    }

    async fn propose_role_change(
        &self,
        c: &RoleChange,
        audit: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        let (id, user, by) = (
            c.change_id.to_string(),
            c.user_id.to_string(),
            c.proposed_by.to_string(),
        );
        let roles = c.role_ids.join(" ");
        let params = [
            id.as_str().into(),
            user.as_str().into(),
            roles.as_str().into(),
            c.reason.as_str().into(),
            by.as_str().into(),
            c.proposed_at_us.into(),
        ];
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        tx.run().execute(INSERT_CHANGE, &params).await?;
        commit_audited(self, tx, audit).await
    }

    async fn role_change(&self, change_id: Uuid) -> Result<Option<RoleChange>, StoreError> {
        let id = change_id.to_string();
        let params = [id.as_str().into()];
        let row = self.reader().fetch_optional(CHANGE, &params).await?;
        row.as_ref().map(role_change).transpose()
    }

    async fn approve_role_change(
        &self,
        change_id: Uuid,
        approver: Uuid,
        at_us: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<RoleChange, StoreError> {
        let (id, by) = (change_id.to_string(), approver.to_string());
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        let params = [id.as_str().into()];
        let Some(row) = tx.run().fetch_optional(CHANGE, &params).await? else {
            return Err(StoreError::NotFound("role change"));
        };
        let mut change = role_change(&row)?;
        if change.approved_by.is_some() {
            return Err(StoreError::Conflict("the role change is approved already"));
        }
        if change.proposed_by == approver || change.user_id == approver {
            return Err(StoreError::Conflict(
                "four eyes: a role change is approved by another administrator than its \
                 proposer and its subject",
            ));
        }
        let params = [id.as_str().into(), by.as_str().into(), at_us.into()];
        if tx.run().execute(APPROVE_CHANGE, &params).await? != 1 {
            return Err(StoreError::Conflict(
                "the role change is no longer proposed",
            ));
        }
        replace_roles(&mut tx, change.user_id, &change.role_ids).await?;
        commit_audited(self, tx, audit).await?;
        change.approved_by = Some(approver);
        change.approved_at_us = Some(at_us);
        Ok(change)
    }

    async fn put_api_key(
        &self,
        k: &ApiKeyRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        api_keys::put_api_key(self, k, audit).await
    }

    async fn api_key_by_id(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        api_keys::api_key_by_id(self, key_id).await
    }

    async fn revoke_api_key(
        &self,
        key_id: &str,
        at_us: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        api_keys::revoke_api_key(self, key_id, at_us, audit).await
    }

    async fn api_keys_page(
        &self,
        institution: Option<&InstitutionId>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        api_keys::api_keys_page(self, institution, after, limit).await
    }

    async fn touch_api_key(&self, key_hash: &[u8; 32], at_us: i64) -> Result<(), StoreError> {
        api_keys::touch_api_key(self, key_hash, at_us).await
    }

    async fn api_key(&self, key_hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        api_keys::api_key(self, key_hash).await
    }

    async fn idempotent_answer(
        &self,
        principal: &str,
        idem_key: &str,
    ) -> Result<Option<IdempotentAnswer>, StoreError> {
        let params = [principal.into(), idem_key.into()];
        let Some(row) = self.reader().fetch_optional(IDEMPOTENT, &params).await? else {
            return Ok(None);
        };
        let status: i64 = row.get("status")?;
        Ok(Some(IdempotentAnswer {
            request_hash: hash32(
                "operator_idempotency.request_hash",
                row.get("request_hash")?,
            )?,
            status: parse("operator_idempotency.status", u16::try_from(status))?,
            body: row.get("body")?,
        }))
    }

    async fn put_idempotent_answer(
        &self,
        principal: &str,
        idem_key: &str,
        a: &IdempotentAnswer,
        at_us: i64,
    ) -> Result<bool, StoreError> {
        let params = [
            principal.into(),
            idem_key.into(),
            a.request_hash.as_slice().into(),
            i64::from(a.status).into(),
            a.body.as_str().into(),
            at_us.into(),
        ];
        let _gate = self.write_gate().await;
        Ok(self.writer().execute(PUT_IDEMPOTENT, &params).await? == 1)
    }

    async fn search_transactions(
        &self,
        q: &TransactionSearch,
    ) -> Result<Vec<StoredTransaction>, StoreError> {
        let like = q.pan_last4.as_ref().map(|d| format!("%{d}"));
        let (before_us, before_id) = q.before.unwrap_or((i64::MAX, Uuid::max()));
        let params = [
            q.visible_to.as_ref().map(InstitutionId::as_str).into(),
            q.rrn.as_deref().into(),
            q.terminal_id.as_deref().into(),
            q.from_us.unwrap_or(i64::MIN).into(),
            q.to_us.unwrap_or(i64::MAX).into(),
            q.response_code.as_deref().into(),
            like.as_deref().into(),
            before_us.into(),
            before_id.into(),
            page(q.limit).into(),
            q.card_id.into(),
        ];
        let rows = match q.card_id {
            Some(_) => {
                self.reader()
                    .fetch_all(SEARCH_CARD_TRANSACTIONS, &params)
                    .await?
            }
            None => {
                self.reader()
                    .fetch_all(SEARCH_TRANSACTIONS, &params[..10])
                    .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(with_legs(self, row).await?);
        }
        Ok(out)
    }

    async fn audit_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let params = [after_seq.into(), page(limit).into()];
        let rows = self.reader().fetch_all(AUDIT_PAGE, &params).await?;
        rows.iter().map(audit_row).collect()
    }

    async fn institution_names(&self) -> Result<Vec<InstitutionName>, StoreError> {
        console::institution_names(self).await
    }

    async fn set_institution_name_zh(
        &self,
        institution: &InstitutionId,
        name_zh: Option<&str>,
    ) -> Result<bool, StoreError> {
        console::set_institution_name_zh(self, institution, name_zh).await
    }

    async fn audit_of_subject(
        &self,
        subject: &str,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        console::audit_of_subject(self, subject, limit).await
    }

    async fn open_role_changes(&self, limit: u32) -> Result<Vec<RoleChange>, StoreError> {
        console::open_role_changes(self, limit).await
    }

    async fn reject_role_change(
        &self,
        change_id: Uuid,
        rejecter: Uuid,
        reason: &str,
        at_us: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<RoleChange, StoreError> {
        console::reject_role_change(self, change_id, rejecter, reason, at_us, audit).await
    }

    async fn outbox_lag(&self, applied_through: Option<i64>) -> Result<OutboxLag, StoreError> {
        console::outbox_lag(self, applied_through).await
    }
}

/// An audit row of `AUDIT_PAGE`'s columns.
pub(super) fn audit_row(row: &impl Columns) -> Result<AuditRow, StoreError> {
    let mac: Option<Vec<u8>> = row.get("mac")?;
    Ok(AuditRow {
        audit_seq: row.get("audit_seq")?,
        entry: AuditEntry {
            at_us: row.get("at_us")?,
            actor: row.get("actor")?,
            action: row.get("action")?,
            subject: row.get("subject")?,
            detail: row.get("detail")?,
        },
        keyed: mac.is_some(),
    })
}

/// Appends `audit` (if any) in `tx` and commits.
pub(super) async fn commit_audited<B: Backend>(
    store: &B,
    mut tx: B::Tx,
    audit: Option<&AuditEntry>,
) -> Result<(), StoreError> {
    if let Some(e) = audit {
        append_in(store, &mut tx, e).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Replaces a user's roles inside a write transaction.
async fn replace_roles<T: WriteTx>(
    tx: &mut T,
    user_id: Uuid,
    role_ids: &[String],
) -> Result<(), StoreError> {
    let id = user_id.to_string();
    let params = [id.as_str().into()];
    tx.run().execute(CLEAR_USER_ROLES, &params).await?;
    for role_id in role_ids {
        let params = [id.as_str().into(), role_id.as_str().into()];
        if tx.run().execute(ADD_USER_ROLE, &params).await.is_err() {
            return Err(StoreError::NotFound("role"));
        }
    }
    Ok(())
}
