//! A TCP proxy in front of PostgreSQL that can partition the network: packets silently lost
//! both ways, no RST, every socket left open (a switch port dying, a firewall dropping its
//! state), then heal.
//!
//! Partitioned: every open connection stops being forwarded either way (what was read is
//! lost, nothing is written, nothing is closed); a new connection is accepted and never
//! answered (the client's startup waits, as a SYN that gets no SYN-ACK does).
//!
//! Healed: new connections are forwarded again. The connections the partition caught are dead
//! the way they are after a real partition outlived the path's state (a firewall or NAT that
//! dropped its flow table, a link that came back through another switch): the client's side is
//! reset (RST: its next read or write fails), the server's side is *kept open and silent* until
//! the proxy is dropped, as a server whose client vanished is: it hears nothing, and only its
//! own timers (`idle_in_transaction_session_timeout`, TCP keepalives, `tcp_user_timeout`) end
//! the session and release what its open transaction locked.
//!
//! [`PartitionProxy::partition_during_group_commit`] makes the partition start at the worst
//! moment: right after a client sent the statement that records a group commit's transaction
//! rows (`INSERT INTO txn (`, by its text or its prepared statement's name), so the server holds
//! that transaction open with the batch's rows locked (`FOR UPDATE`), and the client waits for
//! an answer that never comes. The client's half of the frontend/backend protocol is read
//! alongside (PostgreSQL manual 55.7, "Message Formats"; as in `pg_commit_proxy.rs`); whole reads
//! are forwarded, never split, since a client writes a statement's Parse/Bind/Execute/Sync in one
//! go. Connect with `sslmode=disable` so the stream stays readable.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the network does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Forwarding,
    /// Partitioned; connections opened before or during it are dead from now on.
    Partitioned,
}

/// The proxy; dropping it stops accepting and closes every socket it holds.
pub struct PartitionProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    phase: watch::Sender<Phase>,
    /// Partition as soon as a group commit's `INSERT INTO txn` has been forwarded.
    armed: AtomicBool,
    /// When the last partition began.
    partitioned_at: Mutex<Option<Instant>>,
    /// The server's side of every connection the partition caught, kept open and silent.
    orphans: Mutex<Vec<TcpStream>>,
    /// Connections caught by partitions so far (open ones and refused-by-silence new ones).
    caught: AtomicU64,
    /// Connections forwarded so far.
    forwarded: AtomicU64,
}

impl State {
    fn partition(&self) {
        let mut at = self.partitioned_at.lock().expect("lock");
        if *self.phase.borrow() == Phase::Forwarding {
            *at = Some(Instant::now());
            self.phase.send_replace(Phase::Partitioned);
        }
    }
}

impl Drop for PartitionProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Ends every forwarding and waiting task, which closes their sockets.
        self.state.phase.send_replace(Phase::Forwarding);
        self.state.orphans.lock().expect("lock").clear();
    }
}

impl PartitionProxy {
    /// A proxy on a free local port in front of `upstream`, forwarding.
    pub async fn start(upstream: SocketAddr) -> PartitionProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            phase: watch::channel(Phase::Forwarding).0,
            armed: AtomicBool::new(false),
            partitioned_at: Mutex::new(None),
            orphans: Mutex::new(Vec::new()),
            caught: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let s = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    if *s.phase.borrow() == Phase::Partitioned {
                        // Accepted, never answered; reset once the partition heals.
                        s.caught.fetch_add(1, Ordering::SeqCst);
                        wait_healed(&s).await;
                        reset(client);
                        return;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    s.forwarded.fetch_add(1, Ordering::SeqCst);
                    relay(client, server, s).await;
                });
            }
        });
        PartitionProxy { addr, state, task }
    }

    /// Partitions now.
    pub fn partition(&self) {
        self.state.partition();
    }

    /// Partitions right after the next group commit's `INSERT INTO txn` reaches the server.
    pub fn partition_during_group_commit(&self) {
        self.state.armed.store(true, Ordering::SeqCst);
    }

    /// Whether partitioned now.
    pub fn partitioned(&self) -> bool {
        *self.state.phase.borrow() == Phase::Partitioned
    }

    /// When the last partition began.
    pub fn partitioned_at(&self) -> Option<Instant> {
        *self.state.partitioned_at.lock().expect("lock")
    }

    /// Heals: new connections are forwarded; the clients of the connections the partition
    /// caught are reset, their servers' sides kept open and silent.
    pub fn heal(&self) {
        self.state.armed.store(false, Ordering::SeqCst);
        self.state.phase.send_replace(Phase::Forwarding);
    }

    /// Connections the partitions caught (open then, or opened during them).
    pub fn caught(&self) -> u64 {
        self.state.caught.load(Ordering::SeqCst)
    }

    /// Connections forwarded to the server so far.
    pub fn forwarded(&self) -> u64 {
        self.state.forwarded.load(Ordering::SeqCst)
    }
}

async fn wait_healed(s: &State) {
    let mut rx = s.phase.subscribe();
    let _ = rx.wait_for(|p| *p == Phase::Forwarding).await;
}

async fn wait_partitioned(rx: &mut watch::Receiver<Phase>) {
    let _ = rx.wait_for(|p| *p == Phase::Partitioned).await;
}

/// Closes with an RST (linger 0), as a peer that lost the connection's state answers.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Forwards both ways until either side closes or a partition catches the connection; then
/// holds both sides, silent (no half is dropped: that would send a FIN), until healed: the
/// client's is reset, the server's kept.
async fn relay(client: TcpStream, server: TcpStream, s: Arc<State>) {
    if *s.phase.borrow() == Phase::Partitioned {
        s.caught.fetch_add(1, Ordering::SeqCst);
        wait_healed(&s).await;
        reset(client);
        s.orphans.lock().expect("lock").push(server);
        return;
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let to_server = direction(client_read, server_write, Arc::clone(&s), true);
    let to_client = direction(server_read, client_write, Arc::clone(&s), false);
    let ((client_read, server_write, caught), (server_read, client_write, _)) =
        tokio::join!(to_server, to_client);
    if caught {
        s.caught.fetch_add(1, Ordering::SeqCst);
        if let (Ok(client), Ok(server)) = (
            client_read.reunite(client_write),
            server_read.reunite(server_write),
        ) {
            reset(client);
            s.orphans.lock().expect("lock").push(server);
        }
    }
}

/// One direction: forwards until its side closes (then the other direction is told, through
/// `Phase` staying put and the socket closing, and ends on its own read) or a partition comes
/// (then waits for the heal). Gives its halves back, and whether a partition caught it.
async fn direction(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    s: Arc<State>,
    client_to_server: bool,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
    bool,
) {
    let mut rx = s.phase.subscribe();
    let mut watcher = Watcher::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            n = from.read(&mut buf) => n,
            _ = wait_partitioned(&mut rx) => Err(std::io::ErrorKind::Interrupted.into()),
        };
        let partitioned = *s.phase.borrow() == Phase::Partitioned;
        match n {
            _ if partitioned => {
                wait_healed(&s).await;
                return (from, to, true);
            }
            Ok(0) | Err(_) => {
                // Closed: the other side hears of it.
                let _ = to.shutdown().await;
                return (from, to, false);
            }
            Ok(n) => {
                let records = client_to_server && watcher.feed(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    return (from, to, false);
                }
                if records && s.armed.swap(false, Ordering::SeqCst) {
                    let _ = to.flush().await;
                    s.partition();
                }
            }
        }
    }
}

/// Reads the client's messages as they pass, to tell when a group commit records its rows.
#[derive(Default)]
struct Watcher {
    buf: Vec<u8>,
    /// The startup packet (and any SSL/GSS request before it) is behind.
    started: bool,
    /// Prepared statements (by name) that insert transaction rows.
    txn_statements: HashSet<String>,
}

/// What the group commit's statement that records transactions contains.
const TXN_INSERT: &str = "INSERT INTO txn (";

impl Watcher {
    /// Takes the next bytes; whether they completed a message that records transaction rows.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        self.buf.extend_from_slice(bytes);
        let mut records = false;
        loop {
            if !self.started {
                let Some(len) = self.buf.get(..4) else { break };
                let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                if self.buf.len() < n.max(8) {
                    break;
                }
                let code = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
                // 80877103: SSLRequest, 80877104: GSSENCRequest; another packet follows.
                self.started = !matches!(code, 80_877_103 | 80_877_104);
                self.buf.drain(..n.max(8));
                continue;
            }
            let Some(head) = self.buf.get(..5) else { break };
            let kind = head[0];
            let n = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if self.buf.len() < 1 + n {
                break;
            }
            let body: Vec<u8> = self.buf[5..1 + n].to_vec();
            self.buf.drain(..1 + n);
            let mut parts = body.split(|&b| b == 0);
            let mut next =
                || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let (first, second) = (next(), next());
            match kind {
                b'Q' if first.contains(TXN_INSERT) => records = true,
                b'P' if second.contains(TXN_INSERT) => {
                    if first.is_empty() {
                        records = true;
                    } else {
                        self.txn_statements.insert(first);
                    }
                }
                b'B' if self.txn_statements.contains(&second) => records = true,
                _ => {}
            }
        }
        records
    }
}
