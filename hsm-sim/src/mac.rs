//! Message authentication codes: ISO/IEC 9797-1 algorithms 1 and 3 (ANSI X9.19 retail MAC) with
//! 3DES keys, the SM4 CBC-MAC (GB/T 15852.1-2008 MAC algorithm 1 with the SM4 block cipher of
//! GB/T 32907-2016) with SM4 keys, and AES-CMAC (NIST SP 800-38B / RFC 4493) with AES keys.
//!
//! Why this exists: ISO 8583 links and terminals authenticate messages with a TAK/ZAK. The
//! switch asks the HSM for the MAC; this module is the computation on the unwrapped key.
//!
//! The SM4 MAC is the one PBOC and UnionPay specify over a message: CBC with a zero initial
//! value over 16-byte blocks (GB/T 15852.1-2008 = ISO/IEC 9797-1:1999, algorithm 1: initial
//! transformation 1, output transformation 1), padding method 1 or 2 as the caller says, the
//! whole last block returned (16 bytes); the caller truncates it to its leftmost bytes (an
//! ISO 8583 field 64 takes 8, a card's secure messaging 4). The block cipher is the RustCrypto
//! `sm4` crate; only the chaining is here.

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
    /// SM4 CBC-MAC: GB/T 15852.1-2008 MAC algorithm 1 with SM4 ('9', SM4 keys only). A
    /// project extension: payShield has no SM4 digit for M6/M8, and '9' is unused there.
    Sm4CbcMac,
}

impl MacAlgorithm {
    /// Parse the payShield digit.
    pub fn from_code(c: u8) -> Result<MacAlgorithm, HsmError> {
        match c {
            b'1' => Ok(MacAlgorithm::Iso9797Alg1),
            b'3' => Ok(MacAlgorithm::Iso9797Alg3),
            b'5' => Ok(MacAlgorithm::AesCmac),
            b'9' => Ok(MacAlgorithm::Sm4CbcMac),
            _ => Err(HsmError::InvalidInput),
        }
    }
    /// The payShield digit.
    pub fn code(self) -> u8 {
        match self {
            MacAlgorithm::Iso9797Alg1 => b'1',
            MacAlgorithm::Iso9797Alg3 => b'3',
            MacAlgorithm::AesCmac => b'5',
            MacAlgorithm::Sm4CbcMac => b'9',
        }
    }

    /// Length of the full MAC in bytes (the last CBC block, or the CMAC tag).
    pub fn mac_len(self) -> usize {
        match self {
            MacAlgorithm::Iso9797Alg1 | MacAlgorithm::Iso9797Alg3 => 8,
            MacAlgorithm::AesCmac | MacAlgorithm::Sm4CbcMac => 16,
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

/// SM4 CBC-MAC (GB/T 15852.1-2008 MAC algorithm 1, zero initial value, 16-byte blocks) over
/// `data` padded with `padding`, the whole last block. Pads as it goes, so the message is not
/// copied. Padding method 1 adds nothing to aligned data (one zero block to empty data);
/// method 2 always adds 0x80 then zeros.
pub fn sm4_cbc_mac(cipher: &sm4::Sm4, data: &[u8], padding: MacPadding) -> [u8; 16] {
    use cipher::BlockEncrypt;
    let method_2 = padding == MacPadding::Method2;
    let mut h = GenericArray::from([0u8; 16]);
    let mut chunks = data.chunks_exact(16);
    for block in chunks.by_ref() {
        for (x, c) in h.iter_mut().zip(block) {
            *x ^= c;
        }
        cipher.encrypt_block(&mut h);
    }
    let rest = chunks.remainder();
    if method_2 || !rest.is_empty() || data.is_empty() {
        let mut last = [0u8; 16];
        last[..rest.len()].copy_from_slice(rest);
        if method_2 {
            last[rest.len()] = 0x80;
        }
        for (x, c) in h.iter_mut().zip(last) {
            *x ^= c;
        }
        cipher.encrypt_block(&mut h);
    }
    h.into()
}

/// Compute a full-length MAC (8 bytes for 3DES, 16 for SM4 and AES-CMAC).
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
        MacAlgorithm::Sm4CbcMac => match cipher {
            WorkingCipher::Sm4(c) if key.scheme().algorithm() == KeyAlgorithm::Sm4 => {
                Ok(sm4_cbc_mac(c, data, padding).to_vec())
            }
            _ => Err(HsmError::InvalidKeyType),
        },
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
    fn aes_cmac_rfc4493_vectors_of_40_and_64_bytes() {
        // RFC 4493 §4, examples 3 and 4 (the same as NIST SP 800-38B D.1).
        let (k, c) = key(KeyScheme::A, "2B7E151628AED2A6ABF7158809CF4F3C");
        let msg = hex::decode(concat!(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
        ))
        .expect("hex");
        for (n, mac) in [
            (40, "dfa66747de9ae63030ca32611497c827"),
            (64, "51f0bebf7e3b9d92fc49741779363cfe"),
        ] {
            let m = compute_mac(
                &k,
                &c,
                MacAlgorithm::AesCmac,
                MacPadding::Method1,
                &msg[..n],
            )
            .expect("m");
            assert_eq!(hex::encode(m), mac, "{n} bytes");
        }
    }

    #[test]
    fn sm4_mac_of_one_aligned_block_is_the_gb_t_32907_appendix_a_vector() {
        // GB/T 32907-2016 Appendix A, example 1 (also draft-ribose-cfrg-sm4, A.1.1): key and
        // plaintext 0123456789ABCDEFFEDCBA9876543210 → 681EDF34D206965E86B3E94F536E4246. An
        // aligned one-block message is not padded by method 1, so its CBC-MAC is that block's
        // encryption.
        let (k, c) = key(KeyScheme::G, "0123456789ABCDEFFEDCBA9876543210");
        let data = hex::decode("0123456789ABCDEFFEDCBA9876543210").expect("hex");
        let m =
            compute_mac(&k, &c, MacAlgorithm::Sm4CbcMac, MacPadding::Method1, &data).expect("m");
        assert_eq!(hex::encode(&m), "681edf34d206965e86b3e94f536e4246");
        // Method 2 adds the block 80 00…00, chained on the first: E(C1 ⊕ 80 00…00).
        let m2 =
            compute_mac(&k, &c, MacAlgorithm::Sm4CbcMac, MacPadding::Method2, &data).expect("m");
        let mut expected = m.clone();
        expected[0] ^= 0x80;
        c.encrypt_block(&mut expected);
        assert_eq!(m2, expected);
    }

    #[test]
    fn sm4_cbc_mac_published_vector_with_its_initial_value_folded_into_the_first_block() {
        // SM4 CBC-MAC test vector 0 of the published "密码算法测试向量 — Cipher MAC SM4" set
        // (http://daimami.com/other/1372092.htm; CBC-MAC, zero padding; the same result comes
        // from OpenSSL's SM4-CBC): key EEF3C9888129755F2C769DBC459448CE, initial value
        // FBD7B7AB0793F814B28A970F9E859C05, data 99C9D02D03F2CD394A680DC51B112322 → MAC
        // 530EDF0605A302F30096AE46BD6316AF. A CBC-MAC with initial value IV over D1‖D2‖… is the
        // zero-IV CBC-MAC (GB/T 15852.1 algorithm 1) over (D1 ⊕ IV)‖D2‖….
        let (k, c) = key(KeyScheme::G, "EEF3C9888129755F2C769DBC459448CE");
        let iv = hex::decode("FBD7B7AB0793F814B28A970F9E859C05").expect("hex");
        let mut data = hex::decode("99C9D02D03F2CD394A680DC51B112322").expect("hex");
        for (d, v) in data.iter_mut().zip(iv) {
            *d ^= v;
        }
        let m =
            compute_mac(&k, &c, MacAlgorithm::Sm4CbcMac, MacPadding::Method1, &data).expect("m");
        assert_eq!(hex::encode_upper(m), "530EDF0605A302F30096AE46BD6316AF");
    }

    #[test]
    fn sm4_cbc_mac_is_the_last_block_of_a_zero_iv_cbc_encryption_by_the_cbc_crate() {
        use cbc::cipher::block_padding::NoPadding;
        use cbc::cipher::{BlockEncryptMut, KeyIvInit};
        let clear = hex::decode("0123456789ABCDEFFEDCBA9876543210").expect("hex");
        let (k, c) = key(KeyScheme::G, "0123456789ABCDEFFEDCBA9876543210");
        let data: Vec<u8> = (0u8..70)
            .map(|i| i.wrapping_mul(29).wrapping_add(7))
            .collect();
        for n in 0..=data.len() {
            for (p, padded) in [
                (MacPadding::Method1, pad_method_1(&data[..n], 16)),
                (MacPadding::Method2, pad_method_2(&data[..n], 16)),
            ] {
                let mut buf = padded.clone();
                let cbc = cbc::Encryptor::<sm4::Sm4>::new_from_slices(&clear, &[0u8; 16])
                    .expect("key and iv");
                let ct = cbc
                    .encrypt_padded_mut::<NoPadding>(&mut buf, padded.len())
                    .expect("aligned");
                let m = compute_mac(&k, &c, MacAlgorithm::Sm4CbcMac, p, &data[..n]).expect("m");
                assert_eq!(m, ct[ct.len() - 16..], "length {n} padding {p:?}");
            }
        }
    }

    #[test]
    fn every_mac_algorithm_wants_its_own_key_algorithm() {
        let (tdes, tdes_c) = key(KeyScheme::U, "0123456789ABCDEFFEDCBA9876543210");
        let (sm4, sm4_c) = key(KeyScheme::G, "0123456789ABCDEFFEDCBA9876543210");
        let (aes, aes_c) = key(KeyScheme::A, "2B7E151628AED2A6ABF7158809CF4F3C");
        let m = MacPadding::Method1;
        for (k, c, alg) in [
            (&tdes, &tdes_c, MacAlgorithm::Sm4CbcMac),
            (&aes, &aes_c, MacAlgorithm::Sm4CbcMac),
            (&sm4, &sm4_c, MacAlgorithm::AesCmac),
            (&sm4, &sm4_c, MacAlgorithm::Iso9797Alg3),
        ] {
            assert_eq!(
                compute_mac(k, c, alg, m, b"x"),
                Err(HsmError::InvalidKeyType),
                "{alg:?}"
            );
        }
        for alg in [
            MacAlgorithm::Iso9797Alg1,
            MacAlgorithm::Iso9797Alg3,
            MacAlgorithm::AesCmac,
            MacAlgorithm::Sm4CbcMac,
        ] {
            assert_eq!(MacAlgorithm::from_code(alg.code()), Ok(alg));
        }
        assert_eq!(MacAlgorithm::from_code(b'7'), Err(HsmError::InvalidInput));
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
