//! Identifiers and message references: institutions, terminals, STAN, RRN, transmission time,
//! card identification codes and social-security numbers.
//!
//! Each is a newtype validated at construction with the format of the ISO 8583 field (or the
//! national standard) it comes from, so a store or event never holds an identifier that could
//! not have been on the wire. Serde uses the string form.

use std::fmt;

/// Why a string is not a valid identifier. Names the kind, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Wrong length for this identifier.
    #[error("{kind}: wrong length")]
    Length {
        /// Which identifier.
        kind: &'static str,
    },
    /// A character outside the identifier's alphabet.
    #[error("{kind}: invalid character")]
    Character {
        /// Which identifier.
        kind: &'static str,
    },
    /// A date/time component out of range, or a failed check character.
    #[error("{kind}: invalid value")]
    Value {
        /// Which identifier.
        kind: &'static str,
    },
}

fn check(
    kind: &'static str,
    s: &str,
    len: std::ops::RangeInclusive<usize>,
    allowed: fn(u8) -> bool,
) -> Result<(), IdError> {
    if !len.contains(&s.len()) {
        return Err(IdError::Length { kind });
    }
    if !s.bytes().all(allowed) {
        return Err(IdError::Character { kind });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $len:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps the identifier.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check($kind, s, $len, $allowed)?;
                Ok(Self(s.to_owned()))
            }

            /// The identifier as it appears on the wire and in storage.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                check($kind, &s, $len, $allowed)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

fn digit(b: u8) -> bool {
    b.is_ascii_digit()
}
fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

string_id!(
    /// An institution of the network (bank, hospital, insurance fund, social-security fund,
    /// the switch itself): ISO 8583 fields 32/33/100, n..11.
    InstitutionId, "institution id", 1..=11, digit
);
string_id!(
    /// Retrieval reference number, ISO 8583 field 37 (an 12).
    Rrn, "rrn", 12..=12, alnum
);
string_id!(
    /// Card acceptor terminal identification, ISO 8583 field 41 (ans 8).
    TerminalId, "terminal id", 8..=8, printable
);
string_id!(
    /// Card identification code (卡识别码) of a social-security card: 32 alphanumeric characters
    /// read from the SSSE application's EF05 (MOHRSS card specification).
    CardIdentificationCode, "card identification code", 32..=32, alnum
);

/// Systems trace audit number, ISO 8583 field 11 (n 6).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Stan(u32);

impl Stan {
    /// Largest STAN; terminals wrap to 1 after it.
    pub const MAX: u32 = 999_999;

    /// A STAN from its numeric value.
    pub fn new(value: u32) -> Result<Self, IdError> {
        if value > Self::MAX {
            return Err(IdError::Value { kind: "stan" });
        }
        Ok(Self(value))
    }

    /// Parses the six-digit wire form.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check("stan", s, 6..=6, digit)?;
        s.parse::<u32>()
            .map(Self)
            .map_err(|_| IdError::Value { kind: "stan" })
    }

    /// The numeric value.
    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Stan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl TryFrom<String> for Stan {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<Stan> for String {
    fn from(s: Stan) -> String {
        s.to_string()
    }
}

/// Transmission date and time, ISO 8583 field 7 (n 10, `MMDDhhmmss`, GMT). Part of the
/// duplicate-detection key, so it is kept exactly as transmitted.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct TransmissionDateTime(String);

impl TransmissionDateTime {
    /// Parses `MMDDhhmmss`, checking each component's range.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "transmission date time";
        check(KIND, s, 10..=10, digit)?;
        let part = |i: usize| -> u32 {
            // Two ASCII digits, already checked.
            s.as_bytes()[i..i + 2]
                .iter()
                .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'))
        };
        let ok = (1..=12).contains(&part(0))
            && (1..=31).contains(&part(2))
            && part(4) <= 23
            && part(6) <= 59
            && part(8) <= 59;
        if !ok {
            return Err(IdError::Value { kind: KIND });
        }
        Ok(Self(s.to_owned()))
    }

    /// The ten-digit wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TransmissionDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TransmissionDateTime {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<TransmissionDateTime> for String {
    fn from(t: TransmissionDateTime) -> String {
        t.0
    }
}

/// A citizen's social-security number: the 18-character citizen identity number of
/// GB 11643-1999 (17 digits and a MOD 11-2 check character `0-9` or `X`).
///
/// Personal data: `Debug` shows only the last four characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SocialSecurityNumber(String);

impl SocialSecurityNumber {
    /// Validates the format and the GB 11643-1999 / ISO 7064 MOD 11-2 check character.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "social security number";
        if s.len() != 18 {
            return Err(IdError::Length { kind: KIND });
        }
        // Byte-wise, so a multi-byte character can never split a slice.
        let (body, check_char) = s.as_bytes().split_at(17);
        if !body.iter().copied().all(digit) {
            return Err(IdError::Character { kind: KIND });
        }
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        const CHECK: &[u8; 11] = b"10X98765432";
        let sum: u32 = body
            .iter()
            .zip(WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        let expected = CHECK[(sum % 11) as usize];
        if check_char != [expected] {
            return Err(IdError::Value { kind: KIND });
        }
        Ok(Self(s.to_owned()))
    }

    /// The clear number, for storage encryption or display to its owner only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Masked form: `**************002X`.
    pub fn masked(&self) -> String {
        format!("{}{}", "*".repeat(14), &self.0[14..])
    }
}

impl fmt::Debug for SocialSecurityNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SocialSecurityNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gb_11643_example_number_is_valid_and_masked() {
        // The worked example of GB 11643-1999 (check character X).
        let ssn = SocialSecurityNumber::parse("11010519491231002X").unwrap();
        assert_eq!(
            format!("{ssn:?}"),
            "SocialSecurityNumber(**************002X)"
        );
        assert_eq!(
            SocialSecurityNumber::parse("110105194912310021"),
            Err(IdError::Value {
                kind: "social security number"
            })
        );
    }

    #[test]
    fn stan_is_six_digits_zero_padded() {
        let stan = Stan::parse("000042").unwrap();
        assert_eq!(stan.value(), 42);
        assert_eq!(stan.to_string(), "000042");
        assert!(Stan::parse("42").is_err());
        assert!(Stan::new(1_000_000).is_err());
        assert_eq!(serde_json::to_string(&stan).unwrap(), "\"000042\"");
    }

    #[test]
    fn field_formats_are_enforced() {
        assert!(Rrn::parse("123456789012").is_ok());
        assert!(Rrn::parse("12345678901").is_err());
        assert!(TerminalId::parse("KIOSK001").is_ok());
        assert!(TerminalId::parse("KIOSK\n01").is_err());
        assert!(InstitutionId::parse("01020000").is_ok());
        assert!(InstitutionId::parse("BANK").is_err());
        assert!(InstitutionId::parse("").is_err());
        assert!(TransmissionDateTime::parse("1123093605").is_ok());
        assert!(TransmissionDateTime::parse("1323093605").is_err());
        assert!(TransmissionDateTime::parse("1123243605").is_err());
    }

    #[test]
    fn serde_rejects_invalid_identifiers() {
        assert!(serde_json::from_str::<Rrn>("\"short\"").is_err());
        assert!(serde_json::from_str::<InstitutionId>("\"0102\"").is_ok());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = Stan::parse(&s);
            let _ = Rrn::parse(&s);
            let _ = TerminalId::parse(&s);
            let _ = InstitutionId::parse(&s);
            let _ = TransmissionDateTime::parse(&s);
            let _ = SocialSecurityNumber::parse(&s);
            let _ = CardIdentificationCode::parse(&s);
        }
    }
}
