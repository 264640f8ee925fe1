//! Creating operators, the same for the API (`POST /users`), the first administrator
//! (`switch users bootstrap-admin`) and the demo's users: a username checked, a one-time
//! password (generated unless given) hashed with argon2id, a TOTP secret generated and sealed.
//! The clear password and secret are returned once, to be shown once.
//!
//! New users hold no role: roles come through a four-eyes role change, except for the first
//! administrator (nobody could approve) and the demo's users, set directly.

use super::keys::SecretKey;
use super::password::{Password, PasswordError};
use super::permission::builtin_roles;
use super::totp::TotpSecret;
use crate::store::operator::OperatorUser;
use crate::store::{now_us, AuditEntry, Store, StoreError};
use schemas::domain::InstitutionId;
use uuid::Uuid;

/// Longest username.
pub const USERNAME_LEN_MAX_BYTES: usize = 64;

/// Why a user was not created.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The username is not 1 to 64 of `a-z 0-9 . _ - @`.
    #[error(
        "a username is 1 to {USERNAME_LEN_MAX_BYTES} characters of a-z, 0-9, '.', '_', '-', '@'"
    )]
    Username,
    /// The institution does not exist.
    #[error("no such institution")]
    Institution,
    /// The password.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The TOTP secret could not be made or sealed.
    #[error("the TOTP secret could not be made or sealed")]
    Secret,
    /// The store (a taken username is `Conflict`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new user's one-time secrets, to show once.
#[derive(Debug)]
pub struct FirstSecrets {
    /// The password for the first login.
    pub password: Password,
    /// The TOTP secret for the authenticator app.
    pub totp: TotpSecret,
}

/// Whether `name` is a valid username.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= USERNAME_LEN_MAX_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b))
}

/// Writes the built-in roles (at every start: their permissions follow the code).
pub async fn ensure_builtin_roles<S: Store>(store: &S) -> Result<(), StoreError> {
    for role in builtin_roles(now_us()) {
        store.put_role(&role, true, None).await?;
    }
    Ok(())
}

/// Creates a user of `institution` with `password` (or a generated one) and a new TOTP
/// secret (or `totp`, for the demo's fixed ones); `audit` makes the creation's audit entry,
/// appended in the same transaction (None: a fixture's or the demo's user).
pub async fn create_user<S: Store>(
    store: &S,
    secrets: &SecretKey,
    username: &str,
    institution: &InstitutionId,
    password: Option<Password>,
    totp: Option<TotpSecret>,
    audit: impl FnOnce(&OperatorUser) -> Option<AuditEntry> + Send,
) -> Result<(OperatorUser, FirstSecrets), ProvisionError> {
    if !valid_username(username) {
        return Err(ProvisionError::Username);
    }
    let known = store.institutions().await?;
    if !known.iter().any(|i| i.institution_id == *institution) {
        return Err(ProvisionError::Institution);
    }
    let password = match password {
        Some(p) => {
            p.check_new()?;
            p
        }
        None => Password::generate()?,
    };
    let totp = match totp {
        Some(t) => t,
        None => TotpSecret::generate().ok_or(ProvisionError::Secret)?,
    };
    let user_id = Uuid::now_v7();
    let user = OperatorUser {
        user_id,
        username: username.to_owned(),
        institution: institution.clone(),
        password_hash: password.hash()?,
        totp_sealed: secrets
            .seal(user_id, &totp)
            .map_err(|_| ProvisionError::Secret)?,
        failed_logins: 0,
        locked_until_us: None,
        created_at_us: now_us(),
    };
    let entry = audit(&user);
    store.create_user(&user, entry.as_ref()).await?;
    Ok((user, FirstSecrets { password, totp }))
}
