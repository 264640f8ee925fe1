//! The bank cut-over: at the end of each settlement day the switch sends every bank, over its
//! issuer link, a 0500 with the switch's totals for that bank, and records the bank's 0510 (ISO
//! 8583:1987 §4.3.8, reconciliation request and response; `schemas/iso8583/ssc87.md`, "Bank
//! cut-over").
//!
//! Why this exists: a bank posts what the switch sends it (authorizations, stand-in advices,
//! reversals) in its own books. A lost advice, a reversal the bank never applied or a posting
//! its books dropped shows only when both sides compare their day. The switch computes its
//! figures from the store ([`CutoverStore::bank_totals`]: the bank's legs it approved that
//! day) in the one layout of [`schemas::iso8583::ReconciliationTotals`]; the bank answers 66 =
//! `1` (in balance) or `2` (out of balance) with its own figures; the switch compares them line
//! by line itself ([`ReconciliationTotals::differing_fields`]) and records the outcome per bank
//! and day. An out-of-balance day is a reconciliation exception until an operator resolves it
//! (`POST /reconciliations/{id}/resolve`).
//!
//! When: [`Cutover::run`] looks every `poll_interval` for the latest settlement day whose
//! cut-over time (`cutover_at`, China Standard Time, after midnight) has passed, and runs it for
//! every bank not yet reconciled. A bank whose link is down, or whose stand-in advices and
//! reversals are still waiting in the store-and-forward queue (its books would lack them), is
//! tried again at the next poll; the queue is waited for at most `saf_wait_max` after the
//! cut-over time. A 0500 that got no usable answer is tried again after `retry_interval`. A
//! day a bank could not be reconciled on stays pending (with why, for operators) and is tried
//! again at every look, also once later days are due.
//! "Never twice for the same bank and day" is the store's rule (one record per bank and day,
//! claimed before each attempt: [`CutoverStore::claim_bank_reconciliation`]), so it holds
//! across restarts and across nodes. [`Cutover::run_day`] runs one day on demand (`POST
//! /cutover`, the demo).
//!
//! The 0500 to a bank carries 7, 11 (the link's next STAN), 15 the settlement day (`MMDD`), 33
//! the switch, 100 the bank, the switch's figures for the bank in 74-77 and 86-89, and 97 their
//! net from the bank's side (`D`: the bank owes the network for the day).

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime, Timelike};
use schemas::domain::{InstitutionId, ResponseCode};
use schemas::iso8583::{self, Mti, OwnedMessage, ReconciliationTotals, SettlementCode, Spec};
use tokio::sync::watch;

use crate::issuer::gateway::BankGateway;
use crate::store::cutover::{
    BankAnswer, ReconciliationCount, ReconciliationQuery, ReconciliationStatus,
};
use crate::store::{SafBacklog, Store, StoreError};
use crate::wire::network::transmission_now;
use crate::wire::settlement_day::{self, CST_OFFSET_US, DAY_US};

/// Most pending reconciliations the task reads per look (their days are tried again).
pub const PENDING_DAYS_READ_MAX: u32 = 100;

/// Where the switch's time comes from: the system clock, or a test's.
pub trait Clock: Send + Sync + 'static {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        crate::store::now_us()
    }
}

/// Settings of the cut-over (`[switch] cutover_at`, ...).
#[derive(Debug, Clone)]
pub struct CutoverConfig {
    /// The switch's institution id (field 33).
    pub switch_institution: InstitutionId,
    /// Spec of the bank links.
    pub spec_name: String,
    /// When, after midnight China Standard Time, the day before is cut over.
    pub cutover_at: NaiveTime,
    /// How often the task looks for a day to cut over.
    pub poll_interval: Duration,
    /// Wait for each 0510.
    pub response_timeout: Duration,
    /// Pause after an attempt that got no usable answer (longer than `response_timeout`: it
    /// is also how long a node holds its claim).
    pub retry_interval: Duration,
    /// How long after the cut-over time a bank's pending store-and-forward messages are
    /// waited for before its 0500 goes anyway.
    pub saf_wait_max: Duration,
    /// Whether [`Cutover::run_day`] may cut over today, a day not over yet (the demo).
    pub open_day_allowed: bool,
}

impl CutoverConfig {
    /// Defaults: 00:05 CST, a look every 30 s, 30 s for each answer, tries again after 60 s,
    /// waits at most one hour for the store-and-forward queue; today refused.
    pub fn new(switch_institution: InstitutionId) -> Self {
        CutoverConfig {
            switch_institution,
            spec_name: "ssc87".into(),
            cutover_at: NaiveTime::from_hms_opt(0, 5, 0).unwrap_or_default(),
            poll_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(30),
            retry_interval: Duration::from_secs(60),
            saf_wait_max: Duration::from_secs(3_600),
            open_day_allowed: false,
        }
    }
}

/// Why a cut-over could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A day that is not over yet (or not a day the clock can place).
    #[error("the settlement day {0} is not over")]
    DayNotOver(NaiveDate),
}

/// What the cut-over did with one bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankOutcome {
    /// Reconciled now: the bank's figures equal the switch's.
    InBalance,
    /// Reconciled now: they differ in these fields (74-77, 86-89, 97).
    OutOfBalance(Vec<u16>),
    /// Reconciled before: nothing sent.
    AlreadyReconciled,
    /// Not sent now (the link is down, the store-and-forward queue is not empty, another
    /// attempt is under way or not due): tried again later.
    Deferred(String),
    /// Sent, but no usable answer: tried again after the retry interval.
    Failed(String),
}

impl BankOutcome {
    /// Stable name (API, logs).
    pub fn as_str(&self) -> &'static str {
        match self {
            BankOutcome::InBalance => "in_balance",
            BankOutcome::OutOfBalance(_) => "out_of_balance",
            BankOutcome::AlreadyReconciled => "already_reconciled",
            BankOutcome::Deferred(_) => "deferred",
            BankOutcome::Failed(_) => "failed",
        }
    }
}

/// What one run did, per bank (in bank order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoverReport {
    /// The settlement day.
    pub day: NaiveDate,
    /// Each bank's outcome.
    pub banks: Vec<(InstitutionId, BankOutcome)>,
}

/// Cutting a settlement day over on demand: what the HTTP face (`POST /cutover`) holds, so it
/// does not depend on how the banks are reached.
#[async_trait::async_trait]
pub trait RunCutover: Send + Sync + 'static {
    /// See [`Cutover::run_day`].
    async fn run_day(&self, day: NaiveDate) -> Result<CutoverReport, CutoverError>;
}

#[async_trait::async_trait]
impl<S: Store, G: BankGateway> RunCutover for Cutover<S, G> {
    async fn run_day(&self, day: NaiveDate) -> Result<CutoverReport, CutoverError> {
        Cutover::run_day(self, day).await
    }
}

/// The cut-over of the banks behind a [`BankGateway`].
pub struct Cutover<S: Store, G: BankGateway> {
    store: Arc<S>,
    gateway: Arc<G>,
    banks: Vec<InstitutionId>,
    spec: &'static Spec,
    config: CutoverConfig,
    clock: Arc<dyn Clock>,
}

impl<S: Store, G: BankGateway> Cutover<S, G> {
    /// A cut-over of `banks` through `gateway`.
    pub fn new(
        store: Arc<S>,
        gateway: Arc<G>,
        banks: impl IntoIterator<Item = InstitutionId>,
        config: CutoverConfig,
    ) -> Result<Self, CutoverError> {
        let spec =
            iso8583::spec(&config.spec_name).map_err(|e| CutoverError::Config(e.to_string()))?;
        if config.retry_interval <= config.response_timeout {
            return Err(CutoverError::Config(
                "cutover retry_interval must be longer than its response timeout".into(),
            ));
        }
        let mut banks: Vec<InstitutionId> = banks.into_iter().collect();
        banks.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(Cutover {
            store,
            gateway,
            banks,
            spec,
            config,
            clock: Arc::new(SystemClock),
        })
    }

    /// With another clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The settings.
    pub fn config(&self) -> &CutoverConfig {
        &self.config
    }

    /// The latest settlement day whose cut-over time has passed at `now_us`.
    pub fn due_day(&self, now_us: i64) -> Option<NaiveDate> {
        due_day(now_us, self.config.cutover_at)
    }

    /// Looks for a due day every poll interval and cuts it over, until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // The first look one interval after start: a node that starts after the cut-over time
        // catches up then.
        let first = tokio::time::Instant::now() + self.config.poll_interval;
        let mut tick = tokio::time::interval_at(first, self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = shutdown.changed() => break }
            if *shutdown.borrow() {
                break;
            }
            for day in self.days_to_run().await {
                match self.run_day(day).await {
                    Ok(report) => log(&report),
                    Err(e) => tracing::warn!(error = %e, %day, "cut-over failed; tried again"),
                }
            }
        }
    }

    /// The days the task works on now, oldest first: earlier days a bank has not answered yet
    /// (its link was down, or it did not answer, when their turn came), then the day due.
    async fn days_to_run(&self) -> Vec<NaiveDate> {
        let Some(due) = self.due_day(self.clock.now_us()) else {
            return Vec::new();
        };
        let query = ReconciliationQuery {
            status: Some(ReconciliationStatus::Pending),
            limit: PENDING_DAYS_READ_MAX,
            ..ReconciliationQuery::default()
        };
        let mut days: Vec<NaiveDate> = match self.store.bank_reconciliations(&query).await {
            Ok(pending) => pending
                .iter()
                .map(|r| r.settlement_day)
                .filter(|d| *d < due)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cut-over: pending days unreadable");
                Vec::new()
            }
        };
        days.push(due);
        days.sort();
        days.dedup();
        days
    }

    /// Cuts `day` over with every bank not reconciled for it yet.
    pub async fn run_day(&self, day: NaiveDate) -> Result<CutoverReport, CutoverError> {
        let now = self.clock.now_us();
        let today = settlement_day::day_of(now).ok_or(CutoverError::DayNotOver(day))?;
        if day > today || (day == today && !self.config.open_day_allowed) {
            return Err(CutoverError::DayNotOver(day));
        }
        let done = self.store.reconciled_banks(day).await?;
        let mut report = CutoverReport {
            day,
            banks: Vec::with_capacity(self.banks.len()),
        };
        if self.banks.iter().all(|b| done.contains(b)) {
            report.banks = (self.banks.iter())
                .map(|b| (b.clone(), BankOutcome::AlreadyReconciled))
                .collect();
            return Ok(report);
        }
        let backlog = self.store.store_and_forward_backlog(0).await?;
        let saf_deadline = self.cutover_time_us(day).saturating_add(
            i64::try_from(self.config.saf_wait_max.as_micros()).unwrap_or(i64::MAX),
        );
        for bank in &self.banks {
            let deferred = if !self.gateway.is_up(bank) {
                Some("the bank's link is down")
            } else if saf_pending(&backlog, bank) && now < saf_deadline {
                Some("store-and-forward messages still pending")
            } else {
                None
            };
            let outcome = match deferred {
                _ if done.contains(bank) => BankOutcome::AlreadyReconciled,
                Some(why) => self.defer(bank, day, why).await?,
                None => self.reconcile(bank, day).await?,
            };
            report.banks.push((bank.clone(), outcome));
        }
        Ok(report)
    }

    /// Records why `bank`'s cut-over of `day` waits, so the day stays pending (and shown to
    /// operators) until it is reconciled, even once a later day is due.
    async fn defer(
        &self,
        bank: &InstitutionId,
        day: NaiveDate,
        why: &str,
    ) -> Result<BankOutcome, CutoverError> {
        let now = self.clock.now_us();
        let lease = now.saturating_add(
            i64::try_from(self.config.retry_interval.as_micros()).unwrap_or(i64::MAX),
        );
        if let Some(id) = self
            .store
            .claim_bank_reconciliation(bank, day, now, lease)
            .await?
        {
            // Nothing was sent: due again at the next look.
            self.store
                .record_reconciliation_attempt(id, why, now)
                .await?;
        }
        Ok(BankOutcome::Deferred(why.to_owned()))
    }

    /// When `day`'s cut-over is due, µs.
    fn cutover_time_us(&self, day: NaiveDate) -> i64 {
        let after = i64::from(self.config.cutover_at.num_seconds_from_midnight()) * 1_000_000;
        settlement_day::window_us(day).map_or(i64::MAX, |(_, end)| end.saturating_add(after))
    }

    /// One bank: claim the attempt, send the 0500, record the 0510.
    async fn reconcile(
        &self,
        bank: &InstitutionId,
        day: NaiveDate,
    ) -> Result<BankOutcome, CutoverError> {
        let now = self.clock.now_us();
        let retry_us = i64::try_from(self.config.retry_interval.as_micros()).unwrap_or(i64::MAX);
        let next = now.saturating_add(retry_us);
        let Some(id) = self
            .store
            .claim_bank_reconciliation(bank, day, now, next)
            .await?
        else {
            return Ok(BankOutcome::Deferred(
                "an attempt is under way or not due yet".into(),
            ));
        };
        let (from, to) = settlement_day::window_us(day).ok_or(CutoverError::DayNotOver(day))?;
        let ours = self.store.bank_totals(bank, from, to).await?;
        let (stan, request) = match self.request(bank, day, &ours) {
            Ok(r) => r,
            Err(e) => {
                self.store
                    .record_reconciliation_attempt(id, &e, next)
                    .await?;
                return Ok(BankOutcome::Failed(e));
            }
        };
        let answer = self
            .gateway
            .send(bank, request, self.config.response_timeout)
            .await
            .map_err(|e| e.to_string())
            .and_then(|a| read_answer(&a));
        let (code, theirs) = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(bank = %bank, %day, error = %e, "cut-over: no usable 0510");
                self.store
                    .record_reconciliation_attempt(id, &e, next)
                    .await?;
                return Ok(BankOutcome::Failed(e));
            }
        };
        let differing = ours.differing_fields(&theirs);
        if differing.is_empty() != (code == SettlementCode::InBalance) {
            // The switch's comparison decides; a bank that disagrees about its own 66 is noted.
            tracing::warn!(bank = %bank, %day, ?code, ?differing, "cut-over: the bank's 66 disagrees with the figures");
        }
        let recorded = BankAnswer {
            switch_totals: ours,
            bank_totals: theirs,
            bank_settlement_code: code.as_str().to_owned(),
            differing_fields: differing.clone(),
            stan,
            at_us: self.clock.now_us(),
        };
        if !self.store.finish_bank_reconciliation(id, &recorded).await? {
            return Ok(BankOutcome::AlreadyReconciled);
        }
        Ok(if differing.is_empty() {
            BankOutcome::InBalance
        } else {
            tracing::warn!(bank = %bank, %day, ?differing, "cut-over: bank out of balance");
            BankOutcome::OutOfBalance(differing)
        })
    }

    /// The 0500 for `bank` and `day` with the switch's figures, and its STAN.
    fn request(
        &self,
        bank: &InstitutionId,
        day: NaiveDate,
        ours: &ReconciliationTotals,
    ) -> Result<(String, OwnedMessage<'static>), String> {
        let stan = format!("{:06}", self.gateway.next_stan(bank).value());
        let mut m = OwnedMessage::new(self.spec, Mti::new("0500").map_err(|e| e.to_string())?);
        m.set_str(7, &transmission_now())
            .and_then(|m| m.set_str(11, &stan))
            .and_then(|m| m.set_str(15, &settlement_day::mmdd(day)))
            .and_then(|m| m.set_str(33, self.config.switch_institution.as_str()))
            .and_then(|m| m.set_str(100, bank.as_str()))
            .map_err(|e| e.to_string())?;
        ours.to_message(&mut m).map_err(|e| e.to_string())?;
        Ok((stan, m))
    }
}

/// The bank's settlement code and figures from a 0510, or why they cannot be used.
fn read_answer(a: &OwnedMessage<'_>) -> Result<(SettlementCode, ReconciliationTotals), String> {
    let mut wire = Vec::new();
    a.spec().encode(a, &mut wire).map_err(|e| e.to_string())?;
    let msg = a.spec().decode(&wire).map_err(|e| e.to_string())?;
    let rc = msg.get_str(39).map_err(|e| format!("field 39: {e}"))?;
    if rc != ResponseCode::Approved.as_str() {
        return Err(format!("the bank answered 39 = {rc}"));
    }
    let code = SettlementCode::from_message(&msg).map_err(|e| e.to_string())?;
    if code == SettlementCode::Error {
        return Err("the bank answered 66 = 3 (error)".into());
    }
    let theirs = ReconciliationTotals::from_message(&msg).map_err(|e| e.to_string())?;
    Ok((code, theirs))
}

/// Whether `bank` has stand-in advices or reversals waiting in the store-and-forward queue.
fn saf_pending(backlog: &SafBacklog, bank: &InstitutionId) -> bool {
    backlog
        .queues
        .iter()
        .any(|q| q.destination == *bank && q.pending > 0)
}

/// The latest settlement day whose cut-over time (`at` after midnight CST) has passed at
/// `now_us`: yesterday once `at` has passed today, else the day before yesterday.
pub fn due_day(now_us: i64, at: NaiveTime) -> Option<NaiveDate> {
    let today = settlement_day::day_of(now_us)?;
    let since_midnight_us = (now_us.checked_add(CST_OFFSET_US)?).rem_euclid(DAY_US);
    let at_us = i64::from(at.num_seconds_from_midnight()) * 1_000_000;
    let back = if since_midnight_us >= at_us { 1 } else { 2 };
    today.checked_sub_days(chrono::Days::new(back))
}

fn log(report: &CutoverReport) {
    for (bank, outcome) in &report.banks {
        match outcome {
            BankOutcome::AlreadyReconciled => {}
            // Looked at again every poll while it lasts: not worth a line each time.
            BankOutcome::Deferred(why) => {
                tracing::debug!(bank = %bank, day = %report.day, why, "cut-over deferred")
            }
            BankOutcome::InBalance => {
                tracing::info!(bank = %bank, day = %report.day, "cut-over: bank in balance")
            }
            other => tracing::info!(bank = %bank, day = %report.day, outcome = ?other, "cut-over"),
        }
    }
}

/// The cut-over's series, in the Prometheus text format, from the store's records (so every
/// node shows the same figures, across restarts): `switch_bank_reconciliations_total{bank,
/// result}` the days reconciled per bank, `in_balance` or `out_of_balance` (resolved or not),
/// `switch_bank_reconciliation_exceptions_open{bank}` the out-of-balance days no operator has
/// resolved yet, and `switch_bank_reconciliations_pending{bank}` the days sent but unanswered.
pub fn render_metrics(out: &mut String, counts: &[ReconciliationCount]) {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    let mut per_bank: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for c in counts {
        let slot = ReconciliationStatus::ALL
            .iter()
            .position(|s| *s == c.status)
            .unwrap_or(0);
        per_bank.entry(c.bank.as_str()).or_default()[slot] += c.count;
    }
    let _ = writeln!(
        out,
        "# HELP switch_bank_reconciliations_total Settlement days reconciled with each bank at cut-over, by result.\n# TYPE switch_bank_reconciliations_total counter"
    );
    for (bank, [_, in_balance, open, resolved]) in &per_bank {
        let _ = writeln!(
            out,
            "switch_bank_reconciliations_total{{bank=\"{bank}\",result=\"in_balance\"}} {in_balance}\nswitch_bank_reconciliations_total{{bank=\"{bank}\",result=\"out_of_balance\"}} {}",
            open + resolved
        );
    }
    let _ = writeln!(
        out,
        "# HELP switch_bank_reconciliation_exceptions_open Out-of-balance days no operator has resolved yet.\n# TYPE switch_bank_reconciliation_exceptions_open gauge"
    );
    for (bank, [_, _, open, _]) in &per_bank {
        let _ = writeln!(
            out,
            "switch_bank_reconciliation_exceptions_open{{bank=\"{bank}\"}} {open}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP switch_bank_reconciliations_pending Cut-overs claimed but not answered by the bank yet.\n# TYPE switch_bank_reconciliations_pending gauge"
    );
    for (bank, [pending, ..]) in &per_bank {
        let _ = writeln!(
            out,
            "switch_bank_reconciliations_pending{{bank=\"{bank}\"}} {pending}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23 00:00 CST.
    const MIDNIGHT: i64 = 1_795_363_200_000_000;

    fn day(d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(2026, 11, d)
    }

    #[test]
    fn a_day_is_due_once_the_cut_over_time_after_its_midnight_has_passed() {
        let at = NaiveTime::from_hms_opt(0, 5, 0).unwrap();
        assert_eq!(settlement_day::day_of(MIDNIGHT), day(23));
        assert_eq!(due_day(MIDNIGHT, at), day(21), "00:00: not yet the 22nd");
        let four_past = MIDNIGHT + 4 * 60 * 1_000_000;
        assert_eq!(due_day(four_past, at), day(21));
        let five_past = MIDNIGHT + 5 * 60 * 1_000_000;
        assert_eq!(due_day(five_past, at), day(22));
        assert_eq!(due_day(MIDNIGHT + DAY_US - 1, at), day(22));
        assert_eq!(
            due_day(MIDNIGHT - 1, at),
            day(21),
            "23:59:59 the day before"
        );
    }

    #[test]
    fn the_metrics_count_days_by_result_and_the_open_exceptions() {
        let bank = InstitutionId::parse("0803000010").unwrap();
        let counts = [
            (ReconciliationStatus::InBalance, 5),
            (ReconciliationStatus::OutOfBalance, 1),
            (ReconciliationStatus::Resolved, 2),
        ]
        .map(|(status, count)| ReconciliationCount {
            bank: bank.clone(),
            status,
            count,
        });
        let mut out = String::new();
        render_metrics(&mut out, &counts);
        for line in [
            "switch_bank_reconciliations_total{bank=\"0803000010\",result=\"in_balance\"} 5",
            "switch_bank_reconciliations_total{bank=\"0803000010\",result=\"out_of_balance\"} 3",
            "switch_bank_reconciliation_exceptions_open{bank=\"0803000010\"} 1",
            "switch_bank_reconciliations_pending{bank=\"0803000010\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }
}
