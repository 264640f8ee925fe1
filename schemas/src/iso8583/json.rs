//! The JSON and human ("explain") forms of a message, used by the `iso8583` tool.
//!
//! JSON: `{"mti":"0200","fields":{"2":"6214...","3":"000000","55":"9F2608..."}}` with fields
//! in numeric order, every value a string, `b` fields in upper-case hex, no bitmap fields.
//! It is a support tool's exact view of the data, so JSON values are *not* masked; the
//! explain table is for screens and tickets and masks like `Debug`.

use std::fmt::Write as _;

use super::content::Content;
use super::error::{Error, FieldRef};
use super::mask::{self, hex_upper};
use super::message::{Message, Mti};
use super::owned::OwnedMessage;
use super::spec::{FieldSpec, Mask, Spec, SubSpec};
use super::sub;
use crate::tlv;

/// Why JSON could not be turned into a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// JSON, but not `{"mti": "...", "fields": {"<n>": "<string>"}}`.
    #[error("unexpected JSON shape: {0}")]
    Shape(&'static str),
    /// A field value was rejected by the spec.
    #[error(transparent)]
    Field(#[from] Error),
}

/// The JSON form of a decoded message (unmasked).
pub fn to_json(msg: &Message<'_>) -> String {
    let mut s = String::with_capacity(msg.as_bytes().len() * 2 + 32);
    let _ = write!(s, "{{\"mti\":\"{}\",\"fields\":{{", msg.mti());
    let mut first = true;
    for id in msg.fields() {
        let (Some(f), Ok(v)) = (msg.spec().field(id), msg.get(id)) else {
            continue;
        };
        if !first {
            s.push(',');
        }
        first = false;
        let text = mask::plain(f.content, &v);
        let _ = write!(s, "\"{id}\":{}", serde_json::Value::String(text));
    }
    s.push_str("}}");
    s
}

/// Builds a message of `spec` from its JSON form.
pub fn from_json<'s>(spec: &'s Spec, text: &str) -> Result<OwnedMessage<'s>, JsonError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| JsonError::Syntax(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or(JsonError::Shape("top level must be an object"))?;
    let mti = obj
        .get("mti")
        .and_then(|m| m.as_str())
        .ok_or(JsonError::Shape("\"mti\" must be a string"))?;
    let mut msg = spec.message(Mti::new(mti)?);
    let fields = obj
        .get("fields")
        .and_then(|f| f.as_object())
        .ok_or(JsonError::Shape("\"fields\" must be an object"))?;
    for (k, v) in fields {
        let id: u16 = k
            .parse()
            .map_err(|_| JsonError::Shape("field keys must be numbers"))?;
        let value = v
            .as_str()
            .ok_or(JsonError::Shape("field values must be strings"))?;
        let f = spec.field(id).ok_or(Error::UndefinedField {
            at: FieldRef::field(id),
        })?;
        if f.content == Content::Binary {
            let bytes = parse_hex(value).ok_or(Error::InvalidHex {
                at: FieldRef::field(id),
            })?;
            msg.set_bytes(id, &bytes)?;
        } else {
            msg.set_str(id, value)?;
        }
    }
    Ok(msg)
}

/// Decodes hex (upper or lower case, spaces and newlines ignored).
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() & 1 == 1 {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// A human table of the message: field, format, name, value (masked), and sub-fields.
pub fn explain(msg: &Message<'_>) -> String {
    let spec = msg.spec();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "spec {}  MTI {}  {} bytes",
        spec.name(),
        msg.mti(),
        msg.as_bytes().len()
    );
    for id in msg.fields() {
        let (Some(f), Ok(v)) = (spec.field(id), msg.get(id)) else {
            continue;
        };
        row(&mut s, &id.to_string(), f, &mask::show(f, &v));
        explain_sub(&mut s, f, &v, spec.is_strict(), "  ");
    }
    s
}

fn row(s: &mut String, key: &str, f: &FieldSpec, value: &str) {
    let _ = writeln!(
        s,
        "{key:<8} {:<12} {:<44} {value}",
        f.notation(),
        truncate(&f.name, 44)
    );
}

fn truncate(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_owned()
    } else {
        name.chars().take(max - 1).chain(['…']).collect()
    }
}

fn explain_sub(s: &mut String, f: &FieldSpec, v: &[u8], strict: bool, indent: &str) {
    let cow = std::borrow::Cow::Borrowed(v);
    match f.sub.as_deref() {
        None => {}
        Some(SubSpec::Positional(subs)) => match sub::positional(f.id, subs, &cow, strict, None) {
            Ok(parts) => {
                for (sf, sv) in parts {
                    let shown = if f.mask == Mask::None {
                        mask::show(sf, &sv)
                    } else {
                        "****".to_owned()
                    };
                    row(s, &format!("{indent}.{}", sf.id), sf, &shown);
                }
            }
            Err(e) => {
                let _ = writeln!(s, "{indent}(sub-fields unreadable: {e})");
            }
        },
        Some(SubSpec::Tlv) => {
            for t in tlv::objects(v) {
                match t {
                    Ok(t) => {
                        let shown = if f.mask == Mask::None {
                            hex_upper(t.value)
                        } else {
                            format!("**** ({} bytes)", t.value.len())
                        };
                        let _ = writeln!(s, "{indent}.{:X}{:<4} {shown}", t.tag, "");
                    }
                    Err(e) => {
                        let _ = writeln!(s, "{indent}(TLV unreadable: {e})");
                    }
                }
            }
        }
        Some(SubSpec::Message(inner)) => match super::message::decode_sub(inner, v, f.id) {
            Ok(m) => {
                for id in m.fields() {
                    if let (Some(sf), Ok(sv)) = (inner.field(id), m.get(id)) {
                        row(s, &format!("{indent}.{id}"), sf, &mask::show(sf, &sv));
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(s, "{indent}(sub-message unreadable: {e})");
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_a_spec() {
        let spec = super::super::spec("iso87ascii").unwrap();
        let text =
            r#"{"mti":"0800","fields":{"3":"000000","11":"000001","52":"0001020304050607"}}"#;
        let owned = from_json(spec, text).unwrap();
        let mut wire = Vec::new();
        spec.encode(&owned, &mut wire).unwrap();
        let back = to_json(&spec.decode(&wire).unwrap());
        assert_eq!(back, text);
    }

    #[test]
    fn json_errors_name_the_problem() {
        let spec = super::super::spec("ssc87").unwrap();
        assert!(matches!(from_json(spec, "{"), Err(JsonError::Syntax(_))));
        assert!(matches!(
            from_json(spec, r#"{"mti":"0800","fields":{"11":12}}"#),
            Err(JsonError::Shape(_))
        ));
        assert!(matches!(
            from_json(spec, r#"{"mti":"0800","fields":{"52":"XYZ"}}"#),
            Err(JsonError::Field(Error::InvalidHex { .. }))
        ));
    }
}
