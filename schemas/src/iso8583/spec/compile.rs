//! Compilation of a resolved spec file into a [`Spec`]: default encodings, ISO notation,
//! length prefixes, masks, sub-field structures and presence rules, each checked once here so
//! the codec can trust them.

use super::file::{invalid, EncodingFile, FieldFile, SpecFile, SubFile};
use super::{
    BitmapEncoding, Content, DataEncoding, DateFormat, FieldSet, FieldSpec, Length, Mask,
    MessageRule, Mti4, Prefix, PrefixEncoding, Spec, SpecError, SubSpec, FIELD_MAX,
};

struct Defaults {
    prefix: PrefixEncoding,
    numeric: DataEncoding,
    text: DataEncoding,
    binary: DataEncoding,
    track: DataEncoding,
    amount: DataEncoding,
}

fn data_encoding(
    spec: &str,
    s: &Option<String>,
    default: DataEncoding,
) -> Result<DataEncoding, SpecError> {
    match s {
        None => Ok(default),
        Some(s) => {
            DataEncoding::parse(s).ok_or_else(|| invalid(spec, format!("unknown encoding {s:?}")))
        }
    }
}

fn defaults(
    spec: &str,
    e: &EncodingFile,
    parent: Option<&Defaults>,
) -> Result<Defaults, SpecError> {
    let text = data_encoding(
        spec,
        &e.text,
        parent.map_or(DataEncoding::Ascii, |p| p.text),
    )?;
    let numeric = data_encoding(spec, &e.numeric, parent.map_or(text, |p| p.numeric))?;
    Ok(Defaults {
        prefix: match &e.prefix {
            None => parent.map_or(PrefixEncoding::Ascii, |p| p.prefix),
            Some(s) => PrefixEncoding::parse(s)
                .ok_or_else(|| invalid(spec, format!("unknown prefix encoding {s:?}")))?,
        },
        numeric,
        text,
        binary: data_encoding(
            spec,
            &e.binary,
            parent.map_or(DataEncoding::Binary, |p| p.binary),
        )?,
        track: data_encoding(spec, &e.track, parent.map_or(numeric, |p| p.track))?,
        amount: data_encoding(spec, &e.amount, parent.map_or(text, |p| p.amount))?,
    })
}

/// Parses ISO notation: content, then ` N` (fixed) or `.`×k `N` (k-digit length prefix).
fn parse_notation(s: &str) -> Option<(Content, Option<usize>, usize)> {
    let s = s.trim();
    let split = s.find(|c: char| c == ' ' || c == '.' || c.is_ascii_digit())?;
    let content = Content::parse(&s[..split])?;
    let rest = &s[split..];
    let dots = rest.chars().take_while(|&c| c == '.').count();
    let digits = rest[dots..].trim_start();
    let len: usize = digits.parse().ok()?;
    Some((content, (dots > 0).then_some(dots), len))
}

/// The field being compiled, for error messages.
#[derive(Clone, Copy)]
struct FieldAt<'a> {
    spec: &'a str,
    id: u16,
}

impl FieldAt<'_> {
    fn invalid(self, message: impl std::fmt::Display) -> SpecError {
        invalid(self.spec, format!("field {}: {message}", self.id))
    }
}

/// Compiles one field (or sub-field) of a spec file: notation, encoding, length prefix, date
/// format, mask and sub-field structure, in that order.
fn compile_field(
    spec: &str,
    id: u16,
    f: &FieldFile,
    d: &Defaults,
    top_level: bool,
) -> Result<FieldSpec, SpecError> {
    let at = FieldAt { spec, id };
    let (content, dots, len) =
        parse_notation(&f.f).ok_or_else(|| at.invalid(format!("bad notation {:?}", f.f)))?;
    // `x+n 8` is the sign plus eight digits: nine characters.
    let len = if content == Content::SignedAmount {
        len + 1
    } else {
        len
    };
    let encoding = field_encoding(at, f, d, content)?;
    let length = match dots {
        None => Length::Fixed(len),
        Some(dots) => field_prefix(at, f, d, dots, len)?,
    };
    let spec = FieldSpec {
        id,
        name: f.name.clone().unwrap_or_default(),
        content,
        length,
        encoding,
        format: field_format(at, f, content, length)?,
        mask: field_mask(at, f, top_level)?,
        sub: field_sub(at, f, d, content)?,
        wire: wire_factors(encoding, content),
    };
    debug_assert!((0..40).all(|u| spec.wire_len(u) == encoding.wire_len(content, u)));
    Ok(spec)
}

/// The field's data encoding: its own `enc`, else the spec's default for its content class.
fn field_encoding(
    at: FieldAt<'_>,
    f: &FieldFile,
    d: &Defaults,
    content: Content,
) -> Result<DataEncoding, SpecError> {
    let default_enc = match content {
        Content::Numeric => d.numeric,
        Content::Binary => d.binary,
        Content::Track => d.track,
        Content::SignedAmount => d.amount,
        _ => d.text,
    };
    let encoding = data_encoding(at.spec, &f.enc, default_enc)?;
    if !encoding.supports(content) {
        return Err(at.invalid(format!(
            "encoding {} cannot carry {}",
            encoding.name(),
            content.notation()
        )));
    }
    Ok(encoding)
}

/// The length prefix of a variable field with `dots` in its notation and maximum `len`.
fn field_prefix(
    at: FieldAt<'_>,
    f: &FieldFile,
    d: &Defaults,
    dots: usize,
    len: usize,
) -> Result<Length, SpecError> {
    let encoding = match &f.prefix {
        None => d.prefix,
        Some(s) => {
            PrefixEncoding::parse(s).ok_or_else(|| at.invalid(format!("unknown prefix {s:?}")))?
        }
    };
    let width = f.prefix_width.unwrap_or(match encoding {
        PrefixEncoding::Binary => dots.div_ceil(2) as u8,
        // moov writes hex lengths with as many digits as the maximum needs.
        PrefixEncoding::Hex => format!("{len:x}").len() as u8,
        _ => dots as u8,
    });
    let prefix = Prefix { encoding, width };
    if width == 0 || width > 8 || prefix.capacity() < len {
        return Err(at.invalid(format!("prefix cannot express {len}")));
    }
    Ok(Length::Variable { prefix, max: len })
}

/// The date/time layout checked on the field, if the file names one.
fn field_format(
    at: FieldAt<'_>,
    f: &FieldFile,
    content: Content,
    length: Length,
) -> Result<Option<DateFormat>, SpecError> {
    let Some(s) = &f.format else {
        return Ok(None);
    };
    let fmt = DateFormat::parse(s).ok_or_else(|| at.invalid(format!("unknown format {s:?}")))?;
    if content != Content::Numeric || length != Length::Fixed(fmt.digits()) {
        return Err(at.invalid(format!("format {s} needs n {}", fmt.digits())));
    }
    Ok(Some(fmt))
}

/// How the field is shown. ISO 8583 fields that carry card secrets are masked whatever the
/// spec says (PAN rule of PCI DSS 3.4 for field 2).
fn field_mask(at: FieldAt<'_>, f: &FieldFile, top_level: bool) -> Result<Mask, SpecError> {
    Ok(match f.mask.as_deref() {
        Some("pan") => Mask::Pan,
        Some("full") => Mask::Full,
        Some("none") => Mask::None,
        Some(other) => return Err(at.invalid(format!("unknown mask {other:?}"))),
        None if top_level => match at.id {
            2 => Mask::Pan,
            14 | 35 | 36 | 45 | 52 | 55 => Mask::Full,
            _ => Mask::None,
        },
        None => Mask::None,
    })
}

/// The field's inner structure: BER-TLV, positional sub-fields, or a bitmap sub-message.
fn field_sub(
    at: FieldAt<'_>,
    f: &FieldFile,
    d: &Defaults,
    content: Content,
) -> Result<Option<Box<SubSpec>>, SpecError> {
    let spec = at.spec;
    Ok(match &f.sub {
        None => None,
        Some(SubFile::Tlv {}) => {
            if content != Content::Binary {
                return Err(at.invalid("TLV needs a b field"));
            }
            Some(Box::new(SubSpec::Tlv))
        }
        Some(SubFile::Positional { fields }) => {
            let mut subs = Vec::new();
            for (k, sf) in fields {
                let sid = parse_id(spec, k, 999)?;
                subs.push(compile_field(spec, sid, sf, d, false)?);
            }
            subs.sort_by_key(|s| s.id);
            Some(Box::new(SubSpec::Positional(subs)))
        }
        Some(SubFile::Message {
            bitmap,
            secondary,
            encoding,
            fields,
        }) => {
            let sd = defaults(spec, encoding, Some(d))?;
            let mut inner = empty_spec(format!("{spec}.{}", at.id), String::new(), true);
            inner.mti = None;
            inner.bitmap = bitmap_encoding(spec, bitmap)?;
            inner.secondary = *secondary;
            for (k, sf) in fields {
                let sid = parse_id(spec, k, if *secondary { 128 } else { 64 })?;
                if sid < 2 {
                    return Err(at.invalid(format!("sub-field {sid} is the bitmap")));
                }
                inner.fields[usize::from(sid)] = Some(compile_field(spec, sid, sf, &sd, false)?);
            }
            Some(Box::new(SubSpec::Message(Box::new(inner))))
        }
    })
}

/// `wire bytes = (units * mul + add) >> shift` for the encoding (see `FieldSpec::wire`).
fn wire_factors(encoding: DataEncoding, content: Content) -> (u8, u8, u8) {
    match encoding {
        DataEncoding::Hex => (2, 0, 0),
        DataEncoding::Bcd { .. } if content == Content::SignedAmount => (1, 2, 1),
        DataEncoding::Bcd { .. } => (1, 1, 1),
        _ => (1, 0, 0),
    }
}

fn parse_id(spec: &str, k: &str, max: u16) -> Result<u16, SpecError> {
    k.parse::<u16>()
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| invalid(spec, format!("bad field number {k:?}")))
}

fn bitmap_encoding(spec: &str, s: &str) -> Result<BitmapEncoding, SpecError> {
    match s {
        "binary" => Ok(BitmapEncoding::Binary),
        "hex" => Ok(BitmapEncoding::Hex),
        _ => Err(invalid(spec, format!("unknown bitmap encoding {s:?}"))),
    }
}

fn empty_spec(name: String, description: String, strict: bool) -> Spec {
    Spec {
        name,
        description,
        strict,
        mti: Some(DataEncoding::Ascii),
        bitmap: BitmapEncoding::Binary,
        secondary: true,
        tertiary: false,
        fields: vec![None; usize::from(FIELD_MAX) + 1],
        rules: Vec::new(),
    }
}

pub(crate) fn compile(file: &SpecFile) -> Result<Spec, SpecError> {
    let name = file.name.as_str();
    let d = defaults(name, &file.encoding, None)?;
    let mut spec = empty_spec(
        file.name.clone(),
        file.description.clone().unwrap_or_default(),
        file.strict.unwrap_or(true),
    );
    let mti = data_encoding(name, &file.encoding.mti, d.numeric)?;
    if !mti.supports(Content::Numeric) {
        return Err(invalid(name, "MTI encoding must carry digits"));
    }
    spec.mti = Some(mti);
    if let Some(b) = &file.bitmap {
        spec.bitmap = bitmap_encoding(name, &b.encoding)?;
        spec.secondary = b.secondary;
        spec.tertiary = b.tertiary;
        if spec.tertiary && !spec.secondary {
            return Err(invalid(name, "a tertiary bitmap needs a secondary bitmap"));
        }
    }
    for (k, f) in &file.fields {
        let id = parse_id(name, k, FIELD_MAX)?;
        if id < 2 || (id == 65 && spec.tertiary) {
            continue; // MTI and bitmaps are described by `encoding.mti` and `bitmap`.
        }
        if id > 128 && !spec.tertiary || id > 64 && !spec.secondary {
            return Err(invalid(name, format!("field {id} needs a larger bitmap")));
        }
        spec.fields[usize::from(id)] = Some(compile_field(name, id, f, &d, true)?);
    }
    for (k, r) in &file.messages {
        let mti: [u8; 4] = k
            .as_bytes()
            .try_into()
            .ok()
            .filter(|m: &[u8; 4]| m.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| invalid(name, format!("bad MTI {k:?} in messages")))?;
        let mut mandatory = FieldSet::EMPTY;
        for &f in &r.mandatory {
            if spec.field(f).is_none() {
                return Err(invalid(name, format!("rule {k}: field {f} is not defined")));
            }
            mandatory.insert(f);
        }
        let allowed = r.optional.as_ref().map(|opt| {
            let mut set = mandatory;
            for &f in opt {
                set.insert(f);
            }
            set
        });
        spec.rules
            .push((Mti4(mti), MessageRule { mandatory, allowed }));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation_covers_fixed_and_variable_kinds() {
        assert_eq!(parse_notation("n 6"), Some((Content::Numeric, None, 6)));
        assert_eq!(parse_notation("n6"), Some((Content::Numeric, None, 6)));
        assert_eq!(
            parse_notation("ans..25"),
            Some((Content::AlphaNumericSpecial, Some(2), 25))
        );
        assert_eq!(
            parse_notation("b...255"),
            Some((Content::Binary, Some(3), 255))
        );
        assert_eq!(
            parse_notation("ans....9999"),
            Some((Content::AlphaNumericSpecial, Some(4), 9999))
        );
        assert_eq!(
            parse_notation("x+n 8"),
            Some((Content::SignedAmount, None, 8))
        );
        assert_eq!(parse_notation("q 8"), None);
    }

    #[test]
    fn inline_spec_compiles_and_checks_encodings() {
        let spec = Spec::from_toml_str(
            r#"
            name = "t"
            [encoding]
            numeric = "bcd"
            prefix = "bcd"
            [fields]
            2 = { f = "n..19" }
            35 = { f = "z..37", enc = "bcd_rpad" }
            "#,
        )
        .unwrap();
        let f2 = spec.field(2).unwrap();
        assert_eq!(f2.encoding, DataEncoding::Bcd { left_pad: true });
        assert_eq!(f2.mask, Mask::Pan);
        assert_eq!(spec.field(35).unwrap().mask, Mask::Full);
        let bad =
            Spec::from_toml_str("name = \"t\"\n[fields]\n4 = { f = \"ans 4\", enc = \"bcd\" }");
        assert!(matches!(bad, Err(SpecError::Invalid { .. })));
    }
}
