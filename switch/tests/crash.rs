//! kill -9 of the switch under load, then restart: every approval a client received is in the
//! store with its outbox event, the store's invariants hold (`switch verify`) after the kill and
//! after the restart, and the restarted switch serves again. On SQLite with 4 connections, and
//! under a heavier load (16 connections, 2,000 approvals before the kill) on SQLite and on
//! PostgreSQL (issue 27).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switch::sim::world::DemoWorld;
use switch::store::{
    DataKeyPanProtector, PostgresConfig, PostgresStore, SqliteConfig, SqliteStore,
};

#[path = "support/demo_process.rs"]
mod demo_process;
#[path = "support/kill_kit.rs"]
mod kill_kit;
use demo_process::demo_command;
use kill_kit::{check_store, wait_listening, Kiosks};

/// Where the killed switch keeps its store.
#[derive(Clone)]
enum Backend {
    /// `switch.db` in the data folder.
    Sqlite,
    /// A schema of its own in the test PostgreSQL (127.0.0.1:5432, database `test`; override
    /// with SWITCH_TEST_PG_URL), dropped at the end.
    Postgres { url: String, schema: String },
}

impl Backend {
    fn postgres() -> Self {
        let url = std::env::var("SWITCH_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("crash_test_{}", std::process::id());
        Backend::Postgres { url, schema }
    }
}

/// One load of the scenario.
struct Load {
    /// Kiosks at once, one connection each.
    kiosks: usize,
    /// Cards per bank (6 banks): a multiple of `kiosks / 6`, so each kiosk has cards of its own.
    cards_per_bank: usize,
    /// Approvals received before the kill.
    approvals_before_kill: usize,
}

/// Starts the switch on `dir` and `backend`; its acquirer's address (a port it bound itself).
fn start_switch(dir: &Path, backend: &Backend, load: &Load, keep: bool) -> (Child, SocketAddr) {
    let mut cmd = demo_command();
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--cards-per-bank", &load.cards_per_bank.to_string()]);
    if let Backend::Postgres { url, schema } = backend {
        cmd.args(["--postgres", url, "--postgres-schema", schema]);
    }
    if keep {
        cmd.arg("--keep-data");
    }
    let (child, addrs) = demo_process::spawn(&mut cmd);
    (child, addrs.acquirer)
}

/// Opens the killed switch's store and runs [`check_store`] on it.
async fn check(dir: &Path, backend: &Backend, approved: &[String]) {
    match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(
                &SqliteConfig::new(dir.join("switch.db")),
                Arc::new(DataKeyPanProtector::for_tests()),
            )
            .await
            .unwrap();
            check_store(&store, approved).await;
        }
        Backend::Postgres { url, schema } => {
            let mut config = PostgresConfig::new(url.clone());
            config.schema = Some(schema.clone());
            let store = PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
                .await
                .unwrap_or_else(|e| {
                    panic!("the crash test on PostgreSQL needs it at {url} (ops/setup.sh): {e}")
                });
            check_store(&store, approved).await;
            store.close().await;
        }
    }
}

/// Runs `load` against a switch on `backend`, kills it with SIGKILL mid-load, checks its store,
/// restarts it on the same data, checks that it approves again, and checks the store again.
async fn kill_9_under_load(backend: Backend, load: Load) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_switch(dir.path(), &backend, &load, false);
    wait_listening(addr).await;

    let approved = Arc::new(Mutex::new(Vec::new()));
    let mut kiosks = Kiosks::new(
        Arc::new(DemoWorld::new(load.cards_per_bank).unwrap()),
        load.kiosks,
    );
    for k in 0..load.kiosks {
        kiosks.start(k, addr, &approved);
    }
    // Kill while requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    while approved.lock().unwrap().len() < load.approvals_before_kill && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    kiosks.stop().await;
    let approved: Vec<String> = approved.lock().unwrap().clone();
    assert!(
        approved.len() >= load.approvals_before_kill,
        "load ran before the kill: {} approvals",
        approved.len()
    );
    check(dir.path(), &backend, &approved).await;

    // Restart on the same data; it must serve again.
    let (mut child, addr) = start_switch(dir.path(), &backend, &load, true);
    wait_listening(addr).await;
    let after = Arc::new(Mutex::new(Vec::new()));
    // A new terminal (its own RRNs) on the cards of kiosk 1, which the kill stopped.
    kiosks.start(load.kiosks + 1, addr, &after);
    let deadline = Instant::now() + Duration::from_secs(30);
    while after.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kiosks.stop().await;
    assert!(
        !after.lock().unwrap().is_empty(),
        "restarted switch approves"
    );
    child.kill().unwrap();
    let _ = child.wait();

    let mut all = approved;
    all.extend(after.lock().unwrap().iter().cloned());
    check(dir.path(), &backend, &all).await;
    if let Backend::Postgres { url, schema } = &backend {
        PostgresStore::drop_schema(url, schema).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_approval_received_survives_a_kill_9_and_the_switch_serves_again() {
    kill_9_under_load(
        Backend::Sqlite,
        Load {
            kiosks: 4,
            cards_per_bank: 4,
            approvals_before_kill: 40,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_under_sixteen_connections_loses_no_approval_on_sqlite() {
    kill_9_under_load(
        Backend::Sqlite,
        Load {
            kiosks: 16,
            cards_per_bank: 8,
            approvals_before_kill: 2_000,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_under_sixteen_connections_loses_no_approval_on_postgres() {
    kill_9_under_load(
        Backend::postgres(),
        Load {
            kiosks: 16,
            cards_per_bank: 8,
            approvals_before_kill: 2_000,
        },
    )
    .await;
}
