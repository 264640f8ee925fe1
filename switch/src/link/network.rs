//! Network management (0800/0810) vocabulary shared by the issuer links and the bank simulator.
//!
//! Why this exists: both ends of a link must agree on field 70's codes (ISO 8583:1987 field
//! 70, network management information code) and on how a new zone PIN key travels in a key
//! exchange. The layout of field 48 in a key exchange is ours (documented in
//! `schemas/iso8583/ssc87.md`, "Key exchange"): a sequence of elements, each a 3-character
//! tag, a 3-digit length and the value:
//!
//! | tag | value |
//! |---|---|
//! | `ZPK` | the new zone PIN key encrypted under the zone master key: scheme letter + hex (`U` + 32 hex digits for a double-length 3DES key, as payShield A0/A6 print it) |
//! | `KCV` | its key check value: 6 hex digits (3DES encryption of a zero block, first 3 bytes) |
//!
//! Example: `ZPK033U0123…CDEFKCV006A1B2C3`.

use chrono::{TimeDelta, Utc};

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

/// The content of field 48 in a key exchange.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyExchangeField {
    /// The new ZPK under the ZMK (scheme letter + hex). Encrypted: not secret, but kept out of
    /// `Debug` to keep logs short.
    pub zpk_under_zmk: String,
    /// Its check value, 6 hex digits.
    pub kcv: String,
}

impl std::fmt::Debug for KeyExchangeField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyExchangeField {{ kcv: {} }}", self.kcv)
    }
}

impl KeyExchangeField {
    /// The field 48 text.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(self.zpk_under_zmk.len() + 20);
        for (tag, value) in [("ZPK", &self.zpk_under_zmk), ("KCV", &self.kcv)] {
            s.push_str(tag);
            s.push_str(&format!("{:03}", value.len()));
            s.push_str(value);
        }
        s
    }

    /// Reads field 48 (unknown tags are skipped, so the layout can grow, e.g. a TAK).
    pub fn decode(field: &str) -> Result<KeyExchangeField, KeyExchangeFieldError> {
        let mut zpk = None;
        let mut kcv = None;
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
            match tag {
                "ZPK" => zpk = Some(value.to_owned()),
                "KCV" => kcv = Some(value.to_owned()),
                _ => {}
            }
            rest = &rest[6 + len..];
        }
        Ok(KeyExchangeField {
            zpk_under_zmk: zpk.ok_or(KeyExchangeFieldError::Missing("ZPK"))?,
            kcv: kcv.ok_or(KeyExchangeFieldError::Missing("KCV"))?,
        })
    }
}

/// Field 7 for a message originated now: `MMDDhhmmss` in China Standard Time (UTC+8), as
/// `ssc87` defines it.
pub fn transmission_now() -> String {
    (Utc::now() + TimeDelta::hours(8))
        .format("%m%d%H%M%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_exchange_field_round_trips_and_rejects_truncation() {
        let f = KeyExchangeField {
            zpk_under_zmk: format!("U{}", "AB".repeat(16)),
            kcv: "A1B2C3".into(),
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
    fn transmission_time_has_ten_digits() {
        let t = transmission_now();
        assert_eq!(t.len(), 10);
        assert!(t.bytes().all(|b| b.is_ascii_digit()));
    }
}
