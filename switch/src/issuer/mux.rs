//! The MUX of one issuer link: matches each response to the request waiting for it.
//!
//! Why this exists: many requests share one connection to a bank and the bank answers in any
//! order, so a response is matched by a key, in the spirit of jPOS QMUX: the MTI's version and
//! class digits (`02` for 0200/0210, `04` for 0420/0421/0430, `05` for 0500/0510, `08` for
//! 0800/0810; ISO 8583:1987 §4.1), the STAN (field 11) and the terminal (field 41, absent in
//! network management). Everything has a bound: requests in flight per link
//! ([`MuxConfig::in_flight_max`], a typed refusal when full), the record of recently expired
//! keys, and the queue of late and unmatched responses. A response nobody waits for is never
//! dropped silently: it goes to the [`UnmatchedResponses`] queue for the owner to drain (or,
//! when that queue is full, is counted in [`MuxStats::unmatched_overflow`] and logged).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use schemas::domain::InstitutionId;
use schemas::iso8583::{Message, Mti, OwnedMessage};
use tokio::sync::{mpsc, oneshot};

/// Bounds of one MUX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxConfig {
    /// Most requests waiting for a response at once; one more is refused with
    /// [`MuxError::InFlightFull`].
    pub in_flight_max: usize,
    /// How many expired keys are remembered, so that a response arriving after its timeout is
    /// classified as late rather than unmatched.
    pub expired_keys_max: usize,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            in_flight_max: 2048,
            expired_keys_max: 8192,
        }
    }
}

/// What a response is matched on: MTI version + class, STAN, terminal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MuxKey {
    class: [u8; 2],
    stan: u32,
    terminal: Option<[u8; 8]>,
}

impl fmt::Debug for MuxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = std::str::from_utf8(&self.class).unwrap_or("??");
        let terminal = self
            .terminal
            .as_ref()
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or("-");
        write!(f, "MuxKey({class}xx/{:06}/{terminal})", self.stan)
    }
}

impl MuxKey {
    /// Builds a key from its parts (field 41 must be 8 bytes when present).
    pub fn new(mti: Mti, stan: u32, terminal: Option<&[u8]>) -> Result<MuxKey, MuxError> {
        let b = mti.as_bytes();
        let terminal = match terminal {
            None => None,
            Some(t) => Some(<[u8; 8]>::try_from(t).map_err(|_| MuxError::NoKey("field 41"))?),
        };
        Ok(MuxKey {
            class: [b[0], b[1]],
            stan,
            terminal,
        })
    }

    /// The key of a request about to be sent.
    pub fn of_request(msg: &OwnedMessage<'_>) -> Result<MuxKey, MuxError> {
        let stan = msg.get_u64(11).map_err(|_| MuxError::NoKey("field 11"))?;
        let stan = u32::try_from(stan).map_err(|_| MuxError::NoKey("field 11"))?;
        let terminal = if msg.has(41) {
            Some(msg.get(41).map_err(|_| MuxError::NoKey("field 41"))?)
        } else {
            None
        };
        MuxKey::new(msg.mti(), stan, terminal)
    }

    /// The key of a received response.
    pub fn of_response(msg: &Message<'_>) -> Result<MuxKey, MuxError> {
        let stan = msg.get_u64(11).map_err(|_| MuxError::NoKey("field 11"))?;
        let stan = u32::try_from(stan).map_err(|_| MuxError::NoKey("field 11"))?;
        let terminal = if msg.has(41) {
            Some(msg.get(41).map_err(|_| MuxError::NoKey("field 41"))?)
        } else {
            None
        };
        MuxKey::new(msg.mti(), stan, terminal.as_deref())
    }

    /// The STAN.
    pub fn stan(&self) -> u32 {
        self.stan
    }
}

/// Why a request could not be registered or was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// The link already has `in_flight_max` requests waiting.
    #[error("{0} requests already in flight on this link")]
    InFlightFull(usize),
    /// A request with the same key is already waiting.
    #[error("a request with the same MTI class, STAN and terminal is already in flight")]
    DuplicateInFlight,
    /// The message lacks a field of the key.
    #[error("message has no usable {0} for matching")]
    NoKey(&'static str),
    /// No response within the timeout.
    #[error("no response within the timeout")]
    Timeout,
    /// The connection closed while the request was waiting.
    #[error("connection lost while waiting for the response")]
    ConnectionLost,
}

/// Why a response reached the unmatched queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmatchedKind {
    /// Its request had already timed out (or its connection had been lost).
    Late,
    /// No request with its key was ever waiting (as far as the bounded memory knows).
    Unmatched,
}

/// A response that found nobody waiting for it.
#[derive(Debug)]
pub struct UnmatchedResponse {
    /// The bank whose link received it.
    pub bank: InstitutionId,
    /// Late or unmatched.
    pub kind: UnmatchedKind,
    /// Its key.
    pub key: MuxKey,
    /// When it arrived.
    pub received_at: SystemTime,
    /// The message (masked in `Debug`).
    pub message: OwnedMessage<'static>,
}

/// The receiving end of the late/unmatched queue, shared by every link of an
/// [`crate::issuer::IssuerLinks`].
pub struct UnmatchedResponses {
    rx: Mutex<mpsc::Receiver<UnmatchedResponse>>,
}

impl UnmatchedResponses {
    /// A bounded queue holding at most `capacity` responses, and its sending side.
    pub fn channel(capacity: usize) -> (mpsc::Sender<UnmatchedResponse>, UnmatchedResponses) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (tx, UnmatchedResponses { rx: Mutex::new(rx) })
    }

    /// Takes up to `max` queued responses without waiting.
    pub fn drain(&self, max: usize) -> Vec<UnmatchedResponse> {
        let mut out = Vec::new();
        if let Ok(mut rx) = self.rx.lock() {
            while out.len() < max {
                match rx.try_recv() {
                    Ok(r) => out.push(r),
                    Err(_) => break,
                }
            }
        }
        out
    }
}

/// Counters of one MUX (monotonic, except `in_flight`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Requests waiting now.
    pub in_flight: u64,
    /// Responses delivered to their request.
    pub matched: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Responses that arrived after their request had given up.
    pub late: u64,
    /// Responses matching no request.
    pub unmatched: u64,
    /// Late/unmatched responses not queued because the queue was full (logged instead).
    pub unmatched_overflow: u64,
    /// Requests refused because `in_flight_max` were waiting.
    pub rejected_full: u64,
    /// Requests refused because their key was already waiting.
    pub rejected_duplicate: u64,
}

#[derive(Default)]
struct Counters {
    matched: AtomicU64,
    timeouts: AtomicU64,
    late: AtomicU64,
    unmatched: AtomicU64,
    unmatched_overflow: AtomicU64,
    rejected_full: AtomicU64,
    rejected_duplicate: AtomicU64,
}

type Waiter = oneshot::Sender<OwnedMessage<'static>>;

#[derive(Default)]
struct Table {
    pending: HashMap<MuxKey, Waiter>,
    expired: VecDeque<MuxKey>,
    expired_set: HashSet<MuxKey>,
}

impl Table {
    fn remember_expired(&mut self, key: MuxKey, max: usize) {
        if max == 0 || !self.expired_set.insert(key) {
            return;
        }
        self.expired.push_back(key);
        while self.expired.len() > max {
            if let Some(old) = self.expired.pop_front() {
                self.expired_set.remove(&old);
            }
        }
    }
}

struct Shared {
    bank: InstitutionId,
    config: MuxConfig,
    table: Mutex<Table>,
    unmatched: mpsc::Sender<UnmatchedResponse>,
    counters: Counters,
}

/// The MUX of one link. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Mux {
    shared: Arc<Shared>,
}

/// What [`Mux::deliver`] did with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to its waiting request.
    Matched,
    /// Sent to the unmatched queue (or counted as overflow).
    Unmatched(UnmatchedKind),
}

impl Mux {
    /// A MUX for the link to `bank`, sending late/unmatched responses to `unmatched`.
    pub fn new(
        bank: InstitutionId,
        config: MuxConfig,
        unmatched: mpsc::Sender<UnmatchedResponse>,
    ) -> Mux {
        Mux {
            shared: Arc::new(Shared {
                bank,
                config,
                table: Mutex::new(Table::default()),
                unmatched,
                counters: Counters::default(),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding this lock cannot leave the table inconsistent (each operation
        // is a single map update), so a poisoned lock is used as is.
        self.shared
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a request about to be sent; the returned [`PendingResponse`] waits for it.
    pub fn register(&self, key: MuxKey) -> Result<PendingResponse, MuxError> {
        let (tx, rx) = oneshot::channel();
        let mut t = self.table();
        if t.pending.len() >= self.shared.config.in_flight_max {
            drop(t);
            self.shared
                .counters
                .rejected_full
                .fetch_add(1, Ordering::Relaxed);
            return Err(MuxError::InFlightFull(self.shared.config.in_flight_max));
        }
        if t.pending.contains_key(&key) {
            drop(t);
            self.shared
                .counters
                .rejected_duplicate
                .fetch_add(1, Ordering::Relaxed);
            return Err(MuxError::DuplicateInFlight);
        }
        t.pending.insert(key, tx);
        t.expired_set.remove(&key);
        Ok(PendingResponse {
            mux: self.clone(),
            key,
            rx: Some(rx),
        })
    }

    /// Hands a received response to its request, or to the unmatched queue.
    pub fn deliver(&self, key: MuxKey, message: OwnedMessage<'static>) -> Delivery {
        let waiter = {
            let mut t = self.table();
            match t.pending.remove(&key) {
                Some(w) => Ok(w),
                None => Err(if t.expired_set.contains(&key) {
                    UnmatchedKind::Late
                } else {
                    UnmatchedKind::Unmatched
                }),
            }
        };
        let (kind, message) = match waiter {
            Ok(w) => match w.send(message) {
                Ok(()) => {
                    self.shared.counters.matched.fetch_add(1, Ordering::Relaxed);
                    return Delivery::Matched;
                }
                // The request gave up between our lookup and the send.
                Err(message) => (UnmatchedKind::Late, message),
            },
            Err(kind) => (kind, message),
        };
        self.park(kind, key, message);
        Delivery::Unmatched(kind)
    }

    fn park(&self, kind: UnmatchedKind, key: MuxKey, message: OwnedMessage<'static>) {
        let c = &self.shared.counters;
        match kind {
            UnmatchedKind::Late => c.late.fetch_add(1, Ordering::Relaxed),
            UnmatchedKind::Unmatched => c.unmatched.fetch_add(1, Ordering::Relaxed),
        };
        let r = UnmatchedResponse {
            bank: self.shared.bank.clone(),
            kind,
            key,
            received_at: SystemTime::now(),
            message,
        };
        if self.shared.unmatched.try_send(r).is_err() {
            c.unmatched_overflow.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(bank = %self.shared.bank, ?kind, ?key,
                "unmatched-response queue full; response counted and discarded");
        }
    }

    /// Fails every waiting request with [`MuxError::ConnectionLost`] (their connection is
    /// gone); their keys are remembered so a response still arriving is classified late.
    pub fn fail_all(&self) {
        let mut t = self.table();
        let keys: Vec<MuxKey> = t.pending.keys().copied().collect();
        t.pending.clear();
        let max = self.shared.config.expired_keys_max;
        for k in keys {
            t.remember_expired(k, max);
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MuxStats {
        let c = &self.shared.counters;
        MuxStats {
            in_flight: self.table().pending.len() as u64,
            matched: c.matched.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            late: c.late.load(Ordering::Relaxed),
            unmatched: c.unmatched.load(Ordering::Relaxed),
            unmatched_overflow: c.unmatched_overflow.load(Ordering::Relaxed),
            rejected_full: c.rejected_full.load(Ordering::Relaxed),
            rejected_duplicate: c.rejected_duplicate.load(Ordering::Relaxed),
        }
    }

    fn expire(&self, key: MuxKey) {
        let mut t = self.table();
        if t.pending.remove(&key).is_some() {
            let max = self.shared.config.expired_keys_max;
            t.remember_expired(key, max);
        }
    }
}

/// A registered request waiting for its response. Dropping it unregisters the key (and
/// remembers it as expired, so a response arriving later is classified late).
pub struct PendingResponse {
    mux: Mux,
    key: MuxKey,
    rx: Option<oneshot::Receiver<OwnedMessage<'static>>>,
}

impl PendingResponse {
    /// The key it waits on.
    pub fn key(&self) -> MuxKey {
        self.key
    }

    /// Waits at most `timeout` for the response.
    pub async fn wait(mut self, timeout: Duration) -> Result<OwnedMessage<'static>, MuxError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(MuxError::ConnectionLost);
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(msg)) => {
                self.rx = None;
                Ok(msg)
            }
            Ok(Err(_)) => {
                self.rx = None;
                Err(MuxError::ConnectionLost)
            }
            Err(_) => {
                self.mux
                    .shared
                    .counters
                    .timeouts
                    .fetch_add(1, Ordering::Relaxed);
                Err(MuxError::Timeout)
            }
        }
    }
}

impl Drop for PendingResponse {
    fn drop(&mut self) {
        if self.rx.is_some() {
            self.mux.expire(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::iso8583::spec;

    fn msg(mti: &str, stan: u64, terminal: Option<&str>) -> OwnedMessage<'static> {
        let s = spec("ssc87").expect("spec");
        let mut m = s.message(Mti::new(mti).expect("mti"));
        m.set_u64(11, stan).expect("11");
        if let Some(t) = terminal {
            m.set_str(41, t).expect("41");
        }
        m
    }

    fn mux(in_flight_max: usize) -> (Mux, UnmatchedResponses) {
        let (tx, rx) = UnmatchedResponses::channel(16);
        let bank = InstitutionId::parse("0103").expect("id");
        let m = Mux::new(
            bank,
            MuxConfig {
                in_flight_max,
                expired_keys_max: 4,
            },
            tx,
        );
        (m, rx)
    }

    #[test]
    fn request_and_response_keys_agree_across_the_mti_class() {
        let req = MuxKey::of_request(&msg("0420", 7, Some("KIOSK001"))).expect("key");
        let resp = MuxKey::of_request(&msg("0430", 7, Some("KIOSK001"))).expect("key");
        assert_eq!(req, resp);
        let other_terminal = MuxKey::of_request(&msg("0430", 7, Some("KIOSK002"))).expect("k");
        assert_ne!(req, other_terminal);
        let other_class = MuxKey::of_request(&msg("0210", 7, Some("KIOSK001"))).expect("k");
        assert_ne!(req, other_class);
        assert!(MuxKey::of_request(&msg("0800", 7, None)).is_ok());
    }

    #[tokio::test]
    async fn a_response_reaches_its_request() {
        let (m, _late) = mux(4);
        let key = MuxKey::of_request(&msg("0200", 1, Some("T0000001"))).expect("key");
        let p = m.register(key).expect("register");
        assert_eq!(
            m.deliver(key, msg("0210", 1, Some("T0000001"))),
            Delivery::Matched
        );
        let got = p.wait(Duration::from_secs(1)).await.expect("response");
        assert_eq!(got.mti().as_str(), "0210");
        assert_eq!(m.stats().in_flight, 0);
    }

    #[tokio::test]
    async fn full_and_duplicate_registrations_are_refused() {
        let (m, _late) = mux(2);
        let k1 = MuxKey::of_request(&msg("0200", 1, Some("T0000001"))).expect("key");
        let k2 = MuxKey::of_request(&msg("0200", 2, Some("T0000001"))).expect("key");
        let k3 = MuxKey::of_request(&msg("0200", 3, Some("T0000001"))).expect("key");
        let _p1 = m.register(k1).expect("first");
        assert_eq!(m.register(k1).err(), Some(MuxError::DuplicateInFlight));
        let _p2 = m.register(k2).expect("second");
        assert_eq!(m.register(k3).err(), Some(MuxError::InFlightFull(2)));
        let s = m.stats();
        assert_eq!((s.rejected_full, s.rejected_duplicate), (1, 1));
    }

    #[tokio::test]
    async fn late_and_unmatched_responses_are_queued_not_dropped() {
        let (m, late) = mux(4);
        let key = MuxKey::of_request(&msg("0200", 9, Some("T0000001"))).expect("key");
        let p = m.register(key).expect("register");
        assert_eq!(
            p.wait(Duration::from_millis(10)).await.err(),
            Some(MuxError::Timeout)
        );
        assert_eq!(
            m.deliver(key, msg("0210", 9, Some("T0000001"))),
            Delivery::Unmatched(UnmatchedKind::Late)
        );
        let stray = MuxKey::of_request(&msg("0210", 10, Some("T0000001"))).expect("key");
        assert_eq!(
            m.deliver(stray, msg("0210", 10, Some("T0000001"))),
            Delivery::Unmatched(UnmatchedKind::Unmatched)
        );
        let parked = late.drain(10);
        assert_eq!(parked.len(), 2);
        assert_eq!(parked[0].kind, UnmatchedKind::Late);
        assert_eq!(parked[1].kind, UnmatchedKind::Unmatched);
        let s = m.stats();
        assert_eq!((s.timeouts, s.late, s.unmatched), (1, 1, 1));
    }

    #[tokio::test]
    async fn a_lost_connection_fails_waiting_requests_at_once() {
        let (m, _late) = mux(4);
        let key = MuxKey::of_request(&msg("0200", 5, Some("T0000001"))).expect("key");
        let p = m.register(key).expect("register");
        m.fail_all();
        assert_eq!(
            p.wait(Duration::from_secs(30)).await.err(),
            Some(MuxError::ConnectionLost)
        );
        assert_eq!(
            m.deliver(key, msg("0210", 5, Some("T0000001"))),
            Delivery::Unmatched(UnmatchedKind::Late)
        );
    }

    #[tokio::test]
    async fn the_unmatched_queue_is_bounded_and_overflow_is_counted() {
        let (tx, late) = UnmatchedResponses::channel(1);
        let m = Mux::new(
            InstitutionId::parse("0103").expect("id"),
            MuxConfig::default(),
            tx,
        );
        for stan in 1..=3 {
            let k = MuxKey::of_request(&msg("0210", stan, None)).expect("key");
            m.deliver(k, msg("0210", stan, None));
        }
        assert_eq!(late.drain(10).len(), 1);
        assert_eq!(m.stats().unmatched_overflow, 2);
    }
}
