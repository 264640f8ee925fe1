//! BER-TLV as carried in ISO 8583 field 55 (ICC system related data).
//!
//! EMV 4.3 Book 3 Annex B: a tag is one byte, or more when its low five bits are all set
//! (subsequent bytes continue while bit 8 is set); we accept tags of up to 3 bytes, which
//! covers every EMV and PBOC tag. A length is one byte below 0x80, or 0x81..0x84 followed by
//! 1-4 length bytes. Bit 6 of the first tag byte marks a constructed object whose value is
//! itself TLV. `00` bytes between objects are padding (Book 3 Annex B1) and are skipped.

use super::error::{Error, FieldRef};

/// One TLV object, borrowing its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Tag, big-endian (`0x9F26`).
    pub tag: u32,
    /// Value bytes.
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// Whether the value is itself TLV (bit 6 of the first tag byte).
    pub fn is_constructed(&self) -> bool {
        let first = if self.tag > 0xFFFF {
            self.tag >> 16
        } else if self.tag > 0xFF {
            self.tag >> 8
        } else {
            self.tag
        };
        first & 0x20 != 0
    }
}

/// Iterates the top-level objects of a TLV buffer; yields an error (once) on malformed input.
pub struct TlvIter<'a> {
    buf: &'a [u8],
    pos: usize,
    at: FieldRef,
    failed: bool,
}

/// Parses `buf` as a sequence of TLV objects. `at` only labels errors.
pub fn iter(buf: &[u8], at: FieldRef) -> TlvIter<'_> {
    TlvIter {
        buf,
        pos: 0,
        at,
        failed: false,
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while self.buf.get(self.pos) == Some(&0x00) {
            self.pos += 1;
        }
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = read_one(self.buf, &mut self.pos, self.at);
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

fn read_one<'a>(buf: &'a [u8], pos: &mut usize, at: FieldRef) -> Result<Tlv<'a>, Error> {
    let bad = |reason| Error::InvalidTlv { at, reason };
    let first = buf[*pos];
    let mut tag = u32::from(first);
    *pos += 1;
    if first & 0x1F == 0x1F {
        loop {
            let b = *buf.get(*pos).ok_or(bad("truncated tag"))?;
            *pos += 1;
            tag = (tag << 8) | u32::from(b);
            if tag > 0xFF_FFFF {
                return Err(bad("tag longer than 3 bytes"));
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let l0 = *buf.get(*pos).ok_or(bad("truncated length"))?;
    *pos += 1;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7F);
        if n == 0 || n > 4 {
            return Err(bad("length of length not 1-4"));
        }
        let bytes = buf.get(*pos..*pos + n).ok_or(bad("truncated length"))?;
        *pos += n;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let end = pos.checked_add(len).ok_or(bad("length overflow"))?;
    let value = buf.get(*pos..end).ok_or(bad("value runs past the end"))?;
    *pos = end;
    Ok(Tlv { tag, value })
}

/// Finds the first top-level object with `tag`.
pub fn find(buf: &[u8], tag: u32, at: FieldRef) -> Result<Option<&[u8]>, Error> {
    for t in iter(buf, at) {
        let t = t?;
        if t.tag == tag {
            return Ok(Some(t.value));
        }
    }
    Ok(None)
}

/// Checks that the whole buffer parses, recursing into constructed objects.
pub fn validate(buf: &[u8], at: FieldRef) -> Result<(), Error> {
    for t in iter(buf, at) {
        let t = t?;
        if t.is_constructed() {
            validate(t.value, at)?;
        }
    }
    Ok(())
}

/// Parses a tag written in hex (`"9F26"`).
pub fn parse_tag(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 6 || s.len() & 1 == 1 {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Appends one object (tag bytes, minimal BER length, value).
pub fn write(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    let tag_bytes = tag.to_be_bytes();
    let skip = tag_bytes.iter().take(3).take_while(|&&b| b == 0).count();
    out.extend_from_slice(&tag_bytes[skip..]);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let lb = (len as u32).to_be_bytes();
        let skip = lb.iter().take(3).take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&lb[skip..]);
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: FieldRef = FieldRef::field(55);

    #[test]
    fn parses_multi_byte_tags_long_lengths_and_padding() {
        let mut buf = vec![0x9F, 0x26, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x00];
        buf.extend_from_slice(&[0x82, 0x02, 0x7C, 0x00]);
        buf.extend_from_slice(&[0xDF, 0x81, 0x01, 0x81, 0x01, 0xAA]);
        let all: Vec<_> = iter(&buf, AT).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].tag, 0x9F26);
        assert_eq!(all[1].value, &[0x7C, 0x00]);
        assert_eq!(all[2].tag, 0xDF8101);
        assert_eq!(all[2].value, &[0xAA]);
    }

    #[test]
    fn constructed_objects_nest() {
        let mut inner = Vec::new();
        write(0x5A, &[0x62, 0x14], &mut inner);
        let mut outer = Vec::new();
        write(0x70, &inner, &mut outer);
        let t = iter(&outer, AT).next().unwrap().unwrap();
        assert!(t.is_constructed());
        assert_eq!(find(t.value, 0x5A, AT).unwrap(), Some(&[0x62, 0x14][..]));
        assert!(validate(&outer, AT).is_ok());
    }

    #[test]
    fn four_byte_length_round_trips() {
        let value = vec![7u8; 300];
        let mut out = Vec::new();
        write(0x9F10, &value, &mut out);
        assert_eq!(&out[..5], &[0x9F, 0x10, 0x82, 0x01, 0x2C]);
        let long = [0x9F, 0x10, 0x84, 0x00, 0x00, 0x00, 0x01, 0xAB];
        assert_eq!(find(&long, 0x9F10, AT).unwrap(), Some(&[0xAB][..]));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[0x9F][..],
            &[0x9F, 0x26],
            &[0x9F, 0x26, 0x05, 1],
            &[0x5A, 0x85, 0, 0, 0, 0, 1],
        ] {
            assert!(iter(bad, AT).any(|r| r.is_err()), "{bad:02X?}");
        }
        assert!(iter(&[0x9F, 0xFF, 0xFF, 0x01, 0x00], AT).any(|r| r.is_err()));
    }
}
