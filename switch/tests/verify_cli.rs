//! `switch verify --config` (issue 27, decision 2): on a consistent store it says every
//! invariant holds and exits 0; on a store changed behind the switch's back it names the broken
//! invariant and exits non-zero.

use std::path::Path;
use std::process::{Command, Output};

/// The example configuration on a SQLite file under `dir`, with the software HSM and the
/// published test LMK (whose tokens the example's keys are).
fn config(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("switch.db");
    let text = include_str!("../../ops/switch.example.toml")
        .replace(
            "url = \"sqlite://switch.db\"",
            &format!("url = \"sqlite://{}\"", db.display()),
        )
        .replace(
            "kind = \"tcp\"",
            "kind = \"soft\"\ninsecure_test_lmk = true",
        );
    let path = dir.join("switch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn verify(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switch"))
        .args(["verify", "--config"])
        .arg(config)
        .output()
        .expect("switch binary runs")
}

#[test]
fn verify_passes_a_consistent_store_and_names_what_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());

    let clean = verify(&config);
    let stdout = String::from_utf8_lossy(&clean.stdout);
    assert!(
        clean.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(stdout.contains("invariants hold"), "{stdout}");

    // An account whose balance no journal explains: money made from nothing.
    let db = rusqlite::Connection::open(dir.path().join("switch.db")).unwrap();
    db.execute_batch(
        "INSERT INTO institution (institution_id, name, kind, created_at_us) \
         VALUES ('4101001', 'City Hospital', 'hospital', 0);
         INSERT INTO account (institution_id, card_id, kind, balance_fen, held_fen, created_at_us) \
         VALUES ('4101001', NULL, 'pooled_fund', 500, 0, 0);",
    )
    .unwrap();
    drop(db);

    let broken = verify(&config);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success(), "{stdout}");
    assert!(stdout.contains("BROKEN balance-equals-journal"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("inconsistent"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
}
