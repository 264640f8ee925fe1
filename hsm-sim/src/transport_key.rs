//! Data-key transport: a data key leaves the HSM only sealed for the one caller that asked.
//!
//! Why this exists: the switch keeps its PAN-protection keys as LMK tokens and needs them in its
//! own memory to hash and seal PANs at transaction speed. Fetching them with XO sent the clear key
//! over the HSM link (issue 24, finding 4). Here the caller makes an ephemeral X25519 key pair
//! (RFC 7748) and sends its public key with the request; the HSM makes its own ephemeral pair,
//! derives a key-encryption key from the shared secret with HKDF-SHA-256 (RFC 5869; salt
//! [`KDF_SALT`], info = caller public key ‖ HSM public key) and returns its public key and the
//! data key sealed with AES-256-GCM under that key-encryption key, the key's LMK token as
//! associated data. Someone who records the link learns nothing of the data key; both private
//! keys live for one request and are never stored.
//!
//! This protects against a reader of the link, not against an active party in the middle
//! (nothing here authenticates the HSM's public key): that is what mutual TLS on the HSM link is
//! for. Host commands XS (new key) and XW (stored key) carry it, see [`crate::commands`].

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf;
use ring::rand::SystemRandom;
use zeroize::Zeroize;

use crate::datakey::DataKey;
use crate::error::HsmError;

/// Length of an X25519 public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a sealed data key in bytes: nonce (12) ‖ ciphertext (32) ‖ GCM tag (16).
pub const SEALED_KEY_LEN: usize = 12 + 32 + 16;
/// HKDF salt: names the scheme and its version.
pub const KDF_SALT: &[u8] = b"hsm-sim data key transport v1";

/// A public key as sent on the wire.
pub type PublicKey = [u8; PUBLIC_KEY_LEN];

/// HKDF output length for the key-encryption key.
struct KekLen;

impl hkdf::KeyType for KekLen {
    fn len(&self) -> usize {
        32
    }
}

/// The key-encryption key both sides derive from the shared secret.
fn derive_kek(secret: &[u8], caller: &PublicKey, hsm: &PublicKey) -> Result<DataKey, HsmError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, KDF_SALT).extract(secret);
    let info = [&caller[..], &hsm[..]];
    let okm = prk.expand(&info, KekLen).map_err(|_| HsmError::Internal)?;
    let mut raw = [0u8; 32];
    let kek = okm
        .fill(&mut raw)
        .map_err(|_| HsmError::Internal)
        .and_then(|()| DataKey::from_slice(&raw));
    raw.zeroize();
    kek
}

fn ephemeral() -> Result<(EphemeralPrivateKey, PublicKey), HsmError> {
    let private = EphemeralPrivateKey::generate(&X25519, &SystemRandom::new())
        .map_err(|_| HsmError::Internal)?;
    let public = private
        .compute_public_key()
        .map_err(|_| HsmError::Internal)?
        .as_ref()
        .try_into()
        .map_err(|_| HsmError::Internal)?;
    Ok((private, public))
}

/// The caller's side: an ephemeral key pair for one transfer.
pub struct TransportKeyPair {
    private: EphemeralPrivateKey,
    public: PublicKey,
}

impl std::fmt::Debug for TransportKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportKeyPair(****)")
    }
}

impl TransportKeyPair {
    /// A fresh pair.
    pub fn generate() -> Result<TransportKeyPair, HsmError> {
        let (private, public) = ephemeral()?;
        Ok(TransportKeyPair { private, public })
    }

    /// The public key to send with the request.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Open a data key sealed for this pair by [`seal_for`] (the pair is used up). Error 01
    /// when the seal, the HSM's public key or `aad` does not match.
    pub fn open(self, hsm: &PublicKey, sealed: &[u8], aad: &[u8]) -> Result<DataKey, HsmError> {
        let caller = self.public;
        let peer = UnparsedPublicKey::new(&X25519, hsm);
        let kek = agreement::agree_ephemeral(self.private, &peer, |secret| {
            derive_kek(secret, &caller, hsm)
        })
        .map_err(|_| HsmError::VerificationFailed)??;
        let mut raw = kek.open(sealed, aad)?;
        let key = DataKey::from_slice(&raw);
        raw.zeroize();
        key
    }
}

/// The HSM's side: seal the clear data key `key` for the holder of `caller`'s private key.
/// Returns the HSM's ephemeral public key and the sealed key ([`SEALED_KEY_LEN`] bytes).
pub fn seal_for(
    caller: &PublicKey,
    key: &[u8],
    aad: &[u8],
) -> Result<(PublicKey, Vec<u8>), HsmError> {
    let (private, hsm) = ephemeral()?;
    let peer = UnparsedPublicKey::new(&X25519, caller);
    let kek = agreement::agree_ephemeral(private, &peer, |secret| derive_kek(secret, caller, &hsm))
        .map_err(|_| HsmError::InvalidInput)??;
    Ok((hsm, kek.seal(key, aad)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_for_its_pair_and_token() {
        let key = [0x5A; 32];
        let pair = TransportKeyPair::generate().expect("pair");
        let (hsm, sealed) = seal_for(pair.public_key(), &key, b"B1234").expect("seal");
        assert_eq!(sealed.len(), SEALED_KEY_LEN);
        assert!(!sealed.windows(32).any(|w| w == key));
        let opened = pair.open(&hsm, &sealed, b"B1234").expect("open");
        assert_eq!(
            opened.keyed_hash(b"x"),
            DataKey::from_bytes(key).expect("key").keyed_hash(b"x")
        );

        let other = TransportKeyPair::generate().expect("pair");
        assert_eq!(
            other.open(&hsm, &sealed, b"B1234").map(drop),
            Err(HsmError::VerificationFailed)
        );
        let pair = TransportKeyPair::generate().expect("pair");
        let (hsm, sealed) = seal_for(pair.public_key(), &key, b"B1234").expect("seal");
        assert_eq!(
            pair.open(&hsm, &sealed, b"B9999").map(drop),
            Err(HsmError::VerificationFailed)
        );
        assert_eq!(
            format!("{:?}", TransportKeyPair::generate().expect("p")),
            "TransportKeyPair(****)"
        );
    }
}
