//! Working-key ciphers, randomness and key check values inside the HSM.
//!
//! Why this exists: PIN blocks, MACs and key exchange need block operations on keys of several
//! algorithms (2- and 3-key 3DES, SM4, AES-128/256). [`WorkingCipher`] expands a [`ClearKey`]
//! once so the software HSM can cache it per token. Randomness comes from `ring`'s system RNG.

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::HsmError;
use crate::keys::{ClearKey, KeyAlgorithm};
use crate::mac::MacPadding;

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), HsmError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| HsmError::Internal)
}

/// An expanded double-length 3DES key: the EDE cipher and its halves K_L and K_R, expanded once
/// so the ISO/IEC 9797-1 algorithm 3 MAC (single DES under K_L per block) needs no key schedule
/// per message.
#[derive(Clone)]
pub struct Tdes2 {
    ede: des::TdesEde2,
    left: des::Des,
    right: des::Des,
}

impl Tdes2 {
    /// ISO/IEC 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC): single-DES CBC under K_L over
    /// `data` padded with `padding`, then D_R and E_L on the last block. Pads as it goes, so the
    /// message is not copied.
    pub fn retail_mac(&self, data: &[u8], padding: MacPadding) -> [u8; 8] {
        let method_2 = padding == MacPadding::Method2;
        let mut h = [0u8; 8];
        let mut step = |block: &[u8]| {
            for (x, c) in h.iter_mut().zip(block) {
                *x ^= c;
            }
            self.left
                .encrypt_block(GenericArray::from_mut_slice(&mut h));
        };
        let mut chunks = data.chunks_exact(8);
        for block in chunks.by_ref() {
            step(block);
        }
        let rest = chunks.remainder();
        // Method 1 adds nothing to aligned data (but one zero block to empty data); method 2
        // always adds 0x80 then zeros.
        if method_2 || !rest.is_empty() || data.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            if method_2 {
                last[rest.len()] = 0x80;
            }
            step(&last);
        }
        let b = GenericArray::from_mut_slice(&mut h);
        self.right.decrypt_block(b);
        self.left.encrypt_block(b);
        h
    }
}

/// An expanded working key of any supported algorithm.
#[derive(Clone)]
pub enum WorkingCipher {
    /// Double-length 3DES (with its two single-DES halves, for the retail MAC).
    Tdes2(Box<Tdes2>),
    /// Triple-length 3DES.
    Tdes3(Box<des::TdesEde3>),
    /// SM4.
    Sm4(Box<sm4::Sm4>),
    /// AES-128.
    Aes128(Box<aes::Aes128>),
    /// AES-256.
    Aes256(Box<aes::Aes256>),
}

impl std::fmt::Debug for WorkingCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkingCipher(****)")
    }
}

impl WorkingCipher {
    /// Expand `key` (lengths are guaranteed by [`ClearKey::new`]).
    pub fn new(key: &ClearKey) -> Result<WorkingCipher, HsmError> {
        let b = key.bytes();
        let bad = |_| HsmError::IncompatibleKeyLength;
        Ok(match key.scheme().algorithm() {
            KeyAlgorithm::Tdes2 => {
                let half = |h: &[u8]| des::Des::new_from_slice(h).map_err(bad);
                WorkingCipher::Tdes2(Box::new(Tdes2 {
                    ede: des::TdesEde2::new_from_slice(b).map_err(bad)?,
                    left: half(b.get(..8).ok_or(HsmError::IncompatibleKeyLength)?)?,
                    right: half(b.get(8..16).ok_or(HsmError::IncompatibleKeyLength)?)?,
                }))
            }
            KeyAlgorithm::Tdes3 => {
                WorkingCipher::Tdes3(Box::new(des::TdesEde3::new_from_slice(b).map_err(bad)?))
            }
            KeyAlgorithm::Sm4 => {
                WorkingCipher::Sm4(Box::new(sm4::Sm4::new_from_slice(b).map_err(bad)?))
            }
            KeyAlgorithm::Aes128 => {
                WorkingCipher::Aes128(Box::new(aes::Aes128::new_from_slice(b).map_err(bad)?))
            }
            KeyAlgorithm::Aes256 => {
                WorkingCipher::Aes256(Box::new(aes::Aes256::new_from_slice(b).map_err(bad)?))
            }
        })
    }

    /// Block length (8 for 3DES, 16 otherwise).
    pub fn block_len(&self) -> usize {
        match self {
            WorkingCipher::Tdes2(_) | WorkingCipher::Tdes3(_) => 8,
            _ => 16,
        }
    }

    /// True for 3DES keys.
    pub fn is_des(&self) -> bool {
        self.block_len() == 8
    }

    /// Encrypt one block in place; wrong lengths are ignored (debug builds assert).
    pub fn encrypt_block(&self, block: &mut [u8]) {
        debug_assert_eq!(block.len(), self.block_len());
        if block.len() != self.block_len() {
            return;
        }
        match self {
            WorkingCipher::Tdes2(c) => c.ede.encrypt_block(GenericArray::from_mut_slice(block)),
            WorkingCipher::Tdes3(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            WorkingCipher::Sm4(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            WorkingCipher::Aes128(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            WorkingCipher::Aes256(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
        }
    }

    /// Decrypt one block in place; wrong lengths are ignored (debug builds assert).
    pub fn decrypt_block(&self, block: &mut [u8]) {
        debug_assert_eq!(block.len(), self.block_len());
        if block.len() != self.block_len() {
            return;
        }
        match self {
            WorkingCipher::Tdes2(c) => c.ede.decrypt_block(GenericArray::from_mut_slice(block)),
            WorkingCipher::Tdes3(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            WorkingCipher::Sm4(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            WorkingCipher::Aes128(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            WorkingCipher::Aes256(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
        }
    }

    /// ECB over whole blocks; error 15 when not aligned.
    pub fn encrypt_ecb(&self, data: &mut [u8]) -> Result<(), HsmError> {
        let n = self.block_len();
        if data.is_empty() || data.len() % n != 0 {
            return Err(HsmError::InvalidInput);
        }
        data.chunks_mut(n).for_each(|c| self.encrypt_block(c));
        Ok(())
    }

    /// ECB decryption over whole blocks; error 15 when not aligned.
    pub fn decrypt_ecb(&self, data: &mut [u8]) -> Result<(), HsmError> {
        let n = self.block_len();
        if data.is_empty() || data.len() % n != 0 {
            return Err(HsmError::InvalidInput);
        }
        data.chunks_mut(n).for_each(|c| self.decrypt_block(c));
        Ok(())
    }
}

/// KCV: first 3 bytes of the encryption of a zero block under the key.
pub fn key_check_value(key: &ClearKey) -> [u8; 3] {
    match WorkingCipher::new(key) {
        Ok(c) => {
            let mut z = [0u8; 16];
            let n = c.block_len();
            c.encrypt_block(&mut z[..n]);
            [z[0], z[1], z[2]]
        }
        Err(_) => [0; 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyScheme;

    #[test]
    fn kcv_of_0123456789abcdef_fedcba9876543210_is_08d7b4() {
        let k = ClearKey::new(
            KeyScheme::U,
            hex::decode("0123456789ABCDEFFEDCBA9876543210").expect("hex"),
        )
        .expect("key");
        assert_eq!(hex::encode_upper(key_check_value(&k)), "08D7B4");
    }

    #[test]
    fn random_fills_differ() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        fill_random(&mut a).expect("rng");
        fill_random(&mut b).expect("rng");
        assert_ne!(a, b);
    }
}
