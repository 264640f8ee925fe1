//! The payShield-compatible TCP server around the software HSM.
//!
//! Why this exists: the switch's resilience tests and any payShield client can talk to
//! `hsm-sim` exactly as to a network HSM. One task per connection reads frames, executes the
//! commands in order and writes the responses back with the request's header (so clients can
//! pipeline); responses are batched into one write while more requests are already buffered.
//!
//! With [`ServerConfig::tls`] every connection is TLS (mutual TLS when a client CA is set: only
//! clients holding a certificate from it are served). Clear keys (XM, XO) are answered only on a
//! loopback or TLS connection: elsewhere error 17, so a data key never crosses a network in clear.
//!
//! Limits: [`ServerConfig::connections_max`] concurrent connections (further ones are closed at
//! once), [`crate::codec::FRAME_LEN_MAX`] per frame. A malformed frame (declared length 0 or too
//! large) closes that connection only; a frame too short for header + command is answered with
//! command code `ZZ` → `Z[` and error 15.
//!
//! Fault injection ([`FaultConfig`]) for switch resilience tests: a fixed service time per
//! command, a network round trip added to each response, a share of responses replaced by an
//! error code, and a share of requests on which the connection is dropped without an answer.
//! Shares are per million, drawn from a seeded PRNG so a test run is reproducible.
//!
//! The two delays model different HSMs. `latency_ms` holds the connection for that long before
//! each command, so one connection serves at most `1000 / latency_ms` commands a second: a
//! saturated HSM thread per host connection. `rtt_ms` holds only the answer: commands behind it
//! are read and executed at once, and each answer leaves `rtt_ms` after its command arrived, in
//! order. That is a fast HSM at the far end of a network (a payShield a few milliseconds away
//! serves pipelined commands on one connection without waiting for the previous answer to
//! arrive), the shape a benchmark of the switch against a remote HSM needs.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::audit::{AuditEvent, AuditLog};
use crate::codec::{frame, split_frame, Request, Response, HEADER_LEN_DEFAULT};
use crate::commands::{execute, is_key_operation, returns_clear_key};
use crate::error::HsmError;
use crate::soft::SoftHsm;
use crate::tls::{TlsServer, HANDSHAKE_TIMEOUT_MS};

/// Faults to inject (all off by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// Service time: the connection waits this long before executing each command, so commands
    /// on one connection queue behind each other.
    pub latency_ms: u64,
    /// Round trip: each answer is sent this long after its command arrived, while the commands
    /// behind it go on being executed (pipelined; answers stay in order).
    pub rtt_ms: u64,
    /// Share of responses (per million) replaced by `error_code`.
    pub error_per_million: u32,
    /// The injected error code (default `41` when empty).
    pub error_code: String,
    /// Share of requests (per million) on which the connection is dropped unanswered.
    pub drop_per_million: u32,
    /// PRNG seed.
    pub seed: u64,
}

/// Server configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Header length in characters (default 4).
    pub header_len: usize,
    /// Maximum concurrent connections.
    pub connections_max: usize,
    /// Fault injection.
    pub faults: FaultConfig,
    /// TLS (mutual when the settings name a client CA); `None`: plain TCP.
    pub tls: Option<TlsServer>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_len: HEADER_LEN_DEFAULT,
            connections_max: 256,
            faults: FaultConfig::default(),
            tls: None,
        }
    }
}

/// Default listen address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:1500";

/// Read buffer per connection.
const READ_CHUNK: usize = 16 * 1024;

struct Shared {
    hsm: Arc<SoftHsm>,
    config: ServerConfig,
    audit: Option<AuditLog>,
    connections: AtomicUsize,
    rng: AtomicU64,
}

impl Shared {
    /// xorshift64* step on a shared state: not cryptographic, only for fault sampling.
    fn chance(&self, per_million: u32) -> bool {
        if per_million == 0 {
            return false;
        }
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % 1_000_000) < u64::from(per_million)
    }
}

/// The server: an HSM, a config and an optional audit log.
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// A server for `hsm`.
    pub fn new(hsm: Arc<SoftHsm>, config: ServerConfig, audit: Option<AuditLog>) -> Server {
        let seed = config.faults.seed | 1;
        Server {
            shared: Arc::new(Shared {
                hsm,
                config,
                audit,
                connections: AtomicUsize::new(0),
                rng: AtomicU64::new(seed),
            }),
        }
    }

    /// Accept connections until `shutdown` turns true.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let shared = Arc::clone(&self.shared);
                    if shared.connections.fetch_add(1, Ordering::AcqRel) >= shared.config.connections_max {
                        shared.connections.fetch_sub(1, Ordering::AcqRel);
                        tracing::warn!(%peer, "connection limit reached; closing");
                        drop(stream);
                        continue;
                    }
                    let stop = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = accept(&shared, stream, peer, stop).await {
                            tracing::debug!(%peer, error = %e, "connection closed");
                        }
                        shared.connections.fetch_sub(1, Ordering::AcqRel);
                    });
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// What the server knows about the link a command arrived on.
#[derive(Clone, Copy, Debug)]
struct Link {
    peer: SocketAddr,
    /// Nobody on the network can read what is sent on it: a loopback connection (or TLS).
    protected: bool,
}

/// Serve one accepted connection: over TLS when configured (handshake bounded by
/// [`HANDSHAKE_TIMEOUT_MS`]), plain TCP otherwise.
async fn accept(
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let loopback = stream
        .local_addr()
        .is_ok_and(|a| a.ip().to_canonical().is_loopback());
    match &shared.config.tls {
        None => {
            let link = Link {
                peer,
                protected: loopback,
            };
            connection(shared, stream, link, shutdown).await
        }
        Some(tls) => {
            let handshake = tls.acceptor().accept(stream);
            let stream =
                tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), handshake)
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake")
                    })??;
            let link = Link {
                peer,
                protected: true,
            };
            connection(shared, stream, link, shutdown).await
        }
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    mut stream: S,
    link: Link,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let peer = link.peer;
    let rtt = Duration::from_millis(shared.config.faults.rtt_ms);
    let mut inbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut outbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // Answers held back by `rtt_ms`, in arrival order (so their due times are ascending).
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut reading = true;
    loop {
        let next_due = held.front().map(|(due, _)| *due);
        if !reading && next_due.is_none() {
            return Ok(());
        }
        tokio::select! {
            r = stream.read(&mut chunk), if reading => {
                let n = r?;
                if n == 0 {
                    // The client is done sending; answer what it already sent, then close.
                    reading = false;
                    continue;
                }
                inbuf.extend_from_slice(&chunk[..n]);
                let arrived = Instant::now();
                let mut consumed = 0;
                loop {
                    let (payload, used) = match split_frame(&inbuf[consumed..]) {
                        Ok(Some(x)) => x,
                        Ok(None) => break,
                        Err(_) => {
                            tracing::warn!(%peer, "malformed frame length; closing connection");
                            return Ok(());
                        }
                    };
                    let payload = payload.to_vec();
                    consumed += used;
                    let faults = &shared.config.faults;
                    if shared.chance(faults.drop_per_million) {
                        tracing::info!(%peer, "fault injection: dropping connection");
                        return Ok(());
                    }
                    if faults.latency_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
                    }
                    let framed = framed_response(handle(shared, &payload, link).await);
                    if rtt.is_zero() {
                        outbuf.extend_from_slice(&framed);
                    } else {
                        held.push_back((arrived + rtt, framed));
                    }
                }
                inbuf.drain(..consumed);
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                while held.front().is_some_and(|(due, _)| *due <= now) {
                    if let Some((_, framed)) = held.pop_front() {
                        outbuf.extend_from_slice(&framed);
                    }
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
        if !outbuf.is_empty() {
            stream.write_all(&outbuf).await?;
            outbuf.clear();
        }
    }
}

/// The response as a length-prefixed frame; one too large for a frame becomes error 15 (data
/// length) under command code `ZZ`.
fn framed_response(response: Response) -> Vec<u8> {
    match frame(&response.encode()) {
        Ok(f) => f,
        Err(_) => {
            let small = Response::new(response.header, *b"ZZ", Err(HsmError::DataLength));
            frame(&small.encode()).unwrap_or_default()
        }
    }
}

async fn handle(shared: &Shared, payload: &[u8], link: Link) -> Response {
    let peer = link.peer;
    let header_len = shared.config.header_len;
    let req = match Request::decode(payload, header_len) {
        Ok(r) => r,
        Err(e) => return Response::new(Request::header_of(payload, header_len), *b"ZZ", Err(e)),
    };
    let faults = &shared.config.faults;
    if shared.chance(faults.error_per_million) {
        let code = if faults.error_code.len() == 2 {
            faults.error_code.as_str()
        } else {
            "41"
        };
        return Response::new(req.header, req.command, Err(HsmError::from_code(code)));
    }
    let result = if returns_clear_key(req.command) && !link.protected {
        Err(HsmError::NotAuthorised)
    } else {
        execute(&shared.hsm, req.command, &req.body).await
    };
    if let Err(e) = &result {
        tracing::debug!(%peer, command = %String::from_utf8_lossy(&req.command), code = e.code(), "command refused");
    }
    let response = Response::new(req.header.clone(), req.command, result);
    if let Some(audit) = &shared.audit {
        if is_key_operation(req.command) {
            audit.record(audit_event(&req, &response, peer)).await;
        }
    }
    response
}

fn audit_event(req: &Request, resp: &Response, peer: SocketAddr) -> AuditEvent {
    let body = &req.body;
    let key_type = match &req.command {
        b"A0" | b"A4" => body.get(1..4),
        b"A6" | b"A8" => body.get(0..3),
        _ => None,
    }
    .map(|b| String::from_utf8_lossy(b).into_owned())
    .unwrap_or_default();
    let kcv = match &req.command {
        b"A0" | b"A4" | b"A6" | b"A8" | b"BU" | b"XQ" | b"XT" if resp.body.len() >= 6 => {
            String::from_utf8_lossy(&resp.body[resp.body.len() - 6..]).into_owned()
        }
        _ => String::new(),
    };
    AuditEvent {
        peer: peer.to_string(),
        command: String::from_utf8_lossy(&req.command).into_owned(),
        error: String::from_utf8_lossy(&resp.error).into_owned(),
        detail: format!("type={key_type} kcv={kcv}"),
    }
}
