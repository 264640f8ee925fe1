//! Machine clients of the operator API proven by their TLS certificate (issue 25: "machine
//! clients use mutual TLS or API keys"): over the HTTP face's own TLS listener, a pinned
//! certificate is its machine client (institution and role from `[[http.client_certificate]]`)
//! whatever the request claims; a person's browser without a certificate is served and must log
//! in; a certificate of the CA that is not pinned, or of another CA, is refused at the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use switch::acquirer::{spki_sha256, ClientInstitutions, TlsSettings};
use switch::http::HttpState;
use switch::metrics::Metrics;
use switch::node::http_face::{self, HttpLimits};
use switch::operator::machine::{MachineClient, MachineClients};
use switch::operator::OperatorContext;
use switch::sim::{operator_kit, testkit};
use switch::store::{writer, DataKeyPanProtector, SqliteConfig, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA issuing leaf certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A leaf: its certificate (DER and PEM) and private key.
struct Leaf {
    der: CertificateDer<'static>,
    pem: String,
    key: PrivatePkcs8KeyDer<'static>,
    key_pem: String,
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

    fn leaf(&self, name: &str) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A client configuration trusting `server_ca`, with `leaf` as its certificate if given.
fn client(server_ca: &Ca, leaf: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.cert.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match leaf {
        Some(l) => builder
            .with_client_auth_cert(vec![l.der.clone()], PrivateKeyDer::Pkcs8(l.key.clone_key()))
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// `GET path` over TLS with `headers`: the status and body, or the error of the handshake or
/// of the exchange (a refused certificate surfaces as one of them).
async fn get(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &str,
) -> Result<(u16, String), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_client_certificate_is_its_machine_client_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("s.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .unwrap(),
    );
    let fx = testkit::seed(&*store, 100_000, 1_000_000).await.unwrap();
    operator_kit::seed_tenants(&*store).await.unwrap();

    let (server_ca, machines_ca, rogue_ca) = (
        Ca::new("server CA"),
        Ca::new("machine clients CA"),
        Ca::new("rogue CA"),
    );
    let server = server_ca.leaf("localhost");
    let back_office = machines_ca.leaf("back-office.bank.example");
    let unpinned = machines_ca.leaf("someone-else.example");
    let rogue = rogue_ca.leaf("back-office.bank.example");
    let spki = spki_sha256(&back_office.der).unwrap();

    let mut machines = MachineClients::default();
    machines
        .insert(
            spki,
            MachineClient {
                name: "bank back office".into(),
                institution: fx.bank.clone(),
                role_id: "bank_operator".into(),
            },
        )
        .unwrap();
    let mut pinned = ClientInstitutions::new();
    pinned.insert(spki, fx.bank.clone()).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let tls = TlsSettings::with_optional_client_institutions(
        &write("server.crt", &server.pem),
        &write("server.key", &server.key_pem),
        &write("clients-ca.crt", &machines_ca.cert.pem()),
        pinned,
    )
    .unwrap();
    let (w, _t) = writer::spawn(Arc::clone(&store), writer::WriterConfig::default());
    let state = HttpState {
        store: Arc::clone(&store),
        writer: w,
        metrics: Arc::new(Metrics::default()),
        links: None,
        operator: Arc::new(OperatorContext::for_tests().with_machine_clients(machines)),
        cms: None,
        clearing: None,
        cutover: None,
    };
    let addr = http_face::serve(
        state,
        "127.0.0.1:0".parse().unwrap(),
        Some(tls),
        HttpLimits::default(),
    )
    .await
    .unwrap();

    // The pinned certificate: the bank's back office with the bank operator's permissions,
    // even when it also sends an API key of someone else.
    let (status, body) = get(addr, client(&server_ca, Some(&back_office)), "/me", "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["principal"]["kind"], "certificate", "{me}");
    assert_eq!(me["principal"]["name"], "bank back office");
    assert_eq!(me["principal"]["spki_sha256"], hex::encode(spki));
    assert_eq!(me["institution"]["institution_id"], fx.bank.as_str());
    let (status, body) = get(
        addr,
        client(&server_ca, Some(&back_office)),
        "/me",
        "Authorization: Bearer not-a-key-of-anyone\r\n",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "the connection's proof stands: {body}");
    let (status, _) = get(addr, client(&server_ca, Some(&back_office)), "/users", "")
        .await
        .unwrap();
    assert_eq!(status, 403, "a bank operator manages no users");

    // A browser without a certificate is served, and must log in.
    let (status, body) = get(addr, client(&server_ca, None), "/me", "")
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    let (status, _) = get(addr, client(&server_ca, None), "/health", "")
        .await
        .unwrap();
    assert_eq!(status, 200);

    // A certificate of the CA that is not pinned, and one of another CA: no answer at all.
    for (who, leaf) in [("unpinned", &unpinned), ("rogue CA", &rogue)] {
        let r = get(addr, client(&server_ca, Some(leaf)), "/health", "").await;
        assert!(r.is_err(), "{who} certificate served: {r:?}");
    }
}
