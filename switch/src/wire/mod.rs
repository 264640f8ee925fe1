//! What the switch's two sides and the simulated bank host share on an ISO 8583 link, below
//! the messages' meaning:
//!
//! - [`transport`]: framed messages over one TCP connection, reader and writer split;
//! - [`mac`]: which messages on a link carry a MAC (field 64/128), and computing and checking
//!   it through the `Hsm` under the link's TAK;
//! - [`network`]: the 0800 network-management codes (sign-on, sign-off, echo, key exchange)
//!   and the key-exchange field layout;
//! - [`settlement_day`]: the China Standard Time day a reconciliation (0500/0510) covers.
//!
//! The issuer links ([`crate::issuer`]) use all three; so does the simulated bank host on the
//! other end of them (`sim::banksim`, feature `demo`); and the pipeline MACs its answers to
//! acquirers with [`mac`], in the same layout.

pub mod mac;
pub mod network;
pub mod settlement_day;
pub mod transport;

use schemas::iso8583::{Error as CodecError, Message, OwnedMessage, Spec};

/// Copies a decoded message into an owned one bound to the `'static` spec, so it can outlive
/// the frame it was read from (values are re-checked against the spec on the way).
pub fn to_static(
    spec: &'static Spec,
    msg: &Message<'_>,
) -> Result<OwnedMessage<'static>, CodecError> {
    let mut out = OwnedMessage::new(spec, msg.mti());
    for id in msg.fields() {
        out.set(id, &msg.get(id)?)?;
    }
    Ok(out)
}
