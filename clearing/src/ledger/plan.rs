//! Turning a batch of bus deliveries into ledger writes, without touching the database.
//!
//! The apply path is split in three so the expensive part runs once per batch, not per event:
//! decode and validate every payload ([`parse`]), look up in one query per table what the batch
//! refers to ([`Known`]), then [`plan`] the rows to write: postings, two-phase holds (TigerBeetle's
//! pending → posted / voided), aggregated balance and position deltas, dead letters, offset gaps
//! (`gap`) and the next bus offsets. Everything here is pure, so the rules are unit-tested
//! without a database.

use super::gap::OffsetGap;
use super::legs;
use schemas::events::{EventError, EventType, LedgerAccount, Leg, SettlementEvent};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use uuid::Uuid;

/// Why an event went to the dead-letter table instead of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoisonReason {
    /// The payload is not UTF-8 JSON of a settlement event.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The event carries a schema version this consumer does not know (never guessed).
    #[error("unsupported schema version {0}")]
    UnsupportedVersion(u16),
    /// `SettlementEvent::validate` refused it.
    #[error("invalid event: {0}")]
    Invalid(EventError),
    /// A completion or release names a hold the ledger never saw.
    #[error("hold {0} is unknown")]
    HoldUnknown(Uuid),
    /// A completion or release names a hold already posted or voided.
    #[error("hold {0} is already {1}")]
    HoldNotPending(Uuid, &'static str),
    /// An authorization hold reuses a hold id.
    #[error("hold {0} already exists")]
    HoldExists(Uuid),
    /// A completion leg that does not match the hold (other parties, or more than held).
    #[error("completion does not match hold {hold}: {detail}")]
    HoldMismatch {
        /// The hold.
        hold: Uuid,
        /// Which leg and why.
        detail: String,
    },
    /// A reversal or refund of an event the ledger never applied.
    #[error("original event {0} is unknown")]
    OriginalUnknown(Uuid),
    /// A second reversal of the same original.
    #[error("original event {0} is already reversed")]
    AlreadyReversed(Uuid),
}

impl PoisonReason {
    /// Stable code stored in `dead_letter.reason_code`.
    pub fn code(&self) -> &'static str {
        match self {
            PoisonReason::Malformed(_) => "malformed",
            PoisonReason::UnsupportedVersion(_) => "unsupported_version",
            PoisonReason::Invalid(_) => "invalid",
            PoisonReason::HoldUnknown(_) => "hold_unknown",
            PoisonReason::HoldNotPending(..) => "hold_not_pending",
            PoisonReason::HoldExists(_) => "hold_exists",
            PoisonReason::HoldMismatch { .. } => "hold_mismatch",
            PoisonReason::OriginalUnknown(_) => "original_unknown",
            PoisonReason::AlreadyReversed(_) => "already_reversed",
        }
    }
}

/// Column form of [`LedgerAccount`].
pub fn account_str(account: LedgerAccount) -> &'static str {
    match account {
        LedgerAccount::PooledFund => "pooled_fund",
        LedgerAccount::PersonalAccounts => "personal_accounts",
        LedgerAccount::Merchant => "merchant",
        LedgerAccount::BankSettlement => "bank_settlement",
        LedgerAccount::SocialSecurityFund => "social_security_fund",
        LedgerAccount::Fees => "fees",
    }
}

/// Column form of a leg kind.
pub(crate) fn leg_kind_str(kind: schemas::events::LegKind) -> &'static str {
    use schemas::events::LegKind as K;
    match kind {
        K::PooledFund => "pooled_fund",
        K::PersonalAccount => "personal_account",
        K::Bank => "bank",
        K::SocialSecurityFund => "social_security_fund",
        K::Fee => "fee",
    }
}

/// Only the version, read when the full decode fails, so a future version is reported as such
/// rather than as malformed JSON.
#[derive(serde::Deserialize)]
struct VersionProbe {
    schema_version: u16,
}

/// A decoded payload: a valid event, or the reason it is poison (with the event when it at least
/// decoded, so its id is recorded).
pub(crate) type Parsed = Result<SettlementEvent, Box<(Option<SettlementEvent>, PoisonReason)>>;

/// Decodes and validates one payload.
pub(crate) fn parse(payload: &[u8]) -> Parsed {
    // UTF-8 checked once over the payload, so serde_json does not check each string again
    // (issue 27); a payload that is not UTF-8 gets serde_json's own error, as before.
    let decoded = match std::str::from_utf8(payload) {
        Ok(text) => serde_json::from_str::<SettlementEvent>(text),
        Err(_) => serde_json::from_slice::<SettlementEvent>(payload),
    };
    match decoded {
        Ok(event) => match event.validate() {
            Ok(()) => Ok(event),
            Err(EventError::UnsupportedVersion(v)) => {
                Err(Box::new((None, PoisonReason::UnsupportedVersion(v))))
            }
            Err(e) => Err(Box::new((Some(event), PoisonReason::Invalid(e)))),
        },
        Err(e) => match serde_json::from_slice::<VersionProbe>(payload) {
            Ok(p) if p.schema_version != schemas::events::SCHEMA_VERSION => Err(Box::new((
                None,
                PoisonReason::UnsupportedVersion(p.schema_version),
            ))),
            _ => Err(Box::new((None, PoisonReason::Malformed(e.to_string())))),
        },
    }
}

/// State of a two-phase transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Reserved, not moved.
    Pending,
    /// Captured by a completion.
    Posted,
    /// Released or reversed.
    Voided,
}

impl HoldState {
    /// Column form.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Pending => "pending",
            HoldState::Posted => "posted",
            HoldState::Voided => "voided",
        }
    }

    /// From the column.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(HoldState::Pending),
            "posted" => Some(HoldState::Posted),
            "voided" => Some(HoldState::Voided),
            _ => None,
        }
    }
}

/// One leg of a movement, in column form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LegRow {
    pub leg_no: i64,
    pub debit_institution: String,
    pub debit_account: &'static str,
    pub credit_institution: String,
    pub credit_account: &'static str,
    pub amount_fen: i64,
}

impl LegRow {
    fn from_leg(leg: &Leg) -> Self {
        LegRow {
            leg_no: i64::from(leg.leg_no),
            debit_institution: leg.debit.institution.as_str().to_owned(),
            debit_account: account_str(leg.debit.account),
            credit_institution: leg.credit.institution.as_str().to_owned(),
            credit_account: account_str(leg.credit.account),
            amount_fen: leg.amount_fen.get(),
        }
    }
}

/// What the ledger already holds about the events a batch refers to.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Event ids already recorded (applied or dead-lettered).
    pub recorded: HashSet<Uuid>,
    /// Applied (not dead-lettered) events by id, with their type: originals of reversals.
    pub originals: HashMap<Uuid, EventType>,
    /// Originals already reversed.
    pub reversed: HashSet<Uuid>,
    /// Holds by id.
    pub holds: HashMap<Uuid, KnownHold>,
}

/// A hold as stored.
#[derive(Debug, Clone)]
pub(crate) struct KnownHold {
    pub state: HoldState,
    pub legs: Vec<LegRow>,
}

/// Row of `applied_event` (borrowing from its decoded event).
#[derive(Debug, Clone)]
pub(crate) struct AppliedRow<'a> {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub acquirer_id: &'a str,
    pub amount_fen: i64,
    pub occurred_at_us: i64,
    pub outcome: &'static str,
    pub reverses_event_id: Option<Uuid>,
    /// Where the legs it posted are packed in [`Plan::legs_packed`] (`legs`); None when it
    /// posted nothing. One buffer per batch rather than a String per event (issue 27).
    pub legs: Option<Range<usize>>,
}

/// A new pending hold.
#[derive(Debug, Clone)]
pub(crate) struct NewHold {
    pub hold_id: Uuid,
    pub event_id: Uuid,
    pub acquirer_id: String,
    pub amount_fen: i64,
    pub legs: Vec<LegRow>,
}

/// A hold leaving `pending`.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedHold {
    pub hold_id: Uuid,
    pub state: HoldState,
    pub by_event_id: Uuid,
}

/// Row of `dead_letter`.
#[derive(Debug, Clone)]
pub(crate) struct DeadRow {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event_id: Option<Uuid>,
    pub reason: PoisonReason,
    pub payload: String,
}

/// Signed changes to an account's four running sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AccountDelta {
    pub debits_pending_fen: i64,
    pub debits_posted_fen: i64,
    pub credits_pending_fen: i64,
    pub credits_posted_fen: i64,
}

impl AccountDelta {
    pub(crate) fn non_negative(&self) -> bool {
        self.debits_pending_fen >= 0
            && self.debits_posted_fen >= 0
            && self.credits_pending_fen >= 0
            && self.credits_posted_fen >= 0
    }
}

/// Counts of what a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Events that changed the ledger (postings or holds).
    pub applied: u64,
    /// Events already in the ledger (same event id), delivered again.
    pub duplicates: u64,
    /// Deliveries at offsets the ledger had already consumed.
    pub already_consumed: u64,
    /// Events sent to the dead-letter table.
    pub dead_lettered: u64,
    /// Postings written.
    pub postings: u64,
    /// Jumps past a partition's next offset, each recorded as an `offset_gap` dead letter.
    pub offset_gaps: u64,
    /// Offsets those jumps skipped (events the bus never delivered).
    pub offsets_missing: u64,
}

/// Everything one batch writes, in one transaction. Borrows from the batch's decoded events
/// (`'a`), so planning an event allocates nothing in the common case (issue 27: allocation was
/// a large part of the CPU an event cost).
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    pub applied: Vec<AppliedRow<'a>>,
    /// The packed legs of every event of the batch, back to back (see [`AppliedRow::legs`]).
    legs_packed: String,
    /// Where the legs of the event being planned start in `legs_packed`.
    legs_start: usize,
    pub holds_new: Vec<NewHold>,
    pub holds_resolved: Vec<ResolvedHold>,
    /// Keyed by (institution, account), sorted so concurrent writers lock rows in one order.
    pub accounts: BTreeMap<(Cow<'a, str>, &'static str), AccountDelta>,
    /// Keyed by (institution_a, institution_b) with a < b: change of what b owes a.
    pub pairs: BTreeMap<(&'a str, &'a str), i64>,
    pub dead: Vec<DeadRow>,
    /// Offsets the bus jumped over, per partition, in delivery order.
    pub gaps: Vec<OffsetGap<'a>>,
    /// (topic, partition) -> next offset to consume.
    pub offsets: BTreeMap<(&'a str, i32), i64>,
    pub report: ApplyReport,
}

/// One delivery as the planner sees it.
pub(crate) struct Input<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub payload: &'a [u8],
    pub parsed: &'a Parsed,
}

impl<'a> Plan<'a> {
    /// The packed legs of a journal row.
    pub(crate) fn legs(&self, row: &AppliedRow<'_>) -> Option<&str> {
        row.legs.clone().and_then(|r| self.legs_packed.get(r))
    }

    fn account(&mut self, institution: Cow<'a, str>, account: &'static str) -> &mut AccountDelta {
        self.accounts.entry((institution, account)).or_default()
    }

    /// Posts one leg (legs in leg_no order: see [`post_legs`]) and packs it into the event's
    /// journal row.
    fn post(&mut self, leg: &'a Leg) {
        let amount_fen = leg.amount_fen.get();
        let (d, c) = (
            leg.debit.institution.as_str(),
            leg.credit.institution.as_str(),
        );
        self.account(Cow::Borrowed(d), account_str(leg.debit.account))
            .debits_posted_fen += amount_fen;
        self.account(Cow::Borrowed(c), account_str(leg.credit.account))
            .credits_posted_fen += amount_fen;
        // Net position between institutions: the credited institution is owed by the debited.
        if d != c {
            let (key, sign) = if c < d { ((c, d), 1) } else { ((d, c), -1) };
            *self.pairs.entry(key).or_default() += sign * amount_fen;
        }
        legs::push_leg(&mut self.legs_packed, self.legs_start, leg, amount_fen);
        self.report.postings += 1;
    }

    /// Moves the pending sums of held legs (rows read back from the database, so their
    /// institution ids are copied: holds are the rare case).
    fn pend(&mut self, legs: &[LegRow], sign: i64) {
        for l in legs {
            self.account(Cow::Owned(l.debit_institution.clone()), l.debit_account)
                .debits_pending_fen += sign * l.amount_fen;
            self.account(Cow::Owned(l.credit_institution.clone()), l.credit_account)
                .credits_pending_fen += sign * l.amount_fen;
        }
    }

    /// Notes that the bus delivered `delivered` where the partition's next offset was `next`.
    fn gap(&mut self, topic: &'a str, partition: i32, next: i64, delivered: i64) {
        let gap = OffsetGap {
            topic,
            partition,
            missing: next..delivered,
        };
        self.report.offset_gaps += 1;
        self.report.offsets_missing += gap.count();
        self.gaps.push(gap);
    }

    fn record(&mut self, event: &'a SettlementEvent, outcome: &'static str) {
        // A poison event posted nothing (its rules return before posting); dropped anyway so
        // legs never outlive the event that posted them.
        let legs = self.legs_start..self.legs_packed.len();
        let legs = if outcome != "dead_letter" && !legs.is_empty() {
            self.legs_start = legs.end;
            Some(legs)
        } else {
            self.legs_packed.truncate(self.legs_start);
            None
        };
        self.applied.push(AppliedRow {
            event_id: event.event_id,
            event_type: event.event_type.as_str(),
            acquirer_id: event.institutions.acquirer.as_str(),
            amount_fen: event.amount_fen.get(),
            occurred_at_us: event.occurred_at.timestamp_micros(),
            outcome,
            reverses_event_id: (event.event_type == EventType::Reversal
                && outcome != "dead_letter")
                .then_some(event.references.original_event_id)
                .flatten(),
            legs,
        });
    }
}

/// Plans a batch. `stored_offsets` are the ledger's next offsets per (topic, partition);
/// deliveries below them were consumed before and are skipped, and a delivery above the next
/// offset (stored, or following the batch's previous delivery) leaves an offset gap in the
/// plan. `known` is updated as the batch goes, so an event may refer to one earlier in the same
/// batch.
pub(crate) fn plan<'a>(
    inputs: impl IntoIterator<Item = Input<'a>>,
    stored_offsets: &HashMap<(String, i32), i64>,
    known: &mut Known,
) -> Plan<'a> {
    let mut plan = Plan::default();
    for input in inputs {
        let key = (input.topic, input.partition);
        let next = match plan.offsets.get(&key) {
            Some(next) => Some(*next),
            // First delivery of this partition in the batch: the only owned-key lookup.
            None => stored_offsets
                .get(&(input.topic.to_owned(), input.partition))
                .copied(),
        };
        match next {
            Some(next) if input.offset < next => {
                plan.report.already_consumed += 1;
                continue;
            }
            // The bus skipped offsets: the events there will never be applied (see `gap`).
            Some(next) if input.offset > next => {
                plan.gap(input.topic, input.partition, next, input.offset)
            }
            // The next offset, or a partition never consumed: no offset to have jumped past.
            _ => {}
        }
        plan.offsets.insert(key, input.offset + 1);
        let poison = |plan: &mut Plan, event: Option<&SettlementEvent>, reason: PoisonReason| {
            plan.dead.push(DeadRow {
                topic: input.topic.to_owned(),
                partition: input.partition,
                offset: input.offset,
                event_id: event.map(|e| e.event_id),
                reason,
                payload: String::from_utf8_lossy(input.payload).into_owned(),
            });
            plan.report.dead_lettered += 1;
        };
        let event = match input.parsed {
            Ok(event) => event,
            Err(poisoned) => {
                let (event, reason) = (&poisoned.0, poisoned.1.clone());
                match event {
                    Some(e) if known.recorded.insert(e.event_id) => {
                        plan.record(e, "dead_letter");
                        poison(&mut plan, Some(e), reason);
                    }
                    Some(_) => plan.report.duplicates += 1,
                    None => poison(&mut plan, None, reason),
                }
                continue;
            }
        };
        if !known.recorded.insert(event.event_id) {
            plan.report.duplicates += 1;
            continue;
        }
        match apply_event(&mut plan, known, event) {
            Ok(outcome) => {
                plan.record(event, outcome);
                known.originals.insert(event.event_id, event.event_type);
                plan.report.applied += 1;
            }
            Err(reason) => {
                plan.record(event, "dead_letter");
                poison(&mut plan, Some(event), reason);
            }
        }
    }
    plan
}

/// The ledger rules per event type. Returns the outcome, or why the event is poison (in which
/// case nothing was added to the plan).
fn apply_event<'a>(
    plan: &mut Plan<'a>,
    known: &mut Known,
    event: &'a SettlementEvent,
) -> Result<&'static str, PoisonReason> {
    let refs = &event.references;
    match event.event_type {
        EventType::AuthorizationHold => hold(plan, known, event),
        EventType::Completion => complete(plan, known, event),
        EventType::HoldRelease => void_hold(plan, known, event),
        EventType::Reversal => reverse(plan, known, event),
        EventType::Refund => {
            let original = require_original(refs.original_event_id)?;
            if !known.originals.contains_key(&original) {
                return Err(PoisonReason::OriginalUnknown(original));
            }
            post_legs(plan, event);
            Ok("posted")
        }
        EventType::Purchase | EventType::MedicalBillSplit | EventType::BenefitCredit => {
            post_legs(plan, event);
            Ok("posted")
        }
    }
}

/// A pre-authorization: its legs are reserved (pending), nothing moves yet.
fn hold<'a>(
    plan: &mut Plan<'a>,
    known: &mut Known,
    event: &'a SettlementEvent,
) -> Result<&'static str, PoisonReason> {
    let hold_id = require_hold(event.references.hold_id)?;
    if known.holds.contains_key(&hold_id) {
        return Err(PoisonReason::HoldExists(hold_id));
    }
    let legs: Vec<LegRow> = event.legs.iter().map(LegRow::from_leg).collect();
    plan.pend(&legs, 1);
    known.holds.insert(
        hold_id,
        KnownHold {
            state: HoldState::Pending,
            legs: legs.clone(),
        },
    );
    plan.holds_new.push(NewHold {
        hold_id,
        event_id: event.event_id,
        acquirer_id: event.institutions.acquirer.as_str().to_owned(),
        amount_fen: event.amount_fen.get(),
        legs,
    });
    Ok("held")
}

/// A completion: every leg must be a leg of the pending hold, at most its amount. What was
/// captured is posted; the rest of the reservation is released (TigerBeetle's
/// post_pending_transfer with an amount below the pending amount).
fn complete<'a>(
    plan: &mut Plan<'a>,
    known: &mut Known,
    event: &'a SettlementEvent,
) -> Result<&'static str, PoisonReason> {
    let hold_id = require_hold(event.references.hold_id)?;
    let hold = pending_hold(known, hold_id)?;
    for leg in &event.legs {
        let row = LegRow::from_leg(leg);
        let held = hold.legs.iter().find(|h| h.leg_no == row.leg_no);
        let fits = held.is_some_and(|h| {
            h.debit_institution == row.debit_institution
                && h.debit_account == row.debit_account
                && h.credit_institution == row.credit_institution
                && h.credit_account == row.credit_account
                && row.amount_fen <= h.amount_fen
        });
        if !fits {
            return Err(PoisonReason::HoldMismatch {
                hold: hold_id,
                detail: format!("leg {} is not a leg of the hold or exceeds it", leg.leg_no),
            });
        }
    }
    let held_legs = hold.legs.clone();
    plan.pend(&held_legs, -1);
    post_legs(plan, event);
    resolve(plan, known, hold_id, HoldState::Posted, event.event_id);
    Ok("hold_posted")
}

/// Releases the whole reservation of the event's pending hold (a hold release, or the
/// reversal of a pre-authorization).
fn void_hold<'a>(
    plan: &mut Plan<'a>,
    known: &mut Known,
    event: &'a SettlementEvent,
) -> Result<&'static str, PoisonReason> {
    let hold_id = require_hold(event.references.hold_id)?;
    let held_legs = pending_hold(known, hold_id)?.legs.clone();
    plan.pend(&held_legs, -1);
    resolve(plan, known, hold_id, HoldState::Voided, event.event_id);
    Ok("hold_voided")
}

/// A reversal: of a known original, once. Reversing a pre-authorization voids its hold
/// (nothing had moved); any other reversal posts its legs.
fn reverse<'a>(
    plan: &mut Plan<'a>,
    known: &mut Known,
    event: &'a SettlementEvent,
) -> Result<&'static str, PoisonReason> {
    let refs = &event.references;
    let original = require_original(refs.original_event_id)?;
    let original_type = *known
        .originals
        .get(&original)
        .ok_or(PoisonReason::OriginalUnknown(original))?;
    if known.reversed.contains(&original) {
        return Err(PoisonReason::AlreadyReversed(original));
    }
    if original_type == EventType::AuthorizationHold {
        let outcome = void_hold(plan, known, event)?;
        known.reversed.insert(original);
        return Ok(outcome);
    }
    known.reversed.insert(original);
    post_legs(plan, event);
    Ok("posted")
}

/// Posts every leg of `event`, in leg_no order (the journal's canonical order within an event;
/// validation made the numbers unique).
fn post_legs<'a>(plan: &mut Plan<'a>, event: &'a SettlementEvent) {
    if event.legs.is_sorted_by_key(|l| l.leg_no) {
        for leg in &event.legs {
            plan.post(leg);
        }
    } else {
        let mut legs: Vec<&'a Leg> = event.legs.iter().collect();
        legs.sort_unstable_by_key(|l| l.leg_no);
        for leg in legs {
            plan.post(leg);
        }
    }
}

fn require_hold(hold: Option<Uuid>) -> Result<Uuid, PoisonReason> {
    hold.ok_or(PoisonReason::Invalid(EventError::MissingHold(
        EventType::AuthorizationHold,
    )))
}

fn require_original(original: Option<Uuid>) -> Result<Uuid, PoisonReason> {
    original.ok_or(PoisonReason::Invalid(EventError::MissingOriginal(
        EventType::Reversal,
    )))
}

fn pending_hold(known: &Known, hold_id: Uuid) -> Result<&KnownHold, PoisonReason> {
    let hold = known
        .holds
        .get(&hold_id)
        .ok_or(PoisonReason::HoldUnknown(hold_id))?;
    if hold.state != HoldState::Pending {
        return Err(PoisonReason::HoldNotPending(hold_id, hold.state.as_str()));
    }
    Ok(hold)
}

fn resolve(plan: &mut Plan<'_>, known: &mut Known, hold_id: Uuid, state: HoldState, by: Uuid) {
    if let Some(h) = known.holds.get_mut(&hold_id) {
        h.state = state;
    }
    // Written after the batch's new holds, so a hold created earlier in the same batch is
    // inserted pending and then resolved.
    plan.holds_resolved.push(ResolvedHold {
        hold_id,
        state,
        by_event_id: by,
    });
}

/// What a batch of payloads, delivered in order at offsets 0.. of one partition, would do to an
/// empty ledger: the planner's report and the sums it would write. No database; for the fuzz
/// target of the consumer's decoding and rules (`clearing/fuzz`, `settlement_batch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DryRun {
    /// What the batch did.
    pub report: ApplyReport,
    /// Sum of the posted debits over every account.
    pub debits_posted_fen: i128,
    /// Sum of the posted credits over every account.
    pub credits_posted_fen: i128,
    /// Sum of the pending debits over every account.
    pub debits_pending_fen: i128,
    /// Sum of the pending credits over every account.
    pub credits_pending_fen: i128,
    /// Accounts whose deltas went below zero (a hold resolved twice, or money taken back that
    /// was never there).
    pub negative_accounts: usize,
}

/// Plans `payloads` against an empty ledger (see [`DryRun`]).
pub fn dry_run(payloads: &[&[u8]]) -> DryRun {
    let parsed: Vec<Parsed> = payloads.iter().map(|p| parse(p)).collect();
    let inputs = payloads
        .iter()
        .zip(&parsed)
        .enumerate()
        .map(|(i, (payload, parsed))| Input {
            topic: "settlement-events",
            partition: 0,
            offset: i64::try_from(i).unwrap_or(i64::MAX),
            payload,
            parsed,
        });
    let plan = plan(inputs, &HashMap::new(), &mut Known::default());
    let mut run = DryRun {
        report: plan.report,
        ..DryRun::default()
    };
    for delta in plan.accounts.values() {
        run.debits_posted_fen += i128::from(delta.debits_posted_fen);
        run.credits_posted_fen += i128::from(delta.credits_posted_fen);
        run.debits_pending_fen += i128::from(delta.debits_pending_fen);
        run.credits_pending_fen += i128::from(delta.credits_pending_fen);
        run.negative_accounts += usize::from(!delta.non_negative());
    }
    run
}

#[cfg(test)]
mod tests;
