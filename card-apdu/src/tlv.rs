//! BER-TLV as cards use it (ISO/IEC 7816-4 §6.3, EMV Book 3 Annex B), on top of `iso7816-tlv`.
//!
//! `iso7816-tlv` gives us the `Tag`/`Tlv` tree types, but card data needs more: EMV Book 3 Annex
//! B1 lets `00` (and `FF`) bytes pad between and around data objects, which the crate rejects;
//! deeply nested input must not blow the stack (its reader recurses without a bound); and kiosk
//! code wants to find a tag anywhere inside the templates `6F`, `70`, `77`, `A5`, `BF0C`, `61`.
//! This module parses into `iso7816_tlv::ber::Tlv` with those rules and encodes infallibly.

pub use iso7816_tlv::ber::{Tag, Tlv, Value};

/// Nesting limit: EMV templates nest at most 4 deep (6F > A5 > BF0C > 61); 8 leaves room.
pub const DEPTH_MAX: usize = 8;

/// A tag number as written in the standards, e.g. `0x9F26`.
pub type TagNum = u32;

/// Why bytes are not valid BER-TLV.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    #[error("TLV truncated at offset {offset}")]
    Truncated { offset: usize },
    #[error("invalid tag at offset {offset}")]
    BadTag { offset: usize },
    #[error("invalid length field at offset {offset}")]
    BadLength { offset: usize },
    #[error("templates nested deeper than {DEPTH_MAX}")]
    TooDeep,
    #[error("a constructed object's children overrun its length at offset {offset}")]
    Inconsistent { offset: usize },
}

/// Parses a sequence of data objects, skipping `00`/`FF` padding between them.
pub fn parse_all(input: &[u8]) -> Result<Vec<Tlv>, TlvError> {
    parse_seq(input, 0, 0)
}

/// Parses exactly one data object (padding around it tolerated).
pub fn parse_one(input: &[u8]) -> Result<Tlv, TlvError> {
    let mut all = parse_all(input)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(TlvError::Truncated {
            offset: input.len(),
        }),
        _ => Err(TlvError::Inconsistent { offset: 0 }),
    }
}

fn parse_seq(input: &[u8], base: usize, depth: usize) -> Result<Vec<Tlv>, TlvError> {
    if depth > DEPTH_MAX {
        return Err(TlvError::TooDeep);
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        if matches!(input[pos], 0x00 | 0xFF) {
            pos += 1;
            continue;
        }
        let (tag, tag_len) = read_tag(&input[pos..], base + pos)?;
        let (len, len_len) = read_len(&input[pos + tag_len..], base + pos + tag_len)?;
        let start = pos + tag_len + len_len;
        let end = start.checked_add(len).filter(|e| *e <= input.len());
        let Some(end) = end else {
            return Err(TlvError::Truncated {
                offset: base + start,
            });
        };
        let body = &input[start..end];
        let value = if tag.is_constructed() {
            Value::Constructed(parse_seq(body, base + start, depth + 1)?)
        } else {
            Value::Primitive(body.to_vec())
        };
        let tlv =
            Tlv::new(tag, value).map_err(|_| TlvError::Inconsistent { offset: base + pos })?;
        out.push(tlv);
        pos = end;
    }
    Ok(out)
}

fn read_tag(input: &[u8], offset: usize) -> Result<(Tag, usize), TlvError> {
    let first = *input.first().ok_or(TlvError::Truncated { offset })?;
    let mut num = u64::from(first);
    let mut len = 1;
    if first & 0x1F == 0x1F {
        loop {
            let b = *input.get(len).ok_or(TlvError::Truncated { offset })?;
            num = (num << 8) | u64::from(b);
            len += 1;
            if b & 0x80 == 0 {
                break;
            }
            if len >= 3 {
                return Err(TlvError::BadTag { offset });
            }
        }
    }
    let tag = Tag::try_from(num).map_err(|_| TlvError::BadTag { offset })?;
    Ok((tag, len))
}

fn read_len(input: &[u8], offset: usize) -> Result<(usize, usize), TlvError> {
    let first = *input.first().ok_or(TlvError::Truncated { offset })?;
    if first & 0x80 == 0 {
        return Ok((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7F);
    // 0x80 (indefinite) is not allowed in card data; more than 3 length bytes is never needed.
    if n == 0 || n > 3 {
        return Err(TlvError::BadLength { offset });
    }
    let bytes = input.get(1..=n).ok_or(TlvError::Truncated { offset })?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok((len, 1 + n))
}

/// The number of a tag, e.g. `0x9F26`.
pub fn tag_num(tag: &Tag) -> TagNum {
    tag.to_bytes()
        .iter()
        .fold(0, |acc, b| (acc << 8) | TagNum::from(*b))
}

/// Finds the first object with `tag`, depth first, looking inside every constructed template.
pub fn find(tlvs: &[Tlv], tag: TagNum) -> Option<&Tlv> {
    for t in tlvs {
        if tag_num(t.tag()) == tag {
            return Some(t);
        }
        if let Value::Constructed(children) = t.value() {
            if let Some(found) = find(children, tag) {
                return Some(found);
            }
        }
    }
    None
}

/// The value of the first primitive object with `tag`, anywhere in the tree.
pub fn find_value(tlvs: &[Tlv], tag: TagNum) -> Option<&[u8]> {
    match find(tlvs, tag)?.value() {
        Value::Primitive(v) => Some(v),
        Value::Constructed(_) => None,
    }
}

/// Children of a constructed object (empty for a primitive one).
pub fn children(tlv: &Tlv) -> &[Tlv] {
    match tlv.value() {
        Value::Constructed(c) => c,
        Value::Primitive(_) => &[],
    }
}

/// Every primitive object in the tree, in order, as (tag, value).
pub fn flatten(tlvs: &[Tlv]) -> Vec<(TagNum, &[u8])> {
    let mut out = Vec::new();
    for t in tlvs {
        match t.value() {
            Value::Primitive(v) => out.push((tag_num(t.tag()), v.as_slice())),
            Value::Constructed(c) => out.extend(flatten(c)),
        }
    }
    out
}

/// Encodes a tag number as its 1–3 bytes.
pub fn encode_tag(tag: TagNum, out: &mut Vec<u8>) {
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|b| **b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// Encodes a BER length field (definite form, ISO/IEC 7816-4 §6.3).
pub fn encode_len(len: usize, out: &mut Vec<u8>) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        _ => out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]),
    }
}

/// Encodes one data object.
pub fn encode(tag: TagNum, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 5);
    encode_tag(tag, &mut out);
    encode_len(value.len(), &mut out);
    out.extend_from_slice(value);
    out
}

/// Encodes a constructed object from already-encoded children.
pub fn encode_constructed(tag: TagNum, children: &[Vec<u8>]) -> Vec<u8> {
    encode(tag, &children.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    // An FCI as returned by a PBOC debit application (EMV Book 1 §11.3.4), with padding.
    const FCI: &str = "6F2E8408A000000333010101A522500A50424F43204445424954870101\
9F38069F02069F3704BF0C059F4D020B0A00000000";

    #[test]
    fn padding_between_objects_is_skipped() {
        let bytes = hex::decode(FCI).expect("hex");
        let tlvs = parse_all(&bytes).expect("parses");
        assert_eq!(tlvs.len(), 1);
        assert_eq!(
            find_value(&tlvs, 0x84),
            Some(&hex::decode("A000000333010101").expect("hex")[..])
        );
        assert_eq!(find_value(&tlvs, 0x9F4D), Some(&[0x0B, 0x0A][..]));
        assert_eq!(
            find_value(&tlvs, 0x9F38),
            Some(&hex::decode("9F02069F3704").expect("hex")[..])
        );
        assert!(find(&tlvs, 0xBF0C).is_some());
    }

    #[test]
    fn truncated_value_is_an_error() {
        assert_eq!(
            parse_all(&[0x5A, 0x08, 0x62, 0x12]),
            Err(TlvError::Truncated { offset: 2 })
        );
        assert_eq!(parse_all(&[0x9F]), Err(TlvError::Truncated { offset: 0 }));
        assert_eq!(
            parse_all(&[0x5A, 0x82, 0x01]),
            Err(TlvError::Truncated { offset: 1 })
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut bytes = encode(0x5A, &[1]);
        for _ in 0..20 {
            bytes = encode(0x70, &bytes);
        }
        assert_eq!(parse_all(&bytes), Err(TlvError::TooDeep));
    }

    #[test]
    fn encode_parse_round_trip_with_long_length() {
        let value = vec![0x11; 300];
        let bytes = encode_constructed(0x70, &[encode(0x9F4E, &value), encode(0x57, &[1, 2])]);
        assert_eq!(&bytes[..4], &[0x70, 0x82, 0x01, 0x35]);
        let tlvs = parse_all(&bytes).expect("parses");
        assert_eq!(tlvs[0].to_vec(), bytes);
        assert_eq!(find_value(&tlvs, 0x9F4E).map(<[u8]>::len), Some(300));
    }
}
