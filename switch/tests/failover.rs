//! The failover drill (issue 28): a private PostgreSQL primary and a synchronous streaming
//! standby made for the test (initdb, pg_basebackup), the switch (`switch demo --postgres`)
//! given both hosts with `target_session_attrs=read-write`, kiosks paying bills over ISO 8583;
//! then SIGKILL of the primary's postmaster under load and `pg_ctl promote` of the standby.
//!
//! Asserted: every approval a client received before the kill is on the new primary
//! (synchronous replication: a commit that returned was on both), `verify_integrity()` passes
//! there, the switch approves again within [`RECOVERY_MAX_S`] of the promotion without a
//! restart, every request answered while the primary was gone got `96`/`91` (or `00` for a
//! commit that returned), and no request answered `96` is held as approved on the new primary
//! (the unknown-outcome commit, resolved before answering).
//! The test prints the times it measured (`cargo test --test failover -- --nocapture`).
//!
//! Needs PostgreSQL's server binaries (Debian's `postgresql` package, `initdb`, `pg_ctl` and
//! `pg_basebackup` under /usr/lib/postgresql/*/bin): the test FAILS when they are missing
//! (ops/setup.sh). It never touches the machine's cluster on 5432.

#[path = "support/demo_process.rs"]
mod demo_process;
#[path = "support/pg_server.rs"]
mod pg_server;
use demo_process::demo_command;
use pg_server::*;

use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use schemas::domain::{Rrn, TerminalId};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoWorld, DEMO_PIN};
use switch::store::{DataKeyPanProtector, PostgresConfig, PostgresStore, Store};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const CARDS_PER_BANK: usize = 4;
const KIOSKS: usize = 4;
/// The switch must approve again within this long after the standby is promoted.
const RECOVERY_MAX_S: u64 = 30;
/// The standby's name in the primary's `synchronous_standby_names`.
const STANDBY_NAME: &str = "drill_standby";

/// One cluster of the pair.
struct Cluster {
    data: PathBuf,
    port: u16,
}

impl Cluster {
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn append_conf(&self, lines: &str) {
        let path = self.data.join("postgresql.conf");
        let mut c = std::fs::read_to_string(&path).unwrap();
        c.push_str(lines);
        std::fs::write(&path, c).unwrap();
    }

    fn start(&self) {
        run_ok(
            as_server_user(
                &pg_bin("pg_ctl"),
                &[
                    "-D",
                    self.data.to_str().unwrap(),
                    "-l",
                    self.data.join("server.log").to_str().unwrap(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
    }

    /// SIGKILL of the postmaster (its backends notice and exit).
    fn kill_postmaster(&self) {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        run_ok(
            {
                let mut c = Command::new("kill");
                c.args(["-KILL", &pid]);
                c
            },
            "kill -KILL postmaster",
        );
    }

    fn promote(&self) {
        run_ok(
            as_server_user(
                &pg_bin("pg_ctl"),
                &["-D", self.data.to_str().unwrap(), "-w", "promote"],
            ),
            "pg_ctl promote",
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_server_user(
            &pg_bin("pg_ctl"),
            &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
        )
        .output();
    }
}

/// A primary and its synchronous streaming standby, each on a free port.
struct Pair {
    // Dropped after the clusters (fields drop in order).
    primary: Cluster,
    standby: Cluster,
    _dir: tempfile::TempDir,
}

impl Pair {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        chown_to_server_user(dir.path());
        let primary = Cluster {
            data: dir.path().join("primary"),
            port: free_port(),
        };
        run_ok(
            as_server_user(
                &pg_bin("initdb"),
                &[
                    "-D",
                    primary.data.to_str().unwrap(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                ],
            ),
            "initdb",
        );
        // fsync off: a SIGKILL of the server keeps what the OS holds; the drill is about
        // which commits returned, not about power loss.
        primary.append_conf(&format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 40\nwal_level = replica\nmax_wal_senders = 4\n\
             synchronous_standby_names = '{STANDBY_NAME}'\n",
            primary.port,
            dir.path().display()
        ));
        std::fs::write(
            primary.data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n\
             host replication all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        chown_to_server_user(&primary.data);
        primary.start();

        let standby = Cluster {
            data: dir.path().join("standby"),
            port: free_port(),
        };
        run_ok(
            as_server_user(
                &pg_bin("pg_basebackup"),
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "postgres",
                    "-D",
                    standby.data.to_str().unwrap(),
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "-R",
                ],
            ),
            "pg_basebackup",
        );
        // The copy carries the primary's synchronous_standby_names: once promoted it must wait
        // for no one, or its first commit would hang.
        standby.append_conf(&format!(
            "port = {}\nsynchronous_standby_names = ''\nhot_standby = on\n\
             primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name={STANDBY_NAME}'\n",
            standby.port, primary.port
        ));
        let auto = standby.data.join("postgresql.auto.conf");
        let kept: String = std::fs::read_to_string(&auto)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("primary_conninfo"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&auto, kept).unwrap();
        chown_to_server_user(&standby.data);
        standby.start();
        Self {
            primary,
            standby,
            _dir: dir,
        }
    }

    /// libpq's host list of both, primary first.
    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            self.primary.port, self.standby.port
        )
    }

    /// Waits until the primary reports the standby streaming as its synchronous standby.
    async fn wait_synchronous(&self) {
        let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&self.primary.url())
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT sync_state FROM pg_stat_replication \
                 WHERE application_name = $1 AND state = 'streaming'",
            )
            .bind(STANDBY_NAME)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
            if state.as_deref() == Some("sync") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "standby not synchronous: {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Starts the switch on the pair; its acquirer's address (a port it bound itself).
fn start_switch(dir: &Path, url: &str) -> (Child, SocketAddr) {
    let mut cmd = demo_command();
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--postgres", url])
        .args(["--cards-per-bank", &CARDS_PER_BANK.to_string()]);
    let (child, addrs) = demo_process::spawn(&mut cmd);
    (child, addrs.acquirer)
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "switch did not start listening");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the issuer links sign on.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}

/// One answer a kiosk received: its RRN, response code, and when.
#[derive(Debug, Clone)]
struct Answer {
    rrn: String,
    code: String,
    at: Instant,
}

type Cards = Arc<Mutex<HashMap<usize, MemoryChannel>>>;

/// Pays bills until told to stop, reconnecting when the connection drops; records every
/// answer. Kiosk `k` uses the cards `k`, `k + KIOSKS`, …: kiosks never share a card.
async fn kiosk_task(
    k: usize,
    addr: SocketAddr,
    world: Arc<DemoWorld>,
    cards: Cards,
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
) {
    let h = &world.hospitals[0];
    let mut kiosk = Kiosk::new(
        TerminalId::parse(&format!("FO{k:06}")).unwrap(),
        h.id.clone(),
        Some(h.code.clone()),
        &format!("{}", k + 1),
    );
    let spec = schemas::iso8583::spec("ssc87").unwrap();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(sock) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut conn = Framed::new(sock, FrameCodec::new(LengthHeader::Binary2));
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let idx = (k + KIOSKS * n) % world.cards.len();
            let card = &world.cards[idx];
            let kept = cards.lock().unwrap().remove(&idx);
            let mut reader =
                kept.unwrap_or_else(|| MemoryChannel::new(world.virtual_card(card).unwrap()));
            let p = kiosk
                .medical_bill(
                    card,
                    &mut reader,
                    1_000 + n as u64,
                    &format!("F{k}-{n}"),
                    DEMO_PIN,
                )
                .unwrap();
            cards.lock().unwrap().insert(idx, reader);
            if conn
                .send(Frame {
                    tpdu: None,
                    message: p.request.clone().into(),
                })
                .await
                .is_err()
            {
                break;
            }
            let Some(Ok(answer)) = conn.next().await else {
                break;
            };
            let a = spec.decode(&answer.message).unwrap();
            answers.lock().unwrap().push(Answer {
                rrn: a.get_str(37).unwrap().into_owned(),
                code: a.get_str(39).unwrap().into_owned(),
                at: Instant::now(),
            });
        }
    }
}

async fn store_on(url: String) -> PostgresStore {
    PostgresStore::connect(
        &PostgresConfig {
            url,
            schema: Some("switch_demo".into()),
            connections_max: 2,
        },
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_holds_every_approval_and_the_switch_follows_it() {
    let pair = Pair::start();
    pair.wait_synchronous().await;

    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_switch(data.path(), &pair.url());
    wait_listening(addr).await;

    let world = Arc::new(DemoWorld::new(CARDS_PER_BANK).unwrap());
    let cards: Cards = Arc::default();
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..KIOSKS)
        .map(|k| {
            tokio::spawn(kiosk_task(
                k,
                addr,
                Arc::clone(&world),
                Arc::clone(&cards),
                Arc::clone(&answers),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let approvals = |answers: &Mutex<Vec<Answer>>| {
        answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.code == "00")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while approvals(&answers) < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(approvals(&answers) >= 40, "load ran before the failover");

    // The failure: the primary's postmaster dies with requests in flight; the standby is
    // promoted (what an operator or orchestrator does).
    let killed_at = Instant::now();
    pair.primary.kill_postmaster();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pair.standby.promote();
    let promoted_at = Instant::now();

    let recovered_at = loop {
        let first = answers
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.code == "00" && a.at > promoted_at)
            .map(|a| a.at);
        if let Some(at) = first {
            break at;
        }
        assert!(
            promoted_at.elapsed() < Duration::from_secs(RECOVERY_MAX_S),
            "no approval within {RECOVERY_MAX_S} s of the promotion"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Some more traffic on the new primary.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    child.kill().unwrap();
    let _ = child.wait();

    let answers = answers.lock().unwrap().clone();
    // While no primary accepted writes, every answer was a decline (or an approval whose
    // commit had returned just before the kill, checked below with the others).
    let gap: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.at > killed_at && a.at < recovered_at)
        .collect();
    for a in &gap {
        assert!(
            ["00", "96", "91"].contains(&a.code.as_str()),
            "answered {} with the primary gone",
            a.code
        );
    }

    let store = store_on(pair.standby.url()).await;
    let report = store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
    // Every approval a client received, before, during and after the failover.
    let approved: Vec<&Answer> = answers.iter().filter(|a| a.code == "00").collect();
    for a in &approved {
        let txns = store
            .transactions_by_rrn(&Rrn::parse(&a.rrn).unwrap())
            .await
            .unwrap();
        assert!(
            txns.iter().any(|t| t.record.is_approved()),
            "approval {} a client received is not on the new primary",
            a.rrn
        );
    }
    let approved_before = approved.iter().filter(|a| a.at <= killed_at).count();
    // The unknown-outcome commits: the primary died after the standby had a commit but before
    // acknowledging it. The store looks such commits up on the new primary before answering,
    // so none is answered 96 while the new primary holds it as approved.
    let mut recorded_though_declined = 0;
    for a in gap.iter().filter(|a| a.code == "96") {
        let txns = store
            .transactions_by_rrn(&Rrn::parse(&a.rrn).unwrap())
            .await
            .unwrap();
        if txns.iter().any(|t| t.record.is_approved()) {
            recorded_though_declined += 1;
        }
    }
    assert_eq!(
        recorded_though_declined, 0,
        "answered 96 though committed as approved"
    );
    let approved_after = answers
        .iter()
        .filter(|a| a.code == "00" && a.at > promoted_at)
        .count();
    assert!(approved_after > 0);
    println!(
        "failover drill: {} approvals before the kill, all on the new primary; {} answers in the gap \
         ({} of them 96 though committed); promotion {} ms after the kill; first \
         approval {} ms after the promotion ({} ms after the kill); {} approvals after",
        approved_before,
        gap.len(),
        recorded_though_declined,
        promoted_at.duration_since(killed_at).as_millis(),
        recovered_at.duration_since(promoted_at).as_millis(),
        recovered_at.duration_since(killed_at).as_millis(),
        approved_after,
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_listed_first_is_passed_over_and_a_list_without_a_primary_is_refused() {
    let pair = Pair::start();
    pair.wait_synchronous().await;
    let standby_first = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres",
        pair.standby.port, pair.primary.port
    );
    let store = PostgresStore::connect(
        &PostgresConfig {
            url: standby_first,
            schema: Some("listed".into()),
            connections_max: 2,
        },
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .expect("the writable host of the list is found");
    let watch = store.primary_watch().expect("a host list is watched");
    assert_eq!(watch.primary(), format!("127.0.0.1:{}", pair.primary.port));
    switch::sim::testkit::seed(&store, 10_000, 50_000)
        .await
        .expect("writes go to the primary");
    store.close().await;

    let standby_only = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?target_session_attrs=read-write",
        pair.standby.port
    );
    let refused = PostgresStore::connect(
        &PostgresConfig::new(standby_only),
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .map(|_| ())
    .expect_err("a standby alone is not a writable host")
    .to_string();
    assert!(
        refused.contains("no database host accepts writes") && refused.contains("read-only"),
        "{refused}"
    );
}

/// A switchover: the old primary stays up but turns read-only (SQLSTATE 25006 for writers) and
/// the standby is promoted. The store's next commits find the new primary by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_turned_read_only_is_left_for_the_promoted_standby() {
    use switch::sim::testkit;
    let pair = Pair::start();
    pair.wait_synchronous().await;
    let store = PostgresStore::connect(
        &PostgresConfig {
            url: pair.url(),
            schema: None,
            connections_max: 4,
        },
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .unwrap();
    let fx = testkit::seed(&store, 100_000, 500_000).await.unwrap();
    let before = store
        .commit_decisions(vec![testkit::debit(&fx, fx.personal, 1, 100)], 1)
        .await;
    assert!(before.results[0].is_ok(), "{:?}", before.results);

    // The switchover: the old primary waits for no standby and refuses writes; the standby
    // is promoted.
    let mut old: sqlx::PgConnection = sqlx::Connection::connect(&pair.primary.url())
        .await
        .unwrap();
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = ''",
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::query(sql).execute(&mut old).await.unwrap();
    }
    pair.standby.promote();
    let switched_at = Instant::now();

    // Commits are refused (96) or succeed; within a bound they succeed, on the standby.
    let mut seq = 2;
    let mut refused = 0;
    loop {
        let out = store
            .commit_decisions(vec![testkit::debit(&fx, fx.personal, seq, 100)], 1)
            .await;
        seq += 1;
        match &out.results[0] {
            Ok(_) => break,
            Err(e) => {
                refused += 1;
                assert!(
                    switched_at.elapsed() < Duration::from_secs(RECOVERY_MAX_S),
                    "still refused after {RECOVERY_MAX_S} s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let watch = store.primary_watch().unwrap();
    assert_eq!(watch.primary(), format!("127.0.0.1:{}", pair.standby.port));
    assert_eq!(watch.failovers(), 1);
    println!(
        "switchover: first commit on the new primary {} ms after the promotion, {refused} refused before",
        switched_at.elapsed().as_millis()
    );
    store.close().await;
    // Every commit that succeeded is on the new primary, and its books balance.
    let promoted = PostgresStore::connect(
        &PostgresConfig::new(pair.standby.url()),
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .unwrap();
    let report = promoted.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
    let personal = promoted.account(fx.personal).await.unwrap().unwrap();
    assert_eq!(
        personal.balance_fen,
        100_000 - 2 * 100,
        "the debit before and the first after"
    );
    promoted.close().await;
}
