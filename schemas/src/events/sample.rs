//! Well-formed example events of every type, for tests here and in the crates that consume
//! events (switch store tests, clearing). Not used on any production path.

use super::*;
use crate::domain::{AmountFen, InstitutionId, Rrn, Stan, TerminalId, TransmissionDateTime};

/// Institution ids used by the samples.
pub mod ids {
    /// A hospital (acquirer).
    pub const HOSPITAL: &str = "3100001";
    /// The medical-insurance fund (pooled fund and personal accounts).
    pub const INSURANCE_FUND: &str = "3100900";
    /// A bank (card issuer).
    pub const BANK: &str = "01020000";
    /// The social-security fund (benefits).
    pub const SOCIAL_SECURITY_FUND: &str = "3100800";
}

fn inst(id: &str) -> InstitutionId {
    // The constants above are valid institution ids (checked by this module's users' tests).
    InstitutionId::parse(id).unwrap_or_else(|_| unreachable!("sample institution id {id}"))
}

fn party(id: &str, account: LedgerAccount) -> Party {
    Party {
        institution: inst(id),
        account,
    }
}

fn fen(v: i64) -> AmountFen {
    AmountFen::new(v).unwrap_or(AmountFen::ZERO)
}

fn leg(leg_no: u8, kind: LegKind, debit: Party, credit: Party, amount: i64) -> Leg {
    Leg {
        leg_no,
        kind,
        debit,
        credit,
        amount_fen: fen(amount),
    }
}

/// A well-formed event of `event_type` with the given acquirer and total; `seq` varies the
/// references so several samples are distinct.
pub fn event(event_type: EventType, acquirer: &str, seq: u32) -> SettlementEvent {
    use ids::*;
    use LedgerAccount as A;
    let merchant = party(acquirer, A::Merchant);
    let bank = party(BANK, A::BankSettlement);
    let legs = match event_type {
        EventType::MedicalBillSplit => vec![
            leg(
                1,
                LegKind::PooledFund,
                party(INSURANCE_FUND, A::PooledFund),
                merchant.clone(),
                6_000,
            ),
            leg(
                2,
                LegKind::PersonalAccount,
                party(INSURANCE_FUND, A::PersonalAccounts),
                merchant.clone(),
                2_500,
            ),
            leg(3, LegKind::Bank, bank, merchant, 1_500),
        ],
        EventType::BenefitCredit => vec![leg(
            1,
            LegKind::SocialSecurityFund,
            party(SOCIAL_SECURITY_FUND, A::SocialSecurityFund),
            bank,
            50_000,
        )],
        EventType::Refund | EventType::Reversal => {
            vec![leg(1, LegKind::Bank, merchant, bank, 10_000)]
        }
        _ => vec![leg(1, LegKind::Bank, bank, merchant, 10_000)],
    };
    let amount_fen = fen(legs.iter().map(|l| l.amount_fen.get()).sum());
    let original = event_type.requires_original().then(Uuid::now_v7);
    let hold = event_type.requires_hold().then(Uuid::now_v7);
    SettlementEvent {
        event_id: Uuid::now_v7(),
        schema_version: SCHEMA_VERSION,
        event_type,
        occurred_at: Utc::now(),
        transaction_id: Uuid::now_v7(),
        institutions: Institutions {
            acquirer: inst(acquirer),
            issuer: Some(inst(BANK)),
        },
        currency: Currency::Cny,
        amount_fen,
        legs,
        references: References {
            rrn: Rrn::parse(&format!("{:012}", 100_000_000 + u64::from(seq)))
                .unwrap_or_else(|_| unreachable!("12 digits")),
            stan: Stan::new(seq % 1_000_000).unwrap_or_else(|_| unreachable!("<= 999999")),
            terminal_id: TerminalId::parse("KIOSK001").unwrap_or_else(|_| unreachable!("8 chars")),
            transmission_at: TransmissionDateTime::parse("1123093605")
                .unwrap_or_else(|_| unreachable!("valid MMDDhhmmss")),
            original_event_id: original,
            hold_id: hold,
        },
    }
}
