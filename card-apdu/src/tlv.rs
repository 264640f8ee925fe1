//! BER-TLV as cards use it (ISO/IEC 7816-4 §5.2.2, EMV Book 3 Annex B).
//!
//! The codec itself lives in [`schemas::tlv`], the one definition shared with field 55 of the
//! ISO 8583 codec and the switch; this module re-exports it so card code (and callers that
//! already say `card_apdu::tlv::parse_all`) keep their paths.

pub use schemas::tlv::*;
