//! Outgoing links to the banks' issuer hosts, one per bank, and [`IssuerLinks`], the handle
//! the pipeline uses to reach them.
//!
//! Why this exists: a bank leg (purchase remainder, balance inquiry, refund, benefit credit) and
//! every reversal go to the card's bank over ISO 8583/TCP. Each link is supervised by its own
//! task that connects, signs on (0800, field 70 = 001), keeps the link alive with echo tests
//! (301) when idle, exchanges zone PIN keys (101), signs off (002) at shutdown and reconnects
//! with exponential back-off and jitter when the connection is lost. The data plane
//! ([`IssuerLinks::request`]) never waits for the supervisor: it checks the state, registers
//! the request in the link's [`Mux`], queues the encoded message on the connection's writer and
//! waits for the matching response with its own timeout.
//!
//! Key exchange: the switch's HSM generates the new ZPK and returns it under the LMK (kept) and
//! under the bank's ZMK (sent in field 48 with its check value, layout in [`super::network`]).
//! The link switches to the new key only after the bank approves the 0810 with 00; the
//! previous key stays known ([`IssuerLinks::previous_zpk`]) because PIN blocks already
//! translated under it may still be in flight, and the bank accepts both until the next
//! exchange.
//!
//! MACs: a link configured with `mac` also exchanges a TAK in every key exchange (generated the
//! same way, sent beside the ZPK in field 48) and then MACs what it sends and checks what it
//! receives for the message classes of [`super::mac`]. An answer whose MAC is missing or does
//! not verify under the current or the previous TAK is counted ([`LinkStats::mac_failures`]),
//! logged without key material and dropped before the MUX sees it: an unauthenticated
//! approval must not be trusted, and an unauthenticated decline must not free the request
//! either (the genuine answer may still come). The request then times out like an unanswered
//! one, which the pipeline answers with 91 and follows with a 0420 reversal. Dropping, rather
//! than failing the request at once, also keeps a forged answer from pre-empting the real one.
//! Cost: one HSM MAC per message each way. The read task checks up to
//! [`IssuerConfig::answer_checks_in_flight_max`] answers at once: with a network HSM each check
//! is a round trip (~0.3 ms on a LAN, more when the HSM is busy), and checked one at a time
//! they would bound a link near 3,000 answers/s and put every answer behind the slowest check
//! before it. At the bound the task stops reading the socket until a check completes, so a
//! flood of answers waits in TCP, not in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hsm_sim::error::HsmError;
use hsm_sim::keys::{KeyScheme, KeyToken, KeyType, Tak, TypedKey, Zmk, Zpk};
use hsm_sim::Hsm;
use schemas::domain::{InstitutionId, ResponseCode, Stan};
use schemas::iso8583::{self, Mti, OwnedMessage, Spec};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::mac::{self as link_mac, MacError, Rules};
use super::mux::{Mux, MuxConfig, MuxError, MuxKey, MuxStats, UnmatchedResponses};
use super::network::{
    transmission_now, KeyExchangeField, KeyGenerations, KeyUnderZmk, NetworkCode,
};
use super::transport::{self, FrameReader, FrameWriter, Framing, TransportError};

/// Configuration of the link to one bank's issuer host.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The bank (institution identification code, fields 32/33/100).
    pub institution: InstitutionId,
    /// `host:port` of its issuer host.
    pub address: String,
    /// ISO 8583 spec name (`ssc87` unless the bank speaks another dialect).
    pub spec_name: String,
    /// Framing of the link.
    pub framing: Framing,
    /// Longest wait for the TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for a 0810 (sign-on, echo, key exchange, sign-off).
    pub network_timeout: Duration,
    /// Echo test after this long without receiving anything.
    pub echo_interval: Duration,
    /// First reconnection delay.
    pub reconnect_backoff_min: Duration,
    /// Longest reconnection delay.
    pub reconnect_backoff_max: Duration,
    /// Most requests in flight on the link.
    pub in_flight_max: usize,
    /// Most answers whose MAC the read task checks at once (at least 1; see the module
    /// documentation).
    pub answer_checks_in_flight_max: usize,
    /// The zone master key shared with the bank (LMK token of the switch's HSM).
    pub zmk: Zmk,
    /// A zone PIN key agreed out of band, used until the first key exchange.
    pub zpk: Option<Zpk>,
    /// MAC the financial, reversal and reconciliation messages and require MACs on their
    /// answers ([`super::mac`]); every key exchange then carries a new TAK too.
    pub mac: bool,
    /// A TAK agreed out of band, used until the first key exchange (with `mac`).
    pub tak: Option<Tak>,
    /// Exchange keys right after each sign-on.
    pub key_exchange_on_sign_on: bool,
    /// Exchange keys periodically while signed on.
    pub key_exchange_interval: Option<Duration>,
}

impl IssuerConfig {
    /// A config with the defaults: `ssc87`, 2-byte header, 3 s connect, 5 s network
    /// timeout, echo after 30 s idle, back-off 100 ms..30 s, 1024 in flight, 64 answers
    /// checked at once.
    pub fn new(institution: InstitutionId, address: impl Into<String>, zmk: Zmk) -> Self {
        IssuerConfig {
            institution,
            address: address.into(),
            spec_name: "ssc87".into(),
            framing: Framing::default(),
            connect_timeout: Duration::from_secs(3),
            network_timeout: Duration::from_secs(5),
            echo_interval: Duration::from_secs(30),
            reconnect_backoff_min: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(30),
            in_flight_max: 1024,
            answer_checks_in_flight_max: ANSWER_CHECKS_IN_FLIGHT_MAX_DEFAULT,
            zmk,
            zpk: None,
            mac: false,
            tak: None,
            key_exchange_on_sign_on: false,
            key_exchange_interval: None,
        }
    }
}

/// Default [`IssuerConfig::answer_checks_in_flight_max`]: enough to keep a network HSM's
/// pipeline busy (hsm-sim's client allows 512 requests in flight per connection).
pub const ANSWER_CHECKS_IN_FLIGHT_MAX_DEFAULT: usize = 64;

/// Settings shared by all links.
#[derive(Debug, Clone)]
pub struct LinksOptions {
    /// The switch's own institution id (field 32 of the messages it originates).
    pub switch_institution: InstitutionId,
    /// Capacity of the late/unmatched response queue (all links together).
    pub unmatched_queue_max: usize,
    /// Expired MUX keys remembered per link (to tell late from unmatched responses).
    pub expired_keys_max: usize,
}

impl LinksOptions {
    /// Defaults: 1024 queued unmatched responses, 8192 remembered keys per link.
    pub fn new(switch_institution: InstitutionId) -> Self {
        LinksOptions {
            switch_institution,
            unmatched_queue_max: 1024,
            expired_keys_max: 8192,
        }
    }
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No connection (waiting to reconnect, or stopped).
    Down,
    /// Connected or connecting, not yet signed on.
    Connecting,
    /// Signed on: financial messages may be sent.
    SignedOn,
}

impl LinkState {
    fn as_u8(self) -> u8 {
        match self {
            LinkState::Down => 0,
            LinkState::Connecting => 1,
            LinkState::SignedOn => 2,
        }
    }
}

/// Why a request to a bank failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No link is configured for this bank.
    #[error("no link to bank {0}")]
    UnknownBank(InstitutionId),
    /// The link has no connection. Nothing was sent.
    #[error("link down")]
    Down,
    /// Connected but not signed on. Nothing was sent.
    #[error("link not signed on")]
    NotSignedOn,
    /// The link already has its maximum of requests in flight. Nothing was sent.
    #[error("{0} requests already in flight")]
    InFlightFull(usize),
    /// A request with the same MTI class, STAN and terminal is in flight. Nothing was sent.
    #[error("a request with the same key is already in flight")]
    DuplicateInFlight,
    /// Sent, no response in time: the bank may have acted on it.
    #[error("no response within the timeout")]
    Timeout,
    /// Sent (or queued), then the connection closed: the bank may have acted on it.
    #[error("connection lost while waiting for the response")]
    ConnectionLost,
    /// Connecting failed.
    #[error("connection failed: {0}")]
    Io(String),
    /// The connection failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The message could not be encoded or the response decoded.
    #[error("codec: {0}")]
    Codec(#[from] iso8583::Error),
    /// The message lacks a matching field (11, or a malformed 41).
    #[error("request cannot be matched: no usable {0}")]
    NoKey(&'static str),
    /// The HSM refused (key exchange).
    #[error("hsm: {0}")]
    Hsm(#[from] HsmError),
    /// The message could not be MACed (nothing was sent).
    #[error("mac: {0}")]
    Mac(#[from] MacError),
    /// The bank answered a network-management request with a decline.
    #[error("bank declined with response code {0}")]
    Declined(ResponseCode),
    /// Configuration error at start.
    #[error("configuration: {0}")]
    Config(String),
}

impl From<MuxError> for LinkError {
    fn from(e: MuxError) -> Self {
        match e {
            MuxError::InFlightFull(n) => LinkError::InFlightFull(n),
            MuxError::DuplicateInFlight => LinkError::DuplicateInFlight,
            MuxError::NoKey(f) => LinkError::NoKey(f),
            MuxError::Timeout => LinkError::Timeout,
            MuxError::ConnectionLost => LinkError::ConnectionLost,
        }
    }
}

/// Working keys of a link, each with the one it replaced.
struct Keys {
    zpk: KeyGenerations<Zpk>,
    tak: KeyGenerations<Tak>,
}

/// One bank's link: shared between its supervisor task and the data plane.
struct Link {
    config: IssuerConfig,
    spec: &'static Spec,
    switch_institution: InstitutionId,
    hsm: Arc<dyn Hsm>,
    mux: Mux,
    state: AtomicU8,
    state_tx: watch::Sender<LinkState>,
    writer: RwLock<Option<FrameWriter>>,
    keys: RwLock<Keys>,
    stan: AtomicU32,
    stan_zero: Stan,
    epoch: Instant,
    last_rx_ms: AtomicU64,
    key_exchanges: AtomicU64,
    connections: AtomicU64,
    undecodable: AtomicU64,
    mac_failures: AtomicU64,
}

impl Link {
    fn state(&self) -> LinkState {
        match self.state.load(Ordering::Acquire) {
            2 => LinkState::SignedOn,
            1 => LinkState::Connecting,
            _ => LinkState::Down,
        }
    }

    fn set_state(&self, s: LinkState) {
        self.state.store(s.as_u8(), Ordering::Release);
        self.state_tx.send_replace(s);
        tracing::info!(bank = %self.config.institution, state = ?s, "issuer link state");
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_rx_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_rx_ms.load(Ordering::Relaxed)))
    }

    fn next_stan(&self) -> Stan {
        let prev = self
            .stan
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(if s >= Stan::MAX { 1 } else { s + 1 })
            })
            .unwrap_or(1);
        let v = if prev >= Stan::MAX { 1 } else { prev + 1 };
        // v is in 1..=Stan::MAX by construction.
        Stan::new(v).unwrap_or(self.stan_zero)
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Encodes `msg`, with its MAC when the link MACs this class of message.
    async fn encode(&self, mut msg: OwnedMessage<'_>) -> Result<bytes::Bytes, LinkError> {
        if self.config.mac && link_mac::is_maced(msg.mti()) {
            let tak = self.keys().tak.current.clone().ok_or(MacError::NoKey)?;
            let wire =
                link_mac::encode_with_mac(&*self.hsm, &tak, &mut msg, Rules::Checked).await?;
            return Ok(wire.into());
        }
        let mut buf = BytesMut::with_capacity(512);
        self.spec.encode(&msg, &mut buf)?;
        Ok(buf.freeze())
    }

    fn current_writer(&self) -> Option<FrameWriter> {
        self.writer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_writer(&self, w: Option<FrameWriter>) {
        *self
            .writer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = w;
    }

    /// Sends `msg` and waits for its response. `require_signed_on` is false only for the
    /// sign-on and the key exchange that precede the SignedOn state.
    async fn exchange(
        &self,
        msg: OwnedMessage<'_>,
        timeout: Duration,
        require_signed_on: bool,
    ) -> Result<OwnedMessage<'static>, LinkError> {
        match self.state() {
            LinkState::SignedOn => {}
            LinkState::Connecting if !require_signed_on => {}
            LinkState::Connecting => return Err(LinkError::NotSignedOn),
            LinkState::Down => return Err(LinkError::Down),
        }
        let key = MuxKey::of_request(&msg)?;
        let wire = self.encode(msg).await?;
        let writer = self.current_writer().ok_or(LinkError::Down)?;
        let pending = self.mux.register(key)?;
        match writer.try_send(wire) {
            Ok(()) => {}
            Err(TransportError::WriteQueueFull) => {
                return Err(LinkError::InFlightFull(transport::WRITE_QUEUE_MAX))
            }
            Err(_) => return Err(LinkError::Down),
        }
        Ok(pending.wait(timeout).await?)
    }

    fn network_message(&self, code: NetworkCode) -> Result<OwnedMessage<'static>, LinkError> {
        let mut m = OwnedMessage::new(self.spec, Mti::new("0800")?);
        m.set_str(7, &transmission_now())?
            .set_u64(11, u64::from(self.next_stan().value()))?
            .set_str(33, self.switch_institution.as_str())?
            .set_str(70, code.code())?;
        Ok(m)
    }

    async fn network(&self, code: NetworkCode, require_signed_on: bool) -> Result<(), LinkError> {
        let m = self.network_message(code)?;
        let resp = self
            .exchange(m, self.config.network_timeout, require_signed_on)
            .await?;
        approved(&resp)
    }

    /// A new key of `key_type` from the HSM: its LMK token (kept) and the same key under the
    /// bank's ZMK with its check value (sent). The clear key never leaves the HSM.
    async fn new_zone_key(&self, key_type: KeyType) -> Result<(KeyToken, KeyUnderZmk), LinkError> {
        let generated = self
            .hsm
            .generate_key(key_type, KeyScheme::U, Some(&self.config.zmk))
            .await?;
        let under_zmk = generated.under_zmk.ok_or(HsmError::InvalidInput)?;
        let kcv = hex_upper(&generated.check_value);
        Ok((generated.token, KeyUnderZmk { under_zmk, kcv }))
    }

    async fn key_exchange(&self, require_signed_on: bool) -> Result<(), LinkError> {
        let (zpk, zpk_sent) = self.new_zone_key(KeyType::Zpk).await?;
        let tak = if self.config.mac {
            Some(self.new_zone_key(KeyType::Tak).await?)
        } else {
            None
        };
        let field48 = KeyExchangeField {
            zpk: zpk_sent.clone(),
            tak: tak.as_ref().map(|(_, sent)| sent.clone()),
        }
        .encode();
        let mut m = self.network_message(NetworkCode::KeyExchange)?;
        m.set_str(48, &field48)?;
        let resp = self
            .exchange(m, self.config.network_timeout, require_signed_on)
            .await?;
        approved(&resp)?;
        {
            let mut keys = self
                .keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.zpk.rotate(Zpk::from_token(zpk));
            if let Some((token, _)) = &tak {
                keys.tak.rotate(Tak::from_token(token.clone()));
            }
        }
        self.key_exchanges.fetch_add(1, Ordering::Relaxed);
        let tak_kcv = tak.as_ref().map(|(_, sent)| sent.kcv.as_str());
        tracing::info!(bank = %self.config.institution, zpk_kcv = %zpk_sent.kcv,
            tak_kcv = ?tak_kcv, "zone keys changed");
        Ok(())
    }

    /// Answers a request the bank originated (echo or sign-on from its side): 0810 with 00.
    fn answer_bank_request(&self, msg: &iso8583::Message<'_>, writer: &FrameWriter) {
        let code = if msg.mti().class() == 8 { "00" } else { "12" };
        let reply = msg.to_response().and_then(|mut r| {
            r.set_str(39, code)?;
            let mut buf = BytesMut::with_capacity(256);
            self.spec.encode_unchecked(&r, &mut buf)?;
            Ok(buf)
        });
        match reply {
            Ok(buf) => {
                let _ = writer.try_send(buf.freeze());
            }
            Err(e) => tracing::warn!(bank = %self.config.institution, error = %e,
                "cannot answer a bank-originated request"),
        }
    }

    /// Checks the MAC of an answer of a MACed class; `false` when it must be dropped.
    async fn answer_authenticated(&self, bytes: &[u8], msg: &iso8583::Message<'_>) -> bool {
        if !self.config.mac || !link_mac::is_maced(msg.mti()) {
            return true;
        }
        let taks = self.keys().tak.candidates();
        match link_mac::verify(&*self.hsm, &taks, bytes, msg).await {
            Ok(_) => true,
            Err(e) => {
                self.mac_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(bank = %self.config.institution, mti = %msg.mti().as_str(),
                    stan = %msg.get_str(11).unwrap_or_default(), error = %e,
                    "answer dropped: MAC missing or wrong; the request will time out");
                false
            }
        }
    }

    async fn on_message(&self, bytes: bytes::Bytes, writer: &FrameWriter) {
        let bytes = &bytes[..];
        let msg = match self.spec.decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(bank = %self.config.institution, error = %e,
                    "undecodable message from the bank");
                return;
            }
        };
        if msg.mti().is_request() {
            self.answer_bank_request(&msg, writer);
            return;
        }
        if !self.answer_authenticated(bytes, &msg).await {
            return;
        }
        let key = match MuxKey::of_response(&msg) {
            Ok(k) => k,
            Err(e) => {
                self.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(bank = %self.config.institution, error = %e,
                    "response without a matching key");
                return;
            }
        };
        match super::to_static(self.spec, &msg) {
            Ok(owned) => {
                self.mux.deliver(key, owned);
            }
            Err(e) => {
                self.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(bank = %self.config.institution, error = %e,
                    "response could not be copied");
            }
        }
    }
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn approved(resp: &OwnedMessage<'_>) -> Result<(), LinkError> {
    let code = resp
        .get_str(39)
        .ok()
        .and_then(|c| ResponseCode::parse(&c).ok())
        .unwrap_or(ResponseCode::FormatError);
    if code.is_approved() {
        Ok(())
    } else {
        Err(LinkError::Declined(code))
    }
}

/// Exponential back-off with "equal jitter": the n-th delay is drawn uniformly from
/// [d/2, d] where d = min(max, min × 2ⁿ), so many switch nodes do not reconnect in step.
struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let d = self.min.saturating_mul(factor).min(self.max);
        let half = d / 2;
        let mut r = [0u8; 4];
        let frac =
            if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r).is_ok() {
                f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)
            } else {
                0.5
            };
        half + half.mul_f64(frac)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// How a connection ended.
enum Ended {
    Shutdown,
    Lost { was_signed_on: bool },
}

async fn supervise(link: Arc<Link>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff {
        min: link.config.reconnect_backoff_min,
        max: link.config.reconnect_backoff_max,
        attempt: 0,
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        match serve_connection(&link, &mut shutdown).await {
            Ended::Shutdown => break,
            Ended::Lost { was_signed_on } => {
                link.set_state(LinkState::Down);
                if was_signed_on {
                    backoff.reset();
                }
            }
        }
        let delay = backoff.next();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
        }
    }
    link.set_state(LinkState::Down);
}

async fn read_loop(link: Arc<Link>, reader: FrameReader, writer: FrameWriter) {
    read_frames(&link, reader, &writer).await;
    // The connection is gone: nobody may queue on it any more, and whoever waits on it
    // learns at once (the socket closes when the last writer handle is dropped).
    link.set_writer(None);
    link.mux.fail_all();
}

/// Reads the link's messages and handles each ([`Link::on_message`]), up to
/// `answer_checks_in_flight_max` at once: an answer waiting for its MAC check (an HSM round
/// trip) does not hold up the answers behind it. At the bound, reading waits for a check to
/// complete. When the connection ends, the answers already read are still checked and
/// delivered before the caller fails what is left in the MUX.
async fn read_frames(link: &Arc<Link>, mut reader: FrameReader, writer: &FrameWriter) {
    let checks_max = link.config.answer_checks_in_flight_max.max(1);
    let mut handling = FuturesUnordered::new();
    loop {
        tokio::select! {
            // Completing checks first frees room before more is read.
            biased;
            Some(()) = handling.next(), if !handling.is_empty() => {}
            next = reader.next_message(), if handling.len() < checks_max => match next {
                Ok(Some(frame)) => {
                    link.touch();
                    handling.push(link.on_message(frame.message, writer));
                }
                Ok(None) => {
                    tracing::info!(bank = %link.config.institution, "bank closed the connection");
                    break;
                }
                Err(e) => {
                    tracing::warn!(bank = %link.config.institution, error = %e,
                        "closing the connection");
                    break;
                }
            },
        }
    }
    while handling.next().await.is_some() {}
}

/// Connects, signs on, then serves until the connection is lost or shutdown is asked.
async fn serve_connection(link: &Arc<Link>, shutdown: &mut watch::Receiver<bool>) -> Ended {
    link.set_state(LinkState::Connecting);
    let connect = tokio::time::timeout(
        link.config.connect_timeout,
        TcpStream::connect(&link.config.address),
    )
    .await;
    let stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(bank = %link.config.institution, error = %e, "connect failed");
            return Ended::Lost {
                was_signed_on: false,
            };
        }
        Err(_) => {
            return Ended::Lost {
                was_signed_on: false,
            }
        }
    };
    link.connections.fetch_add(1, Ordering::Relaxed);
    let (reader, writer, _write_task) = transport::split(stream, &link.config.framing);
    link.touch();
    let mut read_task = tokio::spawn(read_loop(Arc::clone(link), reader, writer.clone()));
    link.set_writer(Some(writer));
    let teardown = |link: &Arc<Link>, read_task: &JoinHandle<()>| {
        link.set_writer(None);
        read_task.abort();
        link.mux.fail_all();
    };

    let signed_on = async {
        link.network(NetworkCode::SignOn, false).await?;
        let no_key = {
            let keys = link.keys();
            keys.zpk.current.is_none() || (link.config.mac && keys.tak.current.is_none())
        };
        if link.config.key_exchange_on_sign_on || no_key {
            link.key_exchange(false).await?;
        }
        Ok::<(), LinkError>(())
    };
    if let Err(e) = signed_on.await {
        tracing::warn!(bank = %link.config.institution, error = %e, "sign-on failed");
        teardown(link, &read_task);
        return Ended::Lost {
            was_signed_on: false,
        };
    }
    link.set_state(LinkState::SignedOn);

    let mut next_key_exchange = link
        .config
        .key_exchange_interval
        .map(|d| tokio::time::Instant::now() + d);
    loop {
        let idle = link.idle_for();
        let echo_in = link.config.echo_interval.saturating_sub(idle);
        let key_at = next_key_exchange;
        tokio::select! {
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    // Best effort: the bank learns we leave on purpose (field 70 = 002).
                    let _ = link.network(NetworkCode::SignOff, true).await;
                    teardown(link, &read_task);
                    return Ended::Shutdown;
                }
            }
            _ = &mut read_task => {
                teardown(link, &read_task);
                return Ended::Lost { was_signed_on: true };
            }
            _ = tokio::time::sleep(echo_in) => {
                if link.idle_for() >= link.config.echo_interval {
                    if let Err(e) = link.network(NetworkCode::Echo, true).await {
                        tracing::warn!(bank = %link.config.institution, error = %e,
                            "echo test failed; reconnecting");
                        teardown(link, &read_task);
                        return Ended::Lost { was_signed_on: true };
                    }
                }
            }
            _ = sleep_until_opt(key_at) => {
                next_key_exchange = link
                    .config
                    .key_exchange_interval
                    .map(|d| tokio::time::Instant::now() + d);
                if let Err(e) = link.key_exchange(true).await {
                    tracing::warn!(bank = %link.config.institution, error = %e,
                        "periodic key exchange failed; keeping the current key");
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Counters of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Current state.
    pub state: LinkState,
    /// TCP connections made so far.
    pub connections: u64,
    /// Key exchanges approved so far.
    pub key_exchanges: u64,
    /// Messages from the bank that could not be decoded or keyed (logged, then discarded;
    /// the request they answered times out and is reversed).
    pub undecodable: u64,
    /// Answers dropped because their MAC was missing or did not verify (the request they
    /// answered times out and is reversed).
    pub mac_failures: u64,
    /// The MUX counters.
    pub mux: MuxStats,
}

/// All issuer links of the switch.
pub struct IssuerLinks {
    links: HashMap<InstitutionId, Arc<Link>>,
    stan_zero: Stan,
    unmatched: UnmatchedResponses,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl IssuerLinks {
    /// Starts one supervised link per config (call inside a tokio runtime). Fails on an
    /// unknown spec name or a bank configured twice.
    pub fn start(
        configs: Vec<IssuerConfig>,
        hsm: Arc<dyn Hsm>,
        options: LinksOptions,
    ) -> Result<IssuerLinks, LinkError> {
        let (unmatched_tx, unmatched) = UnmatchedResponses::channel(options.unmatched_queue_max);
        let (shutdown, _) = watch::channel(false);
        let stan_zero = Stan::new(0).map_err(|e| LinkError::Config(e.to_string()))?;
        let mut links = HashMap::new();
        let mut tasks = Vec::new();
        let seed = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            % 900_000) as u32;
        for config in configs {
            let spec = iso8583::spec(&config.spec_name)
                .map_err(|e| LinkError::Config(format!("bank {}: {e}", config.institution)))?;
            if links.contains_key(&config.institution) {
                return Err(LinkError::Config(format!(
                    "bank {} configured twice",
                    config.institution
                )));
            }
            let mux = Mux::new(
                config.institution.clone(),
                MuxConfig {
                    in_flight_max: config.in_flight_max,
                    expired_keys_max: options.expired_keys_max,
                },
                unmatched_tx.clone(),
            );
            let (state_tx, _) = watch::channel(LinkState::Down);
            let link = Arc::new(Link {
                keys: RwLock::new(Keys {
                    zpk: KeyGenerations::new(config.zpk.clone()),
                    tak: KeyGenerations::new(config.tak.clone()),
                }),
                config,
                spec,
                switch_institution: options.switch_institution.clone(),
                hsm: Arc::clone(&hsm),
                mux,
                state: AtomicU8::new(LinkState::Down.as_u8()),
                state_tx,
                writer: RwLock::new(None),
                stan: AtomicU32::new(seed),
                stan_zero,
                epoch: Instant::now(),
                last_rx_ms: AtomicU64::new(0),
                key_exchanges: AtomicU64::new(0),
                connections: AtomicU64::new(0),
                undecodable: AtomicU64::new(0),
                mac_failures: AtomicU64::new(0),
            });
            tasks.push(tokio::spawn(supervise(
                Arc::clone(&link),
                shutdown.subscribe(),
            )));
            links.insert(link.config.institution.clone(), link);
        }
        Ok(IssuerLinks {
            links,
            stan_zero,
            unmatched,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }

    fn link(&self, bank: &InstitutionId) -> Result<&Arc<Link>, LinkError> {
        self.links
            .get(bank)
            .ok_or_else(|| LinkError::UnknownBank(bank.clone()))
    }

    /// Sends a request to `bank` and waits at most `timeout` for its response (matched by
    /// MTI class + field 11 + field 41). The request must carry field 11 (see
    /// [`IssuerLinks::next_stan`]).
    pub async fn request(
        &self,
        bank: &InstitutionId,
        msg: OwnedMessage<'static>,
        timeout: Duration,
    ) -> Result<OwnedMessage<'static>, LinkError> {
        self.link(bank)?.exchange(msg, timeout, true).await
    }

    /// True when the bank's link is signed on.
    pub fn is_up(&self, bank: &InstitutionId) -> bool {
        self.state(bank) == Some(LinkState::SignedOn)
    }

    /// The link's state, `None` for an unknown bank.
    pub fn state(&self, bank: &InstitutionId) -> Option<LinkState> {
        self.links.get(bank).map(|l| l.state())
    }

    /// Follows the link's state changes (tests and the console wait on it).
    pub fn watch_state(&self, bank: &InstitutionId) -> Option<watch::Receiver<LinkState>> {
        self.links.get(bank).map(|l| l.state_tx.subscribe())
    }

    fn keys_of<K>(
        &self,
        bank: &InstitutionId,
        pick: impl FnOnce(&Keys) -> &KeyGenerations<K>,
    ) -> Option<KeyGenerations<K>>
    where
        K: Clone,
    {
        Some(pick(&self.links.get(bank)?.keys()).clone())
    }

    /// The current zone PIN key agreed with `bank` (for PIN translation TPK→ZPK).
    pub fn zpk(&self, bank: &InstitutionId) -> Option<Zpk> {
        self.keys_of(bank, |k| &k.zpk)?.current
    }

    /// The zone PIN key replaced by the last key exchange.
    pub fn previous_zpk(&self, bank: &InstitutionId) -> Option<Zpk> {
        self.keys_of(bank, |k| &k.zpk)?.previous
    }

    /// The current TAK of the MACs on `bank`'s link (and the one it replaced).
    pub fn taks(&self, bank: &InstitutionId) -> Option<KeyGenerations<Tak>> {
        self.keys_of(bank, |k| &k.tak)
    }

    /// A fresh STAN for a message the switch originates towards `bank` (1..=999999,
    /// wrapping). For an unknown bank, a STAN that no link will ever match.
    pub fn next_stan(&self, bank: &InstitutionId) -> Stan {
        match self.links.get(bank) {
            Some(l) => l.next_stan(),
            None => self.stan_zero,
        }
    }

    /// Exchanges zone PIN keys with `bank` now (0800, field 70 = 101).
    pub async fn exchange_keys(&self, bank: &InstitutionId) -> Result<(), LinkError> {
        self.link(bank)?.key_exchange(true).await
    }

    /// Sends an echo test to `bank` now.
    pub async fn echo(&self, bank: &InstitutionId) -> Result<(), LinkError> {
        self.link(bank)?.network(NetworkCode::Echo, true).await
    }

    /// Late and unmatched responses of every link, for the owner to drain.
    pub fn late_responses(&self) -> &UnmatchedResponses {
        &self.unmatched
    }

    /// Counters of one link.
    pub fn stats(&self, bank: &InstitutionId) -> Option<LinkStats> {
        self.links.get(bank).map(|l| LinkStats {
            state: l.state(),
            connections: l.connections.load(Ordering::Relaxed),
            key_exchanges: l.key_exchanges.load(Ordering::Relaxed),
            undecodable: l.undecodable.load(Ordering::Relaxed),
            mac_failures: l.mac_failures.load(Ordering::Relaxed),
            mux: l.mux.stats(),
        })
    }

    /// The configured banks.
    pub fn banks(&self) -> impl Iterator<Item = &InstitutionId> {
        self.links.keys()
    }

    /// Signs off every signed-on link (field 70 = 002), closes them and waits for their tasks.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for IssuerLinks {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

#[async_trait::async_trait]
impl crate::gateway::BankGateway for IssuerLinks {
    async fn send(
        &self,
        bank: &InstitutionId,
        request: OwnedMessage<'static>,
        timeout: Duration,
    ) -> Result<OwnedMessage<'static>, crate::gateway::GatewayError> {
        use crate::gateway::GatewayError;
        self.request(bank, request, timeout)
            .await
            .map_err(|e| match e {
                // Sent and unanswered: the bank may have acted, so the caller reverses.
                LinkError::Timeout | LinkError::ConnectionLost => GatewayError::Timeout,
                LinkError::UnknownBank(_) | LinkError::Down | LinkError::NotSignedOn => {
                    GatewayError::Unavailable
                }
                other => GatewayError::Refused(other.to_string()),
            })
    }

    fn is_up(&self, bank: &InstitutionId) -> bool {
        IssuerLinks::is_up(self, bank)
    }

    fn zpk(&self, bank: &InstitutionId) -> Option<Zpk> {
        IssuerLinks::zpk(self, bank)
    }

    fn next_stan(&self, bank: &InstitutionId) -> Stan {
        IssuerLinks::next_stan(self, bank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_caps() {
        let mut b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
            attempt: 0,
        };
        let d0 = b.next();
        assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
        let d1 = b.next();
        assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200));
        for _ in 0..20 {
            assert!(b.next() <= Duration::from_secs(1));
        }
        let capped = b.next();
        assert!(capped >= Duration::from_millis(500));
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }
}
