//! The bank's side of the link MACs ([`crate::wire::mac`]): check the request, answer A0 when
//! its MAC is missing or wrong, MAC the answer.
//!
//! Why this exists: the simulated bank must hold the switch to the same rule the switch holds
//! it to, and it wraps the bank's answering ([`super::respond`]) rather than living inside it
//! so the services stay unaware of MACs. The answer is MACed under the TAK that verified the
//! request: during a key change the switch may still hold the previous TAK as current, and it
//! accepts its previous one, so either way the answer verifies.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use hsm_sim::keys::Tak;

use super::respond::{reply, respond as respond_plain};
use super::{lock, Shared};
use crate::wire::mac::{self as link_mac, Rules};

/// The encoded answer to one request, MACed when the bank MACs and the request's class is
/// MACed; `None` when there is nothing to answer.
pub(super) async fn respond(shared: &Shared, bytes: &[u8]) -> Option<BytesMut> {
    if !shared.config.mac {
        return respond_plain(shared, bytes).await;
    }
    let spec = shared.spec;
    let msg = match spec.decode(bytes) {
        Ok(m) if m.mti().is_request() && link_mac::is_maced(m.mti()) => m,
        // Not MACed (network management), or unreadable: answered as before (30 without a MAC:
        // a message that cannot be read cannot be authenticated either way).
        _ => return respond_plain(shared, bytes).await,
    };
    let taks = lock(&shared.keys).tak.candidates();
    match link_mac::verify(&*shared.hsm, &taks, bytes, &msg).await {
        Ok(tak) => {
            let plain = respond_plain(shared, bytes).await?;
            seal(shared, tak, &plain).await
        }
        Err(e) => {
            shared.counters.mac_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(bank = %shared.config.institution, mti = %msg.mti().as_str(),
                error = %e, "request refused with A0: MAC missing or wrong");
            let mut refusal = reply(&msg, "A0")?;
            // MACed under the bank's current TAK: if the switch holds another one it drops the
            // A0 as unauthenticated, and its request times out and is reversed, which is
            // right when the two ends cannot authenticate each other.
            let current = taks.first()?;
            let wire =
                link_mac::encode_with_mac(&*shared.hsm, current, &mut refusal, Rules::Unchecked)
                    .await
                    .ok()?;
            Some(corrupt_if_asked(shared, wire))
        }
    }
}

/// MACs the bank's encoded answer under `tak`.
async fn seal(shared: &Shared, tak: &Tak, plain: &[u8]) -> Option<BytesMut> {
    let decoded = shared.spec.decode_unchecked(plain).ok()?;
    let mut answer = crate::wire::to_static(shared.spec, &decoded).ok()?;
    let wire = link_mac::encode_with_mac(&*shared.hsm, tak, &mut answer, Rules::Unchecked)
        .await
        .ok()?;
    Some(corrupt_if_asked(shared, wire))
}

/// The fault knob: flips the last bit of the MAC (the last byte of the message).
fn corrupt_if_asked(shared: &Shared, mut wire: Vec<u8>) -> BytesMut {
    if shared.faults.corrupt_mac.load(Ordering::Relaxed) {
        if let Some(last) = wire.last_mut() {
            *last ^= 0x01;
        }
    }
    BytesMut::from(&wire[..])
}
