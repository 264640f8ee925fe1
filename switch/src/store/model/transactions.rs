//! The transaction row and its legs, the duplicate-detection key, and the [`Decision`] the
//! pipeline hands to the writer with what the store answers for it.

use super::{
    AccountId, AdviceRequest, BalanceOp, CardAtc, CardId, CardRisk, ReversalRequest, TransactionId,
};
use schemas::domain::{
    AmountFen, InstitutionId, ResponseCode, Rrn, Stan, TerminalId, TransmissionDateTime,
};
use schemas::events::{LegKind, SettlementEvent, LEGS_PER_EVENT_MAX};
use uuid::Uuid;

/// Most balance operations one decision may carry.
pub const BALANCE_OPS_PER_DECISION_MAX: usize = 16;
/// Most legs one decision may carry (same bound as an event).
pub const LEGS_PER_DECISION_MAX: usize = LEGS_PER_EVENT_MAX;

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

/// The duplicate-detection key of a message: acquirer + terminal + STAN + RRN + transmission
/// time, and the message class (MTI digits 1–2) so that a 0400 may repeat its 0200's
/// references. The acquirer is part of it because terminal ids and STANs are the acquirer's
/// own numbering: another acquirer's request is never a retransmission of this one's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DuplicateKey {
    /// Field 32 (or the link's acquirer).
    pub acquirer: InstitutionId,
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
            acquirer: self.acquirer.clone(),
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
    /// What the decision does to its card's wrong-PIN count and daily spend, checked and
    /// written in the same commit.
    pub risk: Option<CardRisk>,
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
    pub results: Vec<Result<Committed, crate::store::DecisionError>>,
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
