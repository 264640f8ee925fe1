//! Message authentication codes: ISO/IEC 9797-1 algorithms 1 and 3 (ANSI X9.19 retail MAC) with
//! 3DES keys, and AES-CMAC (NIST SP 800-38B / RFC 4493) with AES keys.
//!
//! Why this exists: ISO 8583 links and terminals authenticate messages with a TAK/ZAK. The
//! switch asks the HSM for the MAC; this module is the computation on the unwrapped key.

use cipher::generic_array::GenericArray;
use cmac::Mac;

use crate::block::{pad_method_1, pad_method_2, retail_mac};
use crate::crypto::WorkingCipher;
use crate::error::HsmError;
use crate::keys::{ClearKey, KeyAlgorithm};

/// MAC algorithm (payShield M6/M8 "MAC algorithm" digit in brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacAlgorithm {
    /// ISO 9797-1 MAC algorithm 1: CBC-MAC with the full 3DES key ('1').
    Iso9797Alg1,
    /// ISO 9797-1 MAC algorithm 3 = ANSI X9.19 retail MAC with a double-length key ('3').
    Iso9797Alg3,
    /// AES-CMAC ('5', AES keys only).
    AesCmac,
}

impl MacAlgorithm {
    /// Parse the payShield digit.
    pub fn from_code(c: u8) -> Result<MacAlgorithm, HsmError> {
        match c {
            b'1' => Ok(MacAlgorithm::Iso9797Alg1),
            b'3' => Ok(MacAlgorithm::Iso9797Alg3),
            b'5' => Ok(MacAlgorithm::AesCmac),
            _ => Err(HsmError::InvalidInput),
        }
    }
    /// The payShield digit.
    pub fn code(self) -> u8 {
        match self {
            MacAlgorithm::Iso9797Alg1 => b'1',
            MacAlgorithm::Iso9797Alg3 => b'3',
            MacAlgorithm::AesCmac => b'5',
        }
    }
}

/// ISO 9797-1 padding method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacPadding {
    /// Method 1: zeros to a block boundary ('1').
    Method1,
    /// Method 2: 0x80 then zeros ('2').
    Method2,
}

impl MacPadding {
    /// Parse the payShield digit.
    pub fn from_code(c: u8) -> Result<MacPadding, HsmError> {
        match c {
            b'1' => Ok(MacPadding::Method1),
            b'2' => Ok(MacPadding::Method2),
            _ => Err(HsmError::InvalidInput),
        }
    }
    /// The payShield digit.
    pub fn code(self) -> u8 {
        match self {
            MacPadding::Method1 => b'1',
            MacPadding::Method2 => b'2',
        }
    }
}

/// Upper bound on MAC input accepted by the HSM (payShield limits M6 to 32 KiB per call).
pub const MAC_DATA_LEN_MAX: usize = 32 * 1024;

/// Compute a full-length MAC (8 bytes for 3DES, 16 for AES-CMAC).
pub fn compute_mac(
    key: &ClearKey,
    cipher: &WorkingCipher,
    algorithm: MacAlgorithm,
    padding: MacPadding,
    data: &[u8],
) -> Result<Vec<u8>, HsmError> {
    if data.len() > MAC_DATA_LEN_MAX {
        return Err(HsmError::DataLength);
    }
    match algorithm {
        MacAlgorithm::AesCmac => {
            let out = match key.scheme().algorithm() {
                KeyAlgorithm::Aes128 => {
                    let mut m = <cmac::Cmac<aes::Aes128> as cmac::digest::KeyInit>::new(
                        GenericArray::from_slice(key.bytes()),
                    );
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                KeyAlgorithm::Aes256 => {
                    let mut m = <cmac::Cmac<aes::Aes256> as cmac::digest::KeyInit>::new(
                        GenericArray::from_slice(key.bytes()),
                    );
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                _ => return Err(HsmError::InvalidKeyType),
            };
            Ok(out)
        }
        MacAlgorithm::Iso9797Alg1 | MacAlgorithm::Iso9797Alg3 => {
            if !cipher.is_des() {
                return Err(HsmError::InvalidKeyType);
            }
            if let (MacAlgorithm::Iso9797Alg3, WorkingCipher::Tdes2(c)) = (algorithm, cipher) {
                return Ok(c.retail_mac(data, padding).to_vec());
            }
            let padded = match padding {
                MacPadding::Method1 => pad_method_1(data, 8),
                MacPadding::Method2 => pad_method_2(data, 8),
            };
            if algorithm == MacAlgorithm::Iso9797Alg3 {
                let k: [u8; 16] = key.as_16()?;
                return Ok(retail_mac(&k, &padded).to_vec());
            }
            let mut h = [0u8; 8];
            for chunk in padded.chunks(8) {
                for (x, c) in h.iter_mut().zip(chunk) {
                    *x ^= c;
                }
                cipher.encrypt_block(&mut h);
            }
            Ok(h.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyScheme;

    fn key(scheme: KeyScheme, h: &str) -> (ClearKey, WorkingCipher) {
        let k = ClearKey::new(scheme, hex::decode(h).expect("hex")).expect("key");
        let c = WorkingCipher::new(&k).expect("cipher");
        (k, c)
    }

    #[test]
    fn iso9797_examples_with_a_single_des_key_written_twice() {
        // ISO/IEC 9797-1 Annex B / ANSI X9.9 example: key 0123456789ABCDEF,
        // data "7654321 Now is the time for " (padding method 1) → F1D30F6849312CA4.
        // With K_L = K_R both algorithm 1 (3DES) and algorithm 3 reduce to single DES.
        let (k, c) = key(KeyScheme::U, "0123456789ABCDEF0123456789ABCDEF");
        let data = b"7654321 Now is the time for ";
        for alg in [MacAlgorithm::Iso9797Alg1, MacAlgorithm::Iso9797Alg3] {
            let m = compute_mac(&k, &c, alg, MacPadding::Method1, data).expect("mac");
            assert_eq!(hex::encode_upper(m), "F1D30F6849312CA4");
        }
        // Method 2 adds 80 00 00 00 → a different MAC.
        let m2 =
            compute_mac(&k, &c, MacAlgorithm::Iso9797Alg3, MacPadding::Method2, data).expect("m");
        assert_ne!(hex::encode_upper(m2), "F1D30F6849312CA4");
    }

    #[test]
    fn x919_with_distinct_halves_differs_from_single_des() {
        let (k, c) = key(KeyScheme::U, "0123456789ABCDEFFEDCBA9876543210");
        let data = b"7654321 Now is the time for ";
        let a3 =
            compute_mac(&k, &c, MacAlgorithm::Iso9797Alg3, MacPadding::Method1, data).expect("m");
        let a1 =
            compute_mac(&k, &c, MacAlgorithm::Iso9797Alg1, MacPadding::Method1, data).expect("m");
        assert_ne!(a3, a1);
        assert_ne!(hex::encode_upper(&a3), "F1D30F6849312CA4");
    }

    #[test]
    fn iso9797_annex_b4_algorithm_3_vectors_with_distinct_halves() {
        // ISO/IEC 9797-1:2011 Annex B.4: MAC algorithm 3, padding method 1,
        // K = 0123456789ABCDEF FEDCBA9876543210, MAC truncated to 32 bits.
        let (k, c) = key(KeyScheme::U, "0123456789ABCDEFFEDCBA9876543210");
        for (data, mac) in [
            (&b"Now is the time for all "[..], "A1C72E74"),
            (&b"Now is the time for it"[..], "2E2B1428"),
        ] {
            let m = compute_mac(&k, &c, MacAlgorithm::Iso9797Alg3, MacPadding::Method1, data)
                .expect("mac");
            assert_eq!(hex::encode_upper(&m[..4]), mac);
        }
    }

    #[test]
    fn streaming_retail_mac_equals_the_mac_of_the_padded_copy() {
        // The cached-halves path pads as it goes; the reference pads a copy and expands the
        // halves per call. Every length around the block boundaries, both paddings.
        let (k, c) = key(KeyScheme::U, "0123456789ABCDEFFEDCBA9876543210");
        let raw: [u8; 16] = k.as_16().expect("16");
        let data: Vec<u8> = (0u8..41).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..=data.len() {
            for (p, pad) in [(MacPadding::Method1, 1), (MacPadding::Method2, 2)] {
                let padded = if pad == 1 {
                    pad_method_1(&data[..n], 8)
                } else {
                    pad_method_2(&data[..n], 8)
                };
                let m = compute_mac(&k, &c, MacAlgorithm::Iso9797Alg3, p, &data[..n]).expect("m");
                assert_eq!(
                    m,
                    retail_mac(&raw, &padded).to_vec(),
                    "length {n} padding {pad}"
                );
            }
        }
    }

    #[test]
    fn aes_cmac_rfc4493_vectors() {
        let (k, c) = key(KeyScheme::A, "2B7E151628AED2A6ABF7158809CF4F3C");
        let m = compute_mac(&k, &c, MacAlgorithm::AesCmac, MacPadding::Method1, b"").expect("m");
        assert_eq!(hex::encode(m), "bb1d6929e95937287fa37d129b756746");
        let msg = hex::decode("6bc1bee22e409f96e93d7e117393172a").expect("hex");
        let m = compute_mac(&k, &c, MacAlgorithm::AesCmac, MacPadding::Method1, &msg).expect("m");
        assert_eq!(hex::encode(m), "070a16b46b4d4144f79bdd9dd04a287c");
    }

    #[test]
    fn algorithm_key_mismatch_is_invalid_key_type() {
        let (k, c) = key(KeyScheme::U, "0123456789ABCDEFFEDCBA9876543210");
        assert_eq!(
            compute_mac(&k, &c, MacAlgorithm::AesCmac, MacPadding::Method1, b"x"),
            Err(HsmError::InvalidKeyType)
        );
        let big = vec![0u8; MAC_DATA_LEN_MAX + 1];
        assert_eq!(
            compute_mac(&k, &c, MacAlgorithm::Iso9797Alg1, MacPadding::Method1, &big),
            Err(HsmError::DataLength)
        );
    }
}
