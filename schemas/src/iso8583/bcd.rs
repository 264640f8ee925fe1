//! Packed BCD (two digits per byte), shared by the data encodings and the length prefixes.
//!
//! Odd digit counts carry one pad nibble, on the left (jPOS `IFB_*` with pad=true) or on the
//! right (jPOS pad=false, moov `BCD`); the pad must be zero so that re-encoding gives the same
//! bytes. Track data (ISO 7811-2) uses the nibbles A-F for the characters `:;<=>?`. Also here:
//! the value of a hex digit, which hex data and hex length prefixes read.

use super::content::Content;
use super::encoding::Sink;
use super::error::{Error, FieldRef};

/// Characters of the 16 nibble values for track data (ISO 7811-2 track 2 character set).
const TRACK_NIBBLES: &[u8; 16] = b"0123456789:;<=>?";
/// Characters of the 16 nibble values for other BCD content (A-F only appear when lenient).
pub(super) const HEX_NIBBLES: &[u8; 16] = b"0123456789ABCDEF";

#[inline]
pub(super) fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Iterates the `units` meaningful nibbles of a BCD run, skipping the pad nibble.
#[inline]
pub(super) fn bcd_nibbles(
    wire: &[u8],
    units: usize,
    left_pad: bool,
) -> impl Iterator<Item = u8> + '_ {
    let skip = usize::from(left_pad && units % 2 == 1);
    wire.iter()
        .flat_map(|b| [b >> 4, b & 0x0F])
        .skip(skip)
        .take(units)
}

pub(super) fn check_bcd(
    at: FieldRef,
    content: Content,
    wire: &[u8],
    units: usize,
    left_pad: bool,
    strict: bool,
) -> Result<(), Error> {
    let (digits, units, position0) = if content == Content::SignedAmount && units > 0 {
        if strict && wire.first().is_none_or(|&s| s != b'C' && s != b'D') {
            return Err(Error::InvalidContent {
                at,
                content,
                position: 0,
            });
        }
        (&wire[1.min(wire.len())..], units - 1, 1)
    } else {
        (wire, units, 0)
    };
    // The pad nibble must be zero so that re-encoding gives the same bytes.
    if units % 2 == 1 {
        let pad = if left_pad {
            digits.first().map(|b| b >> 4)
        } else {
            digits.last().map(|b| b & 0x0F)
        };
        if pad.is_some_and(|p| p != 0) {
            return Err(Error::InvalidContent {
                at,
                content,
                position: if left_pad {
                    position0
                } else {
                    position0 + units
                },
            });
        }
    }
    if content == Content::Track || !strict {
        return Ok(());
    }
    match bcd_nibbles(digits, units, left_pad).position(|n| n > 9) {
        None => Ok(()),
        Some(i) => Err(Error::InvalidContent {
            at,
            content,
            position: position0 + i,
        }),
    }
}

pub(super) fn decode_bcd(
    content: Content,
    wire: &[u8],
    units: usize,
    left_pad: bool,
    out: &mut Vec<u8>,
) {
    let (digits, units) = if content == Content::SignedAmount && units > 0 {
        if let Some(&s) = wire.first() {
            out.push(s);
        }
        (&wire[1.min(wire.len())..], units - 1)
    } else {
        (wire, units)
    };
    let table = if content == Content::Track {
        TRACK_NIBBLES
    } else {
        HEX_NIBBLES
    };
    out.extend(bcd_nibbles(digits, units, left_pad).map(|n| table[n as usize]));
}

fn nibble_of(at: FieldRef, content: Content, position: usize, c: u8) -> Result<u8, Error> {
    Ok(match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        b':'..=b'?' if content == Content::Track => c - b':' + 10,
        _ => {
            return Err(Error::InvalidContent {
                at,
                content,
                position,
            })
        }
    })
}

pub(super) fn encode_bcd(
    at: FieldRef,
    content: Content,
    logical: &[u8],
    left_pad: bool,
    out: &mut impl Sink,
) -> Result<(), Error> {
    let (digits, offset) = if content == Content::SignedAmount && !logical.is_empty() {
        out.push(logical[0]);
        (&logical[1..], 1)
    } else {
        (logical, 0)
    };
    let odd = digits.len() % 2 == 1;
    let mut half: Option<u8> = if odd && left_pad { Some(0) } else { None };
    for (i, &c) in digits.iter().enumerate() {
        let n = nibble_of(at, content, offset + i, c)?;
        match half.take() {
            Some(h) => out.push((h << 4) | n),
            None => half = Some(n),
        }
    }
    if let Some(h) = half {
        out.push(h << 4);
    }
    Ok(())
}
