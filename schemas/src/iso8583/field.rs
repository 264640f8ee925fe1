//! Reading and writing one field: length prefix, data, checks.
//!
//! This is the inner loop of the codec. Reading never allocates and never slices past the
//! input: every length is checked against the remaining bytes first (a peer's length prefix is
//! the classic way to crash a parser).

use super::content::Content;
use super::encoding::Sink;
use super::error::{Error, FieldRef};
use super::spec::{FieldSpec, Length};

/// Where a field's data lies in the input: byte offset and length in logical units. Both fit
/// in 16 bits because a message is at most [`MESSAGE_LEN_MAX`] bytes (what a 2-byte length
/// header can frame); this keeps a decoded message's span table at 772 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: u16,
    pub units: u16,
}

/// The largest message the decoder accepts.
pub const MESSAGE_LEN_MAX: usize = 0xFFFF;

/// Reads field `f` at `pos`; returns its span and the position after it.
#[inline]
pub(crate) fn read(
    f: &FieldSpec,
    at: FieldRef,
    buf: &[u8],
    pos: usize,
    strict: bool,
) -> Result<(Span, usize), Error> {
    let remaining = buf.len() - pos;
    let (units, data_pos) = match f.length {
        Length::Fixed(n) => (n, pos),
        Length::Variable { prefix, max } => {
            let plen = prefix.wire_len();
            if remaining < plen {
                return Err(Error::Truncated {
                    at,
                    needed: plen - remaining,
                });
            }
            let n = prefix.read(at, &buf[pos..pos + plen])?;
            if n > max {
                return Err(Error::TooLong { at, len: n, max });
            }
            (n, pos + plen)
        }
    };
    let wire_len = f.wire_len(units);
    let available = buf.len() - data_pos;
    if available < wire_len {
        return Err(Error::Truncated {
            at,
            needed: wire_len - available,
        });
    }
    let wire = &buf[data_pos..data_pos + wire_len];
    f.encoding.check(at, f.content, wire, units, strict)?;
    if let Some(format) = f.format {
        // Dates are at most 12 digits: decode on the stack, not the heap.
        let mut digits = [0u8; 16];
        let n = f.encoding.decode_digits(wire, units, &mut digits);
        format.validate(at, &digits[..n])?;
    }
    // Callers bound `buf` to MESSAGE_LEN_MAX bytes, and units never exceed wire bytes by
    // more than 2x (BCD), so a too-large value can only come from a lying prefix: refuse it.
    let (Ok(start), Ok(units16)) = (u16::try_from(data_pos), u16::try_from(units)) else {
        return Err(Error::TooLong {
            at,
            len: units,
            max: MESSAGE_LEN_MAX,
        });
    };
    let span = Span {
        start,
        units: units16,
    };
    Ok((span, data_pos + wire_len))
}

/// The wire bytes of a span.
#[inline]
pub(crate) fn wire<'a>(f: &FieldSpec, buf: &'a [u8], span: Span) -> &'a [u8] {
    let start = span.start as usize;
    let len = f.wire_len(usize::from(span.units));
    &buf[start..start + len]
}

/// Checks a logical value against a field (length, content, date format) and returns it
/// normalised: short fixed-length values are padded the ISO way (numeric with leading zeros,
/// text with trailing spaces; binary values must have the exact length).
pub(crate) fn normalise<'v>(
    f: &FieldSpec,
    at: FieldRef,
    value: &'v [u8],
    strict: bool,
) -> Result<std::borrow::Cow<'v, [u8]>, Error> {
    use std::borrow::Cow;
    let value: Cow<'v, [u8]> = match f.length {
        Length::Fixed(n) if value.len() > n => {
            return Err(Error::TooLong {
                at,
                len: value.len(),
                max: n,
            })
        }
        Length::Fixed(n) if value.len() < n => match f.content {
            Content::Binary => {
                return Err(Error::WrongLength {
                    at,
                    len: value.len(),
                    expected: n,
                })
            }
            Content::Numeric => {
                let mut v = vec![b'0'; n - value.len()];
                v.extend_from_slice(value);
                Cow::Owned(v)
            }
            Content::SignedAmount if !value.is_empty() => {
                let mut v = Vec::with_capacity(n);
                v.push(value[0]);
                v.resize(n - value.len() + 1, b'0');
                v.extend_from_slice(&value[1..]);
                Cow::Owned(v)
            }
            _ => {
                let mut v = value.to_vec();
                v.resize(n, b' ');
                Cow::Owned(v)
            }
        },
        Length::Variable { max, .. } if value.len() > max => {
            return Err(Error::TooLong {
                at,
                len: value.len(),
                max,
            })
        }
        _ => Cow::Borrowed(value),
    };
    if strict {
        f.content.validate(at, &value)?;
    } else if matches!(f.encoding, super::encoding::DataEncoding::Bcd { .. }) {
        lenient_bcd_check(f, at, &value)?;
    }
    if let Some(format) = f.format {
        format.validate(at, &value)?;
    }
    Ok(value)
}

/// Lenient (jPOS-compatible) specs still need BCD fields to hold nibble characters.
fn lenient_bcd_check(f: &FieldSpec, at: FieldRef, v: &[u8]) -> Result<(), Error> {
    let skip = usize::from(f.content == Content::SignedAmount);
    for (i, &c) in v.iter().enumerate().skip(skip) {
        let ok = c.is_ascii_hexdigit() && !c.is_ascii_lowercase()
            || (f.content == Content::Track && (b':'..=b'?').contains(&c));
        if !ok {
            return Err(Error::InvalidContent {
                at,
                content: f.content,
                position: i,
            });
        }
    }
    Ok(())
}

/// Writes a normalised logical value: prefix (if variable) then data.
#[inline]
pub(crate) fn write(
    f: &FieldSpec,
    at: FieldRef,
    value: &[u8],
    out: &mut impl Sink,
) -> Result<(), Error> {
    if let Length::Variable { prefix, .. } = f.length {
        prefix.write(value.len(), out);
    }
    f.encoding.encode(at, f.content, value, out)
}
