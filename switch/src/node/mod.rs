//! One switch node wired together, the same for `switch serve` ([`crate::config`]) and
//! `switch demo` (`sim::demo`, feature `demo`): they differ in where the parts come from (a
//! configuration file with LMK tokens, or the demo world), never in how they are put together.
//!
//! [`NodeParts::start`] starts, in this order: the issuer links to the banks (and, when asked,
//! waits for them to sign on), the group-commit writer, the pipeline, the acquirer listeners,
//! the HTTP face (loopback only, bounded: [`http_face`]), the store-and-forward forwarder of reversals and advices, the
//! bank cut-over at the end of each settlement day ([`crate::issuer::cutover`]), and the
//! housekeeping tasks ([`housekeeping`]). The acquirer listeners open only once the pipeline
//! can answer, so a client that can connect is served. [`Node::stop`] signs the links off.

pub mod housekeeping;
pub mod http_face;
pub mod signal;

use crate::acquirer::{self, AcquirerListener};
use crate::cms::photo::PhotoSealer;
use crate::cms::{CardManagement, CmsStore, IssuanceConfig};
use crate::http::HttpState;
use crate::issuer::cutover::{Cutover, CutoverConfig, CutoverError};
use crate::issuer::forwarder::{Forwarder, ForwarderConfig, ForwarderError};
use crate::issuer::{IssuerConfig, IssuerLinks, LinkError, LinksOptions};
use crate::metrics::Metrics;
use crate::operator::routes::cms::CmsFace;
use crate::operator::scope::Bureau;
use crate::operator::OperatorContext;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineKeys};
use crate::store::writer::{self, WriterConfig, WriterHandle};
use crate::store::{Store, StoreError};
use hsm_sim::keys::Tpk;
use hsm_sim::Hsm;
use http_face::{HttpFaceError, HttpLimits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long `switch serve` and `switch demo` wait for their banks' links to sign on before the
/// acquirer listeners open: a request arriving while a link is still connecting would be
/// stood in for or declined `91` only because the node had just started. A bank still down
/// after it is left to its link's reconnects (the node opens anyway).
pub const SIGN_ON_WAIT: Duration = Duration::from_secs(10);

/// How often [`NodeParts::sign_on_wait`] looks at the links.
const SIGN_ON_POLL: Duration = Duration::from_millis(50);

/// What a node is made of, before it runs.
pub struct NodeParts<S: Store> {
    /// The store (migrated, seeded or not).
    pub store: Arc<S>,
    /// The switch's HSM (in-process or on the network).
    pub hsm: Arc<dyn Hsm>,
    /// The pipeline's keys, as LMK tokens of `hsm`.
    pub keys: PipelineKeys,
    /// The pipeline's settings; its `switch_id` is also the originator on the issuer links.
    pub pipeline: PipelineConfig,
    /// The group-commit writer.
    pub writer: WriterConfig,
    /// One issuer link per bank.
    pub banks: Vec<IssuerConfig>,
    /// How long to wait for every bank's link to sign on before the acquirer listeners open
    /// (zero: open at once; a bank leg to a link not yet up is then declined or stood in for).
    pub sign_on_wait: Duration,
    /// The acquirer listeners.
    pub listeners: Vec<AcquirerListener>,
    /// The HTTP listener, if any.
    pub http: Option<SocketAddr>,
    /// TLS on the HTTP listener (required for an address that is not loopback).
    pub http_tls: Option<crate::acquirer::TlsSettings>,
    /// The operator API's keys and session policy (the audit MAC key is installed on the
    /// store before the node starts).
    pub operator: Arc<OperatorContext>,
    /// The card management system behind the HTTP face's card routes (None: they answer 503).
    pub cms: Option<CmsParts>,
    /// Clearing's settlement API behind the `/clearing/...` routes (None: they answer 503).
    pub clearing: Option<Arc<dyn crate::clearing_link::SettlementSource>>,
    /// The bank cut-over (None: no cut-over task, `POST /cutover` answers 503).
    pub cutover: Option<CutoverConfig>,
}

/// What the card management system of a node is made of (`[cms]`, or the demo world).
pub struct CmsParts {
    /// Ranges, master keys (LMK tokens), the PIN verification key and the bureau's ZMK.
    pub issuance: IssuanceConfig,
    /// Seals cardholders' photos (None: photos are refused).
    pub photos: Option<PhotoSealer>,
    /// The social-security bureaus and their regions (tenant scoping).
    pub bureaus: Vec<Bureau>,
    /// The TPK of the counters' PIN pads when no counter has its own.
    pub counter_tpk: Tpk,
    /// The counters, each with its own TPK.
    pub counters: Vec<crate::operator::routes::cms::CounterTerminal>,
    /// The job-centre kiosks the switch drives cards at over the card relay
    /// (`[[cms.kiosk]]`; none: the card relay routes answer 503).
    pub kiosks: Vec<crate::cms::card_relay::RelayKiosk>,
}

impl std::fmt::Debug for CmsParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmsParts")
            .field("issuance", &self.issuance)
            .field("bureaus", &self.bureaus)
            .finish_non_exhaustive()
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The issuer links refused their configuration.
    #[error(transparent)]
    Links(#[from] LinkError),
    /// The store (the pipeline reads its reference data at start).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The forwarder refused its configuration.
    #[error(transparent)]
    Forwarder(#[from] ForwarderError),
    /// The HTTP face did not start (an address that is not loopback, or a bind error).
    #[error(transparent)]
    Http(#[from] HttpFaceError),
    /// The cut-over refused its configuration.
    #[error(transparent)]
    Cutover(#[from] CutoverError),
}

/// A running node.
pub struct Node<S: Store> {
    /// The store.
    pub store: Arc<S>,
    /// The counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The issuer links.
    pub links: Arc<IssuerLinks>,
    /// The group-commit writer.
    pub writer: WriterHandle,
    /// The pipeline.
    pub pipeline: Arc<Pipeline<S>>,
    /// The store-and-forward forwarder.
    pub forwarder: Arc<Forwarder<S, IssuerLinks>>,
    /// The bank cut-over, when configured.
    pub cutover: Option<Arc<Cutover<S, IssuerLinks>>>,
    /// Where each acquirer listener listens, in the order of [`NodeParts::listeners`] (port
    /// 0 resolved).
    pub acquirer_addrs: Vec<SocketAddr>,
    /// Where HTTP listens (port 0 resolved).
    pub http_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    _writer_task: JoinHandle<()>,
}

impl<S: CmsStore> NodeParts<S> {
    /// Starts every part of the node (call inside a tokio runtime).
    pub async fn start(self) -> Result<Node<S>, NodeError> {
        if let Some(addr) = self.http {
            http_face::require_loopback_or_tls(addr, self.http_tls.is_some())?;
        }
        crate::operator::provision::ensure_builtin_roles(&*self.store).await?;
        let metrics = Arc::new(Metrics::default());
        let switch_id = self.pipeline.switch_id.clone();
        let links = Arc::new(IssuerLinks::start(
            self.banks,
            Arc::clone(&self.hsm),
            LinksOptions::new(switch_id.clone()),
        )?);
        wait_for_sign_on(&links, self.sign_on_wait).await;
        let (writer, writer_task) = writer::spawn(Arc::clone(&self.store), self.writer);
        // The card relay keys its sessions with the kiosks' TAKs and MACs the card commands
        // with the SSSE keys: the pipeline's, as LMK tokens of the same HSM.
        let card_relay = self.cms.as_ref().and_then(|c| {
            (!c.kiosks.is_empty()).then(|| {
                crate::cms::card_relay::CardRelay::new(
                    Arc::clone(&self.hsm),
                    &self.keys,
                    c.kiosks.clone(),
                )
            })
        });
        let pipeline = Pipeline::new(
            Arc::clone(&self.store),
            writer.clone(),
            self.hsm,
            links.clone(),
            self.keys,
            self.pipeline,
            Arc::clone(&metrics),
        )
        .await?;
        let (shutdown, stopping) = watch::channel(false);
        let mut acquirer_addrs = Vec::with_capacity(self.listeners.len());
        for l in self.listeners {
            let listener = acquirer::bind(&l).await?;
            acquirer_addrs.push(listener.local_addr()?);
            tokio::spawn(acquirer::serve(
                listener,
                l,
                Arc::clone(&pipeline),
                stopping.clone(),
            ));
        }
        let cms = self.cms.map(|c| {
            let mut service =
                CardManagement::new(Arc::clone(&self.store)).with_issuance(c.issuance);
            if let Some(photos) = c.photos {
                service = service.with_photos(photos);
            }
            let mut face =
                CmsFace::new(service, c.bureaus, c.counter_tpk).with_counters(c.counters);
            if let Some(relay) = card_relay {
                face = face.with_card_relay(relay);
            }
            Arc::new(face)
        });
        let cutover = match self.cutover {
            Some(config) => {
                let banks: Vec<_> = links.banks().cloned().collect();
                let c = Cutover::new(Arc::clone(&self.store), links.clone(), banks, config)?;
                Some(Arc::new(c))
            }
            None => None,
        };
        let http_addr = match self.http {
            Some(addr) => Some(
                http_face::serve(
                    HttpState {
                        store: Arc::clone(&self.store),
                        writer: writer.clone(),
                        metrics: Arc::clone(&metrics),
                        links: Some(Arc::clone(&links)),
                        operator: Arc::clone(&self.operator),
                        cms,
                        clearing: self.clearing.clone(),
                        cutover: cutover
                            .clone()
                            .map(|c| c as Arc<dyn crate::issuer::cutover::RunCutover>),
                    },
                    addr,
                    self.http_tls.clone(),
                    HttpLimits::default(),
                )
                .await?,
            ),
            None => None,
        };
        let forwarder = Arc::new(
            Forwarder::new(
                Arc::clone(&self.store),
                links.clone(),
                ForwarderConfig::new(switch_id),
            )?
            .with_metrics(Arc::clone(&metrics)),
        );
        let f = Arc::clone(&forwarder);
        let s = stopping.clone();
        tokio::spawn(async move { f.run(s).await });
        if let Some(c) = &cutover {
            tokio::spawn(Arc::clone(c).run(stopping.clone()));
        }
        housekeeping::spawn(Arc::clone(&pipeline), stopping);
        Ok(Node {
            store: self.store,
            metrics,
            links,
            writer,
            pipeline,
            forwarder,
            cutover,
            acquirer_addrs,
            http_addr,
            shutdown,
            _writer_task: writer_task,
        })
    }
}

/// Waits until every link is signed on, at most `wait`.
async fn wait_for_sign_on(links: &IssuerLinks, wait: Duration) {
    let deadline = Instant::now() + wait;
    while links.banks().any(|b| !links.is_up(b)) && Instant::now() < deadline {
        tokio::time::sleep(SIGN_ON_POLL).await;
    }
}

impl<S: Store> Node<S> {
    /// A receiver that turns true when the node begins to stop (for tasks beside the node,
    /// such as the demo's kiosks).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells the listeners, the forwarder and housekeeping to stop; the links stay up until
    /// [`Node::stop`].
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Stops the node: [`Node::begin_shutdown`], then signs off every link (field 70 = 002)
    /// and waits for the links' tasks.
    pub async fn stop(self) {
        self.begin_shutdown();
        self.links.shutdown().await;
        // No leg leaves now: what the journal still holds open is what a restart reverses.
        self.pipeline.stop_leg_journal();
    }

    /// The number of banks whose link is signed on.
    pub fn banks_up(&self) -> usize {
        self.links.banks().filter(|b| self.links.is_up(b)).count()
    }
}
