//! Reading what a bank sends on its link, apart from the link's state: the pure steps of
//! [`super::link`]'s receive path (decode, the reply to a bank-originated request, the MUX key
//! and the owned copy of an answer) and the pipeline's reading of an answer to a bank leg
//! (field 39, 38 and 54).
//!
//! Why a module of its own: these are the parsers of bytes the switch does not control (a
//! bank's host, or whatever sits on the line), so they are fuzzed on their own
//! (`switch/fuzz`, target `issuer_answer`) and must answer every input with a value or an
//! error, never a panic.

use bytes::BytesMut;
use schemas::domain::ResponseCode;
use schemas::iso8583::{self, Error as CodecError, Message, OwnedMessage, Spec};

use super::mux::{MuxError, MuxKey};

/// Why a message from a bank cannot reach a waiting request.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Not a message of the link's dialect.
    #[error("undecodable message from the bank: {0}")]
    Undecodable(#[from] CodecError),
    /// No STAN (or a malformed field 41): nothing to match it with.
    #[error("response without a matching key: {0}")]
    NoKey(#[from] MuxError),
}

/// The switch's answer to a request the bank originated (its echo test or sign-on): the
/// 0810 with `00` for network management, the response with `12` (invalid transaction) for
/// anything else, encoded without the field checks (the request may be odd; the answer still
/// goes back).
pub fn reply_to_bank_request(spec: &Spec, msg: &Message<'_>) -> Result<BytesMut, CodecError> {
    let code = if msg.mti().class() == 8 { "00" } else { "12" };
    let mut r = msg.to_response()?;
    r.set_str(39, code)?;
    let mut buf = BytesMut::with_capacity(256);
    spec.encode_unchecked(&r, &mut buf)?;
    Ok(buf)
}

/// An answer's MUX key and an owned copy of it, ready for [`super::mux::Mux::deliver`].
pub fn answer_of(
    spec: &'static Spec,
    msg: &Message<'_>,
) -> Result<(MuxKey, OwnedMessage<'static>), AnswerError> {
    let key = MuxKey::of_response(msg)?;
    let owned = crate::wire::to_static(spec, msg)?;
    Ok((key, owned))
}

/// What the bank said to a bank leg, as the pipeline reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegAnswer {
    /// Approved (`00`, or another approval code), with its authorization code (38) and
    /// balances (54) when given.
    Approved {
        /// Field 38.
        auth_code: Option<String>,
        /// Field 54.
        field54: Option<String>,
    },
    /// Declined with this code; an unreadable field 39 is a system malfunction (`96`).
    Declined(ResponseCode),
}

/// Reads the answer to a bank leg.
pub fn leg_answer(answer: &OwnedMessage<'_>) -> LegAnswer {
    let code = answer
        .get_str(39)
        .ok()
        .and_then(|c| ResponseCode::parse(&c).ok())
        .unwrap_or(ResponseCode::SystemMalfunction);
    if code.is_approved() {
        LegAnswer::Approved {
            auth_code: answer.get_str(38).ok().map(|s| s.into_owned()),
            field54: answer.get_str(54).ok().map(|s| s.into_owned()),
        }
    } else {
        LegAnswer::Declined(code)
    }
}

/// Decodes a message from a bank in the link's dialect.
pub fn decode<'a>(spec: &'a Spec, bytes: &'a [u8]) -> Result<Message<'a>, AnswerError> {
    Ok(spec.decode(bytes)?)
}

/// The dialect of the links (`ssc87`).
pub fn link_spec() -> Option<&'static Spec> {
    iso8583::spec("ssc87").ok()
}
