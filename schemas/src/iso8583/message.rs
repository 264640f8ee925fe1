//! Decoding: a [`Message`] that borrows from the input buffer.
//!
//! Decoding walks the bitmap once and records, for each present field, where its data lies
//! (a fixed array of 193 spans: no allocation per field). Values are converted from their wire
//! encoding only when asked for, and ASCII values are handed out as borrowed `&str`.

use std::borrow::Cow;
use std::fmt;

use rust_decimal::Decimal;

use super::bitmap::{self, FieldSet};
use super::content::Content;
use super::error::{Error, FieldRef, Mti4};
use super::field::{self, Span};
use super::mask;
use super::owned::OwnedMessage;
use super::spec::{FieldSpec, Spec};
use super::sub;
use super::values;

/// A message type indicator (ISO 8583:1987 §4.1): version, class, function, origin digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

impl Mti {
    /// The placeholder MTI of sub-messages, which have none.
    pub(crate) const NONE: Mti = Mti(*b"0000");

    /// Parses four decimal digits.
    pub fn new(s: &str) -> Result<Mti, Error> {
        let b: [u8; 4] = s.as_bytes().try_into().map_err(|_| Error::InvalidMti)?;
        Self::from_bytes(b)
    }

    /// From four ASCII digits.
    pub fn from_bytes(b: [u8; 4]) -> Result<Mti, Error> {
        if b.iter().all(u8::is_ascii_digit) {
            Ok(Mti(b))
        } else {
            Err(Error::InvalidMti)
        }
    }

    /// The four digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The four ASCII digits.
    pub fn as_bytes(&self) -> [u8; 4] {
        self.0
    }

    /// Message class (second digit): 1 authorization, 2 financial, 4 reversal, 8 network ...
    pub fn class(&self) -> u8 {
        self.0[1] - b'0'
    }

    /// Whether this is a request or advice (function digit even) rather than a response.
    pub fn is_request(&self) -> bool {
        (self.0[2] - b'0') & 1 == 0
    }

    /// The MTI of the response to this request: function digit + 1 (0200→0210, 0420→0430,
    /// 1800→1810), origin digit kept.
    pub fn response(&self) -> Result<Mti, Error> {
        if !self.is_request() {
            return Err(Error::WrongType {
                at: FieldRef::field(0),
                reason: "MTI is already a response",
            });
        }
        let mut b = self.0;
        b[2] += 1;
        Ok(Mti(b))
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({})", self.as_str())
    }
}

impl std::str::FromStr for Mti {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Mti::new(s)
    }
}

/// A decoded message borrowing the input buffer and its spec.
#[derive(Clone)]
pub struct Message<'a> {
    pub(crate) spec: &'a Spec,
    pub(crate) buf: &'a [u8],
    pub(crate) mti: Option<Mti>,
    pub(crate) present: FieldSet,
    pub(crate) spans: [Span; 193],
}

/// Decodes a whole message (MTI if the spec has one, bitmaps, fields) from `buf`.
pub(crate) fn decode<'a>(spec: &'a Spec, buf: &'a [u8]) -> Result<Message<'a>, Error> {
    decode_with(spec, buf, true)
}

/// [`decode`] with or without the spec's presence rules (`rules = false` lets a switch read a
/// request that lacks a mandatory field, to answer it with response code 30).
pub(crate) fn decode_with<'a>(
    spec: &'a Spec,
    buf: &'a [u8],
    rules: bool,
) -> Result<Message<'a>, Error> {
    let (msg, end) = decode_prefix(spec, buf, false)?;
    if end != buf.len() {
        return Err(Error::TrailingBytes {
            count: buf.len() - end,
        });
    }
    if let (true, Some(mti)) = (rules, msg.mti) {
        check_rules(spec, mti, &msg.present)?;
    }
    Ok(msg)
}

/// The MTI, the bitmaps and the fields before the first one that does not decode (that field
/// and those after it are left out; trailing bytes are ignored). Only for a format-error answer
/// that echoes what could be read of a malformed request; never for processing.
pub(crate) fn decode_readable<'a>(spec: &'a Spec, buf: &'a [u8]) -> Result<Message<'a>, Error> {
    decode_prefix(spec, buf, true).map(|(msg, _)| msg)
}

/// MTI, bitmaps and fields from the start of `buf`, and where they end; with `keep_readable`,
/// a field that does not decode ends the message instead of failing it.
fn decode_prefix<'a>(
    spec: &'a Spec,
    buf: &'a [u8],
    keep_readable: bool,
) -> Result<(Message<'a>, usize), Error> {
    if buf.len() > field::MESSAGE_LEN_MAX {
        return Err(Error::TooLong {
            at: FieldRef::field(0),
            len: buf.len(),
            max: field::MESSAGE_LEN_MAX,
        });
    }
    let mut pos = 0;
    let mti = match spec.mti {
        None => None,
        Some(enc) => {
            let len = enc.wire_len(Content::Numeric, 4);
            if buf.len() < len {
                return Err(Error::Truncated {
                    at: FieldRef::field(0),
                    needed: len - buf.len(),
                });
            }
            let wire = &buf[..len];
            enc.check(FieldRef::field(0), Content::Numeric, wire, 4, true)
                .map_err(|_| Error::InvalidMti)?;
            let mut b = [0u8; 4];
            if enc.decode_digits(wire, 4, &mut b) != 4 {
                return Err(Error::InvalidMti);
            }
            pos = len;
            Some(Mti::from_bytes(b)?)
        }
    };
    let mut msg = Message {
        spec,
        buf,
        mti,
        present: FieldSet::EMPTY,
        spans: [Span::default(); 193],
    };
    let end = decode_fields(&mut msg, pos, keep_readable)?;
    Ok((msg, end))
}

fn read_bitmap(spec: &Spec, buf: &[u8], pos: &mut usize) -> Result<u64, Error> {
    let len = bitmap::wire_len(spec.bitmap);
    if buf.len() - *pos < len {
        return Err(Error::Truncated {
            at: FieldRef::field(1),
            needed: len - (buf.len() - *pos),
        });
    }
    let w = bitmap::read(spec.bitmap, &buf[*pos..*pos + len])?;
    *pos += len;
    Ok(w)
}

/// Reads bitmaps and fields starting at `pos`; returns the end position.
fn decode_fields(
    msg: &mut Message<'_>,
    mut pos: usize,
    keep_readable: bool,
) -> Result<usize, Error> {
    let spec = msg.spec;
    let buf = msg.buf;
    let primary = read_bitmap(spec, buf, &mut pos)?;
    msg.present.set_word(0, primary);
    if primary & (1 << 63) != 0 {
        if !spec.secondary {
            return Err(Error::InvalidBitmap {
                reason: "secondary bitmap announced but not allowed by the spec",
            });
        }
        let secondary = read_bitmap(spec, buf, &mut pos)?;
        msg.present.set_word(1, secondary);
        if spec.tertiary && secondary & (1 << 63) != 0 {
            let tertiary = read_bitmap(spec, buf, &mut pos)?;
            msg.present.set_word(2, tertiary);
        }
    }
    for w in 0..3 {
        let mut bits = msg.present.word(w);
        while bits != 0 {
            let lead = bits.leading_zeros();
            bits &= !(1u64 << (63 - lead));
            let id = (w as u16) * 64 + lead as u16 + 1;
            if id == 1 || (id == 65 && spec.tertiary) {
                continue;
            }
            let at = FieldRef::field(id);
            let read = spec
                .field(id)
                .ok_or(Error::UndefinedField { at })
                .and_then(|f| field::read(f, at, buf, pos, spec.strict));
            let (span, next) = match read {
                Ok(r) => r,
                Err(_) if keep_readable => {
                    for later in id..=192 {
                        msg.present.remove(later);
                    }
                    return Ok(pos);
                }
                Err(e) => return Err(e),
            };
            msg.spans[usize::from(id)] = span;
            pos = next;
        }
    }
    Ok(pos)
}

/// Decodes a sub-message (no MTI) that must fill `buf` exactly.
pub(crate) fn decode_sub<'a>(
    spec: &'a Spec,
    buf: &'a [u8],
    parent: u16,
) -> Result<Message<'a>, Error> {
    if buf.len() > field::MESSAGE_LEN_MAX {
        return Err(Error::TooLong {
            at: FieldRef::field(parent),
            len: buf.len(),
            max: field::MESSAGE_LEN_MAX,
        });
    }
    let mut msg = Message {
        spec,
        buf,
        mti: None,
        present: FieldSet::EMPTY,
        spans: [Span::default(); 193],
    };
    let end = decode_fields(&mut msg, 0, false).map_err(|e| relabel(e, parent))?;
    if end != buf.len() {
        return Err(Error::InvalidPath {
            reason: "sub-message has trailing bytes",
        });
    }
    Ok(msg)
}

/// Errors inside a sub-message are reported as `parent.sub`.
fn relabel(e: Error, parent: u16) -> Error {
    use super::error::SubKey;
    let fix = |at: FieldRef| FieldRef::sub(parent, SubKey::Index(at.field));
    match e {
        Error::Truncated { at, needed } => Error::Truncated {
            at: fix(at),
            needed,
        },
        Error::InvalidLengthPrefix { at } => Error::InvalidLengthPrefix { at: fix(at) },
        Error::TooLong { at, len, max } => Error::TooLong {
            at: fix(at),
            len,
            max,
        },
        Error::InvalidContent {
            at,
            content,
            position,
        } => Error::InvalidContent {
            at: fix(at),
            content,
            position,
        },
        Error::InvalidDate { at, format } => Error::InvalidDate {
            at: fix(at),
            format,
        },
        Error::UndefinedField { at } => Error::UndefinedField { at: fix(at) },
        other => other,
    }
}

/// Applies the spec's presence rules for `mti`.
pub(crate) fn check_rules(spec: &Spec, mti: Mti, present: &FieldSet) -> Result<(), Error> {
    let Some(rule) = spec.rule(mti.0) else {
        return Ok(());
    };
    let mut fields = *present;
    fields.remove(1);
    if spec.tertiary {
        fields.remove(65);
    }
    if let Some(id) = rule.mandatory.difference(&fields).iter().next() {
        return Err(Error::MissingField {
            mti: Mti4(mti.0),
            at: FieldRef::field(id),
        });
    }
    if let Some(allowed) = &rule.allowed {
        if let Some(id) = fields.difference(allowed).iter().next() {
            return Err(Error::UnexpectedField {
                mti: Mti4(mti.0),
                at: FieldRef::field(id),
            });
        }
    }
    Ok(())
}

impl<'a> Message<'a> {
    /// The message type indicator (`0000` for a sub-message).
    pub fn mti(&self) -> Mti {
        self.mti.unwrap_or(Mti::NONE)
    }

    /// The spec the message was decoded with.
    pub fn spec(&self) -> &'a Spec {
        self.spec
    }

    /// The bytes the message was decoded from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Whether data field `id` is present.
    #[inline]
    pub fn has(&self, id: u16) -> bool {
        id >= 2 && self.present.contains(id) && !(id == 65 && self.spec.tertiary)
    }

    /// Present data fields (bitmaps excluded), ascending.
    pub fn fields(&self) -> impl Iterator<Item = u16> + '_ {
        self.present.iter().filter(move |&id| self.has(id))
    }

    #[inline]
    fn spec_and_span(&self, id: u16) -> Result<(&'a FieldSpec, Span), Error> {
        let at = FieldRef::field(id);
        if !self.has(id) {
            return Err(Error::Absent { at });
        }
        let f = self.spec.field(id).ok_or(Error::Absent { at })?;
        Ok((f, self.spans[usize::from(id)]))
    }

    /// The field's bytes exactly as on the wire (without the length prefix).
    pub fn raw(&self, id: u16) -> Result<&'a [u8], Error> {
        let (f, span) = self.spec_and_span(id)?;
        Ok(field::wire(f, self.buf, span))
    }

    /// The field's logical value: characters (one Latin-1 byte each) or, for `b` fields, the
    /// raw bytes. Borrowed when the wire form is the logical form (ASCII, binary).
    #[inline]
    pub fn get(&self, id: u16) -> Result<Cow<'a, [u8]>, Error> {
        let (f, span) = self.spec_and_span(id)?;
        let wire = field::wire(f, self.buf, span);
        Ok(f.encoding.decode(f.content, wire, span.units as usize))
    }

    /// A text field as a string (borrowed for ASCII data). `b` fields are an error.
    #[inline]
    pub fn get_str(&self, id: u16) -> Result<Cow<'a, str>, Error> {
        let (f, _) = self.spec_and_span(id)?;
        values::to_str(FieldRef::field(id), f.content, self.get(id)?)
    }

    /// A numeric (`n`) field as an integer.
    pub fn get_u64(&self, id: u16) -> Result<u64, Error> {
        let (f, _) = self.spec_and_span(id)?;
        values::to_u64(FieldRef::field(id), f.content, &self.get(id)?)
    }

    /// An amount field (`n` minor units, or `x+n` with `D` negative) with `scale` decimals:
    /// `get_amount(4, 2)` reads field 4 `000000012345` as `123.45`.
    pub fn get_amount(&self, id: u16, scale: u32) -> Result<Decimal, Error> {
        let (f, _) = self.spec_and_span(id)?;
        values::to_amount(FieldRef::field(id), f.content, &self.get(id)?, scale)
    }

    /// A field's bytes: raw bytes for `b` fields, character bytes otherwise.
    pub fn get_bytes(&self, id: u16) -> Result<Cow<'a, [u8]>, Error> {
        self.get(id)
    }

    /// A sub-field by path: `"55.9F26"` (TLV tag in hex), `"127.2"` (sub-message field),
    /// `"62.3"` (positional sub-field). A plain number is the whole field.
    pub fn get_path(&self, path: &str) -> Result<Cow<'a, [u8]>, Error> {
        let (id, rest) = sub::split_path(path)?;
        let (f, _) = self.spec_and_span(id)?;
        Ok(sub::resolve(f, self.get(id)?, rest, self.spec.strict)?.value)
    }

    /// A sub-field by path, as text (TLV values and `b` sub-fields are an error).
    pub fn get_path_str(&self, path: &str) -> Result<Cow<'a, str>, Error> {
        let (id, rest) = sub::split_path(path)?;
        let (f, _) = self.spec_and_span(id)?;
        let r = sub::resolve(f, self.get(id)?, rest, self.spec.strict)?;
        values::to_str(r.at, r.content, r.value)
    }

    /// Copies every field into an owned message (same MTI and spec).
    pub fn to_owned_message(&self) -> OwnedMessage<'a> {
        let mut out = OwnedMessage::new(self.spec, self.mti());
        out.set_secondary_bitmap_always(self.present.contains(1));
        for id in self.fields() {
            if let Ok(v) = self.get(id) {
                out.put_unchecked(id, &v);
            }
        }
        out
    }

    /// Starts the response: MTI function digit + 1, and a copy of the request's fields except
    /// those that must not be echoed (14, 35, 36, 45, 52, 53, 55, 64, 128: card secrets,
    /// request security data and MACs, which the responder recomputes). If the spec has
    /// presence rules for the response MTI, fields it does not allow are dropped too.
    pub fn to_response(&self) -> Result<OwnedMessage<'a>, Error> {
        const NOT_ECHOED: [u16; 9] = [14, 35, 36, 45, 52, 53, 55, 64, 128];
        let mti = self.mti().response()?;
        let allowed = self.spec.rule(mti.0).and_then(|r| r.allowed);
        let mut out = OwnedMessage::new(self.spec, mti);
        out.set_secondary_bitmap_always(self.present.contains(1));
        for id in self.fields() {
            if NOT_ECHOED.contains(&id) || allowed.is_some_and(|a| !a.contains(id)) {
                continue;
            }
            out.put_unchecked(id, &self.get(id)?);
        }
        Ok(out)
    }

    /// The sub-message inside field `id` (e.g. Postilion 127), decoded with its own spec.
    pub fn sub_message(&self, id: u16) -> Result<Message<'a>, Error> {
        let (f, span) = self.spec_and_span(id)?;
        match f.sub.as_deref() {
            Some(super::spec::SubSpec::Message(inner)) => {
                let wire = field::wire(f, self.buf, span);
                match f.encoding.decode(f.content, wire, span.units as usize) {
                    Cow::Borrowed(b) => decode_sub(inner, b, id),
                    Cow::Owned(_) => Err(Error::WrongType {
                        at: FieldRef::field(id),
                        reason: "sub-message must be carried as raw bytes",
                    }),
                }
            }
            _ => Err(Error::InvalidPath {
                reason: "field has no sub-message",
            }),
        }
    }
}

/// Shared by Debug and Display: `mti` then `id=value` with masks applied.
pub(crate) fn write_fields<'v>(
    f: &mut fmt::Formatter<'_>,
    spec: &Spec,
    fields: impl Iterator<Item = (u16, Cow<'v, [u8]>)>,
    sep: &str,
) -> fmt::Result {
    for (id, v) in fields {
        let shown = match spec.field(id) {
            Some(fs) => mask::show(fs, &v),
            None => "****".to_owned(),
        };
        write!(f, "{sep}{id}={shown}")?;
    }
    Ok(())
}

impl fmt::Debug for Message<'_> {
    /// Masked: PAN as first 6 + last 4, fields 14, 35, 36, 45, 52, 55 as `****`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Message {{ spec: {}, mti: {}",
            self.spec.name,
            self.mti()
        )?;
        write_fields(
            f,
            self.spec,
            self.fields()
                .filter_map(|id| self.get(id).ok().map(|v| (id, v))),
            ", ",
        )?;
        write!(f, " }}")
    }
}

impl fmt::Display for Message<'_> {
    /// One line: `0200 2=621483******1234 3=000000 ...` (masked like Debug).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mti())?;
        write_fields(
            f,
            self.spec,
            self.fields()
                .filter_map(|id| self.get(id).ok().map(|v| (id, v))),
            " ",
        )
    }
}
