//! The listener and its connections: accept (bounded), optional TLS handshake (timed), then
//! per connection a frame reader, a request task per frame and one batching writer of answers
//! (timed: a client that stops reading its answers loses its connection, not the tasks
//! behind it). Every request also takes a permit of the node's [`InFlightCap`].

use super::TlsSettings;
use crate::metrics::Metrics;
use crate::pipeline::{AcquirerIdentity, LinkContext, Pipeline, Reply};
use crate::store::Store;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

/// One acquirer listener.
#[derive(Debug, Clone)]
pub struct AcquirerListener {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Dialect, who is on the connections, and whether the channel is MAC-free. With a
    /// client-certificate mapping (`tls.client_institutions`) each connection is instead the
    /// institution its certificate proves.
    pub link: LinkContext,
    /// Length header.
    pub header: LengthHeader,
    /// Whether frames carry a TPDU.
    pub tpdu: bool,
    /// Largest frame accepted.
    pub frame_len_max: usize,
    /// Most connections at once.
    pub connections_max: usize,
    /// Most requests in flight per connection.
    pub in_flight_per_connection_max: usize,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// A TLS handshake not finished this long after the connection was accepted is dropped.
    pub handshake_timeout: Duration,
    /// A write of answers that makes no progress this long closes the connection (the client
    /// stopped reading).
    pub write_timeout: Duration,
    /// The kernel's send buffer of each connection (`SO_SNDBUF`), when set: bounds the answers
    /// a client that stopped reading can leave queued in the kernel (and so how soon
    /// `write_timeout` notices it); absent, the kernel's autotuning (up to `tcp_wmem`'s max).
    pub send_buffer_bytes: Option<usize>,
    /// Requests in flight across connections (shared by every listener of a node).
    pub in_flight: InFlightCap,
    /// TLS, when configured.
    pub tls: Option<TlsSettings>,
}

/// Requests in flight across every connection (and every listener holding a clone): past it,
/// a request is answered at once with 91 (switch unavailable) instead of being processed, so
/// a flood on many connections cannot queue unbounded work behind the pipeline.
///
/// A try-acquire on a semaphore: one atomic operation on the hot path.
#[derive(Debug, Clone)]
pub struct InFlightCap(Arc<Semaphore>);

impl InFlightCap {
    /// Default of [`AcquirerListener::ssc87`].
    pub const REQUESTS_MAX_DEFAULT: usize = 4096;

    /// At most `requests_max` requests in flight.
    pub fn new(requests_max: usize) -> Self {
        Self(Arc::new(Semaphore::new(requests_max)))
    }

    fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.0).try_acquire_owned().ok()
    }
}

impl AcquirerListener {
    /// Defaults: ssc87, 2-byte binary length, 8 KiB frames, shared by institutions that each
    /// prove themselves with a MAC.
    pub fn ssc87(listen: SocketAddr) -> Result<Self, schemas::iso8583::SpecError> {
        Ok(Self {
            listen,
            link: LinkContext::shared(schemas::iso8583::spec("ssc87")?),
            header: LengthHeader::Binary2,
            tpdu: false,
            frame_len_max: schemas::iso8583::framing::FRAME_LEN_MAX_DEFAULT,
            connections_max: 10_000,
            in_flight_per_connection_max: 256,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            send_buffer_bytes: None,
            in_flight: InFlightCap::new(InFlightCap::REQUESTS_MAX_DEFAULT),
            tls: None,
        })
    }

    fn codec(&self) -> FrameCodec {
        let c = FrameCodec::new(self.header).with_frame_len_max(self.frame_len_max);
        if self.tpdu {
            c.with_tpdu()
        } else {
            c
        }
    }
}

/// Binds the listener (so callers know the port before serving).
pub async fn bind(cfg: &AcquirerListener) -> std::io::Result<TcpListener> {
    TcpListener::bind(cfg.listen).await
}

/// Serves connections until `shutdown` turns true.
pub async fn serve<S: Store>(
    listener: TcpListener,
    cfg: AcquirerListener,
    pipeline: Arc<Pipeline<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = Arc::new(cfg);
    let connections = Arc::new(Semaphore::new(cfg.connections_max));
    let acceptor = cfg
        .tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(Arc::clone(&t.config)));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached, closing");
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        if let Some(bytes) = cfg.send_buffer_bytes {
            if let Err(e) = socket2::SockRef::from(&socket).set_send_buffer_size(bytes) {
                tracing::warn!(%peer, error = %e, "SO_SNDBUF not set");
            }
        }
        let metrics = Arc::clone(pipeline.metrics());
        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let (pipeline, cfg, shutdown) = (Arc::clone(&pipeline), Arc::clone(&cfg), shutdown.clone());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(cfg.handshake_timeout, acceptor.accept(socket)).await
                    {
                        Ok(Ok(tls)) => match connection_link(&cfg, tls.get_ref().1) {
                            Some(link) => {
                                connection(tls, peer, &cfg, link, pipeline, shutdown).await
                            }
                            None => tracing::warn!(
                                %peer,
                                "client certificate maps to no institution, closing"
                            ),
                        },
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }
                None => {
                    let link = cfg.link.clone();
                    connection(socket, peer, &cfg, link, pipeline, shutdown).await
                }
            }
            metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Who is on a TLS connection: with a client-certificate mapping, the institution of the
/// client's certificate (`None`: it maps to none, which the handshake already refuses);
/// otherwise the listener's.
fn connection_link(
    cfg: &AcquirerListener,
    tls: &tokio_rustls::rustls::ServerConnection,
) -> Option<LinkContext> {
    let Some(map) = cfg
        .tls
        .as_ref()
        .and_then(|t| t.client_institutions.as_ref())
    else {
        return Some(cfg.link.clone());
    };
    let certificate = tls.peer_certificates()?.first()?;
    let institution = map.institution_of(certificate)?;
    Some(LinkContext {
        identity: AcquirerIdentity::Fixed(institution.clone()),
        ..cfg.link.clone()
    })
}

async fn connection<S: Store, T: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
    stream: T,
    peer: SocketAddr,
    cfg: &AcquirerListener,
    link: LinkContext,
    pipeline: Arc<Pipeline<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (rd, wr) = tokio::io::split(stream);
    let mut frames = FramedRead::new(rd, cfg.codec());
    let sink = FramedWrite::new(wr, cfg.codec());
    let bound = cfg.in_flight_per_connection_max.max(1);
    let (tx, rx) = mpsc::channel::<Option<Frame>>(bound);
    let in_flight = Arc::new(Semaphore::new(bound));
    let close = Arc::new(tokio::sync::Notify::new());
    let writer = tokio::spawn(write_answers(
        sink,
        rx,
        bound,
        cfg.write_timeout,
        peer,
        Arc::clone(&close),
    ));
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(cfg.idle_timeout, frames.next()) => n,
            _ = shutdown.changed() => break,
            _ = close.notified() => break,
        };
        let frame = match next {
            Err(_) => {
                tracing::info!(%peer, "idle connection closed");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::info!(%peer, error = %e, "bad frame, closing connection");
                pipeline.metrics().malformed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let Some(node_permit) = cfg.in_flight.try_take() else {
            if let Some(out) = busy_answer(&frame, cfg.link.spec, pipeline.metrics()) {
                let _ = tx.send(Some(out)).await;
            }
            drop(permit);
            continue;
        };
        let (pipeline, tx, link) = (Arc::clone(&pipeline), tx.clone(), link.clone());
        let close = Arc::clone(&close);
        tokio::spawn(async move {
            // Boxed: the pipeline's future is about 8 KiB, and a task that holds it inline is
            // copied whole when spawned and again when its stage is set on completion (perf:
            // tokio's `Cell::new` and `set_stage` memmoves). Boxed, only the pointer moves.
            let reply = Box::pin(pipeline.process(&frame.message, &link)).await;
            drop(node_permit);
            let out = match reply {
                Reply::Send(bytes) => Some(Frame {
                    tpdu: frame.tpdu.map(|t| t.reply()),
                    message: Bytes::from(bytes),
                }),
                Reply::Nothing => {
                    drop(permit);
                    return;
                }
                Reply::Close => {
                    tracing::info!("unreadable request, closing connection");
                    close.notify_one();
                    None
                }
            };
            let _ = tx.send(out).await;
            drop(permit);
        });
    }
    // Let requests in flight finish and their answers go out, then close.
    let _ = in_flight.acquire_many(bound as u32).await;
    let _ = tx.send(None).await;
    drop(tx);
    let _ = writer.await;
}

/// The connection's writer: answers ready together go out in one write (feed them all, flush
/// once). A write that makes no progress for `write_timeout` ends the writer (its receiver
/// dropped, the request tasks' sends fail at once) and asks the reader to close the connection.
/// `None` in the queue is the reader's last word: close the sink and end.
async fn write_answers<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, FrameCodec>,
    mut rx: mpsc::Receiver<Option<Frame>>,
    bound: usize,
    write_timeout: Duration,
    peer: SocketAddr,
    close: Arc<tokio::sync::Notify>,
) {
    let mut ready = Vec::with_capacity(bound);
    'write: while rx.recv_many(&mut ready, bound).await > 0 {
        for item in ready.drain(..) {
            let Some(frame) = item else { break 'write };
            if !matches!(
                tokio::time::timeout(write_timeout, sink.feed(frame)).await,
                Ok(Ok(()))
            ) {
                tracing::info!(%peer, "answers not written in time, closing connection");
                close.notify_one();
                return;
            }
        }
        if !matches!(
            tokio::time::timeout(write_timeout, sink.flush()).await,
            Ok(Ok(()))
        ) {
            tracing::info!(%peer, "answers not written in time, closing connection");
            close.notify_one();
            return;
        }
    }
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
}

/// The answer to a request refused because the node's [`InFlightCap`] is full: the request's
/// echo with field 39 = 91 (switch unavailable; the acquirer may retry), or nothing when the
/// frame is not a readable request.
fn busy_answer(
    frame: &Frame,
    spec: &'static schemas::iso8583::Spec,
    metrics: &Metrics,
) -> Option<Frame> {
    let code = schemas::domain::ResponseCode::IssuerUnavailable;
    let request = spec.decode_unchecked(&frame.message).ok()?;
    if !request.mti().is_request() {
        return None;
    }
    let mut answer = request.to_response().ok()?;
    answer.set_str(39, code.as_str()).ok()?;
    let mut out = Vec::with_capacity(128);
    spec.encode_unchecked(&answer, &mut out).ok()?;
    metrics.count_response("busy", code.as_str());
    Some(Frame {
        tpdu: frame.tpdu.map(|t| t.reply()),
        message: Bytes::from(out),
    })
}

/// Shared by tests and the demo: how many acquirer connections are open.
pub fn open_connections(metrics: &Metrics) -> u64 {
    metrics.connections_open.load(Ordering::Relaxed)
}
