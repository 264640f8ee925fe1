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
//! | `TAK` | optional: the new terminal authentication key of the link's MACs, under the ZMK, same form as `ZPK` |
//! | `TCV` | the TAK's check value (required with `TAK`) |
//!
//! Example: `ZPK033U0123…CDEFKCV006A1B2C3TAK033U89AB…4567TCV0064D5E6F`.

use std::collections::HashMap;

use chrono::Utc;

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
            for (tag, value) in [(key_tag, &key.under_zmk), (kcv_tag, &key.kcv)] {
                s.push_str(tag);
                s.push_str(&format!("{:03}", value.len()));
                s.push_str(value);
            }
        }
        s
    }

    /// Reads field 48 (unknown tags are skipped, so the layout can grow).
    pub fn decode(field: &str) -> Result<KeyExchangeField, KeyExchangeFieldError> {
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
