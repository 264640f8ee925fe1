//! Test fixtures of the operator API: more tenants beside `testkit`'s (the switch's own
//! institution, a second hospital and a second bank), API keys and users with roles, and the
//! current TOTP code of a secret. Tests and the demo only.

use crate::operator::keys::SecretKey;
use crate::operator::password::Password;
use crate::operator::provision::{self, FirstSecrets, ProvisionError};
use crate::operator::token::Token;
use crate::operator::totp::{TotpSecret, TOTP_DIGITS};
use crate::sim::testkit::inst;
use crate::store::operator::{ApiKeyRecord, OperatorUser};
use crate::store::{now_us, Institution, InstitutionKind, Store, StoreError};

/// The switch's own institution (sees everything).
pub const SWITCH: &str = "3100000";
/// A hospital other than `testkit`'s.
pub const OTHER_HOSPITAL: &str = "3100002";
/// A bank other than `testkit`'s.
pub const OTHER_BANK: &str = "01030000";

/// Adds the switch's institution, a second hospital and a second bank, and the built-in roles.
pub async fn seed_tenants<S: Store>(store: &S) -> Result<(), StoreError> {
    for (id, name, kind) in [
        (SWITCH, "The switch", InstitutionKind::Switch),
        (OTHER_HOSPITAL, "Other Hospital", InstitutionKind::Hospital),
        (OTHER_BANK, "Other Bank", InstitutionKind::Bank),
    ] {
        store
            .upsert_institution(&Institution {
                institution_id: inst(id),
                name: name.into(),
                kind,
            })
            .await?;
    }
    provision::ensure_builtin_roles(store).await
}

/// A new API key of `institution` with `role_id`; returns the key in clear.
pub async fn api_key<S: Store>(
    store: &S,
    institution: &str,
    role_id: &str,
) -> Result<String, StoreError> {
    let key = Token::generate().ok_or(StoreError::Conflict("the random generator failed"))?;
    store
        .put_api_key(
            &ApiKeyRecord {
                key_hash: key.hash(),
                key_id: format!("key-{}", uuid::Uuid::now_v7()),
                institution: inst(institution),
                role_id: role_id.into(),
                name: format!("{role_id} of {institution}"),
                created_at_us: now_us(),
                revoked_at_us: None,
                last_used_at_us: None,
                counter_id: None,
            },
            None,
        )
        .await?;
    Ok(key.expose().to_owned())
}

/// A user of `institution` holding `roles` (set directly), with `password`.
pub async fn user<S: Store>(
    store: &S,
    secrets: &SecretKey,
    username: &str,
    institution: &str,
    roles: &[&str],
    password: &str,
) -> Result<(OperatorUser, FirstSecrets), ProvisionError> {
    let (user, first) = provision::create_user(
        store,
        secrets,
        username,
        &inst(institution),
        Some(Password::new(password.into())),
        None,
        |_| None,
    )
    .await?;
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    store.set_user_roles(user.user_id, &roles, None).await?;
    Ok((user, first))
}

/// The code an authenticator app shows at the next time step: accepted now too (one step of
/// drift), and later than a step already used, as a second login of the same user needs (a
/// code is accepted once, RFC 6238 §5.2).
pub fn totp_next(secret: &TotpSecret) -> String {
    let now = u64::try_from(now_us() / 1_000_000).unwrap_or(0);
    format!(
        "{:0width$}",
        secret.code_at(now + crate::operator::totp::TOTP_STEP_S, TOTP_DIGITS),
        width = TOTP_DIGITS as usize
    )
}

/// The code an authenticator app showed at the previous time step: still accepted (one step of
/// drift), and earlier than the current and next steps, so a test that logs the same user in
/// three times uses the previous, the current and the next code in turn.
pub fn totp_previous(secret: &TotpSecret) -> String {
    let now = u64::try_from(now_us() / 1_000_000).unwrap_or(0);
    format!(
        "{:0width$}",
        secret.code_at(
            now.saturating_sub(crate::operator::totp::TOTP_STEP_S),
            TOTP_DIGITS
        ),
        width = TOTP_DIGITS as usize
    )
}

/// The code an authenticator app shows now.
pub fn totp_now(secret: &TotpSecret) -> String {
    let now = u64::try_from(now_us() / 1_000_000).unwrap_or(0);
    format!(
        "{:0width$}",
        secret.code_at(now, TOTP_DIGITS),
        width = TOTP_DIGITS as usize
    )
}
