//! The `clearing` command's staff commands against a SQLite ledger.

mod common;

use common::{assert_valid_camt053, delivery, purchase, split, Harness};
use schemas::events::sample::ids::{BANK, HOSPITAL};
use std::process::Command;

fn clearing(ledger: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_clearing"))
        .arg("--ledger")
        .arg(format!("sqlite:{}", ledger.display()))
        .args(args)
        .output()
        .expect("run clearing");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn positions_close_window_and_reports_from_the_command_line() {
    let h = Harness::sqlite().await;
    h.ledger
        .apply_batch("g", &[delivery(0, &purchase(1)), delivery(1, &split(2))])
        .await
        .unwrap();
    let path = match &h.config {
        clearing::db::LedgerDbConfig::Sqlite { path, .. } => path.clone(),
        _ => unreachable!(),
    };
    let positions = clearing(&path, &["positions"]);
    assert!(
        positions.contains(HOSPITAL) && positions.contains("200.00"),
        "{positions}"
    );
    assert!(positions.contains("sum of net positions (fen): 0"));

    let closed = clearing(&path, &["close-window"]);
    assert!(
        closed.starts_with("window 1 closed: 4 postings, 20000 fen"),
        "{closed}"
    );
    assert!(
        closed.contains(&format!("{BANK} pays {HOSPITAL} 11500 fen")),
        "{closed}"
    );

    let csv = clearing(
        &path,
        &["report", "--institution", HOSPITAL, "--window", "1"],
    );
    let (digest, claimed) = clearing::report::verify_statement_csv(&csv).unwrap();
    assert_eq!(hex::encode(digest), claimed);
    let xml = clearing(
        &path,
        &[
            "report",
            "--institution",
            HOSPITAL,
            "--window",
            "1",
            "--format",
            "camt053",
        ],
    );
    assert_eq!(xml.matches("<Ntry>").count(), 4);
    assert_valid_camt053(&[&xml]);
    let refused = |window: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_clearing"))
            .args([
                "--ledger",
                &format!("sqlite:{}", path.display()),
                "report",
                "--institution",
                HOSPITAL,
                "--window",
                window,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused("7").contains("settlement window 7 does not exist"));
    // Window 2 opened at the cut-over: no settlement file until it closes.
    assert!(refused("2").contains("settlement window 2 is still open"));
    h.cleanup().await;
}
