//! The ledger suite on SQLite.
mod common;
mod ledger_suite;
use common::Harness;
ledger_suite!(Harness::sqlite);

/// Migrations 0003 and 0004 rebuilt the journal (issue 27): the database's own guards must hold
/// after them, whatever the planner does: one row per event, an append-only journal, legs only
/// on events that posted, and at most one reversal of an original while any number of events
/// reverse nothing.
#[tokio::test]
async fn the_rebuilt_journal_keeps_its_guards() {
    let h = Harness::sqlite().await;
    let clearing::db::Db::Sqlite(pool) = h.ledger.db() else {
        panic!("a SQLite ledger");
    };
    let event =
        |id: u8, reverses: Option<u8>, outcome: &'static str, legs: Option<&'static str>| {
            sqlx::query(
                "INSERT INTO applied_event (event_id, event_type, acquirer_id, amount_fen, \
             occurred_at_us, applied_at_us, window_id, outcome, reverses_event_id, legs) \
             VALUES ($1, 'reversal', '3100001', 100, 1, 1, 1, $3, $2, $4)",
            )
            .bind(vec![id; 16])
            .bind(reverses.map(|r| vec![r; 16]))
            .bind(outcome)
            .bind(legs)
        };
    const LEG: Option<&str> = Some("1,3,0100001,4,3100001,3,100");
    for id in 1..=3 {
        event(id, None, "posted", LEG)
            .execute(pool)
            .await
            .expect("events reversing nothing");
    }
    event(4, Some(1), "posted", LEG)
        .execute(pool)
        .await
        .expect("a first reversal");
    assert!(
        event(5, Some(1), "posted", LEG)
            .execute(pool)
            .await
            .is_err(),
        "a second reversal of one original must be refused"
    );
    assert!(
        event(1, None, "posted", LEG).execute(pool).await.is_err(),
        "one row per event"
    );
    assert!(
        event(6, None, "held", LEG).execute(pool).await.is_err(),
        "legs only on events that posted"
    );
    event(7, None, "held", None)
        .execute(pool)
        .await
        .expect("an event that posted nothing");
    let update = sqlx::query("UPDATE applied_event SET legs = '1,3,0100001,4,3100001,3,1'")
        .execute(pool)
        .await;
    assert!(update.is_err(), "the journal is append-only");
    let delete = sqlx::query("DELETE FROM applied_event").execute(pool).await;
    assert!(delete.is_err(), "the journal is append-only");
    assert_eq!(h.ledger.counts().await.expect("counts").postings, 4);
}
