//! Errors of the ISO 8583 codec.
//!
//! Every error names *where* (the field or sub-field path) and *what* was wrong, and never carries
//! the field's value: an error ends up in logs, and a value may be a PAN, a PIN block or track
//! data. The switch maps decode errors to ISO 8583 response code 30 ("format error").

use std::fmt;

use super::content::Content;

/// A position inside a message: a field number, optionally followed by one sub-field key
/// (`127.25`, `55.9F26`, `62.3`). Used only to say *where* an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldRef {
    /// Top-level field number (0 = MTI, 1 = bitmap, 2..=192 data elements).
    pub field: u16,
    /// Sub-field inside a structured field, if the error is inside one.
    pub sub: Option<SubKey>,
}

/// The key of a sub-field: a position number (positional fields, sub-messages) or a BER-TLV tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubKey {
    /// Positional sub-field or sub-message field number.
    Index(u16),
    /// BER-TLV tag (up to 3 bytes, big-endian in a `u32`).
    Tag(u32),
}

impl FieldRef {
    /// A top-level field.
    pub const fn field(field: u16) -> Self {
        Self { field, sub: None }
    }

    /// A sub-field of `field`.
    pub const fn sub(field: u16, sub: SubKey) -> Self {
        Self {
            field,
            sub: Some(sub),
        }
    }
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            0 => write!(f, "MTI")?,
            1 => write!(f, "bitmap")?,
            n => write!(f, "field {n}")?,
        }
        match self.sub {
            None => Ok(()),
            Some(SubKey::Index(i)) => write!(f, ".{i}"),
            Some(SubKey::Tag(t)) => write!(f, ".{t:X}"),
        }
    }
}

impl From<u16> for FieldRef {
    fn from(field: u16) -> Self {
        Self::field(field)
    }
}

/// Why a message could not be decoded, encoded, or a field read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside `at`.
    #[error("{at}: message truncated ({needed} more bytes needed)")]
    Truncated { at: FieldRef, needed: usize },
    /// The length prefix of a variable-length field is not a valid number in its encoding.
    #[error("{at}: invalid length prefix")]
    InvalidLengthPrefix { at: FieldRef },
    /// A length (from the wire or from a value being set) is above the field's maximum.
    #[error("{at}: length {len} exceeds the maximum {max}")]
    TooLong {
        at: FieldRef,
        len: usize,
        max: usize,
    },
    /// A fixed-length field has the wrong length (binary values cannot be padded).
    #[error("{at}: length {len} differs from the fixed length {expected}")]
    WrongLength {
        at: FieldRef,
        len: usize,
        expected: usize,
    },
    /// A character is outside the field's content class (`bad numeric`, `bad track` ...).
    #[error("{at}: {} has an invalid character at position {position}", content.description())]
    InvalidContent {
        at: FieldRef,
        content: Content,
        position: usize,
    },
    /// A date/time field does not hold a valid date in its format.
    #[error("{at}: not a valid {format} date/time")]
    InvalidDate { at: FieldRef, format: &'static str },
    /// The MTI is not four digits.
    #[error("MTI: not four decimal digits")]
    InvalidMti,
    /// A bitmap is malformed (bad hex, or a bitmap bit the spec does not allow).
    #[error("bitmap: {reason}")]
    InvalidBitmap { reason: &'static str },
    /// The bitmap announces a field the spec does not define.
    #[error("{at}: present in the bitmap but not defined by the spec")]
    UndefinedField { at: FieldRef },
    /// A field the spec requires for this MTI is absent.
    #[error("{at}: mandatory for MTI {mti} but missing")]
    MissingField { mti: Mti4, at: FieldRef },
    /// A field the spec does not allow for this MTI is present.
    #[error("{at}: not allowed for MTI {mti}")]
    UnexpectedField { mti: Mti4, at: FieldRef },
    /// Bytes remain after the last field announced by the bitmap.
    #[error("{count} unexpected bytes after the last field")]
    TrailingBytes { count: usize },
    /// A getter asked for a field that is not in the message.
    #[error("{at}: absent")]
    Absent { at: FieldRef },
    /// A getter or setter does not fit the field's content (e.g. `get_u64` on an `ans` field).
    #[error("{at}: {reason}")]
    WrongType { at: FieldRef, reason: &'static str },
    /// A numeric value does not fit the requested Rust type.
    #[error("{at}: numeric value out of range")]
    OutOfRange { at: FieldRef },
    /// A BER-TLV structure is malformed.
    #[error("{at}: malformed BER-TLV ({reason})")]
    InvalidTlv {
        at: FieldRef,
        reason: crate::tlv::TlvError,
    },
    /// A sub-field path is malformed or names a field without that structure.
    #[error("invalid field path: {reason}")]
    InvalidPath { reason: &'static str },
    /// A hex string (CLI/JSON input) is malformed.
    #[error("{at}: invalid hex")]
    InvalidHex { at: FieldRef },
}

/// A four-digit MTI kept inside errors (an MTI is never sensitive).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mti4(pub [u8; 4]);

impl fmt::Display for Mti4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{}", b as char)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Mti4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti4({self})")
    }
}

/// Why a spec file could not be loaded. These describe configuration, not wire data, so they
/// may quote the offending spec text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// No embedded spec has this name.
    #[error("unknown spec {0:?} (see `iso8583 specs`)")]
    Unknown(String),
    /// The spec file could not be read.
    #[error("cannot read spec file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The spec file is not valid TOML/JSON for the spec schema.
    #[error("spec {name}: {message}")]
    Syntax { name: String, message: String },
    /// The spec is syntactically valid but inconsistent.
    #[error("spec {name}: {message}")]
    Invalid { name: String, message: String },
}
