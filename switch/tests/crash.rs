//! kill -9 of the switch under load, then restart: every approval a client received is in the
//! store with its outbox event, the store's invariants hold (`switch verify`) after the kill and
//! after the restart, and the restarted switch serves again. On SQLite with 4 connections, and
//! under a heavier load (16 connections, 2,000 approvals before the kill) on SQLite and on
//! PostgreSQL (issue 27).

use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use schemas::domain::{Rrn, TerminalId};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoWorld, DEMO_PIN};
use switch::store::{
    DataKeyPanProtector, PostgresConfig, PostgresStore, SqliteConfig, SqliteStore, Store,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Ports {
    acquirer: u16,
    http: u16,
    banks: u16,
}

fn start_switch(dir: &Path, backend: &Backend, load: &Load, ports: &Ports, keep: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switch"));
    cmd.args(["demo", "--no-traffic", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{}", ports.acquirer)])
        .args(["--http", &format!("127.0.0.1:{}", ports.http)])
        .args(["--bank-port-base", &ports.banks.to_string()])
        .args(["--cards-per-bank", &load.cards_per_bank.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Backend::Postgres { url, schema } = backend {
        cmd.args(["--postgres", url, "--postgres-schema", schema]);
    }
    if keep {
        cmd.arg("--keep-data");
    }
    cmd.spawn().expect("switch binary starts")
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "switch did not start listening");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the issuer links sign on.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}

/// The cards in the cardholders' hands, by index: a card keeps its ATC from one payment to the
/// next (the switch declines an ATC it has seen), before and after the restart.
type Cards = Arc<Mutex<HashMap<usize, MemoryChannel>>>;

/// Sends bills until told to stop or the connection dies; records every approval received.
/// Kiosk `k` of `kiosks` uses the cards `k`, `k + kiosks`, …: the kiosks running together never
/// share a card.
async fn kiosk_task(
    k: usize,
    kiosks: usize,
    addr: SocketAddr,
    world: Arc<DemoWorld>,
    cards: Cards,
    approved: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(sock) = TcpStream::connect(addr).await else {
        return;
    };
    let mut conn = Framed::new(sock, FrameCodec::new(LengthHeader::Binary2));
    let h = &world.hospitals[0];
    let mut kiosk = Kiosk::new(
        TerminalId::parse(&format!("CR{k:06}")).unwrap(),
        h.id.clone(),
        Some(h.code.clone()),
        &format!("{}", k + 1),
    );
    let spec = schemas::iso8583::spec("ssc87").unwrap();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let idx = (k + kiosks * n) % world.cards.len();
        let card = &world.cards[idx];
        let kept = cards.lock().unwrap().remove(&idx);
        let mut reader =
            kept.unwrap_or_else(|| MemoryChannel::new(world.virtual_card(card).unwrap()));
        let p = kiosk
            .medical_bill(
                card,
                &mut reader,
                2_000 + n as u64,
                &format!("K{k}-{n}"),
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
            return;
        }
        let Some(Ok(answer)) = conn.next().await else {
            return;
        };
        let a = spec.decode(&answer.message).unwrap();
        if a.get_str(39).unwrap() == "00" {
            approved
                .lock()
                .unwrap()
                .push(a.get_str(37).unwrap().into_owned());
        }
    }
}

/// `switch verify` on the killed switch's store, and every approval in `approved` (RRNs the
/// clients received `00` for) durable with its settlement event in the outbox.
async fn check_store<S: Store>(store: &S, approved: &[String]) {
    let report = store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
    let outbox: std::collections::HashSet<uuid::Uuid> = store
        .outbox_after(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.event_id)
        .collect();
    for rrn in approved {
        let txns = store
            .transactions_by_rrn(&Rrn::parse(rrn).unwrap())
            .await
            .unwrap();
        let t = txns
            .iter()
            .find(|t| t.record.is_approved())
            .unwrap_or_else(|| panic!("approved RRN {rrn} lost"));
        let event = t.event_id.expect("approval has an event");
        assert!(outbox.contains(&event), "event of {rrn} in the outbox");
    }
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
    let ports = Ports {
        acquirer: free_port(),
        http: free_port(),
        banks: 20_000 + free_port() % 20_000,
    };
    let addr: SocketAddr = format!("127.0.0.1:{}", ports.acquirer).parse().unwrap();
    let mut child = start_switch(dir.path(), &backend, &load, &ports, false);
    wait_listening(addr).await;

    let world = Arc::new(DemoWorld::new(load.cards_per_bank).unwrap());
    let cards: Cards = Arc::default();
    let approved = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..load.kiosks)
        .map(|k| {
            tokio::spawn(kiosk_task(
                k,
                load.kiosks,
                addr,
                Arc::clone(&world),
                Arc::clone(&cards),
                Arc::clone(&approved),
                Arc::clone(&stop),
            ))
        })
        .collect();
    // Kill while requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    while approved.lock().unwrap().len() < load.approvals_before_kill && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let approved: Vec<String> = approved.lock().unwrap().clone();
    assert!(
        approved.len() >= load.approvals_before_kill,
        "load ran before the kill: {} approvals",
        approved.len()
    );
    check(dir.path(), &backend, &approved).await;

    // Restart on the same data; it must serve again.
    let mut child = start_switch(dir.path(), &backend, &load, &ports, true);
    wait_listening(addr).await;
    let after = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // A new terminal (its own RRNs) on the cards of kiosk 1, which the kill stopped.
    let t = tokio::spawn(kiosk_task(
        load.kiosks + 1,
        load.kiosks,
        addr,
        Arc::clone(&world),
        Arc::clone(&cards),
        Arc::clone(&after),
        Arc::clone(&stop),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while after.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = t.await;
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
