//! ISO 8583 codec: message specs as data, a zero-copy decoder, an owned message for
//! responses, and tokio framing codecs.
//!
//! # Why it looks like this
//! A switch decodes every request and encodes every response, so the data path must not
//! allocate per field: [`Spec::decode`] returns a [`Message`] that records where each field lies
//! in the input buffer and converts a value only when it is read (ASCII values are borrowed
//! `&str`). Each network's dialect is a spec *file* (`schemas/iso8583/*.toml`, ISO notation such
//! as `n..19` or `b...255`): byte-compatible jPOS packagers (`iso87ascii`, `iso87binary`,
//! `iso93ascii`, `iso93binary`, Postilion `post`), moov-io's 1987 spec and its encoding
//! variants (`moov87*`), and our own social-security dialect `ssc87` (see
//! `schemas/iso8583/ssc87.md`).
//!
//! # Using it
//! ```
//! use schemas::iso8583::{self, Mti};
//! use rust_decimal::Decimal;
//!
//! let spec = iso8583::spec("ssc87")?;
//!
//! // A kiosk's purchase request (normally: bytes from the framing codec).
//! let mut req = spec.message(Mti::new("0200")?);
//! req.set_str(2, "6214830012345678")?
//!     .set_str(3, "000000")?
//!     .set_amount(4, Decimal::new(12345, 2), 2)? // 123.45 CNY -> "000000012345"
//!     .set_str(7, "0611191024")? // MMDDhhmmss, checked
//!     .set_u64(11, 42)? // -> "000042"
//!     .set_str(41, "KIOSK001")?
//!     .set_str(49, "156")?
//!     .set_path("62.3", b"MZ2024000123")? // medical bill number (positional sub-field)
//!     .set_path("55.9F26", &[0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0])?;
//! let mut wire = Vec::new();
//! spec.encode(&req, &mut wire)?;
//!
//! // The switch: decode (borrows `wire`), read typed values, answer.
//! let msg = spec.decode(&wire)?;
//! assert_eq!(msg.mti().as_str(), "0200");
//! assert_eq!(msg.get_str(11)?, "000042");
//! assert_eq!(msg.get_amount(4, 2)?, Decimal::new(12345, 2));
//! assert_eq!(&msg.get_path("55.9F26")?[..2], &[0x12, 0x34]);
//! assert_eq!(msg.get_path_str("62.3")?, "MZ2024000123");
//! // Debug/Display never show card secrets.
//! assert!(format!("{msg:?}").contains("621483******5678"));
//!
//! let mut resp = msg.to_response()?; // 0210, request fields echoed, PIN/track/ICC dropped
//! resp.set_str(39, "00")?;
//! let mut out = Vec::new();
//! spec.encode(&resp, &mut out)?;
//! assert_eq!(spec.decode(&out)?.get_str(39)?, "00");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Typed views of fields whose layout several parties share: [`AdditionalAmounts`] (field 54,
//! balances with their `C`/`D` sign) and [`ReconciliationTotals`], [`NetSettlement`] and
//! [`SettlementCode`] (the 0500/0510 fields 66, 74-77, 86-89 and 97).
//!
//! Errors ([`Error`]) name the field and what was wrong, never the value. Frames on TCP are
//! cut by [`framing::FrameCodec`] (2-byte binary, 4-digit ASCII or 2-byte BCD length header,
//! optional 5-byte TPDU, enforced maximum frame size).
//!
//! Standards: ISO 8583:1987 and ISO 8583:1993 (message structure, bitmaps, data element
//! notation), EMV 4.3 Book 3 Annex B (BER-TLV in field 55, read and written by [`crate::tlv`]), ISO 7811/7813 (track data).

mod additional_amounts;
mod bcd;
mod bitmap;
mod content;
mod ebcdic;
mod encoding;
mod error;
mod field;
pub mod framing;
pub mod json;
mod mask;
mod message;
mod owned;
mod prefix;
mod reconciliation;
mod registry;
mod spec;
mod sub;
mod values;

pub use additional_amounts::{
    AccountType, AdditionalAmount, AdditionalAmountError, AdditionalAmounts, AmountType,
};
pub use bitmap::FieldSet;
pub use content::{Content, DateFormat};
pub use encoding::{DataEncoding, Sink};
pub use error::{Error, FieldRef, Mti4, SpecError, SubKey};
pub use mask::{hex_upper, pan as mask_pan};
pub use message::{Message, Mti};
pub use owned::OwnedMessage;
pub use prefix::{Prefix, PrefixEncoding};
pub use reconciliation::{
    FigureDifference, NetSettlement, ReconciliationError, ReconciliationFigures,
    ReconciliationTotals, SettlementCode, Tally, TotalsLine,
    AMOUNT_FEN_MAX as RECONCILIATION_AMOUNT_FEN_MAX, COUNT_MAX as RECONCILIATION_COUNT_MAX,
    NET_SETTLEMENT_NAME,
};
pub use registry::{names as spec_names, spec, spec_or_file};
pub use spec::{BitmapEncoding, FieldSpec, Length, Mask, MessageRule, Spec, SubSpec, FIELD_MAX};

impl Spec {
    /// Decodes one message (no framing: the bytes after the length header/TPDU). The message
    /// borrows `buf`; nothing is allocated per field.
    #[inline]
    pub fn decode<'a>(&'a self, buf: &'a [u8]) -> Result<Message<'a>, Error> {
        message::decode(self, buf)
    }

    /// Encodes `msg` and appends the bytes to `out` (`Vec<u8>` or `bytes::BytesMut`).
    #[inline]
    pub fn encode(&self, msg: &OwnedMessage<'_>, out: &mut impl Sink) -> Result<(), Error> {
        owned::encode(self, msg, out)
    }

    /// Decodes like [`Spec::decode`] but without the per-MTI presence rules: every field must
    /// still be well formed. For a switch answering a request that lacks a mandatory field with
    /// response code 30 while echoing its STAN and terminal; never for processing.
    pub fn decode_unchecked<'a>(&'a self, buf: &'a [u8]) -> Result<Message<'a>, Error> {
        message::decode_with(self, buf, false)
    }

    /// The MTI, bitmaps and every field before the first malformed one: what a switch can
    /// echo in the format-error answer (response code 30) to a request that does not decode.
    /// Never for processing.
    pub fn decode_readable<'a>(&'a self, buf: &'a [u8]) -> Result<Message<'a>, Error> {
        message::decode_readable(self, buf)
    }

    /// Encodes without the per-MTI presence rules: only for format-error answers (response
    /// code 30) to requests that did not carry what the rules need.
    pub fn encode_unchecked(
        &self,
        msg: &OwnedMessage<'_>,
        out: &mut impl Sink,
    ) -> Result<(), Error> {
        owned::encode_with(self, msg, out, false)
    }

    /// The MTI at the start of `buf`, if it can be read even though the rest may be malformed.
    pub fn peek_mti(&self, buf: &[u8]) -> Option<Mti> {
        let enc = self.mti?;
        let len = enc.wire_len(Content::Numeric, 4);
        let wire = buf.get(..len)?;
        enc.check(FieldRef::field(0), Content::Numeric, wire, 4, true)
            .ok()?;
        let mut b = [0u8; 4];
        (enc.decode_digits(wire, 4, &mut b) == 4).then_some(())?;
        Mti::from_bytes(b).ok()
    }

    /// A new, empty message of this spec.
    pub fn message(&self, mti: Mti) -> OwnedMessage<'_> {
        OwnedMessage::new(self, mti)
    }
}
