//! A TCP proxy in front of PostgreSQL that loses the answer to a COMMIT: armed, it forwards the
//! next COMMIT a client sends to the server, then closes the client's connection before the
//! server's reply reaches it (the server still reads the COMMIT and carries it out; the proxy
//! drains whatever the server answers). The client sees its connection die during COMMIT:
//! the transaction may be committed or not, and only the server knows.
//!
//! It reads the client's half of the frontend/backend protocol (PostgreSQL manual 55.7,
//! "Message Formats"): the startup packet has no type byte (a length, then the protocol
//! version, or the SSLRequest/GSSENCRequest codes, answered with one byte `N`/`S` by the
//! server), every later message is a type byte and a length that counts itself. sqlx commits
//! with a simple Query (`Q`, "COMMIT"); an extended-protocol Parse (`P`) of COMMIT is caught
//! too. Only the COMMIT of a transaction that inserted transaction rows (`INSERT INTO txn`, the
//! switch's group commit, by its text or its prepared statement's name) is cut. Connect with
//! `sslmode=disable` so the stream stays readable.
//!
//! It can also refuse new connections for a while (accept, then close at once): the database
//! then looks down to the client, without touching the server.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy; dropping it stops accepting (open connections run on).
pub struct CommitProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    /// Cut the next COMMIT.
    armed: AtomicBool,
    /// After the cut COMMIT: cut every other connection too and refuse new ones this long
    /// (milliseconds; 0: no blackout).
    blackout_ms: AtomicU64,
    /// Closes every relayed connection but the cut one.
    kill: tokio::sync::broadcast::Sender<()>,
    /// COMMITs forwarded whose answer was cut.
    cut: AtomicU64,
    /// New connections are refused until this instant (milliseconds since `origin`).
    refuse_until_ms: AtomicU64,
    origin: std::sync::OnceLock<Instant>,
}

impl Default for State {
    fn default() -> Self {
        State {
            armed: AtomicBool::new(false),
            blackout_ms: AtomicU64::new(0),
            kill: tokio::sync::broadcast::channel(4).0,
            cut: AtomicU64::new(0),
            refuse_until_ms: AtomicU64::new(0),
            origin: std::sync::OnceLock::new(),
        }
    }
}

impl State {
    fn now_ms(&self) -> u64 {
        let origin = *self.origin.get_or_init(Instant::now);
        u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Drop for CommitProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CommitProxy {
    /// A proxy on a free local port in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> CommitProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        state.now_ms();
        let s = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if s.now_ms() < s.refuse_until_ms.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let s = Arc::clone(&s);
                let mut kill = s.kill.subscribe();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let cut = Arc::new(AtomicBool::new(false));
                        let relayed = relay(client, server, Arc::clone(&s), Arc::clone(&cut));
                        tokio::pin!(relayed);
                        tokio::select! {
                            _ = &mut relayed => {}
                            // The cut connection drains its server on its own.
                            _ = kill.recv() => if cut.load(Ordering::SeqCst) {
                                relayed.await;
                            },
                        }
                    }
                });
            }
        });
        CommitProxy { addr, state, task }
    }

    /// The next COMMIT any client sends is forwarded and its answer lost.
    pub fn arm(&self) {
        self.state.armed.store(true, Ordering::SeqCst);
    }

    /// Like [`CommitProxy::arm`], and the database then looks gone for `blackout`: every
    /// other connection is cut when the COMMIT is, and new ones are refused.
    pub fn arm_with_blackout(&self, blackout: Duration) {
        let ms = u64::try_from(blackout.as_millis()).unwrap_or(u64::MAX);
        self.state.blackout_ms.store(ms, Ordering::SeqCst);
        self.arm();
    }

    /// Still armed (no COMMIT seen since [`CommitProxy::arm`]).
    pub fn armed(&self) -> bool {
        self.state.armed.load(Ordering::SeqCst)
    }

    /// COMMITs whose answer was lost so far.
    pub fn cuts(&self) -> u64 {
        self.state.cut.load(Ordering::SeqCst)
    }

    /// Refuses new connections for `d` from now.
    pub fn refuse_for(&self, d: Duration) {
        let until = self.state.now_ms() + u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.state.refuse_until_ms.store(until, Ordering::SeqCst);
    }
}

/// What the group commit's statement that records transactions contains.
const TXN_INSERT: &str = "INSERT INTO txn (";

/// The first two NUL-terminated strings of a message body (Query: the text; Parse: the
/// statement name and the text; Bind: the portal and the statement name).
fn cstrings(body: &[u8]) -> (String, String) {
    let mut parts = body.split(|&b| b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let first = next();
    (first, next())
}

/// Whether a client message is a COMMIT (`Q` query text, or `P` Parse: a statement name, then
/// the query text).
fn is_commit(kind: u8, body: &[u8]) -> bool {
    let text = match kind {
        b'Q' => body,
        b'P' => match body.iter().position(|&b| b == 0) {
            Some(end) => &body[end + 1..],
            None => return false,
        },
        _ => return false,
    };
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    let text = String::from_utf8_lossy(text);
    let t = text.trim().trim_end_matches(';').trim();
    t.eq_ignore_ascii_case("COMMIT") || t.eq_ignore_ascii_case("END")
}

async fn relay(client: TcpStream, server: TcpStream, state: Arc<State>, cut_here: Arc<AtomicBool>) {
    let (mut client_read, client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (cut_tx, mut cut_rx) = tokio::sync::oneshot::channel::<()>();
    // Server to client, until the client's answer is cut; then the server's answer is drained.
    let back = tokio::spawn(async move {
        let mut client_write = Some(client_write);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                _ = &mut cut_rx, if client_write.is_some() => {
                    client_write = None;
                }
                n = server_read.read(&mut buf) => {
                    let n = match n { Ok(0) | Err(_) => break, Ok(n) => n };
                    if let Some(w) = client_write.as_mut() {
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    // Client to server, message by message.
    let forward = async {
        // The startup packet, after any SSL/GSS request the server declined.
        loop {
            let mut len = [0u8; 4];
            client_read.read_exact(&mut len).await?;
            let n = u32::from_be_bytes(len) as usize;
            let mut body = vec![0u8; n.saturating_sub(4)];
            client_read.read_exact(&mut body).await?;
            server_write.write_all(&len).await?;
            server_write.write_all(&body).await?;
            let code = body
                .get(..4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            // 80877103: SSLRequest, 80877104: GSSENCRequest; another packet follows.
            if !matches!(code, Some(80_877_103 | 80_877_104)) {
                break;
            }
        }
        // The statements (by name) that insert transaction rows, and whether the open
        // transaction ran one: only a group commit's COMMIT is cut.
        let mut txn_statements = std::collections::HashSet::new();
        let mut writes_txn = false;
        loop {
            let mut head = [0u8; 5];
            client_read.read_exact(&mut head).await?;
            let n = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; n.saturating_sub(4)];
            client_read.read_exact(&mut body).await?;
            server_write.write_all(&head).await?;
            server_write.write_all(&body).await?;
            let (first, second) = cstrings(&body);
            match head[0] {
                b'Q' if first.contains(TXN_INSERT) => writes_txn = true,
                b'P' if second.contains(TXN_INSERT) => {
                    txn_statements.insert(first.clone());
                    if first.is_empty() {
                        // The unnamed statement: bound at once.
                        writes_txn = true;
                    }
                }
                b'B' if !second.is_empty() && txn_statements.contains(&second) => {
                    writes_txn = true;
                }
                _ => {}
            }
            let commit = is_commit(head[0], &body);
            let cut = commit && writes_txn && state.armed.swap(false, Ordering::SeqCst);
            if commit {
                writes_txn = false;
            }
            if cut {
                server_write.flush().await?;
                cut_here.store(true, Ordering::SeqCst);
                state.cut.fetch_add(1, Ordering::SeqCst);
                let blackout = state.blackout_ms.swap(0, Ordering::SeqCst);
                if blackout > 0 {
                    state
                        .refuse_until_ms
                        .store(state.now_ms() + blackout, Ordering::SeqCst);
                    let _ = state.kill.send(());
                }
                return Ok::<bool, std::io::Error>(true);
            }
        }
    };
    let cut = matches!(forward.await, Ok(true));
    if cut {
        // The client's connection closes here (both halves dropped); the server keeps its
        // connection until it has answered, as a server whose client vanished does.
        drop(client_read);
        let _ = cut_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), back).await;
        drop(server_write);
    } else {
        drop(server_write);
        let _ = back.await;
    }
}
