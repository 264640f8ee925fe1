//! The switch's HTTP face over a real socket: the store-and-forward view (`GET /saf`), its
//! gauges in `/metrics`, the lookup by RRN and the problem documents for bad input.

use std::sync::Arc;

use schemas::domain::ResponseCode;
use switch::http::{self, HttpState};
use switch::metrics::Metrics;
use switch::store::testkit::{self, Fixture};
use switch::store::writer;
use switch::store::{now_us, DataKeyPanProtector, Decision, SqliteConfig, SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Node {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    addr: std::net::SocketAddr,
    fx: Fixture,
}

async fn node() -> Node {
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
    let (writer, _task) = writer::spawn(store.clone(), writer::config_for::<SqliteStore>());
    let state = Arc::new(HttpState {
        store: store.clone(),
        writer,
        metrics: Arc::new(Metrics::default()),
        links: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, http::router(state)).await;
    });
    Node {
        _dir: dir,
        store,
        addr,
        fx,
    }
}

async fn commit(store: &SqliteStore, d: Decision) {
    let out = store.commit_decisions(vec![d], now_us()).await;
    assert!(out.results.iter().all(Result::is_ok), "{:?}", out.results);
}

/// GET over HTTP/1.1: (status, content type, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or("")
        .to_owned();
    (status, content_type, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_and_forward_view_shows_a_reversal_held_behind_its_advice() {
    let n = node().await;
    let (status, _, body) = get(n.addr, "/saf").await;
    assert_eq!(status, 200);
    let empty: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(empty["queues"].as_array().unwrap().len(), 0);
    assert_eq!(empty["oldest"].as_array().unwrap().len(), 0);

    let approval = testkit::stand_in(&n.fx, 41, 2_000);
    let advice_id = approval.advice.as_ref().unwrap().advice_id;
    let reversal = testkit::reversal_of(&n.fx, &approval, 42);
    let reversal_id = reversal.reversal.as_ref().unwrap().reversal_id;
    commit(&n.store, approval).await;
    commit(&n.store, reversal).await;
    n.store
        .record_advice_attempt(advice_id, now_us(), Some(ResponseCode::SystemMalfunction))
        .await
        .unwrap();

    let (status, content_type, body) = get(n.addr, "/saf").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bank = n.fx.bank.as_str();
    let queues = v["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2, "{body}");
    assert_eq!(queues[0]["kind"], "reversal");
    assert_eq!(queues[0]["bank"], bank);
    assert_eq!(
        (queues[0]["pending"].as_u64(), queues[0]["held"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(queues[1]["kind"], "advice");
    assert_eq!(queues[1]["attempts_max"], 1);
    let oldest = v["oldest"].as_array().unwrap();
    let held = oldest
        .iter()
        .find(|i| i["id"] == reversal_id.0.to_string())
        .expect("the reversal is listed");
    assert_eq!(held["held"], true);
    assert_eq!(held["amount"], "20.00");
    let advice = oldest
        .iter()
        .find(|i| i["id"] == advice_id.0.to_string())
        .expect("the advice is listed");
    assert_eq!(advice["last_response_code"], "96");
    // No card data in the view.
    assert!(!body.contains(n.fx.pan.expose_digits()));

    let (_, _, metrics) = get(n.addr, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "switch_saf_held{{kind=\"reversal\",bank=\"{bank}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "switch_saf_pending{{kind=\"advice\",bank=\"{bank}\"}} 1"
    )));
    assert!(metrics.contains("switch_saf_oldest_age_seconds{kind=\"advice\""));

    let (_, _, limited) = get(n.addr, "/saf?limit=1").await;
    let v: serde_json::Value = serde_json::from_str(&limited).unwrap();
    assert_eq!(v["oldest"].as_array().unwrap().len(), 1);

    // Once the bank acknowledges the advice, the reversal is free to go.
    n.store
        .ack_advice(advice_id, ResponseCode::Approved, now_us())
        .await
        .unwrap();
    let (_, _, metrics) = get(n.addr, "/metrics").await;
    assert!(metrics.contains(&format!(
        "switch_saf_held{{kind=\"reversal\",bank=\"{bank}\"}} 0"
    )));
    assert!(!metrics.contains("switch_saf_pending{kind=\"advice\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_document() {
    let n = node().await;
    for path in [
        "/saf?limit=501",
        "/saf?limit=-1",
        "/saf?limit=x",
        "/saf?since=1",
        "/transactions/not-an-rrn",
    ] {
        let (status, content_type, body) = get(n.addr, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], 400);
    }
    let (status, content_type, _) = get(n.addr, "/transactions/000000000000").await;
    assert_eq!(
        (status, content_type.as_str()),
        (404, "application/problem+json")
    );
}
