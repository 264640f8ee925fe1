//! Listeners cannot be tied up (issue 24, finding 7): a client that never reads its answers
//! loses its connection, a TLS client that never finishes its handshake is dropped, requests
//! past the node's in-flight cap are answered 91 at once, and the HTTP face binds to loopback
//! only, closes stalled connections and serves a bounded number of them.

use futures_util::{SinkExt, StreamExt};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use schemas::iso8583::{self, Mti};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switch::acquirer::{self, open_connections, AcquirerListener, InFlightCap, TlsSettings};
use switch::http::HttpState;
use switch::issuer::gateway::NoBanks;
use switch::metrics::Metrics;
use switch::node::http_face::{self, HttpFaceError, HttpLimits};
use switch::pipeline::Pipeline;
use switch::sim::world::DemoWorld;
use switch::store::{writer, DataKeyPanProtector, SqliteConfig, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

struct Switch {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    pipeline: Arc<Pipeline<SqliteStore>>,
    metrics: Arc<Metrics>,
}

async fn switch() -> Switch {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("s.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .unwrap(),
    );
    let mut world = DemoWorld::new(1).unwrap();
    world.seed(&*store).await.unwrap();
    let (w, _t) = writer::spawn(Arc::clone(&store), writer::WriterConfig::default());
    let metrics = Arc::new(Metrics::default());
    let pipeline = Pipeline::new(
        Arc::clone(&store),
        w,
        world.hsm.clone(),
        Arc::new(NoBanks),
        world.keys.clone(),
        world.cfg.clone(),
        Arc::clone(&metrics),
    )
    .await
    .unwrap();
    Switch {
        _dir: dir,
        store,
        pipeline,
        metrics,
    }
}

/// Serves `cfg` on a port of its own; returns the address.
async fn listen(s: &Switch, cfg: AcquirerListener) -> SocketAddr {
    let listener = acquirer::bind(&cfg).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    tokio::spawn(acquirer::serve(listener, cfg, Arc::clone(&s.pipeline), rx));
    addr
}

fn local() -> AcquirerListener {
    AcquirerListener::ssc87("127.0.0.1:0".parse().unwrap()).unwrap()
}

/// A network echo (0800, 70 = 301) on the wire.
fn echo(stan: u64) -> Vec<u8> {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0800").unwrap());
    m.set_str(7, "1123101010")
        .unwrap()
        .set_u64(11, stan % 1_000_000)
        .unwrap()
        .set_str(70, "301")
        .unwrap();
    let mut wire = Vec::new();
    spec.encode(&m, &mut wire).unwrap();
    wire
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_loses_its_connection() {
    let s = switch().await;
    let mut cfg = local();
    cfg.in_flight_per_connection_max = 4;
    cfg.write_timeout = Duration::from_millis(300);
    // Small kernel buffers on both ends, so the switch's writes stall after a few hundred
    // answers whatever the machine's `tcp_wmem` autotuning allows.
    cfg.send_buffer_bytes = Some(4096);
    let addr = listen(&s, cfg).await;

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (_rd, mut wr) = stream.into_split();
    // Sends echoes for ever and never reads: the switch's answers pile up in the socket.
    let flood = tokio::spawn(async move {
        let mut frame = Vec::new();
        for stan in 1.. {
            let m = echo(stan);
            frame.clear();
            frame.extend_from_slice(&u16::try_from(m.len()).unwrap().to_be_bytes());
            frame.extend_from_slice(&m);
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    wait_until("the connection opens", Duration::from_secs(5), || {
        open_connections(&s.metrics) == 1
    })
    .await;
    wait_until(
        "the stalled connection is closed",
        // Generous: the socket buffers (a few KiB) must fill first.
        Duration::from_secs(60),
        || open_connections(&s.metrics) == 0,
    )
    .await;
    flood.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_never_finishes_its_handshake_is_dropped() {
    let s = switch().await;
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.path().join("s.crt"), dir.path().join("s.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let mut cfg = local();
    cfg.tls =
        Some(TlsSettings::from_pem_files(c.to_str().unwrap(), k.to_str().unwrap(), None).unwrap());
    cfg.handshake_timeout = Duration::from_millis(300);
    let addr = listen(&s, cfg).await;

    // Connects and says nothing.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the switch closes a connection whose handshake does not come: {read:?}"
    );
    wait_until("the connection is released", Duration::from_secs(5), || {
        open_connections(&s.metrics) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_nodes_in_flight_cap_are_answered_91_at_once() {
    let s = switch().await;
    let mut cfg = local();
    // A full cap: no permit left for anyone.
    cfg.in_flight = InFlightCap::new(0);
    let addr = listen(&s, cfg).await;
    let mut conn = Framed::new(
        TcpStream::connect(addr).await.unwrap(),
        FrameCodec::new(LengthHeader::Binary2),
    );
    conn.send(Frame {
        tpdu: None,
        message: echo(7).into(),
    })
    .await
    .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .expect("an answer at once")
        .expect("a frame")
        .unwrap();
    let spec = iso8583::spec("ssc87").unwrap();
    let a = spec.decode_unchecked(&answer.message).unwrap();
    assert_eq!(a.mti().as_str(), "0810");
    assert_eq!(a.get_str(39).unwrap(), "91");
    assert_eq!(a.get_str(11).unwrap(), "000007");
}

fn http_state(s: &Switch) -> HttpState<SqliteStore> {
    let (w, _t) = writer::spawn(Arc::clone(&s.store), writer::WriterConfig::default());
    HttpState {
        store: Arc::clone(&s.store),
        writer: w,
        metrics: Arc::clone(&s.metrics),
        links: None,
        operator: Arc::new(switch::operator::OperatorContext::for_tests()),
        cms: None,
        clearing: None,
        cutover: None,
    }
}

async fn health(addr: SocketAddr) -> Option<String> {
    let mut c = TcpStream::connect(addr).await.ok()?;
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_face_refuses_an_address_that_is_not_loopback() {
    let s = switch().await;
    let err = http_face::serve(
        http_state(&s),
        "0.0.0.0:0".parse().unwrap(),
        None,
        HttpLimits::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HttpFaceError::NotLoopback(_)), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_face_closes_stalled_connections_and_serves_a_bounded_number() {
    let s = switch().await;
    let limits = HttpLimits {
        connections_max: 2,
        stall_timeout: Duration::from_millis(500),
    };
    let addr = http_face::serve(http_state(&s), "127.0.0.1:0".parse().unwrap(), None, limits)
        .await
        .unwrap();
    assert!(health(addr).await.unwrap().starts_with("HTTP/1.1 200"));

    // Two clients that send half a request and stop hold every connection...
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so a third waits...
    assert!(
        tokio::time::timeout(Duration::from_millis(200), health(addr))
            .await
            .is_err(),
        "a third connection is not served while two are open"
    );
    // ...until the stalled ones are closed by the switch.
    for c in &mut stalled {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(_) | Err(_))),
            "a stalled connection is closed"
        );
    }
    let served = tokio::time::timeout(Duration::from_secs(10), health(addr))
        .await
        .expect("served once the stalled connections are gone");
    assert!(served.unwrap().starts_with("HTTP/1.1 200"));
}

/// With TLS the HTTP face binds to an address that is not loopback, and serves over TLS only:
/// a client in clear gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_face_binds_any_address_with_tls_and_speaks_only_tls() {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    let s = switch().await;
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let tls = TlsSettings::from_pem_files(
        cert_path.to_str().unwrap(),
        key_path.to_str().unwrap(),
        None,
    )
    .unwrap();
    let addr = http_face::serve(
        http_state(&s),
        "0.0.0.0:0".parse().unwrap(),
        Some(tls),
        HttpLimits {
            connections_max: 4,
            stall_timeout: Duration::from_millis(500),
        },
    )
    .await
    .expect("any address with TLS");
    let local: SocketAddr = format!("127.0.0.1:{}", addr.port()).parse().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.der().to_vec()))
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(local).await.unwrap();
    let mut conn = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.ok();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");

    // In clear: no HTTP answer (the handshake fails, then the stall timeout closes it).
    let clear = tokio::time::timeout(Duration::from_secs(5), health(local))
        .await
        .expect("closed, not hung");
    assert!(
        !clear.unwrap_or_default().starts_with("HTTP/1.1 200"),
        "no answer in clear"
    );
}
