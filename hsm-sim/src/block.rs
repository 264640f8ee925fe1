//! Block-cipher building blocks shared by [`crate::card_crypto`] and the software HSM.
//!
//! Why this exists: every card- and host-side computation in this crate reduces to a handful of
//! operations on one expanded key (encrypt/decrypt a block, CBC, CBC-MAC, ISO 9797-1 padding).
//! Keeping them in one place means the HSM and the virtual card cannot drift apart, and an
//! expanded key schedule can be cached by the caller ([`CardCipher`]) instead of being rebuilt per
//! call. The primitives themselves come from RustCrypto (`des`, `sm4`); nothing is hand-written.

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};

/// ISO/IEC 9797-1 padding method 2: append `0x80`, then `0x00` up to a multiple of `block_len`
/// (always adds at least one byte).
pub fn pad_method_2(data: &[u8], block_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + block_len);
    out.extend_from_slice(data);
    out.push(0x80);
    while out.len() % block_len != 0 {
        out.push(0);
    }
    out
}

/// ISO/IEC 9797-1 padding method 1: `0x00` up to a multiple of `block_len` (none if aligned;
/// empty data becomes one zero block).
pub fn pad_method_1(data: &[u8], block_len: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.is_empty() {
        out.resize(block_len, 0);
    }
    while out.len() % block_len != 0 {
        out.push(0);
    }
    out
}

/// Set odd parity on every byte of a DES key (FIPS 46-3: the low bit of each byte is parity).
pub fn adjust_odd_parity(key: &mut [u8]) {
    for b in key.iter_mut() {
        let ones = (*b & 0xFE).count_ones();
        *b = (*b & 0xFE) | u8::from(ones % 2 == 0);
    }
}

/// True when every byte of a DES key has odd parity.
pub fn has_odd_parity(key: &[u8]) -> bool {
    key.iter().all(|b| b.count_ones() % 2 == 1)
}

/// Constant-time equality on byte strings of equal length (length itself is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One expanded 128-bit key: double-length 3DES (EDE2, ANSI X9.52) or SM4 (GB/T 32907).
///
/// The key schedule is computed once at construction; RustCrypto's `zeroize` feature wipes it on
/// drop. Build one per hot key and reuse it.
#[derive(Clone)]
pub struct CardCipher {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    /// Two single-DES schedules (K_L, K_R): EDE2 is E_L(D_R(E_L(x))). Two schedules instead of
    /// `TdesEde2`'s three, and the same schedules serve the retail MAC.
    Tdes(Box<(des::Des, des::Des)>),
    Sm4(Box<sm4::Sm4>),
}

impl std::fmt::Debug for CardCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardCipher(****)")
    }
}

impl CardCipher {
    /// Expand a 16-byte key for `alg`.
    pub fn new(alg: crate::card_crypto::CardAlgorithm, key: &[u8; 16]) -> Self {
        let inner = match alg {
            crate::card_crypto::CardAlgorithm::Tdes => Inner::Tdes(Box::new((
                des::Des::new(GenericArray::from_slice(&key[..8])),
                des::Des::new(GenericArray::from_slice(&key[8..])),
            ))),
            crate::card_crypto::CardAlgorithm::Sm4 => {
                Inner::Sm4(Box::new(sm4::Sm4::new(GenericArray::from_slice(key))))
            }
        };
        CardCipher { inner }
    }

    /// The algorithm this key schedule belongs to.
    pub fn algorithm(&self) -> crate::card_crypto::CardAlgorithm {
        match self.inner {
            Inner::Tdes(_) => crate::card_crypto::CardAlgorithm::Tdes,
            Inner::Sm4(_) => crate::card_crypto::CardAlgorithm::Sm4,
        }
    }

    /// Block length in bytes: 8 for 3DES, 16 for SM4.
    pub fn block_len(&self) -> usize {
        match self.inner {
            Inner::Tdes(_) => 8,
            Inner::Sm4(_) => 16,
        }
    }

    /// Encrypt one block in place. `block.len()` must equal [`Self::block_len`]; other lengths
    /// are a programming error and leave the data unchanged (debug builds assert).
    pub fn encrypt_block(&self, block: &mut [u8]) {
        debug_assert_eq!(block.len(), self.block_len());
        match &self.inner {
            Inner::Tdes(c) if block.len() == 8 => {
                let b = GenericArray::from_mut_slice(block);
                c.0.encrypt_block(b);
                c.1.decrypt_block(b);
                c.0.encrypt_block(b);
            }
            Inner::Sm4(c) if block.len() == 16 => {
                c.encrypt_block(GenericArray::from_mut_slice(block))
            }
            _ => {}
        }
    }

    /// Decrypt one block in place (same length rule as [`Self::encrypt_block`]).
    pub fn decrypt_block(&self, block: &mut [u8]) {
        debug_assert_eq!(block.len(), self.block_len());
        match &self.inner {
            Inner::Tdes(c) if block.len() == 8 => {
                let b = GenericArray::from_mut_slice(block);
                c.0.decrypt_block(b);
                c.1.encrypt_block(b);
                c.0.decrypt_block(b);
            }
            Inner::Sm4(c) if block.len() == 16 => {
                c.decrypt_block(GenericArray::from_mut_slice(block))
            }
            _ => {}
        }
    }

    /// ECB over whole blocks; `None` when `data` is not block-aligned.
    pub fn encrypt_ecb(&self, data: &[u8]) -> Option<Vec<u8>> {
        let n = self.block_len();
        if data.is_empty() || data.len() % n != 0 {
            return None;
        }
        let mut out = data.to_vec();
        for chunk in out.chunks_mut(n) {
            self.encrypt_block(chunk);
        }
        Some(out)
    }

    /// ECB decryption over whole blocks; `None` when `data` is not block-aligned.
    pub fn decrypt_ecb(&self, data: &[u8]) -> Option<Vec<u8>> {
        let n = self.block_len();
        if data.is_empty() || data.len() % n != 0 {
            return None;
        }
        let mut out = data.to_vec();
        for chunk in out.chunks_mut(n) {
            self.decrypt_block(chunk);
        }
        Some(out)
    }

    /// CBC encryption with a zero IV over whole blocks; `None` when not block-aligned.
    pub fn encrypt_cbc_zero_iv(&self, data: &[u8]) -> Option<Vec<u8>> {
        let n = self.block_len();
        if data.is_empty() || data.len() % n != 0 {
            return None;
        }
        let mut out = data.to_vec();
        let mut prev = [0u8; 16];
        for chunk in out.chunks_mut(n) {
            for (b, p) in chunk.iter_mut().zip(&prev[..n]) {
                *b ^= p;
            }
            self.encrypt_block(chunk);
            prev[..n].copy_from_slice(chunk);
        }
        Some(out)
    }

    /// CBC decryption with a zero IV over whole blocks; `None` when not block-aligned.
    pub fn decrypt_cbc_zero_iv(&self, data: &[u8]) -> Option<Vec<u8>> {
        let n = self.block_len();
        if data.is_empty() || data.len() % n != 0 {
            return None;
        }
        let mut out = data.to_vec();
        let mut prev = [0u8; 16];
        for chunk in out.chunks_mut(n) {
            let mut this = [0u8; 16];
            this[..n].copy_from_slice(chunk);
            self.decrypt_block(chunk);
            for (b, p) in chunk.iter_mut().zip(&prev[..n]) {
                *b ^= p;
            }
            prev = this;
        }
        Some(out)
    }

    /// The card MAC on already padded data: ISO/IEC 9797-1 MAC algorithm 3 for 3DES (single-DES
    /// CBC under K_L, final D_R/E_L), plain CBC-MAC for SM4; the final block (8 or 16 bytes).
    pub(crate) fn card_mac_padded(&self, padded: &[u8]) -> [u8; 16] {
        match &self.inner {
            Inner::Tdes(c) => {
                let mut h = [0u8; 16];
                let b = GenericArray::from_mut_slice(&mut h[..8]);
                for chunk in padded.chunks(8) {
                    for (x, y) in b.iter_mut().zip(chunk) {
                        *x ^= y;
                    }
                    c.0.encrypt_block(b);
                }
                c.1.decrypt_block(b);
                c.0.encrypt_block(b);
                h
            }
            Inner::Sm4(_) => self.cbc_mac_padded(padded),
        }
    }

    /// Plain CBC-MAC (ISO/IEC 9797-1 MAC algorithm 1 with this cipher, zero IV) over data that
    /// is already padded; returns the final block (8 or 16 bytes, in a 16-byte buffer).
    pub(crate) fn cbc_mac_padded(&self, padded: &[u8]) -> [u8; 16] {
        let n = self.block_len();
        let mut h = [0u8; 16];
        for chunk in padded.chunks(n) {
            for (x, c) in h[..n].iter_mut().zip(chunk) {
                *x ^= c;
            }
            self.encrypt_block(&mut h[..n]);
        }
        h
    }
}

/// ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC", ANSI X9.19 with a double-length key) with
/// single-DES CBC under K_L and a final decrypt K_R / encrypt K_L on the last block.
/// `padded` must be a non-empty multiple of 8 bytes.
pub fn retail_mac(key: &[u8; 16], padded: &[u8]) -> [u8; 8] {
    let mut kl = [0u8; 8];
    let mut kr = [0u8; 8];
    kl.copy_from_slice(&key[..8]);
    kr.copy_from_slice(&key[8..]);
    let left = des::Des::new(GenericArray::from_slice(&kl));
    let right = des::Des::new(GenericArray::from_slice(&kr));
    kl.fill(0);
    kr.fill(0);
    let mut h = [0u8; 8];
    for chunk in padded.chunks(8) {
        for (x, c) in h.iter_mut().zip(chunk) {
            *x ^= c;
        }
        left.encrypt_block(GenericArray::from_mut_slice(&mut h));
    }
    right.decrypt_block(GenericArray::from_mut_slice(&mut h));
    left.encrypt_block(GenericArray::from_mut_slice(&mut h));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_method_2_always_adds_a_byte() {
        assert_eq!(pad_method_2(&[1; 8], 8).len(), 16);
        assert_eq!(pad_method_2(&[1; 7], 8), [1, 1, 1, 1, 1, 1, 1, 0x80]);
        assert_eq!(pad_method_2(&[], 16).len(), 16);
    }

    #[test]
    fn padding_method_1_pads_to_block_only_when_needed() {
        assert_eq!(pad_method_1(&[1; 8], 8).len(), 8);
        assert_eq!(pad_method_1(&[1; 9], 8).len(), 16);
        assert_eq!(pad_method_1(&[], 8), [0; 8]);
    }

    #[test]
    fn parity_adjustment_sets_odd_parity_and_keeps_high_bits() {
        let mut k = [0x00, 0x01, 0xFE, 0xFF, 0x12, 0x34, 0x56, 0x78];
        adjust_odd_parity(&mut k);
        assert!(has_odd_parity(&k));
        assert_eq!(k, [0x01, 0x01, 0xFE, 0xFE, 0x13, 0x34, 0x57, 0x79]);
    }

    #[test]
    fn cbc_round_trips_for_both_algorithms() {
        for alg in [
            crate::card_crypto::CardAlgorithm::Tdes,
            crate::card_crypto::CardAlgorithm::Sm4,
        ] {
            let c = CardCipher::new(alg, &[7u8; 16]);
            let data = [0x5Au8; 32];
            let enc = c.encrypt_cbc_zero_iv(&data).expect("aligned");
            assert_ne!(enc[..], data[..]);
            assert_eq!(c.decrypt_cbc_zero_iv(&enc).expect("aligned"), data);
            assert!(c.encrypt_cbc_zero_iv(&data[..5]).is_none());
        }
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
