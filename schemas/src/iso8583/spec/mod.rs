//! Message specs: what each field of a network's dialect is, compiled from a data file.
//!
//! A spec file (TOML or JSON, see `schemas/iso8583/*.toml`) names the dialect, the default
//! encodings per content class, the bitmap encoding and every field in ISO 8583 notation
//! (`"n..19"` = numeric, LL-variable up to 19; `"ans 40"` fixed; `"b...255"` LLL binary; lengths
//! of `b` fields are in bytes as in ISO 8583:1993, `x+n 8` is a sign plus eight digits). Adding a
//! dialect means adding a file, not code. `extends = "base"` reuses another spec and overrides
//! parts of it (the moov encoding variants are one-line files).

mod compile;
mod file;

use std::fmt;

use super::bitmap::FieldSet;
use super::content::{Content, DateFormat};
use super::encoding::DataEncoding;
use super::error::{Mti4, SpecError};
use super::prefix::{Prefix, PrefixEncoding};

pub(crate) use compile::compile;
use file::{parse_json, read_file};
pub(crate) use file::{parse_toml, resolve};

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
