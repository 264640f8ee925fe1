//! The authorization pipeline: one request in, one durable decision and its response out.
//!
//! It reads like a jPOS transaction manager: steps run in order, each may decline with an ISO
//! 8583 response code, and each undoes its effects when a later step declines (the velocity
//! reservation is given back by dropping it; the per-card lock is released; a bank leg that was
//! sent is reversed store-and-forward). One request, file by file:
//!
//! 1. **parse** the decoded message into a typed [`request::Request`] (30, 12, 13) — here,
//!    [`Pipeline::process`], with `request.rs`;
//! 2. **who**: field 32 must be the institution the connection proves (03, audited), by the
//!    listener's configuration or the MAC under that institution's TAK (A0); benefit credits,
//!    refunds, reversals and 0500s always need a MAC — `identity.rs`, `security.rs`;
//! 3. **duplicate** detection on terminal + STAN + RRN + transmission time (94), first in
//!    memory (`recent.rs`), authoritatively in the store at commit;
//! 4. the **service** (`services/`, one module each, every one reading parse, check, decide,
//!    commit, respond), which calls:
//!    - the **cardholder checks** (`cardholder/`, one call): card status and hot list (14, 41,
//!      43, 62), expiry (54), ATC and ARQC (59, 05) with the ARPC, PIN (55, 75), limits and
//!      velocity (61, 65); a declined card gets its ARPC, and a lost or stolen chip an
//!      APPLICATION BLOCK issuer script;
//!    - its own rules: the **bill split** (`split.rs`), balances (`cards.rs`), originals;
//!    - **routing** of a bank leg to the card's bank with a timeout (91 and a queued 0420), or
//!      stand-in within the bank's limits when its link is down, with a 0220 advice queued in
//!      the approval's commit (`bank_leg.rs`);
//!    - the **commit** through the group-commit writer (`decision.rs`);
//! 5. only then the **response** (`response.rs`).

mod bank_leg;
pub(crate) mod cardholder;
pub mod cards;
mod config;
mod decision;
mod holds;
mod identity;
mod recent;
mod replay;
pub mod request;
mod response;
pub mod security;
mod services;
pub mod split;
pub mod velocity;

pub use config::{
    Hospital, PipelineConfig, PipelineKeys, SsseKeys, StandIn, ATC_GAP_MAX_DEFAULT,
    CARD_DAYS_KEPT_DEFAULT,
};
pub use identity::AcquirerIdentity;
pub use replay::TRANSMISSION_WINDOW_DEFAULT;

use crate::issuer::gateway::BankGateway;
use crate::metrics::Metrics;
use crate::store::spool::{LegJournal, ReversalSpool};
use crate::store::writer::WriterHandle;
use crate::store::{InstitutionKind, Store};
use cards::CardDirectory;
use hsm_sim::Hsm;
use identity::MacNeed;
use recent::RecentKeys;
use request::{Request, Service};
use response::Outcome;
use schemas::domain::{InstitutionId, ResponseCode};
use schemas::iso8583::{Error as CodecError, Message, OwnedMessage, Spec};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use velocity::Velocity;

/// What a link knows about itself that the pipeline needs.
#[derive(Debug, Clone)]
pub struct LinkContext {
    /// The link's ISO 8583 dialect.
    pub spec: &'static Spec,
    /// Who is on the link's connections (see [`AcquirerIdentity`]).
    pub identity: AcquirerIdentity,
    /// A trusted in-house channel: an institution without a TAK is served here, except for
    /// the services that always need a MAC.
    pub mac_free_trusted_in_house: bool,
}

impl LinkContext {
    /// A shared link of `spec` where every request proves its institution with a MAC.
    pub fn shared(spec: &'static Spec) -> Self {
        Self {
            spec,
            identity: AcquirerIdentity::ProvenByMac,
            mac_free_trusted_in_house: false,
        }
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes (an encoded message, without framing).
    Send(Vec<u8>),
    /// Nothing to send (a response arriving on an acquirer link).
    Nothing,
    /// The frame cannot be answered: close the connection.
    Close,
}

/// The pipeline of one switch node.
pub struct Pipeline<S: Store> {
    pub(crate) store: Arc<S>,
    pub(crate) writer: WriterHandle,
    pub(crate) hsm: Arc<dyn Hsm>,
    pub(crate) banks: Arc<dyn BankGateway>,
    pub(crate) keys: PipelineKeys,
    pub(crate) cfg: PipelineConfig,
    pub(crate) cards: CardDirectory,
    pub(crate) velocity: Arc<Velocity>,
    pub(crate) metrics: Arc<Metrics>,
    /// Declines with a reversal that the store could not take, until it does.
    pub(crate) spool: Arc<ReversalSpool>,
    /// Bank legs sent and not yet decided on (`None` without a data directory).
    pub(crate) legs: Option<Arc<LegJournal>>,
    recent: RecentKeys,
    /// Answers to remember for retransmissions (`replay.rs`).
    answers: replay::AnswerQueue,
    institutions: HashMap<InstitutionId, InstitutionKind>,
}

impl<S: Store> Pipeline<S> {
    /// A pipeline over `store` (whose writer is `writer`), the HSM and the banks, with the
    /// reversal spool of `cfg.data_dir` (whatever it holds from before is replayed into the
    /// store from now on) and its bank-leg journal (the legs a previous run left undecided
    /// join the spool, to be reversed unless their decision is in the store).
    pub async fn new(
        store: Arc<S>,
        writer: WriterHandle,
        hsm: Arc<dyn Hsm>,
        banks: Arc<dyn BankGateway>,
        keys: PipelineKeys,
        cfg: PipelineConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, crate::store::StoreError> {
        let institutions = store
            .institutions()
            .await?
            .into_iter()
            .map(|i| (i.institution_id, i.kind))
            .collect();
        let spool = ReversalSpool::open(cfg.data_dir.as_deref(), Arc::clone(&metrics))?;
        let legs = match cfg.data_dir.as_deref() {
            Some(dir) => {
                let recovered = LegJournal::recover(dir)?;
                if recovered.unreadable > 0 {
                    tracing::warn!(
                        lines = recovered.unreadable,
                        "bank-leg journal: unreadable lines left out (a torn last append)"
                    );
                }
                if !recovered.open.is_empty() {
                    tracing::warn!(
                        legs = recovered.open.len(),
                        "bank legs sent before a stop and never decided: reversing those the \
                         store has no decision for"
                    );
                    metrics.bank_legs_recovered.fetch_add(
                        recovered.open.len() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    spool.adopt(recovered.open)?;
                }
                Some(LegJournal::start(dir)?)
            }
            None => None,
        };
        if !spool.is_empty() {
            spool.replay_in_background(writer.clone());
        }
        let pipeline = Arc::new(Self {
            spool,
            legs,
            velocity: Velocity::new(cfg.limits),
            recent: RecentKeys::new(cfg.recent_keys_max),
            answers: replay::spawn_answer_writer(Arc::clone(&store)),
            store,
            writer,
            hsm,
            banks,
            keys,
            cfg,
            cards: CardDirectory::default(),
            metrics,
            institutions,
        });
        pipeline.cards.refresh_hot_list(&*pipeline.store).await?;
        Ok(pipeline)
    }

    /// The metrics this pipeline counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops the bank-leg journal (at node stop, once the links are down): it then holds only
    /// the intents still open, and a money leg asked for later is declined unsent.
    pub fn stop_leg_journal(&self) {
        if let Some(legs) = &self.legs {
            legs.stop();
        }
    }

    /// The local reversal spool (declines with a reversal the store has not taken yet).
    pub fn reversal_spool(&self) -> &Arc<ReversalSpool> {
        &self.spool
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The card directory (hot-list refresh, status changes by operators).
    pub fn cards(&self) -> &CardDirectory {
        &self.cards
    }

    /// Answers one frame from an acquirer link.
    pub async fn process(&self, frame: &[u8], link: &LinkContext) -> Reply {
        let started = Instant::now();
        let msg = match link.spec.decode(frame) {
            Ok(m) => m,
            Err(e) => return self.format_error(frame, link.spec, &e),
        };
        if !msg.mti().is_request() {
            tracing::warn!(mti = %msg.mti(), "response received on an acquirer link, ignored");
            return Reply::Nothing;
        }
        let (service, outcome) = match msg.mti().as_str() {
            "0800" => ("network", Outcome::answer(ResponseCode::Approved)),
            "0500" => (
                "reconciliation",
                self.reconciliation(&msg, frame, link).await,
            ),
            _ => self.authorize(&msg, frame, link).await,
        };
        let reply = self.respond(&msg, outcome, service).await;
        self.metrics
            .latency
            .observe_us(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        reply
    }

    /// A frame that does not decode: answer 30 when the MTI is readable, echoing every field
    /// read before the first malformed one (`schemas/iso8583/ssc87.md`: "answered with
    /// whatever fields could be read"), otherwise close the connection.
    fn format_error(&self, frame: &[u8], spec: &'static Spec, e: &CodecError) -> Reply {
        self.metrics
            .malformed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(error = %e, "malformed request");
        let Some(mti) = spec.peek_mti(frame) else {
            return Reply::Close;
        };
        if !mti.is_request() {
            return Reply::Close;
        }
        let mut answer = match spec.decode_readable(frame).and_then(|m| m.to_response()) {
            Ok(a) => a,
            Err(_) => match mti.response() {
                Ok(r) => OwnedMessage::new(spec, r),
                Err(_) => return Reply::Close,
            },
        };
        if answer
            .set_str(39, ResponseCode::FormatError.as_str())
            .is_err()
        {
            return Reply::Close;
        }
        let mut out = Vec::with_capacity(128);
        match spec.encode_unchecked(&answer, &mut out) {
            Ok(()) => {
                self.metrics.count_response("malformed", "30");
                Reply::Send(out)
            }
            Err(_) => Reply::Close,
        }
    }

    async fn authorize(
        &self,
        msg: &Message<'_>,
        frame: &[u8],
        link: &LinkContext,
    ) -> (&'static str, Outcome) {
        let req = match Request::parse(msg, link.identity.fixed()) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(mti = %msg.mti(), error = %e, "request refused");
                return ("invalid", Outcome::answer(e.code));
            }
        };
        let service = service_name(req.service);
        let need = match req.service {
            Service::BenefitCredit
            | Service::Refund
            | Service::Reversal
            | Service::IdentitySession => MacNeed::Always,
            _ => MacNeed::UnlessMacFree,
        };
        let mac_key = match self
            .authenticate_acquirer(&req.acquirer, link, need, frame, req.mac)
            .await
        {
            Ok(k) => k,
            Err((code, mac_key)) => {
                let mut out = Outcome::answer(code);
                out.mac_key = mac_key;
                return (service, out);
            }
        };
        let Some(acquirer_keys) = self.keys.acquirers.get(&req.acquirer) else {
            return (service, Outcome::answer(ResponseCode::InvalidMerchant));
        };
        if let Some(mut out) = self.stale(&req) {
            out.mac_key = mac_key;
            return (service, out);
        }
        let key = replay::duplicate_key(&req);
        let repeat = matches!(req.mti.as_str(), "0421" | "0401");
        if !repeat && self.recent.seen(&key) {
            let mut out = self.retransmission(&key).await;
            out.mac_key = mac_key;
            return (service, out);
        }
        let tpk = &acquirer_keys.tpk;
        let outcome = match req.service {
            Service::MedicalBill => self.medical_bill(&req, tpk).await,
            Service::BankPurchase => self.bank_purchase(&req, tpk).await,
            Service::PersonalBalance => self.personal_balance(&req, tpk).await,
            Service::BankBalance => self.bank_balance(&req, tpk).await,
            Service::Refund => self.refund(&req).await,
            Service::BenefitCredit => self.benefit_credit(&req).await,
            Service::Preauthorization => self.preauthorization(&req, tpk, false).await,
            Service::PreauthorizationAdvice => self.preauthorization(&req, tpk, true).await,
            Service::Completion => self.completion(&req).await,
            Service::Reversal => self.reversal(&req).await,
            Service::IdentitySession => self.identity_session(&req).await,
        };
        let mut outcome = match outcome.code {
            // Caught at commit (another node, or a key this node forgot): the original's answer.
            Some(ResponseCode::DuplicateTransmission) if !repeat => self.retransmission(&key).await,
            // An advice not recorded is sent again until it is answered: that resend is decided,
            // not answered 94 as a duplicate of nothing (the store still refuses a second commit).
            Some(ResponseCode::SystemMalfunction) if replay::is_store_and_forward(&req) => {
                self.recent.forget(&key);
                outcome
            }
            _ => {
                self.remember_answer(key, &outcome);
                outcome
            }
        };
        outcome.mac_key = mac_key;
        (service, outcome)
    }

    /// Whether an institution is known, and as what.
    pub(crate) fn institution_kind(&self, id: &InstitutionId) -> Option<InstitutionKind> {
        self.institutions.get(id).copied()
    }
}

fn service_name(s: Service) -> &'static str {
    match s {
        Service::MedicalBill => "medical_bill",
        Service::BankPurchase => "bank_purchase",
        Service::PersonalBalance => "personal_balance",
        Service::BankBalance => "bank_balance",
        Service::Refund => "refund",
        Service::BenefitCredit => "benefit_credit",
        Service::Preauthorization => "preauthorization",
        Service::PreauthorizationAdvice => "preauthorization_advice",
        Service::Completion => "completion",
        Service::Reversal => "reversal",
        Service::IdentitySession => "identity_session",
    }
}
