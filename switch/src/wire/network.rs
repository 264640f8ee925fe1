//! Network management (0800/0810) vocabulary shared by the issuer links and the bank simulator.
//!
//! Why this exists: both ends of a link must agree on field 70's codes (ISO 8583:1987 field
//! 70, network management information code) and on how a new zone PIN key (and, on links with
//! MACs, a new TAK) travels in a key exchange. The layout of field 48 in a key exchange is ours
//! (documented in `schemas/iso8583/ssc87.md`, "Key exchange"): a sequence of elements, each a
//! 3-character tag, a 3-digit length and the value:
//!
//! | tag | value |
//! |---|---|
//! | `ZPK` | the new zone PIN key encrypted under the zone master key: scheme letter + hex (`U` + 32 hex digits for a double-length 3DES key, as payShield A0/A6 print it) |
//! | `KCV` | its key check value: 6 hex digits (3DES encryption of a zero block, first 3 bytes) |
//! | `TAK` | optional: the new terminal authentication key of the link's MACs, under the ZMK, same form as `ZPK` (`U`, `G` or `A` + 32 hex digits, by the link's MAC algorithm) |
//! | `TCV` | the TAK's check value (required with `TAK`) |
//! | `MAL` | the link's MAC algorithm ([`LinkMacAlgorithm`]: `x9.19`, `sm4`, `aes-cmac`), sent with every TAK |
//!
//! Example: `ZPK033U0123…CDEFKCV006A1B2C3TAK033G89AB…4567TCV0064D5E6FMAL003sm4`.
//!
//! The sign-on (field 70 = 001) of a link with MACs carries `MAL` alone in field 48, and the
//! bank's 0810 to a sign-on or a key exchange carries its own: each side compares the other's
//! algorithm with its configuration, so a link whose two ends disagree fails at sign-on
//! ([`mac_algorithm_of`]). An absent `MAL` means `x9.19`, what every link used before it.

use std::collections::HashMap;

use chrono::Utc;

use super::mac::LinkMacAlgorithm;

/// Field 70 codes used on issuer links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkCode {
    /// 001: sign-on.
    SignOn,
    /// 002: sign-off.
    SignOff,
    /// 101: key exchange (new ZPK under the ZMK in field 48).
    KeyExchange,
    /// 301: echo test (keep-alive).
    Echo,
}

impl NetworkCode {
    /// The three digits of field 70.
    pub fn code(self) -> &'static str {
        match self {
            NetworkCode::SignOn => "001",
            NetworkCode::SignOff => "002",
            NetworkCode::KeyExchange => "101",
            NetworkCode::Echo => "301",
        }
    }

    /// Parses field 70.
    pub fn parse(s: &str) -> Option<NetworkCode> {
        Some(match s {
            "001" => NetworkCode::SignOn,
            "002" => NetworkCode::SignOff,
            "101" => NetworkCode::KeyExchange,
            "301" => NetworkCode::Echo,
            _ => return None,
        })
    }
}

/// Why a key-exchange field 48 could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyExchangeFieldError {
    /// An element's tag or length is malformed, or the field ends inside an element.
    #[error("malformed key-exchange element")]
    Malformed,
    /// A required element is missing.
    #[error("key-exchange element {0} missing")]
    Missing(&'static str),
    /// `MAL` names no link MAC algorithm.
    #[error("unknown MAC algorithm in MAL")]
    UnknownMacAlgorithm,
}

/// One key of a key exchange as it travels: encrypted under the ZMK, with its check value.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyUnderZmk {
    /// The key under the ZMK (scheme letter + hex). Encrypted: not secret, but kept out of
    /// `Debug` to keep logs short.
    pub under_zmk: String,
    /// Its check value, 6 hex digits.
    pub kcv: String,
}

impl std::fmt::Debug for KeyUnderZmk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyUnderZmk {{ kcv: {} }}", self.kcv)
    }
}

/// The content of field 48 in a key exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExchangeField {
    /// The new zone PIN key.
    pub zpk: KeyUnderZmk,
    /// The new MAC key of the link, present when the link MACs its messages.
    pub tak: Option<KeyUnderZmk>,
    /// The link's MAC algorithm, sent with the TAK (`None`: not said, which means `x9.19`).
    pub mac_algorithm: Option<LinkMacAlgorithm>,
}

/// Tag of the MAC algorithm element.
const MAC_ALGORITHM_TAG: &str = "MAL";

/// Appends one element (tag, 3-digit length, value) to a field 48 text.
fn push_element(s: &mut String, tag: &str, value: &str) {
    s.push_str(tag);
    s.push_str(&format!("{:03}", value.len()));
    s.push_str(value);
}

/// The elements of a field 48 text, by tag.
fn elements(field: &str) -> Result<HashMap<&str, &str>, KeyExchangeFieldError> {
    let mut elements: HashMap<&str, &str> = HashMap::new();
    let mut rest = field;
    while !rest.is_empty() {
        let tag = rest.get(..3).ok_or(KeyExchangeFieldError::Malformed)?;
        let len: usize = rest
            .get(3..6)
            .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse().ok())
            .ok_or(KeyExchangeFieldError::Malformed)?;
        let value = rest
            .get(6..6 + len)
            .ok_or(KeyExchangeFieldError::Malformed)?;
        elements.insert(tag, value);
        rest = &rest[6 + len..];
    }
    Ok(elements)
}

fn mac_algorithm_element(
    elements: &HashMap<&str, &str>,
) -> Result<Option<LinkMacAlgorithm>, KeyExchangeFieldError> {
    elements
        .get(MAC_ALGORITHM_TAG)
        .map(|v| LinkMacAlgorithm::parse(v).ok_or(KeyExchangeFieldError::UnknownMacAlgorithm))
        .transpose()
}

/// Field 48 of a sign-on or of the bank's 0810: the link's MAC algorithm alone.
pub fn mac_algorithm_field(algorithm: LinkMacAlgorithm) -> String {
    let mut s = String::with_capacity(16);
    push_element(&mut s, MAC_ALGORITHM_TAG, algorithm.name());
    s
}

/// The MAC algorithm a field 48 says (`None` when it says none: `x9.19` is meant).
pub fn mac_algorithm_of(field: &str) -> Result<Option<LinkMacAlgorithm>, KeyExchangeFieldError> {
    mac_algorithm_element(&elements(field)?)
}

/// The text of the `MAL` element of a field 48, known algorithm or not (`None`: no `MAL`, or
/// a field that is not a sequence of elements).
pub fn mac_algorithm_said(field: &str) -> Option<String> {
    elements(field)
        .ok()?
        .get(MAC_ALGORITHM_TAG)
        .map(|v| (*v).to_owned())
}

/// Element tags of field 48: (key, check value).
const ZPK_TAGS: (&str, &str) = ("ZPK", "KCV");
const TAK_TAGS: (&str, &str) = ("TAK", "TCV");

impl KeyExchangeField {
    /// The field 48 text.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(96);
        let keys =
            std::iter::once((ZPK_TAGS, &self.zpk)).chain(self.tak.iter().map(|t| (TAK_TAGS, t)));
        for ((key_tag, kcv_tag), key) in keys {
            push_element(&mut s, key_tag, &key.under_zmk);
            push_element(&mut s, kcv_tag, &key.kcv);
        }
        if let Some(a) = self.mac_algorithm {
            push_element(&mut s, MAC_ALGORITHM_TAG, a.name());
        }
        s
    }

    /// Reads field 48 (unknown tags are skipped, so the layout can grow).
    pub fn decode(field: &str) -> Result<KeyExchangeField, KeyExchangeFieldError> {
        let elements = elements(field)?;
        let key = |(key_tag, kcv_tag): (&'static str, &'static str)| match (
            elements.get(key_tag),
            elements.get(kcv_tag),
        ) {
            (Some(k), Some(c)) => Ok(Some(KeyUnderZmk {
                under_zmk: (*k).to_owned(),
                kcv: (*c).to_owned(),
            })),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(KeyExchangeFieldError::Missing(key_tag)),
            (Some(_), None) => Err(KeyExchangeFieldError::Missing(kcv_tag)),
        };
        Ok(KeyExchangeField {
            zpk: key(ZPK_TAGS)?.ok_or(KeyExchangeFieldError::Missing("ZPK"))?,
            tak: key(TAK_TAGS)?,
            mac_algorithm: mac_algorithm_element(&elements)?,
        })
    }
}

/// The keys of one kind a link end holds: the current one and the one the last key exchange
/// replaced. The previous key stays valid until the next exchange because messages prepared
/// under it (PIN blocks, MACs) may still be in flight when the key changes.
#[derive(Debug, Clone)]
pub struct KeyGenerations<K> {
    /// The key in use.
    pub current: Option<K>,
    /// The key it replaced.
    pub previous: Option<K>,
}

impl<K> KeyGenerations<K> {
    /// Starts with `initial` (agreed out of band) or nothing.
    pub fn new(initial: Option<K>) -> Self {
        KeyGenerations {
            current: initial,
            previous: None,
        }
    }

    /// Makes `new` current and keeps the current one as previous.
    pub fn rotate(&mut self, new: K) {
        self.previous = self.current.replace(new);
    }
}

impl<K: Clone> KeyGenerations<K> {
    /// The keys to try on an incoming message: current first, then previous.
    pub fn candidates(&self) -> Vec<K> {
        self.current
            .iter()
            .chain(self.previous.iter())
            .cloned()
            .collect()
    }
}

/// Field 7 for a message originated now: `MMDDhhmmss` in UTC, as ISO 8583:1987 (GMT) and
/// `ssc87` define it (the switch declines a request whose field 7 is far from its clock).
pub fn transmission_now() -> String {
    Utc::now().format("%m%d%H%M%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex_byte: &str, kcv: &str) -> KeyUnderZmk {
        KeyUnderZmk {
            under_zmk: format!("U{}", hex_byte.repeat(16)),
            kcv: kcv.into(),
        }
    }

    #[test]
    fn key_exchange_field_round_trips_and_rejects_truncation() {
        let f = KeyExchangeField {
            zpk: key("AB", "A1B2C3"),
            tak: None,
            mac_algorithm: None,
        };
        let text = f.encode();
        assert!(text.starts_with("ZPK033U"));
        assert!(text.ends_with("KCV006A1B2C3"));
        assert_eq!(KeyExchangeField::decode(&text), Ok(f));
        assert_eq!(
            KeyExchangeField::decode(&text[..text.len() - 1]),
            Err(KeyExchangeFieldError::Malformed)
        );
        assert_eq!(
            KeyExchangeField::decode("KCV006A1B2C3"),
            Err(KeyExchangeFieldError::Missing("ZPK"))
        );
    }

    #[test]
    fn a_tak_travels_after_the_zpk_and_needs_its_own_check_value() {
        let f = KeyExchangeField {
            zpk: key("AB", "A1B2C3"),
            tak: Some(key("CD", "4D5E6F")),
            mac_algorithm: None,
        };
        let text = f.encode();
        assert!(text.contains("KCV006A1B2C3TAK033UCDCD"));
        assert!(text.ends_with("TCV0064D5E6F"));
        assert_eq!(KeyExchangeField::decode(&text), Ok(f));
        let without_tcv = &text[..text.len() - "TCV0064D5E6F".len()];
        assert_eq!(
            KeyExchangeField::decode(without_tcv),
            Err(KeyExchangeFieldError::Missing("TCV"))
        );
        // Unknown elements are skipped.
        let grown = format!("{text}XYZ003abc");
        assert!(KeyExchangeField::decode(&grown).is_ok_and(|g| g.tak.is_some()));
    }

    #[test]
    fn the_mac_algorithm_travels_with_the_tak_and_alone_in_a_sign_on() {
        let f = KeyExchangeField {
            zpk: key("AB", "A1B2C3"),
            tak: Some(key("CD", "4D5E6F")),
            mac_algorithm: Some(LinkMacAlgorithm::Sm4),
        };
        let text = f.encode();
        assert!(text.ends_with("TCV0064D5E6FMAL003sm4"), "{text}");
        assert_eq!(KeyExchangeField::decode(&text), Ok(f));
        assert_eq!(mac_algorithm_of(&text), Ok(Some(LinkMacAlgorithm::Sm4)));
        let sign_on = mac_algorithm_field(LinkMacAlgorithm::AesCmac);
        assert_eq!(sign_on, "MAL008aes-cmac");
        assert_eq!(
            mac_algorithm_of(&sign_on),
            Ok(Some(LinkMacAlgorithm::AesCmac))
        );
        assert_eq!(mac_algorithm_of(""), Ok(None));
        assert_eq!(mac_algorithm_said("MAL003sm3"), Some("sm3".to_owned()));
        assert_eq!(mac_algorithm_said("ZPK001U"), None);
        assert_eq!(
            mac_algorithm_of("MAL003md5"),
            Err(KeyExchangeFieldError::UnknownMacAlgorithm)
        );
        assert_eq!(
            mac_algorithm_of("MAL01"),
            Err(KeyExchangeFieldError::Malformed)
        );
    }

    #[test]
    fn a_key_change_keeps_the_replaced_key_as_previous() {
        let mut g = KeyGenerations::new(Some(1));
        assert_eq!(g.candidates(), vec![1]);
        g.rotate(2);
        g.rotate(3);
        assert_eq!(g.candidates(), vec![3, 2]);
        assert!(KeyGenerations::<u8>::new(None).candidates().is_empty());
    }

    #[test]
    fn transmission_time_has_ten_digits() {
        let t = transmission_now();
        assert_eq!(t.len(), 10);
        assert!(t.bytes().all(|b| b.is_ascii_digit()));
    }
}
