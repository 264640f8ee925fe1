//! A reversal moves money back at most once per original: the store refuses a second approved
//! reversal of the same original inside the group commit, whether the two are in one batch,
//! in two commits in flight, or one already stored (the reversal service's own "not yet
//! reversed" is a read, taken before the commit and blind to a concurrent reversal).

use super::*;

/// An approved reversal of `original` on STAN `stan` (its RRN: reversals carry the original's
/// references), crediting the personal account with the original's amount.
fn reversal_of(fx: &Fixture, original: &Decision, stan: u32) -> Decision {
    let amount_fen = original.transaction.amount_fen.get();
    let mut r = testkit::decline(fx, stan, amount_fen, ResponseCode::Approved);
    r.transaction.kind = TransactionKind::Reversal;
    r.transaction.mti = "0400".into();
    r.transaction.rrn = original.transaction.rrn.clone();
    r.transaction.original_transaction_id = Some(original.transaction.transaction_id);
    r.balance_ops = vec![BalanceOp::Credit {
        account_id: fx.personal,
        amount_fen: AmountFen::new(amount_fen).unwrap(),
    }];
    r
}

fn already_reversed(r: &Result<Committed, DecisionError>, original: &Decision) -> bool {
    matches!(r, Err(DecisionError::AlreadyReversed { original: o, .. })
        if *o == original.transaction.transaction_id)
}

pub async fn an_original_is_reversed_at_most_once<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    let purchase = testkit::debit(&fx, fx.personal, 80, 100);
    commit_one(&*s, purchase.clone()).await.unwrap();
    assert_eq!(balance(&*s, fx.personal).await, (900, 0));

    // Two reversals in one group commit (different STANs: no duplicate key to catch them).
    let results = s
        .commit_decisions(
            vec![
                reversal_of(&fx, &purchase, 81),
                reversal_of(&fx, &purchase, 82),
            ],
            now_us(),
        )
        .await
        .results;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(already_reversed(&results[1], &purchase), "{results:?}");
    assert_eq!(
        balance(&*s, fx.personal).await,
        (1_000, 0),
        "100 back, not 200"
    );

    // Against the stored one.
    let third = commit_one(&*s, reversal_of(&fx, &purchase, 83)).await;
    assert!(already_reversed(&third, &purchase), "{third:?}");
    assert_eq!(balance(&*s, fx.personal).await, (1_000, 0));

    // A declined reversal moves nothing and is not refused for it.
    let mut declined = reversal_of(&fx, &purchase, 84);
    declined.transaction.response_code = ResponseCode::SystemMalfunction;
    declined.balance_ops.clear();
    commit_one(&*s, declined).await.unwrap();

    // The rest of a batch with a losing reversal commits.
    let other = testkit::debit(&fx, fx.personal, 85, 50);
    let results = s
        .commit_decisions(
            vec![reversal_of(&fx, &purchase, 86), other.clone()],
            now_us(),
        )
        .await
        .results;
    assert!(already_reversed(&results[0], &purchase), "{results:?}");
    assert!(results[1].is_ok(), "{results:?}");
    assert_eq!(balance(&*s, fx.personal).await, (950, 0));
    let approved_reversals = s
        .transactions_by_rrn(&purchase.transaction.rrn)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.record.kind == TransactionKind::Reversal && t.record.is_approved())
        .count();
    assert_eq!(approved_reversals, 1);
    finish(h).await;
}

pub async fn two_reversals_in_flight_move_the_money_back_once<H: Harness>() {
    let (h, fx) = seeded::<H>(10_000).await;
    let s = h.store();
    for round in 0..5u32 {
        let purchase = testkit::debit(&fx, fx.personal, 100 + round * 10, 100);
        commit_one(&*s, purchase.clone()).await.unwrap();
        let before = balance(&*s, fx.personal).await;
        // Two commits in flight at once (PostgreSQL runs two; two nodes share one database).
        let (a, b) = tokio::join!(
            s.commit_decisions(
                vec![reversal_of(&fx, &purchase, 101 + round * 10)],
                now_us()
            ),
            s.commit_decisions(
                vec![reversal_of(&fx, &purchase, 102 + round * 10)],
                now_us()
            ),
        );
        let results = [&a.results[0], &b.results[0]];
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "exactly one commits: {results:?}"
        );
        assert!(
            results.iter().any(|r| already_reversed(r, &purchase)),
            "{results:?}"
        );
        assert_eq!(
            balance(&*s, fx.personal).await,
            (before.0 + 100, 0),
            "money back once"
        );
    }
    finish(h).await;
}

/// `switch verify` reports an original with two approved reversals (a store written before
/// migration 0023, or by hand).
pub async fn the_integrity_check_reports_an_original_reversed_twice<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    let purchase = testkit::debit(&fx, fx.personal, 90, 100);
    commit_one(&*s, purchase.clone()).await.unwrap();
    let first = reversal_of(&fx, &purchase, 91);
    commit_one(&*s, first.clone()).await.unwrap();
    assert!(s.verify_integrity().await.unwrap().is_consistent());

    // A second approved reversal written behind the store's back: a copy of the declined one
    // turned approved.
    h.raw_execute("DROP INDEX txn_one_approved_reversal")
        .await
        .unwrap();
    let mut declined = reversal_of(&fx, &purchase, 92);
    declined.transaction.response_code = ResponseCode::SystemMalfunction;
    declined.balance_ops.clear();
    commit_one(&*s, declined.clone()).await.unwrap();
    h.raw_execute(
        "UPDATE txn SET response_code = '00', decision = 'approved' WHERE stan = '000092'",
    )
    .await
    .unwrap();
    let r = s.verify_integrity().await.unwrap();
    assert!(r.breaks(Invariant::OriginalReversedOnce), "{r}");
    let v = r
        .violations
        .iter()
        .find(|v| v.invariant == Invariant::OriginalReversedOnce)
        .unwrap();
    assert_eq!(v.rows, 1);
    assert_eq!(
        v.first,
        format!("rrn {}", purchase.transaction.rrn.as_str())
    );
    // Undone behind the store's back too: the card's chain goes back to the row before it.
    h.raw_execute(
        "UPDATE card SET last_txn_id = (SELECT prev_card_txn_id FROM txn WHERE stan = '000092') \
         WHERE last_txn_id = (SELECT transaction_id FROM txn WHERE stan = '000092')",
    )
    .await
    .unwrap();
    h.raw_execute("DELETE FROM txn WHERE stan = '000092'")
        .await
        .unwrap();
    finish(h).await;
}
