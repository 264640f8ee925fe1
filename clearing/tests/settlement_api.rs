//! `clearing api`, the settlement API the switch's operator routes call (issue 25), over a
//! real socket: only a client certificate of the switch nodes' CA (and, with an allow-list,
//! only a listed key) gets past the handshake; the operator headers scope every answer (the
//! centre sees every position, a bank its own line and statements, anyone else nothing); only
//! the centre closes a window, with a reason.

mod common;

use common::{delivery, purchase, split, Harness};
use schemas::domain::InstitutionId;
use schemas::events::sample::ids::{BANK, HOSPITAL, INSURANCE_FUND};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const OTHER_BANK: &str = "01030000";
const SERVER_NAME: &str = "clearing.test";

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

    /// A leaf for `name`: (certificate PEM, key PEM).
    fn leaf(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The PKI of a test: clearing's server CA, the switch nodes' CA, a CA nobody trusts.
struct Pki {
    server_ca: Ca,
    switch_ca: Ca,
    rogue_ca: Ca,
}

impl Pki {
    fn new() -> Self {
        Self {
            server_ca: Ca::new("clearing server CA"),
            switch_ca: Ca::new("switch nodes CA"),
            rogue_ca: Ca::new("someone else's CA"),
        }
    }

    /// A client that trusts clearing's CA and shows `client` (certificate, key), if any.
    fn client(&self, client: Option<&(String, String)>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.server_ca.cert.pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// The API on a ledger with a purchase and a bill split (hospital, insurance fund, bank) and a
/// purchase of another bank's card, allowing client keys `pins` (empty: every key of the
/// switch nodes' CA).
async fn serve(
    pki: &Pki,
    pins: &[[u8; 32]],
) -> (SocketAddr, Harness, tokio::sync::watch::Sender<bool>) {
    let h = Harness::sqlite().await;
    let mut other = purchase(3);
    other.legs[0].debit.institution = InstitutionId::parse(OTHER_BANK).unwrap();
    other.institutions.issuer = Some(InstitutionId::parse(OTHER_BANK).unwrap());
    h.ledger
        .apply_batch(
            "g",
            &[
                delivery(0, &purchase(1)),
                delivery(1, &split(2)),
                delivery(2, &other),
            ],
        )
        .await
        .unwrap();
    let (cert, key) = pki.server_ca.leaf(SERVER_NAME);
    let tls =
        clearing::api::tls::server_config_from_pem(&cert, &key, &pki.switch_ca.cert.pem(), pins)
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(clearing::api::tls::serve(
        listener,
        tls,
        h.ledger.clone(),
        clearing::api::tls::ApiLimits::default(),
        stopping,
    ));
    (addr, h, stop)
}

/// An answer: status, content type, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// One request over TLS; Err when the connection is refused before an answer.
async fn call(
    addr: SocketAddr,
    tls: &tokio_rustls::TlsConnector,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Answer, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut s = tls
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: clearing\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8(raw).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no answer")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let content_type = lines
        .filter_map(|l| l.split_once(": "))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    Ok(Answer {
        status,
        content_type,
        body: body.to_owned(),
    })
}

fn operator<'a>(institution: &'a str, kind: &'a str) -> [(&'a str, &'a str); 3] {
    [
        (
            "X-Settlement-Operator",
            "user:0190f5a0-0000-7000-8000-000000000001",
        ),
        ("X-Settlement-Institution", institution),
        ("X-Settlement-Institution-Kind", kind),
    ]
}

const CENTRE: &str = "3100000";

fn spki(cert_pem: &str) -> [u8; 32] {
    clearing::api::tls::spki_sha256(&CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_client_certificate_of_the_switch_ca_gets_an_answer() {
    let pki = Pki::new();
    let (addr, _h, _stop) = serve(&pki, &[]).await;
    let centre = operator(CENTRE, "switch");
    let switch_node = pki.switch_ca.leaf("switch-1");
    let ok = call(
        addr,
        &pki.client(Some(&switch_node)),
        "GET",
        "/v1/positions",
        &centre,
        None,
    )
    .await
    .expect("a switch node is served");
    assert_eq!(ok.status, 200, "{ok:?}");
    // No certificate, or one of another CA: refused before any HTTP.
    for (what, client) in [
        ("no certificate", pki.client(None)),
        (
            "another CA",
            pki.client(Some(&pki.rogue_ca.leaf("switch-1"))),
        ),
    ] {
        let refused = call(addr, &client, "GET", "/v1/positions", &centre, None).await;
        assert!(refused.is_err(), "{what}: {refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_allow_list_only_the_listed_switch_keys_get_an_answer() {
    let pki = Pki::new();
    let listed = pki.switch_ca.leaf("switch-1");
    let unlisted = pki.switch_ca.leaf("switch-2");
    let (addr, _h, _stop) = serve(&pki, &[spki(&listed.0)]).await;
    let centre = operator(CENTRE, "switch");
    let ok = call(
        addr,
        &pki.client(Some(&listed)),
        "GET",
        "/v1/windows",
        &centre,
        None,
    )
    .await
    .expect("the listed node is served");
    assert_eq!(ok.status, 200);
    let refused = call(
        addr,
        &pki.client(Some(&unlisted)),
        "GET",
        "/v1/windows",
        &centre,
        None,
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centre_sees_every_position_a_bank_its_own_and_only_the_centre_closes() {
    let pki = Pki::new();
    let (addr, _h, _stop) = serve(&pki, &[]).await;
    let tls = pki.client(Some(&pki.switch_ca.leaf("switch-1")));
    let get = |path: &'static str, who: [(&'static str, &'static str); 3]| {
        let tls = tls.clone();
        async move { call(addr, &tls, "GET", path, &who, None).await.unwrap() }
    };
    let institutions = |v: &Value| -> Vec<String> {
        v["positions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["institution_id"].as_str().unwrap().to_owned())
            .collect()
    };
    // The open window's live positions.
    let all = get("/v1/positions", operator(CENTRE, "switch"))
        .await
        .json();
    assert_eq!(
        institutions(&all),
        [BANK, OTHER_BANK, HOSPITAL, INSURANCE_FUND]
    );
    let nets: i64 = all["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["net_fen"].as_i64().unwrap())
        .sum();
    assert_eq!(nets, 0, "{all}");
    let own = get("/v1/positions", operator(BANK, "bank")).await.json();
    assert_eq!(institutions(&own), [BANK]);
    assert_eq!(own["positions"][0]["debits_fen"], 11_500);
    let hospital = get("/v1/positions", operator(HOSPITAL, "hospital")).await;
    assert_eq!(hospital.status, 404);
    assert_eq!(hospital.content_type, "application/problem+json");
    // Without the operator headers nothing is answered.
    let anonymous = call(addr, &tls, "GET", "/v1/positions", &[], None)
        .await
        .unwrap();
    assert_eq!(anonymous.status, 400);
    assert_eq!(anonymous.json()["type"], "/problems/no-operator");

    // Only the centre closes; a stale window id is a conflict.
    let close = |who: [(&'static str, &'static str); 3], body: &'static str| {
        let tls = tls.clone();
        async move {
            call(addr, &tls, "POST", "/v1/windows/close", &who, Some(body))
                .await
                .unwrap()
        }
    };
    let bank_close = close(operator(BANK, "bank"), r#"{"reason":"end of day"}"#).await;
    assert_eq!(bank_close.status, 403, "{bank_close:?}");
    let stale = close(
        operator(CENTRE, "switch"),
        r#"{"reason":"end of day","window_id":7}"#,
    )
    .await;
    assert_eq!(stale.status, 409, "{stale:?}");
    let no_reason = close(operator(CENTRE, "switch"), r#"{"reason":" "}"#).await;
    assert_eq!(no_reason.status, 400, "{no_reason:?}");
    let closed = close(
        operator(CENTRE, "switch"),
        r#"{"reason":"end of day","window_id":1}"#,
    )
    .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    let closed = closed.json();
    assert_eq!(closed["window"]["state"], "closed");
    assert_eq!(closed["window"]["posting_count"], 5);
    assert_eq!(institutions(&closed).len(), 4);
    assert!(closed["window"]["digest_sha256"].as_str().unwrap().len() == 64);

    // The closed window as a bank sees it: its own line and instructions, no network totals.
    let w = get("/v1/windows/1", operator(BANK, "bank")).await.json();
    assert_eq!(institutions(&w), [BANK]);
    assert!(w["window"]["posting_count"].is_null(), "{w}");
    assert!(w["instructions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["payer_id"] == BANK || i["payee_id"] == BANK));
    assert_eq!(
        get("/v1/windows/9", operator(CENTRE, "switch"))
            .await
            .status,
        404
    );
    let list = get("/v1/windows?limit=1", operator(CENTRE, "switch"))
        .await
        .json();
    assert_eq!(list["items"][0]["window_id"], 2);
    assert_eq!(list["next_before"], 2);
    let rest = get("/v1/windows?before=2", operator(CENTRE, "switch"))
        .await
        .json();
    assert_eq!(rest["items"][0]["window_id"], 1);
    assert!(rest["next_before"].is_null());

    // Statements: a bank its own only.
    let csv = get(
        "/v1/windows/1/reports/01020000?format=csv",
        operator(BANK, "bank"),
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"), "{csv:?}");
    let (digest, claimed) = clearing::report::verify_statement_csv(&csv.body).unwrap();
    assert_eq!(hex::encode(digest), claimed);
    let theirs = get(
        "/v1/windows/1/reports/01030000?format=csv",
        operator(BANK, "bank"),
    )
    .await;
    assert_eq!(theirs.status, 404);
    let xml = get(
        "/v1/windows/1/reports/01030000?format=camt053",
        operator(CENTRE, "switch"),
    )
    .await;
    assert_eq!(xml.status, 200);
    assert!(xml.content_type.starts_with("application/xml"), "{xml:?}");
    assert!(
        xml.body.contains(">01030000<"),
        "the statement of 01030000: {}",
        xml.body
    );
    common::assert_valid_camt053(&[&xml.body]);
    let bad = get(
        "/v1/windows/1/reports/01020000?format=pdf",
        operator(BANK, "bank"),
    )
    .await;
    assert_eq!(bad.status, 400);
}

/// Kills the child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clearing_api_command_serves_switch_nodes_over_mutual_tls_only() {
    use std::io::BufRead;
    let pki = Pki::new();
    let h = Harness::sqlite().await;
    h.ledger
        .apply_batch("g", &[delivery(0, &purchase(1))])
        .await
        .unwrap();
    let ledger = match &h.config {
        clearing::db::LedgerDbConfig::Sqlite { path, .. } => path.clone(),
        _ => unreachable!(),
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (cert, key) = pki.server_ca.leaf(SERVER_NAME);
    let listed = pki.switch_ca.leaf("switch-1");
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_clearing"))
            .arg("--ledger")
            .arg(format!("sqlite:{}", ledger.display()))
            .args(["api", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(write("server.crt", &cert))
            .arg("--tls-key")
            .arg(write("server.key", &key))
            .arg("--client-ca")
            .arg(write("switch-ca.crt", &pki.switch_ca.cert.pem()))
            .args(["--client-spki-sha256", &hex::encode(spki(&listed.0))])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("clearing api"),
    );
    // The bound address, from the log line that says it listens (the log is coloured: ANSI
    // escapes are taken out first). The wait is bounded so a command that never says it does
    // not hang the suite (the child is killed when `child` drops).
    let stderr = child.0.stderr.take().expect("stderr");
    let found = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .map(|l| strip_ansi(&l))
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("bound="))
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            })
    });
    let addr = tokio::time::timeout(std::time::Duration::from_secs(120), found)
        .await
        .expect("clearing api says where it listens")
        .unwrap()
        .expect("clearing api says where it listens");
    let centre = operator(CENTRE, "switch");
    let ok = call(
        addr,
        &pki.client(Some(&listed)),
        "GET",
        "/v1/positions",
        &centre,
        None,
    )
    .await
    .expect("the listed switch node is served");
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["positions"].as_array().map(Vec::len), Some(2));
    for client in [
        pki.client(None),
        pki.client(Some(&pki.switch_ca.leaf("switch-2"))),
    ] {
        let refused = call(addr, &client, "GET", "/v1/positions", &centre, None).await;
        assert!(refused.is_err(), "{refused:?}");
    }
}

/// `line` without ANSI SGR escapes (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
