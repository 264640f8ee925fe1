//! The operator API's keys, both HSM data keys (the PAN protector's approach,
//! `store::pan_protector`): their LMK tokens are in the configuration (`[operator]`), the
//! clear keys only in this process's memory, unwrapped by the HSM at start.
//!
//! - the secret key seals each operator's TOTP secret (AES-256-GCM, bound to the user's id
//!   by the associated data, so a sealed secret copied to another user does not open);
//! - the audit key MACs every audit entry (`store::audit`), installed on the store.

use super::totp::TotpSecret;
use hsm_sim::datakey::DataKey;
use uuid::Uuid;

/// Why a TOTP secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretSealError {
    /// Sealing failed (the random generator).
    #[error("sealing the TOTP secret failed")]
    Seal,
    /// The sealed secret is not this user's, was made under another key, or was changed.
    #[error("the sealed TOTP secret does not open")]
    Open,
}

/// The key sealing operators' TOTP secrets.
pub struct SecretKey(DataKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(****)")
    }
}

/// Associated data of a user's sealed secret.
fn aad(user_id: Uuid) -> Vec<u8> {
    let mut out = b"operator_user.totp_sealed:".to_vec();
    out.extend_from_slice(user_id.as_bytes());
    out
}

impl SecretKey {
    /// From the data key the HSM unwrapped.
    pub fn new(key: DataKey) -> Self {
        Self(key)
    }

    /// A fixed, publicly known key: tests and the demo only.
    pub fn for_tests() -> Self {
        Self(DataKey::from_bytes(TEST_SECRET_KEY).unwrap_or_else(|_| unreachable!("32-byte key")))
    }

    /// Seals `user_id`'s secret.
    pub fn seal(&self, user_id: Uuid, secret: &TotpSecret) -> Result<Vec<u8>, SecretSealError> {
        self.0
            .seal(secret.expose(), &aad(user_id))
            .map_err(|_| SecretSealError::Seal)
    }

    /// Opens `user_id`'s sealed secret.
    pub fn open(&self, user_id: Uuid, sealed: &[u8]) -> Result<TotpSecret, SecretSealError> {
        let clear = self
            .0
            .open(sealed, &aad(user_id))
            .map_err(|_| SecretSealError::Open)?;
        let secret = TotpSecret::from_bytes(&clear).ok_or(SecretSealError::Open);
        let mut clear = clear;
        clear.iter_mut().for_each(|b| *b = 0);
        secret
    }
}

/// The secret key of [`SecretKey::for_tests`], publicly known: tests and the demo only.
pub const TEST_SECRET_KEY: [u8; 32] = [0x5e; 32];
/// The audit MAC key of [`audit_key_for_tests`], publicly known: tests and the demo only.
pub const TEST_AUDIT_KEY: [u8; 32] = [0xa7; 32];

/// A fixed audit MAC key: tests and the demo only.
pub fn audit_key_for_tests() -> DataKey {
    DataKey::from_bytes(TEST_AUDIT_KEY).unwrap_or_else(|_| unreachable!("32-byte key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_key() {
        let k = SecretKey::for_tests();
        let s = TotpSecret::generate().unwrap();
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = k.seal(alice, &s).unwrap();
        assert!(!sealed
            .windows(8)
            .any(|w| s.expose().windows(8).any(|x| x == w)));
        assert_eq!(k.open(alice, &sealed), Ok(s));
        assert_eq!(k.open(bob, &sealed), Err(SecretSealError::Open));
        let other = SecretKey::new(DataKey::from_bytes([1; 32]).unwrap());
        assert_eq!(other.open(alice, &sealed), Err(SecretSealError::Open));
        assert_eq!(format!("{k:?}"), "SecretKey(****)");
    }
}
