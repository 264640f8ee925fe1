//! The owned view of BER-TLV: `iso7816-tlv`'s [`Tlv`] tree, built by the reader of the parent
//! module (padding skipped, depth bounded), and the walks card code needs: find a tag anywhere
//! inside the templates, list a template's children, flatten a tree to its primitives.

use super::{encode_len, is_constructed, Objects, Tag, TagNum, Tlv, TlvError, Value, DEPTH_MAX};

/// Parses a sequence of data objects into trees, skipping padding between them.
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
    let mut it = Objects::new(input, base);
    while let Some(r) = it.next_raw() {
        let h = r?;
        let body = &input[h.value.clone()];
        // The reader only yields tags that iso7816-tlv accepts, and the value is of the kind
        // the tag says, so neither conversion fails on any input.
        let tag = Tag::try_from(h.tag).map_err(|_| TlvError::BadTag { offset: h.offset })?;
        let value = if is_constructed(h.tag) {
            Value::Constructed(parse_seq(body, base + h.value.start, depth + 1)?)
        } else {
            Value::Primitive(body.to_vec())
        };
        let tlv = Tlv::new(tag, value).map_err(|_| TlvError::Inconsistent { offset: h.offset })?;
        out.push(tlv);
    }
    Ok(out)
}

/// Encodes a tree with minimal lengths ([`encode_len`], ISO/IEC 7816-4 §5.2.2.2). Use this, not
/// `Tlv::to_vec`: iso7816-tlv 0.4.4 writes a length of 127 as `81 7F` while counting one byte
/// for it in the enclosing template's length, so a template holding a 127-byte value re-encodes
/// to bytes that do not parse (found by libFuzzer, `schemas/fuzz` target `tlv`).
pub fn to_bytes(tlv: &Tlv) -> Vec<u8> {
    let mut out = Vec::new();
    write_tree(tlv, &mut out);
    out
}

fn write_tree(tlv: &Tlv, out: &mut Vec<u8>) {
    let value = match tlv.value() {
        Value::Primitive(v) => v.clone(),
        Value::Constructed(children) => {
            let mut v = Vec::new();
            for c in children {
                write_tree(c, &mut v);
            }
            v
        }
    };
    out.extend_from_slice(tlv.tag().to_bytes());
    encode_len(value.len(), out);
    out.extend_from_slice(&value);
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
