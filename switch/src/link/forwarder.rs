//! Store-and-forward delivery of reversals to the banks.
//!
//! Why this exists: when a bank leg times out the switch declines the kiosk (91) and must make
//! sure the bank undoes whatever it may have approved. The pipeline queues a reversal in the
//! same database transaction as the decline; this forwarder polls the queue
//! ([`Store::due_reversals`]), sends each as a reversal advice (0420; 0421 for a repeat once an
//! attempt has gone unanswered, ISO 8583:1987 §4.1 message function "repeat"), acknowledges it
//! on the bank's 0430 ([`Store::ack_reversal`], whatever field 39 says: an advice response only
//! confirms receipt) and otherwise records the attempt with an exponential back-off
//! ([`Store::record_reversal_attempt`]). The queue lives in the store, so a restart loses
//! nothing: the next forwarder picks up where the last one stopped.
//!
//! The 0420 is rebuilt from the stored reversal and the transaction it belongs to
//! ([`Store::transaction`]): field 2 from the card, 3 from the transaction kind, 4 the reversal
//! amount, 7 and 11 the reversal's own (the pipeline gives them the bank leg's values), 32 the
//! acquirer, 33 the switch, 37 the RRN, 41 the terminal, 90 the original data elements
//! (0200, the STAN and time of field 11/7, acquirer, forwarder) and 100 the bank. The bank
//! finds the original by field 37 + field 2 (see [`crate::banksim`]).
//!
//! A destination whose link is down is skipped without recording an attempt (nothing was
//! sent); it is retried at the next poll.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use schemas::domain::{InstitutionId, ResponseCode};
use schemas::iso8583::{self, Mti, OwnedMessage, Spec};
use tokio::sync::watch;

use crate::gateway::BankGateway;
use crate::store::{
    now_us, PendingReversal, Store, StoreError, StoredTransaction, TransactionKind,
};

/// Settings of the forwarder.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// The switch's institution id (field 33 and 90.5).
    pub switch_institution: InstitutionId,
    /// Spec of the bank links.
    pub spec_name: String,
    /// Pause between polls of the queue.
    pub poll_interval: Duration,
    /// Most reversals read (and sent concurrently) per poll.
    pub batch_max: u32,
    /// Wait for each 0430.
    pub response_timeout: Duration,
    /// Delay before the first repeat.
    pub retry_backoff_min: Duration,
    /// Longest delay between repeats.
    pub retry_backoff_max: Duration,
}

impl ForwarderConfig {
    /// Defaults: poll every second, 64 per poll, 10 s response timeout, retries after
    /// 5 s doubling up to 10 min.
    pub fn new(switch_institution: InstitutionId) -> Self {
        ForwarderConfig {
            switch_institution,
            spec_name: "ssc87".into(),
            poll_interval: Duration::from_secs(1),
            batch_max: 64,
            response_timeout: Duration::from_secs(10),
            retry_backoff_min: Duration::from_secs(5),
            retry_backoff_max: Duration::from_secs(600),
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

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardReport {
    /// Reversals found due.
    pub due: u64,
    /// Acknowledged by a 0430.
    pub acknowledged: u64,
    /// Sent but not acknowledged (attempt recorded).
    pub unanswered: u64,
    /// Not sent because the bank's link is down.
    pub deferred: u64,
    /// Could not be built (missing transaction or card); retried at the longest back-off.
    pub unbuildable: u64,
}

/// Totals since start.
#[derive(Debug, Default)]
struct Totals {
    acknowledged: AtomicU64,
    unanswered: AtomicU64,
}

/// The reversal forwarder.
pub struct ReversalForwarder<S: Store, G: BankGateway> {
    store: Arc<S>,
    banks: Arc<G>,
    config: ForwarderConfig,
    spec: &'static Spec,
    totals: Totals,
}

enum Sent {
    Acknowledged,
    Unanswered(Option<ResponseCode>),
    Deferred,
    Unbuildable,
}

impl<S: Store, G: BankGateway> ReversalForwarder<S, G> {
    /// A forwarder over `store`, sending on `banks` (the issuer links).
    pub fn new(
        store: Arc<S>,
        banks: Arc<G>,
        config: ForwarderConfig,
    ) -> Result<Self, ForwarderError> {
        let spec =
            iso8583::spec(&config.spec_name).map_err(|e| ForwarderError::Config(e.to_string()))?;
        Ok(ReversalForwarder {
            store,
            banks,
            config,
            spec,
            totals: Totals::default(),
        })
    }

    /// Polls until `shutdown` turns true.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "reversal forwarder poll failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                r = shutdown.changed() => if r.is_err() { return },
            }
        }
    }

    /// One poll: sends every due reversal (at most `batch_max`, concurrently).
    pub async fn run_once(&self) -> Result<ForwardReport, ForwarderError> {
        let due = self
            .store
            .due_reversals(now_us(), self.config.batch_max)
            .await?;
        let mut report = ForwardReport {
            due: due.len() as u64,
            ..ForwardReport::default()
        };
        let outcomes = futures_util::future::join_all(due.iter().map(|r| self.forward(r))).await;
        for (reversal, outcome) in due.iter().zip(outcomes) {
            match outcome? {
                Sent::Acknowledged => report.acknowledged += 1,
                Sent::Deferred => report.deferred += 1,
                Sent::Unanswered(code) => {
                    report.unanswered += 1;
                    let next = now_us() + self.backoff_us(reversal.attempts);
                    self.store
                        .record_reversal_attempt(reversal.reversal_id, next, code)
                        .await?;
                }
                Sent::Unbuildable => {
                    report.unbuildable += 1;
                    let max = i64::try_from(self.config.retry_backoff_max.as_micros())
                        .unwrap_or(i64::MAX);
                    self.store
                        .record_reversal_attempt(reversal.reversal_id, now_us() + max, None)
                        .await?;
                }
            }
        }
        self.totals
            .acknowledged
            .fetch_add(report.acknowledged, Ordering::Relaxed);
        self.totals
            .unanswered
            .fetch_add(report.unanswered, Ordering::Relaxed);
        Ok(report)
    }

    /// Reversals acknowledged and attempts left unanswered since start.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.totals.acknowledged.load(Ordering::Relaxed),
            self.totals.unanswered.load(Ordering::Relaxed),
        )
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

    async fn forward(&self, reversal: &PendingReversal) -> Result<Sent, ForwarderError> {
        if !self.banks.is_up(&reversal.destination) {
            return Ok(Sent::Deferred);
        }
        let Some(original) = self
            .store
            .transaction(reversal.original_transaction_id)
            .await?
        else {
            tracing::error!(reversal = ?reversal.reversal_id, "reversal without its transaction");
            return Ok(Sent::Unbuildable);
        };
        let Some(card_id) = original.record.card_id else {
            tracing::error!(reversal = ?reversal.reversal_id, "reversal of a transaction without a card");
            return Ok(Sent::Unbuildable);
        };
        let pan = self.store.card_pan(card_id).await?;
        let msg = match self.advice(reversal, &original, pan.expose_digits()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(reversal = ?reversal.reversal_id, error = %e, "0420 not buildable");
                return Ok(Sent::Unbuildable);
            }
        };
        match self
            .banks
            .send(&reversal.destination, msg, self.config.response_timeout)
            .await
        {
            Ok(answer) => {
                let code = answer
                    .get_str(39)
                    .ok()
                    .and_then(|c| ResponseCode::parse(&c).ok());
                match (answer.mti().as_str().get(..3), code) {
                    (Some("043"), Some(code)) => {
                        self.store
                            .ack_reversal(reversal.reversal_id, code, now_us())
                            .await?;
                        tracing::info!(reversal = ?reversal.reversal_id, bank = %reversal.destination,
                            code = %code, "reversal acknowledged");
                        Ok(Sent::Acknowledged)
                    }
                    (_, code) => Ok(Sent::Unanswered(code)),
                }
            }
            Err(e) => {
                tracing::warn!(reversal = ?reversal.reversal_id, bank = %reversal.destination,
                    error = %e, "reversal not acknowledged");
                Ok(Sent::Unanswered(None))
            }
        }
    }

    /// The 0420 (first attempt) or 0421 (repeat) for `reversal`.
    fn advice(
        &self,
        reversal: &PendingReversal,
        original: &StoredTransaction,
        pan: &str,
    ) -> Result<OwnedMessage<'static>, iso8583::Error> {
        let t = &original.record;
        let mti = if reversal.attempts > 0 {
            "0421"
        } else {
            "0420"
        };
        let processing_code = match t.kind {
            TransactionKind::Refund => "200000",
            TransactionKind::BenefitCredit => "210000",
            TransactionKind::BalanceInquiry => "310000",
            _ => "000000",
        };
        let original_data = format!(
            "0200{:06}{}{:0>11}{:0>11}",
            reversal.stan.value(),
            reversal.transmission_at.as_str(),
            t.acquirer.as_str(),
            self.config.switch_institution.as_str()
        );
        let mut m = OwnedMessage::new(self.spec, Mti::new(mti)?);
        m.set_str(2, pan)?
            .set_str(3, processing_code)?
            .set_u64(4, reversal.amount_fen.unsigned_abs())?
            .set_str(7, reversal.transmission_at.as_str())?
            .set_u64(11, u64::from(reversal.stan.value()))?
            .set_str(32, t.acquirer.as_str())?
            .set_str(33, self.config.switch_institution.as_str())?
            .set_str(37, t.rrn.as_str())?
            .set_str(41, t.terminal_id.as_str())?
            .set_str(49, "156")?
            .set_str(90, &original_data)?
            .set_str(100, reversal.destination.as_str())?;
        Ok(m)
    }
}
