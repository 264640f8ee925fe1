//! One pooled connection to the HSM: a writer task that batches queued frames into one write and
//! a reader task that hands each response to the caller waiting on its header.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(config.in_flight_max.max(1));
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let alive_w = Arc::clone(&alive);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(16 * 1024);
            while let Some(f) = rx.recv().await {
                batch.extend_from_slice(&f);
                while let Ok(more) = rx.try_recv() {
                    batch.extend_from_slice(&more);
                    if batch.len() > 64 * 1024 {
                        break;
                    }
                }
                if wr.write_all(&batch).await.is_err() {
                    alive_w.store(false, Ordering::Release);
                    return;
                }
                batch.clear();
            }
        });
        let pending_r = Arc::clone(&pending);
        let alive_r = Arc::clone(&alive);
        let header_len = config.header_len;
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
            let mut chunk = vec![0u8; 16 * 1024];
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
                                let waiter = pending_r
                                    .lock()
                                    .ok()
                                    .and_then(|mut m| m.remove(&resp.header));
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
            alive_r.store(false, Ordering::Release);
            if let Ok(mut m) = pending_r.lock() {
                m.clear(); // dropping the senders wakes every waiter with an error
            }
        });
        Ok(Arc::new(Conn {
            tx,
            pending,
            alive,
            permits: Arc::new(Semaphore::new(in_flight_bound(config))),
        }))
    }
}
