//! The acquirer listener with mutual TLS: a client with a certificate from the configured CA
//! is served; a client without one never gets an answer.

use futures_util::{SinkExt, StreamExt};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use schemas::iso8583::{self, Mti};
use std::sync::Arc;
use std::time::Duration;
use switch::acquirer::{self, AcquirerListener, TlsSettings};
use switch::issuer::gateway::NoBanks;
use switch::metrics::Metrics;
use switch::pipeline::Pipeline;
use switch::sim::world::DemoWorld;
use switch::store::{writer, DataKeyPanProtector, SqliteConfig, SqliteStore};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_util::codec::Framed;

struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "acquirer CA");
        let ca = p.self_signed(&ca_key).unwrap();
        Self { ca, ca_key }
    }

    fn leaf(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_clients_with_a_certificate_of_the_ca_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (server_cert, server_key) = pki.leaf("localhost");
    let (client_cert, client_key) = pki.leaf("kiosk-001");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (sc, sk, ca) = (
        write("server.crt", &server_cert),
        write("server.key", &server_key),
        write("ca.crt", &pki.ca.pem()),
    );

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
    let pipeline = Pipeline::new(
        store,
        w,
        world.hsm.clone(),
        Arc::new(NoBanks),
        world.keys.clone(),
        world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .unwrap();
    let mut cfg = AcquirerListener::ssc87("127.0.0.1:0".parse().unwrap()).unwrap();
    cfg.tls = Some(TlsSettings::from_pem_files(&sc, &sk, Some(&ca)).unwrap());
    let listener = acquirer::bind(&cfg).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(acquirer::serve(listener, cfg, pipeline, rx));

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca.der().to_vec()))
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone());
    let client_chain = vec![CertificateDer::from(
        rustls::pki_types::pem::PemObject::from_pem_slice(client_cert.as_bytes())
            .map(|c: CertificateDer<'static>| c.to_vec())
            .unwrap(),
    )];
    let client_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        rustls::pki_types::pem::PemObject::from_pem_slice(client_key.as_bytes())
            .map(|k: PrivatePkcs8KeyDer<'static>| k.secret_pkcs8_der().to_vec())
            .unwrap(),
    ));
    let with_cert = builder
        .with_client_auth_cert(client_chain, client_key)
        .unwrap();
    let without_cert = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let spec = iso8583::spec("ssc87").unwrap();
    let mut echo = spec.message(Mti::new("0800").unwrap());
    echo.set_str(7, "1123101010")
        .unwrap()
        .set_u64(11, 7)
        .unwrap()
        .set_str(70, "301")
        .unwrap();
    let mut wire = Vec::new();
    spec.encode(&echo, &mut wire).unwrap();

    // With a certificate from the CA: answered 0810 / 00.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(with_cert))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut conn = Framed::new(tls, FrameCodec::new(LengthHeader::Binary2));
    conn.send(Frame {
        tpdu: None,
        message: wire.clone().into(),
    })
    .await
    .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let a = spec.decode(&answer.message).unwrap();
    assert_eq!(a.mti().as_str(), "0810");
    assert_eq!(a.get_str(39).unwrap(), "00");

    // Without one: the handshake or the first read fails; no answer ever comes.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let refused = match tokio_rustls::TlsConnector::from(Arc::new(without_cert))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    {
        Err(_) => true,
        Ok(tls) => {
            let mut conn = Framed::new(tls, FrameCodec::new(LengthHeader::Binary2));
            let _ = conn
                .send(Frame {
                    tpdu: None,
                    message: wire.into(),
                })
                .await;
            !matches!(
                tokio::time::timeout(Duration::from_secs(5), conn.next()).await,
                Ok(Some(Ok(_)))
            )
        }
    };
    assert!(refused, "a client without a certificate is not served");
}
