//! Typed keys: LMK-encrypted tokens whose Rust type says what they may be used for.
//!
//! Why this exists: a function that needs a ZPK must not be handed a TPK. Each key type is its
//! own struct (`Zpk`, `Tpk`, `ImkAc`, …) wrapping a [`KeyToken`], the text form a payShield
//! prints and a config file stores (`U` + 32 hex digits). The HSM checks usage again at run time:
//! a token is unwrapped only with its own type's LMK pair and variant, so a token of another type
//! fails the parity check (error 10/11), and a command naming a key type that may not perform the
//! function fails with error 28/29.
//!
//! Key type codes and LMK pairs follow the payShield variant LMK with "key type 002 separation"
//! (TPK 70D, TMK 80D, PVK 002, CVK 402). Project-specific codes (pair 32-33, code `x0B`) hold the
//! social-security (SSSE) master keys, and `00B` the data keys for PAN-at-rest encryption.
//!
//! Schemes: `U` double-length 3DES (variant), `T` triple-length 3DES (variant), `X` double-length
//! X9.17 (no length variant); project schemes `G` (SM4-128) and `A` (AES-128) wrapped like `U`,
//! and `B` (AES-256, four parts with variants A6, 5A, 6A, DE). SM4 and AES keys have no parity
//! bits, so their tokens carry a 4-byte LMK tag (see `lmk_tag`): `G` + 32 + 8 hex digits.

use std::fmt;
use std::str::FromStr;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::block::{adjust_odd_parity, has_odd_parity};
use crate::card_crypto::CardAlgorithm;
use crate::error::HsmError;
use crate::lmk::{LmkSet, PartVariant};

/// Every key type the HSM knows, with its payShield key type code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// Zone master key (000): wraps keys exchanged with another institution.
    Zmk,
    /// Zone PIN key (001): PIN blocks between institutions.
    Zpk,
    /// PIN verification key (002): IBM 3624 offsets and Visa PVVs.
    Pvk,
    /// Terminal authentication key (003): MACs with terminals.
    Tak,
    /// Zone authentication key (008): MACs between institutions.
    Zak,
    /// Zone encryption key (00A).
    Zek,
    /// Card verification key (402): CVV, CVV2, iCVV.
    Cvk,
    /// Terminal master key (80D).
    Tmk,
    /// Terminal PIN key (70D): PIN blocks from kiosks and POS.
    Tpk,
    /// Issuer master key for application cryptograms (109, MK-AC).
    ImkAc,
    /// Issuer master key for secure-messaging integrity (209, MK-SMI).
    ImkSmi,
    /// Issuer master key for secure-messaging confidentiality (309, MK-SMC).
    ImkSmc,
    /// SSSE province master key for internal authentication (project 10B).
    SsseInternalAuth,
    /// SSSE province master key for external authentication (project 20B).
    SsseExternalAuth,
    /// SSSE province master key for PIN unblock/reload (project 30B).
    SssePinUnblock,
    /// SSSE province master key for line protection (secure messaging, project 40B).
    SsseLineProtection,
    /// Data key for PAN-at-rest encryption (project 00B, AES-256).
    DataKey,
}

impl KeyType {
    /// All key types (for tables and tests).
    pub const ALL: [KeyType; 17] = [
        KeyType::Zmk,
        KeyType::Zpk,
        KeyType::Pvk,
        KeyType::Tak,
        KeyType::Zak,
        KeyType::Zek,
        KeyType::Cvk,
        KeyType::Tmk,
        KeyType::Tpk,
        KeyType::ImkAc,
        KeyType::ImkSmi,
        KeyType::ImkSmc,
        KeyType::SsseInternalAuth,
        KeyType::SsseExternalAuth,
        KeyType::SssePinUnblock,
        KeyType::SsseLineProtection,
        KeyType::DataKey,
    ];

    /// The three-character payShield key type code.
    pub fn code(self) -> &'static str {
        match self {
            KeyType::Zmk => "000",
            KeyType::Zpk => "001",
            KeyType::Pvk => "002",
            KeyType::Tak => "003",
            KeyType::Zak => "008",
            KeyType::Zek => "00A",
            KeyType::Cvk => "402",
            KeyType::Tmk => "80D",
            KeyType::Tpk => "70D",
            KeyType::ImkAc => "109",
            KeyType::ImkSmi => "209",
            KeyType::ImkSmc => "309",
            KeyType::SsseInternalAuth => "10B",
            KeyType::SsseExternalAuth => "20B",
            KeyType::SssePinUnblock => "30B",
            KeyType::SsseLineProtection => "40B",
            KeyType::DataKey => "00B",
        }
    }

    /// Parse a key type code (error 04 when unknown).
    pub fn from_code(code: &str) -> Result<KeyType, HsmError> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.code().eq_ignore_ascii_case(code))
            .ok_or(HsmError::InvalidKeyTypeCode)
    }

    /// (LMK pair index 0..20, key-type variant 0..=9) of this key type.
    pub fn lmk_slot(self) -> (usize, usize) {
        let code = self.code().as_bytes();
        let variant = usize::from(code[0] - b'0');
        // payShield pair codes: 00→04-05, 01→06-07, 02→14-15, 03→16-17, 04→18-19, …, 0E→38-39.
        let pair_code = match code[2] {
            d @ b'0'..=b'9' => usize::from(d - b'0'),
            h => usize::from(h - b'A') + 10,
        };
        let pair = match pair_code {
            0 => 2,
            1 => 3,
            n => n + 5,
        };
        (pair, variant)
    }

    /// May a key of this type be exported under a ZMK (A8)?
    pub fn exportable(self) -> bool {
        matches!(
            self,
            KeyType::Zpk | KeyType::Zak | KeyType::Zek | KeyType::Tpk | KeyType::Tak | KeyType::Tmk
        )
    }
}

/// How a key is wrapped under the LMK; the first character of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyScheme {
    /// `U`: double-length 3DES, variant (A6/5A).
    U,
    /// `T`: triple-length 3DES, variant (6A/DE/2B).
    T,
    /// `X`: double-length 3DES, X9.17 (no length variant).
    X,
    /// `G`: SM4-128 (project), wrapped like `U`.
    G,
    /// `A`: AES-128 (project), wrapped like `U`.
    A,
    /// `B`: AES-256 (project), four parts.
    B,
}

/// Key algorithm as determined by the scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// 3DES with a double-length key.
    Tdes2,
    /// 3DES with a triple-length key.
    Tdes3,
    /// SM4-128.
    Sm4,
    /// AES-128.
    Aes128,
    /// AES-256.
    Aes256,
}

impl KeyScheme {
    /// Parse the scheme letter (error 26 when unknown).
    pub fn from_char(c: char) -> Result<KeyScheme, HsmError> {
        match c.to_ascii_uppercase() {
            'U' => Ok(KeyScheme::U),
            'T' => Ok(KeyScheme::T),
            'X' => Ok(KeyScheme::X),
            'G' => Ok(KeyScheme::G),
            'A' => Ok(KeyScheme::A),
            'B' => Ok(KeyScheme::B),
            _ => Err(HsmError::InvalidKeyScheme),
        }
    }

    /// The scheme letter.
    pub fn as_char(self) -> char {
        match self {
            KeyScheme::U => 'U',
            KeyScheme::T => 'T',
            KeyScheme::X => 'X',
            KeyScheme::G => 'G',
            KeyScheme::A => 'A',
            KeyScheme::B => 'B',
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            KeyScheme::T => 24,
            KeyScheme::B => 32,
            _ => 16,
        }
    }

    /// Length of a key under a ZMK as text: the scheme letter and the encrypted key in hex
    /// (no LMK tag: keys in transit carry only their check value).
    pub fn under_zmk_text_len(self) -> usize {
        1 + 2 * self.key_len()
    }

    /// Length of the LMK tag appended to tokens of non-DES schemes (no parity bits to check).
    pub fn tag_len(self) -> usize {
        if self.is_des() {
            0
        } else {
            4
        }
    }

    /// Algorithm of keys in this scheme.
    pub fn algorithm(self) -> KeyAlgorithm {
        match self {
            KeyScheme::U | KeyScheme::X => KeyAlgorithm::Tdes2,
            KeyScheme::T => KeyAlgorithm::Tdes3,
            KeyScheme::G => KeyAlgorithm::Sm4,
            KeyScheme::A => KeyAlgorithm::Aes128,
            KeyScheme::B => KeyAlgorithm::Aes256,
        }
    }

    /// DES keys carry odd parity; SM4 and AES keys do not.
    pub fn is_des(self) -> bool {
        matches!(self, KeyScheme::U | KeyScheme::T | KeyScheme::X)
    }

    fn part_variant(self, part: usize) -> PartVariant {
        match self {
            KeyScheme::X => PartVariant::None,
            KeyScheme::T => PartVariant::Triple(part),
            KeyScheme::B => match part {
                0 | 1 => PartVariant::Double(part),
                n => PartVariant::Triple(n - 2),
            },
            _ => PartVariant::Double(part),
        }
    }

    /// The scheme for a 16-byte key of `alg`.
    pub fn for_card_algorithm(alg: CardAlgorithm) -> KeyScheme {
        match alg {
            CardAlgorithm::Tdes => KeyScheme::U,
            CardAlgorithm::Sm4 => KeyScheme::G,
        }
    }
}

/// A key encrypted under the LMK: scheme letter + hex ciphertext (e.g. `U` + 32 hex digits).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyToken {
    scheme: KeyScheme,
    ciphertext: Vec<u8>,
}

impl fmt::Debug for KeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext under the LMK is not secret, but keep logs short.
        write!(f, "KeyToken({self})")
    }
}

impl fmt::Display for KeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            self.scheme.as_char(),
            hex::encode_upper(&self.ciphertext)
        )
    }
}

impl FromStr for KeyToken {
    type Err = HsmError;
    fn from_str(s: &str) -> Result<Self, HsmError> {
        let mut chars = s.chars();
        let first = chars.next().ok_or(HsmError::InvalidInput)?;
        let scheme = KeyScheme::from_char(first)?;
        let body = chars.as_str();
        if body.len() != (scheme.key_len() + scheme.tag_len()) * 2 {
            return Err(HsmError::IncompatibleKeyLength);
        }
        let ciphertext = hex::decode(body).map_err(|_| HsmError::InvalidInput)?;
        Ok(KeyToken { scheme, ciphertext })
    }
}

impl KeyToken {
    /// The scheme.
    pub fn scheme(&self) -> KeyScheme {
        self.scheme
    }

    /// Length of the token text for `scheme` (1 + 2 × key length).
    pub fn text_len(scheme: KeyScheme) -> usize {
        1 + (scheme.key_len() + scheme.tag_len()) * 2
    }

    /// Parse a token at the start of `s` (used by the host-command codec). Returns the token and
    /// the number of characters consumed.
    pub fn parse_prefix(s: &[u8]) -> Result<(KeyToken, usize), HsmError> {
        let first = *s.first().ok_or(HsmError::InvalidInput)?;
        let scheme = KeyScheme::from_char(char::from(first))?;
        let len = KeyToken::text_len(scheme);
        let text = s.get(..len).ok_or(HsmError::InvalidInput)?;
        let text = std::str::from_utf8(text).map_err(|_| HsmError::InvalidInput)?;
        Ok((text.parse()?, len))
    }
}

/// A clear key inside the HSM. Zeroized on drop; `Debug` prints `****`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ClearKey {
    #[zeroize(skip)]
    scheme: KeyScheme,
    bytes: Vec<u8>,
}

impl fmt::Debug for ClearKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClearKey(****)")
    }
}

impl ClearKey {
    /// Wrap clear bytes of the right length for `scheme` (error 27 otherwise).
    pub fn new(scheme: KeyScheme, bytes: Vec<u8>) -> Result<ClearKey, HsmError> {
        if bytes.len() != scheme.key_len() {
            return Err(HsmError::IncompatibleKeyLength);
        }
        Ok(ClearKey { scheme, bytes })
    }

    /// The scheme (and so the algorithm).
    pub fn scheme(&self) -> KeyScheme {
        self.scheme
    }

    /// Clear bytes (inside the HSM only).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The 16 bytes of a double-length 3DES / SM4 / AES-128 key (error 27 otherwise).
    pub fn as_16(&self) -> Result<[u8; 16], HsmError> {
        self.bytes
            .as_slice()
            .try_into()
            .map_err(|_| HsmError::IncompatibleKeyLength)
    }

    /// As a card key for `alg` (the scheme must match: U/X for 3DES, G for SM4).
    pub fn as_card_key(&self, alg: CardAlgorithm) -> Result<crate::card_crypto::CardKey, HsmError> {
        let ok = match alg {
            CardAlgorithm::Tdes => matches!(self.scheme, KeyScheme::U | KeyScheme::X),
            CardAlgorithm::Sm4 => self.scheme == KeyScheme::G,
        };
        if !ok {
            return Err(HsmError::InvalidKeyScheme);
        }
        Ok(crate::card_crypto::CardKey::from_bytes(self.as_16()?))
    }

    /// Key check value: 3DES/SM4 encryption of a zero block (AES: the AES-CMAC-free payShield
    /// convention of encrypting a zero block as well), first 3 bytes.
    pub fn check_value(&self) -> [u8; 3] {
        crate::crypto::key_check_value(self)
    }

    /// Wrap under the LMK for `key_type`.
    pub fn wrap(&self, lmk: &LmkSet, key_type: KeyType) -> KeyToken {
        let (pair, variant) = key_type.lmk_slot();
        let mut ciphertext = self.bytes.clone();
        for (i, part) in ciphertext.chunks_mut(8).enumerate() {
            lmk.encrypt_part(pair, variant, self.scheme.part_variant(i), part);
        }
        if self.scheme.tag_len() > 0 {
            let tag = lmk_tag(lmk, pair, variant, &ciphertext);
            ciphertext.extend_from_slice(&tag);
        }
        KeyToken {
            scheme: self.scheme,
            ciphertext,
        }
    }

    /// Unwrap a token that must be of `key_type`. DES keys must have odd parity and SM4/AES
    /// tokens must carry a valid LMK tag (error 10 otherwise): that is how a token of another key
    /// type is detected.
    pub fn unwrap(lmk: &LmkSet, key_type: KeyType, token: &KeyToken) -> Result<ClearKey, HsmError> {
        let (pair, variant) = key_type.lmk_slot();
        let key_len = token.scheme.key_len();
        let (enc, tag) = token
            .ciphertext
            .split_at_checked(key_len)
            .ok_or(HsmError::IncompatibleKeyLength)?;
        if token.scheme.tag_len() > 0
            && !crate::block::ct_eq(&lmk_tag(lmk, pair, variant, enc), tag)
        {
            return Err(HsmError::SourceKeyParity);
        }
        let mut bytes = enc.to_vec();
        for (i, part) in bytes.chunks_mut(8).enumerate() {
            lmk.decrypt_part(pair, variant, token.scheme.part_variant(i), part);
        }
        if token.scheme.is_des() && !has_odd_parity(&bytes) {
            bytes.zeroize();
            return Err(HsmError::SourceKeyParity);
        }
        Ok(ClearKey {
            scheme: token.scheme,
            bytes,
        })
    }

    /// A fresh random key for `scheme` (DES keys get odd parity).
    pub fn random(scheme: KeyScheme) -> Result<ClearKey, HsmError> {
        let mut bytes = vec![0u8; scheme.key_len()];
        crate::crypto::fill_random(&mut bytes)?;
        if scheme.is_des() {
            adjust_odd_parity(&mut bytes);
        }
        Ok(ClearKey { scheme, bytes })
    }
}

/// Tag of a non-DES token: the first 4 bytes of a 3DES CBC-MAC over its ciphertext under the
/// key type's LMK pair and variant without a length variant (a key distinct from the ones that
/// encrypt the parts, which all carry a length variant).
fn lmk_tag(lmk: &LmkSet, pair: usize, variant: usize, ciphertext: &[u8]) -> [u8; 4] {
    let mut h = [0u8; 8];
    for chunk in ciphertext.chunks(8) {
        for (x, c) in h.iter_mut().zip(chunk) {
            *x ^= c;
        }
        lmk.encrypt_part(pair, variant, PartVariant::None, &mut h);
    }
    [h[0], h[1], h[2], h[3]]
}

/// Implemented by every typed key wrapper.
pub trait TypedKey: Sized {
    /// The key type this wrapper stands for.
    const KEY_TYPE: KeyType;
    /// The LMK token.
    fn token(&self) -> &KeyToken;
    /// Wrap a token (the HSM checks it at use).
    fn from_token(token: KeyToken) -> Self;
}

macro_rules! typed_key {
    ($(#[$doc:meta])* $name:ident, $kt:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(KeyToken);

        impl TypedKey for $name {
            const KEY_TYPE: KeyType = $kt;
            fn token(&self) -> &KeyToken {
                &self.0
            }
            fn from_token(token: KeyToken) -> Self {
                $name(token)
            }
        }

        impl FromStr for $name {
            type Err = HsmError;
            /// Load from a config string such as `U1234…` (scheme letter + hex).
            fn from_str(s: &str) -> Result<Self, HsmError> {
                Ok($name(s.trim().parse()?))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_key!(/// Zone master key (LMK 04-05).
    Zmk, KeyType::Zmk);
typed_key!(/// Zone PIN key (LMK 06-07).
    Zpk, KeyType::Zpk);
typed_key!(/// PIN verification key (LMK 14-15).
    Pvk, KeyType::Pvk);
typed_key!(/// Terminal authentication key (LMK 16-17).
    Tak, KeyType::Tak);
typed_key!(/// Zone authentication key (LMK 26-27).
    Zak, KeyType::Zak);
typed_key!(/// Zone encryption key (LMK 30-31).
    Zek, KeyType::Zek);
typed_key!(/// Card verification key (LMK 14-15 variant 4).
    Cvk, KeyType::Cvk);
typed_key!(/// Terminal master key (LMK 36-37 variant 8).
    Tmk, KeyType::Tmk);
typed_key!(/// Terminal PIN key (LMK 36-37 variant 7).
    Tpk, KeyType::Tpk);
typed_key!(/// Issuer master key for application cryptograms (LMK 28-29 variant 1).
    ImkAc, KeyType::ImkAc);
typed_key!(/// Issuer master key for script integrity (LMK 28-29 variant 2).
    ImkSmi, KeyType::ImkSmi);
typed_key!(/// Issuer master key for script confidentiality (LMK 28-29 variant 3).
    ImkSmc, KeyType::ImkSmc);
typed_key!(/// SSSE province master key for internal authentication.
    SsseInternalAuthKey, KeyType::SsseInternalAuth);
typed_key!(/// SSSE province master key for external authentication.
    SsseExternalAuthKey, KeyType::SsseExternalAuth);
typed_key!(/// SSSE province master key for PIN unblock/reload.
    SssePinUnblockKey, KeyType::SssePinUnblock);
typed_key!(/// SSSE province master key for line protection.
    SsseLineProtectionKey, KeyType::SsseLineProtection);
typed_key!(/// Data key for PAN-at-rest encryption (AES-256, scheme B).
    DataKeyToken, KeyType::DataKey);

/// A key that can encrypt PIN blocks on the way in: a TPK (from a terminal) or a ZPK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinKey {
    /// Terminal PIN key.
    Tpk(Tpk),
    /// Zone PIN key.
    Zpk(Zpk),
}

impl PinKey {
    /// Key type and token.
    pub fn parts(&self) -> (KeyType, &KeyToken) {
        match self {
            PinKey::Tpk(k) => (KeyType::Tpk, k.token()),
            PinKey::Zpk(k) => (KeyType::Zpk, k.token()),
        }
    }
}

/// A MAC key: TAK (terminals) or ZAK (institutions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MacKey {
    /// Terminal authentication key.
    Tak(Tak),
    /// Zone authentication key.
    Zak(Zak),
}

impl MacKey {
    /// Key type and token.
    pub fn parts(&self) -> (KeyType, &KeyToken) {
        match self {
            MacKey::Tak(k) => (KeyType::Tak, k.token()),
            MacKey::Zak(k) => (KeyType::Zak, k.token()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_codes_map_to_payshield_lmk_pairs() {
        assert_eq!(KeyType::Zmk.lmk_slot(), (2, 0)); // 04-05
        assert_eq!(KeyType::Zpk.lmk_slot(), (3, 0)); // 06-07
        assert_eq!(KeyType::Pvk.lmk_slot(), (7, 0)); // 14-15
        assert_eq!(KeyType::Cvk.lmk_slot(), (7, 4)); // 14-15 variant 4
        assert_eq!(KeyType::Tak.lmk_slot(), (8, 0)); // 16-17
        assert_eq!(KeyType::Zak.lmk_slot(), (13, 0)); // 26-27
        assert_eq!(KeyType::ImkAc.lmk_slot(), (14, 1)); // 28-29 variant 1
        assert_eq!(KeyType::Zek.lmk_slot(), (15, 0)); // 30-31
        assert_eq!(KeyType::SsseInternalAuth.lmk_slot(), (16, 1)); // 32-33
        assert_eq!(KeyType::Tpk.lmk_slot(), (18, 7)); // 36-37 variant 7
        assert_eq!(KeyType::Tmk.lmk_slot(), (18, 8));
        for kt in KeyType::ALL {
            assert_eq!(KeyType::from_code(kt.code()), Ok(kt));
        }
        assert_eq!(KeyType::from_code("ZZZ"), Err(HsmError::InvalidKeyTypeCode));
    }

    #[test]
    fn tokens_round_trip_and_reject_another_key_type() {
        let lmk = LmkSet::test_lmk();
        for scheme in [
            KeyScheme::U,
            KeyScheme::T,
            KeyScheme::X,
            KeyScheme::G,
            KeyScheme::A,
            KeyScheme::B,
        ] {
            let k = ClearKey::random(scheme).expect("rng");
            let tok = k.wrap(&lmk, KeyType::Zpk);
            let text = tok.to_string();
            assert_eq!(text.len(), KeyToken::text_len(scheme));
            let parsed: KeyToken = text.parse().expect("parse");
            let back = ClearKey::unwrap(&lmk, KeyType::Zpk, &parsed).expect("unwrap");
            assert_eq!(back.bytes(), k.bytes());
            assert_eq!(
                ClearKey::unwrap(&lmk, KeyType::Tpk, &parsed).map(|_| ()),
                Err(HsmError::SourceKeyParity)
            );
        }
    }

    #[test]
    fn scheme_u_wraps_halves_with_a6_and_5a_on_the_right_lmk_half() {
        // Independent computation of the README rule for a ZPK (pair 06-07, variant 0).
        use cipher::generic_array::GenericArray;
        use cipher::{BlockEncrypt, KeyInit};
        let lmk = LmkSet::test_lmk();
        let clear = hex::decode("0123456789ABCDEFFEDCBA9876543210").expect("hex");
        let key = ClearKey::new(KeyScheme::U, clear.clone()).expect("len");
        let tok = key.wrap(&lmk, KeyType::Zpk);
        let mut pair = hex::decode("61616161616161617070707070707070").expect("hex");
        pair[8] ^= 0xA6;
        let c = des::TdesEde2::new(GenericArray::from_slice(&pair));
        let mut left = GenericArray::clone_from_slice(&clear[..8]);
        c.encrypt_block(&mut left);
        assert_eq!(tok.to_string()[1..17], hex::encode_upper(left));
        pair[8] ^= 0xA6 ^ 0x5A;
        let c = des::TdesEde2::new(GenericArray::from_slice(&pair));
        let mut right = GenericArray::clone_from_slice(&clear[8..]);
        c.encrypt_block(&mut right);
        assert_eq!(tok.to_string()[17..], hex::encode_upper(right));
    }

    #[test]
    fn malformed_tokens_are_rejected_with_codes() {
        assert_eq!("Q0123".parse::<KeyToken>(), Err(HsmError::InvalidKeyScheme));
        assert_eq!(
            "U0123".parse::<KeyToken>(),
            Err(HsmError::IncompatibleKeyLength)
        );
        assert_eq!(
            "UZZ23456789ABCDEF0123456789ABCDEF".parse::<KeyToken>(),
            Err(HsmError::InvalidInput)
        );
        assert_eq!("".parse::<KeyToken>(), Err(HsmError::InvalidInput));
    }

    #[test]
    fn typed_keys_load_from_config_strings_and_display_back() {
        let lmk = LmkSet::test_lmk();
        let k = ClearKey::random(KeyScheme::U).expect("rng");
        let text = k.wrap(&lmk, KeyType::Zpk).to_string();
        let zpk: Zpk = format!(" {text} ").parse().expect("zpk");
        assert_eq!(zpk.to_string(), text);
        assert_eq!(<Zpk as TypedKey>::KEY_TYPE, KeyType::Zpk);
    }

    #[test]
    fn clear_keys_never_print() {
        let k = ClearKey::random(KeyScheme::U).expect("rng");
        assert_eq!(format!("{k:?}"), "ClearKey(****)");
    }
}
