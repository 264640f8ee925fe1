//! A switch node in the test's process over a given store (writer, pipeline with no banks,
//! acquirer listener on a free port), and an ISO 8583 client for it: for tests that restart a
//! node on the same database or run two nodes on one.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switch::acquirer::{self, AcquirerListener};
use switch::issuer::gateway::{BankGateway, NoBanks};
use switch::metrics::Metrics;
use switch::pipeline::Pipeline;
use switch::sim::world::DemoWorld;
use switch::store::{writer, Store};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A node over `store`: writer, pipeline, acquirer listener. Stops when the sender is dropped
/// or set.
pub async fn start_node<S: Store>(
    store: &Arc<S>,
    world: &DemoWorld,
) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let (_, addr, stop) = start_node_with_banks(store, world, Arc::new(NoBanks)).await;
    (addr, stop)
}

/// A node over `store` whose bank legs go to `banks`; also returns its pipeline (for
/// housekeeping calls such as releasing expired holds).
pub async fn start_node_with_banks<S: Store>(
    store: &Arc<S>,
    world: &DemoWorld,
    banks: Arc<dyn BankGateway>,
) -> (
    Arc<Pipeline<S>>,
    SocketAddr,
    tokio::sync::watch::Sender<bool>,
) {
    let (w, _task) = writer::spawn(Arc::clone(store), writer::WriterConfig::default());
    let pipeline = Pipeline::new(
        Arc::clone(store),
        w,
        world.hsm.clone(),
        banks,
        world.keys.clone(),
        world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .unwrap();
    let cfg = AcquirerListener::ssc87("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = acquirer::bind(&cfg).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(acquirer::serve(listener, cfg, Arc::clone(&pipeline), rx));
    (pipeline, addr, tx)
}

/// A client connection (2-byte length header).
pub type Conn = Framed<TcpStream, FrameCodec>;

/// Connects to a node.
pub async fn connect(addr: SocketAddr) -> Conn {
    Framed::new(
        TcpStream::connect(addr).await.unwrap(),
        FrameCodec::new(LengthHeader::Binary2),
    )
}

/// Sends `request` and returns the answer (within 10 s).
pub async fn exchange(conn: &mut Conn, request: &[u8]) -> Vec<u8> {
    conn.send(Frame {
        tpdu: None,
        message: request.to_vec().into(),
    })
    .await
    .unwrap();
    let f = tokio::time::timeout(Duration::from_secs(10), conn.next())
        .await
        .expect("answer in time")
        .expect("connection open")
        .expect("frame");
    f.message.to_vec()
}
