//! The ledger suite on SQLite.
mod common;
mod ledger_suite;
use common::Harness;
ledger_suite!(Harness::sqlite);

/// Migration 0003 rebuilt `posting` and `applied_event` (issue 27): the database's own guards
/// must hold after it, whatever the planner does: one row per (window, event, leg), an append-
/// only journal, and at most one reversal of an original while any number of events reverse
/// nothing.
#[tokio::test]
async fn the_rebuilt_journal_keeps_its_guards() {
    let h = Harness::sqlite().await;
    let clearing::db::Db::Sqlite(pool) = h.ledger.db() else {
        panic!("a SQLite ledger");
    };
    let event = |id: u8, reverses: Option<u8>| {
        sqlx::query(
            "INSERT INTO applied_event (event_id, event_type, acquirer_id, amount_fen, \
             occurred_at_us, applied_at_us, window_id, outcome, reverses_event_id) \
             VALUES ($1, 'reversal', '3100001', 1, 1, 1, 1, 'posted', $2)",
        )
        .bind(vec![id; 16])
        .bind(reverses.map(|r| vec![r; 16]))
    };
    for id in 1..=3 {
        event(id, None)
            .execute(pool)
            .await
            .expect("events reversing nothing");
    }
    event(4, Some(1))
        .execute(pool)
        .await
        .expect("a first reversal");
    assert!(
        event(5, Some(1)).execute(pool).await.is_err(),
        "a second reversal of one original must be refused"
    );
    let posting = sqlx::query(
        "INSERT INTO posting (window_id, event_id, leg_no, event_type, leg_kind, \
         debit_institution, debit_account, credit_institution, credit_account, amount_fen, \
         hold_id, posted_at_us) VALUES (1, $1, 1, 'purchase', 'bank', '0100001', \
         'bank_settlement', '3100001', 'merchant', 100, NULL, 1)",
    );
    posting
        .bind(vec![1u8; 16])
        .execute(pool)
        .await
        .expect("a posting");
    let again = sqlx::query(
        "INSERT INTO posting (window_id, event_id, leg_no, event_type, leg_kind, \
         debit_institution, debit_account, credit_institution, credit_account, amount_fen, \
         hold_id, posted_at_us) VALUES (1, $1, 1, 'purchase', 'bank', '0100001', \
         'bank_settlement', '3100001', 'merchant', 100, NULL, 1)",
    )
    .bind(vec![1u8; 16])
    .execute(pool)
    .await;
    assert!(again.is_err(), "one row per (window, event, leg)");
    let update = sqlx::query("UPDATE posting SET amount_fen = 1")
        .execute(pool)
        .await;
    assert!(update.is_err(), "the journal is append-only");
    let delete = sqlx::query("DELETE FROM posting").execute(pool).await;
    assert!(delete.is_err(), "the journal is append-only");
}
