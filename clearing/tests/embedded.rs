//! The embedded pipeline (what `switch demo` runs): outbox → relay → in-process bus → ledger,
//! stopped and restarted without loss or double posting.

mod common;

use clearing::embedded::{EmbeddedClearing, EmbeddedConfig};
use clearing::window::WindowSchedule;
use common::{mixed_events, TestOutbox};
use std::time::Duration;

async fn wait_applied(c: &EmbeddedClearing, head: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = c.stats().await.unwrap();
        if s.applied_seq == head {
            assert_eq!(s.lag_events, 0);
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "stuck at {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_pipeline_applies_every_outbox_event_once_across_restarts() {
    let outbox = TestOutbox::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig::new(
        outbox.sqlite_path(),
        dir.path().join("ledger.db"),
        WindowSchedule::Manual,
    );
    let first = mixed_events(600, 0);
    outbox.append(&first[..300]).await;
    let c = EmbeddedClearing::start(config.clone()).await.unwrap();
    outbox.append(&first[300..]).await;
    wait_applied(&c, 600).await;
    let s = c.stats().await.unwrap();
    assert_eq!(
        (s.events_applied, s.dead_lettered, s.outbox_head_seq),
        (600, 0, 600)
    );
    let w = c.close_window().await.unwrap();
    assert_eq!(w.window_id, 1);
    c.shutdown().await.unwrap();

    // Written while clearing is down, applied after restart; nothing earlier applied twice.
    let second = mixed_events(400, 10_000);
    outbox.append(&second).await;
    let c = EmbeddedClearing::start(config).await.unwrap();
    wait_applied(&c, 1_000).await;
    let s = c.stats().await.unwrap();
    assert_eq!(
        (s.events_applied, s.duplicates, s.current_window),
        (400, 0, 2)
    );
    let expected: i64 = first
        .iter()
        .chain(&second)
        .map(|e| e.amount_fen.get())
        .sum();
    assert_eq!(c.ledger().posted_total_fen().await.unwrap(), expected);
    let p = c.positions().await.unwrap();
    assert_eq!(p.sum_fen(), 0);
    c.shutdown().await.unwrap();
    outbox.cleanup().await;
}

#[tokio::test]
async fn embedded_start_refuses_a_missing_switch_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig::new(
        dir.path().join("nope.db"),
        dir.path().join("l.db"),
        WindowSchedule::Manual,
    );
    assert!(EmbeddedClearing::start(config).await.is_err());
}
