//! Fixtures for the store test suite, the benches and the pipeline's tests: a seeded
//! network (hospital, insurance fund, bank, a card with a personal account, the pooled fund)
//! and builders for well-formed decisions. Not used on any production path.

use crate::store::{
    now_us, AccountId, AccountKind, AdviceClass, AdviceId, AdviceRequest, BalanceOp, BinRoute,
    CardAtc, CardId, CardIssuance, CardStatus, Decision, HoldId, IccAlgorithm, Institution,
    InstitutionKind, InsuranceCategory, NewAccount, NewCard, ReversalId, ReversalReason,
    ReversalRequest, Store, StoreError, TransactionId, TransactionKind, TransactionRecord, TxnLeg,
};
use schemas::domain::{
    AmountFen, InstitutionId, Pan, ResponseCode, Rrn, Stan, TerminalId, TransmissionDateTime,
};
use schemas::events::sample::ids;
use schemas::events::{
    EventType, Institutions, LedgerAccount, Leg, LegKind, Party, References, SettlementEvent,
    SCHEMA_VERSION,
};
use uuid::Uuid;

/// The seeded network.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Acquirer of every fixture transaction.
    pub hospital: InstitutionId,
    /// Keeps the pooled fund and personal accounts.
    pub fund: InstitutionId,
    /// Issues the card.
    pub bank: InstitutionId,
    /// The card's PAN.
    pub pan: Pan,
    /// The card.
    pub card_id: CardId,
    /// The cardholder's personal medical account.
    pub personal: AccountId,
    /// The pooled fund.
    pub pooled: AccountId,
}

/// A valid id from a constant (the constants are valid).
pub fn inst(id: &str) -> InstitutionId {
    InstitutionId::parse(id).unwrap_or_else(|_| unreachable!("fixture institution id"))
}

/// Seeds institutions, a BIN route, a card and two accounts.
pub async fn seed<S: Store>(
    store: &S,
    personal_fen: i64,
    pooled_fen: i64,
) -> Result<Fixture, StoreError> {
    let at = now_us();
    for (id, name, kind) in [
        (ids::HOSPITAL, "City Hospital", InstitutionKind::Hospital),
        (
            ids::INSURANCE_FUND,
            "Medical Insurance Fund",
            InstitutionKind::InsuranceFund,
        ),
        (ids::BANK, "Bank of the Province", InstitutionKind::Bank),
        (
            ids::SOCIAL_SECURITY_FUND,
            "Social Security Fund",
            InstitutionKind::SocialSecurityFund,
        ),
    ] {
        store
            .upsert_institution(&Institution {
                institution_id: inst(id),
                name: name.into(),
                kind,
            })
            .await?;
    }
    store
        .put_bin_route(&BinRoute {
            bin_prefix: "622848".into(),
            issuer: inst(ids::BANK),
        })
        .await?;
    let pan = Pan::parse("6228480012345678").unwrap_or_else(|_| unreachable!("fixture pan"));
    let card_id = store
        .issue_card(&NewCard {
            pan: pan.clone(),
            card_identification_code: None,
            issuer: inst(ids::BANK),
            expiry_yymm: "3012".into(),
            status: CardStatus::Active,
            issuance: CardIssuance {
                pan_sequence_number: "01".into(),
                icc_algorithm: Some(IccAlgorithm::Sm4),
                pin_offset: Some("1234".into()),
                insurance_category: Some(InsuranceCategory::Employee),
            },
        })
        .await?;
    let fen = |v: i64| AmountFen::new(v).map_err(|_| StoreError::OutOfRange("opening balance"));
    let personal = store
        .open_account(
            &NewAccount {
                institution: inst(ids::INSURANCE_FUND),
                card_id: Some(card_id),
                kind: AccountKind::PersonalMedical,
                opening_balance: fen(personal_fen)?,
            },
            at,
        )
        .await?;
    let pooled = store
        .open_account(
            &NewAccount {
                institution: inst(ids::INSURANCE_FUND),
                card_id: None,
                kind: AccountKind::PooledFund,
                opening_balance: fen(pooled_fen)?,
            },
            at,
        )
        .await?;
    Ok(Fixture {
        hospital: inst(ids::HOSPITAL),
        fund: inst(ids::INSURANCE_FUND),
        bank: inst(ids::BANK),
        pan,
        card_id,
        personal,
        pooled,
    })
}

fn amount(v: i64) -> AmountFen {
    AmountFen::new(v).unwrap_or(AmountFen::ZERO)
}

/// A transaction record numbered `seq` (distinct STAN/RRN per `seq`).
pub fn transaction(
    fx: &Fixture,
    kind: TransactionKind,
    mti: &str,
    seq: u32,
    amount_fen: i64,
    response_code: ResponseCode,
) -> TransactionRecord {
    TransactionRecord {
        transaction_id: TransactionId(Uuid::now_v7()),
        kind,
        mti: mti.into(),
        processing_code: "000000".into(),
        card_id: Some(fx.card_id),
        pan_masked: Some(fx.pan.masked()),
        acquirer: fx.hospital.clone(),
        issuer: Some(fx.bank.clone()),
        terminal_id: TerminalId::parse("KIOSK001").unwrap_or_else(|_| unreachable!("8 chars")),
        stan: Stan::new(seq % 1_000_000).unwrap_or_else(|_| unreachable!("< 1e6")),
        rrn: Rrn::parse(&format!("{:012}", u64::from(seq)))
            .unwrap_or_else(|_| unreachable!("12 digits")),
        transmission_at: TransmissionDateTime::parse("1123093605")
            .unwrap_or_else(|_| unreachable!("valid")),
        amount_fen: amount(amount_fen),
        response_code,
        original_transaction_id: None,
        decided_at_us: now_us(),
    }
}

/// A settlement event for `t`: one leg from the personal accounts to the hospital.
pub fn event(
    fx: &Fixture,
    t: &TransactionRecord,
    event_type: EventType,
    hold_id: Option<HoldId>,
) -> SettlementEvent {
    let payer = Party {
        institution: fx.fund.clone(),
        account: LedgerAccount::PersonalAccounts,
    };
    let payee = Party {
        institution: fx.hospital.clone(),
        account: LedgerAccount::Merchant,
    };
    let (debit, credit) = if event_type == EventType::Reversal || event_type == EventType::Refund {
        (payee, payer)
    } else {
        (payer, payee)
    };
    SettlementEvent {
        event_id: Uuid::now_v7(),
        schema_version: SCHEMA_VERSION,
        event_type,
        occurred_at: chrono::Utc::now(),
        transaction_id: t.transaction_id.0,
        institutions: Institutions {
            acquirer: t.acquirer.clone(),
            issuer: t.issuer.clone(),
        },
        currency: schemas::domain::Currency::Cny,
        amount_fen: t.amount_fen,
        legs: vec![Leg {
            leg_no: 1,
            kind: LegKind::PersonalAccount,
            debit,
            credit,
            amount_fen: t.amount_fen,
        }],
        references: References {
            rrn: t.rrn.clone(),
            stan: t.stan,
            terminal_id: t.terminal_id.clone(),
            transmission_at: t.transmission_at.clone(),
            original_event_id: event_type.requires_original().then(Uuid::now_v7),
            hold_id: hold_id.map(|h| h.0),
        },
    }
}

fn leg(fx: &Fixture, account: AccountId, amount_fen: i64) -> TxnLeg {
    TxnLeg {
        leg_no: 1,
        kind: LegKind::PersonalAccount,
        institution: fx.fund.clone(),
        account_id: Some(account),
        amount_fen: amount(amount_fen),
    }
}

/// Issues a card of `issuer` with no chip data, PIN offset or insurance category.
pub async fn issue_plain_card<S: Store>(
    store: &S,
    issuer: &InstitutionId,
    pan: &Pan,
    status: CardStatus,
) -> Result<CardId, StoreError> {
    store
        .issue_card(&NewCard {
            pan: pan.clone(),
            card_identification_code: None,
            issuer: issuer.clone(),
            expiry_yymm: "3012".into(),
            status,
            issuance: CardIssuance {
                pan_sequence_number: "01".into(),
                icc_algorithm: None,
                pin_offset: None,
                insurance_category: None,
            },
        })
        .await
}

/// `n` approved debits of `amount_fen` each from `account`, numbered from `first_seq`.
pub fn debits(
    fx: &Fixture,
    account: AccountId,
    first_seq: u32,
    n: u32,
    amount_fen: i64,
) -> Vec<Decision> {
    (first_seq..first_seq + n)
        .map(|seq| debit(fx, account, seq, amount_fen))
        .collect()
}

/// An approved purchase debiting `account`, with its event.
pub fn debit(fx: &Fixture, account: AccountId, seq: u32, amount_fen: i64) -> Decision {
    let t = transaction(
        fx,
        TransactionKind::Purchase,
        "0200",
        seq,
        amount_fen,
        ResponseCode::Approved,
    );
    let event = event(fx, &t, EventType::Purchase, None);
    Decision {
        legs: vec![leg(fx, account, amount_fen)],
        balance_ops: vec![BalanceOp::Debit {
            account_id: account,
            amount_fen: amount(amount_fen),
        }],
        event: Some(event),
        reversal: None,
        advice: None,
        atc: None,
        risk: None,
        transaction: t,
    }
}

/// An approved pre-authorization placing a hold on `account`.
pub fn hold(fx: &Fixture, account: AccountId, seq: u32, amount_fen: i64) -> (Decision, HoldId) {
    let hold_id = HoldId(Uuid::now_v7());
    let t = transaction(
        fx,
        TransactionKind::Preauthorization,
        "0100",
        seq,
        amount_fen,
        ResponseCode::Approved,
    );
    let event = event(fx, &t, EventType::AuthorizationHold, Some(hold_id));
    let d = Decision {
        legs: vec![leg(fx, account, amount_fen)],
        balance_ops: vec![BalanceOp::PlaceHold {
            hold_id,
            account_id: account,
            amount_fen: amount(amount_fen),
            expires_at_us: now_us() + 7 * 86_400_000_000,
        }],
        event: Some(event),
        reversal: None,
        advice: None,
        atc: None,
        risk: None,
        transaction: t,
    };
    (d, hold_id)
}

/// An approved completion capturing `amount_fen` of a hold.
pub fn capture(fx: &Fixture, hold_id: HoldId, seq: u32, amount_fen: i64) -> Decision {
    let t = transaction(
        fx,
        TransactionKind::Completion,
        "0220",
        seq,
        amount_fen,
        ResponseCode::Approved,
    );
    let event = event(fx, &t, EventType::Completion, Some(hold_id));
    Decision {
        legs: vec![],
        balance_ops: vec![BalanceOp::CaptureHold {
            hold_id,
            amount_fen: amount(amount_fen),
        }],
        event: Some(event),
        reversal: None,
        advice: None,
        atc: None,
        risk: None,
        transaction: t,
    }
}

/// An approved release of a hold.
pub fn release(fx: &Fixture, hold_id: HoldId, seq: u32, held_fen: i64) -> Decision {
    let t = transaction(
        fx,
        TransactionKind::HoldRelease,
        "0400",
        seq,
        held_fen,
        ResponseCode::Approved,
    );
    let event = event(fx, &t, EventType::HoldRelease, Some(hold_id));
    Decision {
        legs: vec![],
        balance_ops: vec![BalanceOp::ReleaseHold { hold_id }],
        event: Some(event),
        reversal: None,
        advice: None,
        atc: None,
        risk: None,
        transaction: t,
    }
}

/// A declined purchase (no money moves, no event).
pub fn decline(fx: &Fixture, seq: u32, amount_fen: i64, code: ResponseCode) -> Decision {
    Decision {
        transaction: transaction(fx, TransactionKind::Purchase, "0200", seq, amount_fen, code),
        legs: vec![],
        balance_ops: vec![],
        event: None,
        reversal: None,
        advice: None,
        atc: None,
        risk: None,
    }
}

/// A purchase declined with 91 because the bank leg timed out, with a 0420 queued to the bank.
pub fn bank_timeout(fx: &Fixture, seq: u32, amount_fen: i64) -> Decision {
    let mut d = decline(fx, seq, amount_fen, ResponseCode::IssuerUnavailable);
    d.reversal = Some(ReversalRequest {
        reversal_id: ReversalId(Uuid::now_v7()),
        destination: fx.bank.clone(),
        reason: ReversalReason::IssuerTimeout,
        amount_fen: amount(amount_fen),
        stan: d.transaction.stan,
        transmission_at: d.transaction.transmission_at.clone(),
        first_attempt_at_us: now_us(),
    });
    d
}

/// A bank purchase approved in stand-in (the bank's link was down), with its 0220 advice
/// queued to the bank.
pub fn stand_in(fx: &Fixture, seq: u32, amount_fen: i64) -> Decision {
    let mut t = transaction(
        fx,
        TransactionKind::Purchase,
        "0200",
        seq,
        amount_fen,
        ResponseCode::Approved,
    );
    t.processing_code = "000000".into();
    let advice = AdviceRequest {
        advice_id: AdviceId(Uuid::now_v7()),
        destination: fx.bank.clone(),
        class: AdviceClass::Financial,
        processing_code: "000000".into(),
        amount_fen: amount(amount_fen),
        stan: t.stan,
        transmission_at: t.transmission_at.clone(),
        reason: ResponseCode::IssuerUnavailable,
        auth_code: format!("S{:05}", seq % 100_000),
        first_attempt_at_us: now_us(),
    };
    Decision {
        transaction: t,
        legs: vec![],
        balance_ops: vec![],
        event: None,
        reversal: None,
        advice: Some(advice),
        atc: None,
        risk: None,
    }
}

/// The approved reversal (0400, same RRN) of `original`, with its 0420 queued to the bank.
pub fn reversal_of(fx: &Fixture, original: &Decision, seq: u32) -> Decision {
    let o = &original.transaction;
    let mut t = transaction(
        fx,
        TransactionKind::Reversal,
        "0400",
        seq,
        o.amount_fen.get(),
        ResponseCode::Approved,
    );
    t.rrn = o.rrn.clone();
    t.original_transaction_id = Some(o.transaction_id);
    let reversal = ReversalRequest {
        reversal_id: ReversalId(Uuid::now_v7()),
        destination: fx.bank.clone(),
        reason: ReversalReason::AcquirerRequest,
        amount_fen: o.amount_fen,
        stan: t.stan,
        transmission_at: t.transmission_at.clone(),
        first_attempt_at_us: now_us(),
    };
    Decision {
        transaction: t,
        legs: vec![],
        balance_ops: vec![],
        event: None,
        reversal: Some(reversal),
        advice: None,
        atc: None,
        risk: None,
    }
}

/// `d` consuming the fixture card's ATC `atc`.
pub fn with_atc(fx: &Fixture, mut d: Decision, atc: u16) -> Decision {
    d.atc = Some(CardAtc {
        card_id: fx.card_id,
        atc,
    });
    d
}
