//! `switch serve`, the production entry point, run as a process on the demo world's
//! configuration (`sim::serve_config`), as production runs it (issue 28).
//!
//! - One node on SQLite: its banks (slow to answer) sign on and exchange keys before its
//!   acquirer port opens, `GET /ready` answers 200, kiosks' bank purchases through
//!   its acquirer port are approved and move the banks' balances by exactly the approved
//!   amounts, SIGTERM stops it with exit 0, and `switch verify` passes on its file.
//! - Two nodes on one PostgreSQL schema, each with its own acquirer listener and its own bank
//!   links to the same bank hosts (each bank sees each node sign on and exchange keys),
//!   started at once; kiosks pay on both; one node is killed with SIGKILL mid-run and the other
//!   keeps approving; the killed node is started again on its file and approves too. Every
//!   approval a kiosk received, on either node, is in the store with its outbox event, and
//!   `switch verify` passes.
//! - One node on SQLite killed while its banks have booked legs it has not decided on: once
//!   restarted, it reverses each from its bank-leg journal (the banks' balances come back).
//!
//! The second test needs PostgreSQL (127.0.0.1:5432, SWITCH_TEST_PG_URL).

#[path = "support/demo_process.rs"]
mod demo_process;
#[path = "faults/harness.rs"]
mod harness;
#[path = "support/kill_kit.rs"]
mod kill_kit;

use card_apdu::channel::memory::MemoryChannel;
use demo_process::Processes;
use futures_util::{SinkExt, StreamExt};
use harness::{field, Answered};
use kill_kit::{check_store, pg_url, unique_tag, wait_approvals, Kiosks};
use schemas::domain::TerminalId;
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switch::issuer::IssuerConfig;
use switch::sim::banksim::BankSim;
use switch::sim::kiosk::Kiosk;
use switch::sim::serve_config::{pan_protector, serve_config, ServeSetup};
use switch::sim::world::DemoWorld;
use switch::store::{PostgresConfig, PostgresStore, SqliteConfig, SqliteStore};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const CARDS_PER_BANK: usize = 2;

/// Writes the world's `switch serve` file for a node in `dir` (listeners on ports it binds
/// itself, read back from its status line) and returns its path.
fn write_config(
    dir: &Path,
    world: &DemoWorld,
    database_url: String,
    database_schema: Option<String>,
    banks: Vec<IssuerConfig>,
) -> PathBuf {
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let setup = ServeSetup {
        database_url,
        database_schema,
        data_dir: dir.join("node-data"),
        listen: any_port,
        http: any_port,
        banks,
    };
    let path = dir.join("switch.toml");
    std::fs::write(&path, serve_config(world, &setup).expect("config")).unwrap();
    path
}

fn serve(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switch"));
    cmd.arg("serve").arg("--config").arg(config);
    cmd
}

/// `switch verify --config FILE` succeeds.
fn assert_verifies(config: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_switch"))
        .arg("verify")
        .arg("--config")
        .arg(config)
        .output()
        .expect("switch verify runs");
    assert!(
        out.status.success(),
        "switch verify: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every bank host saw the node sign on and exchange keys (`times` nodes: `times` each).
fn assert_signed_on(banks: &[BankSim], times: u64) {
    for b in banks {
        let s = b.stats();
        assert!(
            s.sign_ons >= times && s.key_exchanges >= times,
            "bank {} saw {} sign-ons and {} key exchanges",
            b.institution(),
            s.sign_ons,
            s.key_exchanges
        );
    }
}

/// The node's HTTP face answers its readiness probe `200` (`GET /ready`).
async fn assert_ready(http: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = TcpStream::connect(http).await.expect("http port");
    sock.write_all(b"GET /ready HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "GET /ready: {answer}");
}

/// `rounds` bank purchases on every card of the world through the acquirer at `addr`, each
/// card at its own kiosk on its own connection, the cards all at once.
async fn purchases(addr: SocketAddr, world: &Arc<DemoWorld>, rounds: usize) -> Vec<Answered> {
    let mut set = tokio::task::JoinSet::new();
    for (i, card) in world.cards.iter().enumerate() {
        let (world, card) = (Arc::clone(world), card.clone());
        set.spawn(async move {
            let h = &world.hospitals[0];
            let mut kiosk = Kiosk::new(
                TerminalId::parse(&format!("SV{i:06}")).unwrap(),
                h.id.clone(),
                Some(h.code.clone()),
                &format!("{i:03}"),
            );
            let mut reader = MemoryChannel::new(world.virtual_card(&card).unwrap());
            let sock = TcpStream::connect(addr).await.expect("acquirer port");
            let mut conn = Framed::new(sock, FrameCodec::new(LengthHeader::Binary2));
            let mut out = Vec::new();
            for r in 0..rounds {
                let amount_fen = 100 + 37 * r as u64;
                let request = kiosk
                    .bank_purchase(&card, &mut reader, amount_fen)
                    .unwrap()
                    .request;
                conn.send(Frame {
                    tpdu: None,
                    message: request.clone().into(),
                })
                .await
                .expect("request sent");
                let answer = tokio::time::timeout(Duration::from_secs(30), conn.next())
                    .await
                    .expect("answered within 30 s")
                    .expect("an answer")
                    .expect("a frame");
                out.push(Answered {
                    bank: card.bank,
                    pan: card.pan.expose_digits().to_owned(),
                    rrn: field(&request, 37),
                    amount_fen,
                    code: field(&answer.message, 39),
                });
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.expect("kiosk"));
    }
    all
}

/// A SQLite node's folder, world, database file, PAN protector, banks with their opening
/// balances, and `serve` file: seeded, not started.
type SqliteNode = (
    tempfile::TempDir,
    DemoWorld,
    PathBuf,
    Arc<switch::store::HsmPanProtector>,
    Vec<BankSim>,
    std::collections::HashMap<String, i64>,
    PathBuf,
);

async fn sqlite_node() -> SqliteNode {
    let dir = tempfile::tempdir().unwrap();
    let mut world = DemoWorld::new(CARDS_PER_BANK).unwrap();
    let db = dir.path().join("switch.db");
    let pan = Arc::new(pan_protector(&world).await.unwrap());
    let store = SqliteStore::open(&SqliteConfig::new(&db), pan.clone())
        .await
        .unwrap();
    world.seed(&store).await.unwrap();
    store.close().await;
    let (banks, links) = harness::start_banks(&world).await;
    let opening = harness::opening_balances(&world, &banks);
    let config = write_config(
        dir.path(),
        &world,
        format!("sqlite://{}", db.display()),
        None,
        links,
    );
    (dir, world, db, pan, banks, opening, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_serve_node_on_sqlite_approves_stops_on_sigterm_and_its_store_verifies() {
    let started = Instant::now();
    let (_dir, world, db, pan, banks, opening, config) = sqlite_node().await;

    // Banks slow to answer at first: the node opens its acquirer port only once they have
    // signed on, so no purchase finds its bank's link still connecting (stood in or declined).
    for b in &banks {
        b.faults().set_response_delay(Duration::from_millis(300));
    }
    let mut ps = Processes::default();
    let (child, addrs) = demo_process::spawn(&mut serve(&config));
    ps.adopt("node", child);
    let acquirer = addrs.acquirer;
    assert_signed_on(&banks, 1);
    assert_ready(addrs.http).await;
    for b in &banks {
        b.faults().set_response_delay(Duration::ZERO);
    }
    let world = Arc::new(world);
    let answers = purchases(acquirer, &world, 3).await;
    let codes = harness::codes(&answers);
    assert_eq!(
        codes.get("00"),
        Some(&answers.len()),
        "every purchase approved: {codes:?}"
    );
    let status = ps.terminate("node");
    assert!(
        status.success(),
        "SIGTERM ends serve with exit 0: {status:?}"
    );
    for b in &banks {
        assert_eq!(b.stats().advice_messages, 0, "nothing stood in for");
    }

    assert_verifies(&config);
    let store = SqliteStore::open(&SqliteConfig::new(&db), pan)
        .await
        .unwrap();
    harness::assert_books_of(&store, &world, &banks, &opening, &answers).await;
    let moved: i64 = world
        .cards
        .iter()
        .map(|c| {
            opening[c.pan.expose_digits()]
                - banks[c.bank].balance_fen(c.pan.expose_digits()).unwrap()
        })
        .sum();
    assert!(moved > 0, "the banks' balances moved");
    eprintln!(
        "serve on SQLite: {} purchases approved, {} s",
        answers.len(),
        started.elapsed().as_secs()
    );
}

const KIOSKS: usize = 6;
/// Approvals received (both nodes) before the kill.
const APPROVALS_BEFORE_KILL: usize = 60;
/// Approvals the surviving node gives after the kill.
const APPROVALS_AFTER_KILL: usize = 60;
/// Approvals the killed node gives once restarted.
const APPROVALS_AFTER_RESTART: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_serve_nodes_on_one_postgres_lose_no_approval_when_one_is_killed() {
    let started = Instant::now();
    let url = pg_url();
    let schema = format!("serve_{}", unique_tag());
    let mut world = DemoWorld::new(CARDS_PER_BANK).unwrap();
    let pan = Arc::new(pan_protector(&world).await.unwrap());
    let mut pg = PostgresConfig::new(url.clone());
    pg.schema = Some(schema.clone());
    let store = PostgresStore::connect(&pg, pan.clone())
        .await
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL at {url} (ops/setup.sh): {e}"));
    world.seed(&store).await.unwrap();
    store.close().await;

    // One set of bank hosts, as in production; each node its own folder, file and links to
    // them (its own sign-on and key exchange); both on the one schema.
    let (banks, links) = harness::start_banks(&world).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let configs: Vec<PathBuf> = dirs
        .iter()
        .map(|dir| {
            write_config(
                dir.path(),
                &world,
                url.clone(),
                Some(schema.clone()),
                links.clone(),
            )
        })
        .collect();
    // Started at once: both open the store, provision it and sign on together.
    let mut ps = Processes::default();
    let (mut cmd_a, mut cmd_b) = (serve(&configs[0]), serve(&configs[1]));
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| demo_process::spawn(&mut cmd_a));
        let b = s.spawn(|| demo_process::spawn(&mut cmd_b));
        (a.join().unwrap(), b.join().unwrap())
    });
    ps.adopt("node a", a.0);
    ps.adopt("node b", b.0);
    let addrs = [a.1.acquirer, b.1.acquirer];
    assert_signed_on(&banks, 2);

    let approved = Arc::new(Mutex::new(Vec::new()));
    let mut kiosks = Kiosks::new(Arc::new(world), KIOSKS);
    for k in 0..KIOSKS {
        kiosks.start(k, addrs[k % 2], &approved);
    }
    wait_approvals(&approved, APPROVALS_BEFORE_KILL, Duration::from_secs(60)).await;
    ps.kill("node a");
    let at_kill = approved.lock().unwrap().len();
    wait_approvals(
        &approved,
        at_kill + APPROVALS_AFTER_KILL,
        Duration::from_secs(60),
    )
    .await;
    // Node a again, on its file and folder (its spool), as an operator restarts it: its banks
    // sign it on again and its new kiosks (new terminals, the killed kiosks' cards) are approved.
    let addr_a = ps.spawn_node("node a", &mut serve(&configs[0]));
    assert_signed_on(&banks, 3);
    let after_restart = Arc::new(Mutex::new(Vec::new()));
    for k in (0..KIOSKS).step_by(2) {
        kiosks.start(k + KIOSKS, addr_a, &after_restart);
    }
    wait_approvals(
        &after_restart,
        APPROVALS_AFTER_RESTART,
        Duration::from_secs(60),
    )
    .await;
    kiosks.stop().await;
    assert!(
        ps.all_running().is_empty(),
        "died on their own: {:?}",
        ps.all_running()
    );
    for node in ["node a", "node b"] {
        let status = ps.terminate(node);
        assert!(
            status.success(),
            "SIGTERM ends {node} with exit 0: {status:?}"
        );
    }
    let mut approved: Vec<String> = approved.lock().unwrap().clone();
    let restarted = after_restart.lock().unwrap().len();
    approved.extend(after_restart.lock().unwrap().iter().cloned());

    let store = PostgresStore::connect(&pg, pan).await.unwrap();
    check_store(&store, &approved).await;
    store.close().await;
    assert_verifies(&configs[0]);
    eprintln!(
        "two serve nodes on PostgreSQL: {} approvals ({at_kill} before the kill, {restarted} by the restarted node), {} s",
        approved.len(),
        started.elapsed().as_secs()
    );
    PostgresStore::drop_schema(&url, &schema).await.unwrap();
}

/// Sends one bank purchase per card, each at its own kiosk on its own connection, and gives
/// back what was sent and the connections (never read: the node dies before it answers).
async fn purchases_left_waiting(
    addr: SocketAddr,
    world: &DemoWorld,
) -> (Vec<Answered>, Vec<Framed<TcpStream, FrameCodec>>) {
    let (mut sent, mut conns) = (Vec::new(), Vec::new());
    for (i, card) in world.cards.iter().enumerate() {
        let h = &world.hospitals[0];
        let mut kiosk = Kiosk::new(
            TerminalId::parse(&format!("SK{i:06}")).unwrap(),
            h.id.clone(),
            Some(h.code.clone()),
            &format!("{i:03}"),
        );
        let mut reader = MemoryChannel::new(world.virtual_card(card).unwrap());
        let amount_fen = 1_000 + 11 * i as u64;
        let request = kiosk
            .bank_purchase(card, &mut reader, amount_fen)
            .unwrap()
            .request;
        let sock = TcpStream::connect(addr).await.expect("acquirer port");
        let mut conn = Framed::new(sock, FrameCodec::new(LengthHeader::Binary2));
        conn.send(Frame {
            tpdu: None,
            message: request.clone().into(),
        })
        .await
        .expect("request sent");
        sent.push(Answered {
            bank: card.bank,
            pan: card.pan.expose_digits().to_owned(),
            rrn: field(&request, 37),
            amount_fen,
            code: String::new(),
        });
        conns.push(conn);
    }
    (sent, conns)
}

/// Waits (at most `limit`) until every card's bank balance satisfies `ok(balance, opening)`.
async fn wait_balances(
    world: &DemoWorld,
    banks: &[BankSim],
    opening: &std::collections::HashMap<String, i64>,
    what: &str,
    limit: Duration,
    ok: impl Fn(i64, i64) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let off: Vec<(String, Option<i64>, i64)> = world
            .cards
            .iter()
            .map(|c| {
                let pan = c.pan.expose_digits();
                (pan.to_owned(), banks[c.bank].balance_fen(pan), opening[pan])
            })
            .filter(|(_, now, open)| !now.is_some_and(|n| ok(n, *open)))
            .collect();
        if off.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: cards not there after {limit:?} (balance, opening): {:?}",
            off.iter().map(|(_, n, o)| (n, o)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The window a bank leg opens: the bank booked the 0200, the node dies (SIGKILL) before its
/// decision is stored. Restarted on its folder, the node finds each leg in its bank-leg
/// journal with no decision in the store, declines it `96` and sends the leg's 0420: every
/// bank balance comes back to its opening, the store holds the declines, and `switch verify`
/// passes. (Before the journal, the banks kept the money and the store knew nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_legs_in_flight_when_a_node_is_killed_are_reversed_once_it_restarts() {
    let started = Instant::now();
    let (_dir, world, db, pan, banks, opening, config) = sqlite_node().await;
    let mut ps = Processes::default();
    let (child, addrs) = demo_process::spawn(&mut serve(&config));
    ps.adopt("node", child);
    assert_signed_on(&banks, 1);
    assert_ready(addrs.http).await;

    // The banks book each leg at once and answer 30 s later: every leg is booked and
    // undecided when the node dies.
    for b in &banks {
        b.faults().set_response_delay(Duration::from_secs(30));
    }
    let (sent, conns) = purchases_left_waiting(addrs.acquirer, &world).await;
    wait_balances(
        &world,
        &banks,
        &opening,
        "booked",
        Duration::from_secs(20),
        |now, open| now < open,
    )
    .await;
    ps.kill("node");
    drop(conns);
    for b in &banks {
        b.faults().set_response_delay(Duration::ZERO);
    }

    let (child, _) = demo_process::spawn(&mut serve(&config));
    ps.adopt("node", child);
    wait_balances(
        &world,
        &banks,
        &opening,
        "reversed after the restart",
        Duration::from_secs(30),
        |now, open| now == open,
    )
    .await;
    let status = ps.terminate("node");
    assert!(
        status.success(),
        "SIGTERM ends serve with exit 0: {status:?}"
    );
    assert_verifies(&config);

    use switch::store::Store;
    let store = SqliteStore::open(&SqliteConfig::new(&db), pan)
        .await
        .unwrap();
    for s in &sent {
        let rrn = schemas::domain::Rrn::parse(&s.rrn).unwrap();
        let stored = store.transactions_by_rrn(&rrn).await.unwrap();
        let original = stored
            .iter()
            .find(|t| t.record.original_transaction_id.is_none())
            .unwrap_or_else(|| panic!("no decision stored for {}", s.rrn));
        assert_eq!(
            original.record.response_code.as_str(),
            "96",
            "the leg's intent, declined at the restart"
        );
    }
    for b in &banks {
        assert!(
            b.stats().reversals_applied > 0,
            "bank {} reversed",
            b.institution()
        );
    }
    eprintln!(
        "{} bank legs in flight at a SIGKILL reversed after the restart, {} s",
        sent.len(),
        started.elapsed().as_secs()
    );
}
