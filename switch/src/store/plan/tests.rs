use super::*;
use crate::sim::testkit::{self, inst, Fixture};
use crate::store::model::{CardId, HoldState};
use schemas::domain::{Pan, ResponseCode};
use schemas::events::sample::ids;

fn fx() -> Fixture {
    Fixture {
        hospital: inst(ids::HOSPITAL),
        fund: inst(ids::INSURANCE_FUND),
        bank: inst(ids::BANK),
        pan: Pan::parse("6228480012345678").unwrap(),
        card_id: CardId(1),
        personal: AccountId(10),
        pooled: AccountId(11),
    }
}

fn loaded(balance: i64) -> Loaded {
    let mut l = Loaded::default();
    l.accounts.insert(
        AccountId(10),
        AccountRow {
            balance_fen: balance,
            held_fen: 0,
        },
    );
    l
}

fn run(decisions: &[Decision], loaded: Loaded) -> Plan {
    plan(decisions, vec![None; decisions.len()], loaded, 1)
}

#[test]
fn debits_apply_in_order_and_the_one_that_overdraws_is_left_out() {
    let f = fx();
    let batch = [
        testkit::debit(&f, f.personal, 1, 60),
        testkit::debit(&f, f.personal, 2, 50),
        testkit::debit(&f, f.personal, 3, 40),
    ];
    let p = run(&batch, loaded(100));
    assert_eq!(p.verdicts[0], Ok(()));
    assert_eq!(
        p.verdicts[1],
        Err(DecisionError::InsufficientFunds(f.personal))
    );
    assert_eq!(p.verdicts[2], Ok(()));
    assert_eq!(
        p.accounts,
        vec![(
            f.personal,
            AccountRow {
                balance_fen: 0,
                held_fen: 0
            }
        )]
    );
    let after: Vec<i64> = p.movements.iter().map(|m| m.balance_after_fen).collect();
    assert_eq!(after, vec![40, 0]);
}

#[test]
fn a_failing_decision_undoes_its_own_earlier_ops() {
    let f = fx();
    let mut d = testkit::debit(&f, f.personal, 1, 30);
    d.balance_ops.push(BalanceOp::Debit {
        account_id: AccountId(99),
        amount_fen: schemas::domain::AmountFen::new(1).unwrap(),
    });
    let p = run(&[d], loaded(100));
    assert_eq!(
        p.verdicts[0],
        Err(DecisionError::UnknownAccount(AccountId(99)))
    );
    assert!(p.accounts.is_empty());
    assert!(p.movements.is_empty());
}

#[test]
fn a_hold_placed_and_captured_in_one_batch_is_written_once_in_its_final_state() {
    let f = fx();
    let (place, hold_id) = testkit::hold(&f, f.personal, 1, 80);
    let capture = testkit::capture(&f, hold_id, 2, 50);
    let p = run(&[place, capture], loaded(100));
    assert!(p.verdicts.iter().all(Result::is_ok));
    assert_eq!(p.new_holds.len(), 1);
    assert_eq!(p.new_holds[0].1.state, HoldState::Captured);
    assert_eq!(p.new_holds[0].1.captured_fen, 50);
    assert!(p.changed_holds.is_empty());
    assert_eq!(
        p.accounts[0].1,
        AccountRow {
            balance_fen: 50,
            held_fen: 0
        }
    );
}

#[test]
fn holds_reserve_funds_and_cannot_be_closed_twice() {
    let f = fx();
    let (place, hold_id) = testkit::hold(&f, f.personal, 1, 80);
    let debit = testkit::debit(&f, f.personal, 2, 30);
    let release = testkit::release(&f, hold_id, 3, 80);
    let release_again = testkit::release(&f, hold_id, 4, 80);
    let p = run(&[place, debit, release, release_again], loaded(100));
    assert_eq!(p.verdicts[0], Ok(()));
    assert_eq!(
        p.verdicts[1],
        Err(DecisionError::InsufficientFunds(f.personal))
    );
    assert_eq!(p.verdicts[2], Ok(()));
    assert_eq!(p.verdicts[3], Err(DecisionError::HoldNotPending(hold_id)));
}

#[test]
fn a_capture_above_the_hold_is_refused() {
    let f = fx();
    let (place, hold_id) = testkit::hold(&f, f.personal, 1, 80);
    let p = run(&[place, testkit::capture(&f, hold_id, 2, 81)], loaded(100));
    assert_eq!(
        p.verdicts[1],
        Err(DecisionError::CaptureExceedsHold(hold_id))
    );
}

#[test]
fn the_second_of_two_identical_keys_in_a_batch_is_a_duplicate() {
    let f = fx();
    let first = testkit::decline(&f, 7, 10, ResponseCode::InsufficientFunds);
    let mut second = testkit::debit(&f, f.personal, 7, 10);
    second.transaction.transaction_id = TransactionId(uuid::Uuid::now_v7());
    let p = run(&[first.clone(), second], loaded(100));
    assert_eq!(p.verdicts[0], Ok(()));
    assert_eq!(
        p.verdicts[1],
        Err(DecisionError::Duplicate {
            existing: Some(first.transaction.transaction_id)
        })
    );
    assert!(p.accounts.is_empty(), "the duplicate moved no money");
}

#[test]
fn keys_are_sorted_for_a_stable_lock_order() {
    let f = fx();
    let a = testkit::debit(&f, AccountId(5), 1, 1);
    let b = testkit::debit(&f, AccountId(3), 2, 1);
    let c = testkit::debit(&f, AccountId(5), 3, 1);
    let keys = BatchKeys::of(&[&a, &b, &c]);
    assert_eq!(keys.accounts, vec![AccountId(3), AccountId(5)]);
    assert_eq!(keys.duplicate_keys.len(), 3);
}

/// An approved reversal of `original` on STAN `seq`, crediting the personal account.
fn reversal_of(f: &Fixture, original: &Decision, seq: u32) -> Decision {
    let amount = original.transaction.amount_fen;
    let mut r = testkit::decline(f, seq, amount.get(), ResponseCode::Approved);
    r.transaction.kind = crate::store::model::TransactionKind::Reversal;
    r.transaction.original_transaction_id = Some(original.transaction.transaction_id);
    r.balance_ops = vec![BalanceOp::Credit {
        account_id: f.personal,
        amount_fen: amount,
    }];
    r
}

#[test]
fn a_second_approved_reversal_of_one_original_is_left_out_and_the_rest_commits() {
    let f = fx();
    let purchase = testkit::debit(&f, f.personal, 1, 40);
    let original = purchase.transaction.transaction_id;
    let first = reversal_of(&f, &purchase, 2);
    let batch = [
        first.clone(),
        reversal_of(&f, &purchase, 3),
        testkit::debit(&f, f.personal, 4, 10),
    ];
    let keys = BatchKeys::of(&batch.iter().collect::<Vec<_>>());
    assert_eq!(keys.reversed_originals, vec![original]);
    assert_eq!(keys.originals(), vec![original]);
    let p = run(&batch, loaded(100));
    assert_eq!(p.verdicts[0], Ok(()));
    assert_eq!(
        p.verdicts[1],
        Err(DecisionError::AlreadyReversed {
            original,
            reversal: Some(first.transaction.transaction_id),
        })
    );
    assert_eq!(p.verdicts[2], Ok(()));
    assert_eq!(p.accounts[0].1.balance_fen, 130, "40 back once, 10 spent");
    assert_eq!(p.movements.len(), 2);

    // Against one already stored; a declined reversal is not refused.
    let mut l = loaded(100);
    l.reversals
        .insert(original, first.transaction.transaction_id);
    let mut declined = reversal_of(&f, &purchase, 5);
    declined.transaction.response_code = ResponseCode::SystemMalfunction;
    declined.balance_ops.clear();
    let p = run(&[reversal_of(&f, &purchase, 6), declined], l);
    assert!(matches!(
        p.verdicts[0],
        Err(DecisionError::AlreadyReversed { .. })
    ));
    assert_eq!(p.verdicts[1], Ok(()));
    assert!(p.movements.is_empty());
}

#[test]
fn the_databases_refusal_of_a_lone_second_reversal_is_already_reversed() {
    let f = fx();
    let purchase = testkit::debit(&f, f.personal, 1, 40);
    let rev = [reversal_of(&f, &purchase, 2)];
    let pg = DecisionError::Rejected(
        "duplicate key value violates unique constraint \"txn_one_approved_reversal\"".into(),
    );
    let lite =
        DecisionError::Rejected("UNIQUE constraint failed: txn.original_transaction_id".into());
    for err in [pg.clone(), lite] {
        assert_eq!(
            refused_alone(err, &rev),
            DecisionError::AlreadyReversed {
                original: purchase.transaction.transaction_id,
                reversal: None,
            }
        );
    }
    // Anything else, or the same refusal of a batch or of another kind, stays as it was.
    let other = DecisionError::Rejected("CHECK constraint failed".into());
    assert_eq!(refused_alone(other.clone(), &rev), other);
    assert_eq!(
        refused_alone(pg.clone(), std::slice::from_ref(&purchase)),
        pg
    );
    let two = [rev[0].clone(), reversal_of(&f, &purchase, 3)];
    assert_eq!(refused_alone(pg.clone(), &two), pg);
}

#[test]
fn accepted_decisions_of_a_card_are_chained_in_order_and_the_card_keeps_the_newest() {
    let f = fx();
    let other = CardId(2);
    let first = testkit::debit(&f, f.personal, 1, 60);
    let overdraws = testkit::debit(&f, f.personal, 2, 50);
    let declined = testkit::decline(&f, 3, 10, ResponseCode::InsufficientFunds);
    let mut elsewhere = testkit::decline(&f, 4, 10, ResponseCode::InsufficientFunds);
    elsewhere.transaction.card_id = Some(other);
    let mut unknown_card = testkit::decline(&f, 5, 10, ResponseCode::InsufficientFunds);
    unknown_card.transaction.card_id = Some(CardId(3));
    let batch = [first, overdraws, declined, elsewhere, unknown_card];
    let keys = BatchKeys::of(&batch.iter().collect::<Vec<_>>());
    assert_eq!(
        keys.cards,
        vec![f.card_id, other, CardId(3)],
        "every card named, once"
    );

    let stored = TransactionId(uuid::Uuid::now_v7());
    let mut l = loaded(100);
    l.card_heads.insert(f.card_id, Some(stored));
    l.card_heads.insert(other, None);
    let p = run(&batch, l);
    let id = |i: usize| batch[i].transaction.transaction_id;
    assert!(p.verdicts[1].is_err(), "the second debit overdraws");
    assert_eq!(
        p.prev_card_txns,
        vec![Some(stored), None, Some(id(0)), None, None],
        "the refused decision is no link; the card's declined one follows its approval"
    );
    let mut heads = vec![(f.card_id, id(2)), (other, id(3))];
    heads.sort();
    assert_eq!(
        p.card_heads, heads,
        "one head per card, the newest; none for an unknown card"
    );
}

#[test]
fn a_card_row_carries_its_atc_and_its_head_in_one_write() {
    let t = |n: u128| TransactionId(uuid::Uuid::from_u128(n));
    let p = Plan {
        card_atcs: vec![(CardId(1), 7), (CardId(3), 9)],
        card_heads: vec![(CardId(1), t(1)), (CardId(2), t(2))],
        ..Plan::default()
    };
    let row = |c, atc_max, last_txn_id| CardRow {
        card_id: CardId(c),
        atc_max,
        last_txn_id,
    };
    assert_eq!(
        p.card_rows(),
        vec![
            row(1, Some(7), Some(t(1))),
            row(2, None, Some(t(2))),
            row(3, Some(9), None),
        ]
    );
}
