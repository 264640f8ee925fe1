//! One pooled connection to the HSM: a writer task that batches queued frames into one write and
//! a reader task that hands each response to the caller waiting on its header.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{in_flight_bound, ClientConfig};
use crate::codec::{split_frame, Response};
use crate::error::HsmError;

pub(super) type Pending = Arc<Mutex<HashMap<Vec<u8>, oneshot::Sender<Response>>>>;

pub(super) struct Conn {
    pub(super) tx: mpsc::Sender<Vec<u8>>,
    pub(super) pending: Pending,
    pub(super) alive: Arc<AtomicBool>,
    pub(super) permits: Arc<Semaphore>,
}

/// Bytes the writer gathers into one write at most (frames queued behind the first one).
const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024;
/// Read buffer of the reader task.
const READ_CHUNK_BYTES: usize = 16 * 1024;

impl Conn {
    pub(super) async fn open(config: &ClientConfig) -> Result<Arc<Conn>, HsmError> {
        let connect = TcpStream::connect(config.addr);
        let stream = tokio::time::timeout(Duration::from_millis(config.timeout_ms), connect)
            .await
            .map_err(|_| HsmError::Unavailable("connect timeout".into()))?
            .map_err(|e| HsmError::Unavailable(format!("connect: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| HsmError::Unavailable(format!("nodelay: {e}")))?;
        match &config.tls {
            None => Ok(Conn::start(stream, config)),
            Some(tls) => {
                let handshake = tls.connector().connect(tls.server_name(), stream);
                let stream =
                    tokio::time::timeout(Duration::from_millis(config.timeout_ms), handshake)
                        .await
                        .map_err(|_| HsmError::Unavailable("TLS handshake timeout".into()))?
                        .map_err(|e| HsmError::Unavailable(format!("TLS: {e}")))?;
                Ok(Conn::start(stream, config))
            }
        }
    }

    /// Start the writer and reader tasks on an open stream.
    fn start<S>(stream: S, config: &ClientConfig) -> Arc<Conn>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel::<Vec<u8>>(config.in_flight_max.max(1));
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(write_frames(wr, rx, Arc::clone(&alive)));
        tokio::spawn(read_responses(
            rd,
            Arc::clone(&pending),
            Arc::clone(&alive),
            config.header_len,
        ));
        Arc::new(Conn {
            tx,
            pending,
            alive,
            permits: Arc::new(Semaphore::new(in_flight_bound(config))),
        })
    }
}

/// Write queued frames, gathering those already waiting into one write.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    alive: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(READ_CHUNK_BYTES);
    while let Some(f) = rx.recv().await {
        batch.extend_from_slice(&f);
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
            if batch.len() > WRITE_BATCH_BYTES_MAX {
                break;
            }
        }
        if wr.write_all(&batch).await.is_err() {
            alive.store(false, Ordering::Release);
            return;
        }
        batch.clear();
    }
}

/// Hand each response to the caller waiting on its header, until the stream ends or carries a
/// malformed frame; then mark the connection dead and wake every waiter with an error.
async fn read_responses<R: AsyncRead + Unpin>(
    mut rd: R,
    pending: Pending,
    alive: Arc<AtomicBool>,
    header_len: usize,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    'read: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used_total = 0;
        loop {
            match split_frame(&buf[used_total..]) {
                Ok(Some((payload, used))) => {
                    if let Ok(resp) = Response::decode(payload, header_len) {
                        let waiter = pending.lock().ok().and_then(|mut m| m.remove(&resp.header));
                        if let Some(w) = waiter {
                            let _ = w.send(resp);
                        }
                    }
                    used_total += used;
                }
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
        buf.drain(..used_total);
    }
    alive.store(false, Ordering::Release);
    if let Ok(mut m) = pending.lock() {
        m.clear(); // dropping the senders wakes every waiter with an error
    }
}
