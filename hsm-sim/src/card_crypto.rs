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

pub use crate::block::CardCipher;
use crate::block::{adjust_odd_parity, ct_eq, pad_method_2};

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

// ---------------------------------------------------------------------------------------------
// Master-key derivation and dispersal
// ---------------------------------------------------------------------------------------------

/// Pack up to 16 decimal digits, right-aligned and zero-filled, into 8 BCD bytes.
fn pack_digits_right(digits: &[u8]) -> [u8; 8] {
    let mut nibbles = [0u8; 16];
    let take = digits.len().min(16);
    let src = &digits[digits.len() - take..];
    for (slot, d) in nibbles[16 - take..].iter_mut().zip(src) {
        *slot = d - b'0';
    }
    let mut out = [0u8; 8];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
    out
}

/// Y of EMV Option A / PBOC: rightmost 16 digits of PAN || PSN (PSN two digits, "00" if empty).
pub fn pan_psn_y(pan: &str, psn: &str) -> Result<[u8; 8], CardCryptoError> {
    let pan_ok = (1..=19).contains(&pan.len()) && pan.bytes().all(|b| b.is_ascii_digit());
    if !pan_ok {
        return Err(CardCryptoError::InvalidPan);
    }
    if psn.len() > 3 || !psn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardCryptoError::InvalidPsn);
    }
    let mut digits = Vec::with_capacity(21);
    digits.extend_from_slice(pan.as_bytes());
    let psn = psn.as_bytes();
    match psn.len() {
        0 => digits.extend_from_slice(b"00"),
        1 => {
            digits.push(b'0');
            digits.extend_from_slice(psn);
        }
        n => digits.extend_from_slice(&psn[n - 2..]),
    }
    Ok(pack_digits_right(&digits))
}

/// Dispersal with an expanded parent key: 3DES(P, D) || 3DES(P, ¬D) with odd parity, or
/// SM4(P, D || ¬D).
pub fn disperse_with(parent: &CardCipher, d: [u8; 8]) -> CardKey {
    let not_d = d.map(|b| !b);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&d);
    out[8..].copy_from_slice(&not_d);
    match parent.algorithm() {
        CardAlgorithm::Tdes => {
            parent.encrypt_block(&mut out[..8]);
            parent.encrypt_block(&mut out[8..]);
            adjust_odd_parity(&mut out);
        }
        CardAlgorithm::Sm4 => parent.encrypt_block(&mut out),
    }
    let key = CardKey(out);
    out.zeroize();
    key
}

/// Dispersal (分散) of a child key from `parent` with the 8-byte factor `d`.
pub fn disperse(alg: CardAlgorithm, parent: &CardKey, d: [u8; 8]) -> CardKey {
    disperse_with(&parent.cipher(alg), d)
}

/// ICC master key from an issuer master key already expanded (hot path of the HSM).
pub fn derive_icc_master_key_from_y(imk: &CardCipher, y: [u8; 8]) -> CardKey {
    disperse_with(imk, y)
}

/// ICC master key: EMV Option A (3DES) or PBOC 3.0 SM4, see the module doc.
pub fn derive_icc_master_key(
    alg: CardAlgorithm,
    imk: &CardKey,
    pan: &str,
    psn: &str,
) -> Result<CardKey, CardCryptoError> {
    Ok(disperse(alg, imk, pan_psn_y(pan, psn)?))
}

/// SSSE city-level factor: 6-digit administrative division code as BCD || FF×5.
pub fn ssse_city_factor(city_code: &str) -> Result<[u8; 8], CardCryptoError> {
    let b = city_code.as_bytes();
    if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
        return Err(CardCryptoError::InvalidCityCode);
    }
    let mut d = [0xFFu8; 8];
    for i in 0..3 {
        d[i] = ((b[2 * i] - b'0') << 4) | (b[2 * i + 1] - b'0');
    }
    Ok(d)
}

/// SSSE card-level factor: the rightmost 8 bytes of the 16-byte card identification code.
pub fn ssse_card_factor(card_id: &str) -> Result<[u8; 8], CardCryptoError> {
    let mut raw = [0u8; 16];
    hex::decode_to_slice(card_id, &mut raw).map_err(|_| CardCryptoError::InvalidHex {
        what: "card identification code",
        expected: 32,
    })?;
    let mut d = [0u8; 8];
    d.copy_from_slice(&raw[8..]);
    Ok(d)
}

/// Province master key → city key.
pub fn derive_ssse_city_key(
    alg: CardAlgorithm,
    province_key: &CardKey,
    city_code: &str,
) -> Result<CardKey, CardCryptoError> {
    Ok(disperse(alg, province_key, ssse_city_factor(city_code)?))
}

/// City key → card key.
pub fn derive_ssse_card_key(
    alg: CardAlgorithm,
    city_key: &CardKey,
    card_id: &str,
) -> Result<CardKey, CardCryptoError> {
    Ok(disperse(alg, city_key, ssse_card_factor(card_id)?))
}

/// Province master key → city key → card key in one call.
pub fn derive_ssse_card_key_from_province(
    alg: CardAlgorithm,
    province_key: &CardKey,
    city_code: &str,
    card_id: &str,
) -> Result<CardKey, CardCryptoError> {
    let city = derive_ssse_city_key(alg, province_key, city_code)?;
    derive_ssse_card_key(alg, &city, card_id)
}

// ---------------------------------------------------------------------------------------------
// Session keys
// ---------------------------------------------------------------------------------------------

/// EMV Common Session Key derivation (Book 2 A1.3.1) for a 3DES master key and an 8-byte R.
pub fn emv_common_session_key(mk: &CardKey, r: [u8; 8]) -> CardKey {
    let c = mk.cipher(CardAlgorithm::Tdes);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&r);
    out[8..].copy_from_slice(&r);
    out[2] = 0xF0;
    out[10] = 0x0F;
    c.encrypt_block(&mut out[..8]);
    c.encrypt_block(&mut out[8..]);
    let key = CardKey(out);
    out.zeroize();
    key
}

/// PBOC session (process) key from the ATC: 3DES(MK, 00×6||ATC) || 3DES(MK, 00×6||¬ATC), or
/// SM4(MK, 00×6||ATC||00×6||¬ATC).
pub fn pboc_session_key(alg: CardAlgorithm, mk: &CardKey, atc: [u8; 2]) -> CardKey {
    let c = mk.cipher(alg);
    let mut out = [0u8; 16];
    out[6..8].copy_from_slice(&atc);
    out[14] = !atc[0];
    out[15] = !atc[1];
    match alg {
        CardAlgorithm::Tdes => {
            c.encrypt_block(&mut out[..8]);
            c.encrypt_block(&mut out[8..]);
        }
        CardAlgorithm::Sm4 => c.encrypt_block(&mut out),
    }
    let key = CardKey(out);
    out.zeroize();
    key
}

/// AC session key: EMV CSK with R = ATC||00×6 (3DES) or the PBOC SM4 session key.
pub fn derive_ac_session_key(alg: CardAlgorithm, mk_ac: &CardKey, atc: [u8; 2]) -> CardKey {
    match alg {
        CardAlgorithm::Tdes => {
            let mut r = [0u8; 8];
            r[..2].copy_from_slice(&atc);
            emv_common_session_key(mk_ac, r)
        }
        CardAlgorithm::Sm4 => pboc_session_key(alg, mk_ac, atc),
    }
}

/// Secure-messaging session key (from MK-SMI or MK-SMC): EMV CSK with R = ARQC (3DES) or the
/// PBOC SM4 session key from the ATC.
pub fn derive_sm_session_key(
    alg: CardAlgorithm,
    mk_sm: &CardKey,
    atc: [u8; 2],
    arqc: [u8; 8],
) -> CardKey {
    match alg {
        CardAlgorithm::Tdes => emv_common_session_key(mk_sm, arqc),
        CardAlgorithm::Sm4 => pboc_session_key(alg, mk_sm, atc),
    }
}

// ---------------------------------------------------------------------------------------------
// MACs and cryptograms
// ---------------------------------------------------------------------------------------------

/// The card MAC: ISO 9797-1 alg 3 + padding 2 (3DES) or SM4 CBC-MAC + padding 2, leftmost 8.
pub fn mac(alg: CardAlgorithm, key: &CardKey, message: &[u8]) -> [u8; 8] {
    mac_with(&key.cipher(alg), message)
}

/// [`mac`] on an expanded key.
pub fn mac_with(key: &CardCipher, message: &[u8]) -> [u8; 8] {
    let padded = pad_method_2(message, key.block_len());
    let h = key.card_mac_padded(&padded);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

/// ARQC / TC / AAC over the transaction data (EMV Book 2 §8.1.2, A1.2).
pub fn generate_ac(alg: CardAlgorithm, sk_ac: &CardKey, data: &[u8]) -> [u8; 8] {
    mac(alg, sk_ac, data)
}

/// [`verify_ac`] on an expanded session key.
pub fn verify_ac_with(sk_ac: &CardCipher, data: &[u8], ac: &[u8; 8]) -> bool {
    ct_eq(&mac_with(sk_ac, data), ac)
}

/// Constant-time check of a received application cryptogram.
pub fn verify_ac(alg: CardAlgorithm, sk_ac: &CardKey, data: &[u8], ac: &[u8; 8]) -> bool {
    ct_eq(&generate_ac(alg, sk_ac, data), ac)
}

/// ARPC method 1: E(SK, ARQC ⊕ (ARC || 00×6)) (EMV Book 2 §8.2.1).
pub fn arpc_method_1(alg: CardAlgorithm, sk: &CardKey, arqc: &[u8; 8], arc: [u8; 2]) -> [u8; 8] {
    arpc_method_1_with(&sk.cipher(alg), arqc, arc)
}

/// [`arpc_method_1`] on an expanded session key.
pub fn arpc_method_1_with(sk: &CardCipher, arqc: &[u8; 8], arc: [u8; 2]) -> [u8; 8] {
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(arqc);
    block[0] ^= arc[0];
    block[1] ^= arc[1];
    sk.encrypt_block(&mut block[..sk.block_len()]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&block[..8]);
    out
}

/// ARPC method 2: MAC(SK, ARQC || CSU || proprietary data), leftmost 4 bytes (EMV Book 2
/// §8.2.2).
pub fn arpc_method_2(
    alg: CardAlgorithm,
    sk: &CardKey,
    arqc: &[u8; 8],
    csu: [u8; 4],
    proprietary: &[u8],
) -> [u8; 4] {
    let mut msg = Vec::with_capacity(12 + proprietary.len());
    msg.extend_from_slice(arqc);
    msg.extend_from_slice(&csu);
    msg.extend_from_slice(proprietary);
    let m = mac(alg, sk, &msg);
    [m[0], m[1], m[2], m[3]]
}

/// Issuer-script command MAC (EMV Book 2 §9.2.3): MAC over header || ATC || ARQC || data,
/// leftmost 4 bytes. `header` is CLA INS P1 P2 Lc with Lc counting the data and the MAC.
pub fn script_mac(
    alg: CardAlgorithm,
    sk_smi: &CardKey,
    header: [u8; 5],
    atc: [u8; 2],
    arqc: &[u8; 8],
    data: &[u8],
) -> [u8; 4] {
    let mut msg = Vec::with_capacity(15 + data.len());
    msg.extend_from_slice(&header);
    msg.extend_from_slice(&atc);
    msg.extend_from_slice(arqc);
    msg.extend_from_slice(data);
    let m = mac(alg, sk_smi, &msg);
    [m[0], m[1], m[2], m[3]]
}

/// ISO 9564-1 format 2 PIN block: 0x2 | length | digits | F filler.
fn format_2_pin_block(pin: &ClearPin) -> [u8; 8] {
    let mut nibbles = [0x0Fu8; 16];
    nibbles[0] = 2;
    nibbles[1] = pin.len() as u8;
    for (slot, d) in nibbles[2..].iter_mut().zip(pin.0.iter()) {
        *slot = d - b'0';
    }
    let mut out = [0u8; 8];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
    nibbles.zeroize();
    out
}

/// Enciphered PIN data for PIN CHANGE/UNBLOCK (EMV Book 2 §9.3, CCD form): format 2 PIN block,
/// padding method 2, CBC with zero IV under SK-SMC. 16 bytes for both algorithms.
pub fn encrypt_pin_change(
    alg: CardAlgorithm,
    sk_smc: &CardKey,
    new_pin: &str,
) -> Result<Vec<u8>, CardCryptoError> {
    let pin = ClearPin::new(new_pin)?;
    let mut block = format_2_pin_block(&pin);
    let mut padded = pad_method_2(&block, alg.block_len());
    block.zeroize();
    let out = sk_smc
        .cipher(alg)
        .encrypt_cbc_zero_iv(&padded)
        .ok_or(CardCryptoError::InvalidPinBlock)?;
    padded.zeroize();
    Ok(out)
}

/// Card side of [`encrypt_pin_change`]: decrypt, check the padding and the format 2 block.
pub fn decrypt_pin_change(
    alg: CardAlgorithm,
    sk_smc: &CardKey,
    enciphered: &[u8],
) -> Result<ClearPin, CardCryptoError> {
    if enciphered.len() != 16 {
        return Err(CardCryptoError::InvalidLength {
            what: "enciphered PIN data",
            got: enciphered.len(),
        });
    }
    let mut plain = sk_smc
        .cipher(alg)
        .decrypt_cbc_zero_iv(enciphered)
        .ok_or(CardCryptoError::InvalidPinBlock)?;
    let result = parse_format_2(&plain);
    plain.zeroize();
    result
}

fn parse_format_2(plain: &[u8]) -> Result<ClearPin, CardCryptoError> {
    let padding_ok = plain[8] == 0x80 && plain[9..].iter().all(|&b| b == 0);
    let control = plain[0] >> 4;
    let len = usize::from(plain[0] & 0x0F);
    if !padding_ok || control != 2 || !(4..=12).contains(&len) {
        return Err(CardCryptoError::InvalidPinBlock);
    }
    let mut digits = Vec::with_capacity(14);
    for i in 0..14 {
        let byte = plain[1 + i / 2];
        let nib = if i % 2 == 0 { byte >> 4 } else { byte & 0x0F };
        if i < len {
            if nib > 9 {
                digits.zeroize();
                return Err(CardCryptoError::InvalidPinBlock);
            }
            digits.push(b'0' + nib);
        } else if nib != 0x0F {
            digits.zeroize();
            return Err(CardCryptoError::InvalidPinBlock);
        }
    }
    Ok(ClearPin(digits))
}

// ---------------------------------------------------------------------------------------------
// SSSE authentication
// ---------------------------------------------------------------------------------------------

fn auth_block(alg: CardAlgorithm, challenge: &[u8]) -> Result<[u8; 16], CardCryptoError> {
    let mut block = [0u8; 16];
    match (alg, challenge.len()) {
        (CardAlgorithm::Tdes, 8) | (CardAlgorithm::Sm4, 8) | (CardAlgorithm::Sm4, 16) => {
            block[..challenge.len()].copy_from_slice(challenge);
            Ok(block)
        }
        (_, got) => Err(CardCryptoError::InvalidLength {
            what: "challenge",
            got,
        }),
    }
}

fn encrypt_challenge(
    alg: CardAlgorithm,
    key: &CardKey,
    challenge: &[u8],
) -> Result<Vec<u8>, CardCryptoError> {
    let mut block = auth_block(alg, challenge)?;
    let n = alg.block_len();
    key.cipher(alg).encrypt_block(&mut block[..n]);
    Ok(block[..n].to_vec())
}

/// Card side of INTERNAL AUTHENTICATE: E(K_internal, challenge).
pub fn ssse_internal_auth_response(
    alg: CardAlgorithm,
    k_internal: &CardKey,
    challenge: &[u8],
) -> Result<Vec<u8>, CardCryptoError> {
    encrypt_challenge(alg, k_internal, challenge)
}

/// Host side: check the card's INTERNAL AUTHENTICATE response (constant time).
pub fn verify_ssse_internal_auth(
    alg: CardAlgorithm,
    k_internal: &CardKey,
    challenge: &[u8],
    response: &[u8],
) -> bool {
    encrypt_challenge(alg, k_internal, challenge).is_ok_and(|exp| ct_eq(&exp, response))
}

/// Host side of EXTERNAL AUTHENTICATE: E(K_external, card challenge).
pub fn ssse_external_auth_cryptogram(
    alg: CardAlgorithm,
    k_external: &CardKey,
    card_challenge: &[u8],
) -> Result<Vec<u8>, CardCryptoError> {
    encrypt_challenge(alg, k_external, card_challenge)
}

/// Card side: check the terminal's EXTERNAL AUTHENTICATE cryptogram (constant time).
pub fn verify_ssse_external_auth(
    alg: CardAlgorithm,
    k_external: &CardKey,
    card_challenge: &[u8],
    cryptogram: &[u8],
) -> bool {
    encrypt_challenge(alg, k_external, card_challenge).is_ok_and(|exp| ct_eq(&exp, cryptogram))
}

/// The 4-byte MAC of an SSSE PIN UNBLOCK command (`84 2C 00 00 Lc ‖ new PIN ‖ MAC`), computed
/// by the issuer host and checked by the card.
///
/// 社会保障(个人)卡规范 protects PIN UNBLOCK with a MAC under the card's PIN-unblock key but this
/// project fixes the exact message (its "line protection" convention, shared by the kiosk back
/// end, the HSM and the virtual card):
/// `mac(alg, K_pin_unblock, challenge ‖ 84 2C 00 00 Lc ‖ new PIN)`, leftmost 4 bytes, where
/// [`mac`] is ISO/IEC 9797-1 MAC algorithm 3 / padding method 2 (3DES) or SM4 CBC-MAC / padding
/// method 2, `challenge` is the card's last GET CHALLENGE answer (ISO/IEC 7816-4 §11.5.2: 4, 8
/// or 16 bytes), `new PIN` is the BCD PIN field (4–12 digits, `F`-padded: 2–6 bytes) and
/// `Lc = len(new PIN) + 4` (the command data carries the MAC too). `Lc` is derived here so the
/// header MACed is always the header sent.
pub fn ssse_pin_unblock_mac(
    alg: CardAlgorithm,
    k_pin_unblock: &CardKey,
    challenge: &[u8],
    new_pin_bcd: &[u8],
) -> Result<[u8; 4], CardCryptoError> {
    if !matches!(challenge.len(), 4 | 8 | 16) {
        return Err(CardCryptoError::InvalidLength {
            what: "challenge",
            got: challenge.len(),
        });
    }
    let lc = match new_pin_bcd.len() {
        n @ 2..=6 => n as u8 + 4,
        got => {
            return Err(CardCryptoError::InvalidLength {
                what: "BCD PIN field",
                got,
            })
        }
    };
    let mut msg = Vec::with_capacity(challenge.len() + 5 + new_pin_bcd.len());
    msg.extend_from_slice(challenge);
    msg.extend_from_slice(&[0x84, 0x2C, 0x00, 0x00, lc]);
    msg.extend_from_slice(new_pin_bcd);
    let m = mac(alg, k_pin_unblock, &msg);
    msg.zeroize();
    Ok([m[0], m[1], m[2], m[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use CardAlgorithm::{Sm4, Tdes};

    fn key(h: &str) -> CardKey {
        CardKey::from_hex(h).expect("test key")
    }
    fn hx(b: &[u8]) -> String {
        hex::encode_upper(b)
    }
    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }
    const IMK: &str = "0123456789ABCDEFFEDCBA9876543210";

    #[test]
    fn kcv_of_published_double_length_key_is_08d7b4() {
        assert_eq!(hx(&key(IMK).check_value(Tdes)), "08D7B4");
    }

    #[test]
    fn debug_never_prints_key_or_pin() {
        let k = key(IMK);
        assert_eq!(format!("{k:?}"), "CardKey(****)");
        let p = ClearPin::new("1234").expect("pin");
        assert_eq!(format!("{p:?}"), "ClearPin(****)");
    }

    #[test]
    fn pboc_sm4_master_key_matches_readme_example() {
        // shared/vectors/README.md: MDK-AC F23B…, Y = 8866010000030400.
        let mdk = key("F23BF4AE92B554C116139D4F67322667");
        let y = pan_psn_y("6288660100000304", "00").expect("pan");
        assert_eq!(hx(&y), "8866010000030400");
        let mk = derive_icc_master_key(Sm4, &mdk, "6288660100000304", "00").expect("derive");
        assert_eq!(hx(mk.expose()), "016F6E76BD8E6FB4A17C28C4B05E03A8");
        let mk2 = derive_icc_master_key_from_y(&mdk.cipher(Sm4), y);
        assert!(mk.ct_eq(&mk2));
    }

    #[test]
    fn y_takes_rightmost_16_digits_and_zero_fills_short_pans() {
        assert_eq!(
            hx(&pan_psn_y("12345678901234567", "45").expect("y")),
            "4567890123456745"
        );
        assert_eq!(
            hx(&pan_psn_y("1234567890", "").expect("y")),
            "0000123456789000"
        );
        assert_eq!(
            hx(&pan_psn_y("1234567890123456", "001").expect("y")),
            "3456789012345601"
        );
        assert_eq!(pan_psn_y("12AB", "00"), Err(CardCryptoError::InvalidPan));
        assert_eq!(pan_psn_y("", "00"), Err(CardCryptoError::InvalidPan));
        assert_eq!(pan_psn_y("1234", "x"), Err(CardCryptoError::InvalidPsn));
    }

    // EMV Option A + CSK + ARQC + ARPC, HSM-checked vectors published in pyemv's
    // tests/test_kd_hsm.py and tests/test_ac_hsm.py (R given directly, as the HSM test does).
    #[test]
    fn emv_option_a_csk_arqc_arpc1_vector_pan17_psn45() {
        let mk = derive_icc_master_key(Tdes, &key(IMK), "12345678901234567", "45").expect("mk");
        assert_eq!(hx(&mk.check_value(Tdes)[..2]), "FF08");
        let sk = emv_common_session_key(&mk, [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]);
        assert_eq!(hx(&sk.check_value(Tdes)[..2]), "DF82");
        let data = unhex("0123456789ABCDEF0123456789ABCDEF");
        let arqc = generate_ac(Tdes, &sk, &data);
        assert_eq!(hx(&arqc), "19C1FBC83EBDC0D5");
        assert!(verify_ac(Tdes, &sk, &data, &arqc));
        assert_eq!(
            hx(&arpc_method_1(Tdes, &mk, &arqc, [0, 0])),
            "78A372523FA35A03"
        );
        assert_eq!(
            hx(&arpc_method_1(Tdes, &sk, &arqc, [0, 0])),
            "C3620580668E5B65"
        );
    }

    #[test]
    fn emv_option_a_vector_without_psn() {
        let mk = derive_icc_master_key(Tdes, &key(IMK), "12345678901234567", "").expect("mk");
        let sk = emv_common_session_key(&mk, [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]);
        assert_eq!(hx(&sk.check_value(Tdes)[..2]), "3F4F");
        let arqc = generate_ac(Tdes, &sk, &unhex("0123456789ABCDEF0123456789ABCDEF"));
        assert_eq!(hx(&arqc), "8698A7319324FD93");
        assert_eq!(
            hx(&arpc_method_1(Tdes, &mk, &arqc, [0, 0])),
            "BEA11C8F4A47EF6F"
        );
    }

    #[test]
    fn emv_arpc_method_2_vectors() {
        let mk = derive_icc_master_key(Tdes, &key(IMK), "9901234567890123", "45").expect("mk");
        assert_eq!(hx(&mk.check_value(Tdes)[..2]), "1DA5");
        let sk = emv_common_session_key(&mk, [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]);
        assert_eq!(hx(&sk.check_value(Tdes)[..2]), "0995");
        let arqc = generate_ac(Tdes, &sk, &unhex("0123456789ABCDEF0123456789ABCDEF"));
        assert_eq!(hx(&arqc), "4B46013359B7A58B");
        assert_eq!(
            hx(&arpc_method_1(Tdes, &mk, &arqc, [0, 0])),
            "F8C9CECAABD55AD1"
        );
        let prop = unhex("1234567890ABCDEF");
        assert_eq!(
            hx(&arpc_method_2(Tdes, &sk, &arqc, [0; 4], &prop)),
            "4962B76C"
        );
        assert_eq!(
            hx(&arpc_method_2(Tdes, &sk, &arqc, [0; 4], &[])),
            "7DFB1188"
        );
    }

    #[test]
    fn emv_script_mac_and_ccd_pin_change_vectors() {
        // pyemv tests/test_sm_hsm.py: test_generate_command_mac and test_ccd_pin_change.
        let mk_smi = derive_icc_master_key(Tdes, &key(IMK), "1234567890123456", "01").expect("");
        assert_eq!(hx(&mk_smi.check_value(Tdes)), "02396B");
        let arqc = [0xAB, 0xCD, 0xEF, 0x12, 0x34, 0x56, 0x78, 0x90];
        let sk_smi = derive_sm_session_key(Tdes, &mk_smi, [0, 0], arqc);
        assert_eq!(hx(&sk_smi.check_value(Tdes)), "F088F8");
        assert_eq!(
            hx(&mac(Tdes, &sk_smi, &unhex("8424000008"))),
            "CF323F09A0F6AB9E"
        );
        let imk_smc = key("11111111111111112222222222222222");
        assert_eq!(hx(&imk_smc.check_value(Tdes)), "D2B91C");
        let mk_smc = derive_icc_master_key(Tdes, &imk_smc, "1234567890123456", "01").expect("");
        assert_eq!(hx(&mk_smc.check_value(Tdes)), "6B0F76");
        let sk_smc = derive_sm_session_key(Tdes, &mk_smc, [0, 0], arqc);
        assert_eq!(hx(&sk_smc.check_value(Tdes)), "D694B8");
        let enc = encrypt_pin_change(Tdes, &sk_smc, "9999").expect("pin");
        assert_eq!(hx(&enc), "28367E05DE3381C29D30A6055A8DEB86");
        let mut msg = unhex("8424000210");
        msg.extend_from_slice(&enc);
        assert_eq!(hx(&mac(Tdes, &sk_smi, &msg)), "69DA1EE208823022");
        assert_eq!(
            decrypt_pin_change(Tdes, &sk_smc, &enc)
                .expect("dec")
                .expose(),
            "9999"
        );
    }

    #[test]
    fn script_mac_is_leftmost_four_bytes_over_header_atc_arqc_data() {
        let sk = key(IMK);
        let atc = [0xFF, 0xFF];
        let arqc = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56];
        // pyemv sm.generate_command_mac docstring: 8424000008 || FFFF || 1234567890123456.
        let m = script_mac(Tdes, &sk, [0x84, 0x24, 0, 0, 8], atc, &arqc, &[]);
        assert_eq!(hx(&m), "E07B8DF1");
    }

    #[test]
    fn emv_csk_from_atc_uses_atc_f0_and_atc_0f() {
        let mk = key(IMK);
        let sk = derive_ac_session_key(Tdes, &mk, [0x00, 0x1C]);
        let by_r = emv_common_session_key(&mk, [0x00, 0x1C, 0, 0, 0, 0, 0, 0]);
        assert!(sk.ct_eq(&by_r));
        let c = mk.cipher(Tdes);
        let mut l = [0x00, 0x1C, 0xF0, 0, 0, 0, 0, 0];
        c.encrypt_block(&mut l);
        assert_eq!(sk.expose()[..8], l);
    }

    #[test]
    fn pboc_session_keys_follow_the_documented_layout() {
        let mk = key("F23BF4AE92B554C116139D4F67322667");
        let sk = derive_ac_session_key(Sm4, &mk, [0x00, 0x1C]);
        let mut block = unhex("000000000000001C000000000000FFE3");
        mk.cipher(Sm4).encrypt_block(&mut block);
        assert_eq!(sk.expose()[..], block[..]);
        let sk3 = pboc_session_key(Tdes, &key(IMK), [0x00, 0x1C]);
        let c = key(IMK).cipher(Tdes);
        let mut r = unhex("000000000000FFE3");
        c.encrypt_block(&mut r);
        assert_eq!(sk3.expose()[8..], r[..]);
    }

    #[test]
    fn sm4_mac_is_cbc_mac_with_padding_method_2() {
        let k = key("0123456789ABCDEFFEDCBA9876543210");
        // GB/T 32907 example: SM4(K, K) = 681EDF34D206965E86B3E94F536E4246.
        let mut b = unhex("0123456789ABCDEFFEDCBA9876543210");
        k.cipher(Sm4).encrypt_block(&mut b);
        assert_eq!(hx(&b), "681EDF34D206965E86B3E94F536E4246");
        // 15 bytes of data pad to exactly one block: MAC = SM4(K, data || 80).
        let data = unhex("0123456789ABCDEFFEDCBA98765432");
        let mut one = data.clone();
        one.push(0x80);
        k.cipher(Sm4).encrypt_block(&mut one);
        assert_eq!(mac(Sm4, &k, &data)[..], one[..8]);
    }

    #[test]
    fn sm4_arqc_arpc_round_trip_between_card_and_host() {
        let imk = key("F23BF4AE92B554C116139D4F67322667");
        let card_mk = derive_icc_master_key(Sm4, &imk, "6288660100000304", "00").expect("mk");
        let atc = [0x00, 0x2A];
        let data = unhex("000000010000000000000000015600000000000156241123009A8B7C6D5E7C00002A");
        let card_sk = derive_ac_session_key(Sm4, &card_mk, atc);
        let arqc = generate_ac(Sm4, &card_sk, &data);
        let host_mk = derive_icc_master_key(Sm4, &imk, "6288660100000304", "00").expect("mk");
        let host_sk = derive_ac_session_key(Sm4, &host_mk, atc);
        assert!(verify_ac(Sm4, &host_sk, &data, &arqc));
        let mut tampered = data.clone();
        tampered[3] ^= 1;
        assert!(!verify_ac(Sm4, &host_sk, &tampered, &arqc));
        let arpc = arpc_method_1(Sm4, &host_sk, &arqc, *b"00");
        let mut expect = [0u8; 16];
        expect[..8].copy_from_slice(&arqc);
        expect[0] ^= b'0';
        expect[1] ^= b'0';
        card_sk.cipher(Sm4).encrypt_block(&mut expect);
        assert_eq!(arpc[..], expect[..8]);
        assert_ne!(arpc_method_2(Sm4, &host_sk, &arqc, [0; 4], &[]), [0; 4]);
    }

    #[test]
    fn sm4_pin_change_round_trips_and_rejects_tampering() {
        let sk = key("F23BF4AE92B554C116139D4F67322667");
        let enc = encrypt_pin_change(Sm4, &sk, "123456").expect("enc");
        assert_eq!(enc.len(), 16);
        assert_eq!(
            decrypt_pin_change(Sm4, &sk, &enc).expect("dec").expose(),
            "123456"
        );
        let mut bad = enc.clone();
        bad[15] ^= 1;
        assert_eq!(
            decrypt_pin_change(Sm4, &sk, &bad).map(|_| ()),
            Err(CardCryptoError::InvalidPinBlock)
        );
        assert_eq!(
            encrypt_pin_change(Sm4, &sk, "12a4").map(|_| ()),
            Err(CardCryptoError::InvalidPin)
        );
        assert_eq!(
            encrypt_pin_change(Tdes, &sk, "123").map(|_| ()),
            Err(CardCryptoError::InvalidPin)
        );
    }

    #[test]
    fn dispersal_is_e_of_d_and_not_d() {
        let p = key(IMK);
        let d = [0x41, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let k = disperse(Tdes, &p, d);
        let c = p.cipher(Tdes);
        let mut l = d;
        c.encrypt_block(&mut l);
        let mut r = d.map(|b| !b);
        c.encrypt_block(&mut r);
        let mut expect = [l, r].concat();
        adjust_odd_parity(&mut expect);
        assert_eq!(k.expose()[..], expect[..]);
        // SM4 dispersal with D = Y reproduces the PBOC SM4 vector.
        let sm = disperse(
            Sm4,
            &key("F23BF4AE92B554C116139D4F67322667"),
            [0x88, 0x66, 1, 0, 0, 3, 4, 0],
        );
        assert_eq!(hx(sm.expose()), "016F6E76BD8E6FB4A17C28C4B05E03A8");
    }

    #[test]
    fn ssse_factors_are_defined_exactly() {
        assert_eq!(
            hx(&ssse_city_factor("410100").expect("city")),
            "410100FFFFFFFFFF"
        );
        assert_eq!(
            ssse_city_factor("41010"),
            Err(CardCryptoError::InvalidCityCode)
        );
        assert_eq!(
            ssse_city_factor("41010A"),
            Err(CardCryptoError::InvalidCityCode)
        );
        let id = "410100D15600000500B1C2D3E4F50617";
        assert_eq!(hx(&ssse_card_factor(id).expect("id")), "00B1C2D3E4F50617");
        assert!(ssse_card_factor("410100").is_err());
        assert!(ssse_card_factor("Z10100D15600000500B1C2D3E4F50617").is_err());
    }

    #[test]
    fn ssse_three_level_dispersal_composes_the_two_levels() {
        for alg in [Tdes, Sm4] {
            let province = key("0123456789ABCDEFFEDCBA9876543210");
            let id = "410100D15600000500B1C2D3E4F50617";
            let city = derive_ssse_city_key(alg, &province, "410100").expect("city");
            let card = derive_ssse_card_key(alg, &city, id).expect("card");
            let direct =
                derive_ssse_card_key_from_province(alg, &province, "410100", id).expect("direct");
            assert!(card.ct_eq(&direct));
            let other_city = derive_ssse_city_key(alg, &province, "410200").expect("city");
            assert!(!other_city.ct_eq(&city));
            let other_card =
                derive_ssse_card_key(alg, &city, "410100D15600000500B1C2D3E4F50618").expect("c");
            assert!(!other_card.ct_eq(&card));
        }
    }

    #[test]
    fn ssse_internal_and_external_authentication() {
        for (alg, len) in [(Tdes, 8usize), (Sm4, 16), (Sm4, 8)] {
            let k = key("F23BF4AE92B554C116139D4F67322667");
            let challenge: Vec<u8> = (0..len as u8).collect();
            let resp = ssse_internal_auth_response(alg, &k, &challenge).expect("resp");
            assert_eq!(resp.len(), alg.block_len());
            assert!(verify_ssse_internal_auth(alg, &k, &challenge, &resp));
            let mut bad = resp.clone();
            bad[0] ^= 1;
            assert!(!verify_ssse_internal_auth(alg, &k, &challenge, &bad));
            let crypt = ssse_external_auth_cryptogram(alg, &k, &challenge).expect("crypt");
            assert!(verify_ssse_external_auth(alg, &k, &challenge, &crypt));
            assert!(!verify_ssse_external_auth(alg, &k, &challenge, &crypt[..4]));
        }
        // 3DES internal auth is single-block ECB: check against the raw cipher.
        let k = key(IMK);
        let mut b = [1, 2, 3, 4, 5, 6, 7, 8];
        let r = ssse_internal_auth_response(Tdes, &k, &b).expect("resp");
        k.cipher(Tdes).encrypt_block(&mut b);
        assert_eq!(r, b);
        assert!(ssse_internal_auth_response(Tdes, &k, &[0; 16]).is_err());
        assert!(ssse_internal_auth_response(Sm4, &k, &[0; 12]).is_err());
    }

    #[test]
    fn ssse_pin_unblock_mac_covers_challenge_header_and_pin() {
        let k = key("F23BF4AE92B554C116139D4F67322667");
        let challenge = [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE];
        let pin = [0x12, 0x34, 0x56];
        for alg in [Tdes, Sm4] {
            let m = ssse_pin_unblock_mac(alg, &k, &challenge, &pin).expect("mac");
            // Independent composition: challenge ‖ 84 2C 00 00 07 ‖ PIN, leftmost 4 of the MAC.
            let mut msg = challenge.to_vec();
            msg.extend_from_slice(&[0x84, 0x2C, 0x00, 0x00, 0x07, 0x12, 0x34, 0x56]);
            assert_eq!(m[..], mac(alg, &k, &msg)[..4]);
            // Every input is bound: another challenge, PIN, Lc (via PIN length) or key differs.
            let mut other = challenge;
            other[7] ^= 1;
            assert_ne!(m, ssse_pin_unblock_mac(alg, &k, &other, &pin).expect("m"));
            assert_ne!(
                m,
                ssse_pin_unblock_mac(alg, &k, &challenge, &[0x12, 0x34, 0x57]).expect("m")
            );
            assert_ne!(
                m,
                ssse_pin_unblock_mac(alg, &k, &challenge, &[0x12, 0x34, 0x56, 0xFF]).expect("m")
            );
            assert_ne!(
                m,
                ssse_pin_unblock_mac(alg, &key(IMK), &challenge, &pin).expect("m")
            );
        }
        assert_ne!(
            ssse_pin_unblock_mac(Tdes, &k, &challenge, &pin).expect("m"),
            ssse_pin_unblock_mac(Sm4, &k, &challenge, &pin).expect("m")
        );
        // Challenge 4/8/16 bytes, BCD PIN field 2..=6 bytes; anything else is an error.
        assert!(ssse_pin_unblock_mac(Sm4, &k, &[0; 16], &pin).is_ok());
        assert!(ssse_pin_unblock_mac(Sm4, &k, &[0; 4], &pin).is_ok());
        for bad in [0usize, 3, 7, 12, 17] {
            assert!(ssse_pin_unblock_mac(Sm4, &k, &vec![0; bad], &pin).is_err());
        }
        assert!(ssse_pin_unblock_mac(Tdes, &k, &challenge, &[0x12]).is_err());
        assert!(ssse_pin_unblock_mac(Tdes, &k, &challenge, &[0x11; 7]).is_err());
    }
}
