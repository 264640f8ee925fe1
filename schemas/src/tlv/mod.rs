//! BER-TLV: the one codec for card data (ISO/IEC 7816-4 §5.2.2) and for ISO 8583 field 55
//! (EMV 4.3 Book 3 Annex B), shared by the ISO 8583 codec, the card side (`card_apdu::tlv`
//! re-exports this module) and the switch.
//!
//! Why one module: the rules below are wire facts, and two readers with different rules read
//! the same field 55 differently. The rules:
//! - a tag is one byte, or more when its low five bits are all set (subsequent bytes continue
//!   while bit 8 is set); at most [`TAG_BYTES_MAX`] bytes, which covers every EMV and PBOC tag
//!   (ISO/IEC 7816-4 supports tags of one, two and three bytes);
//! - a length is one byte below `0x80`, or `0x81`..`0x84` followed by 1-4 length bytes
//!   (definite form only: `0x80`, the indefinite form, is refused);
//! - bit 6 of the first tag byte marks a constructed object whose value is itself BER-TLV;
//! - `00` and `FF` bytes before, between and after objects are padding and skipped (ISO/IEC
//!   7816-4 §5.2.2.1; EMV Book 3 Annex B1 names `00`, left by erased objects);
//! - templates nest at most [`DEPTH_MAX`] deep, so hostile input cannot exhaust the stack.
//!
//! Two views of the same bytes: [`objects`] reads a buffer without allocating, yielding
//! [`DataObject`]s that borrow their values (the codec's path access to `55.9F26`), and
//! [`parse_all`] builds the owned tree of `iso7816-tlv`'s [`Tlv`] (kiosk and switch code that
//! walks templates `6F`, `70`, `77`, `A5`, `BF0C`, `61`). `iso7816-tlv`'s own reader is not used:
//! it rejects padding and recurses without a bound. Encoding ([`write`], [`encode`]) always
//! writes the minimal definite length.

mod tree;

pub use iso7816_tlv::ber::{Tag, Tlv, Value};
pub use tree::{children, find, find_value, flatten, parse_all, parse_one, tag_num, to_bytes};

use std::ops::Range;

/// A tag number as written in the standards, e.g. `0x9F26`.
pub type TagNum = u32;

/// Nesting limit: EMV templates nest at most 4 deep (6F > A5 > BF0C > 61); 8 leaves room.
pub const DEPTH_MAX: usize = 8;

/// Longest tag field, bytes (ISO/IEC 7816-4 §5.2.2.1).
pub const TAG_BYTES_MAX: usize = 3;

/// Most length bytes after a `0x8N` length byte (ISO/IEC 7816-4 §5.2.2.2: up to `84`).
pub const LENGTH_BYTES_MAX: usize = 4;

/// Why bytes are not valid BER-TLV. Offsets count from the start of the outermost buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    /// The input ends inside a tag, a length or a value.
    #[error("TLV truncated at offset {offset}")]
    Truncated { offset: usize },
    /// A tag longer than [`TAG_BYTES_MAX`] bytes.
    #[error("invalid tag at offset {offset}")]
    BadTag { offset: usize },
    /// The indefinite form `80`, or more than [`LENGTH_BYTES_MAX`] length bytes.
    #[error("invalid length field at offset {offset}")]
    BadLength { offset: usize },
    /// Templates nested deeper than [`DEPTH_MAX`].
    #[error("templates nested deeper than {DEPTH_MAX}")]
    TooDeep,
    /// A data object that does not stand alone where exactly one was expected.
    #[error("a constructed object's children overrun its length at offset {offset}")]
    Inconsistent { offset: usize },
}

/// One data object, borrowing its value from the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataObject<'a> {
    /// Tag, big-endian (`0x9F26`).
    pub tag: TagNum,
    /// Value bytes (for a constructed object: its children, still encoded).
    pub value: &'a [u8],
}

impl DataObject<'_> {
    /// Whether the value is itself BER-TLV (bit 6 of the first tag byte).
    pub fn is_constructed(&self) -> bool {
        is_constructed(self.tag)
    }
}

/// Whether `tag` marks a constructed object (bit 6 of its first byte).
pub fn is_constructed(tag: TagNum) -> bool {
    let first = tag.to_be_bytes().into_iter().find(|b| *b != 0).unwrap_or(0);
    first & 0x20 != 0
}

/// Whether `b` is padding where a tag could start.
fn is_padding(b: u8) -> bool {
    matches!(b, 0x00 | 0xFF)
}

/// Reads the top-level data objects of a buffer without allocating; yields an error (once) on
/// malformed input and then stops.
#[derive(Debug, Clone)]
pub struct Objects<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` inside the outermost buffer (for error offsets).
    base: usize,
    failed: bool,
}

/// The top-level data objects of `buf` (padding skipped).
pub fn objects(buf: &[u8]) -> Objects<'_> {
    Objects::new(buf, 0)
}

impl<'a> Objects<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Objects {
            buf,
            pos: 0,
            base,
            failed: false,
        }
    }

    /// The next object's header.
    fn next_raw(&mut self) -> Option<Result<Header, TlvError>> {
        if self.failed {
            return None;
        }
        while self.buf.get(self.pos).copied().is_some_and(is_padding) {
            self.pos += 1;
        }
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = read_object(self.buf, self.pos, self.base);
        match &r {
            Ok(header) => self.pos = header.value.end,
            Err(_) => self.failed = true,
        }
        Some(r)
    }
}

impl<'a> Iterator for Objects<'a> {
    type Item = Result<DataObject<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        let buf = self.buf;
        self.next_raw().map(|r| {
            r.map(|h| DataObject {
                tag: h.tag,
                value: &buf[h.value],
            })
        })
    }
}

/// Where one object lies in the buffer it was read from.
struct Header {
    tag: TagNum,
    /// Offset of the tag inside the outermost buffer (for error offsets).
    offset: usize,
    /// The value's bytes, as a range of the buffer being read.
    value: Range<usize>,
}

/// Reads the object whose tag starts at `pos` of `buf` (`buf` starts at `base` of the
/// outermost buffer).
fn read_object(buf: &[u8], pos: usize, base: usize) -> Result<Header, TlvError> {
    let (tag, tag_len) = read_tag(&buf[pos..], base + pos)?;
    let len_at = pos + tag_len;
    let (len, len_len) = read_len(&buf[len_at..], base + len_at)?;
    let start = len_at + len_len;
    match start.checked_add(len).filter(|end| *end <= buf.len()) {
        Some(end) => Ok(Header {
            tag,
            offset: base + pos,
            value: start..end,
        }),
        None => Err(TlvError::Truncated {
            offset: base + start,
        }),
    }
}

/// Reads a tag field; returns the tag and its length in bytes. `offset` only labels errors.
fn read_tag(input: &[u8], offset: usize) -> Result<(TagNum, usize), TlvError> {
    let first = *input.first().ok_or(TlvError::Truncated { offset })?;
    let mut tag = TagNum::from(first);
    let mut len = 1;
    if first & 0x1F == 0x1F {
        loop {
            if len == TAG_BYTES_MAX {
                return Err(TlvError::BadTag { offset });
            }
            let b = *input.get(len).ok_or(TlvError::Truncated { offset })?;
            tag = (tag << 8) | TagNum::from(b);
            len += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    Ok((tag, len))
}

/// Reads a length field; returns the length and the field's size in bytes.
fn read_len(input: &[u8], offset: usize) -> Result<(usize, usize), TlvError> {
    let first = *input.first().ok_or(TlvError::Truncated { offset })?;
    if first & 0x80 == 0 {
        return Ok((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7F);
    if n == 0 || n > LENGTH_BYTES_MAX {
        return Err(TlvError::BadLength { offset });
    }
    let bytes = input.get(1..=n).ok_or(TlvError::Truncated { offset })?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok((len, 1 + n))
}

/// The value of the first top-level object with `tag` (field 55 lookups such as `55.9F26`).
pub fn find_top_level(buf: &[u8], tag: TagNum) -> Result<Option<&[u8]>, TlvError> {
    for object in objects(buf) {
        let object = object?;
        if object.tag == tag {
            return Ok(Some(object.value));
        }
    }
    Ok(None)
}

/// Checks that the whole buffer parses, constructed objects included, without allocating.
pub fn validate(buf: &[u8]) -> Result<(), TlvError> {
    validate_at(buf, 0, 0)
}

fn validate_at(buf: &[u8], base: usize, depth: usize) -> Result<(), TlvError> {
    if depth > DEPTH_MAX {
        return Err(TlvError::TooDeep);
    }
    let mut it = Objects::new(buf, base);
    while let Some(r) = it.next_raw() {
        let h = r?;
        if is_constructed(h.tag) {
            validate_at(&buf[h.value.clone()], base + h.value.start, depth + 1)?;
        }
    }
    Ok(())
}

/// Parses a tag written in hex (`"9F26"`): 1-3 bytes forming a well-formed tag field that can
/// start an object (not `00` or `FF`, which are padding).
pub fn parse_tag(s: &str) -> Option<TagNum> {
    if s.is_empty() || s.len() > 2 * TAG_BYTES_MAX || s.len() % 2 == 1 {
        return None;
    }
    let tag = TagNum::from_str_radix(s, 16).ok()?;
    let mut bytes = Vec::with_capacity(TAG_BYTES_MAX);
    encode_tag(tag, &mut bytes);
    let well_formed = bytes.len() == s.len() / 2
        && !is_padding(bytes[0])
        && read_tag(&bytes, 0) == Ok((tag, bytes.len()));
    well_formed.then_some(tag)
}

/// Appends a tag's 1-3 bytes.
pub fn encode_tag(tag: TagNum, out: &mut Vec<u8>) {
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|b| **b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends a definite-form length field, minimal (ISO/IEC 7816-4 §5.2.2.2): one byte below
/// `0x80`, else `0x81`..`0x84` and the length's significant bytes.
pub fn encode_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    // No value of 4 GiB is ever encoded; the largest expressible length stands in for one.
    let bytes = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends one data object: tag, minimal length, value.
pub fn write(tag: TagNum, value: &[u8], out: &mut Vec<u8>) {
    encode_tag(tag, out);
    encode_len(value.len(), out);
    out.extend_from_slice(value);
}

/// One data object, encoded.
pub fn encode(tag: TagNum, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    write(tag, value, &mut out);
    out
}

/// A constructed object from already-encoded children.
pub fn encode_constructed(tag: TagNum, children: &[Vec<u8>]) -> Vec<u8> {
    encode(tag, &children.concat())
}

#[cfg(test)]
mod tests;
