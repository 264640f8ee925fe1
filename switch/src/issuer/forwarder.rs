//! Store-and-forward delivery to the banks: reversals (0420/0421 → 0430) and stand-in advices
//! (0220/0221 → 0230, 0120/0121 → 0130), ISO 8583:1987 §4.1 message functions "advice" and
//! "advice repeat".
//!
//! Why this exists: two things the switch did must reach a bank even when its link is down.
//! When a bank leg times out the switch declines the kiosk (91) and must make sure the bank
//! undoes whatever it may have approved (a reversal). When the bank's link is down and a
//! stand-in rule lets the switch approve on the bank's behalf, the bank must learn of the
//! approval so its account and its totals carry it (an advice). The pipeline queues either in
//! the same database transaction as its decision; this forwarder polls both queues
//! ([`Store::due_advices`], [`Store::due_reversals`]), sends each message (the repeat MTI once
//! an attempt has gone unanswered), acknowledges it on the bank's answer of the matching class
//! ([`Store::ack_advice`], [`Store::ack_reversal`], whatever field 39 says: an advice response
//! only confirms receipt) and otherwise records the attempt with an exponential back-off. The
//! queues live in the store, so a restart loses nothing: the next forwarder picks up where the
//! last one stopped.
//!
//! Ordering: a reversal of a stand-in approval must not reach the bank before the advice of
//! that approval (the bank would answer 25, original unknown, and later post the advice as if
//! it stood). The store holds such a reversal back while its advice is pending, and each poll
//! sends advices first, then reads the reversals that became due, so an advice and its
//! reversal go out in order within one poll.
//!
//! Messages are rebuilt from the queued row and the transaction it belongs to
//! ([`Store::transaction`]): field 2 from the card, 4 the queued amount, 7 and 11 the queued
//! ones (allocated on the bank link when queued), 32 the acquirer, 33 the switch, 37 the RRN,
//! 41 the terminal, 49 `156`, 100 the bank. A reversal adds 3 from the transaction kind and 90
//! the original data elements (0200, the STAN and time of 11/7, acquirer, forwarder); an advice
//! adds 3 of the bank leg, 38 the stand-in approval code, 39 the stand-in reason and 48 the
//! stand-in indicator `STI0011` (`schemas/iso8583/ssc87.md`, "Stand-in advices"). The bank finds
//! the original by field 37 + field 2 (as the simulated bank, `sim::banksim`, does).
//!
//! A destination whose link is down is skipped without recording an attempt (nothing was
//! sent); it is retried at the next poll.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use schemas::domain::{InstitutionId, ResponseCode};
use schemas::iso8583::{self, Mti, OwnedMessage, Spec};
use tokio::sync::watch;

use crate::issuer::gateway::BankGateway;
use crate::metrics::Metrics;
use crate::store::{
    now_us, PendingAdvice, PendingReversal, SafQueue, Store, StoreError, StoredTransaction,
    TransactionId, TransactionKind,
};

/// Settings of the forwarder.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// The switch's institution id (field 33 and 90.5).
    pub switch_institution: InstitutionId,
    /// Spec of the bank links.
    pub spec_name: String,
    /// Pause between polls of the queues.
    pub poll_interval: Duration,
    /// Most messages of each kind read (and sent concurrently) per poll.
    pub batch_max: u32,
    /// Wait for each answer.
    pub response_timeout: Duration,
    /// Delay before the first repeat.
    pub retry_backoff_min: Duration,
    /// Longest delay between repeats.
    pub retry_backoff_max: Duration,
    /// A message unacknowledged for longer than this is overdue: the forwarder logs a warning
    /// for its queue (see [`Forwarder::overdue`]), at most once per `backlog_check_interval`.
    pub backlog_alert_age: Duration,
    /// How often the forwarder looks for overdue messages.
    pub backlog_check_interval: Duration,
}

impl ForwarderConfig {
    /// Defaults: poll every second, 64 per poll, 10 s response timeout, retries after
    /// 5 s doubling up to 10 min; a message waiting 15 min is overdue, checked every minute.
    pub fn new(switch_institution: InstitutionId) -> Self {
        ForwarderConfig {
            switch_institution,
            spec_name: "ssc87".into(),
            poll_interval: Duration::from_secs(1),
            batch_max: 64,
            response_timeout: Duration::from_secs(10),
            retry_backoff_min: Duration::from_secs(5),
            retry_backoff_max: Duration::from_secs(600),
            backlog_alert_age: Duration::from_secs(15 * 60),
            backlog_check_interval: Duration::from_secs(60),
        }
    }
}

/// Why the forwarder could not run.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
}

/// What one poll did, both kinds of message together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardReport {
    /// Messages found due.
    pub due: u64,
    /// Acknowledged by the bank.
    pub acknowledged: u64,
    /// Sent but not acknowledged (attempt recorded).
    pub unanswered: u64,
    /// Not sent because the bank's link is down.
    pub deferred: u64,
    /// Could not be built (missing transaction or card); retried at the longest back-off.
    pub unbuildable: u64,
}

impl ForwardReport {
    fn add(&mut self, other: ForwardReport) {
        self.due += other.due;
        self.acknowledged += other.acknowledged;
        self.unanswered += other.unanswered;
        self.deferred += other.deferred;
        self.unbuildable += other.unbuildable;
    }
}

/// Totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardTotals {
    /// Reversals acknowledged (0430).
    pub reversals_acknowledged: u64,
    /// Advices acknowledged (0130/0230).
    pub advices_acknowledged: u64,
    /// Attempts left unanswered, both kinds.
    pub unanswered: u64,
}

#[derive(Debug, Default)]
struct Totals {
    reversals_acknowledged: AtomicU64,
    advices_acknowledged: AtomicU64,
    unanswered: AtomicU64,
}

/// One queued message, of either kind.
enum Queued<'a> {
    Reversal(&'a PendingReversal),
    Advice(&'a PendingAdvice),
}

impl Queued<'_> {
    fn destination(&self) -> &InstitutionId {
        match self {
            Queued::Reversal(r) => &r.destination,
            Queued::Advice(a) => &a.destination,
        }
    }

    fn attempts(&self) -> i64 {
        match self {
            Queued::Reversal(r) => r.attempts,
            Queued::Advice(a) => a.attempts,
        }
    }

    /// The transaction the message is rebuilt from.
    fn transaction_id(&self) -> TransactionId {
        match self {
            Queued::Reversal(r) => r.original_transaction_id,
            Queued::Advice(a) => a.transaction_id,
        }
    }

    /// The MTI of the next attempt.
    fn mti(&self) -> &'static str {
        match self {
            Queued::Reversal(r) if r.attempts > 0 => "0421",
            Queued::Reversal(_) => "0420",
            Queued::Advice(a) => a.class.mti(a.attempts),
        }
    }

    /// True when `answer_mti` answers this message (its class, function "response").
    fn answered_by(&self, answer_mti: &str) -> bool {
        let mti = self.mti();
        answer_mti.len() == 4
            && answer_mti.get(..2) == mti.get(..2)
            && answer_mti.get(2..3) == Some("3")
    }

    fn label(&self) -> &'static str {
        match self {
            Queued::Reversal(_) => "reversal",
            Queued::Advice(_) => "advice",
        }
    }
}

/// The store-and-forward forwarder of reversals and advices.
pub struct Forwarder<S: Store, G: BankGateway> {
    store: Arc<S>,
    banks: Arc<G>,
    config: ForwarderConfig,
    spec: &'static Spec,
    totals: Totals,
    metrics: Option<Arc<Metrics>>,
}

enum Sent {
    Acknowledged,
    Unanswered(Option<ResponseCode>),
    Deferred,
    Unbuildable,
}

impl<S: Store, G: BankGateway> Forwarder<S, G> {
    /// A forwarder over `store`, sending on `banks` (the issuer links).
    pub fn new(
        store: Arc<S>,
        banks: Arc<G>,
        config: ForwarderConfig,
    ) -> Result<Self, ForwarderError> {
        let spec =
            iso8583::spec(&config.spec_name).map_err(|e| ForwarderError::Config(e.to_string()))?;
        Ok(Forwarder {
            store,
            banks,
            config,
            spec,
            totals: Totals::default(),
            metrics: None,
        })
    }

    /// Also counts acknowledged advices into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Polls until `shutdown` turns true.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut next_check = tokio::time::Instant::now() + self.config.backlog_check_interval;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "forwarder poll failed");
            }
            if tokio::time::Instant::now() >= next_check {
                next_check = tokio::time::Instant::now() + self.config.backlog_check_interval;
                self.warn_overdue().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                r = shutdown.changed() => if r.is_err() { return },
            }
        }
    }

    /// The queues holding a message unacknowledged for longer than `backlog_alert_age`: a
    /// bank that keeps refusing or never answers, or a reversal stuck behind an advice the bank
    /// will not acknowledge. Retrying goes on regardless; this is for the people who must call
    /// the bank.
    pub async fn overdue(&self) -> Result<Vec<SafQueue>, StoreError> {
        let age = i64::try_from(self.config.backlog_alert_age.as_micros()).unwrap_or(i64::MAX);
        let cutoff = now_us().saturating_sub(age);
        let backlog = self.store.store_and_forward_backlog(0).await?;
        Ok(backlog
            .queues
            .into_iter()
            .filter(|q| q.oldest_created_at_us <= cutoff)
            .collect())
    }

    async fn warn_overdue(&self) {
        match self.overdue().await {
            Ok(queues) => {
                let now = now_us();
                for q in queues {
                    tracing::warn!(
                        kind = q.kind.as_str(),
                        bank = q.destination.as_str(),
                        pending = q.pending,
                        held_behind_advice = q.held,
                        attempts_max = q.attempts_max,
                        oldest_age_s = (now - q.oldest_created_at_us) / 1_000_000,
                        "store-and-forward messages overdue: the bank has not acknowledged them"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "store-and-forward backlog unreadable"),
        }
    }

    /// One poll: sends every due advice, then every due reversal (at most `batch_max` of
    /// each, concurrently within a kind). Reversals are read after the advices were
    /// acknowledged, so a reversal held back for its advice goes out in the same poll.
    pub async fn run_once(&self) -> Result<ForwardReport, ForwarderError> {
        let advices = self
            .store
            .due_advices(now_us(), self.config.batch_max)
            .await?;
        let mut report = self
            .forward_all(advices.iter().map(Queued::Advice).collect())
            .await?;
        let reversals = self
            .store
            .due_reversals(now_us(), self.config.batch_max)
            .await?;
        report.add(
            self.forward_all(reversals.iter().map(Queued::Reversal).collect())
                .await?,
        );
        Ok(report)
    }

    async fn forward_all(&self, due: Vec<Queued<'_>>) -> Result<ForwardReport, ForwarderError> {
        let mut report = ForwardReport {
            due: due.len() as u64,
            ..ForwardReport::default()
        };
        let outcomes = futures_util::future::join_all(due.iter().map(|q| self.forward(q))).await;
        for (queued, outcome) in due.iter().zip(outcomes) {
            match outcome? {
                Sent::Acknowledged => {
                    report.acknowledged += 1;
                    self.count_ack(queued);
                }
                Sent::Deferred => report.deferred += 1,
                Sent::Unanswered(code) => {
                    report.unanswered += 1;
                    let next = now_us() + self.backoff_us(queued.attempts());
                    self.record_attempt(queued, next, code).await?;
                }
                Sent::Unbuildable => {
                    report.unbuildable += 1;
                    let max = i64::try_from(self.config.retry_backoff_max.as_micros())
                        .unwrap_or(i64::MAX);
                    self.record_attempt(queued, now_us() + max, None).await?;
                }
            }
        }
        self.totals
            .unanswered
            .fetch_add(report.unanswered, Ordering::Relaxed);
        Ok(report)
    }

    fn count_ack(&self, queued: &Queued<'_>) {
        let counter = match queued {
            Queued::Reversal(_) => &self.totals.reversals_acknowledged,
            Queued::Advice(_) => {
                if let Some(m) = &self.metrics {
                    m.advices_acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                &self.totals.advices_acknowledged
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    async fn record_attempt(
        &self,
        queued: &Queued<'_>,
        next_attempt_at_us: i64,
        code: Option<ResponseCode>,
    ) -> Result<(), StoreError> {
        match queued {
            Queued::Reversal(r) => {
                self.store
                    .record_reversal_attempt(r.reversal_id, next_attempt_at_us, code)
                    .await
            }
            Queued::Advice(a) => {
                self.store
                    .record_advice_attempt(a.advice_id, next_attempt_at_us, code)
                    .await
            }
        }
    }

    async fn acknowledge(&self, queued: &Queued<'_>, code: ResponseCode) -> Result<(), StoreError> {
        match queued {
            Queued::Reversal(r) => self.store.ack_reversal(r.reversal_id, code, now_us()).await,
            Queued::Advice(a) => self.store.ack_advice(a.advice_id, code, now_us()).await,
        }
    }

    /// Messages acknowledged and attempts left unanswered since start.
    pub fn totals(&self) -> ForwardTotals {
        ForwardTotals {
            reversals_acknowledged: self.totals.reversals_acknowledged.load(Ordering::Relaxed),
            advices_acknowledged: self.totals.advices_acknowledged.load(Ordering::Relaxed),
            unanswered: self.totals.unanswered.load(Ordering::Relaxed),
        }
    }

    fn backoff_us(&self, attempts_before: i64) -> i64 {
        let exp = u32::try_from(attempts_before.clamp(0, 20)).unwrap_or(20);
        let d = self
            .config
            .retry_backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.config.retry_backoff_max);
        i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
    }

    async fn forward(&self, queued: &Queued<'_>) -> Result<Sent, ForwarderError> {
        let bank = queued.destination();
        let what = queued.label();
        if !self.banks.is_up(bank) {
            return Ok(Sent::Deferred);
        }
        let id = queued.transaction_id();
        let Some(original) = self.store.transaction(id).await? else {
            tracing::error!(transaction = ?id, what, "queued message without its transaction");
            return Ok(Sent::Unbuildable);
        };
        let Some(card_id) = original.record.card_id else {
            tracing::error!(transaction = ?id, what, "queued message for a transaction without a card");
            return Ok(Sent::Unbuildable);
        };
        let pan = self.store.card_pan(card_id).await?;
        let msg = match self.message(queued, &original, pan.expose_digits()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(transaction = ?id, what, error = %e, "message not buildable");
                return Ok(Sent::Unbuildable);
            }
        };
        match self
            .banks
            .send(bank, msg, self.config.response_timeout)
            .await
        {
            Ok(answer) => {
                let code = answer
                    .get_str(39)
                    .ok()
                    .and_then(|c| ResponseCode::parse(&c).ok());
                match code {
                    Some(code) if queued.answered_by(answer.mti().as_str()) => {
                        self.acknowledge(queued, code).await?;
                        tracing::info!(transaction = ?id, what, bank = %bank, code = %code, "acknowledged");
                        Ok(Sent::Acknowledged)
                    }
                    code => Ok(Sent::Unanswered(code)),
                }
            }
            Err(e) => {
                tracing::warn!(transaction = ?id, what, bank = %bank, error = %e, "not acknowledged");
                Ok(Sent::Unanswered(None))
            }
        }
    }

    /// The message of the next attempt of `queued`.
    fn message(
        &self,
        queued: &Queued<'_>,
        original: &StoredTransaction,
        pan: &str,
    ) -> Result<OwnedMessage<'static>, iso8583::Error> {
        let t = &original.record;
        let (amount_fen, stan, transmission_at) = match queued {
            Queued::Reversal(r) => (r.amount_fen, r.stan, &r.transmission_at),
            Queued::Advice(a) => (a.amount_fen, a.stan, &a.transmission_at),
        };
        let mut m = OwnedMessage::new(self.spec, Mti::new(queued.mti())?);
        m.set_str(2, pan)?
            .set_u64(4, amount_fen.unsigned_abs())?
            .set_str(7, transmission_at.as_str())?
            .set_u64(11, u64::from(stan.value()))?
            .set_str(32, t.acquirer.as_str())?
            .set_str(33, self.config.switch_institution.as_str())?
            .set_str(37, t.rrn.as_str())?
            .set_str(41, t.terminal_id.as_str())?
            .set_str(49, "156")?
            .set_str(100, queued.destination().as_str())?;
        match queued {
            Queued::Reversal(r) => {
                let processing_code = match t.kind {
                    TransactionKind::Refund => "200000",
                    TransactionKind::BenefitCredit => "210000",
                    TransactionKind::BalanceInquiry => "310000",
                    _ => "000000",
                };
                let original_data = format!(
                    "0200{:06}{}{:0>11}{:0>11}",
                    r.stan.value(),
                    r.transmission_at.as_str(),
                    t.acquirer.as_str(),
                    self.config.switch_institution.as_str()
                );
                m.set_str(3, processing_code)?.set_str(90, &original_data)?;
            }
            Queued::Advice(a) => {
                m.set_str(3, &a.processing_code)?
                    .set_str(38, &a.auth_code)?
                    .set_str(39, a.reason.as_str())?
                    .set_str(48, STAND_IN_INDICATOR)?;
            }
        }
        Ok(m)
    }
}

/// Field 48 of a stand-in advice: tag `STI`, length `001`, value `1` (approved in stand-in by
/// the switch), in the tag-length-value form of the bank links' field 48 (ssc87.md).
pub const STAND_IN_INDICATOR: &str = "STI0011";
