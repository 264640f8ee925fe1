//! Length prefixes of variable-length fields (ISO 8583 `LL`, `LLL`, `LLLL`): how the length is
//! written, and its reading and writing.
//!
//! The same `LLVAR` length is two ASCII digits on jPOS's `IFA_LL*`, one BCD byte on `IFB_LL*`,
//! two EBCDIC digits on a mainframe link, a binary byte or hex digits on moov's variants.

use super::bcd::{bcd_nibbles, encode_bcd, hex_val};
use super::content::Content;
use super::encoding::Sink;
use super::error::{Error, FieldRef};

/// How the length of a variable-length field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrefixEncoding {
    /// Decimal ASCII digits (`IFA_LL*`).
    Ascii,
    /// Decimal EBCDIC digits (0xF0-0xF9).
    Ebcdic,
    /// Packed BCD, right-aligned (`IFB_LL*`: LL = 1 byte, LLL = 2 bytes `0x01 0x23`).
    Bcd,
    /// Packed BCD, left-aligned (moov `BCD`: LLL 8 = `0x00 0x80`).
    BcdRightPad,
    /// Big-endian binary integer.
    Binary,
    /// Upper-case ASCII hex digits (moov `HEX`).
    Hex,
}

impl PrefixEncoding {
    /// Parses a spec name: `ascii`, `ebcdic`, `bcd`, `bcd_rpad`, `binary`, `hex`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ascii" => Self::Ascii,
            "ebcdic" => Self::Ebcdic,
            "bcd" => Self::Bcd,
            "bcd_rpad" => Self::BcdRightPad,
            "binary" => Self::Binary,
            "hex" => Self::Hex,
            _ => return None,
        })
    }
}

/// A length prefix: encoding and width (decimal digits, hex digits, or bytes for binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// Encoding of the length.
    pub encoding: PrefixEncoding,
    /// Digits (or bytes for [`PrefixEncoding::Binary`]).
    pub width: u8,
}

impl Prefix {
    /// Bytes the prefix takes on the wire.
    #[inline]
    pub fn wire_len(self) -> usize {
        let w = usize::from(self.width);
        match self.encoding {
            PrefixEncoding::Ascii | PrefixEncoding::Ebcdic | PrefixEncoding::Hex => w,
            PrefixEncoding::Binary => w,
            PrefixEncoding::Bcd | PrefixEncoding::BcdRightPad => w.div_ceil(2),
        }
    }

    /// The largest length the prefix can express.
    pub fn capacity(self) -> usize {
        let w = u32::from(self.width);
        match self.encoding {
            PrefixEncoding::Binary => (1usize << (8 * w.min(4))) - 1,
            PrefixEncoding::Hex => (1usize << (4 * w.min(8))) - 1,
            _ => 10usize.pow(w.min(9)) - 1,
        }
    }

    /// Reads a length from exactly [`Self::wire_len`] bytes.
    #[inline]
    pub fn read(self, at: FieldRef, b: &[u8]) -> Result<usize, Error> {
        let bad = Error::InvalidLengthPrefix { at };
        let mut n: usize = 0;
        match self.encoding {
            PrefixEncoding::Ascii => {
                for &c in b {
                    if !c.is_ascii_digit() {
                        return Err(bad);
                    }
                    n = n * 10 + usize::from(c - b'0');
                }
            }
            PrefixEncoding::Ebcdic => {
                for &c in b {
                    if !(0xF0..=0xF9).contains(&c) {
                        return Err(bad);
                    }
                    n = n * 10 + usize::from(c - 0xF0);
                }
            }
            PrefixEncoding::Hex => {
                for &c in b {
                    if !c.is_ascii_hexdigit() {
                        return Err(bad);
                    }
                    n = n * 16 + usize::from(hex_val(c));
                }
            }
            PrefixEncoding::Binary => {
                for &c in b {
                    n = (n << 8) | usize::from(c);
                }
            }
            PrefixEncoding::Bcd | PrefixEncoding::BcdRightPad => {
                let w = usize::from(self.width);
                let left_pad = self.encoding == PrefixEncoding::Bcd;
                if w % 2 == 1 {
                    let pad = if left_pad {
                        b.first().map(|x| x >> 4)
                    } else {
                        b.last().map(|x| x & 0xF)
                    };
                    if pad.is_some_and(|p| p != 0) {
                        return Err(bad);
                    }
                }
                for d in bcd_nibbles(b, w, left_pad) {
                    if d > 9 {
                        return Err(bad);
                    }
                    n = n * 10 + usize::from(d);
                }
            }
        }
        Ok(n)
    }

    /// Appends the prefix for `len` (the caller checked `len <= capacity`).
    pub fn write(self, len: usize, out: &mut impl Sink) {
        let w = usize::from(self.width);
        match self.encoding {
            PrefixEncoding::Ascii | PrefixEncoding::Ebcdic => {
                let zero = if self.encoding == PrefixEncoding::Ascii {
                    b'0'
                } else {
                    0xF0
                };
                for i in (0..w).rev() {
                    out.push(zero + ((len / 10usize.pow(i as u32)) % 10) as u8);
                }
            }
            PrefixEncoding::Hex => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                for i in (0..w).rev() {
                    out.push(HEX[(len >> (4 * i)) & 0xF]);
                }
            }
            PrefixEncoding::Binary => {
                for i in (0..w).rev() {
                    out.push((len >> (8 * i)) as u8);
                }
            }
            PrefixEncoding::Bcd | PrefixEncoding::BcdRightPad => {
                let mut digits = [0u8; 10];
                for (i, d) in digits[..w].iter_mut().rev().enumerate() {
                    *d = b'0' + ((len / 10usize.pow(i as u32)) % 10) as u8;
                }
                let left_pad = self.encoding == PrefixEncoding::Bcd;
                // Digits are valid by construction; encode_bcd cannot fail on them.
                let _ = encode_bcd(
                    FieldRef::field(0),
                    Content::Numeric,
                    &digits[..w],
                    left_pad,
                    out,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: FieldRef = FieldRef::field(2);

    #[test]
    fn prefixes_round_trip() {
        let cases = [
            (PrefixEncoding::Ascii, 3, 44, b"044".to_vec()),
            (PrefixEncoding::Bcd, 3, 44, vec![0x00, 0x44]),
            (PrefixEncoding::BcdRightPad, 3, 8, vec![0x00, 0x80]),
            (PrefixEncoding::Binary, 2, 300, vec![0x01, 0x2C]),
            (PrefixEncoding::Hex, 1, 11, b"B".to_vec()),
            (PrefixEncoding::Ebcdic, 2, 37, vec![0xF3, 0xF7]),
        ];
        for (encoding, width, len, wire) in cases {
            let p = Prefix { encoding, width };
            let mut out = Vec::new();
            p.write(len, &mut out);
            assert_eq!(out, wire, "{encoding:?}");
            assert_eq!(p.read(AT, &wire).unwrap(), len);
        }
    }

    #[test]
    fn prefix_rejects_non_digits() {
        let p = Prefix {
            encoding: PrefixEncoding::Ascii,
            width: 2,
        };
        assert_eq!(
            p.read(AT, b"1A"),
            Err(Error::InvalidLengthPrefix { at: AT })
        );
    }
}
