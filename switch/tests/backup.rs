//! `switch backup` and `switch restore` (issue 28): a backup taken while decisions commit is a
//! consistent copy; restored into a new folder it passes `switch verify`, holds every decision
//! committed before the backup began, and its balances equal their journals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use switch::sim::testkit;
use switch::store::writer::{self, WriterConfig};
use switch::store::{DataKeyPanProtector, SqliteConfig, SqliteStore, Store};

/// The example configuration on the SQLite file `db`, with the software HSM and the published
/// test LMK (whose tokens the example's keys are).
fn config(dir: &Path, name: &str, db: &Path) -> PathBuf {
    let text = include_str!("../../ops/switch.example.toml")
        .replace(
            "url = \"sqlite://switch.db\"",
            &format!("url = \"sqlite://{}\"", db.display()),
        )
        .replace(
            "kind = \"tcp\"",
            "kind = \"soft\"\ninsecure_test_lmk = true",
        );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn switch(args: &[&str], config: &Path, file_flag: &str, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switch"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg(file_flag)
        .arg(file)
        .output()
        .expect("switch binary runs")
}

async fn open(db: &Path) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(db),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_into_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let live_db = dir.path().join("live.db");
    let live_cfg = config(dir.path(), "live.toml", &live_db);
    let store = open(&live_db).await;
    let fx = testkit::seed(&*store, 100_000_000, 1_000_000_000)
        .await
        .unwrap();

    // Decisions commit one after another while the backup runs.
    let (w, _task) = writer::spawn(Arc::clone(&store), WriterConfig::default());
    let committed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (committed, stop, fx) = (Arc::clone(&committed), Arc::clone(&stop), fx.clone());
        tokio::spawn(async move {
            let mut seq = 0u32;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                w.submit(testkit::debit(&fx, fx.personal, seq, 100))
                    .await
                    .unwrap();
                committed.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while committed.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before_backup = committed.load(Ordering::Relaxed);
    let backup_file = dir.path().join("backup.db");
    let out = tokio::task::spawn_blocking({
        let (cfg, file) = (live_cfg.clone(), backup_file.clone());
        move || switch(&["backup"], &cfg, "--to", &file)
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_backup = committed.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // A second backup to the same file is refused: nothing is overwritten.
    let again = switch(&["backup"], &live_cfg, "--to", &backup_file);
    assert!(!again.status.success());

    // Restore into a new folder: verified on the way in.
    let restored_db = dir.path().join("restored").join("switch.db");
    std::fs::create_dir_all(restored_db.parent().unwrap()).unwrap();
    let restored_cfg = config(dir.path(), "restored.toml", &restored_db);
    let out = switch(&["restore"], &restored_cfg, "--from", &backup_file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("invariants hold"), "{stdout}");
    // Restoring over a database is refused.
    let over = switch(&["restore"], &restored_cfg, "--from", &backup_file);
    assert!(!over.status.success());

    let restored = open(&restored_db).await;
    let report = restored.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
    let n = usize::try_from(report.transactions).unwrap();
    assert!(
        (before_backup..=after_backup).contains(&n),
        "the copy holds every decision committed before it began and none after it ended: \
         {before_backup} <= {n} <= {after_backup}"
    );
    let (balance, _) = {
        let a = restored.account(fx.personal).await.unwrap().unwrap();
        (a.balance_fen, a.held_fen)
    };
    assert_eq!(
        balance,
        100_000_000 - 100 * n as i64,
        "balance as of the copy's commit"
    );
}
