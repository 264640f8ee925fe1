//! The bank host's sockets: the accept loop (bounded connections, the mutual-TLS handshake
//! when configured), one task per connection that reads frames and answers each request in its
//! own task (bounded per connection), and the fault knobs applied on the way out.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::{mac, Shared, IN_FLIGHT_PER_CONNECTION_MAX};
use crate::wire::transport::{self, FrameReader, FrameWriter, TransportError};

/// Longest wait for a client's TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(shared.config.connections_max.max(1)));
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    loop {
        tokio::select! {
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() { break; }
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if shared.faults.refuse_connections.load(Ordering::Relaxed) {
                    drop(stream);
                    continue;
                }
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(bank = %shared.config.institution, "connection limit reached");
                    drop(stream);
                    continue;
                };
                shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                connections.retain(|h| !h.is_finished());
                let s = Arc::clone(&shared);
                let rx = shutdown.clone();
                let acceptor = s
                    .config
                    .tls
                    .as_ref()
                    .map(|t| tokio_rustls::TlsAcceptor::from(Arc::clone(&t.config)));
                connections.push(tokio::spawn(async move {
                    let Some(acceptor) = acceptor else {
                        let halves = transport::split(stream, &s.config.framing);
                        serve_connection(s, halves, rx).await;
                        drop(permit);
                        return;
                    };
                    let _ = stream.set_nodelay(true);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let halves = transport::split_stream(tls, &s.config.framing);
                            serve_connection(s, halves, rx).await;
                        }
                        Ok(Err(e)) => tracing::info!(bank = %s.config.institution, error = %e,
                            "TLS handshake refused"),
                        Err(_) => tracing::info!(bank = %s.config.institution,
                            "TLS handshake timed out"),
                    }
                    drop(permit);
                }));
            }
        }
    }
    drop(listener);
    for c in connections {
        c.abort();
        let _ = c.await;
    }
}

/// A connection's reader, writer and writer task ([`transport::split`]).
type Halves = (
    FrameReader,
    FrameWriter,
    JoinHandle<Result<(), TransportError>>,
);

async fn serve_connection(
    shared: Arc<Shared>,
    (mut reader, writer, write_task): Halves,
    mut shutdown: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION_MAX));
    let mut received = 0u64;
    let mut workers = tokio::task::JoinSet::new();
    loop {
        let frame = tokio::select! {
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() { break; }
                continue;
            }
            f = reader.next_message() => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(bank = %shared.config.institution, error = %e, "closing connection");
                break;
            }
        };
        shared.counters.messages.fetch_add(1, Ordering::Relaxed);
        received += 1;
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let s = Arc::clone(&shared);
        let w = writer.clone();
        workers.spawn(async move {
            answer(&s, &frame.message, &w).await;
            drop(permit);
        });
        while workers.try_join_next().is_some() {}
        let close_after = shared.faults.close_after_messages.load(Ordering::Relaxed);
        if close_after > 0 && received >= close_after {
            // Let the answers already being prepared go out, then close.
            while workers.join_next().await.is_some() {}
            break;
        }
    }
    workers.abort_all();
    drop(writer);
    drop(reader);
    write_task.abort();
    let _ = write_task.await;
}

async fn answer(shared: &Arc<Shared>, bytes: &[u8], writer: &FrameWriter) {
    let Some(mut reply) = mac::respond(shared, bytes).await else {
        return;
    };
    let delay = shared.faults.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if shared.faults.drop_responses.load(Ordering::Relaxed) {
        return;
    }
    if shared.faults.garbage_answers.load(Ordering::Relaxed) {
        reply.truncate(reply.len() / 2);
    }
    let _ = writer.send(reply.freeze()).await;
}
