//! The bank cut-over's store, on every backend: a bank's totals of a day are its legs by line,
//! and its reconciliation of a day is claimed by one attempt at a time, answered once and, out
//! of balance, resolved once, across a restart.

use super::{commit_one, seeded, Harness};
use chrono::NaiveDate;
use schemas::domain::{AmountFen, ResponseCode};
use schemas::events::{EventType, LegKind};
use schemas::iso8583::{ReconciliationTotals, Tally, TotalsLine};
use switch::sim::testkit::{self, Fixture};
use switch::store::cutover::{
    BankAnswer, ReconciliationCount, ReconciliationQuery, ReconciliationStatus, Resolution,
    ResolveOutcome,
};
use switch::store::*;

fn fen(v: i64) -> AmountFen {
    AmountFen::new(v).unwrap()
}

/// `d` with one leg of `kind` paid by `institution` (and its settlement event, which every
/// approval that moves money has).
fn with_leg(
    fx: &Fixture,
    mut d: Decision,
    kind: LegKind,
    institution: &InstitutionIdRef,
    amount: i64,
) -> Decision {
    if d.event.is_none() {
        let event_type = match d.transaction.kind {
            TransactionKind::MedicalBillSplit => EventType::MedicalBillSplit,
            TransactionKind::Refund => EventType::Refund,
            TransactionKind::BenefitCredit => EventType::BenefitCredit,
            TransactionKind::Reversal => EventType::Reversal,
            _ => EventType::Purchase,
        };
        d.event = Some(testkit::event(fx, &d.transaction, event_type, None));
    }
    d.legs.push(TxnLeg {
        leg_no: (d.legs.len() + 1) as u8,
        kind,
        institution: institution.clone(),
        account_id: None,
        amount_fen: fen(amount),
    });
    d
}

type InstitutionIdRef = schemas::domain::InstitutionId;

/// An approved transaction of `kind` (a stand-in purchase's record, re-kinded).
fn approved(fx: &Fixture, kind: TransactionKind, seq: u32, amount: i64) -> Decision {
    let mut d = testkit::stand_in(fx, seq, amount);
    d.advice = None;
    d.transaction.kind = kind;
    d
}

pub async fn bank_totals_are_the_banks_legs_by_line<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000_000).await;
    let s = h.store();
    let from = now_us();
    let purchase = with_leg(
        &fx,
        approved(&fx, TransactionKind::Purchase, 31, 3_000),
        LegKind::Bank,
        &fx.bank,
        3_000,
    );
    // A bill of 100.00: the pooled fund pays 60.00, the bank 40.00; the bank counts its leg.
    let bill = with_leg(
        &fx,
        with_leg(
            &fx,
            approved(&fx, TransactionKind::MedicalBillSplit, 32, 10_000),
            LegKind::PooledFund,
            &fx.fund,
            6_000,
        ),
        LegKind::Bank,
        &fx.bank,
        4_000,
    );
    let reversed = with_leg(
        &fx,
        approved(&fx, TransactionKind::Purchase, 33, 1_000),
        LegKind::Bank,
        &fx.bank,
        1_000,
    );
    let mut reversal = with_leg(
        &fx,
        testkit::reversal_of(&fx, &reversed, 34),
        LegKind::Bank,
        &fx.hospital,
        1_000,
    );
    reversal.reversal = None;
    // A refund's bank leg is paid by the hospital, a benefit credit's by the fund: both are
    // the bank's credits.
    let refund = with_leg(
        &fx,
        approved(&fx, TransactionKind::Refund, 35, 400),
        LegKind::Bank,
        &fx.hospital,
        400,
    );
    let benefit = with_leg(
        &fx,
        approved(&fx, TransactionKind::BenefitCredit, 36, 5_000),
        LegKind::SocialSecurityFund,
        &fx.fund,
        5_000,
    );
    // Nothing of the bank's: a personal-account payment, and a decline.
    let personal = testkit::debit(&fx, fx.personal, 37, 700);
    let declined = testkit::decline(&fx, 38, 9_999, ResponseCode::InsufficientFunds);
    for d in [
        purchase, bill, reversed, reversal, refund, benefit, personal, declined,
    ] {
        commit_one(&*s, d).await.unwrap();
    }
    let to = now_us() + 1;
    let t = s.bank_totals(&fx.bank, from, to).await.unwrap();
    let tally = |count, amount| Tally {
        count,
        amount: fen(amount),
    };
    assert_eq!(t.debits, tally(3, 8_000));
    assert_eq!(t.debit_reversals, tally(1, 1_000));
    assert_eq!(t.credits, tally(2, 5_400));
    assert_eq!(t.credit_reversals, tally(0, 0));
    assert_eq!(
        s.bank_totals(&fx.hospital, from, to).await.unwrap(),
        ReconciliationTotals::default(),
        "another institution"
    );
    assert_eq!(
        s.bank_totals(&fx.bank, to, to + 1_000_000).await.unwrap(),
        ReconciliationTotals::default(),
        "another day"
    );
    super::finish(h).await;
}

pub async fn a_bank_reconciliation_is_claimed_answered_and_resolved_once<H: Harness>() {
    let (mut h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let id = s
        .claim_bank_reconciliation(&fx.bank, day, 100, 200)
        .await
        .unwrap()
        .expect("the first claim");
    assert_eq!(
        s.claim_bank_reconciliation(&fx.bank, day, 150, 250)
            .await
            .unwrap(),
        None,
        "held by the first attempt"
    );
    s.record_reconciliation_attempt(id, "the bank did not answer in time", 160)
        .await
        .unwrap();
    assert_eq!(
        s.claim_bank_reconciliation(&fx.bank, day, 170, 270)
            .await
            .unwrap(),
        Some(id),
        "due again"
    );
    let pending = s.bank_reconciliation(id).await.unwrap().expect("record");
    assert_eq!(pending.status, ReconciliationStatus::Pending);
    assert_eq!(pending.attempts, 2);
    assert_eq!(
        pending.last_error.as_deref(),
        Some("the bank did not answer in time")
    );
    assert!(s.reconciled_banks(day).await.unwrap().is_empty());

    let mut ours = ReconciliationTotals::default();
    ours.add(TotalsLine::Debits, 2, fen(3_000)).unwrap();
    let mut theirs = ReconciliationTotals::default();
    theirs.add(TotalsLine::Debits, 1, fen(1_000)).unwrap();
    let answer = BankAnswer {
        switch_totals: ours,
        bank_totals: theirs,
        bank_settlement_code: "2".into(),
        differing_fields: ours.differing_fields(&theirs),
        stan: "000042".into(),
        at_us: 300,
    };
    assert!(s.finish_bank_reconciliation(id, &answer).await.unwrap());
    assert!(
        !s.finish_bank_reconciliation(id, &answer).await.unwrap(),
        "answered once"
    );
    assert_eq!(
        s.claim_bank_reconciliation(&fx.bank, day, i64::MAX - 1, i64::MAX)
            .await
            .unwrap(),
        None,
        "never sent again"
    );
    assert_eq!(
        s.reconciled_banks(day).await.unwrap(),
        vec![fx.bank.clone()]
    );
    let open = s.bank_reconciliation(id).await.unwrap().expect("record");
    assert_eq!(open.status, ReconciliationStatus::OutOfBalance);
    assert_eq!(open.answer.as_ref(), Some(&answer));
    assert_eq!(
        s.reconciliation_counts().await.unwrap(),
        vec![ReconciliationCount {
            bank: fx.bank.clone(),
            status: ReconciliationStatus::OutOfBalance,
            count: 1,
        }]
    );
    let query = |status, bank: &InstitutionIdRef, day| ReconciliationQuery {
        bank: Some(bank.clone()),
        day: Some(day),
        status: Some(status),
        before_id: None,
        limit: 10,
    };
    let found = |q| {
        let s = s.clone();
        async move { s.bank_reconciliations(&q).await.unwrap().len() }
    };
    assert_eq!(
        found(query(ReconciliationStatus::OutOfBalance, &fx.bank, day)).await,
        1
    );
    assert_eq!(
        found(query(ReconciliationStatus::InBalance, &fx.bank, day)).await,
        0
    );
    assert_eq!(
        found(query(ReconciliationStatus::OutOfBalance, &fx.hospital, day)).await,
        0
    );
    let next_day = day.succ_opt().unwrap();
    assert_eq!(
        found(query(
            ReconciliationStatus::OutOfBalance,
            &fx.bank,
            next_day
        ))
        .await,
        0
    );

    let resolution = Resolution {
        by: "user:analyst".into(),
        reason: "the bank posts the missing purchase".into(),
        at_us: 400,
    };
    assert!(matches!(
        s.resolve_bank_reconciliation(id, &resolution).await.unwrap(),
        ResolveOutcome::Resolved(r) if r.status == ReconciliationStatus::Resolved
    ));
    assert!(matches!(
        s.resolve_bank_reconciliation(id, &resolution)
            .await
            .unwrap(),
        ResolveOutcome::NotAnException(_)
    ));
    assert_eq!(
        s.resolve_bank_reconciliation(id + 1_000, &resolution)
            .await
            .unwrap(),
        ResolveOutcome::NotFound
    );
    h.reopen().await;
    let s = h.store();
    let resolved = s.bank_reconciliation(id).await.unwrap().expect("record");
    assert_eq!(resolved.status, ReconciliationStatus::Resolved);
    assert_eq!(resolved.resolution, Some(resolution));
    assert_eq!(resolved.answer, Some(answer));
    super::finish(h).await;
}
