//! A switch's HTTP face on a real socket over a seeded SQLite store, and a bare HTTP/1.1
//! client that shows exactly what goes over the wire (status, headers, body). Shared by
//! `tests/http.rs` (what the endpoints do) and `tests/openapi.rs` (that they do what the OpenAPI
//! document says).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use switch::http::{self, HttpState};
use switch::metrics::Metrics;
use switch::operator::token::hash_presented;
use switch::operator::OperatorContext;
use switch::sim::operator_kit;
use switch::sim::testkit::{self, Fixture};
use switch::store::operator::ApiKeyRecord;
use switch::store::writer;
use switch::store::OperatorStore;
use switch::store::{now_us, DataKeyPanProtector, Decision, SqliteConfig, SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running HTTP face.
pub struct Node {
    _dir: tempfile::TempDir,
    /// The store behind it.
    pub store: Arc<SqliteStore>,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The seeded network.
    pub fx: Fixture,
    /// The decision writer's task (ends when the writer stops).
    pub writer_task: tokio::task::JoinHandle<()>,
}

/// A node whose writer runs as the switch runs it for SQLite.
pub async fn node() -> Node {
    node_with(writer::config_for::<SqliteStore>()).await
}

/// A node whose writer runs with `config` (a writer on the test's runtime can be aborted).
pub async fn node_with(config: writer::WriterConfig) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("open store"),
    );
    let fx = testkit::seed(&*store, 100_000, 1_000_000_000)
        .await
        .expect("seed");
    store.install_audit_mac_key(Arc::new(switch::operator::keys::audit_key_for_tests()));
    operator_kit::seed_tenants(&*store).await.expect("tenants");
    store
        .put_api_key(&ApiKeyRecord {
            key_hash: hash_presented(READER_KEY),
            key_id: "test-reader".into(),
            institution: testkit::inst(operator_kit::SWITCH),
            role_id: "auditor".into(),
            name: "the tests' reader".into(),
            created_at_us: now_us(),
            revoked_at_us: None,
        })
        .await
        .expect("reader key");
    let (writer, writer_task) = writer::spawn(store.clone(), config);
    let state = Arc::new(HttpState {
        store: store.clone(),
        writer,
        metrics: Arc::new(Metrics::default()),
        links: None,
        operator: Arc::new(OperatorContext::for_tests()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    Node {
        _dir: dir,
        store,
        addr,
        fx,
        writer_task,
    }
}

/// Commits one decision, which must succeed.
pub async fn commit(store: &SqliteStore, d: Decision) {
    let out = store.commit_decisions(vec![d], now_us()).await;
    assert!(out.results.iter().all(Result::is_ok), "{:?}", out.results);
}

/// An HTTP answer as received.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header names (lower case, as hyper sends them) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (the switch sends lengths, never chunks).
    pub body: String,
}

impl Reply {
    /// The `content-type` header, or "" when there is none.
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The API key of the switch's institution with the role `auditor` (read-only, everything),
/// which [`request`] sends.
pub const READER_KEY: &str = "test-reader-key-4a1f0c";

/// One request over HTTP/1.1 on a new connection, as the tests' reader ([`READER_KEY`]).
pub async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> Reply {
    let auth = format!("Bearer {READER_KEY}");
    request_with(addr, method, path, &[("Authorization", &auth)], None).await
}

/// One request with these headers (no credentials unless given) and body.
pub async fn request_with(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or(""));
    s.write_all(head.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// GET: (status, content type, body).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let r = request(addr, "GET", path).await;
    (r.status, r.content_type().to_owned(), r.body)
}
