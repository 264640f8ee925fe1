//! The switch's HTTP face over a real socket: the store-and-forward view (`GET /saf`), its
//! gauges in `/metrics`, the lookup by RRN and the problem documents for bad input.

mod http_node;

use http_node::{commit, get, node, request};
use schemas::domain::ResponseCode;
use switch::sim::testkit;
use switch::store::{now_us, Store};

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
async fn reversals_waiting_in_the_nodes_spool_are_shown_beside_the_store_and_forward_queues() {
    let n = node().await;
    let (_, _, metrics) = get(n.addr, "/metrics").await;
    assert!(
        metrics.contains("switch_reversals_spooled 0\n"),
        "{metrics}"
    );
    // What the pipeline's spool sets while the database is away.
    n.metrics
        .reversals_spooled
        .store(3, std::sync::atomic::Ordering::Relaxed);
    let (_, _, metrics) = get(n.addr, "/metrics").await;
    assert!(metrics.contains("# TYPE switch_reversals_spooled gauge\nswitch_reversals_spooled 3\n"));
    let (status, _, body) = get(n.addr, "/saf").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reversals_spooled"], 3, "{body}");
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

/// The status, title and `status` member of a problem document answer, which must be one.
fn problem_of(reply: &http_node::Reply) -> (u16, String, serde_json::Value) {
    assert_eq!(
        reply.content_type(),
        "application/problem+json",
        "{reply:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&reply.body).expect("a JSON problem");
    assert_eq!(v["type"], "about:blank");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    (
        reply.status,
        v["title"].as_str().unwrap_or("").to_owned(),
        v["status"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_handler_serves_gets_a_problem_document() {
    let n = node().await;
    for path in ["/", "/nope", "/transaction", "/transactions/", "/saf/1"] {
        for method in ["GET", "POST"] {
            let reply = request(n.addr, method, path).await;
            assert_eq!(
                problem_of(&reply),
                (404, "Not Found".to_owned(), serde_json::json!(404)),
                "{method} {path}"
            );
        }
    }
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/saf",
        "/transactions",
        "/transactions/000000000041",
    ] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let reply = request(n.addr, method, path).await;
            assert_eq!(
                problem_of(&reply),
                (405, "Method Not Allowed".to_owned(), serde_json::json!(405)),
                "{method} {path}"
            );
            assert_eq!(reply.header("allow"), Some("GET,HEAD"), "{method} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rrn_that_is_not_utf8_gets_the_invalid_rrn_problem() {
    let n = node().await;
    for path in [
        "/transactions/%FF",
        "/transactions/%C3%28",
        "/transactions/00000000004%FF",
    ] {
        let reply = request(n.addr, "GET", path).await;
        assert_eq!(
            problem_of(&reply),
            (400, "Invalid RRN".to_owned(), serde_json::json!(400)),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saf_query_is_percent_decoded_and_strict() {
    let n = node().await;
    for seq in 50..57 {
        commit(&n.store, testkit::bank_timeout(&n.fx, seq, 100)).await;
    }
    // Accepted: percent-encoding is decoded, in values and names.
    for (query, listed) in [
        ("", 7),
        ("?limit=%35", 5),
        ("?%6Cimit=2", 2),
        ("?limit=0", 0),
        ("?limit=3&", 3),
        ("?limit=500", 7),
    ] {
        let (status, _, body) = get(n.addr, &format!("/saf{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["oldest"].as_array().map(Vec::len),
            Some(listed),
            "{query}"
        );
    }
    // Refused, each with its reason.
    for (query, title) in [
        ("limit=+5", "Invalid limit"),
        ("limit=%2B5", "Invalid limit"),
        ("limit=-1", "Invalid limit"),
        ("limit=x", "Invalid limit"),
        ("limit=", "Invalid limit"),
        ("limit", "Invalid limit"),
        ("limit=501", "Invalid limit"),
        ("limit=%FF", "Invalid limit"),
        ("limit=1&limit=2", "Repeated parameter"),
        ("limit=5&limit=5", "Repeated parameter"),
        ("since=1", "Unknown parameter"),
        ("limit=1&since=1", "Unknown parameter"),
    ] {
        let reply = request(n.addr, "GET", &format!("/saf?{query}")).await;
        assert_eq!(
            problem_of(&reply),
            (400, title.to_owned(), serde_json::json!(400)),
            "{query}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_answers_say_they_are_utf8() {
    let n = node().await;
    for (path, content_type) in [
        ("/health", "text/plain; charset=utf-8"),
        ("/ready", "text/plain; charset=utf-8"),
        // The Prometheus text exposition format's own content type.
        ("/metrics", "text/plain; version=0.0.4; charset=utf-8"),
    ] {
        let (status, got, _) = get(n.addr, path).await;
        assert_eq!((status, got.as_str()), (200, content_type), "{path}");
    }
}

/// `# TYPE` of each family in a scrape: name → type.
fn metric_types(scrape: &str) -> std::collections::BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_typed_counter_and_named_total() {
    let n = node().await;
    let (_, _, scrape) = get(n.addr, "/metrics").await;
    let types = metric_types(&scrape);
    for (name, kind) in [
        ("switch_writer_batches_total", "counter"),
        ("switch_writer_decisions_total", "counter"),
        ("switch_writer_queue_depth", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
        assert!(
            scrape.contains(&format!("\n{name} 0\n")),
            "{name}: {scrape}"
        );
    }
    // The old gauge names are gone.
    for old in ["switch_writer_batches", "switch_writer_decisions"] {
        assert!(!types.contains_key(old), "{old}");
    }
    // Prometheus naming: a counter ends in _total, nothing else does.
    for (name, kind) in &types {
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{name} is a {kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_tell_an_unreadable_backlog_from_an_empty_one() {
    let n = node().await;
    // Nothing pending: no switch_saf_pending samples, but the backlog was read.
    let (status, _, scrape) = get(n.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric_types(&scrape)
            .get("switch_saf_backlog_readable")
            .map(String::as_str),
        Some("gauge")
    );
    assert!(
        scrape.contains("\nswitch_saf_backlog_readable 1\n"),
        "{scrape}"
    );
    assert!(!scrape.contains("switch_saf_pending{"));
    // The store goes away: still 200 and still no samples, but now the scrape says why.
    n.store.close().await;
    let (status, _, scrape) = get(n.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        scrape.contains("\nswitch_saf_backlog_readable 0\n"),
        "{scrape}"
    );
    assert!(!scrape.contains("switch_saf_pending{"));
}
