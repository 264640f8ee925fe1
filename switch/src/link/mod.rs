//! The switch's issuer side: outgoing ISO 8583 links to the banks' issuer hosts.
//!
//! - [`transport`]: framed messages over one TCP connection, reader and writer split.
//! - [`mux`]: matching responses to requests (MTI class + STAN + terminal), with bounds and an
//!   explicit place for late and unmatched responses.
//! - [`issuer`]: one link per bank with sign-on, echo, key exchange, sign-off and reconnection;
//!   [`issuer::IssuerLinks`] is what the pipeline calls.
//! - [`forwarder`]: store-and-forward delivery of queued reversals (0420/0421).
//! - [`network`]: the 0800 network-management codes and the key-exchange field layout shared
//!   with the simulated bank host ([`crate::banksim`]).
//! - [`mac`]: which messages on a link carry a MAC (field 64/128), and computing and checking
//!   it through the `Hsm` under the link's TAK; shared with the simulated bank host.

pub mod forwarder;
pub mod issuer;
pub mod mac;
pub mod mux;
pub mod network;
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
