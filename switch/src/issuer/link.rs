//! One bank's issuer link as the data plane and its supervisor share it: its state, its MUX,
//! its working keys, and what goes over it: requests and their answers, network management
//! (0800) and key exchange.
//!
//! Key exchange: the switch's HSM generates the new ZPK and returns it under the LMK (kept) and
//! under the bank's ZMK (sent in field 48 with its check value, layout in
//! [`crate::wire::network`]). The link switches to the new key only after the bank approves the
//! 0810 with 00; the previous key stays known ([`super::IssuerLinks::previous_zpk`]) because
//! PIN blocks already translated under it may still be in flight, and the bank accepts both
//! until the next exchange.
//!
//! MACs: a link configured with `mac` also exchanges a TAK in every key exchange (generated the
//! same way, sent beside the ZPK in field 48) and then MACs what it sends and checks what it
//! receives for the message classes of [`crate::wire::mac`]. An answer whose MAC is missing or
//! does not verify under the current or the previous TAK is counted
//! ([`super::LinkStats::mac_failures`]), logged without key material and dropped before the MUX
//! sees it: an unauthenticated approval must not be trusted, and an unauthenticated decline
//! must not free the request either (the genuine answer may still come). The request then times
//! out like an unanswered one, which the pipeline answers with 91 and follows with a 0420
//! reversal. Dropping, rather than failing the request at once, also keeps a forged answer from
//! pre-empting the real one. Cost: one HSM MAC per message each way.
//!
//! MAC algorithm: the link's ([`IssuerConfig::mac_algorithm`]: ANSI X9.19, SM4 or AES-CMAC)
//! decides the scheme of the TAKs it generates, and it is said to the bank in field 48 of the
//! sign-on and of every key exchange (`MAL`, [`crate::wire::network`]). The bank answers with
//! its own; when they differ the sign-on fails with [`LinkError::MacAlgorithmMismatch`],
//! counted ([`super::LinkStats::mac_algorithm_mismatches`]) and logged as an error, and the
//! link stays down (it keeps retrying with back-off, so it comes up once a configuration is
//! corrected): a link whose ends MAC differently would drop every answer.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hsm_sim::error::HsmError;
use hsm_sim::keys::{KeyScheme, KeyToken, KeyType, Tak, TypedKey, Zpk};
use hsm_sim::Hsm;
use schemas::domain::{InstitutionId, ResponseCode, Stan};
use schemas::iso8583::{self, Mti, OwnedMessage, Spec};
use tokio::sync::watch;

use super::answer;
use super::mux::{Mux, MuxError, MuxKey};
use super::IssuerConfig;
use crate::wire::mac::{self as link_mac, LinkMacAlgorithm, MacError, Rules};
use crate::wire::network::{
    mac_algorithm_field, mac_algorithm_said, transmission_now, KeyExchangeField, KeyGenerations,
    KeyUnderZmk, NetworkCode,
};
use crate::wire::transport::{self, FrameWriter, TransportError};

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
    pub(super) fn as_u8(self) -> u8 {
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
    /// The bank MACs with another algorithm than the link's: nothing MACed can pass.
    #[error("MAC algorithm mismatch: this link MACs with {ours}, the bank with {theirs}")]
    MacAlgorithmMismatch {
        /// The link's algorithm (configuration).
        ours: LinkMacAlgorithm,
        /// What the bank said in its 0810 (at most 16 printable characters of it: a bank may
        /// name an algorithm this switch does not know).
        theirs: String,
    },
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
pub(super) struct Keys {
    pub(super) zpk: KeyGenerations<Zpk>,
    pub(super) tak: KeyGenerations<Tak>,
}

/// One bank's link: shared between its supervisor task and the data plane.
pub(super) struct Link {
    pub(super) config: IssuerConfig,
    pub(super) spec: &'static Spec,
    pub(super) switch_institution: InstitutionId,
    pub(super) hsm: Arc<dyn Hsm>,
    pub(super) mux: Mux,
    pub(super) state: AtomicU8,
    pub(super) state_tx: watch::Sender<LinkState>,
    pub(super) writer: RwLock<Option<FrameWriter>>,
    pub(super) keys: RwLock<Keys>,
    pub(super) stan: AtomicU32,
    pub(super) stan_zero: Stan,
    pub(super) epoch: Instant,
    pub(super) last_rx_ms: AtomicU64,
    pub(super) key_exchanges: AtomicU64,
    pub(super) connections: AtomicU64,
    pub(super) undecodable: AtomicU64,
    pub(super) mac_failures: AtomicU64,
    pub(super) mac_algorithm_mismatches: AtomicU64,
}

impl Link {
    pub(super) fn state(&self) -> LinkState {
        match self.state.load(Ordering::Acquire) {
            2 => LinkState::SignedOn,
            1 => LinkState::Connecting,
            _ => LinkState::Down,
        }
    }

    pub(super) fn set_state(&self, s: LinkState) {
        self.state.store(s.as_u8(), Ordering::Release);
        self.state_tx.send_replace(s);
        tracing::info!(bank = %self.config.institution, state = ?s, "issuer link state");
    }

    pub(super) fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_rx_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_rx_ms.load(Ordering::Relaxed)))
    }

    pub(super) fn next_stan(&self) -> Stan {
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

    pub(super) fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
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

    pub(super) fn set_writer(&self, w: Option<FrameWriter>) {
        *self
            .writer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = w;
    }

    /// Sends `msg` and waits for its response. `require_signed_on` is false only for the
    /// sign-on and the key exchange that precede the SignedOn state.
    pub(super) async fn exchange(
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

    pub(super) async fn network(
        &self,
        code: NetworkCode,
        require_signed_on: bool,
    ) -> Result<(), LinkError> {
        let m = self.network_message(code)?;
        let resp = self
            .exchange(m, self.config.network_timeout, require_signed_on)
            .await?;
        approved(&resp)
    }

    /// Signs on (field 70 = 001), saying the link's MAC algorithm in field 48 when it MACs,
    /// and checks the one the bank answers with.
    pub(super) async fn sign_on(&self) -> Result<(), LinkError> {
        let mut m = self.network_message(NetworkCode::SignOn)?;
        if self.config.mac {
            m.set_str(48, &mac_algorithm_field(self.config.mac_algorithm))?;
        }
        let resp = self.exchange(m, self.config.network_timeout, false).await?;
        self.agree_on_mac_algorithm(&resp)?;
        approved(&resp)
    }

    /// Refuses an 0810 whose field 48 names another MAC algorithm than the link's, whatever
    /// its response code; an 0810 that names none agrees (a bank that does not say it is
    /// taken at its word that it follows the link). Loud: an error log and a counter.
    fn agree_on_mac_algorithm(&self, resp: &OwnedMessage<'_>) -> Result<(), LinkError> {
        if !self.config.mac {
            return Ok(());
        }
        let ours = self.config.mac_algorithm;
        let said = match resp.get_str(48) {
            Ok(f) => mac_algorithm_said(&f),
            Err(_) => None,
        };
        match said {
            Some(said) if LinkMacAlgorithm::parse(&said) != Some(ours) => {
                let theirs: String = said
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(16)
                    .collect();
                self.mac_algorithm_mismatches
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(bank = %self.config.institution, link = %ours, bank_says = %theirs,
                    "MAC algorithm mismatch: the link stays down until both configurations \
                     name the same mac_algorithm");
                Err(LinkError::MacAlgorithmMismatch { ours, theirs })
            }
            _ => Ok(()),
        }
    }

    /// A new key of `key_type` and `scheme` from the HSM: its LMK token (kept) and the same
    /// key under the bank's ZMK with its check value (sent). The clear key never leaves the
    /// HSM.
    async fn new_zone_key(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
    ) -> Result<(KeyToken, KeyUnderZmk), LinkError> {
        let generated = self
            .hsm
            .generate_key(key_type, scheme, Some(&self.config.zmk))
            .await?;
        let under_zmk = generated.under_zmk.ok_or(HsmError::InvalidInput)?;
        let kcv = hex_upper(&generated.check_value);
        Ok((generated.token, KeyUnderZmk { under_zmk, kcv }))
    }

    pub(super) async fn key_exchange(&self, require_signed_on: bool) -> Result<(), LinkError> {
        let (zpk, zpk_sent) = self.new_zone_key(KeyType::Zpk, KeyScheme::U).await?;
        let algorithm = self.config.mac_algorithm;
        let tak = if self.config.mac {
            Some(
                self.new_zone_key(KeyType::Tak, algorithm.key_scheme())
                    .await?,
            )
        } else {
            None
        };
        let field48 = KeyExchangeField {
            zpk: zpk_sent.clone(),
            tak: tak.as_ref().map(|(_, sent)| sent.clone()),
            mac_algorithm: self.config.mac.then_some(algorithm),
        }
        .encode();
        let mut m = self.network_message(NetworkCode::KeyExchange)?;
        m.set_str(48, &field48)?;
        let resp = self
            .exchange(m, self.config.network_timeout, require_signed_on)
            .await?;
        self.agree_on_mac_algorithm(&resp)?;
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
            tak_kcv = ?tak_kcv, mac_algorithm = %algorithm, "zone keys changed");
        Ok(())
    }

    /// Answers a request the bank originated (echo or sign-on from its side): 0810 with 00.
    fn answer_bank_request(&self, msg: &iso8583::Message<'_>, writer: &FrameWriter) {
        match answer::reply_to_bank_request(self.spec, msg) {
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

    pub(super) async fn on_message(&self, bytes: bytes::Bytes, writer: &FrameWriter) {
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
        match answer::answer_of(self.spec, &msg) {
            Ok((key, owned)) => {
                self.mux.deliver(key, owned);
            }
            Err(e) => {
                self.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(bank = %self.config.institution, error = %e,
                    "answer dropped: no matching key or not copyable");
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
