//! PostgreSQL backup and point-in-time recovery drill (issue 28), through the recipe in
//! `ops/pg-pitr.sh`: a private cluster (its own port and folder; the machine's cluster on 5432
//! is never touched) archiving its WAL; decisions committing all along; a base backup taken
//! under that load; a named restore point created under load, then a moment noted under load;
//! more decisions after each. The backup is restored with the archive into a new folder and
//! port to the restore point, and into another to the moment (`recovery_target_time`).
//!
//! Asserted, for each restore: the store passes `verify_integrity` (what `switch verify`
//! runs); it holds every decision committed before the point (or moment) and none committed
//! after it was taken; the account's balance equals its opening less the decisions it holds.
//!
//! FAILS (never skips) when PostgreSQL's server binaries are missing.

#[path = "support/pg_server.rs"]
mod pg_server;

use pg_server::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switch::sim::testkit;
use switch::store::writer::{self, WriterConfig};
use switch::store::{AccountId, DataKeyPanProtector, PostgresConfig, PostgresStore, Store};

const OPENING_FEN: i64 = 100_000_000;
const SCHEMA: &str = "pitr";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/pg-pitr.sh")
}

fn pitr(args: &[&str]) {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("ops/pg-pitr.sh runs");
    assert!(
        out.status.success(),
        "ops/pg-pitr.sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A cluster this test started (or restored), stopped when dropped.
struct Cluster {
    data: PathBuf,
    port: u16,
}

impl Cluster {
    /// initdb on a free port, archiving its WAL into `archive` with the recipe's settings.
    fn create(root: &Path, archive: &Path) -> Cluster {
        let data = root.join("primary");
        let port = free_port();
        run_ok(
            as_server_user(
                &pg_bin("initdb"),
                &[
                    "-D",
                    data.to_str().expect("path"),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                ],
            ),
            "initdb",
        );
        let settings = Command::new("bash")
            .arg(script())
            .args(["archive-settings", archive.to_str().expect("path")])
            .output()
            .expect("archive settings");
        let conf = data.join("postgresql.conf");
        let mut c = std::fs::read_to_string(&conf).expect("conf");
        c.push_str(&String::from_utf8_lossy(&settings.stdout));
        c.push_str(&format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 40\n",
            data.display()
        ));
        std::fs::write(&conf, c).expect("conf");
        chown_to_server_user(&data);
        let cluster = Cluster { data, port };
        let log = cluster.data.join("server.log");
        run_ok(
            as_server_user(
                &pg_bin("pg_ctl"),
                &[
                    "-D",
                    cluster.data.to_str().expect("path"),
                    "-l",
                    log.to_str().expect("path"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn store(&self) -> Arc<PostgresStore> {
        let mut config = PostgresConfig::new(self.url());
        config.schema = Some(SCHEMA.into());
        config.connections_max = 4;
        Arc::new(
            PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
                .await
                .expect("store"),
        )
    }

    async fn sql(&self, q: &str) -> String {
        let pool = sqlx::PgPool::connect(&self.url()).await.expect("connect");
        let v: String = sqlx::query_scalar(q)
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        pool.close().await;
        v
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_server_user(
            &pg_bin("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap_or("."),
                "-m",
                "immediate",
                "stop",
            ],
        )
        .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_backup_taken_under_load_restores_to_a_named_point_and_to_a_moment_and_verifies() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().to_path_buf();
    let archive = root.join("archive");
    std::fs::create_dir(&archive).expect("archive");
    chown_to_server_user(&root);
    let primary = Cluster::create(&root, &archive);
    let store = primary.store().await;
    let fx = testkit::seed(&*store, OPENING_FEN, 1_000_000_000)
        .await
        .expect("seed");

    // Decisions commit one after another all along.
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
                    .expect("decision");
                committed.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let wait_for = |n: usize| {
        let committed = Arc::clone(&committed);
        async move {
            while committed.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(200).await;

    // Base backup under load.
    let backup = root.join("base");
    {
        let (port, backup) = (primary.port.to_string(), backup.clone());
        tokio::task::spawn_blocking(move || {
            pitr(&[
                "base-backup",
                "127.0.0.1",
                &port,
                backup.to_str().expect("path"),
            ])
        })
        .await
        .expect("base backup");
    }
    let at_backup = committed.load(Ordering::Relaxed);
    wait_for(at_backup + 200).await;

    // The named point, under load.
    let before_point = committed.load(Ordering::Relaxed);
    primary
        .sql("SELECT pg_create_restore_point('drill')::text")
        .await;
    let after_point = committed.load(Ordering::Relaxed);
    wait_for(after_point + 200).await;
    // A moment in time, under load.
    let before_time = committed.load(Ordering::Relaxed);
    let time = primary
        .sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        .await;
    let after_time = committed.load(Ordering::Relaxed);
    wait_for(after_time + 200).await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load");
    let total = committed.load(Ordering::Relaxed);
    // The segment holding the point goes to the archive now.
    let segment = primary.sql("SELECT pg_walfile_name(pg_switch_wal())").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !archive.join(&segment).exists() {
        assert!(Instant::now() < deadline, "{segment} never archived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(store);

    // Restore into a new folder and port, to the point; and into another, to the moment.
    let at_point = restore_and_verify(
        &root,
        &backup,
        &archive,
        fx.personal,
        ("point", "name:drill"),
    )
    .await;
    let at_time = restore_and_verify(
        &root,
        &backup,
        &archive,
        fx.personal,
        ("time", &format!("time:{time}")),
    )
    .await;
    eprintln!(
        "restored to the point: {at_point} decisions (committed before it {before_point}, by \
         its return {after_point}); to {time}: {at_time} ({before_time}..={after_time}); in all \
         {total}; drill {:?}",
        started.elapsed()
    );
    assert!(
        (before_point..=after_point).contains(&at_point),
        "the restore holds what was committed by the point and nothing after: \
         {before_point} <= {at_point} <= {after_point}"
    );
    assert!(
        (before_time..=after_time).contains(&at_time),
        "the restore holds what was committed by {time} and nothing after: \
         {before_time} <= {at_time} <= {after_time}"
    );
    assert!(
        at_time < total,
        "the decisions after the moment are not restored"
    );
    drop(primary);
}

/// Restores the base backup with the archive into `root/<name>` on a free port to `target`,
/// checks the store there (`verify_integrity`, the balance equals the opening less the
/// decisions it holds) and returns how many decisions it holds.
async fn restore_and_verify(
    root: &Path,
    backup: &Path,
    archive: &Path,
    personal: AccountId,
    (name, target): (&str, &str),
) -> usize {
    let data = root.join(name);
    let port = free_port();
    {
        let (b, a, d, t) = (
            backup.to_path_buf(),
            archive.to_path_buf(),
            data.clone(),
            target.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            pitr(&[
                "restore",
                b.to_str().expect("path"),
                a.to_str().expect("path"),
                d.to_str().expect("path"),
                &port.to_string(),
                &t,
            ])
        })
        .await
        .expect("restore");
    }
    let restored = Cluster { data, port };
    let store = restored.store().await;
    let report = store.verify_integrity().await.expect("verify");
    assert!(report.is_consistent(), "restored to {target}: {report}");
    let n = usize::try_from(report.transactions).expect("count");
    let balance = store
        .account(personal)
        .await
        .expect("account")
        .expect("the account")
        .balance_fen;
    assert_eq!(balance, OPENING_FEN - 100 * n as i64, "balance at {target}");
    n
}
