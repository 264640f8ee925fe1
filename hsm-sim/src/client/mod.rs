//! A network HSM client: the [`Hsm`](crate::Hsm) trait over the payShield host-command protocol.
//!
//! Why this exists: the switch holds an `Arc<dyn Hsm>`; with this client that HSM can be our
//! `hsm-sim` server (or a payShield for the standard commands) without code changes.
//!
//! - A pool of [`ClientConfig::connections`] TCP connections, used round robin and re-opened
//!   lazily after a failure.
//! - Pipelining: each request gets a unique header (decimal counter of `header_len` digits);
//!   a reader task per connection matches responses to waiting callers by header, so many
//!   requests are in flight on one connection ([`ClientConfig::in_flight_max`] per connection).
//! - Timeouts: a request not answered within [`ClientConfig::timeout_ms`] fails with
//!   [`HsmError::Unavailable`]. That connection is then retired (no new requests on it), so a
//!   late answer can never be matched to a newer request that reused its header.
//! - Lost connections: a command whose connection died unanswered is sent once more on a fresh
//!   connection within the same timeout ([`HsmClient::call`]); a timed-out one is not.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::codec::{frame, response_code, Request, HEADER_LEN_DEFAULT};
use crate::error::HsmError;
use crate::tls::TlsClient;

mod conn;
mod fields;
mod hsm_impl;

use conn::Conn;

/// Client configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// HSM address.
    pub addr: SocketAddr,
    /// Pool size.
    pub connections: usize,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Header length (must match the server).
    pub header_len: usize,
    /// Maximum requests in flight per connection.
    pub in_flight_max: usize,
    /// TLS to the HSM (mutual when it carries a client certificate); `None`: plain TCP.
    pub tls: Option<TlsClient>,
}

impl ClientConfig {
    /// Defaults for `addr`: 4 connections, 2 s timeout, 4-character header, 512 in flight.
    pub fn new(addr: SocketAddr) -> ClientConfig {
        ClientConfig {
            addr,
            connections: 4,
            timeout_ms: 2_000,
            header_len: HEADER_LEN_DEFAULT,
            in_flight_max: 512,
            tls: None,
        }
    }
}

/// In-flight bound per connection: the configured maximum, but at most half the header space
/// (a 0-character header allows one request at a time).
fn in_flight_bound(config: &ClientConfig) -> usize {
    let space = 10usize.saturating_pow(config.header_len.min(19) as u32);
    config.in_flight_max.min(space / 2).max(1)
}

/// How one send of a command ended, when it brought no answer body.
enum Attempt {
    /// The connection died with the command unanswered: worth sending once more.
    Lost(&'static str),
    /// Anything else: the caller's answer.
    Failed(HsmError),
}

impl From<HsmError> for Attempt {
    fn from(e: HsmError) -> Self {
        Attempt::Failed(e)
    }
}

impl Attempt {
    fn into_error(self) -> HsmError {
        match self {
            Attempt::Lost(why) => HsmError::Unavailable(why.into()),
            Attempt::Failed(e) => e,
        }
    }
}

/// The network HSM client (cheap to share: wrap in `Arc`).
pub struct HsmClient {
    config: ClientConfig,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next_slot: AtomicUsize,
    next_header: AtomicU64,
}

impl std::fmt::Debug for HsmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HsmClient({})", self.config.addr)
    }
}

impl HsmClient {
    /// A client; connections open on first use.
    pub fn new(config: ClientConfig) -> HsmClient {
        let slots = (0..config.connections.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        HsmClient {
            config,
            slots,
            next_slot: AtomicUsize::new(0),
            next_header: AtomicU64::new(0),
        }
    }

    async fn conn(&self) -> Result<Arc<Conn>, HsmError> {
        let i = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref() {
            if c.alive.load(Ordering::Acquire) {
                return Ok(Arc::clone(c));
            }
        }
        let c = Conn::open(&self.config).await?;
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }

    fn header(&self) -> Vec<u8> {
        let n = self.next_header.fetch_add(1, Ordering::Relaxed);
        let width = self.config.header_len.min(19);
        let modulo = 10u64.saturating_pow(width as u32);
        let mut h = format!("{:0width$}", n % modulo.max(1), width = width).into_bytes();
        h.resize(self.config.header_len, b'0');
        h
    }

    /// Send one command and wait for its response body (`Err` for a non-`00` error code).
    ///
    /// A command whose connection died before its answer came back (the HSM restarted, a
    /// load balancer dropped an idle link) is sent once more on a fresh connection, within the
    /// same [`ClientConfig::timeout_ms`]: every host command is a computation under the LMK
    /// with nothing kept by the HSM, so the second copy cannot do anything twice, and the
    /// first never produced an answer to act on. A command that timed out is not resent (the
    /// HSM may be overloaded; a copy would only add to its queue).
    pub async fn call(&self, command: &[u8; 2], body: &[u8]) -> Result<Vec<u8>, HsmError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.timeout_ms);
        match self.attempt(command, body, deadline).await {
            Err(Attempt::Lost(why)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(
                    command = %String::from_utf8_lossy(command),
                    why,
                    "HSM connection lost before the answer; sending the command again"
                );
                self.attempt(command, body, deadline)
                    .await
                    .map_err(Attempt::into_error)
            }
            other => other.map_err(Attempt::into_error),
        }
    }

    /// One send of `command` on a pooled connection, answered by `deadline`.
    async fn attempt(
        &self,
        command: &[u8; 2],
        body: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, Attempt> {
        let conn = self.conn().await?;
        let _permit = conn
            .permits
            .acquire()
            .await
            .map_err(|_| HsmError::Unavailable("closed".into()))?;
        let (tx, rx) = oneshot::channel();
        let header = {
            // A header is unique among this connection's pending requests (the permit bound is
            // below the header space, so a free one always exists).
            let mut pending = conn.pending.lock().map_err(|_| HsmError::Internal)?;
            let mut h = self.header();
            while pending.contains_key(&h) {
                h = self.header();
            }
            pending.insert(h.clone(), tx);
            h
        };
        let req = Request {
            header: header.clone(),
            command: *command,
            body: body.to_vec(),
        };
        let bytes = frame(&req.encode())?;
        if conn.tx.send(bytes).await.is_err() {
            conn.alive.store(false, Ordering::Release);
            return Err(Attempt::Lost("connection closed"));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(resp)) if resp.code == response_code(*command) => Ok(resp.into_result()?),
            Ok(Ok(resp)) => {
                // The HSM answered this header with another command's reply: the link is
                // confused, so no new request goes on it.
                conn.alive.store(false, Ordering::Release);
                Err(Attempt::Failed(HsmError::UnexpectedReply {
                    command: String::from_utf8_lossy(command).into_owned(),
                    reply: String::from_utf8_lossy(&resp.code).into_owned(),
                }))
            }
            Ok(Err(_)) => Err(Attempt::Lost("connection lost")),
            Err(_) => {
                if let Ok(mut m) = conn.pending.lock() {
                    m.remove(&header);
                }
                // A late answer could later match a reused header: retire this connection so
                // no new request is sent on it (requests already in flight still complete).
                conn.alive.store(false, Ordering::Release);
                Err(Attempt::Failed(HsmError::Unavailable("timeout".into())))
            }
        }
    }

    async fn text(&self, command: &[u8; 2], body: String) -> Result<String, HsmError> {
        let out = self.call(command, body.as_bytes()).await?;
        // Every reply field is ASCII; refusing anything else here makes each byte offset the
        // reply is cut at a character boundary.
        if !out.is_ascii() {
            return Err(HsmError::InvalidInput);
        }
        String::from_utf8(out).map_err(|_| HsmError::InvalidInput)
    }

    async fn verify(&self, command: &[u8; 2], body: Vec<u8>) -> Result<bool, HsmError> {
        match self.call(command, &body).await {
            Ok(_) => Ok(true),
            Err(HsmError::VerificationFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
