//! PAN protection at rest: a keyed hash to look cards up, and authenticated encryption of the
//! PAN itself (docs/design.md, "Security model").
//!
//! The store never sees a data key: it asks a [`PanProtector`]. In production the keys come
//! from the HSM (a data key and a hash key, released encrypted under the LMK and unwrapped in
//! memory); [`DataKeyPanProtector`] implements the operations with `ring` (HMAC-SHA-256 and
//! AES-256-GCM) given those keys, and [`DataKeyPanProtector::for_tests`] uses fixed keys.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use schemas::domain::Pan;

/// Format version byte of a sealed PAN (lets the key or algorithm change later).
const SEALED_V1: u8 = 1;

/// Why a PAN could not be sealed or opened. Never carries PAN digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PanProtectError {
    /// The random nonce could not be generated.
    #[error("random generator failed")]
    Random,
    /// Encryption failed.
    #[error("seal failed")]
    Seal,
    /// The ciphertext is malformed, was made with another key, or was tampered with.
    #[error("sealed PAN does not open")]
    Open,
}

/// Hashes and encrypts PANs for storage.
pub trait PanProtector: Send + Sync + 'static {
    /// Deterministic keyed hash used as the lookup key (`card.pan_hash`).
    fn lookup_hash(&self, pan: &Pan) -> [u8; 32];
    /// Encrypts the PAN (`card.pan_ciphertext`).
    fn seal(&self, pan: &Pan) -> Result<Vec<u8>, PanProtectError>;
    /// Decrypts a sealed PAN.
    fn open(&self, sealed: &[u8]) -> Result<Pan, PanProtectError>;
    /// Encrypts other cardholder data under the same data key (a closed personalisation file:
    /// PANs and names beside its encrypted keys); `label` binds it to its column.
    fn seal_data(&self, clear: &[u8], label: &'static [u8]) -> Result<Vec<u8>, PanProtectError>;
    /// Decrypts what [`PanProtector::seal_data`] sealed under `label`.
    fn open_data(&self, sealed: &[u8], label: &'static [u8]) -> Result<Vec<u8>, PanProtectError>;
}

/// The lookup-hash key of [`DataKeyPanProtector::for_tests`], publicly known: tests and the
/// demo only (the demo's `switch serve` configuration wraps it under the test LMK).
pub const TEST_HASH_KEY: [u8; 32] = [0x11; 32];
/// The data key of [`DataKeyPanProtector::for_tests`], publicly known: tests and the demo only.
pub const TEST_DATA_KEY: [u8; 32] = [0x22; 32];

/// PAN protection with an HMAC-SHA-256 hash key and an AES-256-GCM data key held in memory.
pub struct DataKeyPanProtector {
    hash_key: hmac::Key,
    data_key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for DataKeyPanProtector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKeyPanProtector(****)")
    }
}

impl DataKeyPanProtector {
    /// Builds from a 32-byte hash key and a 32-byte AES-256 data key.
    pub fn new(hash_key: &[u8; 32], data_key: &[u8; 32]) -> Result<Self, PanProtectError> {
        let unbound = UnboundKey::new(&AES_256_GCM, data_key).map_err(|_| PanProtectError::Seal)?;
        Ok(Self {
            hash_key: hmac::Key::new(hmac::HMAC_SHA256, hash_key),
            data_key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// Fixed, publicly known keys: tests and the demo only.
    pub fn for_tests() -> Self {
        Self::new(&TEST_HASH_KEY, &TEST_DATA_KEY)
            .unwrap_or_else(|_| unreachable!("32-byte AES key"))
    }
}

impl PanProtector for DataKeyPanProtector {
    fn lookup_hash(&self, pan: &Pan) -> [u8; 32] {
        let tag = hmac::sign(&self.hash_key, pan.expose_digits().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn seal(&self, pan: &Pan) -> Result<Vec<u8>, PanProtectError> {
        self.seal_with(pan.expose_digits().as_bytes(), &[SEALED_V1])
    }

    fn open(&self, sealed: &[u8]) -> Result<Pan, PanProtectError> {
        let clear = self.open_with(sealed, &[SEALED_V1])?;
        let digits = std::str::from_utf8(&clear).map_err(|_| PanProtectError::Open)?;
        Pan::parse(digits).map_err(|_| PanProtectError::Open)
    }

    fn seal_data(&self, clear: &[u8], label: &'static [u8]) -> Result<Vec<u8>, PanProtectError> {
        self.seal_with(clear, label)
    }

    fn open_data(&self, sealed: &[u8], label: &'static [u8]) -> Result<Vec<u8>, PanProtectError> {
        self.open_with(sealed, label)
    }
}

impl DataKeyPanProtector {
    /// `SEALED_V1 || nonce || AES-256-GCM(clear, aad)`.
    fn seal_with(&self, clear: &[u8], aad: &[u8]) -> Result<Vec<u8>, PanProtectError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| PanProtectError::Random)?;
        let mut buf = clear.to_vec();
        self.data_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| PanProtectError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    fn open_with(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, PanProtectError> {
        let (version, rest) = sealed.split_first().ok_or(PanProtectError::Open)?;
        if *version != SEALED_V1 || rest.len() < NONCE_LEN {
            return Err(PanProtectError::Open);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| PanProtectError::Open)?;
        let mut buf = ciphertext.to_vec();
        let clear = self
            .data_key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| PanProtectError::Open)?;
        Ok(clear.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pan() -> Pan {
        Pan::parse("6228480012345678").unwrap()
    }

    #[test]
    fn a_sealed_pan_opens_to_the_same_pan_and_hides_the_digits() {
        let p = DataKeyPanProtector::for_tests();
        let sealed = p.seal(&pan()).unwrap();
        assert!(!sealed
            .windows(16)
            .any(|w| w == pan().expose_digits().as_bytes()));
        assert_eq!(p.open(&sealed).unwrap(), pan());
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts_but_the_same_lookup_hash() {
        let p = DataKeyPanProtector::for_tests();
        assert_ne!(p.seal(&pan()).unwrap(), p.seal(&pan()).unwrap());
        assert_eq!(p.lookup_hash(&pan()), p.lookup_hash(&pan()));
        let other = Pan::parse("6228480012345679").unwrap();
        assert_ne!(p.lookup_hash(&pan()), p.lookup_hash(&other));
    }

    #[test]
    fn tampered_or_foreign_ciphertext_does_not_open() {
        let p = DataKeyPanProtector::for_tests();
        let mut sealed = p.seal(&pan()).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(p.open(&sealed), Err(PanProtectError::Open));
        let other = DataKeyPanProtector::new(&[0x11; 32], &[0x33; 32]).unwrap();
        assert_eq!(
            other.open(&p.seal(&pan()).unwrap()),
            Err(PanProtectError::Open)
        );
        assert_eq!(p.open(&[]), Err(PanProtectError::Open));
        assert_eq!(p.open(&[1, 2, 3]), Err(PanProtectError::Open));
    }
}

/// PAN protection with two data keys unwrapped by the HSM from their LMK tokens (production):
/// one for the lookup hash (HMAC-SHA-256), one for AES-256-GCM encryption.
pub struct HsmPanProtector {
    hash: hsm_sim::datakey::DataKey,
    data: hsm_sim::datakey::DataKey,
}

impl std::fmt::Debug for HsmPanProtector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HsmPanProtector(****)")
    }
}

impl HsmPanProtector {
    /// From the two unwrapped data keys.
    pub fn new(hash: hsm_sim::datakey::DataKey, data: hsm_sim::datakey::DataKey) -> Self {
        Self { hash, data }
    }
}

const PAN_AAD: &[u8] = b"card.pan_ciphertext";

impl PanProtector for HsmPanProtector {
    fn lookup_hash(&self, pan: &Pan) -> [u8; 32] {
        self.hash.keyed_hash(pan.expose_digits().as_bytes())
    }

    fn seal(&self, pan: &Pan) -> Result<Vec<u8>, PanProtectError> {
        self.data
            .seal(pan.expose_digits().as_bytes(), PAN_AAD)
            .map_err(|_| PanProtectError::Seal)
    }

    fn open(&self, sealed: &[u8]) -> Result<Pan, PanProtectError> {
        let clear = self
            .data
            .open(sealed, PAN_AAD)
            .map_err(|_| PanProtectError::Open)?;
        let digits = String::from_utf8(clear).map_err(|_| PanProtectError::Open)?;
        Pan::parse(&digits).map_err(|_| PanProtectError::Open)
    }

    fn seal_data(&self, clear: &[u8], label: &'static [u8]) -> Result<Vec<u8>, PanProtectError> {
        self.data
            .seal(clear, label)
            .map_err(|_| PanProtectError::Seal)
    }

    fn open_data(&self, sealed: &[u8], label: &'static [u8]) -> Result<Vec<u8>, PanProtectError> {
        self.data
            .open(sealed, label)
            .map_err(|_| PanProtectError::Open)
    }
}

#[cfg(test)]
mod hsm_tests {
    use super::*;

    #[test]
    fn hsm_data_keys_hash_deterministically_and_seal_round_trips() {
        let k = |b| hsm_sim::datakey::DataKey::from_bytes([b; 32]).unwrap();
        let p = HsmPanProtector::new(k(1), k(2));
        let pan = Pan::parse("6288660100000304").unwrap();
        assert_eq!(p.lookup_hash(&pan), p.lookup_hash(&pan));
        assert_ne!(
            p.lookup_hash(&pan),
            HsmPanProtector::new(k(3), k(2)).lookup_hash(&pan)
        );
        let sealed = p.seal(&pan).unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"0304"));
        assert_eq!(p.open(&sealed).unwrap(), pan);
        assert!(HsmPanProtector::new(k(1), k(4)).open(&sealed).is_err());
    }
}
