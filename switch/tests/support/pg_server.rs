//! Running PostgreSQL's server binaries from a test: private clusters on free ports (the TLS
//! link test, the failover drill). The binaries refuse to run as root, so as root they run as
//! the `postgres` user. A test FAILS when the binaries are missing (ops/setup.sh installs them).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "ports.rs"]
mod ports;
/// A port nothing listens on right now, below the kernel's ephemeral range (`ports.rs`).
#[allow(unused_imports)] // not every test that includes this file starts a cluster
pub use ports::free_port;

/// The newest installed server tool `tool` (`initdb`, `pg_ctl`, `pg_basebackup`, ...).
pub fn pg_bin(tool: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(tool))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's server binaries ({tool}) are missing: run ops/setup.sh")
    })
}

/// Whether this test runs as root.
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL tool run as `postgres` when we are root (the server refuses root).
pub fn as_server_user(tool: &Path, args: &[&str]) -> Command {
    let mut c = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    };
    c.args(args);
    c
}

/// Runs `c`, failing the test with its output when it does not succeed.
pub fn run_ok(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Gives `path` (recursively) to the `postgres` user when we are root.
pub fn chown_to_server_user(path: &Path) {
    if running_as_root() {
        let mut c = Command::new("chown");
        c.args(["-R", "postgres:postgres"]).arg(path);
        run_ok(c, "chown");
    }
}
