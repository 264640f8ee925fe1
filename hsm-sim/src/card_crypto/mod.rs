//! Card-side cryptography on clear keys: the single source of truth for what a chip computes.
//!
//! Why this exists: the software HSM (on keys it unwrapped from LMK tokens) and the virtual card
//! in `card-apdu` (which holds clear keys, like a chip) must compute bit-identical cryptograms.
//! Both call these pure functions; nothing here does I/O, logging or allocation of secrets
//! outside [`CardKey`] / [`ClearPin`], which zeroize on drop and print `****`.
//!
//! # API (all functions are pure; errors are [`CardCryptoError`])
//!
//! Keys and algorithms
//! - `enum CardAlgorithm { Tdes, Sm4 }` — double-length 3DES (8-byte blocks) or SM4 (16-byte
//!   blocks). Every key is 16 bytes.
//! - `CardKey::from_bytes([u8; 16])`, `CardKey::from_hex(&str)`, `key.expose() -> &[u8; 16]`,
//!   `key.check_value(alg) -> [u8; 3]` (KCV: first 3 bytes of E(K, zero block)).
//! - `CardCipher::new(alg, key.expose())` — an expanded key schedule to reuse on hot keys.
//!
//! Master-key derivation (issuer master key → ICC master key)
//! - `derive_icc_master_key(alg, &imk, pan: &str, psn: &str) -> Result<CardKey>`
//!   - Y = rightmost 16 digits of PAN || PSN (PSN = last two digits of `psn`, `"00"` when
//!     empty; Y left-padded with zeros when shorter), packed as 8 BCD bytes.
//!   - `Tdes`: EMV 4.x Book 2 Annex A1.4.1 (Option A): MK = 3DES(IMK, Y) || 3DES(IMK, Y ⊕ FF..FF),
//!     odd parity set.
//!   - `Sm4`: PBOC 3.0 (JR/T 0025.17) SM4 derivation: MK = SM4(IMK, Y || ¬Y). Verified with the
//!     README example (MDK F23B…2667, Y 8866010000030400 → 016F6E76BD8E6FB4A17C28C4B05E03A8).
//! - `derive_icc_master_key_from_y(&CardCipher, y: [u8; 8]) -> CardKey` — same, on a cached IMK.
//!
//! Session keys
//! - `derive_ac_session_key(alg, &mk_ac, atc: [u8; 2]) -> CardKey`
//!   - `Tdes`: EMV Common Session Key (Book 2 A1.3.1) with R = ATC || 00×6:
//!     SK = 3DES(MK, R with byte 2 := F0) || 3DES(MK, R with byte 2 := 0F).
//!   - `Sm4`: PBOC SM4 session key: SK = SM4(MK, 00×6 || ATC || 00×6 || ¬ATC) — the 3DES PBOC
//!     process-key input (000000000000||ATC, 000000000000||¬ATC of JR/T 0025.5 Annex) laid into
//!     one 16-byte SM4 block, as JR/T 0025.17 does for its SM4 algorithm suite.
//! - `derive_sm_session_key(alg, &mk_smi_or_smc, atc, arqc: [u8; 8]) -> CardKey` — issuer-script
//!   session keys: `Tdes` EMV CSK with R = ARQC (Book 2 A1.3 as amended by EMV SU-46);
//!   `Sm4` the PBOC SM4 session key from the ATC (as above).
//! - Lower level: `emv_common_session_key(&mk, r: [u8; 8])`, `pboc_session_key(alg, &mk, atc)`.
//!
//! Application cryptograms
//! - `generate_ac(alg, &sk_ac, data: &[u8]) -> [u8; 8]` — ARQC/TC/AAC over the concatenated
//!   terminal + card data (CDOL1 values || AIP || ATC || IAD part, as the card defines).
//!   `Tdes`: ISO/IEC 9797-1 MAC algorithm 3, padding method 2 (EMV Book 2 A1.2.1).
//!   `Sm4`: SM4 CBC-MAC, zero IV, padding method 2 to 16 bytes, leftmost 8 bytes of the final
//!   block (the PBOC/GM SM4 MAC).
//! - `verify_ac(alg, &sk_ac, data, arqc: &[u8; 8]) -> bool` (constant time).
//! - `mac_with`, `verify_ac_with`, `arpc_method_1_with` take a `CardCipher` (expanded key) to
//!   avoid re-expanding a session key used twice.
//! - `arpc_method_1(alg, &sk, arqc, arc: [u8; 2]) -> [u8; 8]` — E(SK, ARQC ⊕ (ARC || 00×6));
//!   for SM4 the 8-byte value is followed by 00×8 to fill the block, leftmost 8 bytes returned
//!   (EMV Book 2 §8.2.1).
//! - `arpc_method_2(alg, &sk, arqc, csu: [u8; 4], proprietary: &[u8]) -> [u8; 4]` —
//!   MAC(SK, ARQC || CSU || proprietary auth data), leftmost 4 bytes (EMV Book 2 §8.2.2).
//!
//! Issuer scripts (secure messaging, EMV Book 2 §9)
//! - `script_mac(alg, &sk_smi, header: [u8; 5] /*CLA INS P1 P2 Lc*/, atc, arqc, data) -> [u8; 4]`
//!   — MAC over header || ATC || ARQC || data (format 2 MAC input), same MAC as `generate_ac`,
//!   leftmost 4 bytes. `mac(alg, &key, message) -> [u8; 8]` is the full 8-byte MAC.
//! - `encrypt_pin_change(alg, &sk_smc, new_pin: &str) -> Result<Vec<u8>>` — ISO 9564 format 2
//!   PIN block, ISO 9797-1 padding method 2, CBC with zero IV (EMV CCD form): 16 bytes for both
//!   algorithms. `decrypt_pin_change(alg, &sk_smc, &enc) -> Result<ClearPin>` is the card side.
//!
//! Social-security (SSSE) card keys: three-level dispersal and authentication
//! - `disperse(alg, &parent, d: [u8; 8]) -> CardKey` — the classic Chinese "分散":
//!   `Tdes`: K = 3DES(P, D) || 3DES(P, ¬D) (odd parity); `Sm4`: K = SM4(P, D || ¬D). The same
//!   formula as the EMV/PBOC master-key derivation above, with an 8-byte factor for both
//!   algorithms (a 16-byte SM4 factor would give a 32-byte key; D || ¬D fills one SM4 block).
//! - `ssse_city_factor(city_code: &str) -> Result<[u8; 8]>` — the 6-digit administrative
//!   division code (GB/T 2260, e.g. `"410100"`) as 3 BCD bytes followed by `FF FF FF FF FF`.
//! - `ssse_card_factor(card_id: &str) -> Result<[u8; 8]>` — the card identification code
//!   (卡识别码, 32 hex characters = 16 bytes): its rightmost 8 bytes.
//! - `derive_ssse_city_key(alg, &province_key, city_code)`,
//!   `derive_ssse_card_key(alg, &city_key, card_id)` and
//!   `derive_ssse_card_key_from_province(alg, &province_key, city_code, card_id)`.
//! - `ssse_internal_auth_response(alg, &k_internal, challenge) -> Result<Vec<u8>>` (card side)
//!   and `verify_ssse_internal_auth(alg, &k, challenge, response) -> bool` (host side);
//!   `ssse_external_auth_cryptogram(alg, &k_external, card_challenge) -> Result<Vec<u8>>`
//!   (host side) and `verify_ssse_external_auth(...) -> bool` (card side). The cryptogram is
//!   E(K, challenge) in ECB: `Tdes` takes an 8-byte challenge; `Sm4` takes 16 bytes, or 8 bytes
//!   right-padded with 00×8 to one block. Output is one block (8 or 16 bytes).
//!
//! Test vectors: EMV/HSM-checked values published with the open-source `pyemv` test suite
//! (IMK 0123456789ABCDEFFEDCBA9876543210, KCV 08D7B4) and the PBOC SM4 example in
//! `shared/vectors/README.md`; see the tests at the bottom of this file.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::block::ct_eq;
pub use crate::block::CardCipher;

mod cryptogram;
mod derivation;
mod ssse;
#[cfg(test)]
mod tests;

pub use cryptogram::{
    arpc_method_1, arpc_method_1_with, arpc_method_2, decrypt_pin_change, encrypt_pin_change,
    generate_ac, mac, mac_with, script_mac, verify_ac, verify_ac_with,
};
pub use derivation::{
    derive_ac_session_key, derive_icc_master_key, derive_icc_master_key_from_y,
    derive_sm_session_key, disperse, disperse_with, emv_common_session_key, pan_psn_y,
    pboc_session_key,
};
pub use ssse::{
    derive_ssse_card_key, derive_ssse_card_key_from_province, derive_ssse_city_key,
    ssse_card_factor, ssse_city_factor, ssse_external_auth_cryptogram, ssse_identity_challenge,
    ssse_internal_auth_response, ssse_pin_unblock_mac, ssse_update_record_mac,
    verify_ssse_external_auth, verify_ssse_internal_auth, IdentitySessionRef,
    SSSE_UPDATE_RECORD_DATA_MAX, SSSE_UPDATE_RECORD_SM,
};

/// Block cipher of a card application: double-length 3DES or SM4. Keys are 16 bytes for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CardAlgorithm {
    /// Two-key triple DES (EDE2), 8-byte blocks: EMV and PBOC 2.0 cards.
    Tdes,
    /// SM4 (GB/T 32907-2016), 16-byte blocks: PBOC 3.0 "国密" cards and SSSE SM4 cards.
    Sm4,
}

impl CardAlgorithm {
    /// Block length in bytes (8 for 3DES, 16 for SM4).
    pub fn block_len(self) -> usize {
        match self {
            CardAlgorithm::Tdes => 8,
            CardAlgorithm::Sm4 => 16,
        }
    }
}

/// Errors from card computations on malformed input. They never carry key or PIN material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardCryptoError {
    /// PAN is not 1..=19 decimal digits.
    #[error("PAN must be 1 to 19 decimal digits")]
    InvalidPan,
    /// PAN sequence number is not 0..=3 decimal digits.
    #[error("PAN sequence number must be up to 3 decimal digits")]
    InvalidPsn,
    /// A hex string is not valid hex of the expected length.
    #[error("{what}: expected {expected} hex characters")]
    InvalidHex {
        /// Which input.
        what: &'static str,
        /// Expected number of hex characters.
        expected: usize,
    },
    /// A byte input has the wrong length.
    #[error("{what}: wrong length {got}")]
    InvalidLength {
        /// Which input.
        what: &'static str,
        /// Length received.
        got: usize,
    },
    /// City code is not six decimal digits.
    #[error("city code must be 6 decimal digits")]
    InvalidCityCode,
    /// PIN is not 4..=12 decimal digits.
    #[error("PIN must be 4 to 12 decimal digits")]
    InvalidPin,
    /// A decrypted PIN block is malformed (wrong control nibble, length or filler).
    #[error("PIN block does not contain valid values")]
    InvalidPinBlock,
}

/// A clear 16-byte card key (3DES double-length or SM4). Zeroized on drop; `Debug` prints `****`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CardKey([u8; 16]);

impl std::fmt::Debug for CardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardKey(****)")
    }
}

impl CardKey {
    /// Wrap clear key bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        CardKey(bytes)
    }

    /// Parse 32 hex characters.
    pub fn from_hex(hex_str: &str) -> Result<Self, CardCryptoError> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(hex_str, &mut out).map_err(|_| CardCryptoError::InvalidHex {
            what: "key",
            expected: 32,
        })?;
        Ok(CardKey(out))
    }

    /// The clear key bytes. Callers must not log or persist them.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    /// Key check value: the first 3 bytes of E(K, zero block) under `alg`.
    pub fn check_value(&self, alg: CardAlgorithm) -> [u8; 3] {
        let c = CardCipher::new(alg, &self.0);
        let mut block = [0u8; 16];
        c.encrypt_block(&mut block[..alg.block_len()]);
        [block[0], block[1], block[2]]
    }

    /// Expand this key for repeated use.
    pub fn cipher(&self, alg: CardAlgorithm) -> CardCipher {
        CardCipher::new(alg, &self.0)
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &CardKey) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

/// A clear PIN (4..=12 ASCII digits). Zeroized on drop; `Debug` prints `****`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ClearPin(Vec<u8>);

impl std::fmt::Debug for ClearPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClearPin(****)")
    }
}

impl ClearPin {
    /// Validate and wrap 4..=12 decimal digits.
    pub fn new(digits: &str) -> Result<Self, CardCryptoError> {
        let ok = (4..=12).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(CardCryptoError::InvalidPin);
        }
        Ok(ClearPin(digits.as_bytes().to_vec()))
    }

    /// The digits as text. Callers must not log or persist them.
    pub fn expose(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a PIN has at least 4 digits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &ClearPin) -> bool {
        ct_eq(&self.0, &other.0)
    }
}
