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
        if self == Self::SignedAmount && position == 0 {
            return c == b'C' || c == b'D';
        }
        CLASSES[c as usize] & self.bit() != 0
    }

    /// Bit of this class in [`CLASSES`] (`x+n` checks its digits with the `n` bit).
    const fn bit(self) -> u16 {
        match self {
            Self::Numeric | Self::SignedAmount => 1,
            Self::Alpha => 2,
            Self::AlphaNumeric => 4,
            Self::AlphaNumericSpecial => 8,
            Self::AlphaSpecial => 16,
            Self::NumericSpecial => 32,
            Self::Special => 64,
            Self::Binary => 128,
            Self::Track => 256,
        }
    }

    /// Checks every character of a logical value.
    #[inline]
    pub fn validate(self, at: FieldRef, value: &[u8]) -> Result<(), Error> {
        if self == Self::Binary {
            return Ok(());
        }
        let (skip, rest) = match (self, value.split_first()) {
            (Self::SignedAmount, Some((&sign, rest))) => {
                if sign != b'C' && sign != b'D' {
                    return Err(Error::InvalidContent {
                        at,
                        content: self,
                        position: 0,
                    });
                }
                (1, rest)
            }
            _ => (0, value),
        };
        if swar_all_in(self, rest) {
            return Ok(());
        }
        let bit = self.bit();
        match rest.iter().position(|&c| CLASSES[c as usize] & bit == 0) {
            None => Ok(()),
            Some(position) => Err(Error::InvalidContent {
                at,
                content: self,
                position: skip + position,
            }),
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Eight bytes at a time: true if every byte is in `lo..=hi` (`hi` < 0x80). May answer false
/// for valid input (the caller then checks byte by byte), never true for invalid input.
#[inline]
fn swar_range(v: &[u8], lo: u8, hi: u8) -> bool {
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        // Any byte >= 0x80, < lo (borrow sets its high bit), or > hi (carry sets it).
        let below = x.wrapping_sub(ONES * u64::from(lo)) & !x;
        let above = x.wrapping_add(ONES * u64::from(127 - hi)) | x;
        if (below | above) & HIGHS != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| (lo..=hi).contains(&b))
}

/// Fast acceptance for the common classes: digits and printable ASCII.
#[inline]
fn swar_all_in(content: Content, v: &[u8]) -> bool {
    match content {
        Content::Numeric | Content::SignedAmount => swar_range(v, b'0', b'9'),
        Content::AlphaNumericSpecial => swar_range(v, 0x20, 0x7E),
        _ => false,
    }
}

/// For each byte, the set of content classes (by [`Content::bit`]) that allow it.
static CLASSES: [u16; 256] = {
    let all = [
        Content::Numeric,
        Content::Alpha,
        Content::AlphaNumeric,
        Content::AlphaNumericSpecial,
        Content::AlphaSpecial,
        Content::NumericSpecial,
        Content::Special,
        Content::Binary,
        Content::Track,
    ];
    let mut t = [0u16; 256];
    let mut c = 0;
    while c < 256 {
        let mut i = 0;
        while i < all.len() {
            if allows_char(all[i], c as u8) {
                t[c] |= all[i].bit();
            }
            i += 1;
        }
        c += 1;
    }
    t
};

/// Whether a character (not the `x+n` sign position) belongs to a class.
const fn allows_char(content: Content, c: u8) -> bool {
    let digit = c.is_ascii_digit();
    let alpha = c.is_ascii_alphabetic();
    let special = c >= 0x20 && c <= 0x7E && !digit && !alpha;
    match content {
        Content::Numeric | Content::SignedAmount => digit,
        Content::Alpha => alpha || c == b' ',
        Content::AlphaNumeric => alpha || digit || c == b' ',
        Content::AlphaNumericSpecial => c >= 0x20 && c <= 0x7E,
        Content::AlphaSpecial => alpha || special,
        Content::NumericSpecial => digit || special,
        Content::Special => special,
        Content::Binary => true,
        Content::Track => digit || (c >= b'A' && c <= b'F') || (c >= b':' && c <= b'?'),
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
    pub fn digits(self) -> usize {
        self.layout.len()
    }

    /// Checks a digit string against the layout (month 01-12, day 01-31 and not past the
    /// month's end, hour 00-23, minute and second 00-59).
    #[inline]
    pub fn validate(self, at: FieldRef, v: &[u8]) -> Result<(), Error> {
        let bad = Error::InvalidDate {
            at,
            format: self.layout,
        };
        let l = self.layout.as_bytes();
        if v.len() != l.len() || !v.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        let mut month = 0;
        let mut day = 0;
        for (pair, digits) in l.chunks_exact(2).zip(v.chunks_exact(2)) {
            let two = (digits[0] - b'0') * 10 + (digits[1] - b'0');
            let ok = match pair[0] {
                b'M' => {
                    month = two;
                    (1..=12).contains(&two)
                }
                b'D' => {
                    day = two;
                    two >= 1
                }
                b'h' => two <= 23,
                b'm' | b's' => two <= 59,
                _ => true,
            };
            if !ok {
                return Err(bad);
            }
        }
        let day_max = match month {
            2 => 29,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day > day_max {
            return Err(bad);
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
    fn eight_byte_checks_agree_with_the_byte_by_byte_rule() {
        for content in [Content::Numeric, Content::AlphaNumericSpecial] {
            for bad in 0..=255u8 {
                for pos in 0..19 {
                    let mut v = if content == Content::Numeric {
                        b"0123456789012345678".to_vec()
                    } else {
                        b"Az09 ~!{}[]<>?/.,:;".to_vec()
                    };
                    v[pos] = bad;
                    let expect = allows_char(content, bad);
                    assert_eq!(
                        content.validate(AT, &v).is_ok(),
                        expect,
                        "{content:?} {bad:#04x}@{pos}"
                    );
                    if !expect {
                        assert_eq!(
                            content.validate(AT, &v),
                            Err(Error::InvalidContent {
                                at: AT,
                                content,
                                position: pos
                            })
                        );
                    }
                }
            }
        }
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
