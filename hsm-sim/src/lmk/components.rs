//! Loading an LMK: from component files under dual control, or the published test LMK only when
//! the operator asked for it by name; and the checks that refuse a guessable LMK.
//!
//! Why this exists: every key of the HSM is only as secret as the LMK. Issue 24 found the
//! simulator starting on the published test LMK by default, and nothing stopping custodians from
//! entering components that cancel out. The same checks serve the `hsm-sim` binary and any other
//! program that builds a [`SoftHsm`](crate::SoftHsm) from configuration (the switch's
//! `serve` with an in-process HSM): [`LmkSource::from_options`] then [`LmkSet::load`].
//!
//! Refused (FIPS 46-3 / NIST SP 800-67 weak and semi-weak DES keys, compared without parity
//! bits, since the XOR of two odd-parity components has even parity):
//! - fewer than two components (dual control), a component that is not 20 lines of 32 hex
//!   characters, a pair without odd parity (as payShield checks components);
//! - two identical components (they cancel to zero), a component pair whose 16 bytes are all
//!   equal;
//! - a combined pair with a half that is a weak or semi-weak DES key or all one byte, or whose
//!   two halves are equal (a double-length key that is single DES).

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroize;

use super::{LmkSet, LMK_PAIR_COUNT};
use crate::block::has_odd_parity;

/// The four weak DES keys (FIPS 46-3 / SP 800-67 §3.3.2), odd parity.
const WEAK_KEYS: [[u8; 8]; 4] = [
    [0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01],
    [0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE],
    [0xE0, 0xE0, 0xE0, 0xE0, 0xF1, 0xF1, 0xF1, 0xF1],
    [0x1F, 0x1F, 0x1F, 0x1F, 0x0E, 0x0E, 0x0E, 0x0E],
];

/// The twelve semi-weak DES keys (six pairs), odd parity.
const SEMI_WEAK_KEYS: [[u8; 8]; 12] = [
    [0x01, 0x1F, 0x01, 0x1F, 0x01, 0x0E, 0x01, 0x0E],
    [0x1F, 0x01, 0x1F, 0x01, 0x0E, 0x01, 0x0E, 0x01],
    [0x01, 0xE0, 0x01, 0xE0, 0x01, 0xF1, 0x01, 0xF1],
    [0xE0, 0x01, 0xE0, 0x01, 0xF1, 0x01, 0xF1, 0x01],
    [0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE],
    [0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01],
    [0x1F, 0xE0, 0x1F, 0xE0, 0x0E, 0xF1, 0x0E, 0xF1],
    [0xE0, 0x1F, 0xE0, 0x1F, 0xF1, 0x0E, 0xF1, 0x0E],
    [0x1F, 0xFE, 0x1F, 0xFE, 0x0E, 0xFE, 0x0E, 0xFE],
    [0xFE, 0x1F, 0xFE, 0x1F, 0xFE, 0x0E, 0xFE, 0x0E],
    [0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1, 0xFE],
    [0xFE, 0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1],
];

/// Why a DES key (an LMK pair or one half of it) is guessable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weakness {
    /// A weak DES key (encryption is its own inverse).
    Weak,
    /// A semi-weak DES key (its partner decrypts what it encrypts).
    SemiWeak,
    /// Every byte the same.
    AllBytesEqual,
    /// Left half equals right half: double-length in name, single DES in strength.
    HalvesEqual,
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Weakness::Weak => "a weak DES key",
            Weakness::SemiWeak => "a semi-weak DES key",
            Weakness::AllBytesEqual => "all bytes equal",
            Weakness::HalvesEqual => "both halves equal (single-length strength)",
        })
    }
}

/// An LMK pair's name as a payShield console prints it (`04-05` for index 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairName(pub usize);

impl fmt::Display for PairName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", 2 * self.0, 2 * self.0 + 1)
    }
}

/// Why an LMK was refused. Never carries key material; components are numbered from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LmkError {
    /// Neither components nor the explicit insecure choice of the test LMK.
    #[error("no LMK: give two or more LMK component files, or --insecure-test-lmk for the published test LMK (development only)")]
    NoLmk,
    /// Components and the test LMK asked for at once.
    #[error("LMK components and the insecure test LMK are mutually exclusive")]
    Ambiguous,
    /// Fewer than two components (dual control).
    #[error("dual control needs at least two LMK components, got {0}")]
    TooFewComponents(usize),
    /// A component file could not be read.
    #[error("LMK component {component}: cannot read it ({reason})")]
    Unreadable {
        /// Component number.
        component: usize,
        /// The I/O error.
        reason: String,
    },
    /// A component is not 20 lines of 32 hex characters.
    #[error("LMK component {component}: expected {LMK_PAIR_COUNT} lines of 32 hex characters")]
    Format {
        /// Component number.
        component: usize,
    },
    /// A component pair without odd parity.
    #[error("LMK component {component}, pair {pair}: not odd parity")]
    Parity {
        /// Component number.
        component: usize,
        /// The pair.
        pair: PairName,
    },
    /// Two identical components (their XOR is zero).
    #[error("LMK components {first} and {second} are identical")]
    DuplicateComponents {
        /// First component number.
        first: usize,
        /// Second component number.
        second: usize,
    },
    /// A component pair that is one byte repeated.
    #[error("LMK component {component}, pair {pair}: all bytes equal")]
    TrivialComponent {
        /// Component number.
        component: usize,
        /// The pair.
        pair: PairName,
    },
    /// The combined LMK has a guessable pair.
    #[error("the combined LMK pair {pair} is {weakness}")]
    WeakPair {
        /// The pair.
        pair: PairName,
        /// What is wrong with it.
        weakness: Weakness,
    },
}

/// Where the LMK of a software HSM comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LmkSource {
    /// Component files, one per custodian (each 20 lines of 32 hex characters, odd parity).
    ComponentFiles(Vec<PathBuf>),
    /// The published test LMK ([`super::TEST_LMK_HEX`]): development and tests only, chosen
    /// by an option whose name says so (`--insecure-test-lmk`).
    InsecureTestLmk,
}

impl LmkSource {
    /// The source named by a program's options: component files, or the test LMK when
    /// `insecure_test_lmk` is set; neither or both is refused.
    pub fn from_options(
        components: Vec<PathBuf>,
        insecure_test_lmk: bool,
    ) -> Result<LmkSource, LmkError> {
        match (components.is_empty(), insecure_test_lmk) {
            (true, false) => Err(LmkError::NoLmk),
            (false, true) => Err(LmkError::Ambiguous),
            (true, true) => Ok(LmkSource::InsecureTestLmk),
            (false, false) => Ok(LmkSource::ComponentFiles(components)),
        }
    }
}

/// Without parity bits: the key DES actually uses.
fn key_bits(half: &[u8]) -> [u8; 8] {
    let mut k = [0u8; 8];
    for (o, b) in k.iter_mut().zip(half) {
        *o = b & 0xFE;
    }
    k
}

fn all_bytes_equal(bytes: &[u8]) -> bool {
    bytes.windows(2).all(|w| w[0] == w[1])
}

/// Why an 8-byte DES key is guessable, if it is (parity bits ignored).
pub fn des_key_weakness(half: &[u8; 8]) -> Option<Weakness> {
    let k = key_bits(half);
    let listed = |list: &[[u8; 8]]| list.iter().any(|w| key_bits(w) == k);
    if listed(&WEAK_KEYS) {
        Some(Weakness::Weak)
    } else if listed(&SEMI_WEAK_KEYS) {
        Some(Weakness::SemiWeak)
    } else if all_bytes_equal(&k) {
        Some(Weakness::AllBytesEqual)
    } else {
        None
    }
}

/// Why a double-length LMK pair is guessable, if it is.
pub fn pair_weakness(pair: &[u8; 16]) -> Option<Weakness> {
    let (left, right) = pair.split_at(8);
    let halves = [left, right].map(|h| {
        let mut a = [0u8; 8];
        a.copy_from_slice(h);
        a
    });
    halves
        .iter()
        .find_map(des_key_weakness)
        .or_else(|| (key_bits(left) == key_bits(right)).then_some(Weakness::HalvesEqual))
}

/// Check a combined LMK (every pair) before it is used.
pub fn check_lmk_pairs(pairs: &[[u8; 16]; LMK_PAIR_COUNT]) -> Result<(), LmkError> {
    for (i, p) in pairs.iter().enumerate() {
        if let Some(weakness) = pair_weakness(p) {
            return Err(LmkError::WeakPair {
                pair: PairName(i),
                weakness,
            });
        }
    }
    Ok(())
}

/// Parse one component (20 lines of 32 hex characters) and check it alone.
fn parse_component(number: usize, lines: &[&str]) -> Result<Vec<[u8; 16]>, LmkError> {
    if lines.len() != LMK_PAIR_COUNT {
        return Err(LmkError::Format { component: number });
    }
    let mut pairs = Vec::with_capacity(LMK_PAIR_COUNT);
    for (i, l) in lines.iter().enumerate() {
        let mut p = [0u8; 16];
        let checked = if hex::decode_to_slice(l.trim(), &mut p).is_err() {
            Err(LmkError::Format { component: number })
        } else if !has_odd_parity(&p) {
            Err(LmkError::Parity {
                component: number,
                pair: PairName(i),
            })
        } else if all_bytes_equal(&p) {
            Err(LmkError::TrivialComponent {
                component: number,
                pair: PairName(i),
            })
        } else {
            Ok(())
        };
        if let Err(e) = checked {
            p.zeroize();
            pairs.zeroize();
            return Err(e);
        }
        pairs.push(p);
    }
    Ok(pairs)
}

/// XOR the components into the clear LMK pairs, with every check above.
pub(super) fn combine(components: &[Vec<&str>]) -> Result<[[u8; 16]; LMK_PAIR_COUNT], LmkError> {
    if components.len() < 2 {
        return Err(LmkError::TooFewComponents(components.len()));
    }
    for (i, a) in components.iter().enumerate() {
        if let Some(j) = components[i + 1..].iter().position(|b| trimmed_eq(a, b)) {
            return Err(LmkError::DuplicateComponents {
                first: i + 1,
                second: i + j + 2,
            });
        }
    }
    let mut acc = [[0u8; 16]; LMK_PAIR_COUNT];
    for (n, comp) in components.iter().enumerate() {
        let mut pairs = match parse_component(n + 1, comp) {
            Ok(p) => p,
            Err(e) => {
                acc.zeroize();
                return Err(e);
            }
        };
        for (a, p) in acc.iter_mut().zip(&pairs) {
            for (x, y) in a.iter_mut().zip(p) {
                *x ^= y;
            }
        }
        pairs.zeroize();
    }
    if let Err(e) = check_lmk_pairs(&acc) {
        acc.zeroize();
        return Err(e);
    }
    Ok(acc)
}

fn trimmed_eq(a: &[&str], b: &[&str]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.trim().eq_ignore_ascii_case(y.trim()))
}

impl LmkSet {
    /// Production LMK from two or more component sets (dual control). Each component is 20
    /// lines of 32 hex characters with odd parity; the LMK is their XOR. Guessable components
    /// or results are refused (see the module documentation).
    pub fn from_components(components: &[Vec<&str>]) -> Result<LmkSet, LmkError> {
        let mut pairs = combine(components)?;
        let set = LmkSet::from_pairs(&pairs);
        pairs.zeroize();
        Ok(set)
    }

    /// Load component files (one file per custodian, each in the 20-line format; blank lines
    /// are ignored).
    pub fn from_component_files(paths: &[PathBuf]) -> Result<LmkSet, LmkError> {
        let mut texts = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            match std::fs::read_to_string(p) {
                Ok(t) => texts.push(t),
                Err(e) => {
                    texts.iter_mut().for_each(Zeroize::zeroize);
                    return Err(LmkError::Unreadable {
                        component: i + 1,
                        reason: e.kind().to_string(),
                    });
                }
            }
        }
        let comps: Vec<Vec<&str>> = texts
            .iter()
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).collect())
            .collect();
        let set = LmkSet::from_components(&comps);
        drop(comps);
        texts.iter_mut().for_each(Zeroize::zeroize);
        set
    }

    /// The LMK from `source`, checked: the only way a program should build its LMK from
    /// configuration.
    pub fn load(source: &LmkSource) -> Result<LmkSet, LmkError> {
        match source {
            LmkSource::ComponentFiles(paths) => LmkSet::from_component_files(paths),
            LmkSource::InsecureTestLmk => Ok(LmkSet::test_lmk()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hexes(pairs: &[[u8; 16]]) -> Vec<String> {
        pairs.iter().map(hex::encode_upper).collect()
    }

    /// Odd-parity pairs that vary by pair and byte.
    fn varied(seed: u8) -> Vec<[u8; 16]> {
        (0..LMK_PAIR_COUNT)
            .map(|i| {
                let mut p = [0u8; 16];
                for (j, b) in p.iter_mut().enumerate() {
                    *b = seed
                        .wrapping_mul(31)
                        .wrapping_add(((i * 16 + j) as u8).wrapping_mul(37))
                        .rotate_left(3);
                }
                crate::block::adjust_odd_parity(&mut p);
                p
            })
            .collect()
    }

    fn load(comps: &[Vec<String>]) -> Result<LmkSet, LmkError> {
        let v: Vec<Vec<&str>> = comps
            .iter()
            .map(|c| c.iter().map(String::as_str).collect())
            .collect();
        LmkSet::from_components(&v)
    }

    #[test]
    fn strong_components_xor_into_the_lmk() {
        let (a, b) = (varied(1), varied(2));
        let set = load(&[hexes(&a), hexes(&b)]).expect("lmk");
        let mut direct = [[0u8; 16]; LMK_PAIR_COUNT];
        for (d, (x, y)) in direct.iter_mut().zip(a.iter().zip(&b)) {
            for (o, (p, q)) in d.iter_mut().zip(x.iter().zip(y)) {
                *o = p ^ q;
            }
        }
        assert_eq!(set.check_value(), LmkSet::from_pairs(&direct).check_value());
    }

    #[test]
    fn dual_control_format_and_parity_are_enforced() {
        let a = hexes(&varied(1));
        assert_eq!(
            load(std::slice::from_ref(&a)).map(|_| ()),
            Err(LmkError::TooFewComponents(1))
        );
        assert_eq!(
            load(&[a.clone(), a[..3].to_vec()]).map(|_| ()),
            Err(LmkError::Format { component: 2 })
        );
        let mut even = varied(2);
        even[4][0] ^= 1;
        assert_eq!(
            load(&[a, hexes(&even)]).map(|_| ()),
            Err(LmkError::Parity {
                component: 2,
                pair: PairName(4)
            })
        );
    }

    #[test]
    fn equal_or_trivial_components_are_refused() {
        let a = hexes(&varied(1));
        let mut lower = a.clone();
        lower.iter_mut().for_each(|l| *l = l.to_lowercase());
        assert_eq!(
            load(&[a.clone(), hexes(&varied(3)), lower]).map(|_| ()),
            Err(LmkError::DuplicateComponents {
                first: 1,
                second: 3
            })
        );
        let ones: Vec<String> = (0..LMK_PAIR_COUNT).map(|_| "01".repeat(16)).collect();
        assert_eq!(
            load(&[a, ones]).map(|_| ()),
            Err(LmkError::TrivialComponent {
                component: 2,
                pair: PairName(0)
            })
        );
    }

    #[test]
    fn combinations_to_weak_semi_weak_or_single_length_keys_are_refused() {
        let a = varied(1);
        for (target, weakness) in [
            (WEAK_KEYS[2], Weakness::Weak),
            (SEMI_WEAK_KEYS[7], Weakness::SemiWeak),
            ([0x34; 8], Weakness::AllBytesEqual),
        ] {
            // Component b is chosen so that pair 06-07's right half combines to `target`.
            let mut b = varied(2);
            for k in 0..8 {
                b[3][8 + k] = a[3][8 + k] ^ target[k];
            }
            crate::block::adjust_odd_parity(&mut b[3]);
            let got = load(&[hexes(&a), hexes(&b)]).map(|_| ());
            assert_eq!(
                got,
                Err(LmkError::WeakPair {
                    pair: PairName(3),
                    weakness
                }),
                "{target:02X?}"
            );
        }
        let mut b = varied(2);
        for k in 0..8 {
            b[5][8 + k] = a[5][8 + k] ^ a[5][k] ^ b[5][k];
        }
        crate::block::adjust_odd_parity(&mut b[5]);
        assert_eq!(
            load(&[hexes(&a), hexes(&b)]).map(|_| ()),
            Err(LmkError::WeakPair {
                pair: PairName(5),
                weakness: Weakness::HalvesEqual
            })
        );
    }

    #[test]
    fn the_test_lmk_is_weak_and_only_an_explicit_option_selects_it() {
        let mut pairs = [[0u8; 16]; LMK_PAIR_COUNT];
        for (p, h) in pairs.iter_mut().zip(super::super::TEST_LMK_HEX) {
            hex::decode_to_slice(h, p).expect("hex");
        }
        assert!(matches!(
            check_lmk_pairs(&pairs),
            Err(LmkError::WeakPair { .. })
        ));
        assert_eq!(LmkSource::from_options(vec![], false), Err(LmkError::NoLmk));
        assert_eq!(
            LmkSource::from_options(vec!["a".into()], true),
            Err(LmkError::Ambiguous)
        );
        assert_eq!(
            LmkSource::from_options(vec![], true),
            Ok(LmkSource::InsecureTestLmk)
        );
        assert_eq!(PairName(2).to_string(), "04-05");
    }
}
