//! Card relay v2: the back end drives the card in a kiosk's reader over TCP (an SSSE PIN
//! unblock, an update of EF06 records), authenticated and bounded.
//!
//! Why: relay v1 ([`super::relay`]) hands the card to whoever connects. A card that unblocks
//! its PIN or rewrites its holder's records must only be driven by the kiosk's own back end,
//! and a kiosk must not be held by a stalled, flooding or second driver.
//!
//! # Wire protocol ("card relay v2")
//! Frames as in v1 (`LEN(4) ‖ KIND(1) ‖ PAYLOAD`), `LEN` at most `1 + apdu_len_max + 8`. Both
//! ends hold `K`, the kiosk institution's relay key (a key of the algorithm of its MACs:
//! SM4 CBC-MAC, ISO 9797-1 algorithm 3 or AES-CMAC, as `crate::kiosk::identity::KioskMac`).
//! The kiosk holds it in clear in its secure module ([`KioskMac`]); a back end may keep it in
//! its HSM and MAC through it ([`RelayKey`]).
//!
//! | step | from | kind | payload |
//! |---|---|---|---|
//! | 1 | agent (kiosk) | `10` HELLO | version `02` ‖ terminal id (8 ASCII) ‖ `Na` (16 random bytes) |
//! | 2 | driver (back end) | `11` AUTH | `Nb` (16 random bytes) ‖ MAC_K(`CRv2-DRIVER` ‖ terminal ‖ `Na` ‖ `Nb`) |
//! | 3 | agent | `91` AUTH OK | MAC_K(`CRv2-AGENT` ‖ terminal ‖ `Nb` ‖ `Na`) |
//! | 4… | driver / agent | v1's `01`/`02` and `81`/`82` | v1's payload ‖ MAC_K(`CRv2-FRAME` ‖ `Na` ‖ `Nb` ‖ direction `D`/`A` ‖ sequence (4, big-endian, from 0 each way) ‖ kind ‖ payload) |
//!
//! Each MAC is 8 bytes. The nonces make every session's MACs its own, the sequence numbers
//! stop a frame being replayed, dropped or reordered inside one. Any failure (a MAC, a
//! sequence, an unknown kind, a limit) gets a `7F` ERROR frame with a reason (never key
//! material) and closes the connection; the card stays in the reader for the next session.
//!
//! # Bounds ([`RelayLimits`])
//! The handshake must finish within `handshake_timeout`; each next frame of the driver must
//! come within `idle_timeout`; a session lasts at most `session_time_max` and carries at most
//! `apdus_per_session_max` commands of at most `apdu_len_max` bytes. One session at a time per
//! reader ([`serve_one_at_a_time`]): a driver connecting while another session is open gets
//! ERROR `busy` at once instead of waiting behind it.

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::relay::{
    read_frame_max, write_frame, KIND_ATR, KIND_ATR_RESPONSE, KIND_ERROR, KIND_RESPONSE,
    KIND_TRANSMIT,
};
use super::{CardChannel, ChannelError};
use crate::kiosk::identity::KioskMac;

/// HELLO, the agent's opening frame.
pub const KIND_HELLO: u8 = 0x10;
/// AUTH, the driver's proof of the key.
pub const KIND_AUTH: u8 = 0x11;
/// AUTH OK, the agent's proof of the key.
pub const KIND_AUTH_OK: u8 = 0x91;
/// Protocol version in HELLO.
pub const VERSION: u8 = 2;
/// Terminal id length in HELLO (ISO 8583 field 41).
pub const TERMINAL_LEN: usize = 8;
const NONCE_LEN: usize = 16;
/// Length of every relay MAC.
pub const MAC_LEN: usize = 8;
/// Largest handshake frame: KIND + HELLO's payload.
const HANDSHAKE_FRAME_LEN_MAX: usize = 1 + 1 + TERMINAL_LEN + NONCE_LEN;
/// Largest frame the driver reads during the handshake: room for an ERROR's reason.
const HANDSHAKE_ANSWER_LEN_MAX: usize = 256;

/// The bounds of one relay session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// From the connection to AUTH OK.
    pub handshake_timeout: Duration,
    /// Longest wait for the driver's next frame.
    pub idle_timeout: Duration,
    /// Longest session.
    pub session_time_max: Duration,
    /// Largest command or response APDU carried, in bytes.
    pub apdu_len_max: usize,
    /// Most commands in one session.
    pub apdus_per_session_max: u32,
}

impl Default for RelayLimits {
    /// An SSSE PIN unblock or an EF06 update takes a few short APDUs within seconds: 5 s to
    /// authenticate, 15 s between commands, 2 minutes and 256 commands of up to 1 KiB at most
    /// (a short APDU is at most 261 bytes, a response 258).
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            session_time_max: Duration::from_secs(120),
            apdu_len_max: 1024,
            apdus_per_session_max: 256,
        }
    }
}

impl RelayLimits {
    fn frame_len_max(&self) -> usize {
        1 + self.apdu_len_max + MAC_LEN
    }
}

fn relay_error(reason: &str) -> ChannelError {
    ChannelError::Relay(reason.to_owned())
}

/// The relay key `K`: whatever computes its 8-byte MACs (the leftmost 8 bytes of the MAC of
/// the key's algorithm, as [`KioskMac::mac`]). Only the MAC leaves it, so a back end can keep
/// `K` in its HSM.
pub trait RelayKey {
    /// The 8-byte MAC of `data` under `K`.
    fn mac(&self, data: &[u8]) -> Result<[u8; MAC_LEN], ChannelError>;
}

impl RelayKey for KioskMac {
    fn mac(&self, data: &[u8]) -> Result<[u8; MAC_LEN], ChannelError> {
        KioskMac::mac(self, data).map_err(|_| relay_error("MAC computation failed"))
    }
}

/// MAC_K(label ‖ parts…).
fn mac_over(
    key: &dyn RelayKey,
    label: &[u8],
    parts: &[&[u8]],
) -> Result<[u8; MAC_LEN], ChannelError> {
    let mut data = label.to_vec();
    for p in parts {
        data.extend_from_slice(p);
    }
    key.mac(&data)
}

/// The keyed state of an authenticated session.
struct Keyed<'k> {
    key: &'k dyn RelayKey,
    nonce_a: [u8; NONCE_LEN],
    nonce_b: [u8; NONCE_LEN],
}

impl Keyed<'_> {
    fn frame_mac(
        &self,
        direction: u8,
        seq: u32,
        kind: u8,
        payload: &[u8],
    ) -> Result<[u8; MAC_LEN], ChannelError> {
        mac_over(
            self.key,
            b"CRv2-FRAME",
            &[
                &self.nonce_a,
                &self.nonce_b,
                &[direction],
                &seq.to_be_bytes(),
                &[kind],
                payload,
            ],
        )
    }

    /// Writes `kind ‖ payload ‖ MAC`.
    fn send(
        &self,
        w: &mut impl Write,
        direction: u8,
        seq: &mut u32,
        kind: u8,
        payload: &[u8],
    ) -> Result<(), ChannelError> {
        let mac = self.frame_mac(direction, *seq, kind, payload)?;
        *seq = seq.wrapping_add(1);
        let mut body = payload.to_vec();
        body.extend_from_slice(&mac);
        write_frame(w, kind, &body)
    }

    /// Checks and strips the MAC of a received frame's body.
    fn open(
        &self,
        direction: u8,
        seq: &mut u32,
        kind: u8,
        mut body: Vec<u8>,
    ) -> Result<Vec<u8>, ChannelError> {
        let at = body
            .len()
            .checked_sub(MAC_LEN)
            .ok_or_else(|| relay_error("frame without a MAC"))?;
        let mac = self.frame_mac(direction, *seq, kind, &body[..at])?;
        if !hsm_sim::block::ct_eq(&mac, &body[at..]) {
            return Err(relay_error("frame MAC does not verify"));
        }
        *seq = seq.wrapping_add(1);
        body.truncate(at);
        Ok(body)
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

/// A read timeout as the error it means.
fn timed(e: ChannelError, waiting_for: &'static str) -> ChannelError {
    match e {
        ChannelError::Io(io)
            if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
        {
            ChannelError::Timeout(waiting_for)
        }
        other => other,
    }
}

/// The kiosk's side: its terminal id, the relay key and the bounds.
#[derive(Debug)]
pub struct AgentConfig {
    /// The kiosk's terminal id (ISO 8583 field 41, 8 characters).
    pub terminal: String,
    /// The relay key of the kiosk's institution.
    pub key: KioskMac,
    /// The bounds of each session.
    pub limits: RelayLimits,
}

/// What a finished session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionReport {
    /// Commands relayed to the card.
    pub apdus: u32,
}

fn terminal_bytes(terminal: &str) -> Result<[u8; TERMINAL_LEN], ChannelError> {
    terminal
        .as_bytes()
        .try_into()
        .map_err(|_| relay_error("terminal id must be 8 characters"))
}

/// Tells the driver why the session ends (best effort), and returns the error.
fn refuse(stream: &mut TcpStream, e: ChannelError) -> ChannelError {
    let reason = match &e {
        ChannelError::Timeout(what) => format!("timeout waiting for {what}"),
        ChannelError::Relay(r) => r.clone(),
        _ => "session ended".to_owned(),
    };
    let _ = write_frame(stream, KIND_ERROR, reason.as_bytes());
    e
}

/// Serves one driver on `stream` with `card`: the handshake, then relayed commands until the
/// driver closes, a check fails or a bound is reached (then an ERROR frame, and `Err`).
pub fn serve_session<C: CardChannel + ?Sized>(
    stream: &mut TcpStream,
    card: &mut C,
    cfg: &AgentConfig,
) -> Result<SessionReport, ChannelError> {
    let started = Instant::now();
    match agent_handshake(stream, cfg) {
        Ok(keyed) => match relay_commands(stream, card, cfg, &keyed, started) {
            Ok(report) => Ok(report),
            Err(e) => Err(refuse(stream, e)),
        },
        Err(e) => Err(refuse(stream, e)),
    }
}

fn agent_handshake<'k>(
    stream: &mut TcpStream,
    cfg: &'k AgentConfig,
) -> Result<Keyed<'k>, ChannelError> {
    let limits = &cfg.limits;
    stream.set_read_timeout(Some(limits.handshake_timeout))?;
    stream.set_write_timeout(Some(limits.handshake_timeout))?;
    let terminal = terminal_bytes(&cfg.terminal)?;
    let nonce_a = nonce();
    let mut hello = vec![VERSION];
    hello.extend_from_slice(&terminal);
    hello.extend_from_slice(&nonce_a);
    write_frame(stream, KIND_HELLO, &hello)?;
    let auth = read_frame_max(stream, HANDSHAKE_FRAME_LEN_MAX)
        .map_err(|e| timed(e, "the driver's AUTH"))?
        .ok_or_else(|| relay_error("driver closed before AUTH"))?;
    let (KIND_AUTH, body) = auth else {
        return Err(relay_error("expected AUTH"));
    };
    if body.len() != NONCE_LEN + MAC_LEN {
        return Err(relay_error("AUTH of the wrong length"));
    }
    let mut nonce_b = [0u8; NONCE_LEN];
    nonce_b.copy_from_slice(&body[..NONCE_LEN]);
    let expected = mac_over(&cfg.key, b"CRv2-DRIVER", &[&terminal, &nonce_a, &nonce_b])?;
    if !hsm_sim::block::ct_eq(&expected, &body[NONCE_LEN..]) {
        return Err(relay_error("driver not authenticated"));
    }
    let proof = mac_over(&cfg.key, b"CRv2-AGENT", &[&terminal, &nonce_b, &nonce_a])?;
    write_frame(stream, KIND_AUTH_OK, &proof)?;
    Ok(Keyed {
        key: &cfg.key,
        nonce_a,
        nonce_b,
    })
}

fn relay_commands<C: CardChannel + ?Sized>(
    stream: &mut TcpStream,
    card: &mut C,
    cfg: &AgentConfig,
    keyed: &Keyed<'_>,
    started: Instant,
) -> Result<SessionReport, ChannelError> {
    let limits = &cfg.limits;
    let (mut seq_in, mut seq_out, mut apdus) = (0u32, 0u32, 0u32);
    loop {
        let left = limits
            .session_time_max
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or(ChannelError::Timeout(
                "the end of the session (session_time_max)",
            ))?;
        stream.set_read_timeout(Some(left.min(limits.idle_timeout)))?;
        let frame = read_frame_max(stream, limits.frame_len_max())
            .map_err(|e| timed(e, "the driver's next frame"))?;
        let Some((kind, body)) = frame else {
            return Ok(SessionReport { apdus });
        };
        let payload = keyed.open(b'D', &mut seq_in, kind, body)?;
        let (answer_kind, answer) = match kind {
            KIND_TRANSMIT => {
                apdus += 1;
                if apdus > limits.apdus_per_session_max {
                    return Err(relay_error("too many commands in one session"));
                }
                (KIND_RESPONSE, card.transmit_raw(&payload)?)
            }
            KIND_ATR => (KIND_ATR_RESPONSE, card.atr()?),
            other => return Err(relay_error(&format!("unknown request kind {other:02X}"))),
        };
        if answer.len() > limits.apdu_len_max {
            return Err(relay_error("card answer longer than apdu_len_max"));
        }
        keyed.send(stream, b'A', &mut seq_out, answer_kind, &answer)?;
    }
}

/// Serves drivers from `listener` one session at a time with `card` until `stop` is set: a
/// driver that connects while a session is open gets ERROR `busy` at once. `on_session` hears
/// how each session ended.
pub fn serve_one_at_a_time<C: CardChannel + ?Sized>(
    listener: TcpListener,
    card: &mut C,
    cfg: &AgentConfig,
    stop: &AtomicBool,
    mut on_session: impl FnMut(Result<SessionReport, ChannelError>),
) {
    let busy = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::sync_channel::<TcpStream>(1);
    let acceptor_busy = Arc::clone(&busy);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if acceptor_busy.load(Ordering::Acquire) {
                let _ = write_frame(
                    &mut stream,
                    KIND_ERROR,
                    b"busy: a session is open on this reader",
                );
                continue;
            }
            match tx.try_send(stream) {
                Ok(()) => {}
                Err(mpsc::TrySendError::Full(mut s)) => {
                    let _ = write_frame(
                        &mut s,
                        KIND_ERROR,
                        b"busy: a session is open on this reader",
                    );
                }
                Err(mpsc::TrySendError::Disconnected(_)) => break,
            }
        }
    });
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(mut stream) => {
                busy.store(true, Ordering::Release);
                let result = serve_session(&mut stream, card, cfg);
                busy.store(false, Ordering::Release);
                on_session(result);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// The back end's side: a [`CardChannel`] to the card of one kiosk, authenticated both ways.
pub struct SecureRelayChannel {
    stream: TcpStream,
    key: Box<dyn RelayKey + Send>,
    nonce_a: [u8; NONCE_LEN],
    nonce_b: [u8; NONCE_LEN],
    seq_out: u32,
    seq_in: u32,
    limits: RelayLimits,
}

impl SecureRelayChannel {
    /// Connects to the agent of kiosk `terminal` at `addr` and authenticates both ways with
    /// `key`; `timeout` bounds the connection and each answer.
    pub fn connect(
        addr: impl ToSocketAddrs,
        terminal: &str,
        key: impl RelayKey + Send + 'static,
        limits: RelayLimits,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| relay_error("address resolves to nothing"))?;
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let terminal = terminal_bytes(terminal)?;
        let hello = match read_frame_max(&mut stream, HANDSHAKE_ANSWER_LEN_MAX)? {
            Some((KIND_HELLO, body)) => body,
            Some((KIND_ERROR, body)) => {
                return Err(ChannelError::Relay(
                    String::from_utf8_lossy(&body).into_owned(),
                ))
            }
            _ => return Err(relay_error("expected HELLO")),
        };
        if hello.len() != 1 + TERMINAL_LEN + NONCE_LEN || hello[0] != VERSION {
            return Err(relay_error("HELLO of another version or length"));
        }
        if hello[1..=TERMINAL_LEN] != terminal {
            return Err(relay_error("HELLO from another terminal"));
        }
        let mut nonce_a = [0u8; NONCE_LEN];
        nonce_a.copy_from_slice(&hello[1 + TERMINAL_LEN..]);
        let nonce_b = nonce();
        let proof = mac_over(&key, b"CRv2-DRIVER", &[&terminal, &nonce_a, &nonce_b])?;
        let mut auth = nonce_b.to_vec();
        auth.extend_from_slice(&proof);
        write_frame(&mut stream, KIND_AUTH, &auth)?;
        match read_frame_max(&mut stream, HANDSHAKE_ANSWER_LEN_MAX)? {
            Some((KIND_AUTH_OK, body)) => {
                let expected = mac_over(&key, b"CRv2-AGENT", &[&terminal, &nonce_b, &nonce_a])?;
                if !hsm_sim::block::ct_eq(&expected, &body) {
                    return Err(relay_error("agent not authenticated"));
                }
            }
            Some((KIND_ERROR, body)) => {
                return Err(ChannelError::Relay(
                    String::from_utf8_lossy(&body).into_owned(),
                ))
            }
            _ => return Err(relay_error("expected AUTH OK")),
        }
        Ok(Self {
            stream,
            key: Box::new(key),
            nonce_a,
            nonce_b,
            seq_out: 0,
            seq_in: 0,
            limits,
        })
    }

    fn request(&mut self, kind: u8, payload: &[u8], expect: u8) -> Result<Vec<u8>, ChannelError> {
        if payload.len() > self.limits.apdu_len_max {
            return Err(relay_error("command longer than apdu_len_max"));
        }
        let keyed = Keyed {
            key: &*self.key,
            nonce_a: self.nonce_a,
            nonce_b: self.nonce_b,
        };
        keyed.send(&mut self.stream, b'D', &mut self.seq_out, kind, payload)?;
        match read_frame_max(&mut self.stream, self.limits.frame_len_max())? {
            Some((k, body)) if k == expect => keyed.open(b'A', &mut self.seq_in, k, body),
            Some((KIND_ERROR, body)) => Err(ChannelError::Relay(
                String::from_utf8_lossy(&body).into_owned(),
            )),
            Some((k, _)) => Err(relay_error(&format!("unexpected answer kind {k:02X}"))),
            None => Err(relay_error("agent closed the connection")),
        }
    }

    /// The raw stream, for tests that misbehave on purpose.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

impl CardChannel for SecureRelayChannel {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
        self.request(KIND_TRANSMIT, command, KIND_RESPONSE)
    }

    fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
        self.request(KIND_ATR, &[], KIND_ATR_RESPONSE)
    }
}
