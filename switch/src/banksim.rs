//! A simulated bank issuer host: the other end of an issuer link, for the demo and the tests.
//!
//! Why this exists: the switch's bank legs, reversals, key exchanges and reconciliation need a
//! counterpart that behaves like a bank's host without a bank. One [`BankSim`] listens on its
//! own port, speaks `ssc87` (or another spec) with the link's framing, keeps accounts in memory
//! keyed by PAN with balances in fen, verifies PINs through its own [`Hsm`] (ISO 9564 format 0
//! PIN block under the current ZPK, IBM 3624 offset against its card records) and answers:
//!
//! | request | answer |
//! |---|---|
//! | 0800 field 70 = 001 / 002 / 301 | 0810 with 00 (sign-on, sign-off, echo) |
//! | 0800 field 70 = 101 | imports the new ZPK (and TAK, when field 48 has one) under its ZMK and checks their check values: 00, or 30 when a key or its check value is wrong (then no key changes) |
//! | 0200, processing code 00xxxx (purchase) | PIN checked (55), card known (14), funds (51); 00 debits and returns field 38 and field 54 |
//! | 0200, 31xxxx (balance inquiry) | PIN checked; 00 with the balance in field 54 |
//! | 0200, 20xxxx (refund), 21xxxx (benefit credit) | credit to the account, no PIN |
//! | 0420/0421 (and 0400) | 0430 (0410): undoes the original once (found by field 37 + field 2, else by field 90 + 41); a repeat answers 00 without a second effect; 25 when the original is unknown |
//! | 0220/0221, 0120/0121 (stand-in advices) | 0230 / 0130 with 00: posts what the switch approved on the bank's behalf once (keyed like an original, field 37 + field 2), whatever the balance (the approval stands); a repeat, or an advice of something already posted, changes nothing; a later 0420 undoes it like any original |
//! | 0500 | 0510 with the bank's own totals in 74-77/86-89 and field 66 = 1 when they equal the switch's, 2 otherwise |
//!
//! Processing codes are documented in `schemas/iso8583/ssc87.md` ("Bank legs"). Field 54 is
//! the ISO 8583:1987 additional amount: account type `10`, amount type `02` (available
//! balance), currency `156`, sign `C`/`D`, 12 digits of fen.
//!
//! With `mac` on, requests of the MACed classes ([`crate::link::mac`]) must carry a MAC that
//! verifies under the current or the previous TAK, else they are answered A0 and not
//! processed; answers are MACed under the key that verified the request (so a request MACed
//! just before a key change gets an answer the switch can still verify); see `banksim::mac`.
//!
//! Fault knobs ([`BankSimFaults`]) let tests delay answers, never answer, refuse connections,
//! close a connection after N messages or corrupt the MAC of its answers. The demo's configuration, clear demo keys included,
//! is plain data ([`BankSimData`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use hsm_sim::hsm::{PinBlockIn, PinVerificationMethod};
use hsm_sim::keys::{KeyScheme, KeyToken, KeyType, PinKey, Pvk, Tak, TypedKey, Zmk, Zpk};
use hsm_sim::pin::{account_number_12, EncryptedPinBlock, PinBlockFormat};
use hsm_sim::{Hsm, HsmError, SoftHsm};
use schemas::domain::{InstitutionId, Pan};
use schemas::iso8583::{self, Message, OwnedMessage, Spec};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::link::network::{KeyExchangeField, KeyGenerations, KeyUnderZmk, NetworkCode};
use crate::link::transport::{self, FrameWriter, Framing};

mod mac;

/// Most approved transactions remembered for reversals; the oldest are forgotten first.
pub const AUTHORIZATIONS_MAX: usize = 1_000_000;
/// Most requests processed at once on one connection.
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 4096;

/// One account of the bank, as seeded.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSeed {
    /// PAN of the card's bank application (digits).
    pub pan: String,
    /// Opening balance in fen.
    pub balance_fen: i64,
    /// IBM 3624 PIN offset (4..=12 digits) under the bank's PVK.
    pub pin_offset: String,
}

impl std::fmt::Debug for AccountSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = Pan::parse(&self.pan)
            .map(|p| p.masked())
            .unwrap_or_else(|_| "invalid".into());
        write!(
            f,
            "AccountSeed {{ pan: {masked}, balance_fen: {} }}",
            self.balance_fen
        )
    }
}

/// The keys of a simulated bank, as LMK tokens of its own HSM.
#[derive(Debug, Clone)]
pub struct BankKeys {
    /// Zone master key shared with the switch.
    pub zmk: Zmk,
    /// Zone PIN key agreed out of band, until the first key exchange.
    pub zpk: Option<Zpk>,
    /// TAK of the link's MACs agreed out of band, until the first key exchange.
    pub tak: Option<Tak>,
    /// PIN verification key.
    pub pvk: Pvk,
}

/// Configuration of one simulated bank host.
#[derive(Debug, Clone)]
pub struct BankSimConfig {
    /// The bank's institution id.
    pub institution: InstitutionId,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// ISO 8583 spec name.
    pub spec_name: String,
    /// Framing.
    pub framing: Framing,
    /// Keys.
    pub keys: BankKeys,
    /// IBM 3624 decimalisation table (16 digits).
    pub decimalisation_table: String,
    /// PIN digits compared (4..=12).
    pub pin_check_length: u8,
    /// Accounts.
    pub accounts: Vec<AccountSeed>,
    /// Most simultaneous connections; more are closed at once.
    pub connections_max: usize,
    /// Require MACs on requests and MAC the answers ([`crate::link::mac`]).
    pub mac: bool,
}

/// A bank's configuration as plain data with clear keys (demo and tests only: clear keys have
/// no place in production configuration). `Debug` hides the keys.
#[derive(Clone, Serialize, Deserialize)]
pub struct BankSimData {
    /// Institution id.
    pub institution: String,
    /// Listen address.
    pub listen: String,
    /// Clear ZMK, 32 hex digits (odd parity).
    pub zmk_clear_hex: String,
    /// Clear initial ZPK, 32 hex digits, if agreed out of band.
    pub zpk_clear_hex: Option<String>,
    /// Clear initial TAK, 32 hex digits, if agreed out of band.
    #[serde(default)]
    pub tak_clear_hex: Option<String>,
    /// Require and send MACs.
    #[serde(default)]
    pub mac: bool,
    /// Clear PVK, 32 hex digits.
    pub pvk_clear_hex: String,
    /// Decimalisation table.
    pub decimalisation_table: String,
    /// Accounts.
    pub accounts: Vec<AccountSeed>,
}

impl std::fmt::Debug for BankSimData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BankSimData {{ institution: {}, listen: {}, keys: ****, accounts: {:?} }}",
            self.institution, self.listen, self.accounts
        )
    }
}

impl BankSimData {
    /// Wraps the clear keys under `hsm`'s LMK and builds the configuration.
    pub fn into_config(self, hsm: &SoftHsm) -> Result<BankSimConfig, BankSimError> {
        let zmk = Zmk::from_token(hsm.import_clear_key(
            KeyType::Zmk,
            KeyScheme::U,
            &self.zmk_clear_hex,
        )?);
        let working = |key_type, clear: &Option<String>| {
            clear
                .as_deref()
                .map(|h| hsm.import_clear_key(key_type, KeyScheme::U, h))
                .transpose()
        };
        let zpk = working(KeyType::Zpk, &self.zpk_clear_hex)?.map(Zpk::from_token);
        let tak = working(KeyType::Tak, &self.tak_clear_hex)?.map(Tak::from_token);
        let pvk = Pvk::from_token(hsm.import_clear_key(
            KeyType::Pvk,
            KeyScheme::U,
            &self.pvk_clear_hex,
        )?);
        Ok(BankSimConfig {
            institution: InstitutionId::parse(&self.institution)
                .map_err(|e| BankSimError::Config(e.to_string()))?,
            listen: self.listen,
            spec_name: "ssc87".into(),
            framing: Framing::default(),
            keys: BankKeys { zmk, zpk, tak, pvk },
            decimalisation_table: self.decimalisation_table,
            pin_check_length: 4,
            accounts: self.accounts,
            connections_max: 64,
            mac: self.mac,
        })
    }
}

/// The IBM 3624 offset of `pin` for `pan` under `pvk` (issuance helper for seeding demo and
/// test accounts; the PIN is encrypted under the LMK at once and never stored).
pub fn pin_offset_for(
    hsm: &SoftHsm,
    pvk: &Pvk,
    pan: &str,
    pin: &str,
    decimalisation_table: &str,
) -> Result<String, HsmError> {
    let lmk_pin = hsm.encrypt_clear_pin_under_lmk(pin, pan)?;
    let validation = account_number_12(pan)?;
    hsm.generate_ibm_offset_lmk(pvk, &lmk_pin, pan, decimalisation_table, &validation)
}

/// Why a bank simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum BankSimError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A key could not be loaded.
    #[error("key: {0}")]
    Key(#[from] HsmError),
    /// Binding the port failed.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

/// Fault injection, changeable while running.
#[derive(Debug, Default)]
pub struct BankSimFaults {
    delay_ms: AtomicU64,
    drop_responses: AtomicBool,
    refuse_connections: AtomicBool,
    close_after_messages: AtomicU64,
    corrupt_mac: AtomicBool,
}

impl BankSimFaults {
    /// Delays every answer by `d`.
    pub fn set_response_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::Relaxed);
    }
    /// Processes requests but never answers them (`true`) or answers again (`false`).
    pub fn set_drop_responses(&self, on: bool) {
        self.drop_responses.store(on, Ordering::Relaxed);
    }
    /// Closes new connections at once.
    pub fn set_refuse_connections(&self, on: bool) {
        self.refuse_connections.store(on, Ordering::Relaxed);
    }
    /// Closes each connection after it has received `n` messages (0 = never).
    pub fn set_close_after_messages(&self, n: u64) {
        self.close_after_messages.store(n, Ordering::Relaxed);
    }
    /// Flips a bit of the MAC of every MACed answer (`true`), as a line fault or a forger
    /// without the key would.
    pub fn set_corrupt_mac(&self, on: bool) {
        self.corrupt_mac.store(on, Ordering::Relaxed);
    }
}

/// Reconciliation totals of the bank (ISO 8583:1987 fields 74-77 and 86-89), the same
/// figures the switch keeps for its acquirers.
pub type BankTotals = crate::store::ReconciliationTotals;

/// Counters of a simulated bank.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BankSimStats {
    /// Connections accepted.
    pub connections: u64,
    /// Messages received.
    pub messages: u64,
    /// Sign-ons answered.
    pub sign_ons: u64,
    /// Sign-offs answered.
    pub sign_offs: u64,
    /// Echo tests answered.
    pub echoes: u64,
    /// Key exchanges approved.
    pub key_exchanges: u64,
    /// Reversals that undid a transaction.
    pub reversals_applied: u64,
    /// Reversal messages received (including repeats).
    pub reversal_messages: u64,
    /// Of those, repeats (0421).
    pub reversal_repeats: u64,
    /// Requests refused with A0 (MAC missing or wrong).
    pub mac_failures: u64,
    /// Stand-in advices that posted a transaction.
    pub advices_applied: u64,
    /// Advice messages received (including repeats).
    pub advice_messages: u64,
    /// Of those, repeats (0121/0221).
    pub advice_repeats: u64,
}

struct Account {
    balance_fen: i64,
    pin_offset: String,
}

/// A transaction the bank approved, remembered for its reversal.
struct Authorization {
    pan: String,
    /// Signed effect on the balance (negative for a debit).
    delta_fen: i64,
    reversed: bool,
}

struct Ledger {
    accounts: HashMap<String, Account>,
    authorizations: HashMap<String, Authorization>,
    order: VecDeque<String>,
    totals: BankTotals,
    auth_code: u64,
}

impl Ledger {
    fn remember(&mut self, key: String, auth: Authorization) {
        if self.authorizations.insert(key.clone(), auth).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > AUTHORIZATIONS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.authorizations.remove(&old);
            }
        }
    }
}

struct ZoneKeys {
    zpk: KeyGenerations<Zpk>,
    tak: KeyGenerations<Tak>,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    messages: AtomicU64,
    sign_ons: AtomicU64,
    sign_offs: AtomicU64,
    echoes: AtomicU64,
    key_exchanges: AtomicU64,
    reversals_applied: AtomicU64,
    reversal_messages: AtomicU64,
    reversal_repeats: AtomicU64,
    mac_failures: AtomicU64,
    advices_applied: AtomicU64,
    advice_messages: AtomicU64,
    advice_repeats: AtomicU64,
}

struct Shared {
    config: BankSimConfig,
    spec: &'static Spec,
    hsm: Arc<dyn Hsm>,
    ledger: Mutex<Ledger>,
    keys: Mutex<ZoneKeys>,
    faults: BankSimFaults,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running simulated bank host.
pub struct BankSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: tokio::sync::Mutex<Option<Running>>,
}

impl BankSim {
    /// Binds the port and starts serving.
    pub async fn start(config: BankSimConfig, hsm: Arc<dyn Hsm>) -> Result<BankSim, BankSimError> {
        let spec =
            iso8583::spec(&config.spec_name).map_err(|e| BankSimError::Config(e.to_string()))?;
        let mut accounts = HashMap::new();
        for a in &config.accounts {
            Pan::parse(&a.pan).map_err(|e| BankSimError::Config(e.to_string()))?;
            accounts.insert(
                a.pan.clone(),
                Account {
                    balance_fen: a.balance_fen,
                    pin_offset: a.pin_offset.clone(),
                },
            );
        }
        let listener = TcpListener::bind(&config.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            keys: Mutex::new(ZoneKeys {
                zpk: KeyGenerations::new(config.keys.zpk.clone()),
                tak: KeyGenerations::new(config.keys.tak.clone()),
            }),
            config,
            spec,
            hsm,
            ledger: Mutex::new(Ledger {
                accounts,
                authorizations: HashMap::new(),
                order: VecDeque::new(),
                totals: BankTotals::default(),
                auth_code: 0,
            }),
            faults: BankSimFaults::default(),
            counters: Counters::default(),
        });
        let sim = BankSim {
            shared,
            addr,
            running: tokio::sync::Mutex::new(None),
        };
        *sim.running.lock().await = Some(sim.serve(listener));
        Ok(sim)
    }

    fn serve(&self, listener: TcpListener) -> Running {
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(Arc::clone(&self.shared), listener, rx));
        Running { shutdown, task }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The institution id.
    pub fn institution(&self) -> &InstitutionId {
        &self.shared.config.institution
    }

    /// Fault knobs.
    pub fn faults(&self) -> &BankSimFaults {
        &self.shared.faults
    }

    /// Stops listening and closes every connection (accounts and keys are kept).
    pub async fn stop(&self) {
        if let Some(r) = self.running.lock().await.take() {
            r.shutdown.send_replace(true);
            let _ = r.task.await;
        }
    }

    /// Listens again on the same address after [`BankSim::stop`], with the same state.
    pub async fn restart(&self) -> Result<(), BankSimError> {
        let mut running = self.running.lock().await;
        if running.is_none() {
            let listener = TcpListener::bind(self.addr).await?;
            *running = Some(self.serve(listener));
        }
        Ok(())
    }

    /// The balance of an account in fen.
    pub fn balance_fen(&self, pan: &str) -> Option<i64> {
        lock(&self.shared.ledger)
            .accounts
            .get(pan)
            .map(|a| a.balance_fen)
    }

    /// The bank's reconciliation totals.
    pub fn totals(&self) -> BankTotals {
        lock(&self.shared.ledger).totals
    }

    /// The zone PIN key the bank currently expects.
    pub fn current_zpk(&self) -> Option<Zpk> {
        lock(&self.shared.keys).zpk.current.clone()
    }

    /// The TAK the bank currently MACs its answers with.
    pub fn current_tak(&self) -> Option<Tak> {
        lock(&self.shared.keys).tak.current.clone()
    }

    /// Counters.
    pub fn stats(&self) -> BankSimStats {
        let c = &self.shared.counters;
        BankSimStats {
            connections: c.connections.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            sign_ons: c.sign_ons.load(Ordering::Relaxed),
            sign_offs: c.sign_offs.load(Ordering::Relaxed),
            echoes: c.echoes.load(Ordering::Relaxed),
            key_exchanges: c.key_exchanges.load(Ordering::Relaxed),
            reversals_applied: c.reversals_applied.load(Ordering::Relaxed),
            reversal_messages: c.reversal_messages.load(Ordering::Relaxed),
            reversal_repeats: c.reversal_repeats.load(Ordering::Relaxed),
            mac_failures: c.mac_failures.load(Ordering::Relaxed),
            advices_applied: c.advices_applied.load(Ordering::Relaxed),
            advice_messages: c.advice_messages.load(Ordering::Relaxed),
            advice_repeats: c.advice_repeats.load(Ordering::Relaxed),
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(shared.config.connections_max.max(1)));
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    loop {
        tokio::select! {
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() { break; }
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if shared.faults.refuse_connections.load(Ordering::Relaxed) {
                    drop(stream);
                    continue;
                }
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(bank = %shared.config.institution, "connection limit reached");
                    drop(stream);
                    continue;
                };
                shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                connections.retain(|h| !h.is_finished());
                let s = Arc::clone(&shared);
                let rx = shutdown.clone();
                connections.push(tokio::spawn(async move {
                    serve_connection(s, stream, rx).await;
                    drop(permit);
                }));
            }
        }
    }
    drop(listener);
    for c in connections {
        c.abort();
        let _ = c.await;
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut reader, writer, write_task) = transport::split(stream, &shared.config.framing);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION_MAX));
    let mut received = 0u64;
    let mut workers = tokio::task::JoinSet::new();
    loop {
        let frame = tokio::select! {
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() { break; }
                continue;
            }
            f = reader.next_message() => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(bank = %shared.config.institution, error = %e, "closing connection");
                break;
            }
        };
        shared.counters.messages.fetch_add(1, Ordering::Relaxed);
        received += 1;
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let s = Arc::clone(&shared);
        let w = writer.clone();
        workers.spawn(async move {
            answer(&s, &frame.message, &w).await;
            drop(permit);
        });
        while workers.try_join_next().is_some() {}
        let close_after = shared.faults.close_after_messages.load(Ordering::Relaxed);
        if close_after > 0 && received >= close_after {
            // Let the answers already being prepared go out, then close.
            while workers.join_next().await.is_some() {}
            break;
        }
    }
    workers.abort_all();
    drop(writer);
    drop(reader);
    write_task.abort();
    let _ = write_task.await;
}

async fn answer(shared: &Arc<Shared>, bytes: &[u8], writer: &FrameWriter) {
    let Some(reply) = mac::respond(shared, bytes).await else {
        return;
    };
    let delay = shared.faults.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if shared.faults.drop_responses.load(Ordering::Relaxed) {
        return;
    }
    let _ = writer.send(reply.freeze()).await;
}

/// The encoded answer to one request, `None` when there is nothing to answer.
async fn respond(shared: &Shared, bytes: &[u8]) -> Option<BytesMut> {
    let spec = shared.spec;
    let msg = match spec.decode(bytes) {
        Ok(m) => m,
        Err(_) => {
            // Answer 30 (format error) when the request can be read at all.
            let m = spec.decode_unchecked(bytes).ok()?;
            return encode(spec, &reply(&m, "30")?, true);
        }
    };
    if !msg.mti().is_request() {
        return None;
    }
    let out = match &msg.mti().as_bytes()[..] {
        b"0800" => network(shared, &msg).await,
        b"0200" => financial(shared, &msg).await,
        b"0400" | b"0420" | b"0421" => reversal(shared, &msg),
        b"0120" | b"0121" | b"0220" | b"0221" => advice(shared, &msg),
        b"0500" => reconciliation(shared, &msg),
        _ => reply(&msg, "12"),
    }?;
    encode(spec, &out, false).or_else(|| encode(spec, &reply(&msg, "30")?, true))
}

fn encode(spec: &Spec, m: &OwnedMessage<'_>, unchecked: bool) -> Option<BytesMut> {
    let mut buf = BytesMut::with_capacity(256);
    let r = if unchecked {
        spec.encode_unchecked(m, &mut buf)
    } else {
        spec.encode(m, &mut buf)
    };
    r.ok().map(|_| buf)
}

fn reply<'a>(msg: &Message<'a>, code: &str) -> Option<OwnedMessage<'a>> {
    let mut r = msg.to_response().ok()?;
    let mti = msg.mti();
    if let (Some(class), Some(b'1')) = (mti.as_str().get(..2), mti.as_bytes().get(3)) {
        // The answer to a repeat (0121, 0221, 0401, 0421) is the plain response (ISO 8583:1987:
        // the repeat is a property of the request, not of its response).
        let function = mti.as_bytes().get(2).map_or(b'0', |f| f + 1);
        let plain = format!("{class}{}0", char::from(function));
        r.set_mti(iso8583::Mti::new(&plain).ok()?);
    }
    r.set_str(39, code).ok()?;
    Some(r)
}

async fn network<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let code = msg.get_str(70).ok().and_then(|c| NetworkCode::parse(&c));
    let c = &shared.counters;
    let rc = match code {
        Some(NetworkCode::SignOn) => {
            c.sign_ons.fetch_add(1, Ordering::Relaxed);
            "00"
        }
        Some(NetworkCode::SignOff) => {
            c.sign_offs.fetch_add(1, Ordering::Relaxed);
            "00"
        }
        Some(NetworkCode::Echo) => {
            c.echoes.fetch_add(1, Ordering::Relaxed);
            "00"
        }
        Some(NetworkCode::KeyExchange) => {
            if import_keys(shared, msg).await {
                c.key_exchanges.fetch_add(1, Ordering::Relaxed);
                "00"
            } else {
                "30"
            }
        }
        None => "12",
    };
    reply(msg, rc)
}

/// Imports a key of a key exchange under the ZMK; its LMK token when the check value matches.
async fn import_key(shared: &Shared, key_type: KeyType, sent: &KeyUnderZmk) -> Option<KeyToken> {
    let key = shared
        .hsm
        .import_key(
            key_type,
            &shared.config.keys.zmk,
            &sent.under_zmk,
            KeyScheme::U,
        )
        .await
        .ok()?;
    let kcv: String = key.check_value.iter().map(|b| format!("{b:02X}")).collect();
    kcv.eq_ignore_ascii_case(&sent.kcv).then_some(key.token)
}

/// Imports the ZPK (and the TAK, when sent) of a key exchange and makes them current when
/// every check value matches; otherwise nothing changes.
async fn import_keys(shared: &Shared, msg: &Message<'_>) -> bool {
    let Some(field) = msg
        .get_str(48)
        .ok()
        .and_then(|f| KeyExchangeField::decode(&f).ok())
    else {
        return false;
    };
    let Some(zpk) = import_key(shared, KeyType::Zpk, &field.zpk).await else {
        return false;
    };
    let tak = match &field.tak {
        Some(sent) => match import_key(shared, KeyType::Tak, sent).await {
            Some(t) => Some(t),
            None => return false,
        },
        None => None,
    };
    let mut keys = lock(&shared.keys);
    keys.zpk.rotate(Zpk::from_token(zpk));
    if let Some(t) = tak {
        keys.tak.rotate(Tak::from_token(t));
    }
    true
}

/// What a 0200 asks for, by the first two digits of field 3.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Purchase,
    BalanceInquiry,
    Refund,
    BenefitCredit,
}

fn service(processing_code: &str) -> Option<Service> {
    Some(match processing_code.get(..2)? {
        "00" => Service::Purchase,
        "31" => Service::BalanceInquiry,
        "20" => Service::Refund,
        "21" => Service::BenefitCredit,
        _ => return None,
    })
}

/// The key under which an approved transaction is remembered for its reversal.
fn original_key(rrn: Option<&str>, pan: &str, stan: &str, time: &str, terminal: &str) -> String {
    match rrn {
        Some(r) => format!("R:{r}:{pan}"),
        None => format!("S:{stan}:{time}:{terminal}:{pan}"),
    }
}

async fn pin_ok(shared: &Shared, msg: &Message<'_>, pan: &str, offset: &str) -> bool {
    let Ok(block) = msg.get(52) else {
        return false;
    };
    let Ok(block) = EncryptedPinBlock::from_bytes(block.to_vec()) else {
        return false;
    };
    let Ok(validation) = account_number_12(pan) else {
        return false;
    };
    let pin = PinBlockIn {
        block,
        format: PinBlockFormat::Iso0,
        pan: pan.to_owned(),
    };
    let method = PinVerificationMethod::Ibm3624 {
        pvk: shared.config.keys.pvk.clone(),
        decimalisation_table: shared.config.decimalisation_table.clone(),
        validation_data: validation,
        offset: offset.to_owned(),
        check_length: shared.config.pin_check_length,
    };
    let zpks = lock(&shared.keys).zpk.candidates();
    // The previous key stays valid for PIN blocks translated before the last key exchange.
    for zpk in zpks {
        if let Ok(true) = shared
            .hsm
            .verify_pin(&PinKey::Zpk(zpk), &pin, &method)
            .await
        {
            return true;
        }
    }
    false
}

fn balance_field(balance_fen: i64) -> String {
    let sign = if balance_fen < 0 { 'D' } else { 'C' };
    format!("1002156{sign}{:012}", balance_fen.unsigned_abs())
}

/// What a 0200 or an advice asks of an account: the service (field 3), the PAN, the amount and
/// the key it is remembered under for its reversal.
struct Leg {
    svc: Service,
    pan: String,
    amount: i64,
    key: String,
}

/// Reads a leg; `Err` is the response code to answer with.
fn leg(msg: &Message<'_>) -> Result<Leg, &'static str> {
    let svc = msg.get_str(3).ok().and_then(|p| service(&p)).ok_or("12")?;
    let (Ok(pan), Ok(amount)) = (msg.get_str(2), msg.get_u64(4)) else {
        return Err("30");
    };
    let amount = i64::try_from(amount).map_err(|_| "13")?;
    let text = |id: u16| msg.get_str(id).map_err(|_| "30");
    let key = original_key(
        msg.get_str(37).ok().as_deref(),
        &pan,
        &text(11)?,
        &text(7)?,
        &text(41)?,
    );
    Ok(Leg {
        svc,
        pan: pan.into_owned(),
        amount,
        key,
    })
}

impl Ledger {
    /// Applies an approved leg to its account and the totals, remembers it for its reversal,
    /// and returns the new balance (`None`: unknown account).
    fn post(&mut self, leg: Leg) -> Option<i64> {
        let delta = match leg.svc {
            Service::Purchase => -leg.amount,
            Service::BalanceInquiry => 0,
            Service::Refund | Service::BenefitCredit => leg.amount,
        };
        let account = self.accounts.get_mut(&leg.pan)?;
        account.balance_fen += delta;
        let balance = account.balance_fen;
        let side = match leg.svc {
            Service::Purchase => &mut self.totals.debits,
            Service::Refund | Service::BenefitCredit => &mut self.totals.credits,
            Service::BalanceInquiry => return Some(balance),
        };
        side.0 += 1;
        side.1 += leg.amount;
        self.remember(
            leg.key,
            Authorization {
                pan: leg.pan,
                delta_fen: delta,
                reversed: false,
            },
        );
        Some(balance)
    }
}

async fn financial<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let leg = match leg(msg) {
        Ok(l) => l,
        Err(code) => return reply(msg, code),
    };
    let offset = {
        let ledger = lock(&shared.ledger);
        match ledger.accounts.get(&leg.pan) {
            Some(a) => a.pin_offset.clone(),
            None => return reply(msg, "14"),
        }
    };
    if matches!(leg.svc, Service::Purchase | Service::BalanceInquiry)
        && !pin_ok(shared, msg, &leg.pan, &offset).await
    {
        return reply(msg, "55");
    }
    let mut ledger = lock(&shared.ledger);
    let balance = ledger.accounts.get(&leg.pan)?.balance_fen;
    if leg.svc == Service::Purchase && balance < leg.amount {
        drop(ledger);
        let mut r = reply(msg, "51")?;
        r.set_str(54, &balance_field(balance)).ok()?;
        return Some(r);
    }
    let balance = ledger.post(leg)?;
    ledger.auth_code = ledger.auth_code % 999_999 + 1;
    let code = format!("{:06}", ledger.auth_code);
    drop(ledger);
    let mut r = reply(msg, "00")?;
    r.set_str(38, &code)
        .ok()?
        .set_str(54, &balance_field(balance))
        .ok()?;
    Some(r)
}

fn reversal<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let c = &shared.counters;
    c.reversal_messages.fetch_add(1, Ordering::Relaxed);
    if msg.mti().as_str() == "0421" {
        c.reversal_repeats.fetch_add(1, Ordering::Relaxed);
    }
    let Ok(pan) = msg.get_str(2) else {
        return reply(msg, "30");
    };
    let key = original_key(
        msg.get_str(37).ok().as_deref(),
        &pan,
        &msg.get_path_str("90.2").ok()?,
        &msg.get_path_str("90.3").ok()?,
        &msg.get_str(41).ok()?,
    );
    let mut ledger = lock(&shared.ledger);
    let Some(auth) = ledger.authorizations.get_mut(&key) else {
        drop(ledger);
        return reply(msg, "25");
    };
    if auth.reversed {
        // A repeat (0421) of a reversal already applied: acknowledge, change nothing.
        drop(ledger);
        return reply(msg, "00");
    }
    auth.reversed = true;
    let (pan, delta) = (auth.pan.clone(), auth.delta_fen);
    if let Some(a) = ledger.accounts.get_mut(&pan) {
        a.balance_fen -= delta;
    }
    if delta < 0 {
        ledger.totals.debit_reversals.0 += 1;
        ledger.totals.debit_reversals.1 += -delta;
    } else {
        ledger.totals.credit_reversals.0 += 1;
        ledger.totals.credit_reversals.1 += delta;
    }
    drop(ledger);
    shared
        .counters
        .reversals_applied
        .fetch_add(1, Ordering::Relaxed);
    reply(msg, "00")
}

/// A stand-in advice: the switch approved field 4 on the bank's behalf while the link was
/// down. The bank posts it once, keyed like an original (so a later 0420 finds it), and
/// acknowledges every copy.
fn advice<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let c = &shared.counters;
    c.advice_messages.fetch_add(1, Ordering::Relaxed);
    if msg.mti().as_bytes().get(3) == Some(&b'1') {
        c.advice_repeats.fetch_add(1, Ordering::Relaxed);
    }
    let leg = match leg(msg) {
        Ok(l) if l.svc != Service::BalanceInquiry => l,
        Ok(_) => return reply(msg, "12"),
        Err(code) => return reply(msg, code),
    };
    let mut ledger = lock(&shared.ledger);
    if ledger.authorizations.contains_key(&leg.key) {
        // A repeat (0221) of an advice already posted: acknowledge, change nothing.
        drop(ledger);
        return reply(msg, "00");
    }
    let posted = ledger.post(leg).is_some();
    drop(ledger);
    if !posted {
        return reply(msg, "14");
    }
    c.advices_applied.fetch_add(1, Ordering::Relaxed);
    reply(msg, "00")
}

fn reconciliation<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let t = lock(&shared.ledger).totals;
    let ours: [(u16, u64); 8] = [
        (74, t.credits.0),
        (75, t.credit_reversals.0),
        (76, t.debits.0),
        (77, t.debit_reversals.0),
        (86, t.credits.1.unsigned_abs()),
        (87, t.credit_reversals.1.unsigned_abs()),
        (88, t.debits.1.unsigned_abs()),
        (89, t.debit_reversals.1.unsigned_abs()),
    ];
    let in_balance = ours.iter().all(|(id, v)| msg.get_u64(*id).ok() == Some(*v));
    let mut r = reply(msg, "00")?;
    for (id, v) in ours {
        r.set_u64(id, v).ok()?;
    }
    r.set_str(66, if in_balance { "1" } else { "2" }).ok()?;
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_data() -> BankSimData {
        BankSimData {
            institution: "01020000".into(),
            listen: "127.0.0.1:0".into(),
            zmk_clear_hex: "0123456789ABCDEFFEDCBA9876543210".into(),
            zpk_clear_hex: Some("1032547698BADCFEEFCDAB8967452301".into()),
            tak_clear_hex: None,
            mac: false,
            pvk_clear_hex: "FEDCBA98765432100123456789ABCDEF".into(),
            decimalisation_table: "0123456789012345".into(),
            accounts: vec![AccountSeed {
                pan: "6228480012345678".into(),
                balance_fen: 50_000,
                pin_offset: "4321".into(),
            }],
        }
    }

    #[test]
    fn demo_config_is_plain_data_and_never_prints_keys_or_pans() {
        let data = demo_data();
        let json = serde_json::to_string(&data).expect("json");
        let back: BankSimData = serde_json::from_str(&json).expect("parse");
        let shown = format!("{back:?}");
        assert!(!shown.contains("0123456789ABCDEF"));
        assert!(!shown.contains("6228480012345678"));
        assert!(shown.contains("622848******5678"));
        let hsm = SoftHsm::with_test_lmk();
        let config = back.into_config(&hsm).expect("config");
        assert_eq!(config.institution.as_str(), "01020000");
        assert!(config.keys.zpk.is_some());
        let mut bad = demo_data();
        bad.zmk_clear_hex = "0123".into();
        assert!(bad.into_config(&hsm).is_err());
    }

    #[test]
    fn processing_codes_map_to_services() {
        assert!(matches!(service("000000"), Some(Service::Purchase)));
        assert!(matches!(service("310000"), Some(Service::BalanceInquiry)));
        assert!(matches!(service("200000"), Some(Service::Refund)));
        assert!(matches!(service("210000"), Some(Service::BenefitCredit)));
        assert!(service("400000").is_none());
        assert!(service("").is_none());
    }

    #[test]
    fn field_54_carries_the_available_balance_with_its_sign() {
        assert_eq!(balance_field(12_345), "1002156C000000012345");
        assert_eq!(balance_field(-5), "1002156D000000000005");
    }
}
