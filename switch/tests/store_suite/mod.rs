//! The store test suite, run unchanged against every backend (store_sqlite.rs,
//! store_postgres.rs). Each case states one rule of the store.

#![allow(dead_code)]

mod card_risk;
pub use card_risk::*;
mod operator;
pub use operator::*;
mod cms;
pub use cms::*;
mod audit_atomic;
pub use audit_atomic::*;
mod operator_state;
pub use operator_state::*;
#[path = "../support/approving_bank.rs"]
mod approving_bank;
use approving_bank::ApprovingBank;
mod cutover;
pub use cutover::*;
mod reversal_once;
pub use reversal_once::*;
mod card_chain;
pub use card_chain::*;

use schemas::domain::{AmountFen, Pan, ResponseCode};
use schemas::events::sample::ids;
use schemas::iso8583::{ReconciliationTotals, Tally};
use std::collections::HashMap;
use std::sync::Arc;
use switch::sim::testkit::{self, inst, Fixture};
use switch::store::writer::{self, WriteError, WriterConfig};
use switch::store::*;

/// Opens a fresh, isolated store of one backend, and can reopen it on the same data.
pub trait Harness: Sized {
    /// The backend.
    type S: Store + switch::cms::CmsStore;
    /// SQL that removes the audit log's append-only triggers.
    const DISABLE_AUDIT_TRIGGERS: &'static str;
    /// SQL that removes the audit log's delete trigger (no-op where one trigger covers both).
    const DISABLE_AUDIT_DELETE_TRIGGER: &'static str;
    /// SQL that makes every audit append fail (as a full disk would), one statement each.
    const FAIL_AUDIT_APPENDS: &'static [&'static str];
    /// SQL that undoes [`Harness::FAIL_AUDIT_APPENDS`].
    const HEAL_AUDIT_APPENDS: &'static [&'static str];
    /// A condition true when the blob column `COL` holds the bytes of the text `TEXT`.
    const BLOB_HOLDS_TEXT: &'static str;
    /// A new empty store.
    fn new() -> impl std::future::Future<Output = Self>;
    /// The store.
    fn store(&self) -> Arc<Self::S>;
    /// Closes the store and opens it again on the same data (a restart).
    fn reopen(&mut self) -> impl std::future::Future<Output = ()>;
    /// Runs SQL directly, bypassing the store (to play an attacker or an operator).
    fn raw_execute(&self, sql: &str) -> impl std::future::Future<Output = Result<u64, String>>;
    /// Removes the test's data.
    fn cleanup(self) -> impl std::future::Future<Output = ()>;
}

/// Ends a case: whatever it did, the store's invariants hold (`switch verify`), then its data
/// goes.
pub async fn finish<H: Harness>(h: H) {
    let report = h
        .store()
        .verify_integrity()
        .await
        .expect("integrity check runs");
    assert!(report.is_consistent(), "{report}");
    h.cleanup().await;
}

async fn seeded<H: Harness>(personal_fen: i64) -> (H, Fixture) {
    let h = H::new().await;
    let fx = testkit::seed(&*h.store(), personal_fen, 1_000_000_000)
        .await
        .expect("seed");
    (h, fx)
}

async fn commit_one<S: Store>(s: &S, d: Decision) -> Result<Committed, DecisionError> {
    let mut out = s.commit_decisions(vec![d], now_us()).await;
    assert_eq!(out.results.len(), 1);
    out.results.remove(0)
}

async fn balance<S: Store>(s: &S, id: AccountId) -> (i64, i64) {
    let a = s.account(id).await.unwrap().expect("account exists");
    assert_eq!(
        s.journal_balance(id).await.unwrap(),
        a.balance_fen,
        "balance equals the sum of its journal"
    );
    (a.balance_fen, a.held_fen)
}

pub async fn reference_data_cards_and_routing<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let names: Vec<String> = s
        .institutions()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.institution_id.to_string())
        .collect();
    assert!(names.contains(&ids::BANK.to_owned()));
    s.upsert_institution(&Institution {
        institution_id: inst("01030000"),
        name: "Second Bank".into(),
        kind: InstitutionKind::Bank,
    })
    .await
    .unwrap();
    s.put_bin_route(&BinRoute {
        bin_prefix: "62284800".into(),
        issuer: inst("01030000"),
    })
    .await
    .unwrap();
    let other = Pan::parse("6228470000000000").unwrap();
    assert_eq!(
        s.route_for_pan(&fx.pan).await.unwrap(),
        Some(inst("01030000")),
        "the longest prefix wins"
    );
    assert_eq!(
        s.route_for_pan(&Pan::parse("6228489900000000").unwrap())
            .await
            .unwrap(),
        Some(fx.bank.clone())
    );
    assert_eq!(s.route_for_pan(&other).await.unwrap(), None);
    assert_eq!(s.bin_routes().await.unwrap().len(), 2);

    let card = s
        .card_by_pan(&fx.pan)
        .await
        .unwrap()
        .expect("card found by PAN");
    assert_eq!(card.card_id, fx.card_id);
    assert_eq!(card.pan_masked, "622848******5678");
    assert_eq!(card.status.decline_code(), None);
    assert_eq!(card.issuance.pan_sequence_number, "01");
    assert_eq!(card.issuance.icc_algorithm, Some(IccAlgorithm::Sm4));
    assert_eq!(card.issuance.pin_offset.as_deref(), Some("1234"));
    assert_eq!(s.card_pan(fx.card_id).await.unwrap(), fx.pan);
    assert!(s.card_by_pan(&other).await.unwrap().is_none());
    assert!(matches!(
        s.card_pan(CardId(999_999)).await,
        Err(StoreError::NotFound(_))
    ));

    assert!(s.hot_list().await.unwrap().is_empty());
    s.set_card_status(
        fx.card_id,
        CardStatus::Lost,
        Some("reported by phone"),
        now_us(),
    )
    .await
    .unwrap();
    let hot = s.hot_list().await.unwrap();
    assert_eq!(hot.len(), 1);
    assert_eq!(hot[0].status.decline_code(), Some(ResponseCode::LostCard));
    assert_eq!(hot[0].status_reason.as_deref(), Some("reported by phone"));
    assert!(matches!(
        s.set_card_status(CardId(999_999), CardStatus::Lost, None, 0)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.accounts_for_card(fx.card_id).await.unwrap().len(), 1);
    finish(h).await;
}

pub async fn balances_never_go_negative<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let out = s
        .commit_decisions(
            vec![
                testkit::debit(&fx, fx.personal, 1, 60),
                testkit::debit(&fx, fx.personal, 2, 50),
                testkit::debit(&fx, fx.personal, 3, 40),
            ],
            now_us(),
        )
        .await;
    assert!(out.results[0].is_ok());
    assert_eq!(
        out.results[1],
        Err(DecisionError::InsufficientFunds(fx.personal))
    );
    assert!(out.results[2].is_ok());
    assert_eq!(out.db_transactions, 1);
    assert_eq!(balance(&*s, fx.personal).await, (0, 0));
    assert_eq!(
        commit_one(&*s, testkit::debit(&fx, fx.personal, 4, 1)).await,
        Err(DecisionError::InsufficientFunds(fx.personal))
    );

    // Many concurrent spenders through the writer: never more than the balance is spent.
    let (w, _task) = writer::spawn(s.clone(), WriterConfig::default());
    let second = s
        .open_account(
            &NewAccount {
                institution: fx.fund.clone(),
                card_id: Some(fx.card_id),
                kind: AccountKind::PersonalMedical,
                opening_balance: schemas::domain::AmountFen::new(1_000).unwrap(),
            },
            now_us(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for seq in 100..150u32 {
        let w = w.clone();
        let d = testkit::debit(&fx, second, seq, 70);
        tasks.push(tokio::spawn(async move { w.submit(d).await }));
    }
    let mut approved = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => approved += 1,
            Err(WriteError::Decision(DecisionError::InsufficientFunds(_))) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(approved, 14, "1000 fen pays 14 debits of 70");
    assert_eq!(balance(&*s, second).await, (1_000 - 14 * 70, 0));
    finish(h).await;
}

pub async fn holds_reserve_capture_and_release<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let (place, hold_id) = testkit::hold(&fx, fx.personal, 1, 80);
    commit_one(&*s, place).await.unwrap();
    assert_eq!(balance(&*s, fx.personal).await, (100, 80));
    assert_eq!(
        commit_one(&*s, testkit::debit(&fx, fx.personal, 2, 21)).await,
        Err(DecisionError::InsufficientFunds(fx.personal)),
        "held funds are not available"
    );
    commit_one(&*s, testkit::capture(&fx, hold_id, 3, 50))
        .await
        .unwrap();
    assert_eq!(balance(&*s, fx.personal).await, (50, 0));
    let hold = s.hold(hold_id).await.unwrap().unwrap();
    assert_eq!((hold.state, hold.captured_fen), (HoldState::Captured, 50));
    assert_eq!(
        commit_one(&*s, testkit::capture(&fx, hold_id, 4, 10)).await,
        Err(DecisionError::HoldNotPending(hold_id))
    );

    let (place, second) = testkit::hold(&fx, fx.personal, 5, 30);
    commit_one(&*s, place).await.unwrap();
    assert_eq!(
        commit_one(&*s, testkit::capture(&fx, second, 6, 31)).await,
        Err(DecisionError::CaptureExceedsHold(second))
    );
    commit_one(&*s, testkit::release(&fx, second, 7, 30))
        .await
        .unwrap();
    assert_eq!(balance(&*s, fx.personal).await, (50, 0));
    assert_eq!(
        s.hold(second).await.unwrap().unwrap().state,
        HoldState::Released
    );
    let unknown = HoldId(uuid::Uuid::now_v7());
    assert_eq!(
        commit_one(&*s, testkit::release(&fx, unknown, 8, 1)).await,
        Err(DecisionError::UnknownHold(unknown))
    );
    let (mut place, expiring) = testkit::hold(&fx, fx.personal, 9, 10);
    if let BalanceOp::PlaceHold { expires_at_us, .. } = &mut place.balance_ops[0] {
        *expires_at_us = 1;
    }
    commit_one(&*s, place).await.unwrap();
    let expired = s.expired_holds(now_us(), 10).await.unwrap();
    assert_eq!(
        expired.iter().map(|h| h.hold_id).collect::<Vec<_>>(),
        vec![expiring]
    );
    finish(h).await;
}

async fn nothing_left_of<S: Store>(s: &S, d: &Decision) {
    assert!(s
        .transactions_by_rrn(&d.transaction.rrn)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .find_duplicate(&d.transaction.duplicate_key())
        .await
        .unwrap()
        .is_none());
    let outbox = s.outbox_after(0, 10_000).await.unwrap();
    let event_id = d.event.as_ref().map(|e| e.event_id);
    assert!(outbox.iter().all(|o| Some(o.event_id) != event_id));
    let due = s.due_reversals(i64::MAX, 10_000).await.unwrap();
    let reversal_id = d.reversal.as_ref().map(|r| r.reversal_id);
    assert!(due.iter().all(|r| Some(r.reversal_id) != reversal_id));
}

pub async fn a_failing_decision_leaves_nothing_behind<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    // Fails in the planner: its second op names an unknown account.
    let mut bad = testkit::debit(&fx, fx.personal, 1, 30);
    bad.balance_ops.push(BalanceOp::Debit {
        account_id: AccountId(987_654),
        amount_fen: schemas::domain::AmountFen::new(1).unwrap(),
    });
    bad.reversal = testkit::bank_timeout(&fx, 1, 30).reversal;
    assert_eq!(
        commit_one(&*s, bad.clone()).await,
        Err(DecisionError::UnknownAccount(AccountId(987_654)))
    );
    nothing_left_of(&*s, &bad).await;
    assert_eq!(balance(&*s, fx.personal).await, (100, 0));

    // Fails in the database: its settlement event reuses the id of another decision's event
    // in the same batch (the outbox's unique event id; the planner does not see event ids).
    // The batch is retried decision by decision; the good ones commit, the bad one leaves
    // nothing. (Until issue 27 this case was an unknown acquirer, refused by a foreign key
    // that the hot tables no longer carry.)
    let good_a = testkit::debit(&fx, fx.personal, 3, 10);
    let mut fk = testkit::debit(&fx, fx.personal, 2, 10);
    if let (Some(e), Some(a)) = (fk.event.as_mut(), good_a.event.as_ref()) {
        e.event_id = a.event_id;
    }
    let good_b = testkit::bank_timeout(&fx, 4, 10);
    let out = s
        .commit_decisions(vec![good_a.clone(), fk.clone(), good_b.clone()], now_us())
        .await;
    assert!(out.results[0].is_ok(), "{:?}", out.results[0]);
    assert!(
        matches!(out.results[1], Err(DecisionError::Rejected(_))),
        "{:?}",
        out.results[1]
    );
    assert!(out.results[2].is_ok());
    assert_eq!(
        out.db_transactions, 4,
        "one failed group commit + three retries"
    );
    assert!(s
        .transactions_by_rrn(&fk.transaction.rrn)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .find_duplicate(&fk.transaction.duplicate_key())
        .await
        .unwrap()
        .is_none());
    let shared_event = fk.event.as_ref().map(|e| e.event_id);
    let outbox = s.outbox_after(0, 10_000).await.unwrap();
    assert_eq!(
        outbox
            .iter()
            .filter(|o| Some(o.event_id) == shared_event)
            .count(),
        1,
        "the event id once, good_a's"
    );
    assert_eq!(balance(&*s, fx.personal).await, (90, 0));
    let by_rrn = s
        .transactions_by_rrn(&good_b.transaction.rrn)
        .await
        .unwrap();
    assert_eq!(by_rrn.len(), 1);
    let by_id = s
        .transaction(good_b.transaction.transaction_id)
        .await
        .unwrap()
        .expect("committed transaction found by id");
    assert_eq!(by_id, by_rrn[0]);
    assert!(s
        .transaction(fk.transaction.transaction_id)
        .await
        .unwrap()
        .is_none());

    // Caught before the database: a decline that moves money.
    let mut invalid = testkit::decline(&fx, 5, 10, ResponseCode::DoNotHonour);
    invalid.balance_ops = testkit::debit(&fx, fx.personal, 5, 10).balance_ops;
    assert!(matches!(
        commit_one(&*s, invalid).await,
        Err(DecisionError::Invalid(_))
    ));
    assert_eq!(balance(&*s, fx.personal).await, (90, 0));
    finish(h).await;
}

pub async fn duplicates_are_detected<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let first = testkit::debit(&fx, fx.personal, 42, 10);
    let key = first.transaction.duplicate_key();
    assert_eq!(s.find_duplicate(&key).await.unwrap(), None);
    let committed = commit_one(&*s, first.clone()).await.unwrap();
    assert_eq!(
        s.find_duplicate(&key).await.unwrap(),
        Some(committed.transaction_id)
    );

    // A retransmission: same terminal, STAN, RRN and time, new transaction id.
    let again = testkit::debit(&fx, fx.personal, 42, 10);
    assert_eq!(
        commit_one(&*s, again).await,
        Err(DecisionError::Duplicate {
            existing: Some(committed.transaction_id)
        })
    );
    assert_eq!(balance(&*s, fx.personal).await, (90, 0), "charged once");

    // Another acquirer's request with the same terminal, STAN, RRN and time is not a
    // retransmission of this one (terminal ids and STANs are each acquirer's own numbering).
    let mut other = testkit::debit(&fx, fx.personal, 42, 10);
    other.transaction.acquirer = fx.bank.clone();
    if let Some(e) = other.event.as_mut() {
        e.institutions.acquirer = fx.bank.clone();
    }
    assert_eq!(
        s.find_duplicate(&other.transaction.duplicate_key())
            .await
            .unwrap(),
        None
    );
    let other_id = commit_one(&*s, other.clone()).await.unwrap().transaction_id;
    assert_eq!(
        s.find_duplicate(&other.transaction.duplicate_key())
            .await
            .unwrap(),
        Some(other_id)
    );
    assert_eq!(
        s.find_duplicate(&key).await.unwrap(),
        Some(committed.transaction_id),
        "each acquirer finds its own"
    );
    assert_eq!(balance(&*s, fx.personal).await, (80, 0));

    // Its reversal may carry the same references (another message class).
    let mut reversal = testkit::decline(&fx, 42, 10, ResponseCode::Approved);
    reversal.transaction.mti = "0400".into();
    reversal.transaction.kind = TransactionKind::Reversal;
    reversal.transaction.original_transaction_id = Some(committed.transaction_id);
    reversal.balance_ops = vec![BalanceOp::Credit {
        account_id: fx.personal,
        amount_fen: schemas::domain::AmountFen::new(10).unwrap(),
    }];
    commit_one(&*s, reversal).await.unwrap();
    assert_eq!(balance(&*s, fx.personal).await, (90, 0));
    assert_eq!(
        s.transactions_by_rrn(&first.transaction.rrn)
            .await
            .unwrap()
            .len(),
        3
    );

    // Keys older than the retransmission window can be purged.
    assert_eq!(s.purge_duplicate_keys(now_us() + 1).await.unwrap(), 3);
    assert_eq!(s.find_duplicate(&key).await.unwrap(), None);
    finish(h).await;
}

pub async fn a_card_atc_only_moves_up_and_survives_a_restart<H: Harness>() {
    let (mut h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let replay = |atc, atc_max| {
        Err(DecisionError::AtcNotIncreasing {
            card_id: fx.card_id,
            atc,
            atc_max,
        })
    };
    let declined = testkit::decline(&fx, 1, 10, ResponseCode::IncorrectPin);
    commit_one(&*s, testkit::with_atc(&fx, declined, 5))
        .await
        .unwrap();
    // The same ATC again (a replayed field 55 under new references), and a lower one.
    let again = testkit::with_atc(&fx, testkit::debit(&fx, fx.personal, 2, 10), 5);
    assert_eq!(commit_one(&*s, again).await, replay(5, 5));
    let lower = testkit::with_atc(&fx, testkit::debit(&fx, fx.personal, 3, 10), 4);
    assert_eq!(commit_one(&*s, lower).await, replay(4, 5));
    assert_eq!(balance(&*s, fx.personal).await, (100, 0), "nothing moved");
    // In one batch: 7 is taken, then 6 is a replay of an older cryptogram; a decision that
    // fails on funds gives its ATC back.
    let out = s
        .commit_decisions(
            vec![
                testkit::with_atc(&fx, testkit::debit(&fx, fx.personal, 4, 10), 7),
                testkit::with_atc(&fx, testkit::debit(&fx, fx.personal, 5, 10), 6),
                testkit::with_atc(&fx, testkit::debit(&fx, fx.personal, 6, 1_000), 9),
            ],
            now_us(),
        )
        .await;
    assert!(out.results[0].is_ok());
    assert_eq!(out.results[1], replay(6, 7));
    assert_eq!(
        out.results[2],
        Err(DecisionError::InsufficientFunds(fx.personal))
    );
    h.reopen().await;
    let s = h.store();
    let card = s.card_by_pan(&fx.pan).await.unwrap().unwrap();
    assert_eq!(card.atc_max, Some(7));
    let next = testkit::with_atc(&fx, testkit::debit(&fx, fx.personal, 7, 10), 8);
    commit_one(&*s, next).await.unwrap();
    assert_eq!(balance(&*s, fx.personal).await, (80, 0));
    finish(h).await;
}

pub async fn the_reversal_queue_survives_a_restart<H: Harness>() {
    let (mut h, fx) = seeded::<H>(100).await;
    let timeout = testkit::bank_timeout(&fx, 7, 25);
    let reversal_id = timeout.reversal.as_ref().unwrap().reversal_id;
    commit_one(&*h.store(), timeout.clone()).await.unwrap();
    h.reopen().await;
    let s = h.store();
    let due = s.due_reversals(now_us(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].reversal_id, reversal_id);
    assert_eq!(
        due[0].original_transaction_id,
        timeout.transaction.transaction_id
    );
    assert_eq!((due[0].amount_fen, due[0].attempts), (25, 0));

    let later = now_us() + 60_000_000;
    s.record_reversal_attempt(reversal_id, later, Some(ResponseCode::IssuerUnavailable))
        .await
        .unwrap();
    assert!(s.due_reversals(now_us(), 10).await.unwrap().is_empty());
    let due = s.due_reversals(later, 10).await.unwrap();
    assert_eq!(due[0].attempts, 1, "the next send is a repeat (0421)");

    s.ack_reversal(reversal_id, ResponseCode::Approved, now_us())
        .await
        .unwrap();
    s.ack_reversal(reversal_id, ResponseCode::Approved, now_us())
        .await
        .unwrap();
    assert!(s.due_reversals(i64::MAX, 10).await.unwrap().is_empty());
    assert!(matches!(
        s.record_reversal_attempt(reversal_id, later, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.ack_reversal(ReversalId(uuid::Uuid::now_v7()), ResponseCode::Approved, 0)
            .await,
        Err(StoreError::NotFound(_))
    ));
    finish(h).await;
}

pub async fn a_stand_in_approval_queues_its_advice_in_the_same_commit_and_it_survives_a_restart<
    H: Harness,
>() {
    let (mut h, fx) = seeded::<H>(100).await;
    let approval = testkit::stand_in(&fx, 8, 1_500);
    let advice = approval.advice.clone().unwrap();
    // A decision that fails (duplicate) leaves no advice behind.
    let mut dup = testkit::stand_in(&fx, 9, 700);
    commit_one(&*h.store(), approval.clone()).await.unwrap();
    dup.transaction.stan = approval.transaction.stan;
    dup.transaction.rrn = approval.transaction.rrn.clone();
    assert!(matches!(
        commit_one(&*h.store(), dup).await,
        Err(DecisionError::Duplicate { .. })
    ));
    h.reopen().await;
    let s = h.store();
    let due = s.due_advices(now_us(), 10).await.unwrap();
    assert_eq!(due.len(), 1, "exactly the committed approval's advice");
    let d = &due[0];
    assert_eq!(d.advice_id, advice.advice_id);
    assert_eq!(d.transaction_id, approval.transaction.transaction_id);
    assert_eq!(d.class, AdviceClass::Financial);
    assert_eq!(d.class.mti(d.attempts), "0220");
    assert_eq!((d.amount_fen, d.attempts), (1_500, 0));
    assert_eq!(d.reason, ResponseCode::IssuerUnavailable);
    assert_eq!(d.auth_code, advice.auth_code);
    assert_eq!((d.stan, &d.destination), (advice.stan, &fx.bank));

    let later = now_us() + 60_000_000;
    s.record_advice_attempt(advice.advice_id, later, None)
        .await
        .unwrap();
    assert!(s.due_advices(now_us(), 10).await.unwrap().is_empty());
    let due = s.due_advices(later, 10).await.unwrap();
    assert_eq!(due[0].class.mti(due[0].attempts), "0221", "a repeat");
    s.ack_advice(advice.advice_id, ResponseCode::Approved, now_us())
        .await
        .unwrap();
    s.ack_advice(advice.advice_id, ResponseCode::Approved, now_us())
        .await
        .unwrap();
    assert!(s.due_advices(i64::MAX, 10).await.unwrap().is_empty());
    assert!(matches!(
        s.record_advice_attempt(advice.advice_id, later, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.ack_advice(AdviceId(uuid::Uuid::now_v7()), ResponseCode::Approved, 0)
            .await,
        Err(StoreError::NotFound(_))
    ));
    finish(h).await;
}

pub async fn a_declined_decision_cannot_carry_an_advice<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let mut d = testkit::decline(&fx, 10, 500, ResponseCode::IssuerUnavailable);
    d.advice = testkit::stand_in(&fx, 10, 500).advice;
    assert!(matches!(
        commit_one(&*s, d).await,
        Err(DecisionError::Invalid(_))
    ));
    assert!(s.due_advices(i64::MAX, 10).await.unwrap().is_empty());
    finish(h).await;
}

pub async fn a_reversal_of_a_stand_in_waits_until_its_advice_is_acknowledged<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let approval = testkit::stand_in(&fx, 11, 2_000);
    let advice_id = approval.advice.as_ref().unwrap().advice_id;
    let reversal = testkit::reversal_of(&fx, &approval, 12);
    let reversal_id = reversal.reversal.as_ref().unwrap().reversal_id;
    // An unrelated timeout reversal is not held back.
    let timeout = testkit::bank_timeout(&fx, 13, 300);
    for d in [approval, reversal, timeout.clone()] {
        commit_one(&*s, d).await.unwrap();
    }
    let due: Vec<ReversalId> = s
        .due_reversals(i64::MAX, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.reversal_id)
        .collect();
    assert_eq!(due, vec![timeout.reversal.unwrap().reversal_id]);
    // Unanswered advice attempts keep it held back.
    s.record_advice_attempt(advice_id, now_us(), None)
        .await
        .unwrap();
    assert_eq!(s.due_reversals(i64::MAX, 10).await.unwrap().len(), 1);
    s.ack_advice(advice_id, ResponseCode::Approved, now_us())
        .await
        .unwrap();
    let due = s.due_reversals(i64::MAX, 10).await.unwrap();
    assert!(due.iter().any(|r| r.reversal_id == reversal_id));
    finish(h).await;
}

pub async fn the_store_and_forward_backlog_shows_what_waits_and_what_is_held<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    assert_eq!(
        s.store_and_forward_backlog(10).await.unwrap(),
        SafBacklog::default()
    );
    let approval = testkit::stand_in(&fx, 31, 2_000);
    let advice_id = approval.advice.as_ref().unwrap().advice_id;
    let reversal = testkit::reversal_of(&fx, &approval, 32);
    let held_id = reversal.reversal.as_ref().unwrap().reversal_id;
    let timeout = testkit::bank_timeout(&fx, 33, 300);
    let timeout_id = timeout.reversal.as_ref().unwrap().reversal_id;
    let before = now_us();
    for d in [approval, reversal, timeout] {
        commit_one(&*s, d).await.unwrap();
    }
    s.record_advice_attempt(advice_id, now_us() + 5_000_000, None)
        .await
        .unwrap();
    s.record_advice_attempt(
        advice_id,
        now_us() + 10_000_000,
        Some(ResponseCode::SystemMalfunction),
    )
    .await
    .unwrap();
    // A later attempt the bank did not answer keeps the refusal it gave before.
    s.record_advice_attempt(advice_id, now_us() + 20_000_000, None)
        .await
        .unwrap();

    let backlog = s.store_and_forward_backlog(10).await.unwrap();
    let queues: Vec<(SafKind, &str, u64, u64, i64)> = backlog
        .queues
        .iter()
        .map(|q| {
            (
                q.kind,
                q.destination.as_str(),
                q.pending,
                q.held,
                q.attempts_max,
            )
        })
        .collect();
    assert_eq!(
        queues,
        vec![
            (SafKind::Reversal, fx.bank.as_str(), 2, 1, 0),
            (SafKind::Advice, fx.bank.as_str(), 1, 0, 3),
        ]
    );
    assert!(backlog.oldest_created_at_us().unwrap() >= before);
    // Oldest first, each with its own state; the advice remembers the last refusal.
    assert_eq!(backlog.oldest.len(), 3);
    assert!(backlog
        .oldest
        .windows(2)
        .all(|w| w[0].created_at_us <= w[1].created_at_us));
    let item = |id: uuid::Uuid| backlog.oldest.iter().find(|i| i.id == id).unwrap();
    assert!(item(held_id.0).held);
    assert_eq!(item(held_id.0).amount_fen, 2_000);
    assert!(!item(timeout_id.0).held);
    assert_eq!(item(timeout_id.0).amount_fen, 300);
    assert_eq!(item(advice_id.0).kind, SafKind::Advice);
    assert_eq!(item(advice_id.0).attempts, 3);
    assert_eq!(item(advice_id.0).last_response_code.as_deref(), Some("96"));
    assert_eq!(
        s.store_and_forward_backlog(1).await.unwrap().oldest.len(),
        1
    );

    // Once the advice is acknowledged its reversal is no longer held; acknowledged messages
    // leave the backlog.
    s.ack_advice(advice_id, ResponseCode::Approved, now_us())
        .await
        .unwrap();
    s.ack_reversal(timeout_id, ResponseCode::Approved, now_us())
        .await
        .unwrap();
    let backlog = s.store_and_forward_backlog(10).await.unwrap();
    assert_eq!(backlog.queues.len(), 1);
    assert_eq!((backlog.queues[0].pending, backlog.queues[0].held), (1, 0));
    assert_eq!(backlog.oldest.len(), 1);
    assert!(!backlog.oldest[0].held);
    finish(h).await;
}

pub async fn stand_in_totals_are_per_card_bank_and_period<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let start = now_us();
    assert_eq!(
        s.stand_in_total_fen(fx.card_id, &fx.bank, start)
            .await
            .unwrap(),
        0
    );
    commit_one(&*s, testkit::stand_in(&fx, 14, 1_200))
        .await
        .unwrap();
    commit_one(&*s, testkit::stand_in(&fx, 15, 800))
        .await
        .unwrap();
    commit_one(&*s, testkit::debit(&fx, fx.personal, 16, 50))
        .await
        .unwrap();
    assert_eq!(
        s.stand_in_total_fen(fx.card_id, &fx.bank, start)
            .await
            .unwrap(),
        2_000
    );
    assert_eq!(
        s.stand_in_total_fen(fx.card_id, &fx.hospital, start)
            .await
            .unwrap(),
        0,
        "another bank's stand-in"
    );
    assert_eq!(
        s.stand_in_total_fen(CardId(fx.card_id.0 + 1), &fx.bank, start)
            .await
            .unwrap(),
        0,
        "another card"
    );
    assert_eq!(
        s.stand_in_total_fen(fx.card_id, &fx.bank, now_us() + 1)
            .await
            .unwrap(),
        0,
        "a later day"
    );
    finish(h).await;
}

pub async fn acquirer_totals_count_approved_debits_credits_and_their_reversals<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000_000).await;
    let s = h.store();
    let from = now_us();
    let purchase = testkit::stand_in(&fx, 21, 3_000);
    let second = testkit::stand_in(&fx, 22, 1_000);
    let mut refund = testkit::decline(&fx, 23, 400, ResponseCode::Approved);
    refund.transaction.kind = TransactionKind::Refund;
    let reversal = testkit::reversal_of(&fx, &second, 24);
    let declined = testkit::decline(&fx, 25, 9_999, ResponseCode::InsufficientFunds);
    let (hold, _) = testkit::hold(&fx, fx.personal, 26, 700);
    for d in [purchase, second, refund, reversal, declined, hold] {
        commit_one(&*s, d).await.unwrap();
    }
    let to = now_us() + 1;
    let t = s.acquirer_totals(&fx.hospital, from, to).await.unwrap();
    let tally = |count, fen| Tally {
        count,
        amount: AmountFen::new(fen).unwrap(),
    };
    assert_eq!(t.debits, tally(2, 4_000));
    assert_eq!(t.debit_reversals, tally(1, 1_000));
    assert_eq!(t.credits, tally(1, 400));
    assert_eq!(t.credit_reversals, tally(0, 0));
    assert_eq!(t.net().unwrap().fen(), 400 - 4_000 + 1_000);
    assert_eq!(
        s.acquirer_totals(&fx.bank, from, to).await.unwrap(),
        ReconciliationTotals::default(),
        "another acquirer"
    );
    assert_eq!(
        s.acquirer_totals(&fx.hospital, to, to + 1_000_000)
            .await
            .unwrap(),
        ReconciliationTotals::default(),
        "another window"
    );
    finish(h).await;
}

pub async fn the_outbox_is_gap_free_and_ordered_per_institution<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000_000).await;
    let s = h.store();
    let second = {
        s.upsert_institution(&Institution {
            institution_id: inst("3100002"),
            name: "Second Hospital".into(),
            kind: InstitutionKind::Hospital,
        })
        .await
        .unwrap();
        Fixture {
            hospital: inst("3100002"),
            ..fx.clone()
        }
    };
    let (w, _task) = writer::spawn(
        s.clone(),
        WriterConfig {
            queue_depth_max: 64,
            batch_size_max: 8,
            ..WriterConfig::default()
        },
    );
    let mut tasks = Vec::new();
    for (base, f) in [(1_000u32, fx.clone()), (2_000u32, second.clone())] {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..40 {
                // Each institution's decisions are submitted one after the other.
                let c = w
                    .submit(testkit::debit(&f, f.personal, base + i, 1))
                    .await
                    .unwrap();
                seqs.push(c.outbox_seq.unwrap());
            }
            seqs
        }));
    }
    let mut returned = Vec::new();
    for t in tasks {
        returned.push(t.await.unwrap());
    }
    let rows = s.outbox_after(0, 1_000).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.outbox_seq).collect();
    assert_eq!(
        seqs,
        (1..=80).collect::<Vec<i64>>(),
        "gap-free, in commit order"
    );
    let mut by_partition: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &rows {
        let event = schemas::events::SettlementEvent::from_json(&r.payload).unwrap();
        assert_eq!(event.event_id, r.event_id);
        assert_eq!(event.partition_key().as_str(), r.partition_key);
        by_partition
            .entry(r.partition_key.clone())
            .or_default()
            .push(r.outbox_seq);
    }
    assert_eq!(
        by_partition[ids::HOSPITAL],
        returned[0],
        "hospital 1 in submission order"
    );
    assert_eq!(
        by_partition["3100002"], returned[1],
        "hospital 2 in submission order"
    );

    assert_eq!(
        s.mark_outbox_relayed(&seqs[..30], now_us()).await.unwrap(),
        30
    );
    assert_eq!(
        s.mark_outbox_relayed(&seqs[..30], now_us()).await.unwrap(),
        0
    );
    let rest = s.unrelayed_outbox(1_000).await.unwrap();
    assert_eq!(rest.first().map(|r| r.outbox_seq), Some(31));
    assert_eq!(rest.len(), 50);
    assert_eq!(s.outbox_after(75, 1_000).await.unwrap().len(), 5);
    finish(h).await;
}

pub async fn group_commit_uses_fewer_transactions_than_decisions<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000_000).await;
    let s = h.store();
    let (w, _task) = writer::spawn(
        s.clone(),
        WriterConfig {
            queue_depth_max: 1_024,
            batch_size_max: 64,
            ..WriterConfig::default()
        },
    );
    let n = 300u32;
    let mut tasks = Vec::new();
    for seq in 0..n {
        let w = w.clone();
        let d = if seq % 10 == 0 {
            testkit::debit(&fx, fx.personal, 10_000, 1) // same key every time: duplicates
        } else {
            testkit::debit(&fx, fx.personal, 10_000 + seq, 1)
        };
        let id = d.transaction.transaction_id;
        tasks.push((id, seq, tokio::spawn(async move { w.submit(d).await })));
    }
    let (mut ok, mut dup) = (0, 0);
    for (id, _seq, t) in tasks {
        match t.await.unwrap() {
            Ok(c) => {
                assert_eq!(c.transaction_id, id, "each caller gets its own result");
                ok += 1;
            }
            Err(WriteError::Decision(DecisionError::Duplicate { .. })) => dup += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(
        (ok, dup),
        (271, 29),
        "one of the 30 same-key submissions wins"
    );
    let stats = w.stats();
    assert_eq!(stats.decisions, u64::from(n));
    assert!(stats.db_transactions < u64::from(n), "{stats:?}");
    assert!(stats.batch_size_peak > 1, "{stats:?}");
    assert_eq!(balance(&*s, fx.personal).await.0, 1_000_000 - 271);
    assert_eq!(s.outbox_after(0, 10_000).await.unwrap().len(), 271);
    finish(h).await;
}

/// Several group commits at once (as the PostgreSQL writer runs them, or several switch
/// nodes on one database), all spending from the same two accounts: no update is lost, no
/// account is overdrawn, and the outbox stays gap-free in commit order.
pub async fn concurrent_group_commits_lose_no_update_and_keep_the_outbox_gap_free<H: Harness>() {
    let (h, fx) = seeded::<H>(3_000).await;
    let s = h.store();
    let (w, _task) = writer::spawn(
        s.clone(),
        WriterConfig {
            batch_size_max: 16,
            commits_in_flight_max: 4,
            ..writer::config_for::<H::S>()
        },
    );
    // 400 debits of 30 fen, half to each account: the personal account (3,000 fen) pays 100 of
    // its 200, the pooled one all of its 200.
    let mut tasks = Vec::new();
    for seq in 0..400u32 {
        let w = w.clone();
        let account = if seq % 2 == 0 { fx.personal } else { fx.pooled };
        let d = testkit::debit(&fx, account, 20_000 + seq, 30);
        tasks.push(tokio::spawn(async move { (account, w.submit(d).await) }));
    }
    let mut approved: HashMap<AccountId, i64> = HashMap::new();
    let mut seqs = Vec::new();
    for t in tasks {
        let (account, result) = t.await.unwrap();
        match result {
            Ok(c) => {
                *approved.entry(account).or_default() += 1;
                seqs.push(c.outbox_seq.expect("an approved debit has its event"));
            }
            Err(WriteError::Decision(DecisionError::InsufficientFunds(a))) => {
                assert_eq!(a, fx.personal)
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let personal_paid = approved[&fx.personal];
    assert_eq!(personal_paid, 100, "every affordable debit, no more");
    assert_eq!(approved[&fx.pooled], 200);
    assert_eq!(balance(&*s, fx.personal).await, (0, 0));
    let pooled_before = 1_000_000_000;
    assert_eq!(balance(&*s, fx.pooled).await, (pooled_before - 30 * 200, 0));
    seqs.sort_unstable();
    let n = i64::try_from(seqs.len()).unwrap();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<i64>>(),
        "each caller its own position"
    );
    let rows = s.outbox_after(0, 10_000).await.unwrap();
    let stored: Vec<i64> = rows.iter().map(|r| r.outbox_seq).collect();
    assert_eq!(stored, (1..=n).collect::<Vec<i64>>(), "gap-free");
    assert!(w.stats().batches > 1);
    finish(h).await;
}

pub async fn transactions_are_found_by_rrn_with_their_legs<H: Harness>() {
    let (h, fx) = seeded::<H>(100).await;
    let s = h.store();
    let d = testkit::debit(&fx, fx.personal, 555, 30);
    commit_one(&*s, d.clone()).await.unwrap();
    let found = s.transactions_by_rrn(&d.transaction.rrn).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record, d.transaction);
    assert_eq!(found[0].legs, d.legs);
    assert_eq!(found[0].event_id, d.event.as_ref().map(|e| e.event_id));
    finish(h).await;
}

pub async fn the_audit_log_is_a_verifiable_append_only_chain<H: Harness>() {
    let h = H::new().await;
    let s = h.store();
    assert_eq!(s.verify_audit_chain().await.unwrap(), 0);
    let mut last = None;
    for i in 0..3 {
        let r = s
            .append_audit(&AuditEntry {
                actor: "operator-7".into(),
                action: "card.status".into(),
                subject: format!("card:{i}"),
                detail: r#"{"status":"lost"}"#.into(),
                at_us: now_us(),
            })
            .await
            .unwrap();
        assert_eq!(r.audit_seq, i + 1);
        assert_ne!(Some(r.entry_hash), last);
        last = Some(r.entry_hash);
    }
    assert_eq!(s.verify_audit_chain().await.unwrap(), 3);
    assert!(
        h.raw_execute("UPDATE audit_log SET actor = 'mallory' WHERE audit_seq = 2")
            .await
            .is_err(),
        "the log refuses updates"
    );
    assert!(h
        .raw_execute("DELETE FROM audit_log WHERE audit_seq = 3")
        .await
        .is_err());
    h.raw_execute(H::DISABLE_AUDIT_TRIGGERS).await.unwrap();
    h.raw_execute("UPDATE audit_log SET actor = 'mallory' WHERE audit_seq = 2")
        .await
        .unwrap();
    assert!(matches!(
        s.verify_audit_chain().await,
        Err(StoreError::AuditChainBroken { audit_seq: 2 })
    ));
    h.raw_execute("UPDATE audit_log SET actor = 'operator-7' WHERE audit_seq = 2")
        .await
        .unwrap();
    assert_eq!(s.verify_audit_chain().await.unwrap(), 3, "restored");
    h.raw_execute(H::DISABLE_AUDIT_DELETE_TRIGGER)
        .await
        .unwrap();
    h.raw_execute("DELETE FROM audit_log WHERE audit_seq = 3")
        .await
        .unwrap();
    assert!(
        matches!(
            s.verify_audit_chain().await,
            Err(StoreError::AuditChainBroken { audit_seq: 3 })
        ),
        "a truncated tail is detected through the chain head"
    );
    finish(h).await;
}

/// Generates one `#[tokio::test]` per suite case for a harness.
/// The directory's warm-up reads every card once, in id order, page by page, with its clear
/// PAN (opened from the sealed one) and only its own accounts and balances.
pub async fn the_card_directory_pages_through_every_card_with_its_pan_and_accounts<H: Harness>() {
    let (h, fx) = seeded::<H>(700).await;
    let s = h.store();
    let mut issued = vec![(fx.card_id, fx.pan.clone())];
    for n in 0..4u32 {
        let pan = Pan::parse(&format!("62284800200000{n:02}")).unwrap();
        let status = if n == 2 {
            CardStatus::Lost
        } else {
            CardStatus::Active
        };
        let card_id = testkit::issue_plain_card(&*s, &fx.bank, &pan, status)
            .await
            .unwrap();
        if n % 2 == 0 {
            s.open_account(
                &NewAccount {
                    institution: fx.fund.clone(),
                    card_id: Some(card_id),
                    kind: AccountKind::PersonalMedical,
                    opening_balance: AmountFen::new(i64::from(n) + 1).unwrap(),
                },
                now_us(),
            )
            .await
            .unwrap();
        }
        issued.push((card_id, pan));
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.card_directory_page(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.card.card_id);
        seen.extend(page);
    }
    assert_eq!(
        seen.iter()
            .map(|c| (c.card.card_id, c.pan.clone()))
            .collect::<Vec<_>>(),
        issued,
        "every card once, by id, with its PAN"
    );
    let first = &seen[0];
    assert_eq!(first.accounts.len(), 1, "the pooled fund is not the card's");
    assert_eq!(first.accounts[0].account_id, fx.personal);
    assert_eq!(first.accounts[0].balance_fen, 700);
    for (n, c) in seen[1..].iter().enumerate() {
        let balances: Vec<i64> = c.accounts.iter().map(|a| a.balance_fen).collect();
        assert_eq!(
            balances,
            if n % 2 == 0 {
                vec![n as i64 + 1]
            } else {
                vec![]
            }
        );
        assert!(c.accounts.iter().all(|a| a.card_id == Some(c.card.card_id)));
    }
    assert_eq!(seen[3].card.status, CardStatus::Lost);
    assert!(
        !format!("{:?}", seen[1]).contains("6228480020000000"),
        "Debug masks the PAN"
    );
    finish(h).await;
}

/// An approved refund of `original` for `amount_fen` on STAN `stan` (the original's RRN and
/// terminal: refunds carry the purchase's references), credited to the personal account.
fn refund_of(fx: &Fixture, original: &Decision, stan: u32, amount_fen: i64) -> Decision {
    let mut r = testkit::decline(fx, stan, amount_fen, ResponseCode::Approved);
    r.transaction.kind = TransactionKind::Refund;
    r.transaction.processing_code = "200000".into();
    r.transaction.rrn = original.transaction.rrn.clone();
    r.transaction.original_transaction_id = Some(original.transaction.transaction_id);
    r.balance_ops = vec![BalanceOp::Credit {
        account_id: fx.personal,
        amount_fen: schemas::domain::AmountFen::new(amount_fen).unwrap(),
    }];
    r
}

pub async fn refunds_of_one_original_never_add_up_to_more_than_it<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    let purchase = testkit::debit(&fx, fx.personal, 70, 100);
    commit_one(&*s, purchase.clone()).await.unwrap();
    assert_eq!(balance(&*s, fx.personal).await, (900, 0));

    // Two refunds on different STANs (so no duplicate), each within the purchase alone.
    commit_one(&*s, refund_of(&fx, &purchase, 71, 60))
        .await
        .unwrap();
    assert_eq!(
        commit_one(&*s, refund_of(&fx, &purchase, 72, 60)).await,
        Err(DecisionError::RefundsExceedOriginal(
            purchase.transaction.transaction_id
        ))
    );
    assert_eq!(
        balance(&*s, fx.personal).await,
        (960, 0),
        "60 back, not 120"
    );

    // In one group commit: the batch's own earlier refund counts too.
    let batch = vec![
        refund_of(&fx, &purchase, 73, 30),
        refund_of(&fx, &purchase, 74, 20),
        refund_of(&fx, &purchase, 75, 10),
    ];
    let results = s.commit_decisions(batch, now_us()).await.results;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        results[1],
        Err(DecisionError::RefundsExceedOriginal(
            purchase.transaction.transaction_id
        ))
    );
    assert!(
        results[2].is_ok(),
        "exactly up to the purchase: {results:?}"
    );
    assert_eq!(balance(&*s, fx.personal).await, (1_000, 0));
    assert_eq!(
        commit_one(&*s, refund_of(&fx, &purchase, 76, 1)).await,
        Err(DecisionError::RefundsExceedOriginal(
            purchase.transaction.transaction_id
        ))
    );
    finish(h).await;
}

/// `switch verify` finds what foreign keys and triggers no longer guard (issue 27, decision 2):
/// a balance changed behind the journal's back, a movement removed, an outbox event removed.
pub async fn the_integrity_check_reports_a_corrupt_balance_a_lost_movement_and_an_outbox_gap<
    H: Harness,
>() {
    let (h, fx) = seeded::<H>(1_000_000).await;
    let s = h.store();
    for seq in 1..=5 {
        commit_one(&*s, testkit::debit(&fx, fx.personal, seq, 100))
            .await
            .unwrap();
    }
    let clean = s.verify_integrity().await.unwrap();
    assert!(clean.is_consistent(), "{clean}");
    assert_eq!(clean.transactions, 5);
    assert_eq!(clean.events, 5);

    let personal = fx.personal.0;
    h.raw_execute(&format!(
        "UPDATE account SET balance_fen = balance_fen + 1 WHERE account_id = {personal}"
    ))
    .await
    .unwrap();
    let r = s.verify_integrity().await.unwrap();
    assert!(r.breaks(Invariant::BalanceEqualsJournal), "{r}");
    assert!(r.breaks(Invariant::BalanceEqualsLastMovement), "{r}");
    let broken = r
        .violations
        .iter()
        .find(|v| v.invariant == Invariant::BalanceEqualsJournal)
        .unwrap();
    assert_eq!(broken.first, format!("account {personal}"));
    h.raw_execute(&format!(
        "UPDATE account SET balance_fen = balance_fen - 1 WHERE account_id = {personal}"
    ))
    .await
    .unwrap();
    assert!(s.verify_integrity().await.unwrap().is_consistent());

    h.raw_execute(&format!(
        "DELETE FROM account_movement WHERE movement_id = (SELECT MAX(movement_id) \
         FROM account_movement WHERE account_id = {personal})"
    ))
    .await
    .unwrap();
    let r = s.verify_integrity().await.unwrap();
    assert!(r.breaks(Invariant::BalanceEqualsJournal), "{r}");
    assert!(!r.breaks(Invariant::OutboxGapFree), "{r}");

    h.raw_execute("DELETE FROM outbox WHERE outbox_seq = 3")
        .await
        .unwrap();
    let r = s.verify_integrity().await.unwrap();
    assert!(r.breaks(Invariant::OutboxGapFree), "{r}");
    assert!(r.breaks(Invariant::ApprovalHasEvent), "{r}");
    assert!(r.breaks(Invariant::EventInOutbox), "{r}");
    assert_eq!(
        r.violations
            .iter()
            .find(|v| v.invariant == Invariant::ApprovalHasEvent)
            .unwrap()
            .rows,
        1
    );
    assert!(r.to_string().contains("BROKEN outbox-gap-free"), "{r}");

    // What the hot tables' foreign keys refused until migration 0018 is reported instead.
    assert!(!r.breaks(Invariant::TransactionReferencesExist), "{r}");
    assert!(!r.breaks(Invariant::RoutingReferencesExist), "{r}");
    h.raw_execute(
        "UPDATE txn SET acquirer_institution_id = '99999999' WHERE rrn = \
         (SELECT MIN(rrn) FROM txn)",
    )
    .await
    .expect("no foreign key on txn");
    h.raw_execute("UPDATE txn_leg SET institution_id = '99999998' WHERE leg_no = 1")
        .await
        .expect("no foreign key on txn_leg");
    let r = s.verify_integrity().await.unwrap();
    let rows = |i: Invariant| {
        r.violations
            .iter()
            .find(|v| v.invariant == i)
            .map(|v| v.rows)
    };
    assert_eq!(rows(Invariant::TransactionReferencesExist), Some(1), "{r}");
    assert_eq!(rows(Invariant::RoutingReferencesExist), Some(5), "{r}");
    assert!(r.to_string().contains("leg institution 99999998"), "{r}");
    h.cleanup().await;
}

#[macro_export]
macro_rules! store_suite {
    ($harness:ty) => {
        $crate::store_suite!(@cases $harness;
            reference_data_cards_and_routing,
            balances_never_go_negative,
            holds_reserve_capture_and_release,
            a_failing_decision_leaves_nothing_behind,
            duplicates_are_detected,
            refunds_of_one_original_never_add_up_to_more_than_it,
            an_original_is_reversed_at_most_once,
            two_reversals_in_flight_move_the_money_back_once,
            the_integrity_check_reports_an_original_reversed_twice,
            a_cards_history_walks_its_chain_newest_first_page_by_page,
            two_group_commits_in_flight_on_one_card_keep_one_chain,
            the_integrity_check_reports_a_card_chain_that_is_not_whole,
            the_migration_chains_the_transactions_stored_before_it,
            a_card_atc_only_moves_up_and_survives_a_restart,
            the_reversal_queue_survives_a_restart,
            a_stand_in_approval_queues_its_advice_in_the_same_commit_and_it_survives_a_restart,
            a_declined_decision_cannot_carry_an_advice,
            a_reversal_of_a_stand_in_waits_until_its_advice_is_acknowledged,
            the_store_and_forward_backlog_shows_what_waits_and_what_is_held,
            stand_in_totals_are_per_card_bank_and_period,
            acquirer_totals_count_approved_debits_credits_and_their_reversals,
            the_outbox_is_gap_free_and_ordered_per_institution,
            group_commit_uses_fewer_transactions_than_decisions,
            concurrent_group_commits_lose_no_update_and_keep_the_outbox_gap_free,
            transactions_are_found_by_rrn_with_their_legs,
            the_audit_log_is_a_verifiable_append_only_chain,
            the_card_directory_pages_through_every_card_with_its_pan_and_accounts,
            wrong_pins_are_counted_in_the_store_and_survive_a_restart,
            daily_limits_are_checked_in_the_commit_and_survive_a_restart,
            stand_in_limits_are_checked_in_the_commit_and_survive_a_restart,
            the_integrity_check_reports_a_corrupt_balance_a_lost_movement_and_an_outbox_gap,
            card_day_usage_is_read_back_and_past_days_are_purged,
            an_answer_is_remembered_on_its_duplicate_key,
            a_login_lockout_is_counted_in_the_store_and_survives_a_restart,
            a_totp_step_is_accepted_once_per_user_and_survives_a_restart,
            a_role_change_is_applied_only_when_another_administrator_approves_it,
            the_consoles_proposals_history_names_and_lag_are_read_by_key,
            sessions_keys_and_idempotent_answers_are_kept_by_hash,
            audit_entries_carry_a_mac_that_a_writer_without_the_key_cannot_forge,
            cms_import_validates_each_row_on_its_own_and_a_repeated_batch_creates_nothing,
            cms_an_import_stores_its_progress_after_every_chunk,
            cms_a_photo_must_be_a_small_jpeg_and_is_stored_sealed,
            cms_a_card_is_found_by_its_identification_code_with_its_cardholder,
            cms_every_transition_not_in_the_table_is_refused_and_changes_nothing,
            cms_a_stale_version_is_refused_and_of_two_concurrent_changes_one_wins,
            cms_a_lost_report_reaches_the_hot_list_and_the_audit_log_says_who_and_why,
            cms_a_replacement_moves_the_accounts_and_blocks_the_old_card,
            cms_a_pin_reset_sets_a_new_offset_and_unblocks_a_card_blocked_by_wrong_pins,
            cms_a_card_issued_here_and_made_by_the_bureau_pays_a_hospital_bill_then_is_reported_lost,
            cms_api_a_card_issued_through_the_api_pays_a_hospital_bill_then_is_reported_lost,
            bank_totals_are_the_banks_legs_by_line,
            a_card_operation_whose_audit_entry_cannot_be_appended_is_not_done,
            concurrent_actions_and_appends_keep_the_audit_chain_unbroken,
            closed_perso_files_and_job_starters_survive_a_restart,
            the_key_list_is_per_institution_and_shows_the_last_use,
            a_bank_reconciliation_is_claimed_answered_and_resolved_once,
        );
    };
    (@cases $harness:ty; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                store_suite::$case::<$harness>().await;
            }
        )*
    };
}
