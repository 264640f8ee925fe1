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
//! | 0800 field 70 = 001 / 002 / 301 | 0810 with 00 (sign-on, sign-off, echo); with MACs, a sign-on whose field 48 names another MAC algorithm than the bank's gets 63 |
//! | 0800 field 70 = 101 | imports the new ZPK (and TAK, of the bank's MAC algorithm, when field 48 has one) under its ZMK and checks their check values: 00, or 30 when a key or its check value is wrong (then no key changes), 63 when field 48 names another MAC algorithm |
//! | 0200, processing code 00xxxx (purchase) | PIN checked (55), card known (14), funds (51); 00 debits and returns field 38 and field 54 |
//! | 0200, 31xxxx (balance inquiry) | PIN checked; 00 with the balance in field 54 |
//! | 0200, 20xxxx (refund), 21xxxx (benefit credit) | credit to the account, no PIN |
//! | 0420/0421 (and 0400) | 0430 (0410): undoes the original once (found by field 37 + field 2, else by field 90 + 41); a repeat answers 00 without a second effect; 25 when the original is unknown |
//! | 0220/0221, 0120/0121 (stand-in advices) | 0230 / 0130 with 00: posts what the switch approved on the bank's behalf once (keyed like an original, field 37 + field 2), whatever the balance (the approval stands); a repeat, or an advice of something already posted, changes nothing; a later 0420 undoes it like any original |
//! | 0500 | 0510 with the bank's own totals of the settlement day of field 15 (its postings of that China Standard Time day) in 74-77/86-89 and field 66 = 1 when they equal the switch's, 2 otherwise |
//!
//! Processing codes are documented in `schemas/iso8583/ssc87.md` ("Bank legs"). Field 54 is
//! the ISO 8583:1987 additional amount: account type `10`, amount type `02` (available
//! balance), currency `156`, sign `C`/`D`, 12 digits of fen.
//!
//! With `mac` on, requests of the MACed classes ([`crate::wire::mac`]) must carry a MAC that
//! verifies under the current or the previous TAK, else they are answered A0 and not
//! processed; answers are MACed under the key that verified the request (so a request MACed
//! just before a key change gets an answer the switch can still verify); see `banksim::mac`.
//!
//! Fault knobs ([`BankSimFaults`]) let tests delay answers, never answer, refuse connections,
//! close a connection after N messages or corrupt the MAC of its answers. The demo's
//! configuration, clear demo keys included, is plain data ([`BankSimData`]).
//!
//! Inside: `config` (accounts and keys), `server` (sockets and fault knobs), `respond` (decode,
//! dispatch by message class, encode), `network` (0800: sign-on, echo, key exchange),
//! `financial` (0200, reversals, advices, 0500), `ledger` (accounts, remembered
//! authorizations, totals) and `mac` (the bank's side of the link MACs).

mod config;
mod financial;
mod ledger;
mod mac;
mod network;
mod respond;
mod server;

pub use config::{pin_offset_for, AccountSeed, BankKeys, BankSimConfig, BankSimData, BankSimError};

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_sim::keys::{Tak, Zpk};
use hsm_sim::Hsm;
use schemas::domain::{InstitutionId, Pan};
use schemas::iso8583::{self, Spec};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::wire::network::KeyGenerations;
use ledger::{Account, Ledger};
use server::accept_loop;

/// Most approved transactions remembered for reversals; the oldest are forgotten first.
pub const AUTHORIZATIONS_MAX: usize = 1_000_000;
/// Most requests processed at once on one connection.
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 4096;

/// Fault injection, changeable while running.
#[derive(Debug, Default)]
pub struct BankSimFaults {
    delay_ms: AtomicU64,
    drop_responses: AtomicBool,
    refuse_connections: AtomicBool,
    close_after_messages: AtomicU64,
    corrupt_mac: AtomicBool,
    garbage_answers: AtomicBool,
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
    /// Sends only the first half of every answer (`true`), as a broken host or a line that
    /// cuts frames would: the request is processed, the switch cannot read what comes back.
    pub fn set_garbage_answers(&self, on: bool) {
        self.garbage_answers.store(on, Ordering::Relaxed);
    }
}

/// Reconciliation totals of the bank (ISO 8583:1987 fields 74-77 and 86-89), the same
/// figures the switch keeps for its acquirers.
pub type BankTotals = schemas::iso8583::ReconciliationTotals;

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
    /// Sign-ons and key exchanges refused with 63: the switch said another MAC algorithm.
    pub mac_algorithm_mismatches: u64,
    /// Stand-in advices that posted a transaction.
    pub advices_applied: u64,
    /// Advice messages received (including repeats).
    pub advice_messages: u64,
    /// Of those, repeats (0121/0221).
    pub advice_repeats: u64,
    /// Reconciliation requests (0500) answered.
    pub reconciliations: u64,
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
    mac_algorithm_mismatches: AtomicU64,
    advices_applied: AtomicU64,
    advice_messages: AtomicU64,
    advice_repeats: AtomicU64,
    reconciliations: AtomicU64,
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

/// Binds `listen` (resolved and bound by tokio, then handed over as a std listener so that
/// it can be served on another runtime).
async fn bind(listen: &str) -> Result<std::net::TcpListener, std::io::Error> {
    TcpListener::bind(listen).await?.into_std()
}

/// A running simulated bank host.
pub struct BankSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: tokio::sync::Mutex<Option<Running>>,
    /// The runtime its connections run on: the caller's, or one of its own (see
    /// [`BankSim::start_on`]).
    runtime: tokio::runtime::Handle,
}

impl BankSim {
    /// Binds the port and starts serving on the caller's runtime.
    pub async fn start(config: BankSimConfig, hsm: Arc<dyn Hsm>) -> Result<BankSim, BankSimError> {
        Self::start_on(config, hsm, tokio::runtime::Handle::current()).await
    }

    /// Binds the port and starts serving on `runtime`. The demo and the benchmarks give the
    /// simulated banks a runtime of their own, with threads named `bank-sim`, so that the CPU
    /// they take (they are test equipment) is told apart from the switch's (issue 27).
    pub async fn start_on(
        config: BankSimConfig,
        hsm: Arc<dyn Hsm>,
        runtime: tokio::runtime::Handle,
    ) -> Result<BankSim, BankSimError> {
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
        let listener = bind(&config.listen).await?;
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
                by_day: std::collections::BTreeMap::new(),
                uncounted: 0,
                auth_code: 0,
            }),
            faults: BankSimFaults::default(),
            counters: Counters::default(),
        });
        let sim = BankSim {
            shared,
            addr,
            running: tokio::sync::Mutex::new(None),
            runtime,
        };
        *sim.running.lock().await = Some(sim.serve(listener));
        Ok(sim)
    }

    /// Serves `listener` on the sim's runtime: the socket is registered with that runtime's
    /// reactor, so its connections never touch the caller's.
    fn serve(&self, listener: std::net::TcpListener) -> Running {
        let (shutdown, rx) = watch::channel(false);
        let shared = Arc::clone(&self.shared);
        let task = self.runtime.spawn(async move {
            match TcpListener::from_std(listener) {
                Ok(l) => accept_loop(shared, l, rx).await,
                Err(e) => tracing::error!(error = %e, "bank simulator cannot listen"),
            }
        });
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
            let listener = bind(&self.addr.to_string()).await?;
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

    /// The bank's reconciliation totals, every day together.
    pub fn totals(&self) -> BankTotals {
        lock(&self.shared.ledger).totals
    }

    /// The bank's reconciliation totals of one settlement day (China Standard Time), what its
    /// answer to a 0500 for that day carries.
    pub fn totals_of(&self, day: chrono::NaiveDate) -> BankTotals {
        lock(&self.shared.ledger)
            .by_day
            .get(&day)
            .copied()
            .unwrap_or_default()
    }

    /// Test hook: the next `postings` approved postings (0200s, advices, reversals) move their
    /// accounts but are left out of the bank's totals, as if its books lost them, so the
    /// bank's cut-over disagrees with the switch's by those transactions.
    pub fn leave_out_of_totals(&self, postings: u64) {
        lock(&self.shared.ledger).uncounted = postings;
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
            mac_algorithm_mismatches: c.mac_algorithm_mismatches.load(Ordering::Relaxed),
            advices_applied: c.advices_applied.load(Ordering::Relaxed),
            advice_messages: c.advice_messages.load(Ordering::Relaxed),
            advice_repeats: c.advice_repeats.load(Ordering::Relaxed),
            reconciliations: c.reconciliations.load(Ordering::Relaxed),
        }
    }
}
