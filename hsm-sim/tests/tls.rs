//! Mutual TLS on the HSM link, with certificates made at test time: a client holding a
//! certificate from the configured CA is served (clear data keys too, on a network address);
//! a client without one, or with one from another CA, or one that does not trust the HSM's CA,
//! gets nothing.

mod common;

use common::non_loopback_ip;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hsm_sim::server::{Server, ServerConfig};
use hsm_sim::tls::{TlsClient, TlsServer};
use hsm_sim::{ClientConfig, Hsm, HsmClient, HsmError, SoftHsm};

/// A certificate authority made for one test.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca = p.self_signed(&ca_key).expect("CA");
        Pki { ca, ca_key }
    }

    fn ca_pem(&self) -> Vec<u8> {
        self.ca.pem().into_bytes()
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) and its key, in PEM.
    fn leaf(&self, names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).expect("leaf");
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }
}

/// An HSM served with mutual TLS on `ip`: server certificate for that address from `pki`,
/// clients must hold a certificate from `pki` too.
async fn serve_mtls(
    pki: &Pki,
    ip: IpAddr,
) -> (SocketAddr, Arc<SoftHsm>, tokio::sync::watch::Sender<bool>) {
    let (cert, key) = pki.leaf(&[&ip.to_string(), "hsm.test"]);
    let tls = TlsServer::from_pem(&cert, &key, Some(&pki.ca_pem())).expect("server TLS");
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let config = ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    };
    tokio::spawn(Server::new(Arc::clone(&hsm), config, None).serve(listener, rx));
    (addr, hsm, tx)
}

fn client(addr: SocketAddr, tls: TlsClient) -> HsmClient {
    let mut c = ClientConfig::new(addr);
    c.tls = Some(tls);
    c.timeout_ms = 3_000;
    HsmClient::new(c)
}

#[tokio::test]
async fn a_client_with_a_certificate_of_the_ca_is_served() {
    let pki = Pki::new("HSM link CA");
    let ip = non_loopback_ip().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let (addr, hsm, _stop) = serve_mtls(&pki, ip).await;
    let (cert, key) = pki.leaf(&["switch-node-1"]);
    let tls = TlsClient::from_pem(&pki.ca_pem(), &ip.to_string(), Some((&cert, &key)))
        .expect("client TLS");
    let c = client(addr, tls);
    assert_eq!(
        c.diagnostics().await.expect("NC").lmk_check_value,
        hsm.diagnostics().await.expect("local").lmk_check_value
    );
    // TLS protects the link: clear data keys are served even on a network address.
    let (_, token) = hsm.generate_data_key().await.expect("XM in process");
    assert!(c.call(b"XO", token.to_string().as_bytes()).await.is_ok());
    assert!(c.unwrap_data_key(&token).await.is_ok());
}

#[tokio::test]
async fn clients_without_the_right_certificate_get_nothing() {
    let pki = Pki::new("HSM link CA");
    let ip = IpAddr::from([127, 0, 0, 1]);
    let (addr, _hsm, _stop) = serve_mtls(&pki, ip).await;
    let unavailable =
        |r: Result<hsm_sim::hsm::Diagnostics, HsmError>| matches!(r, Err(HsmError::Unavailable(_)));

    // No client certificate.
    let tls = TlsClient::from_pem(&pki.ca_pem(), "127.0.0.1", None).expect("client TLS");
    assert!(unavailable(client(addr, tls).diagnostics().await));

    // A certificate from another CA.
    let other = Pki::new("someone else");
    let (cert, key) = other.leaf(&["intruder"]);
    let tls =
        TlsClient::from_pem(&pki.ca_pem(), "127.0.0.1", Some((&cert, &key))).expect("client TLS");
    assert!(unavailable(client(addr, tls).diagnostics().await));

    // A client that does not trust the HSM's CA refuses the HSM.
    let (cert, key) = pki.leaf(&["switch-node-1"]);
    let tls =
        TlsClient::from_pem(&other.ca_pem(), "127.0.0.1", Some((&cert, &key))).expect("client TLS");
    assert!(unavailable(client(addr, tls).diagnostics().await));

    // Plain TCP to a TLS listener.
    assert!(unavailable(
        HsmClient::new(ClientConfig {
            timeout_ms: 1_000,
            ..ClientConfig::new(addr)
        })
        .diagnostics()
        .await
    ));
}

#[test]
fn bad_pem_is_an_error() {
    assert!(matches!(
        TlsServer::from_pem(b"not pem", b"not pem", None),
        Err(hsm_sim::tls::TlsError::Pem { .. })
    ));
    let pki = Pki::new("CA");
    assert!(matches!(
        TlsClient::from_pem(&pki.ca_pem(), "not a name!", None),
        Err(hsm_sim::tls::TlsError::ServerName(_))
    ));
}
