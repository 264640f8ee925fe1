//! Clock jumps and the window closer (issue 28). The closer decides on the wall clock; here it
//! reads a manual clock ([`clearing::clock::Clock`]) that the test makes jump, on a SQLite
//! ledger taking postings all along.
//!
//! Injected, on a 1-minute schedule: the wall clock jumped forward past five cut-overs, then
//! back before the cut-over just closed, then moved to that cut-over again and to the next.
//!
//! Asserted: the forward jump closes the open window once (not once per cut-over passed); the
//! backward jump neither closes a window early nor closes a second time for the cut-over
//! already done, and a closed window never takes a posting again (postings land in the open
//! one); the next cut-over after the jump closes once; and the ledger keeps its books: every
//! event applied once, positions sum to zero, the closed windows' totals add up to the postings.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use clearing::clock::Clock;
use clearing::embedded::run_window_closer_on;
use clearing::ledger::Ledger;
use clearing::window::{self, WindowSchedule};
use common::{delivery, purchase, Harness};
use std::time::Duration;

const TICK: Duration = Duration::from_millis(20);

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, h, m, s)
        .single()
        .expect("time")
}

/// Lets the closer read the clock a few times.
async fn settle() {
    tokio::time::sleep(TICK * 10).await;
}

/// Applies `n` purchases, the next offsets of the topic.
async fn apply(ledger: &Ledger, next: &mut i64, n: i64) {
    let batch: Vec<_> = (0..n)
        .map(|_| {
            *next += 1;
            let seq = u32::try_from(*next).expect("few events");
            delivery(*next, &purchase(seq))
        })
        .collect();
    ledger.apply_batch("g", &batch).await.expect("apply");
}

async fn closed_windows(ledger: &Ledger) -> Vec<i64> {
    let current = window::current_window(ledger).await.expect("current");
    let mut closed = Vec::new();
    for id in 1..current {
        let w = window::window_summary(ledger, id).await.expect("window");
        assert!(w.closed, "window {id} below the open one is closed");
        closed.push(id);
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jump_forward_closes_the_window_once_and_a_jump_back_neither_closes_early_nor_twice(
) {
    let h = Harness::sqlite().await;
    let ledger = h.ledger.clone();
    let clock = Clock::manual(at(10, 0, 30));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let closer = tokio::spawn(run_window_closer_on(
        ledger.clone(),
        WindowSchedule::EveryMinutes(1),
        clock.clone(),
        TICK,
        rx,
    ));
    let mut next = 0i64;
    apply(&ledger, &mut next, 3).await;
    settle().await;
    assert_eq!(
        closed_windows(&ledger).await,
        Vec::<i64>::new(),
        "before 10:01"
    );

    // Forward past the cut-overs of 10:01 to 10:05: one close.
    clock.set(at(10, 5, 10));
    settle().await;
    assert_eq!(
        closed_windows(&ledger).await,
        vec![1],
        "one close for the jump"
    );
    apply(&ledger, &mut next, 2).await;

    // Back to 10:00:40, before the cut-over of 10:01 already done: nothing closes...
    clock.set(at(10, 0, 40));
    settle().await;
    assert_eq!(
        closed_windows(&ledger).await,
        vec![1],
        "nothing on the jump back"
    );
    apply(&ledger, &mut next, 2).await;
    // ... not even when the wall clock reaches 10:01 again (done already), nor 10:05.
    clock.set(at(10, 1, 5));
    settle().await;
    clock.set(at(10, 5, 59));
    settle().await;
    assert_eq!(
        closed_windows(&ledger).await,
        vec![1],
        "a cut-over already done is not done again"
    );
    // The next cut-over after the forward jump (10:06) closes once.
    clock.set(at(10, 6, 0));
    settle().await;
    assert_eq!(
        closed_windows(&ledger).await,
        vec![1, 2],
        "10:06 closes once"
    );
    apply(&ledger, &mut next, 1).await;

    // The books: each closed window froze what it held, postings went to the open one only.
    let w1 = window::window_summary(&ledger, 1).await.expect("w1");
    let w2 = window::window_summary(&ledger, 2).await.expect("w2");
    let w3 = window::window_summary(&ledger, 3).await.expect("w3");
    assert!(!w3.closed);
    let counts = ledger.counts().await.expect("counts");
    assert_eq!(counts.events_applied, next, "each event once");
    let legs_per_event = w1.posting_count / 3;
    assert!(legs_per_event > 0);
    assert_eq!(
        w1.posting_count,
        3 * legs_per_event,
        "window 1: the first 3"
    );
    assert_eq!(
        w2.posting_count,
        4 * legs_per_event,
        "window 2: the 4 after"
    );
    let total: i64 = ledger.posted_total_fen().await.expect("total");
    assert!(
        w1.posted_total_fen + w2.posted_total_fen < total,
        "window 3 holds the last"
    );
    assert_eq!(ledger.positions().await.expect("positions").sum_fen(), 0);

    stop.send_replace(true);
    closer.await.expect("closer").expect("closer ends cleanly");
    h.cleanup().await;
}
