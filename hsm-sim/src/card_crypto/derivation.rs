//! Key derivation on clear card keys: issuer master key → ICC master key (EMV option A, PBOC
//! SM4), the dispersal (分散) formula they share, and the session keys of EMV and PBOC.
//!
//! Why this exists apart: derivation is the step the HSM and the card must agree on before any
//! cryptogram can match; its formulas are specified in the parent module's documentation.

use zeroize::Zeroize;

use super::{CardAlgorithm, CardCipher, CardCryptoError, CardKey};
use crate::block::adjust_odd_parity;

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
