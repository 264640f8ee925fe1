//! Records the store reads and writes, and the [`Decision`] the pipeline hands to the writer.
//!
//! Amounts are [`AmountFen`] (integer fen, never negative) and times are microseconds since
//! the Unix epoch (`*_at_us`), exactly as in the tables of `schemas/migrations`.

use schemas::domain::{
    AmountFen, CardIdentificationCode, InstitutionId, ResponseCode, Rrn, Stan, TerminalId,
    TransmissionDateTime,
};
use schemas::events::{LegKind, SettlementEvent, LEGS_PER_EVENT_MAX};
use uuid::Uuid;

/// Most balance operations one decision may carry.
pub const BALANCE_OPS_PER_DECISION_MAX: usize = 16;
/// Most legs one decision may carry (same bound as an event).
pub const LEGS_PER_DECISION_MAX: usize = LEGS_PER_EVENT_MAX;

/// Store key of a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardId(pub i64);
/// Store key of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);
/// A transaction (decision) id, chosen by the pipeline (UUID v7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub Uuid);
/// An authorization hold id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HoldId(pub Uuid);
/// A queued reversal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReversalId(pub Uuid);
/// A queued advice id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdviceId(pub Uuid);

/// Defines a string-backed enum with its SQL text form.
macro_rules! sql_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            /// The text stored in the database.
            pub fn as_sql(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses the stored text.
            pub fn from_sql(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }
    };
}

sql_enum!(
    /// What an institution is.
    InstitutionKind {
        /// A bank: card issuer, acquirer at its own devices.
        Bank = "bank",
        /// A hospital (acquirer of medical payments).
        Hospital = "hospital",
        /// The medical-insurance fund (pooled fund and personal accounts).
        InsuranceFund = "insurance_fund",
        /// The social-security fund (benefits).
        SocialSecurityFund = "social_security_fund",
        /// A job centre (acquirer of job-centre kiosks).
        JobCentre = "job_centre",
        /// The switch itself.
        Switch = "switch",
    }
);

sql_enum!(
    /// Life-cycle status of a card. Lost, stolen and blocked cards form the hot list.
    CardStatus {
        /// Personalised, not yet activated.
        Issued = "issued",
        /// In use.
        Active = "active",
        /// Reported lost.
        Lost = "lost",
        /// Reported stolen.
        Stolen = "stolen",
        /// Blocked by the issuer (e.g. PIN tries, fraud).
        Blocked = "blocked",
        /// Replaced or cancelled.
        Closed = "closed",
    }
);

impl CardStatus {
    /// True for the statuses on the hot list.
    pub fn is_hot_listed(self) -> bool {
        matches!(
            self,
            CardStatus::Lost | CardStatus::Stolen | CardStatus::Blocked
        )
    }

    /// The ISO 8583 response code to decline with, or `None` if the card may transact.
    pub fn decline_code(self) -> Option<ResponseCode> {
        match self {
            CardStatus::Active => None,
            CardStatus::Lost => Some(ResponseCode::LostCard),
            CardStatus::Stolen => Some(ResponseCode::StolenCard),
            CardStatus::Blocked | CardStatus::Issued => Some(ResponseCode::RestrictedCard),
            CardStatus::Closed => Some(ResponseCode::InvalidCardNumber),
        }
    }
}

sql_enum!(
    /// What an account holds.
    AccountKind {
        /// A cardholder's personal medical-insurance account.
        PersonalMedical = "personal_medical",
        /// The medical-insurance pooled fund.
        PooledFund = "pooled_fund",
        /// The social-security fund paying benefits.
        SocialSecurityFund = "social_security_fund",
    }
);

sql_enum!(
    /// State of an authorization hold.
    HoldState {
        /// Funds reserved.
        Pending = "pending",
        /// Completed: the captured amount left the balance.
        Captured = "captured",
        /// Released without capture.
        Released = "released",
    }
);

sql_enum!(
    /// The kind of a transaction record.
    TransactionKind {
        /// Single-message purchase.
        Purchase = "purchase",
        /// Pre-authorization (places a hold).
        Preauthorization = "preauthorization",
        /// Completion of a pre-authorization.
        Completion = "completion",
        /// Release of a hold without capture.
        HoldRelease = "hold_release",
        /// Balance inquiry (moves no money).
        BalanceInquiry = "balance_inquiry",
        /// Refund of a purchase.
        Refund = "refund",
        /// Benefit credit to the card's bank account.
        BenefitCredit = "benefit_credit",
        /// Hospital payment split between fund, personal account and bank.
        MedicalBillSplit = "medical_bill_split",
        /// Reversal of an earlier transaction.
        Reversal = "reversal",
    }
);

sql_enum!(
    /// Why a reversal is queued.
    ReversalReason {
        /// The issuer did not answer in time.
        IssuerTimeout = "issuer_timeout",
        /// The issuer link was down.
        IssuerUnavailable = "issuer_unavailable",
        /// The issuer approved after the acquirer was declined.
        LateApproval = "late_approval",
        /// The acquirer asked for it (0400 from the terminal).
        AcquirerRequest = "acquirer_request",
    }
);

sql_enum!(
    /// The message class of a queued advice (ISO 8583:1987 §4.1): the MTI of its first
    /// attempt; a repeat adds 1 to the last digit (0121, 0221).
    AdviceClass {
        /// Authorization advice, 0120 → 0130.
        Authorization = "0120",
        /// Financial transaction advice, 0220 → 0230.
        Financial = "0220",
    }
);

impl AdviceClass {
    /// The MTI of an attempt: the class for the first, its repeat (…1) after.
    pub fn mti(self, attempts_before: i64) -> &'static str {
        match (self, attempts_before > 0) {
            (AdviceClass::Authorization, false) => "0120",
            (AdviceClass::Authorization, true) => "0121",
            (AdviceClass::Financial, false) => "0220",
            (AdviceClass::Financial, true) => "0221",
        }
    }
}

sql_enum!(
    /// Kind of an account movement (the balance journal).
    MovementKind {
        /// The balance an account was opened with.
        Opening = "opening",
        /// Money out.
        Debit = "debit",
        /// Money in.
        Credit = "credit",
        /// Funds reserved.
        Hold = "hold",
        /// Reservation lifted.
        Release = "release",
        /// Held funds taken.
        Capture = "capture",
    }
);

/// Converts the event leg kind to its SQL text.
pub fn leg_kind_sql(kind: LegKind) -> &'static str {
    match kind {
        LegKind::PooledFund => "pooled_fund",
        LegKind::PersonalAccount => "personal_account",
        LegKind::Bank => "bank",
        LegKind::SocialSecurityFund => "social_security_fund",
        LegKind::Fee => "fee",
    }
}

/// Parses the SQL text of a leg kind.
pub fn leg_kind_from_sql(s: &str) -> Option<LegKind> {
    Some(match s {
        "pooled_fund" => LegKind::PooledFund,
        "personal_account" => LegKind::PersonalAccount,
        "bank" => LegKind::Bank,
        "social_security_fund" => LegKind::SocialSecurityFund,
        "fee" => LegKind::Fee,
        _ => return None,
    })
}

/// An institution of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    /// ISO 8583 institution id.
    pub institution_id: InstitutionId,
    /// Display name.
    pub name: String,
    /// What it is.
    pub kind: InstitutionKind,
}

/// A card range routed to its issuing bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinRoute {
    /// Leading PAN digits (1..=12).
    pub bin_prefix: String,
    /// The bank that issues cards in the range.
    pub issuer: InstitutionId,
}

/// A card to issue. The PAN is hashed and sealed by the store's `PanProtector`.
#[derive(Debug, Clone)]
pub struct NewCard {
    /// The card's PAN (debit application).
    pub pan: schemas::domain::Pan,
    /// The SSSE card identification code, when known.
    pub card_identification_code: Option<CardIdentificationCode>,
    /// The issuing bank.
    pub issuer: InstitutionId,
    /// Expiry as `YYMM` (field 14).
    pub expiry_yymm: String,
    /// Initial status.
    pub status: CardStatus,
    /// What the switch verifies the card against.
    pub issuance: CardIssuance,
}

sql_enum!(
    /// Cryptography of the card's debit application.
    IccAlgorithm {
        /// EMV option A, 3DES (EMV Book 2 A1.4).
        Tdes = "tdes",
        /// PBOC 3.0 SM4.
        Sm4 = "sm4",
    }
);

/// Issuance data of a card: no secret, but what online PIN and ARQC checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardIssuance {
    /// PAN sequence number (EMV tag 5F34), two digits.
    pub pan_sequence_number: String,
    /// The debit application's algorithm, `None` for a card without a chip application.
    pub icc_algorithm: Option<IccAlgorithm>,
    /// IBM 3624 PIN offset, `None` when the issuing bank verifies the PIN.
    pub pin_offset: Option<String>,
    /// The cardholder's medical-insurance scheme, `None` when not insured.
    pub insurance_category: Option<InsuranceCategory>,
}

sql_enum!(
    /// A cardholder's basic medical-insurance scheme (the policy table's first key).
    InsuranceCategory {
        /// Urban employees' basic medical insurance (城镇职工).
        Employee = "employee",
        /// Urban and rural residents' basic medical insurance (城乡居民).
        Resident = "resident",
    }
);

impl Default for CardIssuance {
    fn default() -> Self {
        Self {
            pan_sequence_number: "00".to_owned(),
            icc_algorithm: None,
            pin_offset: None,
            insurance_category: None,
        }
    }
}

/// A stored card (never with its clear PAN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// Store key.
    pub card_id: CardId,
    /// First six and last four digits.
    pub pan_masked: String,
    /// The SSSE card identification code.
    pub card_identification_code: Option<CardIdentificationCode>,
    /// The issuing bank.
    pub issuer: InstitutionId,
    /// Expiry `YYMM`.
    pub expiry_yymm: String,
    /// Life-cycle status.
    pub status: CardStatus,
    /// Why the status was last changed.
    pub status_reason: Option<String>,
    /// Issuance data.
    pub issuance: CardIssuance,
    /// Highest ATC (EMV tag 9F36) of a cryptogram the switch verified, `None` before the first.
    pub atc_max: Option<u16>,
}

/// An account to open.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The institution keeping the account (the insurance fund for personal accounts).
    pub institution: InstitutionId,
    /// The card it belongs to, for personal accounts.
    pub card_id: Option<CardId>,
    /// What it holds.
    pub kind: AccountKind,
    /// Opening balance, journalled as an `opening` movement.
    pub opening_balance: AmountFen,
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Store key.
    pub account_id: AccountId,
    /// Keeping institution.
    pub institution: InstitutionId,
    /// Owning card.
    pub card_id: Option<CardId>,
    /// What it holds.
    pub kind: AccountKind,
    /// Ledger balance.
    pub balance_fen: i64,
    /// Reserved by pending holds.
    pub held_fen: i64,
}

impl Account {
    /// What can still be spent: balance minus holds.
    pub fn available_fen(&self) -> i64 {
        self.balance_fen - self.held_fen
    }
}

/// A stored hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Id.
    pub hold_id: HoldId,
    /// Account the funds are reserved on.
    pub account_id: AccountId,
    /// The authorizing transaction.
    pub transaction_id: TransactionId,
    /// Reserved amount.
    pub amount_fen: i64,
    /// Captured amount (0 unless captured).
    pub captured_fen: i64,
    /// State.
    pub state: HoldState,
    /// When an uncaptured hold should be released.
    pub expires_at_us: i64,
}

/// The duplicate-detection key of a message: terminal + STAN + RRN + transmission time, and
/// the message class (MTI digits 1–2) so that a 0400 may repeat its 0200's references.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DuplicateKey {
    /// Field 41.
    pub terminal_id: TerminalId,
    /// Field 11.
    pub stan: Stan,
    /// Field 37.
    pub rrn: Rrn,
    /// Field 7.
    pub transmission_at: TransmissionDateTime,
    /// First two MTI digits ("02" for 0200/0210, "04" for 0400/0420/0421).
    pub message_class: String,
}

/// The transaction row of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// Id chosen by the pipeline (UUID v7).
    pub transaction_id: TransactionId,
    /// Kind.
    pub kind: TransactionKind,
    /// Request MTI (4 digits).
    pub mti: String,
    /// Field 3 (6 digits).
    pub processing_code: String,
    /// The card, when known.
    pub card_id: Option<CardId>,
    /// Masked PAN for lookups by operators.
    pub pan_masked: Option<String>,
    /// Field 32.
    pub acquirer: InstitutionId,
    /// The issuing bank, when a bank is involved.
    pub issuer: Option<InstitutionId>,
    /// Field 41.
    pub terminal_id: TerminalId,
    /// Field 11.
    pub stan: Stan,
    /// Field 37.
    pub rrn: Rrn,
    /// Field 7.
    pub transmission_at: TransmissionDateTime,
    /// Field 4 in fen.
    pub amount_fen: AmountFen,
    /// Field 39 of the response.
    pub response_code: ResponseCode,
    /// The transaction this one reverses, completes or refunds.
    pub original_transaction_id: Option<TransactionId>,
    /// When the decision was made.
    pub decided_at_us: i64,
}

impl TransactionRecord {
    /// Its duplicate-detection key.
    pub fn duplicate_key(&self) -> DuplicateKey {
        DuplicateKey {
            terminal_id: self.terminal_id.clone(),
            stan: self.stan,
            rrn: self.rrn.clone(),
            transmission_at: self.transmission_at.clone(),
            message_class: self.mti.get(..2).unwrap_or_default().to_owned(),
        }
    }

    /// True when field 39 is 00.
    pub fn is_approved(&self) -> bool {
        self.response_code.is_approved()
    }
}

/// One funding leg of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLeg {
    /// From 1.
    pub leg_no: u8,
    /// Funding source.
    pub kind: LegKind,
    /// The institution paying or routing the leg.
    pub institution: InstitutionId,
    /// The store account paying it (pooled fund, personal account), if any.
    pub account_id: Option<AccountId>,
    /// Amount.
    pub amount_fen: AmountFen,
}

/// A change to account balances, applied atomically with its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalanceOp {
    /// Take money from the available balance.
    Debit {
        /// Account.
        account_id: AccountId,
        /// Amount (> 0).
        amount_fen: AmountFen,
    },
    /// Add money (refund, reversal of a debit).
    Credit {
        /// Account.
        account_id: AccountId,
        /// Amount (> 0).
        amount_fen: AmountFen,
    },
    /// Reserve funds (pre-authorization).
    PlaceHold {
        /// New hold id.
        hold_id: HoldId,
        /// Account.
        account_id: AccountId,
        /// Amount (> 0).
        amount_fen: AmountFen,
        /// When it lapses if not captured.
        expires_at_us: i64,
    },
    /// Take up to the held amount; the rest of the hold is released.
    CaptureHold {
        /// The pending hold.
        hold_id: HoldId,
        /// Amount to take (<= held).
        amount_fen: AmountFen,
    },
    /// Lift a pending hold.
    ReleaseHold {
        /// The pending hold.
        hold_id: HoldId,
    },
}

/// A reversal (0420) to send store-and-forward, queued with its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRequest {
    /// Id.
    pub reversal_id: ReversalId,
    /// Where to send it.
    pub destination: InstitutionId,
    /// Why.
    pub reason: ReversalReason,
    /// Amount to reverse.
    pub amount_fen: AmountFen,
    /// STAN of the 0420 (repeats as 0421 keep it).
    pub stan: Stan,
    /// Field 7 of the 0420.
    pub transmission_at: TransmissionDateTime,
    /// Earliest first attempt.
    pub first_attempt_at_us: i64,
}

/// An advice (0120/0220) telling a bank what the switch approved on its behalf in stand-in,
/// queued with the approval and sent store-and-forward until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdviceRequest {
    /// Id.
    pub advice_id: AdviceId,
    /// The bank that was stood in for.
    pub destination: InstitutionId,
    /// 0120 or 0220.
    pub class: AdviceClass,
    /// Field 3 of the bank leg.
    pub processing_code: String,
    /// Field 4: the bank leg's amount (> 0).
    pub amount_fen: AmountFen,
    /// Field 11 of the advice on the bank's link (repeats keep it).
    pub stan: Stan,
    /// Field 7 of the advice.
    pub transmission_at: TransmissionDateTime,
    /// Field 39: why the switch stood in.
    pub reason: ResponseCode,
    /// Field 38: the stand-in approval code (6 characters).
    pub auth_code: String,
    /// Earliest first attempt.
    pub first_attempt_at_us: i64,
}

/// Everything one authorization decision writes, atomically.
///
/// The reversal is queued for `transaction` itself (typically a decline with code 91 after a
/// bank leg timed out): `original_transaction_id` of the queue row is `transaction_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The transaction row.
    pub transaction: TransactionRecord,
    /// Its funding legs.
    pub legs: Vec<TxnLeg>,
    /// Balance changes (approved decisions only).
    pub balance_ops: Vec<BalanceOp>,
    /// The settlement event for the outbox (approved financial decisions).
    pub event: Option<SettlementEvent>,
    /// A reversal to queue.
    pub reversal: Option<ReversalRequest>,
    /// A stand-in advice to queue (approved decisions only).
    pub advice: Option<AdviceRequest>,
    /// The card's ATC this decision consumes: committed only if above the stored `atc_max`,
    /// which it then becomes (approved and declined decisions alike).
    pub atc: Option<CardAtc>,
}

/// An application transaction counter (EMV Book 3 Annex A, tag 9F36) of a verified cryptogram.
///
/// The card increments its ATC for every transaction and covers it with the cryptogram, so a
/// genuine cryptogram never repeats an ATC: one whose ATC is not above the highest already seen
/// for the card is a replay of recorded field 55 data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardAtc {
    /// The card.
    pub card_id: CardId,
    /// Its ATC.
    pub atc: u16,
}

impl Decision {
    /// Checks what can be checked without the database. A declined decision moves no money
    /// and publishes no event; an event must describe this transaction.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.transaction;
        if t.mti.len() != 4 || !t.mti.bytes().all(|b| b.is_ascii_digit()) {
            return Err("mti must be 4 digits".into());
        }
        if t.processing_code.len() != 6 || !t.processing_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err("processing code must be 6 digits".into());
        }
        if self.legs.len() > LEGS_PER_DECISION_MAX {
            return Err(format!("more than {LEGS_PER_DECISION_MAX} legs"));
        }
        if self.balance_ops.len() > BALANCE_OPS_PER_DECISION_MAX {
            return Err(format!(
                "more than {BALANCE_OPS_PER_DECISION_MAX} balance ops"
            ));
        }
        if !t.is_approved() && (!self.balance_ops.is_empty() || self.event.is_some()) {
            return Err("a declined decision cannot move money or publish an event".into());
        }
        if let Some(a) = &self.advice {
            if !t.is_approved() {
                return Err("only an approval can be advised".into());
            }
            if a.amount_fen == AmountFen::ZERO
                || a.auth_code.len() != 6
                || a.processing_code.len() != 6
            {
                return Err("advice needs an amount, a 6-character code and field 3".into());
            }
        }
        for op in &self.balance_ops {
            let amount = match op {
                BalanceOp::Debit { amount_fen, .. }
                | BalanceOp::Credit { amount_fen, .. }
                | BalanceOp::PlaceHold { amount_fen, .. } => Some(*amount_fen),
                BalanceOp::CaptureHold { .. } | BalanceOp::ReleaseHold { .. } => None,
            };
            if amount == Some(AmountFen::ZERO) {
                return Err("balance op of zero fen".into());
            }
        }
        if let Some(event) = &self.event {
            event.validate().map_err(|e| format!("event: {e}"))?;
            if event.transaction_id != t.transaction_id.0 {
                return Err("event describes another transaction".into());
            }
        }
        Ok(())
    }
}

/// What the store returns for a committed decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The transaction.
    pub transaction_id: TransactionId,
    /// The outbox position of its event, if it had one.
    pub outbox_seq: Option<i64>,
}

/// Result of one group commit.
#[derive(Debug)]
pub struct BatchOutcome {
    /// One result per decision, in submission order.
    pub results: Vec<Result<Committed, super::DecisionError>>,
    /// Database transactions used: 1 normally, more when a constraint failure forced the
    /// decisions to be retried one by one.
    pub db_transactions: u32,
}

/// A transaction read back, with its legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransaction {
    /// The row.
    pub record: TransactionRecord,
    /// Its legs, by leg number.
    pub legs: Vec<TxnLeg>,
    /// The settlement event written with it.
    pub event_id: Option<Uuid>,
}

/// A reversal waiting for acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReversal {
    /// Id.
    pub reversal_id: ReversalId,
    /// The transaction being reversed.
    pub original_transaction_id: TransactionId,
    /// Destination institution.
    pub destination: InstitutionId,
    /// Why.
    pub reason: ReversalReason,
    /// Amount.
    pub amount_fen: i64,
    /// STAN of the 0420.
    pub stan: Stan,
    /// Field 7 of the 0420.
    pub transmission_at: TransmissionDateTime,
    /// Attempts so far (the next one is a repeat, 0421, when > 0).
    pub attempts: i64,
    /// When it is due.
    pub next_attempt_at_us: i64,
}

/// An advice waiting for acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAdvice {
    /// Id.
    pub advice_id: AdviceId,
    /// The stand-in approval it advises.
    pub transaction_id: TransactionId,
    /// Destination bank.
    pub destination: InstitutionId,
    /// 0120 or 0220.
    pub class: AdviceClass,
    /// Field 3.
    pub processing_code: String,
    /// Amount (field 4).
    pub amount_fen: i64,
    /// Field 11.
    pub stan: Stan,
    /// Field 7.
    pub transmission_at: TransmissionDateTime,
    /// Field 39: the stand-in reason.
    pub reason: ResponseCode,
    /// Field 38: the stand-in approval code.
    pub auth_code: String,
    /// Attempts so far (the next one is a repeat when > 0).
    pub attempts: i64,
    /// When it is due.
    pub next_attempt_at_us: i64,
}

/// Which store-and-forward queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SafKind {
    /// Reversals (0420/0421).
    Reversal,
    /// Stand-in advices (0120/0121, 0220/0221).
    Advice,
}

impl SafKind {
    /// Lower-case name, as in metrics labels and the HTTP view.
    pub fn as_str(self) -> &'static str {
        match self {
            SafKind::Reversal => "reversal",
            SafKind::Advice => "advice",
        }
    }

    /// Parses [`SafKind::as_str`].
    pub fn from_sql(s: &str) -> Option<Self> {
        match s {
            "reversal" => Some(SafKind::Reversal),
            "advice" => Some(SafKind::Advice),
            _ => None,
        }
    }
}

/// The pending messages of one store-and-forward queue towards one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafQueue {
    /// Reversals or advices.
    pub kind: SafKind,
    /// Destination bank.
    pub destination: InstitutionId,
    /// Messages not yet acknowledged.
    pub pending: u64,
    /// Of those, reversals held back because the advice of their original is still pending
    /// (always 0 for advices): they cannot leave before that advice is acknowledged.
    pub held: u64,
    /// When the oldest pending message was queued.
    pub oldest_created_at_us: i64,
    /// Most attempts made for one of them.
    pub attempts_max: i64,
}

/// One pending store-and-forward message, for operators (no card data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafItem {
    /// Reversal or advice.
    pub kind: SafKind,
    /// The reversal or advice id.
    pub id: Uuid,
    /// The transaction it was queued with.
    pub transaction_id: TransactionId,
    /// Destination bank.
    pub destination: InstitutionId,
    /// Amount.
    pub amount_fen: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// Field 39 of the last answer that did not acknowledge it, if any.
    pub last_response_code: Option<String>,
    /// Held back behind the pending advice of its original (reversals only).
    pub held: bool,
    /// When it was queued.
    pub created_at_us: i64,
    /// When it is next due.
    pub next_attempt_at_us: i64,
}

/// The store-and-forward backlog: per queue and destination, and the oldest messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafBacklog {
    /// One entry per (kind, destination) with pending messages, in that order.
    pub queues: Vec<SafQueue>,
    /// The oldest pending messages of both kinds, oldest first.
    pub oldest: Vec<SafItem>,
}

impl SafBacklog {
    /// When the oldest pending message of any queue was queued.
    pub fn oldest_created_at_us(&self) -> Option<i64> {
        self.queues.iter().map(|q| q.oldest_created_at_us).min()
    }
}

/// Reconciliation totals (ISO 8583:1987 fields 74-77 counts and 86-89 amounts, fen), by the
/// cardholder side of the transaction: purchases and bill payments are debits, refunds and
/// benefit credits are credits, a reversal counts against the side of its original. The switch
/// keeps them per acquirer ([`super::Store::acquirer_totals`]); a bank keeps its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconciliationTotals {
    /// Fields 74 / 86.
    pub credits: (u64, i64),
    /// Fields 75 / 87.
    pub credit_reversals: (u64, i64),
    /// Fields 76 / 88.
    pub debits: (u64, i64),
    /// Fields 77 / 89.
    pub debit_reversals: (u64, i64),
}

impl ReconciliationTotals {
    /// Adds `count` approved decisions of `kind` worth `fen` (for a reversal, `original` is
    /// the kind it reversed). Kinds that move no cardholder money at the acquirer
    /// (pre-authorization holds, their release, balance inquiries) count nowhere.
    pub fn add(
        &mut self,
        kind: TransactionKind,
        original: Option<TransactionKind>,
        count: u64,
        fen: i64,
    ) {
        let slot = match (kind, original.map(cardholder_side)) {
            (TransactionKind::Reversal, Some(Some(Side::Debit))) => &mut self.debit_reversals,
            (TransactionKind::Reversal, Some(Some(Side::Credit))) => &mut self.credit_reversals,
            (k, _) => match cardholder_side(k) {
                Some(Side::Debit) => &mut self.debits,
                Some(Side::Credit) => &mut self.credits,
                None => return,
            },
        };
        slot.0 += count;
        slot.1 += fen;
    }

    /// Field 97: credits − credit reversals − debits + debit reversals (positive: the
    /// acquirer's cardholders were credited on balance).
    pub fn net_fen(&self) -> i64 {
        self.credits.1 - self.credit_reversals.1 - self.debits.1 + self.debit_reversals.1
    }
}

#[derive(Clone, Copy)]
enum Side {
    Debit,
    Credit,
}

/// Which side of the cardholder's account a kind of transaction moves (ISO 8583:1987
/// processing codes 00/19 debit, 20/21 credit).
fn cardholder_side(kind: TransactionKind) -> Option<Side> {
    match kind {
        TransactionKind::Purchase
        | TransactionKind::MedicalBillSplit
        | TransactionKind::Completion => Some(Side::Debit),
        TransactionKind::Refund | TransactionKind::BenefitCredit => Some(Side::Credit),
        TransactionKind::Preauthorization
        | TransactionKind::HoldRelease
        | TransactionKind::BalanceInquiry
        | TransactionKind::Reversal => None,
    }
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Gap-free, commit-ordered position.
    pub outbox_seq: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// Ordering key (acquirer institution).
    pub partition_key: String,
    /// `EventType::as_str`.
    pub event_type: String,
    /// Event schema version.
    pub schema_version: i64,
    /// The event JSON.
    pub payload: String,
    /// Commit time.
    pub created_at_us: i64,
    /// When a relay published it.
    pub relayed_at_us: Option<i64>,
}

/// An audit entry to append. Never put a PAN, PIN or key in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who (operator id, `switch`).
    pub actor: String,
    /// What (`card.status`, `key.exchange`).
    pub action: String,
    /// On what (card id, institution id).
    pub subject: String,
    /// Details as JSON.
    pub detail: String,
    /// When.
    pub at_us: i64,
}

/// A card as the pipeline's directory keeps it (see [`super::Store::card_directory_page`]).
/// `Debug` shows the PAN masked, as [`schemas::domain::Pan`] always does.
#[derive(Debug, Clone)]
pub struct DirectoryCard {
    /// The card row.
    pub card: Card,
    /// Its PAN, opened from `card.pan_ciphertext`.
    pub pan: schemas::domain::Pan,
    /// Its accounts, by id.
    pub accounts: Vec<Account>,
}

/// An appended audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub audit_seq: i64,
    /// SHA-256 of the previous entry's hash and this entry.
    pub entry_hash: [u8; 32],
}
