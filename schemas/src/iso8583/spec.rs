//! Message specs: what each field of a network's dialect is, compiled from a data file.
//!
//! A spec file (TOML or JSON, see `schemas/iso8583/*.toml`) names the dialect, the default
//! encodings per content class, the bitmap encoding and every field in ISO 8583 notation
//! (`"n..19"` = numeric, LL-variable up to 19; `"ans 40"` fixed; `"b...255"` LLL binary; lengths
//! of `b` fields are in bytes as in ISO 8583:1993, `x+n 8` is a sign plus eight digits). Adding a
//! dialect means adding a file, not code. `extends = "base"` reuses another spec and overrides
//! parts of it (the moov encoding variants are one-line files).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::bitmap::FieldSet;
use super::content::{Content, DateFormat};
use super::encoding::{DataEncoding, Prefix, PrefixEncoding};
use super::error::{Mti4, SpecError};

/// Highest data element number (tertiary bitmap).
pub const FIELD_MAX: u16 = 192;

/// How long a field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Always this many units.
    Fixed(usize),
    /// A length prefix followed by up to `max` units.
    Variable {
        /// The length prefix.
        prefix: Prefix,
        /// Maximum number of units.
        max: usize,
    },
}

/// How a field is shown by `Debug`/`Display` and `--explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// Shown as is.
    None,
    /// First 6 and last 4 characters shown (PAN rule of PCI DSS 3.4).
    Pan,
    /// Never shown (`****`).
    Full,
}

/// One field (or sub-field) of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// Field number (sub-field number inside structured fields).
    pub id: u16,
    /// Name, for humans.
    pub name: String,
    /// Content class.
    pub content: Content,
    /// Fixed or variable length.
    pub length: Length,
    /// Data encoding.
    pub encoding: DataEncoding,
    /// Date/time layout checked on decode and set, if any.
    pub format: Option<DateFormat>,
    /// Masking rule.
    pub mask: Mask,
    /// Inner structure, if the field has addressable sub-fields.
    pub sub: Option<Box<SubSpec>>,
    /// `wire bytes = (units * mul + add) >> shift` (0 units → 0 bytes), precomputed from the
    /// encoding so the decoder's inner loop has no branch on it.
    pub(crate) wire: (u8, u8, u8),
}

impl FieldSpec {
    /// Wire bytes of `units` units of this field.
    #[inline]
    pub(crate) fn wire_len(&self, units: usize) -> usize {
        let (mul, add, shift) = self.wire;
        if units == 0 {
            0
        } else {
            (units * usize::from(mul) + usize::from(add)) >> shift
        }
    }

    /// Maximum number of units the field holds.
    pub fn max_units(&self) -> usize {
        match self.length {
            Length::Fixed(n) => n,
            Length::Variable { max, .. } => max,
        }
    }

    /// The ISO notation of this field, e.g. `ans..25`.
    pub fn notation(&self) -> String {
        let sign = usize::from(self.content == Content::SignedAmount);
        match self.length {
            Length::Fixed(n) => format!("{} {}", self.content.notation(), n - sign),
            Length::Variable { prefix, max } => {
                let max = max - sign;
                let dots = match prefix.encoding {
                    PrefixEncoding::Binary | PrefixEncoding::Hex => 2,
                    _ => usize::from(prefix.width),
                };
                format!("{}{}{max}", self.content.notation(), ".".repeat(dots))
            }
        }
    }
}

/// The inner structure of a field.
#[derive(Debug, Clone, PartialEq)]
pub enum SubSpec {
    /// Sub-fields one after the other (ISO 8583 field 43, 90; private fields).
    Positional(Vec<FieldSpec>),
    /// BER-TLV objects (field 55, EMV Book 3 Annex B).
    Tlv,
    /// A bitmap sub-message (Postilion field 127).
    Message(Box<Spec>),
}

/// How bitmaps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitmapEncoding {
    /// Eight raw bytes per bitmap (`IFB_BITMAP`).
    Binary,
    /// Sixteen ASCII hex characters per bitmap (`IFA_BITMAP`).
    Hex,
}

/// Field presence rules for one MTI.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRule {
    /// Fields that must be present.
    pub mandatory: FieldSet,
    /// Fields that may be present (`None`: any field the spec defines).
    pub allowed: Option<FieldSet>,
}

/// A compiled message spec. Get one with [`super::spec`] (embedded specs) or
/// [`Spec::from_file`].
#[derive(Clone, PartialEq)]
pub struct Spec {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) strict: bool,
    pub(crate) mti: Option<DataEncoding>,
    pub(crate) bitmap: BitmapEncoding,
    pub(crate) secondary: bool,
    pub(crate) tertiary: bool,
    pub(crate) fields: Vec<Option<FieldSpec>>,
    pub(crate) rules: Vec<(Mti4, MessageRule)>,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("fields", &self.fields.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

impl Spec {
    /// The spec's name (`ssc87`, `iso87ascii` ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One-line description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether content classes are checked (false only for jPOS-compatible specs).
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The definition of field `id`, if the spec has one.
    #[inline]
    pub fn field(&self, id: u16) -> Option<&FieldSpec> {
        self.fields.get(usize::from(id)).and_then(Option::as_ref)
    }

    /// All defined data fields (2..=192), in order.
    pub fn fields(&self) -> impl Iterator<Item = &FieldSpec> {
        self.fields.iter().skip(2).flatten()
    }

    /// Presence rules for `mti`, if the spec has some.
    pub fn rule(&self, mti: [u8; 4]) -> Option<&MessageRule> {
        self.rules
            .iter()
            .find(|(m, _)| m.0 == mti)
            .map(|(_, rule)| rule)
    }

    /// MTIs that have presence rules.
    pub fn ruled_mtis(&self) -> impl Iterator<Item = [u8; 4]> + '_ {
        self.rules.iter().map(|(m, _)| m.0)
    }

    /// Whether a secondary bitmap (fields 65-128) may follow the primary.
    pub fn has_secondary_bitmap(&self) -> bool {
        self.secondary
    }

    /// Whether a tertiary bitmap (fields 129-192, announced by bit 65) is supported.
    pub fn has_tertiary_bitmap(&self) -> bool {
        self.tertiary
    }

    /// Loads and compiles a spec file (`.toml` or `.json`). `extends` may name an embedded
    /// spec or a file next to this one.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Spec, SpecError> {
        let path = path.as_ref();
        let file = read_file(path)?;
        let dir = path.parent().map(std::path::Path::to_path_buf);
        let merged = resolve(file, dir.as_deref(), 0)?;
        compile(&merged)
    }

    /// Compiles a spec from TOML text (`extends` may only name embedded specs).
    pub fn from_toml_str(text: &str) -> Result<Spec, SpecError> {
        let file = parse_toml("<inline>", text)?;
        compile(&resolve(file, None, 0)?)
    }

    /// Compiles a spec from JSON text (`extends` may only name embedded specs).
    pub fn from_json_str(text: &str) -> Result<Spec, SpecError> {
        let file = parse_json("<inline>", text)?;
        compile(&resolve(file, None, 0)?)
    }
}

// ---------------------------------------------------------------------------------------------
// File schema

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpecFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    strict: Option<bool>,
    #[serde(default)]
    encoding: EncodingFile,
    #[serde(default)]
    bitmap: Option<BitmapFile>,
    #[serde(default)]
    fields: BTreeMap<String, FieldFile>,
    #[serde(default)]
    messages: BTreeMap<String, RuleFile>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EncodingFile {
    mti: Option<String>,
    prefix: Option<String>,
    numeric: Option<String>,
    text: Option<String>,
    binary: Option<String>,
    track: Option<String>,
    amount: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BitmapFile {
    encoding: String,
    #[serde(default = "yes")]
    secondary: bool,
    #[serde(default)]
    tertiary: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    /// ISO notation: `n 6`, `ans..25`, `b...255`.
    f: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    enc: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    prefix_width: Option<u8>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    mask: Option<String>,
    #[serde(default)]
    sub: Option<SubFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum SubFile {
    Positional {
        fields: BTreeMap<String, FieldFile>,
    },
    Tlv {},
    Message {
        bitmap: String,
        #[serde(default)]
        secondary: bool,
        #[serde(default)]
        encoding: EncodingFile,
        fields: BTreeMap<String, FieldFile>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    mandatory: Vec<u16>,
    #[serde(default)]
    optional: Option<Vec<u16>>,
}

// ---------------------------------------------------------------------------------------------
// Loading and inheritance

fn read_file(path: &std::path::Path) -> Result<SpecFile, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let name = path.display().to_string();
    if path.extension().is_some_and(|e| e == "json") {
        parse_json(&name, &text)
    } else {
        parse_toml(&name, &text)
    }
}

pub(crate) fn parse_toml(name: &str, text: &str) -> Result<SpecFile, SpecError> {
    toml::from_str(text).map_err(|e| SpecError::Syntax {
        name: name.to_owned(),
        message: e.to_string(),
    })
}

fn parse_json(name: &str, text: &str) -> Result<SpecFile, SpecError> {
    serde_json::from_str(text).map_err(|e| SpecError::Syntax {
        name: name.to_owned(),
        message: e.to_string(),
    })
}

/// Applies `extends` chains (at most 4 deep): the child's scalars, encodings, fields and
/// rules replace the base's.
pub(crate) fn resolve(
    file: SpecFile,
    dir: Option<&std::path::Path>,
    depth: usize,
) -> Result<SpecFile, SpecError> {
    let Some(base_name) = file.extends.clone() else {
        return Ok(file);
    };
    if depth > 4 {
        return Err(invalid(&file.name, "extends chain deeper than 4"));
    }
    let base = match super::registry::embedded_source(&base_name) {
        Some(text) => parse_toml(&base_name, text)?,
        None => match dir {
            Some(dir) => read_file(&dir.join(&base_name))?,
            None => return Err(SpecError::Unknown(base_name)),
        },
    };
    let mut merged = resolve(base, dir, depth + 1)?;
    merged.name = file.name;
    merged.extends = None;
    if file.description.is_some() {
        merged.description = file.description;
    }
    if file.strict.is_some() {
        merged.strict = file.strict;
    }
    if file.bitmap.is_some() {
        merged.bitmap = file.bitmap;
    }
    let e = file.encoding;
    let m = &mut merged.encoding;
    for (dst, src) in [
        (&mut m.mti, e.mti),
        (&mut m.prefix, e.prefix),
        (&mut m.numeric, e.numeric),
        (&mut m.text, e.text),
        (&mut m.binary, e.binary),
        (&mut m.track, e.track),
        (&mut m.amount, e.amount),
    ] {
        if src.is_some() {
            *dst = src;
        }
    }
    merged.fields.extend(file.fields);
    merged.messages.extend(file.messages);
    Ok(merged)
}

fn invalid(name: &str, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        name: name.to_owned(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Compilation

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

fn compile_field(
    spec: &str,
    id: u16,
    f: &FieldFile,
    d: &Defaults,
    top_level: bool,
) -> Result<FieldSpec, SpecError> {
    let (content, dots, len) = parse_notation(&f.f)
        .ok_or_else(|| invalid(spec, format!("field {id}: bad notation {:?}", f.f)))?;
    // `x+n 8` is the sign plus eight digits: nine characters.
    let len = if content == Content::SignedAmount {
        len + 1
    } else {
        len
    };
    let default_enc = match content {
        Content::Numeric => d.numeric,
        Content::Binary => d.binary,
        Content::Track => d.track,
        Content::SignedAmount => d.amount,
        _ => d.text,
    };
    let encoding = data_encoding(spec, &f.enc, default_enc)?;
    if !encoding.supports(content) {
        return Err(invalid(
            spec,
            format!(
                "field {id}: encoding {} cannot carry {}",
                encoding.name(),
                content.notation()
            ),
        ));
    }
    let length = match dots {
        None => Length::Fixed(len),
        Some(dots) => {
            let encoding = match &f.prefix {
                None => d.prefix,
                Some(s) => PrefixEncoding::parse(s)
                    .ok_or_else(|| invalid(spec, format!("field {id}: unknown prefix {s:?}")))?,
            };
            let width = f.prefix_width.unwrap_or(match encoding {
                PrefixEncoding::Binary => dots.div_ceil(2) as u8,
                // moov writes hex lengths with as many digits as the maximum needs.
                PrefixEncoding::Hex => format!("{len:x}").len() as u8,
                _ => dots as u8,
            });
            let prefix = Prefix { encoding, width };
            if width == 0 || width > 8 || prefix.capacity() < len {
                return Err(invalid(
                    spec,
                    format!("field {id}: prefix cannot express {len}"),
                ));
            }
            Length::Variable { prefix, max: len }
        }
    };
    let format = match &f.format {
        None => None,
        Some(s) => {
            let fmt = DateFormat::parse(s)
                .ok_or_else(|| invalid(spec, format!("field {id}: unknown format {s:?}")))?;
            if content != Content::Numeric || length != Length::Fixed(fmt.digits()) {
                return Err(invalid(
                    spec,
                    format!("field {id}: format {s} needs n {}", fmt.digits()),
                ));
            }
            Some(fmt)
        }
    };
    let mask = match f.mask.as_deref() {
        Some("pan") => Mask::Pan,
        Some("full") => Mask::Full,
        Some("none") => Mask::None,
        Some(other) => return Err(invalid(spec, format!("field {id}: unknown mask {other:?}"))),
        // ISO 8583 fields that carry card secrets are masked whatever the spec says.
        None if top_level => match id {
            2 => Mask::Pan,
            14 | 35 | 36 | 45 | 52 | 55 => Mask::Full,
            _ => Mask::None,
        },
        None => Mask::None,
    };
    let sub = match &f.sub {
        None => None,
        Some(SubFile::Tlv {}) => {
            if content != Content::Binary {
                return Err(invalid(spec, format!("field {id}: TLV needs a b field")));
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
            encoding: enc,
            fields,
        }) => {
            let sd = defaults(spec, enc, Some(d))?;
            let mut inner = empty_spec(format!("{spec}.{id}"), String::new(), true);
            inner.mti = None;
            inner.bitmap = bitmap_encoding(spec, bitmap)?;
            inner.secondary = *secondary;
            for (k, sf) in fields {
                let sid = parse_id(spec, k, if *secondary { 128 } else { 64 })?;
                if sid < 2 {
                    return Err(invalid(
                        spec,
                        format!("field {id}: sub-field {sid} is the bitmap"),
                    ));
                }
                inner.fields[usize::from(sid)] = Some(compile_field(spec, sid, sf, &sd, false)?);
            }
            Some(Box::new(SubSpec::Message(Box::new(inner))))
        }
    };
    let wire = match encoding {
        DataEncoding::Hex => (2, 0, 0),
        DataEncoding::Bcd { .. } if content == Content::SignedAmount => (1, 2, 1),
        DataEncoding::Bcd { .. } => (1, 1, 1),
        _ => (1, 0, 0),
    };
    let spec = FieldSpec {
        id,
        name: f.name.clone().unwrap_or_default(),
        content,
        length,
        encoding,
        format,
        mask,
        sub,
        wire,
    };
    debug_assert!((0..40).all(|u| spec.wire_len(u) == encoding.wire_len(content, u)));
    Ok(spec)
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
