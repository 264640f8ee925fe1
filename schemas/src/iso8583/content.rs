//! Content classes of ISO 8583 data elements and date/time formats.
//!
//! ISO 8583:1987 §4.3 (and 1993 §4.2) name what a field may contain: `n` numeric digits, `a`
//! alphabetic, `an`, `ans`, `as`, `ns`, `s` special, `b` binary, `z` magnetic-stripe track
//! data (ISO 7811/7813 track-2/3 character set) and `x+n` a `C`/`D` (credit/debit) indicator
//! followed by digits. A field's *logical* value is one byte per character (Latin-1) for all
//! classes but `b`, whose logical value is the raw bytes.

use super::error::{Error, FieldRef};

/// What characters a field may contain (ISO 8583:1987 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Content {
    /// `n`: digits 0-9.
    Numeric,
    /// `a`: letters and space.
    Alpha,
    /// `an`: letters, digits and space.
    AlphaNumeric,
    /// `ans`: printable ASCII (0x20-0x7E).
    AlphaNumericSpecial,
    /// `as`: letters and specials (no digits).
    AlphaSpecial,
    /// `ns`: digits and specials (no letters).
    NumericSpecial,
    /// `s`: specials only.
    Special,
    /// `b`: binary, any byte.
    Binary,
    /// `z`: track 2/3 data: digits, `=`/`D` separator and the other ISO 7811 4-bit codes
    /// (`:;<=>?` or their nibble forms `A`-`F`).
    Track,
    /// `x+n`: `C` or `D` followed by digits (a signed amount).
    SignedAmount,
}

impl Content {
    /// Parses the ISO notation (`n`, `an`, `x+n` ...).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "n" => Self::Numeric,
            "a" => Self::Alpha,
            "an" => Self::AlphaNumeric,
            "ans" => Self::AlphaNumericSpecial,
            "as" => Self::AlphaSpecial,
            "ns" => Self::NumericSpecial,
            "s" => Self::Special,
            "b" => Self::Binary,
            "z" => Self::Track,
            "x+n" => Self::SignedAmount,
            _ => return None,
        })
    }

    /// The ISO notation of this class.
    pub fn notation(self) -> &'static str {
        match self {
            Self::Numeric => "n",
            Self::Alpha => "a",
            Self::AlphaNumeric => "an",
            Self::AlphaNumericSpecial => "ans",
            Self::AlphaSpecial => "as",
            Self::NumericSpecial => "ns",
            Self::Special => "s",
            Self::Binary => "b",
            Self::Track => "z",
            Self::SignedAmount => "x+n",
        }
    }

    /// Words for error messages ("numeric data", "track data" ...).
    pub fn description(self) -> &'static str {
        match self {
            Self::Numeric => "numeric data",
            Self::Alpha => "alphabetic data",
            Self::AlphaNumeric => "alphanumeric data",
            Self::AlphaNumericSpecial => "alphanumeric/special data",
            Self::AlphaSpecial => "alphabetic/special data",
            Self::NumericSpecial => "numeric/special data",
            Self::Special => "special-character data",
            Self::Binary => "binary data",
            Self::Track => "track data",
            Self::SignedAmount => "signed amount",
        }
    }

    /// True for classes whose logical value is text (all but `b`).
    pub fn is_text(self) -> bool {
        self != Self::Binary
    }

    /// Whether `c` (a Latin-1 byte) may appear at `position` of a value of this class.
    #[inline]
    pub fn allows(self, position: usize, c: u8) -> bool {
        let special = (0x20..=0x7E).contains(&c) && !c.is_ascii_alphanumeric();
        match self {
            Self::Numeric => c.is_ascii_digit(),
            Self::Alpha => c.is_ascii_alphabetic() || c == b' ',
            Self::AlphaNumeric => c.is_ascii_alphanumeric() || c == b' ',
            Self::AlphaNumericSpecial => (0x20..=0x7E).contains(&c),
            Self::AlphaSpecial => c.is_ascii_alphabetic() || special,
            Self::NumericSpecial => c.is_ascii_digit() || special,
            Self::Special => special,
            Self::Binary => true,
            Self::Track => c.is_ascii_digit() || matches!(c, b'A'..=b'F' | b':'..=b'?'),
            Self::SignedAmount => {
                if position == 0 {
                    c == b'C' || c == b'D'
                } else {
                    c.is_ascii_digit()
                }
            }
        }
    }

    /// Checks every character of a logical value.
    #[inline]
    pub fn validate(self, at: FieldRef, value: &[u8]) -> Result<(), Error> {
        if self == Self::Binary {
            return Ok(());
        }
        if self == Self::Numeric {
            // Hot path: most fields are numeric.
            return match value.iter().position(|c| !c.is_ascii_digit()) {
                None => Ok(()),
                Some(position) => Err(Error::InvalidContent {
                    at,
                    content: self,
                    position,
                }),
            };
        }
        match value
            .iter()
            .enumerate()
            .position(|(i, &c)| !self.allows(i, c))
        {
            None => Ok(()),
            Some(position) => Err(Error::InvalidContent {
                at,
                content: self,
                position,
            }),
        }
    }
}

/// A date/time layout checked on numeric fields (ISO 8583:1987 field 7 `MMDDhhmmss`, 12
/// `hhmmss`, 13 `MMDD`, 14 `YYMM` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateFormat {
    layout: &'static str,
}

const LAYOUTS: &[&str] = &[
    "MMDDhhmmss",
    "hhmmss",
    "MMDD",
    "YYMM",
    "YYMMDD",
    "YYMMDDhhmmss",
    "CCYYMMDD",
    "MMDDhhmm",
];

impl DateFormat {
    /// Parses a layout name; `None` if unknown.
    pub fn parse(s: &str) -> Option<Self> {
        LAYOUTS
            .iter()
            .find(|l| **l == s)
            .map(|layout| Self { layout })
    }

    /// The layout, e.g. `"MMDD"`.
    pub fn layout(self) -> &'static str {
        self.layout
    }

    /// Number of digits of the layout.
    pub fn len(self) -> usize {
        self.layout.len()
    }

    /// Checks a digit string against the layout (month 01-12, day 01-31 and not past the
    /// month's end, hour 00-23, minute and second 00-59).
    pub fn validate(self, at: FieldRef, v: &[u8]) -> Result<(), Error> {
        let bad = Error::InvalidDate {
            at,
            format: self.layout,
        };
        if v.len() != self.layout.len() || !v.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        let l = self.layout.as_bytes();
        let mut month = None;
        let mut day = None;
        let mut i = 0;
        while i + 1 < l.len() {
            let two = u32::from(v[i] - b'0') * 10 + u32::from(v[i + 1] - b'0');
            match &l[i..i + 2] {
                b"MM" => month = Some(two),
                b"DD" => day = Some(two),
                b"hh" if two > 23 => return Err(bad),
                b"mm" | b"ss" if two > 59 => return Err(bad),
                _ => {}
            }
            i += 2;
        }
        if let Some(m) = month {
            if !(1..=12).contains(&m) {
                return Err(bad);
            }
        }
        if let Some(d) = day {
            let max = match month {
                Some(2) => 29,
                Some(4 | 6 | 9 | 11) => 30,
                _ => 31,
            };
            if !(1..=max).contains(&d) {
                return Err(bad);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: FieldRef = FieldRef::field(13);

    #[test]
    fn numeric_rejects_letters_with_position() {
        assert_eq!(
            Content::Numeric.validate(AT, b"12A4"),
            Err(Error::InvalidContent {
                at: AT,
                content: Content::Numeric,
                position: 2
            })
        );
    }

    #[test]
    fn signed_amount_needs_c_or_d_first() {
        assert!(Content::SignedAmount.validate(AT, b"C0001").is_ok());
        assert!(Content::SignedAmount.validate(AT, b"D0001").is_ok());
        assert!(Content::SignedAmount.validate(AT, b"F0001").is_err());
        assert!(Content::SignedAmount.validate(AT, b"C00A1").is_err());
    }

    #[test]
    fn track_accepts_separator_and_rejects_letters_past_f() {
        assert!(Content::Track.validate(AT, b"6214=2512D?FFF").is_ok());
        assert!(Content::Track.validate(AT, b"III").is_err());
    }

    #[test]
    fn dates_check_ranges() {
        let mmdd = DateFormat::parse("MMDD").unwrap();
        assert!(mmdd.validate(AT, b"0229").is_ok());
        assert!(mmdd.validate(AT, b"0230").is_err());
        assert!(mmdd.validate(AT, b"1301").is_err());
        assert!(mmdd.validate(AT, b"0900").is_err());
        let t = DateFormat::parse("hhmmss").unwrap();
        assert!(t.validate(AT, b"235959").is_ok());
        assert!(t.validate(AT, b"240000").is_err());
        assert!(t.validate(AT, b"126000").is_err());
    }
}
