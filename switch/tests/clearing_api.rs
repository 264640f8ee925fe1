//! The settlement routes of the operator API (issue 25) against clearing's settlement API over
//! mutual TLS: `clearing::api` served in this process with certificates made here, a ledger
//! seeded with settlement events, and the switch's `/clearing/...` routes calling it through
//! [`ClearingClient`] with the node's client certificate. A clearing analyst sees every
//! position and closes a window (audited); a bank operator sees its own line and its own
//! statement only; a hospital cashier has no settlement permission; a client certificate
//! clearing does not trust gets no figures.

#[path = "../../clearing/tests/common/camt053_schema.rs"]
mod camt053_schema;
mod http_node;

use http_node::{request_with, Node, Reply, SAMPLE_BANK};
use serde_json::{json, Value};
use std::sync::Arc;
use switch::clearing_link::{ClearingClient, ClearingClientConfig};
use switch::operator::keys::SecretKey;
use switch::sim::operator_kit::{self, totp_now, OTHER_BANK, SWITCH};
use switch::store::OperatorStore;

const PASSWORD: &str = "a long enough password";
/// Clearing's address, and the name its certificate carries (an IP address SAN).
const CLEARING_NAME: &str = "127.0.0.1";
const HOSPITAL: &str = schemas::events::sample::ids::HOSPITAL;

#[path = "support/test_pki.rs"]
mod test_pki;

use test_pki::Ca;

/// Clearing's settlement API over mutual TLS on the ledger of a fresh node, and that node
/// asking it as a switch node whose certificate comes from `node_ca` (the switch nodes' CA, or
/// another).
async fn node_over_mtls(trusted: bool) -> (Node, tokio::sync::watch::Sender<bool>) {
    let (n, stop, _) = node_over_mtls_counted(trusted).await;
    (n, stop)
}

/// A TCP relay in front of clearing: counts the connections through it and can cut them all
/// (as a restart of clearing or a middlebox would).
#[derive(Clone, Default)]
struct Relay {
    connections: Arc<std::sync::atomic::AtomicUsize>,
    open: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn cut(&self) {
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// [`node_over_mtls`] with a TCP relay in front of clearing that counts the connections the
/// node opens to it.
async fn node_over_mtls_counted(trusted: bool) -> (Node, tokio::sync::watch::Sender<bool>, Relay) {
    let server_ca = Ca::new("clearing server CA");
    let switch_ca = Ca::new("switch nodes CA");
    let rogue_ca = Ca::new("someone else's CA");
    let (cert, key) = server_ca.leaf_pem(CLEARING_NAME);
    let tls = clearing::api::tls::server_config_from_pem(&cert, &key, &switch_ca.cert.pem(), &[])
        .expect("server TLS");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clearing_port = listener.local_addr().unwrap().port();
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = relay.local_addr().unwrap().port();
    let connections = Relay::default();
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            counted
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let task = tokio::spawn(async move {
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", clearing_port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
            counted.open.lock().unwrap().push(task.abort_handle());
        }
    });
    let (client_cert, client_key) = if trusted {
        switch_ca.leaf_pem("switch-1")
    } else {
        rogue_ca.leaf_pem("switch-1")
    };
    // The node's ledger is made with the node; the API serves it once the node exists.
    let mut config = ClearingClientConfig::new(format!("https://{CLEARING_NAME}:{port}"));
    config.timeout = std::time::Duration::from_secs(30);
    let client = ClearingClient::from_pem(config, &server_ca.cert.pem(), &client_cert, &client_key)
        .expect("client TLS");
    let n = http_node::node_with_settlement(Arc::new(client)).await;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(clearing::api::tls::serve(
        listener,
        tls,
        n.settlement.clone(),
        clearing::api::tls::ApiLimits::default(),
        stopping,
    ));
    (n, stop, connections)
}

/// A session of a new user of `institution` with `role`: (cookie, CSRF token).
async fn session(n: &Node, name: &str, institution: &str, role: &str) -> (String, String) {
    let (_, first) = operator_kit::user(
        &*n.store,
        &SecretKey::for_tests(),
        name,
        institution,
        &[role],
        PASSWORD,
    )
    .await
    .expect("user");
    let body = json!({"username": name, "password": PASSWORD, "totp": totp_now(&first.totp)});
    let r = request_with(n.addr, "POST", "/session", &[], Some(&body.to_string())).await;
    assert_eq!(r.status, 200, "{r:?}");
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_owned();
    let v: Value = serde_json::from_str(&r.body).unwrap();
    (cookie, v["csrf_token"].as_str().unwrap().to_owned())
}

async fn get(n: &Node, s: &(String, String), path: &str) -> Reply {
    request_with(n.addr, "GET", path, &[("Cookie", &s.0)], None).await
}

fn json_of(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn institutions(v: &Value) -> Vec<String> {
    v["positions"]
        .as_array()
        .expect("positions")
        .iter()
        .map(|p| p["institution_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_sees_every_position_and_closes_the_window_over_mutual_tls() {
    let (n, _stop) = node_over_mtls(true).await;
    let analyst = session(&n, "analyst", SWITCH, "clearing_analyst").await;
    let open = json_of(&get(&n, &analyst, "/clearing/positions").await);
    assert_eq!(open["window_id"], 2, "{open}");
    assert_eq!(institutions(&open), [SAMPLE_BANK, HOSPITAL]);
    let closed_1 = json_of(&get(&n, &analyst, "/clearing/windows/1").await);
    assert_eq!(
        institutions(&closed_1),
        [SAMPLE_BANK, OTHER_BANK, HOSPITAL, "3100900"]
    );
    assert_eq!(closed_1["posting_count"], 5);
    assert_eq!(closed_1["positions"][0]["net"], "-115.00");
    // A session's POST needs its CSRF token.
    let body = json!({"reason": "end of the business day", "window_id": 2}).to_string();
    let no_csrf = request_with(
        n.addr,
        "POST",
        "/clearing/windows/close",
        &[("Cookie", &analyst.0)],
        Some(&body),
    )
    .await;
    assert_eq!(no_csrf.status, 403, "{no_csrf:?}");
    let headers = [
        ("Cookie", analyst.0.as_str()),
        ("X-CSRF-Token", analyst.1.as_str()),
        ("Idempotency-Key", "close-2"),
    ];
    let closed = request_with(
        n.addr,
        "POST",
        "/clearing/windows/close",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    let closed = json_of(&closed);
    assert_eq!(
        (&closed["window_id"], &closed["state"]),
        (&json!(2), &json!("closed"))
    );
    assert_eq!(closed["instructions"][0]["payer_id"], SAMPLE_BANK);
    // The same key again: the first answer, not a second close.
    let again = request_with(
        n.addr,
        "POST",
        "/clearing/windows/close",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let now_open = json_of(&get(&n, &analyst, "/clearing/positions").await);
    assert_eq!(now_open["window_id"], 3);
    // Closing "window 2" again is a conflict: window 3 is open.
    let stale = request_with(
        n.addr,
        "POST",
        "/clearing/windows/close",
        &[("Cookie", &analyst.0), ("X-CSRF-Token", &analyst.1)],
        Some(&body),
    )
    .await;
    assert_eq!(stale.status, 409, "{stale:?}");
    // Audited with the operator and the reason.
    let audit: Vec<_> = n
        .store
        .audit_page(0, 1_000)
        .await
        .expect("audit")
        .into_iter()
        .map(|row| row.entry)
        .collect();
    let entry = audit
        .iter()
        .find(|e| e.action == "clearing.window_close")
        .expect("an audit entry of the close");
    assert_eq!(entry.subject, "settlement_window:2");
    assert!(
        entry.detail.contains("end of the business day"),
        "{entry:?}"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "clearing.window_close")
            .count(),
        1
    );
    // The list, newest first, a page at a time.
    let page = json_of(&get(&n, &analyst, "/clearing/windows?limit=2").await);
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["window_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2]);
    let rest = json_of(
        &get(
            &n,
            &analyst,
            &format!(
                "/clearing/windows?cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
        )
        .await,
    );
    assert_eq!(rest["items"][0]["window_id"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_sees_its_own_line_and_statement_others_nothing() {
    let (n, _stop) = node_over_mtls(true).await;
    let bank = session(&n, "bank-op", SAMPLE_BANK, "bank_operator").await;
    let w = json_of(&get(&n, &bank, "/clearing/windows/1").await);
    assert_eq!(institutions(&w), [SAMPLE_BANK]);
    assert!(w["posting_count"].is_null(), "{w}");
    assert!(w["instructions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["payer_id"] == SAMPLE_BANK || i["payee_id"] == SAMPLE_BANK));
    assert_eq!(
        institutions(&json_of(&get(&n, &bank, "/clearing/positions").await)),
        [SAMPLE_BANK]
    );
    let own = get(
        &n,
        &bank,
        &format!("/clearing/windows/1/reports/{SAMPLE_BANK}?format=csv"),
    )
    .await;
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(own.content_type(), "text/csv; charset=utf-8");
    let (digest, claimed) = clearing::report::verify_statement_csv(&own.body).unwrap();
    assert_eq!(hex::encode(digest), claimed);
    // Its institution digest is the one the window published for it.
    let centre = session(&n, "analyst", SWITCH, "clearing_analyst").await;
    let all = json_of(&get(&n, &centre, "/clearing/windows/1").await);
    assert_eq!(all["positions"][0]["digest_sha256"], claimed.as_str());
    let xml = get(
        &n,
        &bank,
        &format!("/clearing/windows/1/reports/{SAMPLE_BANK}?format=camt053"),
    )
    .await;
    assert_eq!(
        (xml.status, xml.content_type()),
        (200, "application/xml; charset=utf-8")
    );
    camt053_schema::assert_valid_camt053(&[&xml.body]);
    let theirs = get(
        &n,
        &bank,
        &format!("/clearing/windows/1/reports/{OTHER_BANK}?format=csv"),
    )
    .await;
    assert_eq!(theirs.status, 404, "{theirs:?}");
    assert_eq!(theirs.content_type(), "application/problem+json");
    // A bank does not close windows, even with a role that says it may.
    n.store
        .put_role(
            &switch::store::operator::OperatorRole {
                role_id: "bank-closer".into(),
                institution: Some(switch::sim::testkit::inst(SAMPLE_BANK)),
                name: "Bank closer".into(),
                permissions: vec!["clearing.close_window".into(), "clearing.read".into()],
                created_at_us: switch::store::now_us(),
            },
            false,
            None,
        )
        .await
        .expect("role");
    let closer = session(&n, "bank-closer", SAMPLE_BANK, "bank-closer").await;
    let close = request_with(
        n.addr,
        "POST",
        "/clearing/windows/close",
        &[("Cookie", &closer.0), ("X-CSRF-Token", &closer.1)],
        Some(r#"{"reason":"try"}"#),
    )
    .await;
    assert_eq!(close.status, 404, "{close:?}");
    // A hospital cashier has no settlement permission: 403.
    let cashier = session(&n, "cashier", HOSPITAL, "hospital_cashier").await;
    for path in [
        "/clearing/windows",
        "/clearing/positions",
        "/clearing/windows/1",
    ] {
        let r = get(&n, &cashier, path).await;
        assert_eq!(r.status, 403, "{path}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_certificate_clearing_does_not_trust_gets_no_figures() {
    let (n, _stop) = node_over_mtls(false).await;
    let analyst = session(&n, "analyst", SWITCH, "clearing_analyst").await;
    let r = get(&n, &analyst, "/clearing/positions").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(json_of(&r)["type"], "/problems/clearing-unavailable");
    assert!(!r.body.contains(SAMPLE_BANK), "{r:?}");
}

/// The node keeps its mutually authenticated connection to clearing open between calls (one
/// TLS handshake, not one per request): ten reads and a close of the window go over one
/// connection. When that connection dies while idle, the next read goes over a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_reuses_its_connection_to_clearing_between_calls() {
    let (n, _stop, relay) = node_over_mtls_counted(true).await;
    let analyst = session(&n, "analyst", SWITCH, "clearing_analyst").await;
    for _ in 0..10 {
        let r = get(&n, &analyst, "/clearing/positions").await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let body = json!({"reason": "end of the business day", "window_id": 2}).to_string();
    let headers = [
        ("Cookie", analyst.0.as_str()),
        ("X-CSRF-Token", analyst.1.as_str()),
    ];
    let closed = request_with(
        n.addr,
        "POST",
        "/clearing/windows/close",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    let r = get(&n, &analyst, "/clearing/windows/2").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(relay.connections(), 1, "one connection for twelve calls");
    relay.cut();
    let r = get(&n, &analyst, "/clearing/positions").await;
    assert_eq!(r.status, 200, "after the connection died: {r:?}");
    assert_eq!(relay.connections(), 2);
}
