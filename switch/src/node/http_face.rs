//! The HTTP face's socket: loopback, or any address with TLS; a bounded number of
//! connections, and reads and writes that give up when the peer stalls.
//!
//! Why: the HTTP routes ([`crate::http`], [`crate::operator`]) carry session cookies, CSRF
//! tokens, API keys and passwords, which must not cross a network in clear: without TLS the
//! face binds to loopback only (a reverse proxy on the same host may terminate TLS), with TLS
//! (rustls) to any address. And a client that opens connections and never finishes a request
//! or a TLS handshake, or never reads its answer, must not hold the node's sockets and tasks
//! for ever. axum serves any [`axum::serve::Listener`]: this one takes a connection permit
//! before it accepts (past `connections_max` new clients wait in the kernel's backlog), makes
//! the TLS handshake in a task of its own (bounded by the stall timeout, so one slow client
//! does not hold up the others' accepts) and wraps each connection in [`TimedIo`].

use crate::acquirer::TlsSettings;
use crate::cms::CmsStore;
use crate::http::{self, HttpState};
use crate::operator::caller::PeerAddr;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// The HTTP face's limits.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Most connections open at once.
    pub connections_max: usize,
    /// A read (the next request, or the rest of one) or a write (an answer) that makes no
    /// progress this long closes the connection.
    pub stall_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connections_max: 64,
            stall_timeout: Duration::from_secs(15),
        }
    }
}

/// Why the HTTP face did not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpFaceError {
    /// The address is not a loopback address and there is no TLS.
    #[error(
        "HTTP listen address {0} is not loopback: sessions and API keys must not cross a \
         network in clear, so without TLS ([http] tls_cert and tls_key) the HTTP face binds \
         to 127.0.0.1 or ::1 only"
    )]
    NotLoopback(SocketAddr),
    /// The socket could not be bound.
    #[error("HTTP listener: {0}")]
    Io(#[from] io::Error),
}

/// Refuses an address that is not loopback when there is no TLS (checked before a node starts
/// anything).
pub fn require_loopback_or_tls(addr: SocketAddr, tls: bool) -> Result<(), HttpFaceError> {
    if tls || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(HttpFaceError::NotLoopback(addr))
    }
}

/// Binds `addr` (loopback, or any address with `tls`) and serves the router on it with
/// `limits`; returns the bound address.
pub async fn serve<S: CmsStore>(
    state: HttpState<S>,
    addr: SocketAddr,
    tls: Option<TlsSettings>,
    limits: HttpLimits,
) -> Result<SocketAddr, HttpFaceError> {
    require_loopback_or_tls(addr, tls.is_some())?;
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, tls = tls.is_some(), "HTTP face listening");
    // The API (`http::router`, the OpenAPI document's routes) and the operator console's
    // pages (`/console/...`, HTML over the same handlers) on one listener.
    let state = Arc::new(state);
    let router = crate::console::router::<S>()
        .with_state(Arc::clone(&state))
        .merge(http::router(state));
    let (tx, rx) = tokio::sync::mpsc::channel(limits.connections_max.max(1));
    tokio::spawn(accept_loop(
        listener,
        tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config)),
        Arc::new(Semaphore::new(limits.connections_max.max(1))),
        limits.stall_timeout,
        tx,
    ));
    let listener = BoundedListener { ready: rx, bound };
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<PeerAddr>(),
        )
        .await;
    });
    Ok(bound)
}

/// A connection ready for HTTP: its (maybe TLS) stream and its peer.
type Ready = (TimedIo<HttpStream>, SocketAddr);

/// Accepts connections (a permit each), makes their TLS handshakes in tasks of their own, and
/// hands the ready ones to the server.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    permits: Arc<Semaphore>,
    stall_timeout: Duration,
    ready: tokio::sync::mpsc::Sender<Ready>,
) {
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ready = ready.clone();
        match &tls {
            None => {
                let io = TimedIo::new(HttpStream::Plain(socket), stall_timeout, permit);
                if ready.send((io, peer)).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(socket);
                tokio::spawn(async move {
                    match tokio::time::timeout(stall_timeout, handshake).await {
                        Ok(Ok(stream)) => {
                            let io = HttpStream::Tls(Box::new(stream));
                            let _ = ready
                                .send((TimedIo::new(io, stall_timeout, permit), peer))
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTP TLS handshake"),
                        Err(_) => tracing::debug!(%peer, "HTTP TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, BoundedListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, BoundedListener>) -> Self {
        PeerAddr {
            addr: *stream.remote_addr(),
            client_spki: stream.io().inner.client_spki(),
        }
    }
}

/// The server's side of the accept loop.
struct BoundedListener {
    ready: tokio::sync::mpsc::Receiver<Ready>,
    bound: SocketAddr,
}

impl axum::serve::Listener for BoundedListener {
    type Io = TimedIo<HttpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(r) => r,
            // The accept loop has stopped (the semaphore closed): serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.bound)
    }
}

/// A connection, in clear (loopback) or TLS.
pub enum HttpStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl HttpStream {
    /// The SHA-256 of the SubjectPublicKeyInfo of the client certificate the TLS handshake
    /// verified (a machine client's identity, `operator::machine`), if the client sent one.
    fn client_spki(&self) -> Option<[u8; 32]> {
        match self {
            HttpStream::Plain(_) => None,
            HttpStream::Tls(s) => {
                let leaf = s.get_ref().1.peer_certificates()?.first()?;
                crate::acquirer::spki_sha256(leaf)
            }
        }
    }
}

impl AsyncRead for HttpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            HttpStream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for HttpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            HttpStream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_flush(cx),
            HttpStream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            HttpStream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// A socket whose reads and writes fail with `TimedOut` when they stay pending for
/// `stall_timeout`; it holds its connection permit until dropped.
pub struct TimedIo<T> {
    inner: T,
    stall_timeout: Duration,
    read: Stall,
    write: Stall,
    _permit: OwnedSemaphorePermit,
}

/// The deadline of one direction, armed when it first waits, disarmed on progress.
struct Stall {
    deadline: Pin<Box<Sleep>>,
    armed: bool,
}

impl Stall {
    fn new() -> Self {
        Self {
            deadline: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
        }
    }

    /// After the inner poll: progress disarms; waiting arms (once) and fails when the
    /// deadline passes.
    fn check<R>(
        &mut self,
        polled: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
        timeout: Duration,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.armed = false;
            return polled;
        }
        if !self.armed {
            self.armed = true;
            self.deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + timeout);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP peer stalled",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> TimedIo<T> {
    fn new(inner: T, stall_timeout: Duration, permit: OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            stall_timeout,
            read: Stall::new(),
            write: Stall::new(),
            _permit: permit,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read.check(polled, cx, this.stall_timeout)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.write.check(polled, cx, this.stall_timeout)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.write.check(polled, cx, this.stall_timeout)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.write.check(polled, cx, this.stall_timeout)
    }
}
