//! [`IssuerLinks`]: every bank's link behind one handle, the one the pipeline (as its
//! [`BankGateway`]), the forwarder and the HTTP face hold.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hsm_sim::keys::{Tak, TypedKey, Zpk};
use hsm_sim::Hsm;
use schemas::domain::{InstitutionId, Stan};
use schemas::iso8583::{self, OwnedMessage};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::gateway::{BankGateway, GatewayError};
use super::link::{Keys, Link, LinkError, LinkState};
use super::mux::{Mux, MuxConfig, MuxStats, UnmatchedResponses};
use super::session::supervise;
use super::{IssuerConfig, LinksOptions};
use crate::wire::network::{KeyGenerations, NetworkCode};

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
    /// Sign-ons and key exchanges refused because the bank said another MAC algorithm than
    /// the link's (the link stays down until the configurations agree).
    pub mac_algorithm_mismatches: u64,
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
            if let Some(tak) = config.tak.as_ref().filter(|_| config.mac) {
                let scheme = tak.token().scheme();
                if scheme != config.mac_algorithm.key_scheme() {
                    return Err(LinkError::Config(format!(
                        "bank {}: its tak (scheme {}) is not a key of mac_algorithm {}",
                        config.institution,
                        scheme.as_char(),
                        config.mac_algorithm
                    )));
                }
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
                mac_algorithm_mismatches: AtomicU64::new(0),
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
            mac_algorithm_mismatches: l.mac_algorithm_mismatches.load(Ordering::Relaxed),
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
impl BankGateway for IssuerLinks {
    async fn send(
        &self,
        bank: &InstitutionId,
        request: OwnedMessage<'static>,
        timeout: Duration,
    ) -> Result<OwnedMessage<'static>, GatewayError> {
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
