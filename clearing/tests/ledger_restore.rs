//! Restore drill of the clearing ledger (issue 28). The switch's outbox (SQLite, written as the
//! switch writes it) takes batches of events all along; embedded clearing (relay, in-process
//! bus, consumer) applies them to a SQLite ledger. Under that load the ledger is backed up by
//! another process (`clearing --ledger sqlite:… backup --to …`, `VACUUM INTO`), then restored
//! into a new folder (`clearing --ledger … restore --from …`).
//!
//! Asserted: the restored ledger equals the events at the copy's point: its stored offset S
//! says how far it got, and it holds exactly the events of the outbox before S (events applied,
//! posted total = their amounts, no dead letters), positions sum to zero; the copy was taken
//! mid-stream (S past the first batch, before the last event). Then clearing started again on
//! the restored ledger resumes at S and ends equal to every event, each once.

mod common;

use clearing::db::{Db, LedgerDbConfig};
use clearing::embedded::{EmbeddedClearing, EmbeddedConfig};
use clearing::ledger::Ledger;
use clearing::window::WindowSchedule;
use common::{mixed_events, TestOutbox};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GROUP: &str = "embedded";
const TOPIC: &str = "ssc.settlement.v1";

/// `clearing --ledger sqlite:<ledger> <args>`; its output, or the test fails.
async fn cli(ledger: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_clearing"));
    c.arg("--ledger")
        .arg(format!("sqlite:{}", ledger.display()))
        .args(args);
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .expect("joined")
        .expect("clearing runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

async fn wait_applied(ledger: &Ledger, n: i64, bound: Duration) {
    let started = Instant::now();
    while ledger.counts().await.expect("counts").events_applied < n {
        assert!(started.elapsed() < bound, "{n} events never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_backed_up_under_load_restores_to_the_events_at_the_copys_point_and_catches_up_once(
) {
    let started = Instant::now();
    let outbox = Arc::new(TestOutbox::sqlite().await);
    let dir = tempfile::tempdir().expect("dir");
    let live_path = dir.path().join("clearing.db");
    let clearing = EmbeddedClearing::start(EmbeddedConfig::new(
        outbox.sqlite_path(),
        &live_path,
        WindowSchedule::Manual,
    ))
    .await
    .expect("embedded clearing");

    const BATCHES: u32 = 60;
    const PER_BATCH: u32 = 50;
    let events = mixed_events(BATCHES * PER_BATCH, 70_000);
    let total = i64::from(BATCHES * PER_BATCH);
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (outbox, events, stop) = (Arc::clone(&outbox), events.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            for chunk in events.chunks(PER_BATCH as usize) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                outbox.append(chunk).await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    wait_applied(
        clearing.ledger(),
        i64::from(PER_BATCH) * 5,
        Duration::from_secs(30),
    )
    .await;

    // The backup, under load.
    let copy = dir.path().join("clearing.backup.db");
    let copy_arg = copy.to_str().expect("path");
    let said = cli(&live_path, &["backup", "--to", copy_arg])
        .await
        .expect("backup");
    assert!(
        cli(&live_path, &["backup", "--to", copy_arg])
            .await
            .is_err(),
        "a backup never overwrites"
    );
    appender.await.expect("appender");
    wait_applied(clearing.ledger(), total, Duration::from_secs(60)).await;
    clearing.shutdown().await.expect("shutdown");

    // Restore into a new folder.
    let restored_dir = tempfile::tempdir().expect("dir");
    let restored_path = restored_dir.path().join("clearing.db");
    let restored_said = cli(&restored_path, &["restore", "--from", copy_arg])
        .await
        .expect("restore");
    assert!(restored_said.contains("positions sum 0"), "{restored_said}");
    assert!(
        cli(&restored_path, &["restore", "--from", copy_arg])
            .await
            .is_err(),
        "a restore never overwrites"
    );
    let restored = Ledger::new(
        Db::connect(&LedgerDbConfig::sqlite(&restored_path))
            .await
            .expect("restored ledger"),
    );
    let s = restored
        .stored_offset(GROUP, TOPIC, 0)
        .await
        .expect("offset")
        .expect("the copy says how far it got");
    let first_seq: i64 = match &*outbox {
        TestOutbox::Sqlite(pool, _) => sqlx::query_scalar("SELECT MIN(outbox_seq) FROM outbox")
            .fetch_one(pool)
            .await
            .expect("first seq"),
        TestOutbox::Postgres(..) => unreachable!(),
    };
    let at_copy = usize::try_from(s - first_seq).expect("offset past the first event");
    eprintln!(
        "{} at outbox offset {s}: {at_copy} of {total} events; drill {:?}",
        said.trim(),
        started.elapsed()
    );
    assert!(
        at_copy >= (PER_BATCH * 5) as usize && at_copy < events.len(),
        "the copy was taken mid-stream ({at_copy} of {total})"
    );
    let counts = restored.counts().await.expect("counts");
    assert_eq!(counts.events_applied, at_copy as i64, "the events before S");
    assert_eq!(counts.dead_letters, 0);
    let at_copy_fen: i64 = events[..at_copy].iter().map(|e| e.amount_fen.get()).sum();
    assert_eq!(
        restored.posted_total_fen().await.expect("total"),
        at_copy_fen
    );
    assert_eq!(restored.positions().await.expect("positions").sum_fen(), 0);
    restored.db().close().await;

    // Clearing on the restored ledger resumes at S and applies the rest once.
    let resumed = EmbeddedClearing::start(EmbeddedConfig::new(
        outbox.sqlite_path(),
        &restored_path,
        WindowSchedule::Manual,
    ))
    .await
    .expect("clearing on the restored ledger");
    wait_applied(resumed.ledger(), total, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = resumed.ledger().counts().await.expect("counts");
    assert_eq!(counts.events_applied, total, "each event once");
    let all_fen: i64 = events.iter().map(|e| e.amount_fen.get()).sum();
    assert_eq!(
        resumed.ledger().posted_total_fen().await.expect("total"),
        all_fen
    );
    assert_eq!(
        resumed
            .ledger()
            .positions()
            .await
            .expect("positions")
            .sum_fen(),
        0
    );
    resumed.shutdown().await.expect("shutdown");
}
