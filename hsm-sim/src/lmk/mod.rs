//! The local master key (LMK) set and the payShield variant scheme that wraps working keys.
//!
//! Why this exists: outside the HSM a key exists only as a token encrypted under the LMK. This
//! module owns the LMK (20 double-length DES pairs, 00-01 … 38-39), applies the key-type variant
//! (first byte of the pair's left half XORed with A6, 5A, 6A, DE, 2B, 50, 74, 9C or FA for
//! variants 1-9) and the key-length ("scheme") variant (first byte of the right half XORed with
//! A6/5A for the two halves of a double-length key under scheme U, 6A/DE/2B for the thirds of a
//! triple-length key under scheme T; none for X9.17 schemes X/Y), exactly as described for
//! payShield-compatible simulators in `shared/vectors/README.md`.
//!
//! Every (pair, key-type variant, scheme variant) combination is expanded once when the set is
//! loaded, so wrapping and unwrapping a token never re-runs a DES key schedule.
//!
//! Development uses the published test LMK ([`LmkSet::test_lmk`]); production loads the LMK from
//! two or more components held by different custodians ([`LmkSet::from_components`], dual
//! control): the LMK is the XOR of the components, each of which must have odd parity, and a
//! guessable result is refused. Programs choose between the two with [`LmkSource`] and
//! [`LmkSet::load`] (`components` module).

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use zeroize::Zeroize;

mod components;

pub use components::{
    check_lmk_pairs, des_key_weakness, pair_weakness, LmkError, LmkSource, PairName, Weakness,
};

/// Number of LMK pairs (00-01 … 38-39).
pub const LMK_PAIR_COUNT: usize = 20;

/// Key-type variants 0-9 applied to the first byte of the LMK pair's left half.
pub const KEY_TYPE_VARIANTS: [u8; 10] =
    [0x00, 0xA6, 0x5A, 0x6A, 0xDE, 0x2B, 0x50, 0x74, 0x9C, 0xFA];

/// Scheme (key-length) variants applied to the first byte of the pair's right half, per part.
pub const DOUBLE_LENGTH_VARIANTS: [u8; 2] = [0xA6, 0x5A];
/// Triple-length scheme variants (scheme T).
pub const TRIPLE_LENGTH_VARIANTS: [u8; 3] = [0x6A, 0xDE, 0x2B];

/// The published test LMK used by payShield-compatible simulators (never for production).
pub const TEST_LMK_HEX: [&str; LMK_PAIR_COUNT] = [
    "01010101010101017902CD1FD36EF8BA",
    "20202020202020203131313131313131",
    "40404040404040405151515151515151",
    "61616161616161617070707070707070",
    "80808080808080809191919191919191",
    "A1A1A1A1A1A1A1A1B0B0B0B0B0B0B0B0",
    "C1C1010101010101D0D0010101010101",
    "E0E0010101010101F1F1010101010101",
    "1C587F1C13924FEF0101010101010101",
    "01010101010101010101010101010101",
    "02020202020202020404040404040404",
    "07070707070707071010101010101010",
    "13131313131313131515151515151515",
    "16161616161616161919191919191919",
    "1A1A1A1A1A1A1A1A1C1C1C1C1C1C1C1C",
    "23232323232323232525252525252525",
    "26262626262626262929292929292929",
    "2A2A2A2A2A2A2A2A2C2C2C2C2C2C2C2C",
    "2F2F2F2F2F2F2F2F3131313131313131",
    "01010101010101010101010101010101",
];

/// Which extra variant a part of a key is wrapped with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PartVariant {
    /// X9.17 schemes: no length variant.
    None,
    /// Double-length part 0 or 1 (A6, 5A).
    Double(usize),
    /// Triple-length part 0, 1 or 2 (6A, DE, 2B).
    Triple(usize),
}

impl PartVariant {
    fn index(self) -> usize {
        match self {
            PartVariant::None => 0,
            PartVariant::Double(i) => 1 + i.min(1),
            PartVariant::Triple(i) => 3 + i.min(2),
        }
    }
    fn byte(self) -> u8 {
        match self {
            PartVariant::None => 0,
            PartVariant::Double(i) => DOUBLE_LENGTH_VARIANTS[i.min(1)],
            PartVariant::Triple(i) => TRIPLE_LENGTH_VARIANTS[i.min(2)],
        }
    }
}

const PART_VARIANTS: usize = 6;

/// A loaded LMK set with every variant key schedule expanded. `Debug` prints `****`.
pub struct LmkSet {
    /// schedules[pair][key-type variant][part variant]
    schedules: Vec<des::TdesEde2>,
    check_value: [u8; 3],
}

impl std::fmt::Debug for LmkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LmkSet(****, kcv {})",
            hex::encode_upper(self.check_value)
        )
    }
}

impl LmkSet {
    /// The published test LMK (development and tests only).
    pub fn test_lmk() -> LmkSet {
        let mut pairs = [[0u8; 16]; LMK_PAIR_COUNT];
        for (p, h) in pairs.iter_mut().zip(TEST_LMK_HEX) {
            // The constant is valid hex; a failure would leave zeros and fail the KCV test.
            let _ = hex::decode_to_slice(h, p);
        }
        let set = LmkSet::from_pairs(&pairs);
        pairs.zeroize();
        set
    }

    /// Load from clear pairs (20 × 16 bytes).
    pub fn from_pairs(pairs: &[[u8; 16]; LMK_PAIR_COUNT]) -> LmkSet {
        let mut schedules = Vec::with_capacity(LMK_PAIR_COUNT * 10 * PART_VARIANTS);
        for pair in pairs {
            for kv in KEY_TYPE_VARIANTS {
                for part in 0..PART_VARIANTS {
                    let pv = match part {
                        0 => PartVariant::None,
                        1 | 2 => PartVariant::Double(part - 1),
                        _ => PartVariant::Triple(part - 3),
                    };
                    let mut k = *pair;
                    k[0] ^= kv;
                    k[8] ^= pv.byte();
                    schedules.push(des::TdesEde2::new(GenericArray::from_slice(&k)));
                    k.zeroize();
                }
            }
        }
        // LMK check value: KCV of pair 00-01 (what a payShield console prints for the set).
        let c = des::TdesEde2::new(GenericArray::from_slice(&pairs[0]));
        let mut z = GenericArray::clone_from_slice(&[0u8; 8]);
        c.encrypt_block(&mut z);
        LmkSet {
            schedules,
            check_value: [z[0], z[1], z[2]],
        }
    }

    /// Check value of the LMK set (KCV of pair 00-01), safe to print.
    pub fn check_value(&self) -> [u8; 3] {
        self.check_value
    }

    fn schedule(&self, pair: usize, variant: usize, part: PartVariant) -> &des::TdesEde2 {
        let idx =
            (pair.min(LMK_PAIR_COUNT - 1) * 10 + variant.min(9)) * PART_VARIANTS + part.index();
        &self.schedules[idx]
    }

    /// Encrypt one 8-byte part of a key under (pair, variant, part).
    pub(crate) fn encrypt_part(
        &self,
        pair: usize,
        variant: usize,
        part: PartVariant,
        block: &mut [u8],
    ) {
        if block.len() == 8 {
            self.schedule(pair, variant, part)
                .encrypt_block(GenericArray::from_mut_slice(block));
        }
    }

    /// Decrypt one 8-byte part of a key under (pair, variant, part).
    pub(crate) fn decrypt_part(
        &self,
        pair: usize,
        variant: usize,
        part: PartVariant,
        block: &mut [u8],
    ) {
        if block.len() == 8 {
            self.schedule(pair, variant, part)
                .decrypt_block(GenericArray::from_mut_slice(block));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_lmk_has_odd_parity_and_stable_check_value() {
        for h in TEST_LMK_HEX {
            let b = hex::decode(h).expect("hex");
            assert!(crate::block::has_odd_parity(&b), "{h}");
        }
        let a = LmkSet::test_lmk();
        let b = LmkSet::test_lmk();
        assert_eq!(a.check_value(), b.check_value());
        assert!(!format!("{a:?}").contains("0101010101"));
    }
}
