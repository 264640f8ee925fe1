//! Data keys for PAN-at-rest encryption (envelope encryption, AES-256-GCM with `ring`).
//!
//! Why this exists: the switch stores PANs encrypted. The HSM generates a 256-bit data key and
//! returns it twice: in clear for the caller to use in memory ([`DataKey`], zeroized on drop,
//! never printed) and wrapped under the LMK ([`crate::keys::DataKeyToken`], scheme `B`) for the
//! caller to store beside the data. After a restart the caller asks the HSM to unwrap the token.
//!
//! Sealed format: 12-byte random nonce || ciphertext || 16-byte GCM tag; the caller's `aad`
//! (for example the table and column name) is authenticated but not stored.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroize;

use crate::crypto::fill_random;
use crate::error::HsmError;

/// A clear AES-256-GCM data key. `Debug` prints `****`; the raw bytes are wiped on drop.
pub struct DataKey {
    raw: [u8; 32],
    key: LessSafeKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(****)")
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.raw.zeroize();
    }
}

impl DataKey {
    /// Build from 32 clear bytes.
    pub fn from_bytes(raw: [u8; 32]) -> Result<DataKey, HsmError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| HsmError::Internal)?;
        Ok(DataKey {
            raw,
            key: LessSafeKey::new(unbound),
        })
    }

    /// Build from a 32-byte slice (error 27 for any other length); the caller's bytes are
    /// copied into the key, and the intermediate copy is wiped.
    pub fn from_slice(raw: &[u8]) -> Result<DataKey, HsmError> {
        let mut bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| HsmError::IncompatibleKeyLength)?;
        let key = DataKey::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// HMAC-SHA-256 of `data` under this key (RFC 2104): a deterministic, keyed lookup hash,
    /// e.g. of a PAN, that cannot be reversed or recomputed without the key.
    pub fn keyed_hash(&self, data: &[u8]) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.raw);
        let tag = ring::hmac::sign(&key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Encrypt `plaintext`; returns nonce || ciphertext || tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, HsmError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| HsmError::Internal)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypt what [`DataKey::seal`] produced (error 01 when the tag or `aad` does not match).
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, HsmError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(HsmError::DataLength);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        let mut body = sealed[NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| HsmError::VerificationFailed)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let k = DataKey::from_bytes([7u8; 32]).expect("key");
        let sealed = k.seal(b"6228480402564890018", b"cards.pan").expect("seal");
        assert_eq!(sealed.len(), 12 + 19 + 16);
        assert_eq!(
            k.open(&sealed, b"cards.pan").expect("open"),
            b"6228480402564890018"
        );
        assert_eq!(k.open(&sealed, b"other"), Err(HsmError::VerificationFailed));
        assert_eq!(
            k.open(&sealed[..10], b"cards.pan"),
            Err(HsmError::DataLength)
        );
        assert_ne!(k.seal(b"x", b"").expect("s"), k.seal(b"x", b"").expect("s"));
        assert_eq!(format!("{k:?}"), "DataKey(****)");
    }
}
