//! What the kill tests share (crash.rs: one switch killed and restarted; cluster.rs: two nodes
//! and two clearing consumers, one of each killed): waiting for a switch to listen,
//! kiosks that pay bills until stopped and record every approval they receive, and the check
//! that each received approval is durable with its settlement event and its duplicate key.

#![allow(dead_code)]

use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use schemas::domain::{Rrn, TerminalId};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoWorld, DEMO_PIN};
use switch::store::Store;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// The test PostgreSQL (`SWITCH_TEST_PG_URL`, default the local `test` database).
pub fn pg_url() -> String {
    std::env::var("SWITCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A tag no other test run uses at the same time (this process and the clock's nanoseconds),
/// for the names of a test's schemas, topics and groups.
pub fn unique_tag() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

pub async fn wait_listening(addr: SocketAddr) {
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
pub type Cards = Arc<Mutex<HashMap<usize, MemoryChannel>>>;

/// Sends bills until told to stop or the connection dies; records every approval received.
/// Kiosk `k` of `kiosks` uses the cards `k`, `k + kiosks`, …: the kiosks running together never
/// share a card.
pub async fn kiosk_task(
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

/// Kiosks paying bills ([`kiosk_task`]) on the world's cards until stopped, sharing the cards in
/// the cardholders' hands: a test starts them on the nodes it runs, stops them all at once,
/// and may start others (new terminals) after a restart.
pub struct Kiosks {
    world: Arc<DemoWorld>,
    cards: Cards,
    kiosks: usize,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Kiosks {
    /// No kiosk running yet; kiosk `k` of `kiosks` will use the cards `k`, `k + kiosks`, ….
    pub fn new(world: Arc<DemoWorld>, kiosks: usize) -> Self {
        Self {
            world,
            cards: Arc::default(),
            kiosks,
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
        }
    }

    /// Starts kiosk `k` on the acquirer at `addr`, its approvals recorded in `approved` (a
    /// `k` past the kiosks' count is a new terminal, its own RRNs, on the cards of
    /// `k % kiosks`).
    pub fn start(&mut self, k: usize, addr: SocketAddr, approved: &Arc<Mutex<Vec<String>>>) {
        self.tasks.push(tokio::spawn(kiosk_task(
            k,
            self.kiosks,
            addr,
            Arc::clone(&self.world),
            Arc::clone(&self.cards),
            Arc::clone(approved),
            Arc::clone(&self.stop),
        )));
    }

    /// Stops every kiosk and waits for them; kiosks started later run until the next stop.
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.stop = Arc::new(AtomicBool::new(false));
    }
}

/// `switch verify` on the killed switch's store, and every approval in `approved` (RRNs the
/// clients received `00` for) durable with its settlement event in the outbox.
pub async fn check_store<S: Store>(store: &S, approved: &[String]) {
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
        // Its retransmission would be recognised: on SQLite the keys of the last commits
        // before a kill are only in their txn rows, and the store rebuilt them at open.
        let key = t.record.duplicate_key();
        assert_eq!(
            store.find_duplicate(&key).await.unwrap(),
            Some(t.record.transaction_id),
            "duplicate key of {rrn}"
        );
    }
}

/// Waits until `approved` holds `n` approvals, or panics after `limit`.
pub async fn wait_approvals(approved: &Mutex<Vec<String>>, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while approved.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} approvals",
            approved.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
