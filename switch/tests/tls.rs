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
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_util::codec::Framed;

#[path = "support/test_pki.rs"]
mod test_pki;

use test_pki::Ca;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_clients_with_a_certificate_of_the_ca_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Ca::new("acquirer CA");
    let (server_cert, server_key) = pki.leaf_pem("localhost");
    let (client_cert, client_key) = pki.leaf_pem("kiosk-001");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (sc, sk, ca) = (
        write("server.crt", &server_cert),
        write("server.key", &server_key),
        write("ca.crt", &pki.pem()),
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
        .add(CertificateDer::from(pki.cert.der().to_vec()))
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

/// A TLS client configuration trusting `ca` and showing `cert`/`key` (PEM).
fn client_config(ca: &rcgen::Certificate, cert: &str, key: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap()
}

type TlsConn = Framed<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, FrameCodec>;

/// Connects with `config`; `None` when the handshake fails.
async fn tls_connect(addr: std::net::SocketAddr, config: rustls::ClientConfig) -> Option<TlsConn> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()?;
    Some(Framed::new(tls, FrameCodec::new(LengthHeader::Binary2)))
}

/// Field 39 of the answer to `wire`, or `None` when no answer comes.
async fn code_over(conn: &mut TlsConn, wire: &[u8]) -> Option<String> {
    conn.send(Frame {
        tpdu: None,
        message: wire.to_vec().into(),
    })
    .await
    .ok()?;
    let answer = tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .ok()??
        .ok()?;
    let spec = iso8583::spec("ssc87").unwrap();
    let a = spec.decode_unchecked(&answer.message).ok()?;
    Some(a.get_str(39).ok()?.into_owned())
}

/// Issue 24, finding 1 (mutual TLS): a client certificate mapped to hospital A makes its
/// connection hospital A's. A request naming hospital B on it is declined 03 and audited,
/// even with B's genuine MAC (B's key leaked to A, or A replaying B's traffic); so is a job
/// centre's benefit credit. A certificate of the same CA that maps to no institution fails
/// the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_the_institution_it_maps_to_and_an_unmapped_one_is_refused() {
    use switch::acquirer::ClientInstitutions;
    use switch::sim::kiosk::Kiosk;
    use switch::sim::world::JOB_CENTRE_ID;
    use switch::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let pki = Ca::new("acquirer CA");
    let (server_cert, server_key) = pki.leaf_pem("localhost");
    let (a_cert, a_key) = pki.leaf_pem("hospital-a");
    let (stranger_cert, stranger_key) = pki.leaf_pem("stranger");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (sc, sk, ca) = (
        write("server.crt", &server_cert),
        write("server.key", &server_key),
        write("ca.crt", &pki.pem()),
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
    let (hospital_a, hospital_b) = (world.hospitals[0].clone(), world.hospitals[1].clone());
    let (w, _t) = writer::spawn(Arc::clone(&store), writer::WriterConfig::default());
    let pipeline = Pipeline::new(
        Arc::clone(&store),
        w,
        world.hsm.clone(),
        Arc::new(NoBanks),
        world.keys.clone(),
        world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .unwrap();
    let a_der = CertificateDer::from_pem_slice(a_cert.as_bytes()).unwrap();
    let mut map = ClientInstitutions::new();
    map.insert(
        switch::acquirer::spki_sha256(&a_der).unwrap(),
        hospital_a.id.clone(),
    )
    .unwrap();
    let mut cfg = AcquirerListener::ssc87("127.0.0.1:0".parse().unwrap()).unwrap();
    cfg.tls = Some(TlsSettings::with_client_institutions(&sc, &sk, &ca, map).unwrap());
    let listener = acquirer::bind(&cfg).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(acquirer::serve(listener, cfg, pipeline, rx));

    let card = world
        .cards
        .iter()
        .find(|c| c.insurance.is_some())
        .unwrap()
        .clone();
    let mut reader =
        card_apdu::channel::memory::MemoryChannel::new(world.virtual_card(&card).unwrap());
    let kiosk = |h: &switch::sim::world::DemoHospital| {
        Kiosk::new(
            schemas::domain::TerminalId::parse("HK000001").unwrap(),
            h.id.clone(),
            Some(h.code.clone()),
            "1",
        )
    };
    let mut conn = tls_connect(addr, client_config(&pki.cert, &a_cert, &a_key))
        .await
        .expect("hospital A's certificate is accepted");
    let own = kiosk(&hospital_a)
        .personal_balance(&card, &mut reader)
        .unwrap()
        .request;
    assert_eq!(code_over(&mut conn, &own).await.as_deref(), Some("00"));

    let audited = store.verify_audit_chain().await.unwrap();
    let as_b = kiosk(&hospital_b)
        .personal_balance(&card, &mut reader)
        .unwrap()
        .request;
    assert_eq!(
        code_over(&mut conn, &as_b).await.as_deref(),
        Some("03"),
        "hospital B's field 32 (and MAC) on hospital A's certificate"
    );
    let mut jc = Kiosk::new(
        schemas::domain::TerminalId::parse("JC000001").unwrap(),
        schemas::domain::InstitutionId::parse(JOB_CENTRE_ID).unwrap(),
        None,
        "7",
    );
    let (credit, _) = jc.benefit_credit(&card, 100_000).unwrap();
    assert_eq!(code_over(&mut conn, &credit).await.as_deref(), Some("03"));
    assert_eq!(store.verify_audit_chain().await.unwrap(), audited + 2);
    let mismatches = audit_actions(dir.path().join("s.db")).await;
    assert_eq!(
        mismatches,
        [
            (
                format!("institution:{}", hospital_b.id),
                format!("{{\"connection\":\"{}\"}}", hospital_a.id)
            ),
            (
                format!("institution:{JOB_CENTRE_ID}"),
                format!("{{\"connection\":\"{}\"}}", hospital_a.id)
            ),
        ]
    );

    // A certificate of the same CA that maps to no institution: no answer, ever.
    let stranger = client_config(&pki.cert, &stranger_cert, &stranger_key);
    let served = match tls_connect(addr, stranger).await {
        None => false,
        Some(mut conn) => code_over(&mut conn, &own).await.is_some(),
    };
    assert!(!served, "an unmapped certificate is refused");
}

/// Subject and detail of every `acquirer.field32_mismatch` entry of the audit log, in order.
async fn audit_actions(db: std::path::PathBuf) -> Vec<(String, String)> {
    use sqlx::{ConnectOptions, Row};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    sqlx::query(
        "SELECT subject, detail FROM audit_log WHERE action = 'acquirer.field32_mismatch' \
         ORDER BY audit_seq",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
    .collect()
}
