//! The CLI's administrative subcommands on a node's configuration (the same store and HSM as
//! `switch serve`): `switch audit verify` and `switch users bootstrap-admin`.

use super::{hsm_of, open_store, operator_context, ConfigError, NodeConfig};
use crate::operator::audit::{self as op_audit, action, Event};
use crate::operator::caller::SourceAddr;
use crate::operator::provision::{self, ProvisionError};
use crate::store::{Institution, InstitutionKind, Store};
use schemas::domain::InstitutionId;
use std::path::Path;

/// `switch audit verify`: checks the audit chain and, with `[operator]`'s key, every MAC.
/// Ok: the count; Err: the first broken entry.
pub async fn audit_verify(path: &Path) -> Result<String, ConfigError> {
    let cfg = NodeConfig::load(path)?;
    let hsm = hsm_of(&cfg)?;
    let keyed = cfg.operator.is_some();
    let opened = open_store(&cfg, &*hsm).await?;
    let n = crate::on_store!(opened, |s| s.verify_audit_chain().await)?;
    Ok(if keyed {
        format!("audit log verified: {n} entries, chain and MACs")
    } else {
        format!("audit log verified: {n} entries, chain only (no [operator] audit_mac_key)")
    })
}

/// `switch users bootstrap-admin`: the first administrator of a node with no user yet, with
/// a one-time password and TOTP secret, printed once.
pub async fn bootstrap_admin(
    path: &Path,
    username: &str,
    institution: &str,
) -> Result<String, ConfigError> {
    let cfg = NodeConfig::load(path)?;
    let hsm = hsm_of(&cfg)?;
    let ctx = operator_context(&cfg, &*hsm).await?;
    let institution = InstitutionId::parse(institution)
        .map_err(|_| ConfigError::Invalid("--institution is not an institution id".into()))?;
    let opened = open_store(&cfg, &*hsm).await?;
    let own = InstitutionId::parse(&cfg.switch.institution).map_err(|_| {
        ConfigError::Invalid("[switch] institution is not an institution id".into())
    })?;
    crate::on_store!(opened, |s| {
        ensure_own_institution(&*s, &own).await?;
        bootstrap_on(&*s, &ctx, username, &institution).await
    })
}

/// The switch's own institution (kind `switch`, which sees every tenant), added when the store
/// does not have it yet: the first administrator usually belongs to it.
async fn ensure_own_institution<S: Store>(
    store: &S,
    own: &InstitutionId,
) -> Result<(), ConfigError> {
    if !store
        .institutions()
        .await?
        .iter()
        .any(|i| i.institution_id == *own)
    {
        store
            .upsert_institution(&Institution {
                institution_id: own.clone(),
                name: "switch".into(),
                kind: InstitutionKind::Switch,
            })
            .await?;
    }
    Ok(())
}

async fn bootstrap_on<S: Store>(
    store: &S,
    ctx: &crate::operator::OperatorContext,
    username: &str,
    institution: &InstitutionId,
) -> Result<String, ConfigError> {
    provision::ensure_builtin_roles(store).await?;
    if !store.users_page(None, None, 1).await?.is_empty() {
        return Err(ConfigError::Invalid(
            "the store has users already: the first administrator is bootstrapped once; further \
             users come through the API (POST /users and a four-eyes role change)"
                .into(),
        ));
    }
    let (user, first) =
        provision::create_user(store, &ctx.secrets, username, institution, None, None)
            .await
            .map_err(|e| match e {
                ProvisionError::Store(e) => ConfigError::Store(e),
                e => ConfigError::Invalid(e.to_string()),
            })?;
    store
        .set_user_roles(user.user_id, &["administrator".to_owned()])
        .await?;
    let source = SourceAddr("cli".into());
    let e = Event {
        actor: "cli:bootstrap-admin".into(),
        action: action::USER_CREATE,
        subject: format!("user:{}", user.user_id),
        source: &source,
        reason: Some("first administrator (switch users bootstrap-admin)"),
        detail: serde_json::json!({
            "institution": institution.as_str(),
            "username": user.username,
            "roles": ["administrator"],
        }),
    };
    op_audit::record(store, e)
        .await
        .map_err(|p| ConfigError::Invalid(format!("audit: {}", p.detail)))?;
    Ok(format!(
        "administrator {} ({}) of {} created.\n\
         ONE-TIME password: {}\n\
         TOTP secret (RFC 6238, SHA-1, 30 s, 6 digits; add it to an authenticator app): {}\n\
         Shown once: neither is stored in clear. Change the password after the first login.\n",
        user.username,
        user.user_id,
        institution.as_str(),
        first.password.expose(),
        first.totp.to_base32()
    ))
}
