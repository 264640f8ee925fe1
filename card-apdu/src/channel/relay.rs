//! Relay channel: APDUs carried over TCP so a back end can drive the card in a kiosk (online card
//! authentication, issuer scripts) without the kiosk understanding the flow.
//!
//! This is the framing and the unauthenticated "card relay v1", for a driver and an agent in
//! one trust domain (tests, a kiosk's own processes). Across a network the kiosk serves its
//! card only through the authenticated, bounded "card relay v2" of [`super::secure_relay`].
//!
//! # Wire protocol ("card relay v1")
//! Every frame is `LEN(4, big-endian) || KIND(1) || PAYLOAD(LEN-1)`, with `1 <= LEN <=`
//! [`FRAME_LEN_MAX`] (room for the largest extended APDU). The driver (back end) sends requests,
//! the agent (kiosk, holding the card) answers each in order:
//!
//! | request | payload | answer | payload |
//! |---|---|---|---|
//! | `01` TRANSMIT | command APDU | `81` | response APDU (data ‖ SW1 SW2) |
//! | `02` ATR | — | `82` | ATR |
//! | any other / malformed | | `7F` ERROR | UTF-8 reason; the agent then closes |
//!
//! Which side dials is not part of the protocol: a kiosk behind NAT connects out to the back end
//! and then serves ([`serve`]) on that socket, or listens and lets the back end connect. The
//! relay moves raw APDUs; `61xx`/`6Cxx` are handled by the driver's [`CardChannel::transmit`].

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{CardChannel, ChannelError};

/// Largest frame: KIND + an extended case-4 APDU (4 + 3 + 65535 + 2) with margin.
pub const FRAME_LEN_MAX: usize = 65_600;
/// TRANSMIT request.
pub const KIND_TRANSMIT: u8 = 0x01;
/// ATR request.
pub const KIND_ATR: u8 = 0x02;
/// TRANSMIT answer.
pub const KIND_RESPONSE: u8 = 0x81;
/// ATR answer.
pub const KIND_ATR_RESPONSE: u8 = 0x82;
/// Error answer; the agent closes after sending it.
pub const KIND_ERROR: u8 = 0x7F;

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> Result<(), ChannelError> {
    let len = payload.len() + 1;
    if len > FRAME_LEN_MAX {
        return Err(ChannelError::Relay(format!(
            "frame of {len} bytes exceeds {FRAME_LEN_MAX}"
        )));
    }
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub fn read_frame(r: &mut impl Read) -> Result<Option<(u8, Vec<u8>)>, ChannelError> {
    read_frame_max(r, FRAME_LEN_MAX)
}

/// [`read_frame`] with a smaller bound on `LEN` (the authenticated relay's, [`super::secure_relay`]).
pub fn read_frame_max(
    r: &mut impl Read,
    frame_len_max: usize,
) -> Result<Option<(u8, Vec<u8>)>, ChannelError> {
    let frame_len_max = frame_len_max.min(FRAME_LEN_MAX);
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > frame_len_max {
        return Err(ChannelError::Relay(format!(
            "frame length {len} outside 1..={frame_len_max}"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let kind = body.remove(0);
    Ok(Some((kind, body)))
}

/// The agent side: answers relay requests on `stream` with `card` until the driver closes.
/// A malformed or unknown request gets an ERROR frame and ends this connection only.
pub fn serve<S: Read + Write, C: CardChannel + ?Sized>(
    stream: &mut S,
    card: &mut C,
) -> Result<(), ChannelError> {
    while let Some((kind, payload)) = read_frame(stream)? {
        let answer = match kind {
            KIND_TRANSMIT => card.transmit_raw(&payload).map(|r| (KIND_RESPONSE, r)),
            KIND_ATR => card.atr().map(|a| (KIND_ATR_RESPONSE, a)),
            other => {
                write_frame(
                    stream,
                    KIND_ERROR,
                    format!("unknown request kind {other:02X}").as_bytes(),
                )?;
                return Err(ChannelError::Relay(format!(
                    "unknown request kind {other:02X}"
                )));
            }
        };
        match answer {
            Ok((k, bytes)) => write_frame(stream, k, &bytes)?,
            Err(e) => {
                write_frame(stream, KIND_ERROR, e.to_string().as_bytes())?;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The driver side: a [`CardChannel`] whose card sits behind a relay agent.
pub struct RelayChannel<S: Read + Write = TcpStream> {
    stream: S,
}

impl RelayChannel<TcpStream> {
    /// Connects to an agent listening at `addr`; `timeout` bounds connect and each answer.
    pub fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Self, ChannelError> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| ChannelError::Relay("address resolves to nothing".into()))?;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream })
    }
}

impl<S: Read + Write> RelayChannel<S> {
    /// Uses an already connected stream (e.g. one the kiosk dialled in on).
    pub fn from_stream(stream: S) -> Self {
        Self { stream }
    }

    fn request(&mut self, kind: u8, payload: &[u8], expect: u8) -> Result<Vec<u8>, ChannelError> {
        write_frame(&mut self.stream, kind, payload)?;
        match read_frame(&mut self.stream)? {
            Some((k, body)) if k == expect => Ok(body),
            Some((KIND_ERROR, body)) => Err(ChannelError::Relay(
                String::from_utf8_lossy(&body).into_owned(),
            )),
            Some((k, _)) => Err(ChannelError::Relay(format!(
                "unexpected answer kind {k:02X}"
            ))),
            None => Err(ChannelError::Relay("agent closed the connection".into())),
        }
    }
}

impl<S: Read + Write> CardChannel for RelayChannel<S> {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
        self.request(KIND_TRANSMIT, command, KIND_RESPONSE)
    }

    fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
        self.request(KIND_ATR, &[], KIND_ATR_RESPONSE)
    }
}
