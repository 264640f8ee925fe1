//! The authorization pipeline: one request in, one durable decision and its response out.
//!
//! It reads like a jPOS transaction manager: steps run in order, each may decline with an ISO
//! 8583 response code, and each undoes its effects when a later step declines (the velocity
//! reservation is given back by dropping it; the per-card lock is released; a bank leg that was
//! sent is reversed store-and-forward). The steps are:
//!
//! 1. **parse** the decoded message into a typed [`request::Request`] (30, 12, 13);
//! 2. **MAC** when the acquirer has a TAK (A0), unknown acquirer (03);
//! 3. **duplicate** detection on terminal + STAN + RRN + transmission time (94), first in
//!    memory, authoritatively in the store at commit;
//! 4. **card**: known (14), status and hot list (41, 43, 62), expiry (54); a card reported
//!    lost or stolen that comes online with a genuine ARQC is answered with the decline, its
//!    ARPC and an APPLICATION BLOCK issuer script (`pipeline::scripts`);
//! 5. **ARQC** verification of field 55 (05), ARPC in the response; the ATC must be above every
//!    ATC the card has used (59, see `Pipeline::arqc_step`);
//! 6. **PIN**: verified against the card's offset, or translated TPK → ZPK for the bank (55,
//!    75 after too many tries, which also blocks the card); a chip reporting its offline PIN
//!    try limit exceeded whose PIN was verified here gets a PIN UNBLOCK script with the
//!    approval (`scripts`);
//! 7. **limits and velocity** (61, 65);
//! 8. the **bill split** and the other services (`pipeline::services`);
//! 9. **routing** of a bank leg to the card's bank with a timeout (91 and a queued 0420), or
//!    stand-in within the bank's limits (per transaction, per card per day) when its link is
//!    down, with a 0220 advice to the bank queued in the approval's commit;
//! 10. **commit** through the group-commit writer; only then the **response**.

pub mod cards;
mod recent;
mod reconciliation;
pub mod request;
mod reversal;
mod scripts;
pub mod security;
mod services;
pub mod split;
pub mod velocity;

use crate::issuer::gateway::BankGateway;
use crate::metrics::Metrics;
use crate::store::writer::{WriteError, WriterHandle};
use crate::store::{
    AuditEntry, CardAtc, CardId, CardStatus, Committed, Decision, DecisionError, InstitutionKind,
    Store, TransactionId, TransactionKind, TransactionRecord,
};
use crate::wire::mac::{self as link_mac, Rules};
use cards::{CardDirectory, CardEntry};
use hsm_sim::Hsm;
use recent::RecentKeys;
use request::{Request, Service};
use schemas::domain::{InstitutionId, Pan, ResponseCode};
use schemas::iso8583::{Error as CodecError, Message, OwnedMessage, Spec};
use security::{AcquirerKeys, IssuerKeys};
use split::{HospitalLevel, PolicyTable};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use velocity::{CardLimits, Velocity};

/// A designated hospital, by its code in field 62.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hospital {
    /// The hospital's institution id (its field 32 and settlement account).
    pub institution: InstitutionId,
    /// Its level, a key of the policy table.
    pub level: HospitalLevel,
}

/// Stand-in authorization for a bank whose link is down: the switch approves on the bank's
/// behalf within the limits the bank set, and tells the bank afterwards with an advice (0220,
/// ISO 8583:1987 financial transaction advice) queued in the same commit as the approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandIn {
    /// Largest bank leg approved in stand-in.
    pub per_transaction_fen_max: i64,
    /// Most approved in stand-in for one card per day (China Standard Time), all its stand-in
    /// legs for this bank together, reversed ones included.
    pub per_card_daily_fen_max: i64,
}

/// The pipeline's configuration (everything but keys).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The switch's own institution id (field 33 of what it forwards).
    pub switch_id: InstitutionId,
    /// The medical-insurance fund (pooled fund and personal accounts).
    pub insurance_fund: InstitutionId,
    /// The social-security fund (benefits).
    pub social_security_fund: InstitutionId,
    /// The store account benefits are paid from.
    pub social_security_fund_account: Option<crate::store::AccountId>,
    /// Designated hospitals by code.
    pub hospitals: HashMap<String, Hospital>,
    /// The bill-split policy table.
    pub policy: PolicyTable,
    /// Per-card limits.
    pub limits: CardLimits,
    /// How long a bank leg may take.
    pub bank_timeout: Duration,
    /// How long an authorization hold lives before it is released.
    pub hold_ttl: Duration,
    /// Stand-in rules per bank.
    pub stand_in: HashMap<InstitutionId, StandIn>,
    /// Wrong PINs in a row before the card is blocked.
    pub pin_tries_max: u32,
    /// Retransmissions remembered in memory for duplicate detection.
    pub recent_keys_max: usize,
    /// Largest jump of a card's ATC over the highest seen before the cryptogram is declined
    /// (59) and the card flagged in the audit log; `None`: no limit. The jump is recorded, so
    /// the card's next transaction is judged from the new ATC.
    pub atc_gap_max: Option<u16>,
}

impl PipelineConfig {
    /// Defaults around the given institutions.
    pub fn new(
        switch_id: InstitutionId,
        insurance_fund: InstitutionId,
        social_security_fund: InstitutionId,
    ) -> Self {
        Self {
            switch_id,
            insurance_fund,
            social_security_fund,
            social_security_fund_account: None,
            hospitals: HashMap::new(),
            policy: PolicyTable::default(),
            limits: CardLimits::default(),
            bank_timeout: Duration::from_secs(5),
            hold_ttl: Duration::from_secs(7 * 86_400),
            stand_in: HashMap::new(),
            pin_tries_max: 3,
            recent_keys_max: 100_000,
            atc_gap_max: Some(ATC_GAP_MAX_DEFAULT),
        }
    }
}

/// Default [`PipelineConfig::atc_gap_max`]: an online-only card moves its ATC by one per
/// transaction, so a hundred unseen transactions are worth a look.
pub const ATC_GAP_MAX_DEFAULT: u16 = 100;

/// Why step 5 declines, with the verified cryptogram when the card is genuine and present
/// (the decline then carries its ARPC and consumes its ATC).
#[derive(Debug)]
pub(crate) struct ArqcDecline {
    pub code: ResponseCode,
    pub arqc: Option<security::VerifiedArqc>,
}

/// What the PIN step established: only a PIN this switch verified against the card's
/// issuance data may unblock the chip's offline PIN (a PIN UNBLOCK script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinCheck {
    /// Verified here, through the HSM, against the card's PIN offset.
    Verified,
    /// The card has no PIN offset here: the bank verifies the PIN on its leg.
    LeftToTheBank,
}

impl From<ResponseCode> for ArqcDecline {
    fn from(code: ResponseCode) -> Self {
        Self { code, arqc: None }
    }
}

/// The ATC a decision consumes: that of its verified cryptogram.
pub(crate) fn card_atc(
    entry: &CardEntry,
    arqc: Option<&security::VerifiedArqc>,
) -> Option<CardAtc> {
    arqc.map(|a| CardAtc {
        card_id: entry.card.card_id,
        atc: a.atc(),
    })
}

/// Keys the pipeline works with (LMK tokens only).
#[derive(Debug, Clone)]
pub struct PipelineKeys {
    /// Per acquirer: TPK and optional TAK.
    pub acquirers: HashMap<InstitutionId, AcquirerKeys>,
    /// Issuer keys for PIN offsets and ARQCs.
    pub issuer: IssuerKeys,
}

/// What a link knows about itself that the pipeline needs.
#[derive(Debug, Clone)]
pub struct LinkContext {
    /// The link's ISO 8583 dialect.
    pub spec: &'static Spec,
    /// The acquirer to assume when field 32 is absent.
    pub default_acquirer: Option<InstitutionId>,
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

/// The fields a decision adds to the response.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub code: Option<ResponseCode>,
    pub auth_code: Option<String>,
    pub field54: Option<String>,
    pub field55: Option<Vec<u8>>,
    pub field63: Option<SplitFields>,
    /// The acquirer's TAK when its responses are MACed.
    pub mac_key: Option<hsm_sim::keys::Tak>,
    /// Field 66 and the switch's totals of a 0510.
    pub reconciled: Option<reconciliation::Reconciled>,
}

impl Outcome {
    /// An answer carrying only field 39 (a decline, or an approval with nothing to add).
    pub(crate) fn answer(code: ResponseCode) -> Self {
        Self {
            code: Some(code),
            ..Self::default()
        }
    }
}

/// The bill split as answered in field 63.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SplitFields {
    pub pooled_fen: i64,
    pub personal_fen: i64,
    pub bank_fen: i64,
    pub bank: Option<InstitutionId>,
    pub personal_balance_after_fen: i64,
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
    recent: RecentKeys,
    pin_failures: Mutex<HashMap<CardId, u32>>,
    institutions: HashMap<InstitutionId, InstitutionKind>,
}

impl<S: Store> Pipeline<S> {
    /// A pipeline over `store` (whose writer is `writer`), the HSM and the banks.
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
        let pipeline = Arc::new(Self {
            velocity: Velocity::new(cfg.limits),
            recent: RecentKeys::new(cfg.recent_keys_max),
            store,
            writer,
            hsm,
            banks,
            keys,
            cfg,
            cards: CardDirectory::default(),
            metrics,
            pin_failures: Mutex::new(HashMap::new()),
            institutions,
        });
        pipeline.cards.refresh_hot_list(&*pipeline.store).await?;
        Ok(pipeline)
    }

    /// The metrics this pipeline counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
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

    /// A frame that does not decode: answer 30 when the MTI and enough fields are readable,
    /// otherwise close the connection.
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
        let mut answer = match spec.decode_unchecked(frame).and_then(|m| m.to_response()) {
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
        let req = match Request::parse(msg, link.default_acquirer.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(mti = %msg.mti(), error = %e, "request refused");
                return ("invalid", Outcome::answer(e.code));
            }
        };
        let service = service_name(req.service);
        let Some(acquirer_keys) = self.keys.acquirers.get(&req.acquirer) else {
            return (service, Outcome::answer(ResponseCode::InvalidMerchant));
        };
        let mac_key = acquirer_keys.tak.clone();
        if let Some(tak) = &mac_key {
            if let Err(code) = security::verify_mac(&*self.hsm, tak, frame, req.mac).await {
                let mut out = Outcome::answer(code);
                out.mac_key = Some(tak.clone());
                return (service, out);
            }
        }
        let key = crate::store::DuplicateKey {
            terminal_id: req.terminal_id.clone(),
            stan: req.stan,
            rrn: req.rrn.clone(),
            transmission_at: req.transmission_at.clone(),
            message_class: req.mti.as_str()[..2].to_owned(),
        };
        let repeat = matches!(req.mti.as_str(), "0421" | "0401");
        if !repeat && self.recent.seen(&key) {
            let mut out = Outcome::answer(ResponseCode::DuplicateTransmission);
            out.mac_key = mac_key;
            return (service, out);
        }
        let tpk = acquirer_keys.tpk.clone();
        let outcome = match req.service {
            Service::MedicalBill => self.medical_bill(&req, &tpk).await,
            Service::BankPurchase => self.bank_purchase(&req, &tpk).await,
            Service::PersonalBalance => self.personal_balance(&req, &tpk).await,
            Service::BankBalance => self.bank_balance(&req, &tpk).await,
            Service::Refund => self.refund(&req).await,
            Service::BenefitCredit => self.benefit_credit(&req).await,
            Service::Preauthorization => self.preauthorization(&req, &tpk, false).await,
            Service::PreauthorizationAdvice => self.preauthorization(&req, &tpk, true).await,
            Service::Completion => self.completion(&req).await,
            Service::Reversal => self.reversal(&req).await,
        };
        let mut outcome = outcome;
        outcome.mac_key = mac_key;
        (service, outcome)
    }

    /// Builds, MACs and encodes the response.
    async fn respond(&self, msg: &Message<'_>, outcome: Outcome, service: &'static str) -> Reply {
        let code = outcome.code.unwrap_or(ResponseCode::SystemMalfunction);
        self.metrics.count_response(service, code.as_str());
        let spec = msg.spec();
        let mut answer = match msg.to_response() {
            Ok(a) => a,
            Err(_) => return Reply::Close,
        };
        let mut ok = answer.set_str(39, code.as_str()).is_ok();
        if let Some(a) = &outcome.auth_code {
            ok &= answer.set_str(38, a).is_ok();
        }
        if let Some(f54) = &outcome.field54 {
            ok &= answer.set_str(54, f54).is_ok();
        }
        if let Some(f55) = &outcome.field55 {
            ok &= answer.set_bytes(55, f55).is_ok();
        }
        if let Some(s) = &outcome.field63 {
            ok &= set_split(&mut answer, s).is_ok();
        }
        if let Some(r) = &outcome.reconciled {
            ok &= reconciliation::set_reconciled(&mut answer, r).is_ok();
        }
        if !ok {
            tracing::error!(service, "response field rejected by the spec");
        }
        if let Some(tak) = &outcome.mac_key {
            // Same MAC layout as the issuer links (field 64/128, the last 8 bytes).
            return match link_mac::encode_with_mac(&*self.hsm, tak, &mut answer, Rules::Unchecked)
                .await
            {
                Ok(out) => Reply::Send(out),
                Err(_) => Reply::Close,
            };
        }
        let mut out = Vec::with_capacity(256);
        match spec.encode(&answer, &mut out) {
            Ok(()) => Reply::Send(out),
            Err(_) => {
                out.clear();
                match spec.encode_unchecked(&answer, &mut out) {
                    Ok(()) => Reply::Send(out),
                    Err(_) => Reply::Close,
                }
            }
        }
    }

    // ---- helpers shared by the services ----

    /// The transaction row of a decision on `req`.
    pub(crate) fn record(
        &self,
        req: &Request,
        kind: TransactionKind,
        card: Option<&CardEntry>,
        issuer: Option<InstitutionId>,
        code: ResponseCode,
    ) -> TransactionRecord {
        TransactionRecord {
            transaction_id: TransactionId(Uuid::now_v7()),
            kind,
            mti: req.mti.as_str().to_owned(),
            processing_code: req.processing_code.clone(),
            card_id: card.map(|c| c.card.card_id),
            pan_masked: req.pan.as_ref().map(Pan::masked),
            acquirer: req.acquirer.clone(),
            issuer,
            terminal_id: req.terminal_id.clone(),
            stan: req.stan,
            rrn: req.rrn.clone(),
            transmission_at: req.transmission_at.clone(),
            amount_fen: req.amount_fen,
            response_code: code,
            original_transaction_id: None,
            decided_at_us: crate::store::now_us(),
        }
    }

    /// Commits a decision through the writer and waits until it is durable.
    pub(crate) async fn commit(&self, decision: Decision) -> Result<Committed, ResponseCode> {
        let atc = decision.atc;
        let submitted = Instant::now();
        let result = self.writer.submit(decision).await;
        self.metrics
            .commit_wait
            .observe_us(u64::try_from(submitted.elapsed().as_micros()).unwrap_or(u64::MAX));
        match result {
            Ok(c) => {
                if let Some(a) = atc {
                    self.cards.note_atc(a.card_id, a.atc);
                }
                Ok(c)
            }
            Err(WriteError::Decision(DecisionError::AtcNotIncreasing {
                card_id, atc_max, ..
            })) => {
                // Another node accepted this ATC or a later one first.
                tracing::warn!(card = card_id.0, "ATC not above the card's last at commit");
                self.cards.note_atc(card_id, atc_max);
                Err(ResponseCode::SuspectedFraud)
            }
            Err(WriteError::Decision(DecisionError::Duplicate { .. })) => {
                Err(ResponseCode::DuplicateTransmission)
            }
            Err(WriteError::Decision(DecisionError::InsufficientFunds(a))) => {
                self.cards.forget_balance(a);
                Err(ResponseCode::InsufficientFunds)
            }
            Err(e) => {
                tracing::error!(error = %e, "decision not committed");
                Err(ResponseCode::SystemMalfunction)
            }
        }
    }

    /// Records a decline (no money moves). A decline that cannot be recorded is still
    /// answered with its code; a duplicate is answered 94.
    pub(crate) async fn decline(
        &self,
        req: &Request,
        kind: TransactionKind,
        card: Option<&CardEntry>,
        code: ResponseCode,
    ) -> Outcome {
        self.decline_consuming(req, kind, card, code, None).await
    }

    /// [`Pipeline::decline`] of a request whose cryptogram verified: the decline consumes its
    /// ATC, so the same field 55 cannot be tried again.
    pub(crate) async fn decline_consuming(
        &self,
        req: &Request,
        kind: TransactionKind,
        card: Option<&CardEntry>,
        code: ResponseCode,
        atc: Option<CardAtc>,
    ) -> Outcome {
        debug_assert!(!code.is_approved());
        let issuer = card.map(|c| c.card.issuer.clone());
        let decision = Decision {
            transaction: self.record(req, kind, card, issuer, code),
            legs: Vec::new(),
            balance_ops: Vec::new(),
            event: None,
            reversal: None,
            advice: None,
            atc,
        };
        match self.commit(decision).await {
            Err(ResponseCode::DuplicateTransmission) => {
                Outcome::answer(ResponseCode::DuplicateTransmission)
            }
            _ => Outcome::answer(code),
        }
    }

    /// Step 4: the card exists, may transact and has not expired.
    pub(crate) async fn card_step(&self, req: &Request) -> Result<Arc<CardEntry>, ResponseCode> {
        let pan = req.pan.as_ref().ok_or(ResponseCode::FormatError)?;
        let entry = match self.cards.lookup(&*self.store, pan).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err(ResponseCode::InvalidCardNumber),
            Err(e) => {
                tracing::error!(error = %e, "card lookup failed");
                return Err(ResponseCode::SystemMalfunction);
            }
        };
        if let Some(code) = self.cards.status(&entry).decline_code() {
            return Err(code);
        }
        if expired(&entry.card.expiry_yymm, crate::store::now_us()) {
            return Err(ResponseCode::ExpiredCard);
        }
        if let Some(given) = &req.expiry_yymm {
            if given != &entry.card.expiry_yymm {
                return Err(ResponseCode::ExpiredCard);
            }
        }
        Ok(entry)
    }

    /// Step 5: a chip card must bring a valid ARQC for field 4, under an ATC above every ATC
    /// the card has used. Call with the card's lock held.
    ///
    /// EMV Book 3 Annex A (9F36): the card increments its ATC for every transaction and the
    /// cryptogram covers it, so a genuine ARQC never repeats an ATC. An ATC not above the
    /// highest seen is field 55 recorded and replayed (the cryptogram itself would verify):
    /// declined 59 "suspected fraud" (ISO 8583:1987 Annex A; 59 有作弊嫌疑 in the CUP/PBOC
    /// table) rather than 05, so the fraud desk can tell a replay from a failed cryptogram, and
    /// rather than 34 because a pick-up order would keep the genuine card of a cardholder whose
    /// terminal merely resent an old message. The replay check reads the in-memory mirror
    /// before any HSM call; the store re-checks at commit. A verified ATC more than
    /// [`PipelineConfig::atc_gap_max`] above the last is declined 59 too (with its ARPC, and
    /// recorded so the next transaction passes) and flagged in the audit log.
    pub(crate) async fn arqc_step(
        &self,
        req: &Request,
        entry: &CardEntry,
    ) -> Result<Option<security::VerifiedArqc>, ArqcDecline> {
        let Some(alg) = entry.card.issuance.icc_algorithm else {
            return Ok(None);
        };
        let icc = req.icc.as_deref().ok_or(ResponseCode::DoNotHonour)?;
        let pan = req.pan.as_ref().ok_or(ResponseCode::FormatError)?;
        let atc = security::field55_atc(icc).ok_or(ResponseCode::FormatError)?;
        let atc_max = self.cards.atc_max(entry);
        if atc_max.is_some_and(|m| atc <= m) {
            tracing::warn!(
                card = entry.card.card_id.0,
                atc,
                "ATC not above the card's last: replayed cryptogram declined"
            );
            return Err(ResponseCode::SuspectedFraud.into());
        }
        let verified = security::verify_arqc(
            &*self.hsm,
            &self.keys.issuer,
            pan,
            &entry.card.issuance.pan_sequence_number,
            alg,
            icc,
            req.amount_fen.get(),
        )
        .await?;
        match (atc_max, self.cfg.atc_gap_max) {
            (Some(max), Some(gap_max)) if atc - max > gap_max => {
                self.audit_atc_gap(entry.card.card_id, atc, max).await;
                Err(ArqcDecline {
                    code: ResponseCode::SuspectedFraud,
                    arqc: Some(verified),
                })
            }
            _ => Ok(Some(verified)),
        }
    }

    async fn audit_atc_gap(&self, card: CardId, atc: u16, atc_max: u16) {
        tracing::warn!(
            card = card.0,
            atc,
            atc_max,
            "ATC jumped beyond the allowed gap"
        );
        let entry = AuditEntry {
            actor: "switch".into(),
            action: "card.atc_gap".into(),
            subject: format!("card:{}", card.0),
            detail: serde_json::json!({ "atc": atc, "atc_max": atc_max }).to_string(),
            at_us: crate::store::now_us(),
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "audit append failed");
        }
    }

    /// Step 6 (switch verification): the PIN against the card's offset. Too many wrong PINs
    /// block the card (hot list) and answer 75.
    pub(crate) async fn pin_step(
        &self,
        req: &Request,
        entry: &CardEntry,
        tpk: &hsm_sim::keys::Tpk,
    ) -> Result<PinCheck, ResponseCode> {
        let block = req.pin_block.ok_or(ResponseCode::IncorrectPin)?;
        let pan = req.pan.as_ref().ok_or(ResponseCode::FormatError)?;
        let Some(offset) = &entry.card.issuance.pin_offset else {
            // Nothing to verify against here: the bank leg carries the PIN to the bank.
            return Ok(PinCheck::LeftToTheBank);
        };
        let card = entry.card.card_id;
        match security::verify_pin(&*self.hsm, &self.keys.issuer, tpk, pan, &block, offset).await {
            Ok(()) => {
                if let Ok(mut f) = self.pin_failures.lock() {
                    f.remove(&card);
                }
                Ok(PinCheck::Verified)
            }
            Err(ResponseCode::IncorrectPin) => {
                let failures = self
                    .pin_failures
                    .lock()
                    .map(|mut f| {
                        let n = f.entry(card).or_insert(0);
                        *n += 1;
                        *n
                    })
                    .unwrap_or(1);
                if failures >= self.cfg.pin_tries_max {
                    self.block_card(card, "PIN tries exceeded").await;
                    return Err(ResponseCode::PinTriesExceeded);
                }
                Err(ResponseCode::IncorrectPin)
            }
            Err(code) => Err(code),
        }
    }

    async fn block_card(&self, card: CardId, reason: &str) {
        let now = crate::store::now_us();
        self.cards.set_status(card, CardStatus::Blocked);
        if let Err(e) = self
            .store
            .set_card_status(card, CardStatus::Blocked, Some(reason), now)
            .await
        {
            tracing::error!(error = %e, "card block not stored");
        }
        let entry = AuditEntry {
            actor: "switch".into(),
            action: "card.status".into(),
            subject: format!("card:{}", card.0),
            detail: serde_json::json!({ "status": "blocked", "reason": reason }).to_string(),
            at_us: now,
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "audit append failed");
        }
    }

    /// Whether an institution is known, and as what.
    pub(crate) fn institution_kind(&self, id: &InstitutionId) -> Option<InstitutionKind> {
        self.institutions.get(id).copied()
    }
}

fn set_split(answer: &mut OwnedMessage<'_>, s: &SplitFields) -> Result<(), CodecError> {
    answer.set_path("63.1", format!("{:012}", s.pooled_fen).as_bytes())?;
    answer.set_path("63.2", format!("{:012}", s.personal_fen).as_bytes())?;
    answer.set_path("63.3", format!("{:012}", s.bank_fen).as_bytes())?;
    let bank = s
        .bank
        .as_ref()
        .map(|b| b.as_str().to_owned())
        .unwrap_or_default();
    answer.set_path("63.4", bank.as_bytes())?;
    answer.set_path(
        "63.5",
        format!("{:012}", s.personal_balance_after_fen.max(0)).as_bytes(),
    )?;
    Ok(())
}

/// True when a `YYMM` expiry is before the current month (China Standard Time).
fn expired(yymm: &str, now_us: i64) -> bool {
    let Ok(v) = yymm.parse::<u32>() else {
        return true;
    };
    let (yy, mm) = (v / 100, v % 100);
    let now = chrono::DateTime::from_timestamp_micros(now_us + 8 * 3_600 * 1_000_000)
        .unwrap_or_default()
        .naive_utc();
    use chrono::Datelike;
    let current = (now.year() as u32 % 100) * 12 + now.month();
    !(1..=12).contains(&mm) || yy * 12 + mm < current
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_checked_by_month_in_china_time() {
        // 2026-11-23 12:00 CST.
        let now = 1_795_406_400_000_000;
        assert!(!expired("2611", now));
        assert!(expired("2610", now));
        assert!(!expired("3012", now));
        assert!(expired("2613", now));
        assert!(expired("ab12", now));
    }
}
