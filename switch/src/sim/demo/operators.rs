//! The demo's operators: one user per built-in role (and a second administrator, so a role
//! change can be approved by four eyes), each with a fixed password and TOTP secret that
//! `switch demo --describe` prints. DEMO ONLY: these credentials are public.

use crate::operator::keys::SecretKey;
use crate::operator::password::Password;
use crate::operator::provision;
use crate::operator::token::hash_presented;
use crate::operator::totp::TotpSecret;
use crate::sim::world::DemoWorld;
use crate::store::operator::ApiKeyRecord;
use crate::store::{now_us, Store, StoreError};
use ring::digest::{digest, SHA256};
use schemas::domain::InstitutionId;

/// A demo operator: username, role, and which of the world's institutions it belongs to.
pub struct DemoOperator {
    /// Login name (also the password's stem).
    pub username: &'static str,
    /// Its built-in role.
    pub role_id: &'static str,
    /// Its institution.
    pub institution: InstitutionId,
}

/// The demo's operators in `world`.
pub fn demo_operators(world: &DemoWorld) -> Vec<DemoOperator> {
    let switch = world.cfg.switch_id.clone();
    let bureau = world.cfg.social_security_fund.clone();
    let hospital = world
        .hospitals
        .first()
        .map(|h| h.id.clone())
        .unwrap_or_else(|| switch.clone());
    let bank = world
        .banks
        .first()
        .map(|b| b.id.clone())
        .unwrap_or_else(|| switch.clone());
    let op = |username, role_id, institution: &InstitutionId| DemoOperator {
        username,
        role_id,
        institution: institution.clone(),
    };
    vec![
        op("demo-issuance", "issuance_operator", &bureau),
        op("demo-clerk", "counter_clerk", &bureau),
        op("demo-cashier", "hospital_cashier", &hospital),
        op("demo-bank", "bank_operator", &bank),
        op("demo-clearing", "clearing_analyst", &switch),
        op("demo-auditor", "auditor", &switch),
        op("demo-admin", "administrator", &switch),
        op("demo-admin2", "administrator", &switch),
    ]
}

impl DemoOperator {
    /// The demo password (public).
    pub fn password(&self) -> String {
        format!("{}-password", self.username)
    }

    /// The demo TOTP secret (public): the first 20 bytes of SHA-256 of the username.
    pub fn totp(&self) -> TotpSecret {
        let h = digest(
            &SHA256,
            format!("switch demo totp {}", self.username).as_bytes(),
        );
        TotpSecret::from_bytes(&h.as_ref()[..20])
            .unwrap_or_else(|| unreachable!("20 bytes of a 32-byte digest"))
    }
}

/// The demo's API key for machine clients (`Authorization: Bearer ...`): the switch's
/// institution, role `auditor` (read-only, `/metrics` included). DEMO ONLY: public.
pub const DEMO_API_KEY: &str = "demo-api-key-0000000000000000000000000000000000000000000000000000";

/// Creates the demo operators with their roles (directly: the demo has no four eyes to wait
/// for).
pub async fn seed_operators<S: Store>(
    store: &S,
    secrets: &SecretKey,
    world: &DemoWorld,
) -> Result<(), StoreError> {
    provision::ensure_builtin_roles(store).await?;
    for op in demo_operators(world) {
        let created = provision::create_user(
            store,
            secrets,
            op.username,
            &op.institution,
            Some(Password::new(op.password())),
            Some(op.totp()),
            |_| None,
        )
        .await;
        let user = match created {
            Ok((user, _)) => user,
            Err(provision::ProvisionError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, username = op.username, "demo operator");
                return Err(StoreError::Conflict("a demo operator could not be created"));
            }
        };
        store
            .set_user_roles(user.user_id, &[op.role_id.to_owned()], None)
            .await?;
    }
    store
        .put_api_key(
            &ApiKeyRecord {
                key_hash: hash_presented(DEMO_API_KEY),
                key_id: "demo-api-key".into(),
                institution: world.cfg.switch_id.clone(),
                role_id: "auditor".into(),
                name: "demo scraper (DEMO ONLY)".into(),
                created_at_us: now_us(),
                revoked_at_us: None,
                last_used_at_us: None,
                counter_id: None,
            },
            None,
        )
        .await
}

/// The `--describe` lines of the demo operators.
pub fn describe_operators(world: &DemoWorld) -> String {
    let mut s = String::from(
        "DEMO OPERATORS - DEMO ONLY, public credentials (POST /session with username, password \
         and the TOTP code of the secret, RFC 6238 SHA-1/30 s/6 digits):\n",
    );
    for op in demo_operators(world) {
        s.push_str(&format!(
            "  {:<14} role {:<18} institution {:<9} password {:<24} TOTP secret {}\n",
            op.username,
            op.role_id,
            op.institution.as_str(),
            op.password(),
            op.totp().to_base32()
        ));
    }
    s.push_str(&format!(
        "  API key (role auditor, switch institution; e.g. for /metrics): Authorization: Bearer {DEMO_API_KEY}\n"
    ));
    s
}
