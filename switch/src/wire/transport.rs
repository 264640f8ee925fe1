//! Framed ISO 8583 over one TCP (or TLS) connection, split into a reader and a writer half.
//!
//! Why this exists: an issuer link (and the simulated bank host) keeps many requests in flight
//! on one socket, so reading and writing must be independent tasks. The reader yields whole
//! frames cut by [`FrameCodec`] (length header + optional TPDU); the writer queues already
//! encoded messages and flushes them in batches, so a burst of requests costs one `write`
//! syscall rather than one per message. Any framing error (oversize frame, bad header, short
//! TPDU) is fatal for the connection: the stream position is lost, so the owner drops both
//! halves and the peer sees the connection close (ISO 8583 defines no framing; the 2-byte
//! binary header and the TPDU follow common practice, see `schemas/iso8583/ssc87.md`).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use schemas::iso8583::framing::{
    Frame, FrameCodec, FrameError, LengthHeader, Tpdu, FRAME_LEN_MAX_DEFAULT,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Most encoded messages waiting for the writer task of one connection.
pub const WRITE_QUEUE_MAX: usize = 4096;
/// Most messages the writer feeds to the socket buffer before one flush.
pub const WRITE_BATCH_MAX: usize = 256;

/// How messages are framed on one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// The length header.
    pub header: LengthHeader,
    /// The TPDU sent in front of every message, when the link uses one. Received TPDUs are
    /// accepted as they come (the peer writes its own addresses).
    pub tpdu: Option<Tpdu>,
    /// Largest accepted frame (TPDU + message) in bytes; a larger one closes the connection.
    pub frame_len_max: usize,
}

impl Default for Framing {
    /// `ssc87`'s framing: 2-byte binary length, no TPDU, 8 KiB frames.
    fn default() -> Self {
        Framing {
            header: LengthHeader::Binary2,
            tpdu: None,
            frame_len_max: FRAME_LEN_MAX_DEFAULT,
        }
    }
}

impl Framing {
    /// The codec for this framing.
    pub fn codec(&self) -> FrameCodec {
        let codec = FrameCodec::new(self.header).with_frame_len_max(self.frame_len_max);
        if self.tpdu.is_some() {
            codec.with_tpdu()
        } else {
            codec
        }
    }
}

/// Why a connection failed. After any of these the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer announced a frame larger than the link allows.
    #[error("frame of {len} bytes exceeds the link maximum {max}")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// The link's maximum.
        max: usize,
    },
    /// The byte stream is not framed as configured.
    #[error("framing error: {0}")]
    Framing(FrameError),
    /// The writer task has stopped (connection closed).
    #[error("connection closed")]
    Closed,
    /// The writer's queue is full: the peer does not read fast enough.
    #[error("write queue full")]
    WriteQueueFull,
}

impl From<FrameError> for TransportError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, max } => TransportError::FrameTooLarge { len, max },
            other => TransportError::Framing(other),
        }
    }
}

/// The reading half of a connection, plain TCP or TLS.
type ReadIo = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection, plain TCP or TLS.
type WriteIo = Box<dyn AsyncWrite + Send + Unpin>;

/// The receiving half: yields whole messages (the bytes after header and TPDU).
pub struct FrameReader {
    inner: FramedRead<ReadIo, FrameCodec>,
}

impl FrameReader {
    /// The next message; `Ok(None)` when the peer closed the connection cleanly.
    pub async fn next_message(&mut self) -> Result<Option<Frame>, TransportError> {
        match self.inner.next().await {
            None => Ok(None),
            Some(Ok(frame)) => Ok(Some(frame)),
            Some(Err(e)) => Err(e.into()),
        }
    }
}

/// The sending half: a handle to the connection's writer task. Cheap to clone.
#[derive(Clone)]
pub struct FrameWriter {
    queue: mpsc::Sender<Bytes>,
}

impl FrameWriter {
    /// Queues one encoded message without waiting; fails when the queue is full or closed.
    pub fn try_send(&self, message: Bytes) -> Result<(), TransportError> {
        self.queue.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TransportError::WriteQueueFull,
            mpsc::error::TrySendError::Closed(_) => TransportError::Closed,
        })
    }

    /// Queues one encoded message, waiting for room.
    pub async fn send(&self, message: Bytes) -> Result<(), TransportError> {
        self.queue
            .send(message)
            .await
            .map_err(|_| TransportError::Closed)
    }

    /// True once the writer task has stopped.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
}

/// Splits a connected socket into a reader and a writer; the writer task runs until every
/// [`FrameWriter`] clone is dropped or the socket fails. Its handle reports why it ended.
pub fn split(
    stream: TcpStream,
    framing: &Framing,
) -> (
    FrameReader,
    FrameWriter,
    tokio::task::JoinHandle<Result<(), TransportError>>,
) {
    // Small request/response messages: do not wait for more data before sending (Nagle).
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    split_halves(Box::new(read), Box::new(write), framing)
}

/// [`split`] for any connected stream, such as a TLS session over a TCP socket (set
/// `TCP_NODELAY` on the socket before the handshake).
pub fn split_stream<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    framing: &Framing,
) -> (
    FrameReader,
    FrameWriter,
    tokio::task::JoinHandle<Result<(), TransportError>>,
) {
    let (read, write) = tokio::io::split(stream);
    split_halves(Box::new(read), Box::new(write), framing)
}

fn split_halves(
    read: ReadIo,
    write: WriteIo,
    framing: &Framing,
) -> (
    FrameReader,
    FrameWriter,
    tokio::task::JoinHandle<Result<(), TransportError>>,
) {
    let reader = FrameReader {
        inner: FramedRead::new(read, framing.codec()),
    };
    let (tx, rx) = mpsc::channel(WRITE_QUEUE_MAX);
    let sink = FramedWrite::new(write, framing.codec());
    let task = tokio::spawn(write_loop(sink, rx, framing.tpdu));
    (reader, FrameWriter { queue: tx }, task)
}

/// Feeds queued messages to the socket, flushing once per batch.
async fn write_loop(
    mut sink: FramedWrite<WriteIo, FrameCodec>,
    mut rx: mpsc::Receiver<Bytes>,
    tpdu: Option<Tpdu>,
) -> Result<(), TransportError> {
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    loop {
        if rx.recv_many(&mut batch, WRITE_BATCH_MAX).await == 0 {
            // Every writer handle is gone: close our side.
            let _ = sink.close().await;
            return Ok(());
        }
        for message in batch.drain(..) {
            sink.feed(Frame { tpdu, message }).await?;
        }
        sink.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    #[tokio::test]
    async fn messages_round_trip_with_a_tpdu() {
        let (a, b) = pair().await;
        let framing = Framing {
            tpdu: Some(Tpdu([0x60, 0, 1, 0, 2])),
            ..Framing::default()
        };
        let (_ra, wa, _ta) = split(a, &framing);
        let (mut rb, _wb, _tb) = split(b, &framing);
        for i in 0..10u8 {
            wa.send(Bytes::from(vec![b'0' + i; 20]))
                .await
                .expect("send");
        }
        for i in 0..10u8 {
            let f = rb.next_message().await.expect("read").expect("frame");
            assert_eq!(f.tpdu, Some(Tpdu([0x60, 0, 1, 0, 2])));
            assert_eq!(&f.message[..], &vec![b'0' + i; 20][..]);
        }
    }

    #[tokio::test]
    async fn an_oversize_frame_is_an_error_before_it_is_read() {
        let (mut a, b) = pair().await;
        let framing = Framing {
            frame_len_max: 100,
            ..Framing::default()
        };
        let (mut rb, _wb, _tb) = split(b, &framing);
        a.write_all(&[0x00, 0x65]).await.expect("write");
        match rb.next_message().await {
            Err(TransportError::FrameTooLarge { len: 101, max: 100 }) => {}
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        // Dropping both halves closes the socket: the peer reads end-of-stream.
        drop(rb);
        drop(_wb);
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), a.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
