//! Building and encoding: [`OwnedMessage`], a message that owns its values.
//!
//! Values live in one growable arena with a span per field, so building a response from a
//! request is one allocation, not one per field. Every setter checks the value against the
//! spec at once (length, content class, date format) and names the field on error; short
//! fixed-length values are padded the ISO way (numbers with leading zeros, text with spaces).

use std::borrow::Cow;
use std::fmt;

use rust_decimal::Decimal;

use super::bitmap::{self, FieldSet};
use super::content::Content;
use super::encoding::Sink;
use super::error::{Error, FieldRef};
use super::field;
use super::message::{self, write_fields, Mti};
use super::spec::{FieldSpec, Spec};
use super::sub;
use super::values;

/// A message whose field values are owned, ready to encode.
#[derive(Clone)]
pub struct OwnedMessage<'s> {
    spec: &'s Spec,
    mti: Mti,
    present: FieldSet,
    spans: [(u32, u32); 193],
    data: Vec<u8>,
    secondary_always: bool,
}

impl<'s> OwnedMessage<'s> {
    /// An empty message of `spec`.
    pub fn new(spec: &'s Spec, mti: Mti) -> Self {
        Self {
            spec,
            mti,
            present: FieldSet::EMPTY,
            spans: [(0, 0); 193],
            data: Vec::with_capacity(512),
            secondary_always: false,
        }
    }

    pub(crate) fn new_sub(spec: &'s Spec) -> Self {
        Self::new(spec, Mti::NONE)
    }

    /// The MTI.
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// Changes the MTI.
    pub fn set_mti(&mut self, mti: Mti) -> &mut Self {
        self.mti = mti;
        self
    }

    /// The spec the values were checked against.
    pub fn spec(&self) -> &'s Spec {
        self.spec
    }

    /// Sends a secondary bitmap even when no field above 64 is present (some hosts always
    /// send one; a decoded message that had one keeps it, so it re-encodes identically).
    pub fn set_secondary_bitmap_always(&mut self, always: bool) -> &mut Self {
        self.secondary_always = always;
        self
    }

    /// Whether data field `id` is present.
    pub fn has(&self, id: u16) -> bool {
        id >= 2 && self.present.contains(id)
    }

    /// Present data fields, ascending.
    pub fn fields(&self) -> impl Iterator<Item = u16> + '_ {
        self.present.iter()
    }

    /// Stores an already-valid value (copied from a decoded message of the same spec).
    pub(crate) fn put_unchecked(&mut self, id: u16, v: &[u8]) {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(v);
        self.spans[usize::from(id)] = (start, v.len() as u32);
        self.present.insert(id);
    }

    fn field_spec(&self, id: u16) -> Result<&'s FieldSpec, Error> {
        let at = FieldRef::field(id);
        if id < 2 || (id == 65 && self.spec.tertiary) {
            return Err(Error::WrongType {
                at,
                reason: "bitmap fields are computed by the encoder",
            });
        }
        self.spec.field(id).ok_or(Error::UndefinedField { at })
    }

    /// Sets a field from its logical value (characters, or raw bytes for `b` fields).
    pub fn set(&mut self, id: u16, value: &[u8]) -> Result<&mut Self, Error> {
        let f = self.field_spec(id)?;
        let v = field::normalise(f, FieldRef::field(id), value, self.spec.strict)?;
        self.put_unchecked(id, &v);
        Ok(self)
    }

    /// Sets a text field (`set_str(39, "00")`).
    pub fn set_str(&mut self, id: u16, value: &str) -> Result<&mut Self, Error> {
        let v = values::from_str(FieldRef::field(id), value)?;
        self.set(id, &v)
    }

    /// Sets a numeric field from an integer; fixed-length fields get leading zeros
    /// (`set_u64(11, 42)` gives `000042`).
    pub fn set_u64(&mut self, id: u16, value: u64) -> Result<&mut Self, Error> {
        let f = self.field_spec(id)?;
        if f.content != Content::Numeric {
            return Err(Error::WrongType {
                at: FieldRef::field(id),
                reason: "not a numeric (n) field",
            });
        }
        let mut buf = itoa_buf(value);
        let digits = buf.as_mut_slice();
        self.set(id, digits)
    }

    /// Sets an amount field in minor units: `set_amount(4, dec!(123.45), 2)` gives
    /// `000000012345`; `x+n` fields get `C`, or `D` for negative amounts.
    pub fn set_amount(&mut self, id: u16, amount: Decimal, scale: u32) -> Result<&mut Self, Error> {
        let f = self.field_spec(id)?;
        let digits = values::amount_digits(FieldRef::field(id), f.content, amount, scale)?;
        self.set(id, &digits)
    }

    /// Sets a binary field (or a text field from its character bytes).
    pub fn set_bytes(&mut self, id: u16, value: &[u8]) -> Result<&mut Self, Error> {
        self.set(id, value)
    }

    /// Sets a sub-field by path (`"55.9F26"`, `"127.2"`, `"62.3"`), creating the parent
    /// field if absent (other positional sub-fields start as zeros/spaces).
    pub fn set_path(&mut self, path: &str, value: &[u8]) -> Result<&mut Self, Error> {
        let (id, rest) = sub::split_path(path)?;
        let f = self.field_spec(id)?;
        match rest.as_slice() {
            [] => self.set(id, value),
            [seg] => {
                let old = self.has(id).then(|| self.value(id).to_vec());
                let rebuilt = sub::rebuild(f, old.as_deref(), seg, value, self.spec.strict)?;
                self.set(id, &rebuilt)
            }
            _ => Err(Error::InvalidPath {
                reason: "setting nested sub-fields is not supported; set the parent",
            }),
        }
    }

    /// Removes a field.
    pub fn remove(&mut self, id: u16) -> &mut Self {
        self.present.remove(id);
        self
    }

    #[inline]
    fn value(&self, id: u16) -> &[u8] {
        let (start, len) = self.spans[usize::from(id)];
        &self.data[start as usize..(start + len) as usize]
    }

    /// The logical value of a field.
    pub fn get(&self, id: u16) -> Result<&[u8], Error> {
        if !self.has(id) {
            return Err(Error::Absent {
                at: FieldRef::field(id),
            });
        }
        Ok(self.value(id))
    }

    /// A text field as a string.
    pub fn get_str(&self, id: u16) -> Result<Cow<'_, str>, Error> {
        let f = self.field_spec(id)?;
        values::to_str(FieldRef::field(id), f.content, Cow::Borrowed(self.get(id)?))
    }

    /// A numeric field as an integer.
    pub fn get_u64(&self, id: u16) -> Result<u64, Error> {
        let f = self.field_spec(id)?;
        values::to_u64(FieldRef::field(id), f.content, self.get(id)?)
    }

    /// An amount field with `scale` decimals.
    pub fn get_amount(&self, id: u16, scale: u32) -> Result<Decimal, Error> {
        let f = self.field_spec(id)?;
        values::to_amount(FieldRef::field(id), f.content, self.get(id)?, scale)
    }

    /// A sub-field by path.
    pub fn get_path(&self, path: &str) -> Result<Cow<'_, [u8]>, Error> {
        let (id, rest) = sub::split_path(path)?;
        let f = self.field_spec(id)?;
        Ok(sub::resolve(f, Cow::Borrowed(self.get(id)?), rest, self.spec.strict)?.value)
    }
}

/// Decimal digits of `v` without allocation.
fn itoa_buf(mut v: u64) -> DigitBuf {
    let mut b = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    DigitBuf { b, start: i }
}

struct DigitBuf {
    b: [u8; 20],
    start: usize,
}

impl DigitBuf {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.b[self.start..]
    }
}

/// Encodes `msg` with `spec` (which may differ from the spec it was built with: values are
/// then re-checked against `spec`) and appends the bytes to `out`.
pub(crate) fn encode(
    spec: &Spec,
    msg: &OwnedMessage<'_>,
    out: &mut impl Sink,
) -> Result<(), Error> {
    encode_with(spec, msg, out, true)
}

/// [`encode`] with or without the spec's presence rules.
pub(crate) fn encode_with(
    spec: &Spec,
    msg: &OwnedMessage<'_>,
    out: &mut impl Sink,
    rules: bool,
) -> Result<(), Error> {
    let same_spec = std::ptr::eq(spec, msg.spec);
    if rules {
        message::check_rules(spec, msg.mti, &msg.present)?;
    }
    if let Some(enc) = spec.mti {
        enc.encode(
            FieldRef::field(0),
            Content::Numeric,
            &msg.mti.as_bytes(),
            out,
        )?;
    }
    if same_spec {
        encode_body(spec, msg, out)
    } else {
        // Re-check (and re-pad) every value against the target spec.
        let mut checked = OwnedMessage::new(spec, msg.mti);
        checked.secondary_always = msg.secondary_always;
        for id in msg.fields() {
            checked.set(id, msg.value(id))?;
        }
        encode_body(spec, &checked, out)
    }
}

/// Bitmaps and fields (no MTI).
pub(crate) fn encode_body(
    spec: &Spec,
    msg: &OwnedMessage<'_>,
    out: &mut impl Sink,
) -> Result<(), Error> {
    let mut present = msg.present;
    present.remove(1);
    if spec.tertiary {
        present.remove(65);
    }
    if present.word(2) != 0 {
        if !spec.tertiary {
            return Err(Error::InvalidBitmap {
                reason: "fields above 128 need a tertiary bitmap",
            });
        }
        present.insert(65);
    }
    if present.word(1) != 0 || msg.secondary_always {
        if !spec.secondary {
            return Err(Error::InvalidBitmap {
                reason: "fields above 64 need a secondary bitmap",
            });
        }
        present.insert(1);
    }
    bitmap::write(spec.bitmap, present.word(0), out);
    if present.contains(1) {
        bitmap::write(spec.bitmap, present.word(1), out);
        if spec.tertiary && present.contains(65) {
            bitmap::write(spec.bitmap, present.word(2), out);
        }
    }
    for id in present.iter() {
        if id == 1 || (id == 65 && spec.tertiary) {
            continue;
        }
        let at = FieldRef::field(id);
        let f = spec.field(id).ok_or(Error::UndefinedField { at })?;
        field::write(f, at, msg.value(id), out)?;
    }
    Ok(())
}

impl fmt::Debug for OwnedMessage<'_> {
    /// Masked like [`super::Message`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OwnedMessage {{ spec: {}, mti: {}",
            self.spec.name(),
            self.mti
        )?;
        write_fields(
            f,
            self.spec,
            self.fields().map(|id| (id, Cow::Borrowed(self.value(id)))),
            ", ",
        )?;
        write!(f, " }}")
    }
}

impl fmt::Display for OwnedMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mti)?;
        write_fields(
            f,
            self.spec,
            self.fields().map(|id| (id, Cow::Borrowed(self.value(id)))),
            " ",
        )
    }
}
