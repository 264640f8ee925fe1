//! Wire encodings of field data (the length prefixes are in `prefix`, the BCD nibble work both
//! share in `bcd`).
//!
//! ISO 8583 fixes the meaning of a field but not its bytes: the same `n 6` STAN is six ASCII
//! digits on jPOS's `IFA_NUMERIC`, three packed-BCD bytes on `IFB_NUMERIC`, six EBCDIC bytes on a
//! mainframe link. Each encoding here converts between the *wire* bytes and the field's
//! *logical* value (one Latin-1 byte per character for text, raw bytes for `b`), and checks wire
//! bytes without allocating so the decoder's hot path stays allocation-free.

use std::borrow::Cow;

use super::bcd::{bcd_nibbles, check_bcd, decode_bcd, encode_bcd, hex_val, HEX_NIBBLES};
use super::content::Content;
use super::ebcdic::{CP037_DECODE, CP037_ENCODE, CP1047_DECODE, CP1047_ENCODE};
use super::error::{Error, FieldRef};

/// Where encoded bytes go: a `Vec<u8>` or a `bytes::BytesMut` (both grow as needed, so
/// encoding never panics on a full buffer).
pub trait Sink {
    /// Appends one byte.
    fn push(&mut self, b: u8);
    /// Appends bytes.
    fn extend_from_slice(&mut self, b: &[u8]);
    /// Bytes written so far.
    fn len(&self) -> usize;
    /// True if nothing was written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn push(&mut self, b: u8) {
        Vec::push(self, b);
    }
    #[inline]
    fn extend_from_slice(&mut self, b: &[u8]) {
        Vec::extend_from_slice(self, b);
    }
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

impl Sink for bytes::BytesMut {
    #[inline]
    fn push(&mut self, b: u8) {
        bytes::BufMut::put_u8(self, b);
    }
    #[inline]
    fn extend_from_slice(&mut self, b: &[u8]) {
        bytes::BytesMut::extend_from_slice(self, b);
    }
    #[inline]
    fn len(&self) -> usize {
        bytes::BytesMut::len(self)
    }
}

/// How a field's data bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataEncoding {
    /// One ASCII (Latin-1) byte per character (jPOS `IFA_*`, `IF_CHAR`).
    Ascii,
    /// One EBCDIC cp037 byte per character.
    Ebcdic037,
    /// One EBCDIC cp1047 byte per character.
    Ebcdic1047,
    /// Packed BCD, two digits per byte. Odd lengths are padded with a `0` nibble on the left
    /// (`right_aligned`, jPOS `IFB_NUMERIC` with pad=true) or on the right (jPOS pad=false,
    /// moov `BCD`). For `x+n` the sign is one ASCII byte before the BCD digits (jPOS
    /// `IFB_AMOUNT`). For `z` the nibbles A-F are the ISO 7811 characters `:;<=>?`.
    Bcd {
        /// Pad nibble on the left (value right-aligned) if true, on the right if false.
        left_pad: bool,
    },
    /// Raw bytes (`b` fields: jPOS `IFB_BINARY`).
    Binary,
    /// Raw bytes written as two upper-case ASCII hex characters each (jPOS `IFA_BINARY`).
    Hex,
}

impl DataEncoding {
    /// Parses a spec name: `ascii`, `ebcdic` (= `cp037`), `cp037`, `cp1047`, `bcd`
    /// (left-padded), `bcd_rpad`, `binary`, `hex`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ascii" => Self::Ascii,
            "ebcdic" | "cp037" => Self::Ebcdic037,
            "cp1047" => Self::Ebcdic1047,
            "bcd" => Self::Bcd { left_pad: true },
            "bcd_rpad" => Self::Bcd { left_pad: false },
            "binary" => Self::Binary,
            "hex" => Self::Hex,
            _ => return None,
        })
    }

    /// The spec name of this encoding.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ascii => "ascii",
            Self::Ebcdic037 => "cp037",
            Self::Ebcdic1047 => "cp1047",
            Self::Bcd { left_pad: true } => "bcd",
            Self::Bcd { left_pad: false } => "bcd_rpad",
            Self::Binary => "binary",
            Self::Hex => "hex",
        }
    }

    /// Whether this encoding can carry values of `content`.
    pub fn supports(self, content: Content) -> bool {
        match self {
            Self::Ascii | Self::Ebcdic037 | Self::Ebcdic1047 => content.is_text(),
            Self::Bcd { .. } => matches!(
                content,
                Content::Numeric | Content::Track | Content::SignedAmount
            ),
            Self::Binary | Self::Hex => content == Content::Binary,
        }
    }

    /// Wire bytes needed for `units` logical units (characters, digits or bytes).
    #[inline]
    pub fn wire_len(self, content: Content, units: usize) -> usize {
        match self {
            Self::Ascii | Self::Ebcdic037 | Self::Ebcdic1047 | Self::Binary => units,
            Self::Hex => units * 2,
            Self::Bcd { .. } => {
                if content == Content::SignedAmount && units > 0 {
                    1 + (units - 1).div_ceil(2)
                } else {
                    units.div_ceil(2)
                }
            }
        }
    }

    /// Checks wire bytes holding `units` units of `content` without allocating. `strict`
    /// also checks the content class (jPOS-compatible specs are not strict: jPOS packagers do
    /// not validate characters).
    #[inline]
    pub fn check(
        self,
        at: FieldRef,
        content: Content,
        wire: &[u8],
        units: usize,
        strict: bool,
    ) -> Result<(), Error> {
        match self {
            Self::Ascii => {
                if strict {
                    content.validate(at, wire)?;
                }
                Ok(())
            }
            Self::Ebcdic037 | Self::Ebcdic1047 => {
                if strict {
                    let table = self.decode_table();
                    for (i, &b) in wire.iter().enumerate() {
                        if !content.allows(i, table[b as usize]) {
                            return Err(Error::InvalidContent {
                                at,
                                content,
                                position: i,
                            });
                        }
                    }
                }
                Ok(())
            }
            Self::Binary => Ok(()),
            Self::Hex => match wire.iter().position(|b| !b.is_ascii_hexdigit()) {
                None => Ok(()),
                Some(position) => Err(Error::InvalidContent {
                    at,
                    content,
                    position: position / 2,
                }),
            },
            Self::Bcd { left_pad } => check_bcd(at, content, wire, units, left_pad, strict),
        }
    }

    /// Converts wire bytes to the logical value. Borrows when the two are the same bytes.
    pub fn decode<'a>(self, content: Content, wire: &'a [u8], units: usize) -> Cow<'a, [u8]> {
        match self {
            Self::Ascii | Self::Binary => Cow::Borrowed(wire),
            Self::Ebcdic037 | Self::Ebcdic1047 => {
                let t = self.decode_table();
                Cow::Owned(wire.iter().map(|&b| t[b as usize]).collect())
            }
            Self::Hex => Cow::Owned(
                wire.chunks(2)
                    .map(|p| (hex_val(p[0]) << 4) | p.get(1).map_or(0, |&c| hex_val(c)))
                    .collect(),
            ),
            Self::Bcd { left_pad } => {
                let mut out = Vec::with_capacity(units);
                decode_bcd(content, wire, units, left_pad, &mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Decodes up to `out.len()` numeric characters into a stack buffer (MTI, dates);
    /// returns how many were written. Longer values are cut (callers then reject them).
    #[inline]
    pub(crate) fn decode_digits(self, wire: &[u8], units: usize, out: &mut [u8]) -> usize {
        let n = units.min(out.len());
        match self {
            Self::Ascii | Self::Binary | Self::Hex => {
                let n = n.min(wire.len());
                out[..n].copy_from_slice(&wire[..n]);
                n
            }
            Self::Ebcdic037 | Self::Ebcdic1047 => {
                let t = self.decode_table();
                let n = n.min(wire.len());
                for (o, &b) in out.iter_mut().zip(&wire[..n]) {
                    *o = t[b as usize];
                }
                n
            }
            Self::Bcd { left_pad } => {
                let mut k = 0;
                for (o, d) in out.iter_mut().zip(bcd_nibbles(wire, n, left_pad)) {
                    *o = HEX_NIBBLES[d as usize];
                    k += 1;
                }
                k
            }
        }
    }

    /// Appends the wire form of a logical value. The value must already be validated for
    /// the content class; characters a BCD nibble cannot hold are reported.
    pub fn encode(
        self,
        at: FieldRef,
        content: Content,
        logical: &[u8],
        out: &mut impl Sink,
    ) -> Result<(), Error> {
        match self {
            Self::Ascii | Self::Binary => out.extend_from_slice(logical),
            Self::Ebcdic037 | Self::Ebcdic1047 => {
                let t = self.encode_table();
                for &b in logical {
                    out.push(t[b as usize]);
                }
            }
            Self::Hex => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                for &b in logical {
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 0xF) as usize]);
                }
            }
            Self::Bcd { left_pad } => encode_bcd(at, content, logical, left_pad, out)?,
        }
        Ok(())
    }

    fn decode_table(self) -> &'static [u8; 256] {
        match self {
            Self::Ebcdic1047 => &CP1047_DECODE,
            _ => &CP037_DECODE,
        }
    }

    fn encode_table(self) -> &'static [u8; 256] {
        match self {
            Self::Ebcdic1047 => &CP1047_ENCODE,
            _ => &CP037_ENCODE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: FieldRef = FieldRef::field(2);

    fn enc(e: DataEncoding, c: Content, v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        e.encode(AT, c, v, &mut out).unwrap();
        out
    }

    #[test]
    fn bcd_odd_length_pads_on_the_configured_side() {
        let left = DataEncoding::Bcd { left_pad: true };
        let right = DataEncoding::Bcd { left_pad: false };
        assert_eq!(enc(left, Content::Numeric, b"123"), [0x01, 0x23]);
        assert_eq!(enc(right, Content::Numeric, b"123"), [0x12, 0x30]);
        assert_eq!(&*left.decode(Content::Numeric, &[0x01, 0x23], 3), b"123");
        assert_eq!(&*right.decode(Content::Numeric, &[0x12, 0x30], 3), b"123");
    }

    #[test]
    fn bcd_track_maps_separator_to_d_nibble() {
        let right = DataEncoding::Bcd { left_pad: false };
        assert_eq!(enc(right, Content::Track, b"12=3"), [0x12, 0xD3]);
        assert_eq!(&*right.decode(Content::Track, &[0x12, 0xD3], 4), b"12=3");
    }

    #[test]
    fn bcd_signed_amount_keeps_ascii_sign() {
        let left = DataEncoding::Bcd { left_pad: true };
        assert_eq!(
            enc(left, Content::SignedAmount, b"C00000100"),
            [b'C', 0x00, 0x00, 0x01, 0x00]
        );
        assert_eq!(left.wire_len(Content::SignedAmount, 9), 5);
    }

    #[test]
    fn bcd_check_rejects_nonzero_pad_and_letters() {
        let left = DataEncoding::Bcd { left_pad: true };
        assert!(left
            .check(AT, Content::Numeric, &[0x11, 0x23], 3, true)
            .is_err());
        assert!(left
            .check(AT, Content::Numeric, &[0x1A, 0x23], 4, true)
            .is_err());
        assert!(left
            .check(AT, Content::Numeric, &[0x1A, 0x23], 4, false)
            .is_ok());
    }

    #[test]
    fn hex_encoding_is_upper_case() {
        assert_eq!(
            enc(DataEncoding::Hex, Content::Binary, &[0xCA, 0xFE]),
            b"CAFE"
        );
        assert_eq!(
            &*DataEncoding::Hex.decode(Content::Binary, b"cafe", 2),
            &[0xCA, 0xFE]
        );
    }
}
