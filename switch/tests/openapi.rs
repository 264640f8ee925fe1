//! The OpenAPI document of the switch's HTTP face (`schemas/openapi/switch.json`) against the
//! real router on a socket. A document nobody checks drifts from the code; these tests make the
//! drift fail: a route added to `src/http.rs` without documenting it, a documented path the
//! router does not serve, a status code, content type or JSON field the document does not
//! list, and a document that is not well-formed OpenAPI 3.1 (dangling `$ref`s, operations
//! without an id or a 2xx answer, examples that contradict their schemas).

#[path = "../../clearing/tests/common/camt053_schema.rs"]
mod camt053_schema;
mod http_node;

use std::collections::{BTreeMap, BTreeSet};

use http_node::{commit, node, node_with, request, request_with, Reply};
use schemas::domain::ResponseCode;
use serde_json::{json, Value};
use switch::sim::testkit;
use switch::store::writer;
use switch::store::{now_us, SqliteStore, Store};

/// The document under test.
const DOCUMENT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../schemas/openapi/switch.json"
));

/// The router's source: its `.route(` calls are the routes the document must list.
const HTTP_RS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http.rs"));

/// The operations an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The RRN of the documented example, which the tests commit so the example is found.
const EXAMPLE_RRN: &str = "000000000041";

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("schemas/openapi/switch.json is JSON")
}

/// `(path, method)` of every operation in the document, with the operation.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.clone(), method.to_owned(), op));
            }
        }
    }
    out
}

/// `v`, or what its `$ref` points to in the document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("a local $ref");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("{r} dangles")),
            )
        }
        None => v,
    }
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// A validator for `schema`, a schema of the document: the document's components ride along
/// at the root, so `#/components/schemas/...` resolves as it does in the document.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    let obj = root.as_object_mut().expect("a schema object");
    assert!(!obj.contains_key("components"), "no schema uses that key");
    obj.insert("components".into(), doc["components"].clone());
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

/// Why `instance` does not satisfy `schema`, or nothing.
fn violations(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    validator(doc, schema)
        .iter_errors(instance)
        .map(|e| format!("{} (at {})", e, e.instance_path()))
        .collect()
}

fn is_json(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    essence == "application/json" || essence.ends_with("+json")
}

/// The media type key of `content` that describes `content_type`: the same type with the same
/// parameters, or the same type when the key names no parameters.
fn media_key<'a>(
    content: &'a serde_json::Map<String, Value>,
    content_type: &str,
) -> Option<&'a str> {
    let parts = |s: &str| -> Vec<String> {
        s.split(';')
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let got = parts(content_type);
    let exact = content.keys().find(|k| parts(k) == got);
    exact
        .or_else(|| {
            content.keys().find(|k| {
                let key = parts(k);
                key.len() == 1 && got.first() == key.first()
            })
        })
        .map(String::as_str)
}

/// Checks `reply` to `method path` (a documented path template) against the document, and
/// returns the documented answer it matched: (status, media type key).
fn conformance(
    doc: &Value,
    method: &str,
    path: &str,
    reply: &Reply,
) -> Result<(u16, String), String> {
    let op = doc["paths"]
        .get(path)
        .and_then(|item| item.get(method))
        .ok_or_else(|| format!("{method} {path} is not documented"))?;
    let response = op["responses"]
        .get(reply.status.to_string())
        .map(|r| resolve(doc, r))
        .ok_or_else(|| {
            format!(
                "{method} {path}: status {} is not documented ({})",
                reply.status, reply.body
            )
        })?;
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return if reply.body.is_empty() {
            Ok((reply.status, String::new()))
        } else {
            Err(format!(
                "{method} {path} {}: a body where none is documented",
                reply.status
            ))
        };
    };
    let key = media_key(content, reply.content_type()).ok_or_else(|| {
        format!(
            "{method} {path} {}: content type {:?} is not documented (documented: {:?})",
            reply.status,
            reply.content_type(),
            content.keys().collect::<Vec<_>>()
        )
    })?;
    let instance = if is_json(key) {
        serde_json::from_str(&reply.body)
            .map_err(|e| format!("{method} {path} {}: body is not JSON: {e}", reply.status))?
    } else {
        Value::String(reply.body.clone())
    };
    let schema = content[key]
        .get("schema")
        .ok_or_else(|| format!("{method} {path} {} {key}: no schema", reply.status))?;
    let errors = violations(doc, schema, &instance);
    if !errors.is_empty() {
        return Err(format!(
            "{method} {path} {} {key}: the body breaks the documented schema: {errors:?}\n{}",
            reply.status, reply.body
        ));
    }
    if key == "application/problem+json" && instance["status"] != reply.status {
        return Err(format!(
            "{method} {path}: problem status is not the HTTP status"
        ));
    }
    Ok((reply.status, key.to_owned()))
}

/// Every documented answer: (path, method, status, media type key or "" without content).
fn documented_answers(doc: &Value) -> BTreeSet<(String, String, u16, String)> {
    let mut out = BTreeSet::new();
    for (path, method, op) in operations(doc) {
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let status: u16 = status.parse().expect("a numeric status");
            match resolve(doc, response)
                .get("content")
                .and_then(Value::as_object)
            {
                Some(content) => {
                    for key in content.keys() {
                        out.insert((path.clone(), method.clone(), status, key.clone()));
                    }
                }
                None => {
                    out.insert((path.clone(), method.clone(), status, String::new()));
                }
            }
        }
    }
    out
}

/// Checks each answer against the document and remembers which documented answers were seen.
struct Contract {
    doc: Value,
    seen: BTreeSet<(String, String, u16, String)>,
}

impl Contract {
    fn new() -> Self {
        Contract {
            doc: document(),
            seen: BTreeSet::new(),
        }
    }

    /// GETs `url` (an instance of the documented `path`) as the tests' reader, checks the
    /// answer, returns it.
    async fn get(&mut self, addr: std::net::SocketAddr, path: &str, url: &str) -> Reply {
        let reply = request(addr, "GET", url).await;
        self.check("get", path, url, reply)
    }

    /// Sends `method url` with `headers` and `body`, checks the answer, returns it.
    async fn send(
        &mut self,
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let body = body.map(|b| b.to_string());
        let reply = request_with(addr, method, url, headers, body.as_deref()).await;
        self.check(&method.to_ascii_lowercase(), path, url, reply)
    }

    /// Sends `method url` with `headers` and a body of another type (CSV, JPEG).
    async fn send_bytes(
        &mut self,
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: (&str, &[u8]),
    ) -> Reply {
        let reply = http_node::request_bytes(addr, method, url, headers, Some(body)).await;
        self.check(&method.to_ascii_lowercase(), path, url, reply)
    }

    fn check(&mut self, method: &str, path: &str, url: &str, reply: Reply) -> Reply {
        match conformance(&self.doc, method, path, &reply) {
            Ok((status, key)) => {
                self.seen
                    .insert((path.to_owned(), method.to_owned(), status, key));
            }
            Err(e) => panic!("{method} {url}: {e}"),
        }
        reply
    }

    fn json(reply: &Reply) -> Value {
        serde_json::from_str(&reply.body).expect("a JSON body")
    }
}

#[test]
fn the_document_is_well_formed_openapi_3_1() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["jsonSchemaDialect"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        doc["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "info.version is the switch crate's version"
    );
    for field in ["title", "description"] {
        assert!(doc["info"][field].as_str().is_some_and(|s| !s.is_empty()));
    }
    // The server is where `switch demo` listens by default.
    let main_rs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs"));
    let server = doc["servers"][0]["url"].as_str().expect("a server");
    let host_port = server.strip_prefix("http://").expect("plain HTTP");
    assert!(
        main_rs.contains(&format!("default_value = \"{host_port}\")]\n        http:")),
        "{server} is not the default of `switch demo --http`"
    );

    // Every $ref points into the document, and every component is used.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r}: not local"));
        assert!(
            pointer.starts_with("/components/"),
            "{r}: refs point to components"
        );
        assert!(doc.pointer(pointer).is_some(), "{r} dangles");
    }
    // Security schemes are named by security requirements (the document's and operations'),
    // not by `$ref`.
    let mut required_schemes = BTreeSet::new();
    let requirements = std::iter::once(&doc["security"]).chain(
        operations(&doc)
            .into_iter()
            .map(|(_, _, op)| &op["security"]),
    );
    for requirement in requirements.filter_map(Value::as_array).flatten() {
        required_schemes.extend(
            requirement
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys().cloned()),
        );
    }
    for (section, members) in doc["components"].as_object().expect("components") {
        for name in members.as_object().expect("a component map").keys() {
            let r = format!("#/components/{section}/{name}");
            if section == "securitySchemes" {
                assert!(required_schemes.contains(name), "{r} is never required");
            } else {
                assert!(all.contains(&r), "{r} is never used");
            }
        }
    }
    for name in &required_schemes {
        assert!(
            doc["components"]["securitySchemes"].get(name).is_some(),
            "security scheme {name} is not defined"
        );
    }

    // Operations: a unique id, a description, at least one 2xx answer; every answer described,
    // with a schema per media type, and examples that satisfy their schemas.
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        assert!(
            op["description"].as_str().is_some_and(|d| d.len() > 40),
            "{method} {path}: say why it exists"
        );
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no 2xx answer"
        );
        for (status, response) in responses {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok(),
                "{method} {path}: status {status}"
            );
            let response = resolve(&doc, response);
            assert!(response["description"].is_string(), "{path} {status}");
            // 204 No Content has no body to describe (RFC 9110 §15.3.5); every other answer does.
            if status == "204" {
                assert!(response.get("content").is_none(), "{path} 204 with content");
                continue;
            }
            for (key, media) in response["content"].as_object().expect("content") {
                let schema = media
                    .get("schema")
                    .unwrap_or_else(|| panic!("{path} {status} {key}: no schema"));
                if let Some(example) = media.get("example") {
                    let errors = violations(&doc, schema, example);
                    assert!(
                        errors.is_empty(),
                        "{path} {status} {key} example: {errors:?}"
                    );
                }
            }
        }
        // Path templates and path parameters name each other; parameter examples are valid.
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let in_path: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{path}: path parameters are required");
                p["name"].as_str().expect("a name")
            })
            .collect();
        assert_eq!(in_template, in_path, "{method} {path}");
        for p in &params {
            let errors = violations(&doc, &p["schema"], &p["example"]);
            assert!(errors.is_empty(), "{path} {}: {errors:?}", p["name"]);
        }
    }

    // Component schemas are JSON Schema 2020-12.
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components/schemas/{name}: {e}");
        }
    }
}

/// What ends the method router of a `.route(` call in the router's source.
const AFTER_ROUTE: [&str; 4] = [
    ".route(",
    ".method_not_allowed_fallback(",
    ".fallback(",
    ".with_state(",
];

#[test]
fn where_the_switch_lists_its_endpoints_it_lists_every_documented_path() {
    let doc = document();
    let paths: Vec<&String> = doc["paths"].as_object().expect("paths").keys().collect();
    assert!(paths.len() >= 5, "{paths:?}");
    // `switch demo --help`: the doc comment of `--http`.
    let main_rs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs"));
    let (before, _) = main_rs
        .split_once("\n        http: SocketAddr,")
        .expect("the --http option of switch demo");
    let help: Vec<&str> = before
        .lines()
        .rev()
        .map(str::trim)
        .skip_while(|l| l.starts_with("#["))
        .take_while(|l| l.starts_with("///"))
        .collect();
    let help = help.concat();
    // `switch demo --describe`.
    let described =
        switch::sim::demo::describe(&switch::sim::demo::DemoOptions::default()).expect("describe");
    let http = described
        .lines()
        .find(|l| l.starts_with("HTTP: "))
        .expect("an HTTP line");
    for path in paths {
        assert!(
            help.contains(path.as_str()),
            "--http help {help:?} lacks {path}"
        );
        assert!(
            http.contains(path.as_str()),
            "--describe {http:?} lacks {path}"
        );
    }
}

/// `(path, methods)` of each `.route(` in `src/http.rs`, e.g. `/saf` → `{get}`.
fn routes_in_source() -> BTreeMap<String, BTreeSet<String>> {
    routes_in(HTTP_RS)
}

/// `(path, methods)` of each `.route(` in `source`.
fn routes_in(source: &str) -> BTreeMap<String, BTreeSet<String>> {
    // Routes added any other way would escape this parse: make that fail too. A fallback
    // handler (`.fallback(`, `.method_not_allowed_fallback(`) answers what no route serves and
    // adds no route, so it is allowed; a fallback *service* can be a whole router, so it is not.
    for other in [
        ".nest(",
        ".nest_service(",
        ".merge(",
        ".route_service(",
        ".fallback_service(",
        "any(",
    ] {
        assert!(
            !source.contains(other),
            "http.rs uses {other}: teach tests/openapi.rs to read it"
        );
    }
    let mut routes = BTreeMap::new();
    for chunk in source.split(".route(").skip(1) {
        let rest = chunk
            .trim_start()
            .strip_prefix('"')
            .expect("a literal path");
        let (path, handler) = rest.split_once('"').expect("a closing quote");
        // The method router is what follows up to the end of the call.
        let handler = AFTER_ROUTE
            .iter()
            .fold(handler, |h, end| h.split(end).next().unwrap_or(""));
        let methods: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| {
                handler.match_indices(&format!("{m}(")).any(|(i, _)| {
                    !handler[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
            .map(|m| (*m).to_owned())
            .collect();
        assert!(!methods.is_empty(), "route {path}: no method found");
        assert!(
            routes.insert(path.to_owned(), methods).is_none(),
            "{path} twice"
        );
    }
    routes
}

#[test]
fn the_route_parser_reads_fallbacks_and_refuses_what_hides_routes() {
    let with_fallbacks = r#"Router::new()
        .route("/a", get(a))
        .route("/b", get(b).post(c))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)"#;
    let routes = routes_in(with_fallbacks);
    assert_eq!(
        routes,
        BTreeMap::from([
            ("/a".to_owned(), BTreeSet::from(["get".to_owned()])),
            (
                "/b".to_owned(),
                BTreeSet::from(["get".to_owned(), "post".to_owned()])
            ),
        ])
    );
    for hidden in [
        r#".route("/a", get(a)).nest("/x", other)"#,
        r#".route("/a", get(a)).nest_service("/x", svc)"#,
        r#".route("/a", get(a)).merge(other)"#,
        r#".route("/a", get(a)).route_service("/x", svc)"#,
        r#".route("/a", get(a)).fallback_service(other)"#,
        r#".route("/a", any(a))"#,
    ] {
        let parsed = std::panic::catch_unwind(|| routes_in(hidden));
        assert!(parsed.is_err(), "{hidden} passes");
    }
}

#[test]
fn the_routes_of_http_rs_are_the_documented_paths() {
    let doc = document();
    let routes = routes_in_source();
    assert!(routes.len() >= 5, "{routes:?}");
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, method, _) in operations(&doc) {
        documented.entry(path).or_default().insert(method);
    }
    assert_eq!(
        routes, documented,
        "left: the router in src/http.rs, right: schemas/openapi/switch.json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_path_is_served() {
    let n = node().await;
    let approval = testkit::stand_in(&n.fx, 41, 2_000);
    commit(&n.store, approval).await;
    let doc = document();
    let mut methods_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, method, _) in operations(&doc) {
        methods_of
            .entry(path)
            .or_default()
            .insert(method.to_ascii_uppercase());
    }
    for (path, method, op) in operations(&doc) {
        let mut url = path.clone();
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "path" {
                let name = p["name"].as_str().expect("a name");
                let example = p["example"].as_str().expect("a path parameter example");
                url = url.replace(&format!("{{{name}}}"), example);
            }
        }
        // A personalisation file's id is made when the file is opened: the node's own.
        if path == "/perso-files/{id}" {
            url = format!("/perso-files/{}", n.perso_file);
        }
        assert!(!url.contains('{'), "{url}");
        // What a method not documented for the path gets: 405 and the methods it takes.
        let documented = &methods_of[&path];
        let mut allowed: BTreeSet<String> = documented.clone();
        if allowed.contains("GET") {
            allowed.insert("HEAD".into());
        }
        for other in ["GET", "POST", "PUT", "DELETE"] {
            if documented.contains(other) {
                continue;
            }
            let reply = request(n.addr, other, &url).await;
            assert_routing_problem(&doc, &reply, 405, "Method Not Allowed");
            let allow: BTreeSet<String> = reply
                .header("allow")
                .unwrap_or("")
                .split(',')
                .map(str::to_owned)
                .collect();
            assert_eq!(allow, allowed, "{other} {url}");
        }
        // The operator API's POSTs and DELETEs change state and need bodies and sessions:
        // `every_documented_answer_is_given_and_matches_the_document` sends them.
        if method != "get" {
            continue;
        }
        // The reader (an auditor) reads everything but the card bureau's files, which only
        // issuance operators read.
        let key = if path.starts_with("/perso-files") {
            http_node::ISSUER_KEY
        } else {
            http_node::READER_KEY
        };
        let auth = format!("Bearer {key}");
        let headers = [("Authorization", auth.as_str())];
        let reply = request_with(n.addr, "GET", &url, &headers, None).await;
        let (status, _) =
            conformance(&doc, &method, &path, &reply).unwrap_or_else(|e| panic!("{e}"));
        assert!((200..300).contains(&status), "{method} {url}: {reply:?}");
        // As the document's description says: HEAD is answered, other methods get 405 with a
        // problem document and the methods that are allowed.
        let head = request_with(n.addr, "HEAD", &url, &headers, None).await;
        assert_eq!(
            (head.status, head.body.as_str()),
            (status, ""),
            "HEAD {url}"
        );
    }
    // And what is not documented is not served: a problem document says so.
    for url in ["/transactions/", "/health/", "/saf/x", "/"] {
        let reply = request(n.addr, "GET", url).await;
        assert_routing_problem(&doc, &reply, 404, "Not Found");
        let post = request(n.addr, "POST", url).await;
        assert_routing_problem(&doc, &post, 404, "Not Found");
    }
}

/// `reply` is the problem document the router gives when no handler serves a request (an
/// unknown path, another method), as the document's description says: a valid `Problem`.
fn assert_routing_problem(doc: &Value, reply: &Reply, status: u16, title: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.content_type(),
        "application/problem+json",
        "{reply:?}"
    );
    let body: Value = serde_json::from_str(&reply.body).expect("a JSON problem");
    let errors = violations(
        doc,
        &json!({ "$ref": "#/components/schemas/Problem" }),
        &body,
    );
    assert!(errors.is_empty(), "{errors:?}: {body}");
    assert_eq!(
        (&body["status"], &body["title"]),
        (&json!(status), &json!(title))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_answer_is_given_and_matches_the_document() {
    // A writer on the test's runtime, so the test can stop it.
    let mut n = node_with(writer::WriterConfig {
        dedicated_thread: false,
        ..writer::config_for::<SqliteStore>()
    })
    .await;
    let mut c = Contract::new();
    let addr = n.addr;

    assert_eq!(c.get(addr, "/health", "/health").await.body, "ok\n");
    assert_eq!(c.get(addr, "/ready", "/ready").await.body, "ready\n");
    c.get(addr, "/metrics", "/metrics").await;

    operator_answers(&mut c, &n).await;
    card_answers(&mut c, &n).await;
    card_relay_answers(&mut c, &n).await;
    settlement_answers(&mut c, &n).await;
    api_key_answers(&mut c, &n).await;
    reconciliation_answers(&mut c, &n).await;

    // The empty backlog, then a reversal held behind a stand-in advice the bank refused once.
    let saf = Contract::json(&c.get(addr, "/saf", "/saf").await);
    assert_eq!(saf["queues"].as_array().map(Vec::len), Some(0));
    let approval = testkit::stand_in(&n.fx, 41, 2_000);
    let advice_id = approval.advice.as_ref().expect("an advice").advice_id;
    let reversal = testkit::reversal_of(&n.fx, &approval, 42);
    commit(&n.store, approval).await;
    commit(&n.store, reversal).await;
    n.store
        .record_advice_attempt(advice_id, now_us(), Some(ResponseCode::SystemMalfunction))
        .await
        .expect("advice attempt");
    let saf = Contract::json(&c.get(addr, "/saf", "/saf").await);
    let oldest = saf["oldest"].as_array().expect("oldest");
    assert_eq!(oldest.len(), 2, "{saf}");
    assert!(oldest.iter().any(|i| i["held"] == true));
    assert!(oldest.iter().any(|i| i["last_response_code"] == "96"));
    assert!(oldest.iter().any(|i| i["last_response_code"].is_null()));
    for url in [
        "/saf?limit=0",
        "/saf?limit=1",
        "/saf?limit=500",
        "/saf?limit=%35",
    ] {
        c.get(addr, "/saf", url).await;
    }
    let metrics = c.get(addr, "/metrics", "/metrics").await;
    assert!(metrics.body.contains("switch_saf_held{kind=\"reversal\""));
    assert!(metrics.body.contains("\nswitch_saf_backlog_readable 1\n"));

    // By RRN: the stand-in approval and its reversal (no legs, no event; an original), a
    // purchase that moved money (a leg, an event), and a decline.
    let both = Contract::json(
        &c.get(
            addr,
            "/transactions/{rrn}",
            &format!("/transactions/{EXAMPLE_RRN}"),
        )
        .await,
    );
    let transactions = both["transactions"].as_array().expect("transactions");
    let kinds: BTreeSet<&str> = transactions
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["purchase", "reversal"]));
    assert!(transactions
        .iter()
        .any(|t| t["original_transaction_id"].is_string()));
    commit(&n.store, testkit::debit(&n.fx, n.fx.personal, 43, 1_234)).await;
    let debit = Contract::json(
        &c.get(addr, "/transactions/{rrn}", "/transactions/000000000043")
            .await,
    );
    let t = &debit["transactions"][0];
    assert_eq!(
        (&t["amount"], &t["amount_fen"]),
        (&json!("12.34"), &json!(1_234))
    );
    assert!(t["event_id"].is_string());
    assert_eq!(t["legs"][0]["kind"], "personal_account");
    commit(
        &n.store,
        testkit::decline(&n.fx, 44, 5, ResponseCode::DoNotHonour),
    )
    .await;
    let decline = Contract::json(
        &c.get(addr, "/transactions/{rrn}", "/transactions/000000000044")
            .await,
    );
    assert_eq!(decline["transactions"][0]["amount"], "0.05");
    assert_eq!(decline["transactions"][0]["approved"], false);

    // Bad input and nothing found.
    for url in [
        "/saf?limit=501",
        "/saf?limit=-1",
        "/saf?limit=x",
        "/saf?limit",
        "/saf?limit=+5",
        "/saf?limit=1&limit=2",
        "/saf?since=1",
        "/saf?limit=1&since=1",
    ] {
        assert_eq!(c.get(addr, "/saf", url).await.status, 400, "{url}");
    }
    for url in [
        "/transactions/not-an-rrn",
        "/transactions/00000000004%21",
        "/transactions/%FF",
    ] {
        assert_eq!(
            c.get(addr, "/transactions/{rrn}", url).await.status,
            400,
            "{url}"
        );
    }
    assert_eq!(
        c.get(addr, "/transactions/{rrn}", "/transactions/000000000000")
            .await
            .status,
        404
    );

    // The writer stops: not ready.
    n.writer_task.abort();
    let _ = (&mut n.writer_task).await;
    let ready = Contract::json(&c.get(addr, "/ready", "/ready").await);
    assert_eq!(ready["detail"], "the decision writer has stopped");
    // The store goes away: not ready, and the lookups say so.
    n.store.close().await;
    let ready = Contract::json(&c.get(addr, "/ready", "/ready").await);
    assert_eq!(ready["detail"], "the store is unreachable");
    assert_eq!(c.get(addr, "/saf", "/saf").await.status, 503);
    assert_eq!(
        c.get(
            addr,
            "/transactions/{rrn}",
            &format!("/transactions/{EXAMPLE_RRN}")
        )
        .await
        .status,
        503
    );
    // /metrics still answers without the store, and says the backlog could not be read.
    let metrics = c.get(addr, "/metrics", "/metrics").await;
    assert!(!metrics.body.contains("switch_saf_held{"));
    assert!(metrics.body.contains("\nswitch_saf_backlog_readable 0\n"));

    let documented = documented_answers(&c.doc);
    let never: Vec<_> = documented.difference(&c.seen).collect();
    assert!(never.is_empty(), "documented answers never seen: {never:?}");
}

/// The bank cut-over's answers (`/reconciliations`, `/cutover`), each once: a clearing analyst
/// of the switch, the reader (an auditor: reads, resolves nothing) and the issuance operator
/// (reads no clearing). The node has no bank links, so a cut-over reconciles nobody; the
/// exception resolved is one the test records in the store.
async fn reconciliation_answers(c: &mut Contract, n: &http_node::Node) {
    use switch::store::cutover::BankAnswer;
    use switch::store::CutoverStore;
    let addr = n.addr;
    let analyst = switch::sim::operator_kit::api_key(
        &*n.store,
        switch::sim::operator_kit::SWITCH,
        "clearing_analyst",
    )
    .await
    .expect("key");
    let analyst = format!("Bearer {analyst}");
    let analyst = [("Authorization", analyst.as_str())];
    let reader = format!("Bearer {}", http_node::READER_KEY);
    let reader = [("Authorization", reader.as_str())];
    let issuer = format!("Bearer {}", http_node::ISSUER_KEY);
    let issuer = [("Authorization", issuer.as_str())];
    // An out-of-balance day of the fixture's bank: one purchase the bank does not have.
    let today = switch::wire::settlement_day::day_of(now_us()).expect("today");
    let yesterday = today.pred_opt().expect("yesterday");
    let id = n
        .store
        .claim_bank_reconciliation(&n.fx.bank, yesterday, now_us(), now_us() + 1)
        .await
        .expect("claim")
        .expect("claimed");
    let mut ours = schemas::iso8583::ReconciliationTotals::default();
    ours.add(
        schemas::iso8583::TotalsLine::Debits,
        1,
        schemas::domain::AmountFen::new(2_000).expect("fen"),
    )
    .expect("add");
    let theirs = schemas::iso8583::ReconciliationTotals::default();
    let answer = BankAnswer {
        switch_totals: ours,
        bank_totals: theirs,
        bank_settlement_code: "2".into(),
        differing_fields: ours.differing_fields(&theirs),
        stan: "000123".into(),
        at_us: now_us(),
    };
    assert!(n
        .store
        .finish_bank_reconciliation(id, &answer)
        .await
        .expect("finish"));

    let list = "/reconciliations";
    let page = Contract::json(
        &c.get(addr, list, "/reconciliations?status=out_of_balance")
            .await,
    );
    assert_eq!(page["items"][0]["differing"][0]["field"], 76, "{page}");
    for (url, headers, status) in [
        ("/reconciliations?status=open", &reader[..], 400),
        ("/reconciliations", &[][..], 401),
        ("/reconciliations", &issuer[..], 403),
    ] {
        let r = c.send(addr, "GET", list, url, headers, None).await;
        assert_eq!(r.status, status, "{url}: {r:?}");
    }

    let path = "/reconciliations/{id}/resolve";
    let url = format!("/reconciliations/{id}/resolve");
    let reason = json!({ "reason": "the bank posts the purchase today" });
    let keyed = [analyst[0], ("Idempotency-Key", "resolve-1")];
    for (url, headers, body, status) in [
        (url.as_str(), &keyed[..], json!({ "reason": "" }), 400),
        (url.as_str(), &[][..], reason.clone(), 401),
        (url.as_str(), &reader[..], reason.clone(), 403),
        (
            "/reconciliations/999999/resolve",
            &analyst[..],
            reason.clone(),
            404,
        ),
        (url.as_str(), &analyst[..], reason.clone(), 200),
        (url.as_str(), &analyst[..], reason.clone(), 409),
    ] {
        let r = c.send(addr, "POST", path, url, headers, Some(body)).await;
        assert_eq!(r.status, status, "{url}: {r:?}");
    }
    let r = c
        .send(
            addr,
            "POST",
            path,
            &url,
            &keyed,
            Some(json!({ "reason": "another" })),
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");

    let day = |d: chrono::NaiveDate| json!({ "day": d.format("%Y-%m-%d").to_string() });
    let tomorrow = today.succ_opt().expect("tomorrow");
    let keyed = [analyst[0], ("Idempotency-Key", "cutover-1")];
    for (headers, body, status) in [
        (&keyed[..], day(yesterday), 200),
        (&keyed[..], day(tomorrow), 422),
        (&analyst[..], json!({ "day": "yesterday" }), 400),
        (&analyst[..], day(tomorrow), 409),
        (&[][..], day(yesterday), 401),
        (&reader[..], day(yesterday), 403),
    ] {
        let r = c
            .send(addr, "POST", "/cutover", "/cutover", headers, Some(body))
            .await;
        assert_eq!(r.status, status, "{r:?}");
    }
}

/// A request of the card routes: URL, headers, JSON body, the status it must get.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, Value, u16);

/// The card management system's answers, each once: an issuance operator, a counter clerk and
/// the reader (an auditor: reads, no writes) of the switch's institution.
async fn card_answers(c: &mut Contract, n: &http_node::Node) {
    use http_node::{counter_pin_block, EXAMPLE_JOB, ISSUER_KEY};
    use switch::sim::operator_kit::{self, SWITCH};
    let addr = n.addr;
    let issuer = format!("Bearer {ISSUER_KEY}");
    let clerk_key = operator_kit::api_key(&*n.store, SWITCH, "counter_clerk")
        .await
        .expect("clerk key");
    let clerk = format!("Bearer {clerk_key}");
    let reader = format!("Bearer {}", http_node::READER_KEY);
    let as_issuer = [("Authorization", issuer.as_str())];
    let as_clerk = [("Authorization", clerk.as_str())];
    let as_reader = [("Authorization", reader.as_str())];
    let missing = "/cards/999999";
    // Batches: 202, 400 (no batch id), 401, 403 (the reader), 422 (a bad batch id).
    let csv = format!(
        "{}{},李四,居民,410102,{}\n",
        http_node::BATCH_HEADER,
        http_node::citizen(950),
        n.fx.bank
    );
    for (url, headers, status) in [
        (
            "/application-batches?batch_id=contract-1",
            &as_issuer[..],
            202,
        ),
        ("/application-batches", &as_issuer[..], 400),
        ("/application-batches?batch_id=contract-1", &[][..], 401),
        (
            "/application-batches?batch_id=contract-1",
            &as_reader[..],
            403,
        ),
        (
            "/application-batches?batch_id=not%20valid",
            &as_issuer[..],
            422,
        ),
    ] {
        let r = c
            .send_bytes(
                addr,
                "POST",
                "/application-batches",
                url,
                headers,
                ("text/csv", csv.as_bytes()),
            )
            .await;
        assert_eq!(r.status, status, "{url}: {r:?}");
    }
    // Import jobs and their error reports.
    let job = format!("/import-jobs/{EXAMPLE_JOB}");
    let nojob = "/import-jobs/0190f5a0-0000-7000-8000-0000000000aa";
    for (path, url, status) in [
        ("/import-jobs/{id}", job.clone(), 200),
        ("/import-jobs/{id}", nojob.to_owned(), 404),
        ("/import-jobs/{id}/errors", format!("{job}/errors"), 200),
        ("/import-jobs/{id}/errors", format!("{nojob}/errors"), 404),
    ] {
        assert_eq!(c.get(addr, path, &url).await.status, status, "{url}");
    }
    let report = c
        .get(addr, "/import-jobs/{id}/errors", &format!("{job}/errors"))
        .await;
    assert_eq!(
        report.body,
        "row,field,reason\n2,citizen_id,check character is wrong\n"
    );
    // Applications.
    let app = n.application;
    for (path, url, status) in [
        (
            "/applications",
            "/applications?batch_id=fx-901".to_owned(),
            200,
        ),
        ("/applications", "/applications?limit=0".to_owned(), 400),
        ("/applications/{id}", format!("/applications/{app}"), 200),
        ("/applications/{id}", "/applications/999999".to_owned(), 404),
    ] {
        assert_eq!(c.get(addr, path, &url).await.status, status, "{url}");
    }
    let listed = Contract::json(
        &c.get(addr, "/applications", "/applications?batch_id=fx-901")
            .await,
    );
    assert_eq!(listed["items"][0]["application_id"], app);
    let jpeg = switch::cms::photo::sample_jpeg(358, 441);
    let photo = format!("/applications/{app}/photo");
    for (url, headers, body, status) in [
        (photo.as_str(), &as_issuer[..], &jpeg[..], 204),
        ("/applications/999999/photo", &as_issuer[..], &jpeg[..], 404),
        (photo.as_str(), &as_issuer[..], &b"not a jpeg"[..], 422),
        (photo.as_str(), &as_reader[..], &jpeg[..], 403),
        (photo.as_str(), &[][..], &jpeg[..], 401),
    ] {
        let r = c
            .send_bytes(
                addr,
                "PUT",
                "/applications/{id}/photo",
                url,
                headers,
                ("image/jpeg", body),
            )
            .await;
        assert_eq!(r.status, status, "{url}: {r:?}");
    }
    let pin = json!({"pin_block": counter_pin_block(&n.world)});
    let issue = format!("/applications/{app}/issue");
    for (url, headers, body, status) in [
        (issue.as_str(), &as_issuer[..], pin.clone(), 201),
        (issue.as_str(), &as_issuer[..], pin.clone(), 409),
        (
            issue.as_str(),
            &as_issuer[..],
            json!({"pin_block": "zz"}),
            400,
        ),
        (issue.as_str(), &as_reader[..], pin.clone(), 403),
        (issue.as_str(), &[][..], pin.clone(), 401),
        (
            "/applications/999999/issue",
            &as_issuer[..],
            pin.clone(),
            404,
        ),
    ] {
        let r = c
            .send(
                addr,
                "POST",
                "/applications/{id}/issue",
                url,
                headers,
                Some(body),
            )
            .await;
        assert_eq!(r.status, status, "{url}: {r:?}");
    }
    // Personalisation files: seen by issuance operators of the bureaus and the switch.
    let other_bank =
        operator_kit::api_key(&*n.store, operator_kit::OTHER_BANK, "issuance_operator")
            .await
            .expect("bank key");
    let other_bank = format!("Bearer {other_bank}");
    let as_bank = [("Authorization", other_bank.as_str())];
    assert_eq!(
        c.send(
            addr,
            "GET",
            "/perso-files",
            "/perso-files",
            &as_issuer,
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        c.get(addr, "/perso-files", "/perso-files").await.status,
        403
    );
    assert_eq!(
        c.send(addr, "GET", "/perso-files", "/perso-files", &[], None)
            .await
            .status,
        401
    );
    assert_eq!(
        c.send(addr, "GET", "/perso-files", "/perso-files", &as_bank, None)
            .await
            .status,
        404
    );
    for (headers, status) in [
        (&as_issuer[..], 201),
        (&as_issuer[..], 409),
        (&as_reader[..], 403),
        (&[][..], 401),
        (&as_bank[..], 404),
    ] {
        let r = c
            .send(addr, "POST", "/perso-files", "/perso-files", headers, None)
            .await;
        assert_eq!(r.status, status, "{r:?}");
    }
    let file = format!("/perso-files/{}", n.perso_file);
    for (url, headers, status) in [
        (file.as_str(), &as_issuer[..], 200),
        (
            "/perso-files/0190f5a0-0000-7000-8000-0000000000ff",
            &as_issuer[..],
            404,
        ),
        (file.as_str(), &as_reader[..], 403),
        (file.as_str(), &[][..], 401),
    ] {
        let r = c
            .send(addr, "GET", "/perso-files/{id}", url, headers, None)
            .await;
        assert_eq!(r.status, status, "{url}: {r:?}");
    }
    // Cards: list, read (ETag), and changes with If-Match.
    for (path, url, status) in [
        ("/cards", "/cards?pan_last4=0001".to_owned(), 200),
        ("/cards", "/cards?pan_last4=1".to_owned(), 400),
        ("/cards/{id}", format!("/cards/{}", n.cms_card), 200),
        ("/cards/{id}", missing.to_owned(), 404),
    ] {
        assert_eq!(c.get(addr, path, &url).await.status, status, "{url}");
    }
    for (path, url) in [
        ("/applications", "/applications"),
        ("/applications/{id}", "/applications/2"),
        ("/import-jobs/{id}", job.as_str()),
        ("/import-jobs/{id}/errors", "/import-jobs/x/errors"),
        ("/cards", "/cards"),
        ("/cards/{id}", "/cards/1"),
    ] {
        assert_eq!(
            c.send(addr, "GET", path, url, &[], None).await.status,
            401,
            "{url}"
        );
    }
    let nobody = operator_kit::api_key(&*n.store, SWITCH, "hospital_cashier")
        .await
        .expect("cashier key");
    let nobody = format!("Bearer {nobody}");
    for (path, url) in [
        ("/applications", "/applications"),
        ("/applications/{id}", "/applications/2"),
        ("/import-jobs/{id}", job.as_str()),
        ("/import-jobs/{id}/errors", "/import-jobs/x/errors"),
        ("/cards", "/cards"),
        ("/cards/{id}", "/cards/1"),
    ] {
        let r = c
            .send(
                addr,
                "GET",
                path,
                url,
                &[("Authorization", nobody.as_str())],
                None,
            )
            .await;
        assert_eq!(r.status, 403, "{url}");
    }
    let card = n.cms_card;
    let version = |r: &Reply| r.header("etag").expect("an ETag").to_owned();
    let read = c.get(addr, "/cards/{id}", &format!("/cards/{card}")).await;
    let v1 = version(&read);
    let reason = json!({"reason": "handed over at counter 3"});
    let op = format!("/cards/{card}/hand-over");
    let cases: Vec<Case> = vec![
        (op.clone(), vec![as_clerk[0]], reason.clone(), 428),
        (
            op.clone(),
            vec![as_clerk[0], ("If-Match", "\"999\"")],
            reason.clone(),
            412,
        ),
        (
            op.clone(),
            vec![as_clerk[0], ("If-Match", &v1)],
            json!({}),
            400,
        ),
        (
            op.clone(),
            vec![as_reader[0], ("If-Match", &v1)],
            reason.clone(),
            403,
        ),
        (op.clone(), vec![("If-Match", &v1)], reason.clone(), 401),
        (
            format!("{missing}/activate"),
            vec![as_clerk[0], ("If-Match", "\"1\"")],
            reason.clone(),
            404,
        ),
        (
            op.clone(),
            vec![as_clerk[0], ("If-Match", &v1)],
            reason.clone(),
            200,
        ),
    ];
    for (url, headers, body, status) in cases {
        let r = c
            .send(
                addr,
                "POST",
                "/cards/{id}/{operation}",
                &url,
                &headers,
                Some(body),
            )
            .await;
        assert_eq!(r.status, status, "{url}: {r:?}");
    }
    let v2 = version(&c.get(addr, "/cards/{id}", &format!("/cards/{card}")).await);
    assert_ne!(v1, v2, "a change moves the version");
    let again = c
        .send(
            addr,
            "POST",
            "/cards/{id}/{operation}",
            &op,
            &[as_clerk[0], ("If-Match", &v2)],
            Some(reason.clone()),
        )
        .await;
    assert_eq!(
        again.status, 409,
        "issued cards are not handed over again: {again:?}"
    );
    // Replacement and PIN reset: the same rules, and a PIN block instead of a PIN.
    let mut pin_reason = pin.clone();
    pin_reason["reason"] = "card damaged".into();
    for (path, url, ok) in [
        ("/cards/{id}/replace", format!("/cards/{card}/replace"), 201),
        (
            "/cards/{id}/pin-reset",
            "/cards/1/pin-reset".to_owned(),
            200,
        ),
    ] {
        let id: i64 = url.split('/').nth(2).unwrap().parse().unwrap();
        let v = version(&c.get(addr, "/cards/{id}", &format!("/cards/{id}")).await);
        let cases: Vec<Case> = vec![
            (url.clone(), vec![as_clerk[0]], pin_reason.clone(), 428),
            (
                url.clone(),
                vec![as_clerk[0], ("If-Match", "\"999\"")],
                pin_reason.clone(),
                412,
            ),
            (
                url.clone(),
                vec![as_clerk[0], ("If-Match", &v)],
                json!({"pin_block": "zz", "reason": "x"}),
                400,
            ),
            (
                url.clone(),
                vec![as_reader[0], ("If-Match", &v)],
                pin_reason.clone(),
                403,
            ),
            (url.clone(), vec![("If-Match", &v)], pin_reason.clone(), 401),
            (
                url.replace(&format!("/{id}/"), "/999999/"),
                vec![as_clerk[0], ("If-Match", &v)],
                pin_reason.clone(),
                404,
            ),
            (
                url.clone(),
                vec![as_clerk[0], ("If-Match", &v)],
                pin_reason.clone(),
                ok,
            ),
        ];
        for (u, headers, body, status) in cases {
            let r = c.send(addr, "POST", path, &u, &headers, Some(body)).await;
            assert_eq!(r.status, status, "{u}: {r:?}");
        }
        // Once more, now that the card moved on: the table refuses (replaced) or the version
        // is stale (PIN reset moved it).
        let r = c
            .send(
                addr,
                "POST",
                path,
                &url,
                &[as_clerk[0], ("If-Match", &v)],
                Some(pin_reason.clone()),
            )
            .await;
        assert_eq!(r.status, 412, "{url}: {r:?}");
        let v = version(&c.get(addr, "/cards/{id}", &format!("/cards/{id}")).await);
        if ok == 201 {
            let r = c
                .send(
                    addr,
                    "POST",
                    path,
                    &url,
                    &[as_clerk[0], ("If-Match", &v)],
                    Some(pin_reason.clone()),
                )
                .await;
            assert_eq!(
                r.status, 409,
                "a replaced card is not replaced again: {r:?}"
            );
        }
    }
    // The hot-listed replaced card's PIN cannot be reset.
    let v = version(&c.get(addr, "/cards/{id}", &format!("/cards/{card}")).await);
    let r = c
        .send(
            addr,
            "POST",
            "/cards/{id}/pin-reset",
            &format!("/cards/{card}/pin-reset"),
            &[as_clerk[0], ("If-Match", &v)],
            Some(pin_reason.clone()),
        )
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    // A card of another tenant is not there.
    let r = c
        .send(
            addr,
            "GET",
            "/cards/{id}",
            &format!("/cards/{card}"),
            &as_bank,
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
}

/// The operator API's answers, each once: sessions, users, role changes, roles, the audit log,
/// and the 401 and 403 of the lookups.
/// The card relay's answers (`/cards/{id}/ssse-pin-unblock`, `/cards/{id}/records/ef06`): a
/// card issued for the node's kiosk, refused before activation (409) and driven after (200);
/// the kiosks that fail (502 nobody listens, 503 no TAK, 504 silent); 400, 401, 403, 404.
async fn card_relay_answers(c: &mut Contract, n: &http_node::Node) {
    use http_node::{KIOSK, KIOSK_GONE, KIOSK_SILENT, KIOSK_UNKEYED};
    use switch::cms::CardOperation;
    use switch::sim::operator_kit::{self, SWITCH};
    let addr = n.addr;
    let clerk_key = operator_kit::api_key(&*n.store, SWITCH, "counter_clerk")
        .await
        .expect("clerk key");
    let clerk = format!("Bearer {clerk_key}");
    let reader = format!("Bearer {}", http_node::READER_KEY);
    // The card in the kiosk: personalised for application 960, made by the bureau.
    let app = http_node::application(&n.cms, 960, n.fx.bank.as_str()).await;
    let pin = switch::sim::bureau::counter_pin(
        &n.world,
        switch::sim::world::DEMO_PIN,
        hsm_sim::pin::PinBlockFormat::Iso1,
        "",
    )
    .expect("pin");
    let mut batch = n.cms.service.open_perso_batch().await.expect("batch");
    let card = n
        .cms
        .service
        .personalise(
            &http_node::fixture_actor(),
            &mut batch,
            switch::cms::ApplicationId(app),
            &pin,
        )
        .await
        .expect("personalise");
    let content = batch.content();
    let record = content
        .records
        .iter()
        .find(|r| r.card_id == card.card_id.0)
        .expect("the card's record");
    assert!(
        record.keys.ssse_line_protection.is_some(),
        "the card's line-protection key, derived in the HSM, travels in the file"
    );
    let vcard = switch::sim::bureau::load_record(&content.header, record).expect("card");
    http_node::serve_kiosk(n, vcard);
    let id = card.card_id.0;
    let unblock = |terminal: &str| json!({"terminal": terminal, "new_pin": "246810", "reason": "PIN blocked"});
    let ef06 = |terminal: &str| json!({"terminal": terminal, "record": "0A", "value_hex": "32", "reason": "correction"});
    type BodyFor<'a> = &'a dyn Fn(&str) -> Value;
    let routes: [(&str, String, BodyFor<'_>); 2] = [
        (
            "/cards/{id}/ssse-pin-unblock",
            format!("/cards/{id}/ssse-pin-unblock"),
            &unblock,
        ),
        (
            "/cards/{id}/records/ef06",
            format!("/cards/{id}/records/ef06"),
            &ef06,
        ),
    ];
    // Not activated yet: 409, before any kiosk is dialled.
    for (path, url, body) in &routes {
        let r = c
            .send(
                addr,
                "POST",
                path,
                url,
                &[("Authorization", &clerk)],
                Some(body(KIOSK)),
            )
            .await;
        assert_eq!(r.status, 409, "{url}: {r:?}");
    }
    for op in [CardOperation::HandOver, CardOperation::Activate] {
        n.cms
            .service
            .apply(&http_node::fixture_actor(), card.card_id, op, None)
            .await
            .expect("operation");
    }
    for (path, url, body) in &routes {
        let missing = url.replacen(&format!("/cards/{id}/"), "/cards/999999/", 1);
        let cases: Vec<Case> = vec![
            (url.clone(), vec![], body(KIOSK), 401),
            (
                url.clone(),
                vec![("Authorization", &reader)],
                body(KIOSK),
                403,
            ),
            (url.clone(), vec![("Authorization", &clerk)], json!({}), 400),
            (missing, vec![("Authorization", &clerk)], body(KIOSK), 404),
            (
                url.clone(),
                vec![("Authorization", &clerk)],
                body(KIOSK_GONE),
                502,
            ),
            (
                url.clone(),
                vec![("Authorization", &clerk)],
                body(KIOSK_UNKEYED),
                503,
            ),
            (
                url.clone(),
                vec![("Authorization", &clerk)],
                body(KIOSK_SILENT),
                504,
            ),
            (
                url.clone(),
                vec![("Authorization", &clerk)],
                body(KIOSK),
                200,
            ),
        ];
        for (u, headers, b, status) in cases {
            let r = c.send(addr, "POST", path, &u, &headers, Some(b)).await;
            assert_eq!(r.status, status, "{u}: {r:?}");
        }
    }
}

async fn operator_answers(c: &mut Contract, n: &http_node::Node) {
    use switch::operator::keys::SecretKey;
    use switch::sim::operator_kit::{self, totp_now, SWITCH};
    let addr = n.addr;
    let pw = "a long enough password";
    let mk = |name: &'static str, roles: &'static [&'static str]| {
        let store = std::sync::Arc::clone(&n.store);
        async move {
            operator_kit::user(&*store, &SecretKey::for_tests(), name, SWITCH, roles, pw)
                .await
                .expect("user")
        }
    };
    let (_, a) = mk("admin-a", &["administrator", "auditor"]).await;
    let (_, b) = mk("admin-b", &["administrator"]).await;
    let (target, _) = mk("target", &[]).await;
    let (_, clerk) = mk("clerk", &["counter_clerk"]).await;
    let login = |user: &str, secret: &switch::operator::totp::TotpSecret, password: &str| json!({"username": user, "password": password, "totp": totp_now(secret)});
    // Logins: 400, 401, 200.
    c.send(
        addr,
        "POST",
        "/session",
        "/session",
        &[],
        Some(json!({"username": "x"})),
    )
    .await;
    c.send(
        addr,
        "POST",
        "/session",
        "/session",
        &[],
        Some(login("admin-a", &a.totp, "wrong password!")),
    )
    .await;
    let mut sessions = Vec::new();
    for (user, secret) in [
        ("admin-a", &a.totp),
        ("admin-b", &b.totp),
        ("clerk", &clerk.totp),
    ] {
        let r = c
            .send(
                addr,
                "POST",
                "/session",
                "/session",
                &[],
                Some(login(user, secret, pw)),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let cookie = r
            .header("set-cookie")
            .and_then(|s| s.split(';').next())
            .expect("cookie")
            .to_owned();
        let csrf = Contract::json(&r)["csrf_token"]
            .as_str()
            .expect("csrf")
            .to_owned();
        sessions.push((cookie, csrf));
    }
    let h = |i: usize| -> Vec<(&str, &str)> {
        vec![
            ("Cookie", sessions[i].0.as_str()),
            ("X-CSRF-Token", sessions[i].1.as_str()),
        ]
    };
    let none: &[(&str, &str)] = &[];
    let clerk_key = operator_kit::api_key(&*n.store, SWITCH, "counter_clerk")
        .await
        .expect("key");
    let clerk_auth = format!("Bearer {clerk_key}");
    let as_clerk_key: &[(&str, &str)] = &[("Authorization", &clerk_auth)];
    // The lookups without credentials and without the permission.
    for (path, url) in [
        ("/metrics", "/metrics"),
        ("/saf", "/saf"),
        ("/transactions/{rrn}", "/transactions/000000000041"),
    ] {
        assert_eq!(c.send(addr, "GET", path, url, none, None).await.status, 401);
        let saf_or_metrics = c.send(addr, "GET", path, url, as_clerk_key, None).await;
        if path != "/transactions/{rrn}" {
            assert_eq!(saf_or_metrics.status, 403);
        }
    }
    c.send(
        addr,
        "GET",
        "/transactions/{rrn}",
        "/transactions/000000000041",
        &[("Authorization", "Bearer x")],
        None,
    )
    .await;
    let no_metrics = request_with(addr, "GET", "/metrics", as_clerk_key, None).await;
    assert_eq!(no_metrics.status, 403);
    let _ = c
        .send(addr, "GET", "/metrics", "/metrics", as_clerk_key, None)
        .await;
    // A transaction lookup refused by permission: a key whose role lacks transactions.read.
    let issuance_key = operator_kit::api_key(&*n.store, SWITCH, "issuance_operator")
        .await
        .expect("key");
    let issuance_auth = format!("Bearer {issuance_key}");
    c.send(
        addr,
        "GET",
        "/transactions/{rrn}",
        "/transactions/000000000041",
        &[("Authorization", &issuance_auth)],
        None,
    )
    .await;
    // The search.
    for (hdr, url) in [
        (as_clerk_key.to_vec(), "/transactions?pan_last4=5678"),
        (as_clerk_key.to_vec(), "/transactions?pan_last4=56"),
        (vec![], "/transactions"),
        (
            vec![("Authorization", issuance_auth.as_str())],
            "/transactions",
        ),
    ] {
        c.send(addr, "GET", "/transactions", url, &hdr, None).await;
    }
    // Who am I.
    c.send(addr, "GET", "/me", "/me", &h(0), None).await;
    c.send(addr, "GET", "/me", "/me", none, None).await;
    // Users.
    for (hdr, url) in [
        (h(0), "/users"),
        (h(0), "/users?limit=0"),
        (vec![], "/users"),
        (h(2), "/users"),
    ] {
        c.send(addr, "GET", "/users", url, &hdr, None).await;
    }
    c.send(
        addr,
        "POST",
        "/users",
        "/users",
        &h(0),
        Some(json!({"username": "newcomer"})),
    )
    .await;
    c.send(
        addr,
        "POST",
        "/users",
        "/users",
        &h(0),
        Some(json!({"username": "newcomer"})),
    )
    .await;
    c.send(
        addr,
        "POST",
        "/users",
        "/users",
        &h(0),
        Some(json!({"username": "Not Valid"})),
    )
    .await;
    c.send(
        addr,
        "POST",
        "/users",
        "/users",
        none,
        Some(json!({"username": "x"})),
    )
    .await;
    c.send(
        addr,
        "POST",
        "/users",
        "/users",
        &h(2),
        Some(json!({"username": "x"})),
    )
    .await;
    c.send(
        addr,
        "POST",
        "/users",
        "/users",
        &[("Cookie", sessions[0].0.as_str())],
        Some(json!({"username": "y"})),
    )
    .await;
    // Role changes.
    let roles_url = format!("/users/{}/roles", target.user_id);
    let propose = json!({"role_ids": ["hospital_cashier"], "reason": "front desk"});
    let proposed = c
        .send(
            addr,
            "POST",
            "/users/{id}/roles",
            &roles_url,
            &h(0),
            Some(propose.clone()),
        )
        .await;
    assert_eq!(proposed.status, 202, "{proposed:?}");
    c.send(
        addr,
        "POST",
        "/users/{id}/roles",
        &roles_url,
        &h(0),
        Some(json!({"role_ids": [], "reason": ""})),
    )
    .await;
    c.send(
        addr,
        "POST",
        "/users/{id}/roles",
        &roles_url,
        none,
        Some(propose.clone()),
    )
    .await;
    c.send(
        addr,
        "POST",
        "/users/{id}/roles",
        &roles_url,
        &h(2),
        Some(propose.clone()),
    )
    .await;
    let unknown = format!("/users/{}/roles", uuid::Uuid::now_v7());
    c.send(
        addr,
        "POST",
        "/users/{id}/roles",
        &unknown,
        &h(0),
        Some(propose),
    )
    .await;
    let change = Contract::json(&proposed)["change_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let approve = format!("/role-changes/{change}/approve");
    let path = "/role-changes/{id}/approve";
    assert_eq!(
        c.send(addr, "POST", path, &approve, &h(0), None)
            .await
            .status,
        403,
        "four eyes"
    );
    c.send(addr, "POST", path, &approve, none, None).await;
    c.send(
        addr,
        "POST",
        path,
        &format!("/role-changes/{}/approve", uuid::Uuid::now_v7()),
        &h(1),
        None,
    )
    .await;
    assert_eq!(
        c.send(addr, "POST", path, &approve, &h(1), None)
            .await
            .status,
        200
    );
    assert_eq!(
        c.send(addr, "POST", path, &approve, &h(1), None)
            .await
            .status,
        409
    );
    // The open proposals, and a rejection (four eyes too).
    let list = "/role-changes";
    c.send(addr, "GET", list, list, none, None).await;
    c.send(addr, "GET", list, list, &h(2), None).await;
    let second = c
        .send(
            addr,
            "POST",
            "/users/{id}/roles",
            &roles_url,
            &h(0),
            Some(json!({"role_ids": ["auditor"], "reason": "audit desk"})),
        )
        .await;
    assert_eq!(second.status, 202, "{second:?}");
    let second = Contract::json(&second)["change_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let open = c.send(addr, "GET", list, list, &h(1), None).await;
    assert_eq!(open.status, 200);
    let open = Contract::json(&open);
    assert_eq!(open["items"][0]["change_id"], second.as_str(), "{open}");
    assert_eq!(open["items"][0]["username"], "target");
    let reject = format!("/role-changes/{second}/reject");
    let path = "/role-changes/{id}/reject";
    let why = Some(json!({"reason": "not on the audit desk"}));
    assert_eq!(
        c.send(addr, "POST", path, &reject, &h(0), why.clone())
            .await
            .status,
        403,
        "four eyes"
    );
    c.send(addr, "POST", path, &reject, none, why.clone()).await;
    c.send(
        addr,
        "POST",
        path,
        &format!("/role-changes/{}/reject", uuid::Uuid::now_v7()),
        &h(1),
        why.clone(),
    )
    .await;
    c.send(
        addr,
        "POST",
        path,
        &reject,
        &h(1),
        Some(json!({"reason": " "})),
    )
    .await;
    let rejected = c
        .send(addr, "POST", path, &reject, &h(1), why.clone())
        .await;
    assert_eq!(rejected.status, 200);
    assert_eq!(Contract::json(&rejected)["state"], "rejected");
    assert_eq!(
        c.send(addr, "POST", path, &reject, &h(1), why).await.status,
        409
    );
    // Roles.
    c.send(addr, "GET", "/roles", "/roles", &h(0), None).await;
    c.send(addr, "GET", "/roles", "/roles", none, None).await;
    c.send(addr, "GET", "/roles", "/roles", &h(2), None).await;
    let role =
        json!({"role_id": "night", "name": "Night cashier", "permissions": ["transactions.read"]});
    let mut keyed = h(0);
    keyed.push(("Idempotency-Key", "role-1"));
    c.send(addr, "POST", "/roles", "/roles", &keyed, Some(role.clone()))
        .await;
    c.send(
        addr,
        "POST",
        "/roles",
        "/roles",
        &keyed,
        Some(json!({"role_id": "day", "name": "Day", "permissions": []})),
    )
    .await;
    c.send(addr, "POST", "/roles", "/roles", &h(0), Some(role))
        .await;
    c.send(
        addr,
        "POST",
        "/roles",
        "/roles",
        &h(0),
        Some(json!({"role_id": "x", "name": "x", "permissions": ["nothing"]})),
    )
    .await;
    c.send(addr, "POST", "/roles", "/roles", none, None).await;
    c.send(addr, "POST", "/roles", "/roles", &h(2), Some(json!({})))
        .await;
    // The audit log.
    for (hdr, url) in [
        (h(0), "/audit"),
        (h(0), "/audit?cursor=x"),
        (vec![], "/audit"),
        (h(2), "/audit"),
    ] {
        c.send(addr, "GET", "/audit", url, &hdr, None).await;
    }
    // Passwords and logout.
    let pw_path = "/session/password";
    c.send(
        addr,
        "POST",
        pw_path,
        pw_path,
        &h(2),
        Some(json!({"current_password": "not it at all", "new_password": "a new long password"})),
    )
    .await;
    c.send(
        addr,
        "POST",
        pw_path,
        pw_path,
        &h(2),
        Some(json!({"current_password": pw, "new_password": "short"})),
    )
    .await;
    c.send(addr, "POST", pw_path, pw_path, none, Some(json!({})))
        .await;
    c.send(
        addr,
        "POST",
        pw_path,
        pw_path,
        &h(2),
        Some(json!({"current_password": pw, "new_password": "a new long password"})),
    )
    .await;
    c.send(
        addr,
        "DELETE",
        "/session",
        "/session",
        &[("Cookie", sessions[1].0.as_str())],
        None,
    )
    .await;
    c.send(addr, "DELETE", "/session", "/session", as_clerk_key, None)
        .await;
    c.send(addr, "DELETE", "/session", "/session", &h(1), None)
        .await;
    c.send(addr, "DELETE", "/session", "/session", &h(1), None)
        .await;
}

/// A change that makes a conforming body break the document.
type Mutation = fn(&mut Value);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_rejects_what_the_document_does_not_say() {
    let n = node().await;
    let doc = document();
    commit(&n.store, testkit::bank_timeout(&n.fx, 45, 300)).await;
    let mut reply = request(n.addr, "GET", "/saf").await;
    assert!(conformance(&doc, "get", "/saf", &reply).is_ok());
    let good: Value = serde_json::from_str(&reply.body).expect("JSON");

    let mutations: [(&str, Mutation); 6] = [
        ("a field missing", |v| {
            if let Some(o) = v["oldest"][0].as_object_mut() {
                o.remove("amount_fen");
            }
        }),
        ("a field added", |v| {
            v["queues"][0]["pan"] = json!("622848******5678")
        }),
        ("an unknown kind", |v| {
            v["queues"][0]["kind"] = json!("echo")
        }),
        ("an amount as a number", |v| {
            v["oldest"][0]["amount"] = json!(3.0)
        }),
        ("a non-null code as a number", |v| {
            v["oldest"][0]["last_response_code"] = json!(96)
        }),
        ("an id that is no UUID", |v| {
            v["oldest"][0]["id"] = json!("42")
        }),
    ];
    for (what, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        reply.body = bad.to_string();
        assert!(
            conformance(&doc, "get", "/saf", &reply).is_err(),
            "{what} passes"
        );
    }
    reply.body = good.to_string();
    reply.headers = vec![("content-type".into(), "text/plain".into())];
    assert!(
        conformance(&doc, "get", "/saf", &reply).is_err(),
        "a wrong type passes"
    );
    reply.status = 500;
    assert!(
        conformance(&doc, "get", "/saf", &reply).is_err(),
        "an undocumented status passes"
    );
    // The router's 404 for a path it does not know is not the lookup's 404.
    let unknown = request(n.addr, "GET", "/transactions/").await;
    assert_eq!(unknown.status, 404);
    assert!(conformance(&doc, "get", "/transactions/{rrn}", &unknown).is_err());
}

/// The settlement routes' answers, each once: the reader (an auditor of the switch: reads
/// everything), a clearing analyst of the switch (closes), a bank operator (its own figures),
/// a clearing analyst of a bank (may close by its role, but a bank does not close), a hospital
/// auditor (no settlement: 404), a hospital cashier (no permission: 403), and the node
/// without a settlement source (503).
async fn settlement_answers(c: &mut Contract, n: &http_node::Node) {
    use http_node::SAMPLE_BANK;
    use switch::sim::operator_kit::{self, OTHER_BANK, SWITCH};
    let addr = n.addr;
    let key = |institution: &'static str, role: &'static str| async move {
        let k = operator_kit::api_key(&*n.store, institution, role)
            .await
            .expect("key");
        format!("Bearer {k}")
    };
    let hospital = schemas::events::sample::ids::HOSPITAL;
    let reader = format!("Bearer {}", http_node::READER_KEY);
    let analyst = key(SWITCH, "clearing_analyst").await;
    let bank = key(SAMPLE_BANK, "bank_operator").await;
    let bank_analyst = key(SAMPLE_BANK, "clearing_analyst").await;
    let hospital_auditor = key(hospital, "auditor").await;
    let cashier = key(hospital, "hospital_cashier").await;
    let reports = "/clearing/windows/{id}/reports/{institution}";
    let own_csv = format!("/clearing/windows/1/reports/{SAMPLE_BANK}?format=csv");
    let own_xml = format!("/clearing/windows/1/reports/{SAMPLE_BANK}?format=camt053");
    let theirs = format!("/clearing/windows/1/reports/{OTHER_BANK}");
    let gets: Vec<(&str, String, &str, u16)> = vec![
        ("/clearing/windows", "/clearing/windows".into(), "", 200),
        (
            "/clearing/windows",
            "/clearing/windows?limit=0".into(),
            "",
            400,
        ),
        ("/clearing/windows", "/clearing/windows".into(), "-", 401),
        (
            "/clearing/windows",
            "/clearing/windows".into(),
            &cashier,
            403,
        ),
        (
            "/clearing/windows/{id}",
            "/clearing/windows/1".into(),
            "",
            200,
        ),
        (
            "/clearing/windows/{id}",
            "/clearing/windows/1".into(),
            "-",
            401,
        ),
        (
            "/clearing/windows/{id}",
            "/clearing/windows/1".into(),
            &cashier,
            403,
        ),
        (
            "/clearing/windows/{id}",
            "/clearing/windows/999".into(),
            "",
            404,
        ),
        ("/clearing/positions", "/clearing/positions".into(), "", 200),
        (
            "/clearing/positions",
            "/clearing/positions".into(),
            "-",
            401,
        ),
        (
            "/clearing/positions",
            "/clearing/positions".into(),
            &cashier,
            403,
        ),
        (
            "/clearing/positions",
            "/clearing/positions".into(),
            &hospital_auditor,
            404,
        ),
        (reports, own_csv.clone(), &bank, 200),
        (reports, own_xml.clone(), &bank, 200),
        (reports, format!("{own_csv}x"), &bank, 400),
        (reports, own_csv.clone(), "-", 401),
        (reports, own_csv.clone(), &cashier, 403),
        (reports, theirs.clone(), &bank, 404),
    ];
    let mut statements = 0;
    for (path, url, auth, status) in gets {
        let headers: Vec<(&str, &str)> = match auth {
            "" => vec![("Authorization", reader.as_str())],
            "-" => vec![],
            a => vec![("Authorization", a)],
        };
        let r = c.send(addr, "GET", path, &url, &headers, None).await;
        assert_eq!(r.status, status, "{url}: {r:?}");
        if r.content_type().starts_with("application/xml") {
            camt053_schema::assert_valid_camt053(&[&r.body]);
            statements += 1;
        }
    }
    assert_eq!(statements, 1, "the camt.053 was fetched and validated");
    // What a bank sees of a window: its own line.
    let as_bank = [("Authorization", bank.as_str())];
    let w = Contract::json(
        &c.send(
            addr,
            "GET",
            "/clearing/windows/{id}",
            "/clearing/windows/1",
            &as_bank,
            None,
        )
        .await,
    );
    assert_eq!(w["positions"].as_array().map(Vec::len), Some(1), "{w}");
    // Closing: 200, 400, 401, 403, 404 (a bank), 409 (not the open window).
    let close = "/clearing/windows/close";
    for (auth, body, status) in [
        (
            analyst.as_str(),
            json!({"reason": "contract", "window_id": 2}),
            200,
        ),
        (analyst.as_str(), json!({"reason": ""}), 400),
        ("-", json!({"reason": "contract"}), 401),
        (bank.as_str(), json!({"reason": "contract"}), 403),
        (bank_analyst.as_str(), json!({"reason": "contract"}), 404),
        (
            analyst.as_str(),
            json!({"reason": "contract", "window_id": 2}),
            409,
        ),
    ] {
        let headers: Vec<(&str, &str)> = match auth {
            "-" => vec![],
            a => vec![("Authorization", a)],
        };
        let r = c
            .send(addr, "POST", close, close, &headers, Some(body))
            .await;
        assert_eq!(r.status, status, "{auth}: {r:?}");
    }
    // A node without [clearing_api]: 503 on every settlement route.
    let as_analyst = [("Authorization", analyst.as_str())];
    for (method, path, url) in [
        ("GET", "/clearing/windows", "/clearing/windows".to_owned()),
        (
            "GET",
            "/clearing/windows/{id}",
            "/clearing/windows/1".to_owned(),
        ),
        (
            "GET",
            "/clearing/positions",
            "/clearing/positions".to_owned(),
        ),
        ("GET", reports, own_csv.clone()),
        ("POST", close, close.to_owned()),
    ] {
        let body = (method == "POST").then(|| json!({"reason": "contract"}));
        let r = c
            .send(
                n.addr_without_clearing,
                method,
                path,
                &url,
                &as_analyst,
                body,
            )
            .await;
        assert_eq!(r.status, 503, "{url}: {r:?}");
        assert_eq!(
            Contract::json(&r)["type"],
            "/problems/clearing-not-configured"
        );
    }
}

/// The API keys' answers, each once: an administrator of the switch issues and revokes, an
/// administrator of another hospital does not see the keys of `testkit`'s bank, the reader (an
/// auditor) may not; the reader lists the keys (`users.read`), a cashier may not.
async fn api_key_answers(c: &mut Contract, n: &http_node::Node) {
    use switch::sim::operator_kit::{self, OTHER_HOSPITAL, SWITCH};
    let addr = n.addr;
    let admin_key = operator_kit::api_key(&*n.store, SWITCH, "administrator")
        .await
        .expect("key");
    let other_key = operator_kit::api_key(&*n.store, OTHER_HOSPITAL, "administrator")
        .await
        .expect("key");
    let admin = format!("Bearer {admin_key}");
    let other = format!("Bearer {other_key}");
    let reader = format!("Bearer {}", http_node::READER_KEY);
    let bank = n.fx.bank.as_str();
    fn issue(auth: &str, body: Value) -> (Vec<(&str, &str)>, Value) {
        let headers = if auth.is_empty() {
            vec![]
        } else {
            vec![("Authorization", auth)]
        };
        (headers, body)
    }
    let good = json!({"name": "back office", "role_id": "bank_operator", "institution": bank});
    let mut key_id = String::new();
    for (auth, body, status) in [
        (admin.as_str(), good.clone(), 201),
        (admin.as_str(), json!({"name": "x"}), 400),
        ("", good.clone(), 401),
        (reader.as_str(), good.clone(), 403),
        (other.as_str(), good.clone(), 404),
        (
            admin.as_str(),
            json!({"name": "x", "role_id": "administrator"}),
            422,
        ),
    ] {
        let (headers, body) = issue(auth, body);
        let r = c
            .send(addr, "POST", "/api-keys", "/api-keys", &headers, Some(body))
            .await;
        assert_eq!(r.status, status, "{r:?}");
        if status == 201 {
            key_id = Contract::json(&r)["key_id"]
                .as_str()
                .expect("id")
                .to_owned();
        }
    }
    let url = format!("/api-keys/{key_id}");
    for (auth, status) in [
        (other.as_str(), 404),
        (reader.as_str(), 403),
        ("", 401),
        (admin.as_str(), 200),
    ] {
        let (headers, _) = issue(auth, Value::Null);
        let r = c
            .send(addr, "DELETE", "/api-keys/{id}", &url, &headers, None)
            .await;
        assert_eq!(r.status, status, "{r:?}");
    }
    let cashier_key = operator_kit::api_key(&*n.store, SWITCH, "hospital_cashier")
        .await
        .expect("key");
    let cashier = format!("Bearer {cashier_key}");
    for (auth, url, status) in [
        (reader.as_str(), "/api-keys?limit=2", 200),
        (reader.as_str(), "/api-keys?limit=0", 400),
        ("", "/api-keys", 401),
        (cashier.as_str(), "/api-keys", 403),
    ] {
        let (headers, _) = issue(auth, Value::Null);
        let r = c.send(addr, "GET", "/api-keys", url, &headers, None).await;
        assert_eq!(r.status, status, "{r:?}");
    }
}
