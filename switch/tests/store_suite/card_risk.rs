//! The card's risk state in the store (issue 24, finding 5): wrong PINs in a row and the day's
//! spend, which a restart or a second node must see as they are.

use super::{balance, commit_one, finish, seeded, Harness};
use schemas::domain::ResponseCode;
use switch::sim::testkit::{self, Fixture};
use switch::store::*;

const TRIES_MAX: u32 = 3;
const DAY: i64 = 1_763_827_200_000_000; // 2025-11-22 16:00 UTC = midnight CST

fn verified_pin(fx: &Fixture, mut d: Decision) -> Decision {
    d.risk = Some(CardRisk {
        card_id: fx.card_id,
        pin_verified_tries_max: Some(TRIES_MAX),
        spend: None,
        stand_in: None,
    });
    d
}

fn spending(fx: &Fixture, mut d: Decision, day_start_us: i64, amount_fen: i64) -> Decision {
    d.risk = Some(CardRisk {
        card_id: fx.card_id,
        pin_verified_tries_max: None,
        spend: Some(DailySpend {
            day_start_us,
            amount_fen,
            daily_fen_max: 250,
            daily_count_max: 3,
        }),
        stand_in: None,
    });
    d
}

/// A stand-in approval of `amount_fen` counted against a daily stand-in limit of 500 fen.
fn standing_in(fx: &Fixture, seq: u32, day_start_us: i64, amount_fen: i64) -> Decision {
    let mut d = testkit::stand_in(fx, seq, amount_fen);
    d.risk = Some(CardRisk {
        card_id: fx.card_id,
        pin_verified_tries_max: None,
        spend: None,
        stand_in: Some(StandInSpend {
            day_start_us,
            amount_fen,
            daily_fen_max: 500,
        }),
    });
    d
}

pub async fn wrong_pins_are_counted_in_the_store_and_survive_a_restart<H: Harness>() {
    let (mut h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    assert_eq!(s.count_wrong_pin(fx.card_id).await.unwrap(), 1);
    assert_eq!(s.count_wrong_pin(fx.card_id).await.unwrap(), 2);
    // A verified PIN sets the count back to 0, in the commit of its decision.
    let ok = verified_pin(&fx, testkit::debit(&fx, fx.personal, 1, 10));
    commit_one(&*s, ok).await.unwrap();
    assert_eq!(s.count_wrong_pin(fx.card_id).await.unwrap(), 1);
    assert_eq!(s.count_wrong_pin(fx.card_id).await.unwrap(), 2);
    h.reopen().await;
    let s = h.store();
    assert_eq!(
        s.count_wrong_pin(fx.card_id).await.unwrap(),
        3,
        "a restart gives no more tries"
    );
    // The right PIN after the third wrong one (on another node): refused, nothing moves.
    let late = verified_pin(&fx, testkit::debit(&fx, fx.personal, 2, 10));
    assert_eq!(
        commit_one(&*s, late).await,
        Err(DecisionError::PinTriesExceeded(fx.card_id))
    );
    assert_eq!(balance(&*s, fx.personal).await, (990, 0));
    // Declines and decisions without a verified PIN are not affected.
    let declined = testkit::decline(&fx, 3, 10, ResponseCode::IncorrectPin);
    commit_one(&*s, declined).await.unwrap();
    // Activating the card (an operator) clears the count.
    s.set_card_status(fx.card_id, CardStatus::Active, None, now_us())
        .await
        .unwrap();
    let ok = verified_pin(&fx, testkit::debit(&fx, fx.personal, 4, 10));
    commit_one(&*s, ok).await.unwrap();
    assert_eq!(s.count_wrong_pin(fx.card_id).await.unwrap(), 1);
    finish(h).await;
}

pub async fn daily_limits_are_checked_in_the_commit_and_survive_a_restart<H: Harness>() {
    let (mut h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    let debit = |seq, fen| spending(&fx, testkit::debit(&fx, fx.personal, seq, fen), DAY, fen);
    // One batch: 100 + 100 fit, another 100 is over 250, a decision refused on funds gives
    // its spend back, 50 fits exactly.
    let out = s
        .commit_decisions(
            vec![
                debit(1, 100),
                debit(2, 100),
                debit(3, 100),
                spending(&fx, testkit::debit(&fx, fx.personal, 4, 5_000), DAY, 1),
                debit(5, 50),
            ],
            now_us(),
        )
        .await;
    assert!(out.results[0].is_ok() && out.results[1].is_ok());
    assert_eq!(
        out.results[2],
        Err(DecisionError::DailyAmountExceeded(fx.card_id))
    );
    assert_eq!(
        out.results[3],
        Err(DecisionError::InsufficientFunds(fx.personal))
    );
    assert!(out.results[4].is_ok(), "{:?}", out.results[4]);
    h.reopen().await;
    let s = h.store();
    assert_eq!(
        commit_one(&*s, debit(6, 1)).await,
        Err(DecisionError::DailyCountExceeded(fx.card_id)),
        "a fourth approval today, after a restart"
    );
    assert_eq!(balance(&*s, fx.personal).await, (750, 0));
    // The next day starts again.
    let next_day = spending(
        &fx,
        testkit::debit(&fx, fx.personal, 7, 200),
        DAY + 86_400_000_000,
        200,
    );
    commit_one(&*s, next_day).await.unwrap();
    finish(h).await;
}

/// Issue 24, finding 5 (what the node's pre-check and housekeeping read): a card's committed
/// spend of a day is read back as committed, and the days before a cut-off are purged while
/// the later ones stay.
pub async fn card_day_usage_is_read_back_and_past_days_are_purged<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    const DAY_US: i64 = 86_400_000_000;
    let days = [DAY - 2 * DAY_US, DAY - DAY_US, DAY];
    for (i, day) in days.into_iter().enumerate() {
        let seq = 10 + i as u32;
        let d = spending(&fx, testkit::debit(&fx, fx.personal, seq, 40), day, 40);
        commit_one(&*s, d).await.unwrap();
    }
    let today = spending(&fx, testkit::debit(&fx, fx.personal, 20, 60), DAY, 60);
    commit_one(&*s, today).await.unwrap();
    assert_eq!(
        s.card_day_usage(fx.card_id, DAY).await.unwrap(),
        DayUsage {
            approved_count: 2,
            amount_fen: 100,
            stand_in_fen: 0,
        }
    );
    assert_eq!(
        s.card_day_usage(fx.card_id, DAY + DAY_US).await.unwrap(),
        DayUsage::default(),
        "nothing spent yet"
    );
    // Keep yesterday and today: the day before yesterday goes.
    assert_eq!(s.purge_card_day_usage(DAY - DAY_US).await.unwrap(), 1);
    assert_eq!(
        s.card_day_usage(fx.card_id, DAY - 2 * DAY_US)
            .await
            .unwrap(),
        DayUsage::default()
    );
    for day in [DAY - DAY_US, DAY] {
        assert_ne!(
            s.card_day_usage(fx.card_id, day).await.unwrap(),
            DayUsage::default(),
            "day {day} kept"
        );
    }
    assert_eq!(s.purge_card_day_usage(DAY - DAY_US).await.unwrap(), 0);
    h.cleanup().await;
}

/// Issue 24, finding 6 (retransmissions): the answer remembered on a decided request's
/// duplicate key is read back with its transaction; a key no decision holds takes none.
pub async fn an_answer_is_remembered_on_its_duplicate_key<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    let d = testkit::debit(&fx, fx.personal, 30, 10);
    let key = d.transaction.duplicate_key();
    let id = d.transaction.transaction_id;
    commit_one(&*s, d).await.unwrap();
    assert_eq!(s.find_answer(&key).await.unwrap(), Some((id, None)));
    let mut other = key.clone();
    other.stan = schemas::domain::Stan::new(999_998).unwrap();
    let answers = [
        (key.clone(), r#"{"38":"000030"}"#.to_owned()),
        (other.clone(), "{}".to_owned()),
    ];
    assert_eq!(s.record_answers(&answers).await.unwrap(), 1, "one key held");
    assert_eq!(
        s.find_answer(&key).await.unwrap(),
        Some((id, Some(r#"{"38":"000030"}"#.to_owned())))
    );
    assert_eq!(s.find_answer(&other).await.unwrap(), None);
    h.cleanup().await;
}

/// Issue 28 (several nodes): the per-card daily stand-in limit is counted in the commit, as the
/// daily amount is. Two nodes each checked it alone against what was committed and could both
/// stand in for one card up to the limit; in one batch (what two nodes' concurrent commits
/// serialise to) the stand-in that goes over is refused, after a restart too, and the next
/// day starts again.
pub async fn stand_in_limits_are_checked_in_the_commit_and_survive_a_restart<H: Harness>() {
    let (mut h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    let out = s
        .commit_decisions(
            vec![
                standing_in(&fx, 40, DAY, 200),
                standing_in(&fx, 41, DAY, 200),
                standing_in(&fx, 42, DAY, 200),
                standing_in(&fx, 43, DAY, 100),
            ],
            now_us(),
        )
        .await;
    assert!(
        out.results[0].is_ok() && out.results[1].is_ok(),
        "{:?}",
        out.results
    );
    assert_eq!(
        out.results[2],
        Err(DecisionError::StandInLimitExceeded(fx.card_id)),
        "400 stood in, 200 more is over 500"
    );
    assert!(
        out.results[3].is_ok(),
        "100 fits exactly: {:?}",
        out.results[3]
    );
    assert_eq!(
        s.card_day_usage(fx.card_id, DAY)
            .await
            .unwrap()
            .stand_in_fen,
        500
    );
    h.reopen().await;
    let s = h.store();
    assert_eq!(
        commit_one(&*s, standing_in(&fx, 44, DAY, 1)).await,
        Err(DecisionError::StandInLimitExceeded(fx.card_id)),
        "the limit holds after a restart"
    );
    commit_one(&*s, standing_in(&fx, 45, DAY + 86_400_000_000, 500))
        .await
        .unwrap();
    let report = s.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
    finish(h).await;
}
