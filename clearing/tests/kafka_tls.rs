//! The settlement bus over mutual TLS to the brokers (issue 24; GB/T 22239-2019 level 3,
//! communication transmission), with certificates made at test time.
//!
//! tansu 0.6.0 takes `--cert`/`--key` but never uses them (its broker loop drops the
//! acceptor), so the broker side of the TLS is a terminator written here, in front of a private
//! tansu that advertises the terminator's address: what stunnel or a service mesh's sidecar
//! does in front of a broker. Every byte the clients exchange with the broker crosses it, and it
//! admits only clients with a certificate from the clearing network's CA. The client side is
//! the production code: librdkafka's own TLS (OpenSSL) configured by `KafkaTls`.
//!
//! Needs tansu (built by ops/setup.sh into /var/cache/ssc/tools/bin): the test FAILS without it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clearing::bus::{BusSubscriber, KafkaBus, KafkaConfig, KafkaTls, Outbound, SettlementBus};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// A certificate authority made for this test.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        Self { cert, key }
    }

    fn leaf(&self, name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert, key)
    }
}

fn tansu() -> PathBuf {
    let tools = std::env::var("SSC_TOOLS").unwrap_or_else(|_| "/var/cache/ssc/tools".into());
    let bin = Path::new(&tools).join("bin/tansu");
    assert!(
        bin.exists(),
        "the Kafka TLS test needs tansu at {} (run ops/setup.sh)",
        bin.display()
    );
    bin
}

// The switch's test port helper: a port below the kernel's ephemeral range, which no other
// test's `bind(":0")` can be handed while the broker starts.
#[path = "../../switch/tests/support/ports.rs"]
mod ports;
use ports::free_port;

/// A private tansu on `port`, telling clients to come back through `advertised`.
struct Broker(Child);

impl Broker {
    fn start(port: u16, advertised: &str) -> Self {
        let child = Command::new(tansu())
            .arg("broker")
            .args(["--listener-url", &format!("tcp://127.0.0.1:{port}")])
            .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
            .args(["--storage-engine", "memory://tansu/"])
            .arg("--silent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu listens within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self(child)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The broker's TLS side: admits clients whose certificate comes from `client_ca`, then
/// splices their stream to the broker. Counts the clients it admitted.
async fn terminator(
    server_ca: &Ca,
    client_ca: &Ca,
    upstream: SocketAddr,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let (cert, key) = server_ca.leaf("localhost");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let admitted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&admitted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), Arc::clone(&counter));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let Ok(mut broker) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    });
    (addr, admitted)
}

/// The clearing node's side: the CA it trusts for brokers and its own certificate.
fn client_tls(dir: &Path, trusted: &Ca, issuer: &Ca, name: &str) -> KafkaTls {
    let (cert, key) = issuer.leaf(name);
    let write = |file: &str, pem: String| {
        let p = dir.join(file);
        std::fs::write(&p, pem).unwrap();
        p
    };
    KafkaTls {
        ca_pem: write(&format!("{name}-ca.crt"), trusted.cert.pem()),
        cert_pem: write(&format!("{name}.crt"), cert.pem()),
        key_pem: write(&format!("{name}.key"), key.serialize_pem()),
    }
}

fn config(port: u16, tls: KafkaTls) -> KafkaConfig {
    KafkaConfig {
        publish_timeout_ms: 5_000,
        tls: Some(tls),
        ..KafkaConfig::new(format!("localhost:{port}"))
    }
}

fn messages(topic: &str, n: i64) -> Vec<Outbound> {
    (0..n)
        .map(|i| Outbound {
            topic: topic.to_owned(),
            key: "4101001".into(),
            payload: format!("{{\"n\":{i}}}").into_bytes(),
            source_seq: i,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_a_mutual_tls_link_to_the_brokers_and_strangers_are_refused() {
    let (broker_ca, node_ca) = (Ca::new("broker CA"), Ca::new("clearing nodes CA"));
    let broker_port = free_port();
    let upstream: SocketAddr = format!("127.0.0.1:{broker_port}").parse().unwrap();
    let (tls_addr, admitted) = terminator(&broker_ca, &node_ca, upstream).await;
    let _broker = Broker::start(broker_port, &format!("localhost:{}", tls_addr.port()));
    let dir = tempfile::tempdir().unwrap();

    let good = config(
        tls_addr.port(),
        client_tls(dir.path(), &broker_ca, &node_ca, "clearing-1"),
    );
    let bus = KafkaBus::new(good).unwrap();
    let topic = "tls.settlement.v1";
    bus.ensure_topic(topic, 1).await.unwrap();
    bus.publish(&messages(topic, 50)).await.unwrap();
    let mut subscriber = bus.subscribe("tls-group", &[topic]).unwrap();
    let mut received = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received.len() < 50 && std::time::Instant::now() < deadline {
        let batch = subscriber
            .next_batch(100, Duration::from_secs(1))
            .await
            .unwrap();
        received.extend(batch.into_iter().map(|d| d.payload));
    }
    assert_eq!(received.len(), 50, "every event arrives over TLS");
    assert_eq!(received[49], b"{\"n\":49}".to_vec());
    assert!(admitted.load(Ordering::Relaxed) >= 1);

    // A node whose certificate the brokers' CA list does not hold cannot publish.
    let before = admitted.load(Ordering::Relaxed);
    let stranger = config(
        tls_addr.port(),
        client_tls(dir.path(), &broker_ca, &Ca::new("elsewhere"), "stranger"),
    );
    let refused = KafkaBus::new(stranger)
        .unwrap()
        .publish(&messages(topic, 1))
        .await;
    assert!(
        refused.is_err(),
        "a client certificate from another CA is refused"
    );
    // A node that does not trust the broker's certificate does not talk to it.
    let credulous = config(
        tls_addr.port(),
        client_tls(dir.path(), &Ca::new("not the broker's"), &node_ca, "wary"),
    );
    let refused = KafkaBus::new(credulous)
        .unwrap()
        .publish(&messages(topic, 1))
        .await;
    assert!(refused.is_err(), "a broker from an untrusted CA is refused");
    assert_eq!(
        admitted.load(Ordering::Relaxed),
        before,
        "neither got through the terminator"
    );
}
