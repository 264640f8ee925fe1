//! The HTTP face's socket: loopback only, a bounded number of connections, and reads and
//! writes that give up when the peer stalls.
//!
//! Why: the HTTP routes ([`crate::http`]) have no authentication yet (the operator API will
//! bring it), so they must not be reachable from the network; and a client that opens
//! connections and never finishes a request, or never reads its answer, must not hold the
//! node's sockets and tasks for ever. axum serves any [`axum::serve::Listener`]: this one takes
//! a connection permit before it accepts (past `connections_max` new clients wait in the
//! kernel's backlog) and wraps each socket in [`TimedIo`].

use crate::http::{self, HttpState};
use crate::store::Store;
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
    /// The address is not a loopback address.
    #[error(
        "HTTP listen address {0} is not loopback: the HTTP routes have no authentication yet \
         (until the operator API lands), so they bind to 127.0.0.1 or ::1 only"
    )]
    NotLoopback(SocketAddr),
    /// The socket could not be bound.
    #[error("HTTP listener: {0}")]
    Io(#[from] io::Error),
}

/// Refuses an address that is not loopback (checked before a node starts anything).
pub fn require_loopback(addr: SocketAddr) -> Result<(), HttpFaceError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(HttpFaceError::NotLoopback(addr))
    }
}

/// Binds `addr` (loopback only) and serves the router on it with `limits`; returns the bound
/// address.
pub async fn serve<S: Store>(
    state: HttpState<S>,
    addr: SocketAddr,
    limits: HttpLimits,
) -> Result<SocketAddr, HttpFaceError> {
    require_loopback(addr)?;
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::warn!(
        %bound,
        "HTTP face on loopback only: its routes have no authentication until the operator API"
    );
    let router = http::router(Arc::new(state));
    let listener = BoundedListener {
        inner: listener,
        permits: Arc::new(Semaphore::new(limits.connections_max.max(1))),
        stall_timeout: limits.stall_timeout,
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(bound)
}

/// A TCP listener that holds a permit per open connection.
struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    stall_timeout: Duration,
}

impl axum::serve::Listener for BoundedListener {
    type Io = TimedIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                // The semaphore is never closed; wait rather than spin.
                std::future::pending::<()>().await;
                continue;
            };
            match self.inner.accept().await {
                Ok((socket, peer)) => {
                    return (TimedIo::new(socket, self.stall_timeout, permit), peer);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
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
