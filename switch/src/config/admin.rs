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

/// The institutions the configuration names (the switch, the two funds, every `[[hospital]]`
/// and `[[bank]]`), each added with its kind when the store does not have it yet (a name or kind
/// set since is kept): the CMS refuses an application whose bank is not an institution, and an
/// operator belongs to one.
pub(crate) async fn ensure_configured_institutions<S: Store>(
    store: &S,
    cfg: &super::NodeConfig,
) -> Result<usize, ConfigError> {
    let mut wanted: Vec<(&str, InstitutionKind)> = vec![
        (cfg.switch.institution.as_str(), InstitutionKind::Switch),
        (
            cfg.switch.insurance_fund.as_str(),
            InstitutionKind::InsuranceFund,
        ),
        (
            cfg.switch.social_security_fund.as_str(),
            InstitutionKind::SocialSecurityFund,
        ),
    ];
    wanted.extend(
        cfg.hospitals
            .iter()
            .map(|h| (h.institution.as_str(), InstitutionKind::Hospital)),
    );
    wanted.extend(
        cfg.banks
            .iter()
            .map(|b| (b.institution.as_str(), InstitutionKind::Bank)),
    );
    let mut known: std::collections::HashSet<InstitutionId> = store
        .institutions()
        .await?
        .into_iter()
        .map(|i| i.institution_id)
        .collect();
    let mut added = 0;
    for (id, kind) in wanted {
        let id = InstitutionId::parse(id)
            .map_err(|_| ConfigError::Invalid(format!("institution id {id:?}")))?;
        if !known.insert(id.clone()) {
            continue;
        }
        store
            .upsert_institution(&Institution {
                name: format!("{} {}", kind.as_sql(), id.as_str()),
                institution_id: id,
                kind,
            })
            .await?;
        added += 1;
    }
    Ok(added)
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
    let (user, first) = provision::create_user(
        store,
        &ctx.secrets,
        username,
        institution,
        None,
        None,
        |_| None,
    )
    .await
    .map_err(|e| match e {
        ProvisionError::Store(e) => ConfigError::Store(e),
        e => ConfigError::Invalid(e.to_string()),
    })?;
    // The entry commits with the administrator's role: a user without it can do nothing.
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
    store
        .set_user_roles(
            user.user_id,
            &["administrator".to_owned()],
            Some(&op_audit::entry(e)),
        )
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_configured_institutions_are_added_once_with_their_kinds() {
        let text = include_str!("../../../ops/switch.example.toml");
        let cfg: NodeConfig = toml::from_str(text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(
            &crate::store::SqliteConfig::new(dir.path().join("s.db")),
            std::sync::Arc::new(crate::store::DataKeyPanProtector::for_tests()),
        )
        .await
        .unwrap();
        let hospitals: std::collections::HashSet<&str> = cfg
            .hospitals
            .iter()
            .map(|h| h.institution.as_str())
            .collect();
        let added = ensure_configured_institutions(&store, &cfg).await.unwrap();
        assert_eq!(added, 3 + hospitals.len() + cfg.banks.len());
        let all = store.institutions().await.unwrap();
        let kind = |id: &str| {
            all.iter()
                .find(|i| i.institution_id.as_str() == id)
                .map(|i| i.kind)
        };
        assert_eq!(kind("4101000"), Some(InstitutionKind::Switch));
        assert_eq!(kind("4101008"), Some(InstitutionKind::SocialSecurityFund));
        assert_eq!(kind("01030000"), Some(InstitutionKind::Bank));
        assert_eq!(
            ensure_configured_institutions(&store, &cfg).await.unwrap(),
            0
        );
    }
}
