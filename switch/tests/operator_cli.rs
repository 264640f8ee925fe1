//! The operator API's CLI on a node's configuration (`ops/switch.example.toml` with the soft
//! HSM and a SQLite file): `switch users bootstrap-admin` creates the first administrator once,
//! and `switch audit verify` checks the audit chain and its MACs, and names the first entry
//! that a writer without the audit key changed.

use std::process::Command;

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = include_str!("../../ops/switch.example.toml")
        .replace(
            "kind = \"tcp\"",
            "kind = \"soft\"\ninsecure_test_lmk = true",
        )
        .replace(
            "url = \"sqlite://switch.db\"",
            &format!("url = \"sqlite://{}\"", dir.join("switch.db").display()),
        );
    let path = dir.join("switch.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn switch(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switch"))
        .args(args)
        .output()
        .expect("run switch");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_first_administrator_is_bootstrapped_once_and_the_audit_log_verifies_until_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let cfg = cfg.to_str().unwrap();
    let bootstrap = [
        "users",
        "bootstrap-admin",
        "--config",
        cfg,
        "--username",
        "root",
        "--institution",
        "4101000",
    ];
    let (ok, out) = switch(&bootstrap);
    assert!(ok, "{out}");
    assert!(out.contains("ONE-TIME password: "), "{out}");
    let secret = out
        .lines()
        .find_map(|l| l.split("authenticator app): ").nth(1))
        .expect("the TOTP secret line");
    assert_eq!(secret.trim().len(), 32, "base32 of 160 bits");
    let (ok, again) = switch(&bootstrap);
    assert!(!ok, "only once: {again}");
    assert!(again.contains("bootstrapped once"), "{again}");

    let (ok, out) = switch(&["audit", "verify", "--config", cfg]);
    assert!(ok, "{out}");
    assert!(out.contains("verified: 1 entries, chain and MACs"), "{out}");

    // Someone with the database but not the HSM rewrites the entry and its hash: the chain
    // holds (the hash is recomputable), the MAC does not.
    let db = rusqlite::Connection::open(dir.path().join("switch.db")).unwrap();
    db.execute_batch("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET mac = zeroblob(32) WHERE audit_seq = 1;")
        .unwrap();
    drop(db);
    let (ok, out) = switch(&["audit", "verify", "--config", cfg]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("audit entry 1 has a missing or wrong MAC"),
        "{out}"
    );
}

/// `switch applications import` on a fresh store: the banks of `[[bank]]` are institutions
/// before the rows are checked, so a row naming one is created, and one naming a bank the
/// configuration does not have is refused on its own.
#[test]
fn the_cli_import_finds_the_configured_banks_in_a_fresh_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let cfg = cfg.to_str().unwrap();
    // GB 11643-1999: 41010219900307001 + check character.
    let body = "41010219900307001";
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(weights)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = "10X98765432".as_bytes()[(sum % 11) as usize] as char;
    let csv = format!(
        "citizen_id,name,insurance_scheme,region_code,bank_id\n\
         {body}{check},李四,居民,410102,01020000\n\
         {body}{check},王五,居民,410102,09990000\n"
    );
    let file = dir.path().join("batch.csv");
    std::fs::write(&file, csv).unwrap();
    let (ok, out) = switch(&[
        "applications",
        "import",
        "--config",
        cfg,
        "--batch",
        "cli-1",
        "--institution",
        "4101008",
        "--reason",
        "campaign ticket 7",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("2 rows, 1 created, 0 duplicate, 1 rejected"),
        "{out}"
    );
    assert!(out.contains("row 2: bank_id"), "{out}");
}
