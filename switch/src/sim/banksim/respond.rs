//! The bank host's answering: decode a request, hand it to the part of the bank that serves
//! its message class, encode the answer (30 when the request cannot be read or the answer not
//! built).

use bytes::BytesMut;
use schemas::iso8583::{self, Message, OwnedMessage, Spec};

use super::financial::{advice, financial, reconciliation, reversal};
use super::network::network;
use super::Shared;

/// The encoded answer to one request, `None` when there is nothing to answer.
pub(super) async fn respond(shared: &Shared, bytes: &[u8]) -> Option<BytesMut> {
    let spec = shared.spec;
    let msg = match spec.decode(bytes) {
        Ok(m) => m,
        Err(_) => {
            // Answer 30 (format error) when the request can be read at all.
            let m = spec.decode_unchecked(bytes).ok()?;
            return encode(spec, &reply(&m, "30")?, true);
        }
    };
    if !msg.mti().is_request() {
        return None;
    }
    let out = match &msg.mti().as_bytes()[..] {
        b"0800" => network(shared, &msg).await,
        b"0200" => financial(shared, &msg).await,
        b"0400" | b"0420" | b"0421" => reversal(shared, &msg),
        b"0120" | b"0121" | b"0220" | b"0221" => advice(shared, &msg),
        b"0500" => reconciliation(shared, &msg),
        _ => reply(&msg, "12"),
    }?;
    encode(spec, &out, false).or_else(|| encode(spec, &reply(&msg, "30")?, true))
}

fn encode(spec: &Spec, m: &OwnedMessage<'_>, unchecked: bool) -> Option<BytesMut> {
    let mut buf = BytesMut::with_capacity(256);
    let r = if unchecked {
        spec.encode_unchecked(m, &mut buf)
    } else {
        spec.encode(m, &mut buf)
    };
    r.ok().map(|_| buf)
}

pub(super) fn reply<'a>(msg: &Message<'a>, code: &str) -> Option<OwnedMessage<'a>> {
    let mut r = msg.to_response().ok()?;
    let mti = msg.mti();
    if let (Some(class), Some(b'1')) = (mti.as_str().get(..2), mti.as_bytes().get(3)) {
        // The answer to a repeat (0121, 0221, 0401, 0421) is the plain response (ISO 8583:1987:
        // the repeat is a property of the request, not of its response).
        let function = mti.as_bytes().get(2).map_or(b'0', |f| f + 1);
        let plain = format!("{class}{}0", char::from(function));
        r.set_mti(iso8583::Mti::new(&plain).ok()?);
    }
    r.set_str(39, code).ok()?;
    Some(r)
}
