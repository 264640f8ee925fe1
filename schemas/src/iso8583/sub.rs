//! Sub-fields of structured fields, addressed by path.
//!
//! A path is the field number followed by sub-field keys: `"90.2"` (positional, ISO 8583:1987
//! field 90 original data elements), `"127.25"` (Postilion field 127 sub-message),
//! `"55.9F26"` (BER-TLV tag in hex), `"55.70.57"` (inside a constructed tag). Sub-fields are
//! parsed on demand from the parent's logical value, so decoding a message never pays for them.

use std::borrow::Cow;

use super::content::Content;
use super::error::{Error, FieldRef, SubKey};
use super::field;
use super::message;
use super::spec::{FieldSpec, Length, SubSpec};
use crate::tlv;

/// A resolved sub-field.
pub(crate) struct Resolved<'v> {
    pub at: FieldRef,
    pub content: Content,
    pub value: Cow<'v, [u8]>,
}

/// Splits `"127.25"` into `127` and `["25"]`.
pub(crate) fn split_path(path: &str) -> Result<(u16, Vec<&str>), Error> {
    let mut parts = path.split('.');
    let id = parts
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&n| (2..=192).contains(&n))
        .ok_or(Error::InvalidPath {
            reason: "must start with a field number 2-192",
        })?;
    let rest: Vec<&str> = parts.collect();
    if rest.iter().any(|p| p.is_empty()) {
        return Err(Error::InvalidPath {
            reason: "empty path segment",
        });
    }
    Ok((id, rest))
}

fn sub_cow<'v>(v: &Cow<'v, [u8]>, range: std::ops::Range<usize>) -> Cow<'v, [u8]> {
    match v {
        Cow::Borrowed(b) => Cow::Borrowed(&b[range]),
        Cow::Owned(o) => Cow::Owned(o[range].to_vec()),
    }
}

fn index(seg: &str) -> Result<u16, Error> {
    seg.parse::<u16>().map_err(|_| Error::InvalidPath {
        reason: "sub-field number expected",
    })
}

/// A positional sub-field's spec and logical value.
pub(crate) type SubValue<'s, 'v> = (&'s FieldSpec, Cow<'v, [u8]>);

/// Parses a positional field into (sub-field spec, logical value) pairs, in order, stopping
/// after `until` if given.
pub(crate) fn positional<'s, 'v>(
    parent: u16,
    subs: &'s [FieldSpec],
    value: &Cow<'v, [u8]>,
    strict: bool,
    until: Option<u16>,
) -> Result<Vec<SubValue<'s, 'v>>, Error> {
    let bytes: &[u8] = value;
    let mut pos = 0;
    let mut out = Vec::with_capacity(subs.len());
    for s in subs {
        let at = FieldRef::sub(parent, SubKey::Index(s.id));
        let (span, next) = field::read(s, at, bytes, pos, strict)?;
        let wire = field::wire(s, bytes, span);
        let start = span.start as usize;
        let logical = match s.encoding.decode(s.content, wire, span.units as usize) {
            Cow::Borrowed(_) => sub_cow(value, start..start + wire.len()),
            Cow::Owned(o) => Cow::Owned(o),
        };
        out.push((s, logical));
        pos = next;
        if until == Some(s.id) {
            return Ok(out);
        }
    }
    if until.is_none() && pos != bytes.len() {
        return Err(Error::TooLong {
            at: FieldRef::field(parent),
            len: bytes.len(),
            max: pos,
        });
    }
    Ok(out)
}

/// Resolves `rest` inside field `f` whose logical value is `value`.
pub(crate) fn resolve<'v>(
    f: &FieldSpec,
    value: Cow<'v, [u8]>,
    rest: Vec<&str>,
    strict: bool,
) -> Result<Resolved<'v>, Error> {
    let mut at = FieldRef::field(f.id);
    let Some((&seg, tail)) = rest.split_first() else {
        return Ok(Resolved {
            at,
            content: f.content,
            value,
        });
    };
    match f.sub.as_deref() {
        None => Err(Error::InvalidPath {
            reason: "field has no sub-fields",
        }),
        Some(SubSpec::Tlv) => {
            let mut value = value;
            let mut segs = std::iter::once(seg).chain(tail.iter().copied()).peekable();
            while let Some(seg) = segs.next() {
                let tag = tlv::parse_tag(seg).ok_or(Error::InvalidPath {
                    reason: "TLV tag must be a 1-3 byte tag field in hex",
                })?;
                at = FieldRef::sub(f.id, SubKey::Tag(tag));
                let found = {
                    let bytes: &[u8] = &value;
                    let base = bytes.as_ptr() as usize;
                    tlv::find_top_level(bytes, tag)
                        .map_err(|reason| Error::InvalidTlv { at, reason })?
                        .map(|v| {
                            let start = v.as_ptr() as usize - base;
                            start..start + v.len()
                        })
                };
                let range = found.ok_or(Error::Absent { at })?;
                value = sub_cow(&value, range);
                if segs.peek().is_some() && !tlv::is_constructed(tag) {
                    return Err(Error::InvalidPath {
                        reason: "TLV tag is primitive",
                    });
                }
            }
            Ok(Resolved {
                at,
                content: Content::Binary,
                value,
            })
        }
        Some(SubSpec::Positional(subs)) => {
            let want = index(seg)?;
            if !subs.iter().any(|s| s.id == want) {
                return Err(Error::InvalidPath {
                    reason: "no such positional sub-field",
                });
            }
            let mut parts = positional(f.id, subs, &value, strict, Some(want))?;
            let (s, v) = parts.pop().ok_or(Error::InvalidPath {
                reason: "no such positional sub-field",
            })?;
            let mut r = resolve(s, v, tail.to_vec(), strict)?;
            if tail.is_empty() {
                r.at = FieldRef::sub(f.id, SubKey::Index(want));
            }
            Ok(r)
        }
        Some(SubSpec::Message(inner)) => {
            let want = index(seg)?;
            at = FieldRef::sub(f.id, SubKey::Index(want));
            let sf = inner.field(want).ok_or(Error::InvalidPath {
                reason: "no such sub-message field",
            })?;
            let sub_value = {
                let bytes: &[u8] = &value;
                let msg = message::decode_sub(inner, bytes, f.id)?;
                if !msg.has(want) {
                    return Err(Error::Absent { at });
                }
                let raw = msg.raw(want)?;
                let start = raw.as_ptr() as usize - bytes.as_ptr() as usize;
                match msg.get(want)? {
                    Cow::Borrowed(_) => sub_cow(&value, start..start + raw.len()),
                    Cow::Owned(o) => Cow::Owned(o),
                }
            };
            let mut r = resolve(sf, sub_value, tail.to_vec(), strict)?;
            if tail.is_empty() {
                r.at = at;
            }
            Ok(r)
        }
    }
}

/// Rebuilds field `f`'s logical value with sub-field `seg` set to `new` (one level deep).
pub(crate) fn rebuild(
    f: &FieldSpec,
    old: Option<&[u8]>,
    seg: &str,
    new: &[u8],
    strict: bool,
) -> Result<Vec<u8>, Error> {
    match f.sub.as_deref() {
        None => Err(Error::InvalidPath {
            reason: "field has no sub-fields",
        }),
        Some(SubSpec::Tlv) => {
            let tag = tlv::parse_tag(seg).ok_or(Error::InvalidPath {
                reason: "TLV tag must be a 1-3 byte tag field in hex",
            })?;
            let at = FieldRef::sub(f.id, SubKey::Tag(tag));
            let mut out = Vec::new();
            let mut replaced = false;
            for t in tlv::objects(old.unwrap_or_default()) {
                let t = t.map_err(|reason| Error::InvalidTlv { at, reason })?;
                if t.tag == tag {
                    tlv::write(tag, new, &mut out);
                    replaced = true;
                } else {
                    tlv::write(t.tag, t.value, &mut out);
                }
            }
            if !replaced {
                tlv::write(tag, new, &mut out);
            }
            Ok(out)
        }
        Some(SubSpec::Positional(subs)) => {
            let want = index(seg)?;
            if !subs.iter().any(|s| s.id == want) {
                return Err(Error::InvalidPath {
                    reason: "no such positional sub-field",
                });
            }
            let existing = match old {
                Some(o) => positional(f.id, subs, &Cow::Borrowed(o), strict, None)?
                    .into_iter()
                    .map(|(s, v)| (s.id, v.into_owned()))
                    .collect(),
                None => Vec::new(),
            };
            let mut out = Vec::new();
            for s in subs {
                let at = FieldRef::sub(f.id, SubKey::Index(s.id));
                let v: Vec<u8> = if s.id == want {
                    new.to_vec()
                } else {
                    existing
                        .iter()
                        .find(|(id, _)| *id == s.id)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| empty_value(s))
                };
                let v = field::normalise(s, at, &v, strict)?;
                field::write(s, at, &v, &mut out)?;
            }
            Ok(out)
        }
        Some(SubSpec::Message(inner)) => {
            let want = index(seg)?;
            let mut msg = super::owned::OwnedMessage::new_sub(inner);
            if let Some(o) = old {
                let m = message::decode_sub(inner, o, f.id)?;
                for id in m.fields() {
                    msg.put_unchecked(id, &m.get(id)?);
                }
            }
            msg.set(want, new)?;
            let mut out = Vec::new();
            super::owned::encode_body(inner, &msg, &mut out)?;
            Ok(out)
        }
    }
}

/// The value a positional sub-field gets when it was never set: zeros or spaces.
fn empty_value(s: &FieldSpec) -> Vec<u8> {
    match (s.length, s.content) {
        (Length::Fixed(n), Content::Numeric) => vec![b'0'; n],
        (Length::Fixed(n), Content::Binary) => vec![0; n],
        (Length::Fixed(n), _) => vec![b' '; n],
        (Length::Variable { .. }, _) => Vec::new(),
    }
}
