//! kill -9 of the switch under load, then restart: every approval a client received is in the
//! store with its outbox event, and the restarted switch serves again.

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
use switch::store::{DataKeyPanProtector, SqliteConfig, SqliteStore, Store};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const CARDS_PER_BANK: usize = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_switch(dir: &Path, acquirer: u16, http: u16, banks: u16, keep: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switch"));
    cmd.args(["demo", "--no-traffic", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{acquirer}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--bank-port-base", &banks.to_string()])
        .args(["--cards-per-bank", &CARDS_PER_BANK.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
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
/// Kiosk `k` uses the cards `k`, `k + 4`, …: the kiosks running together never share a card.
async fn kiosk_task(
    k: usize,
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
        let idx = (k + 4 * n) % world.cards.len();
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

/// `switch verify` on the killed switch's store: whatever the kill cut, the store's invariants
/// hold (balances equal their journals, every approval has its event, the outbox has no gap).
async fn assert_consistent(dir: &Path) {
    let store = SqliteStore::open(
        &SqliteConfig::new(dir.join("switch.db")),
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .unwrap();
    let report = store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_approval_received_survives_a_kill_9_and_the_switch_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let (acq, http, banks) = (free_port(), free_port(), 20_000 + free_port() % 20_000);
    let addr: SocketAddr = format!("127.0.0.1:{acq}").parse().unwrap();
    let mut child = start_switch(dir.path(), acq, http, banks, false);
    wait_listening(addr).await;

    let world = Arc::new(DemoWorld::new(CARDS_PER_BANK).unwrap());
    let cards: Cards = Arc::default();
    let approved = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|k| {
            tokio::spawn(kiosk_task(
                k,
                addr,
                Arc::clone(&world),
                Arc::clone(&cards),
                Arc::clone(&approved),
                Arc::clone(&stop),
            ))
        })
        .collect();
    // Kill while requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while approved.lock().unwrap().len() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let approved: Vec<String> = approved.lock().unwrap().clone();
    assert!(approved.len() >= 40, "load ran before the kill");
    assert_consistent(dir.path()).await;

    // Restart on the same data; it must serve again.
    let mut child = start_switch(dir.path(), acq, http, banks, true);
    wait_listening(addr).await;
    let after = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let t = tokio::spawn(kiosk_task(
        9,
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

    assert_consistent(dir.path()).await;
    // Every approval the clients saw is durable, with its settlement event in the outbox.
    let store = SqliteStore::open(
        &SqliteConfig::new(dir.path().join("switch.db")),
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .unwrap();
    let outbox: std::collections::HashSet<uuid::Uuid> = store
        .outbox_after(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.event_id)
        .collect();
    for rrn in &approved {
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
