//! The operator API over a real socket (issue 25): every route refuses a caller without
//! credentials (401), one without the route's permission (403) and one of another institution
//! (404); logins lock after five failures; a session's POST needs its CSRF token; a role change
//! needs four eyes; an `Idempotency-Key` replays the first answer; every login and action is in
//! the audit log with its source address.

mod http_node;

use http_node::{
    cms_card, commit, counter_pin_block, node, request_bytes, request_with, Node, Reply, BUREAU,
    EXAMPLE_JOB,
};
use serde_json::{json, Value};
use switch::cms::CardOperation as Op;
use switch::operator::keys::SecretKey;
use switch::operator::permission::{Permission, PermissionSet, BUILTIN_ROLES};
use switch::operator::provision::FirstSecrets;
use switch::sim::operator_kit::{self, totp_now, OTHER_HOSPITAL, SWITCH};
use switch::sim::testkit;
use switch::store::operator::OperatorUser;
use switch::store::{OperatorStore, Store};

const PASSWORD: &str = "a long enough password";

/// A logged-in session: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn login(n: &Node, username: &str, password: &str, code: &str) -> Reply {
    let body = json!({ "username": username, "password": password, "totp": code }).to_string();
    request_with(n.addr, "POST", "/session", &[], Some(&body)).await
}

async fn session(n: &Node, username: &str, first: &FirstSecrets) -> Session {
    let r = login(n, username, PASSWORD, &totp_now(&first.totp)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let set = r.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().expect("name=value").to_owned();
    let v: Value = serde_json::from_str(&r.body).unwrap();
    Session {
        cookie,
        csrf: v["csrf_token"].as_str().expect("a CSRF token").to_owned(),
    }
}

async fn call(
    n: &Node,
    s: Option<&Session>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = s {
        headers.push(("Cookie", &s.cookie));
        headers.push(("X-CSRF-Token", &s.csrf));
    }
    let body = body.map(Value::to_string);
    request_with(n.addr, method, path, &headers, body.as_deref()).await
}

fn problem_type(r: &Reply) -> String {
    assert_eq!(r.content_type(), "application/problem+json", "{r:?}");
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["type"].as_str().unwrap_or("").to_owned()
}

async fn user(
    n: &Node,
    name: &str,
    institution: &str,
    roles: &[&str],
) -> (OperatorUser, FirstSecrets) {
    operator_kit::user(
        &*n.store,
        &SecretKey::for_tests(),
        name,
        institution,
        roles,
        PASSWORD,
    )
    .await
    .expect("user")
}

/// The RRN of the transaction the node holds: acquired by `testkit`'s hospital, issued by its
/// bank.
const RRN: &str = "000000000041";

async fn with_transaction() -> Node {
    let n = node().await;
    commit(&n.store, testkit::stand_in(&n.fx, 41, 2_000)).await;
    n
}

/// Every route but login, with a body where it takes one.
fn protected_routes() -> Vec<(&'static str, String, Option<Value>)> {
    let id = uuid::Uuid::now_v7();
    vec![
        ("GET", format!("/transactions/{RRN}"), None),
        ("GET", "/transactions?rrn=000000000041".into(), None),
        ("GET", "/saf".into(), None),
        ("GET", "/metrics".into(), None),
        ("GET", "/me".into(), None),
        ("DELETE", "/session".into(), None),
        (
            "POST",
            "/session/password".into(),
            Some(json!({"current_password": PASSWORD, "new_password": "another long password"})),
        ),
        ("GET", "/users".into(), None),
        ("POST", "/users".into(), Some(json!({"username": "nobody"}))),
        (
            "POST",
            format!("/users/{id}/roles"),
            Some(json!({"role_ids": [], "reason": "x"})),
        ),
        ("POST", format!("/role-changes/{id}/approve"), None),
        ("GET", "/role-changes".into(), None),
        (
            "POST",
            format!("/role-changes/{id}/reject"),
            Some(json!({"reason": "x"})),
        ),
        ("GET", "/roles".into(), None),
        (
            "POST",
            "/roles".into(),
            Some(json!({"role_id": "x", "name": "x", "permissions": []})),
        ),
        ("GET", "/audit".into(), None),
        ("POST", "/application-batches?batch_id=x".into(), None),
        ("GET", format!("/import-jobs/{EXAMPLE_JOB}"), None),
        ("GET", format!("/import-jobs/{EXAMPLE_JOB}/errors"), None),
        ("GET", "/applications?batch_id=x&citizen_id=x".into(), None),
        ("GET", "/applications/1".into(), None),
        ("PUT", "/applications/1/photo".into(), None),
        (
            "POST",
            "/applications/1/issue".into(),
            Some(json!({"pin_block": "00"})),
        ),
        ("GET", "/perso-files".into(), None),
        ("POST", "/perso-files".into(), None),
        ("GET", format!("/perso-files/{id}"), None),
        ("GET", "/cards?pan_last4=0001".into(), None),
        ("GET", "/cards/1".into(), None),
        (
            "POST",
            "/cards/1/activate".into(),
            Some(json!({"reason": "x"})),
        ),
        (
            "POST",
            "/cards/1/replace".into(),
            Some(json!({"reason": "x"})),
        ),
        (
            "POST",
            "/cards/1/pin-reset".into(),
            Some(json!({"reason": "x"})),
        ),
        (
            "POST",
            "/api-keys".into(),
            Some(json!({"name": "x", "role_id": "auditor"})),
        ),
        ("DELETE", "/api-keys/key-1".into(), None),
        ("GET", "/api-keys".into(), None),
        ("GET", "/clearing/windows".into(), None),
        ("GET", "/clearing/windows/1".into(), None),
        ("GET", "/clearing/positions".into(), None),
        (
            "GET",
            "/clearing/windows/1/reports/01020000?format=csv".into(),
            None,
        ),
        (
            "POST",
            "/clearing/windows/close".into(),
            Some(json!({"reason": "x"})),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_login_refuses_a_caller_without_credentials() {
    let n = with_transaction().await;
    for (method, path, body) in protected_routes() {
        let r = call(&n, None, method, &path, body.as_ref()).await;
        assert_eq!(r.status, 401, "{method} {path}: {r:?}");
        assert_eq!(problem_type(&r), "/problems/unauthenticated");
        // Nor does a made-up session or key open anything.
        let forged = request_with(
            n.addr,
            method,
            &path,
            &[("Cookie", "switch_session=00"), ("X-CSRF-Token", "00")],
            body.as_ref().map(Value::to_string).as_deref(),
        )
        .await;
        assert_eq!(forged.status, 401, "{method} {path} forged session");
        let key = request_with(
            n.addr,
            method,
            &path,
            &[("Authorization", "Bearer 00")],
            None,
        )
        .await;
        assert_eq!(key.status, 401, "{method} {path} forged key");
    }
    // The lookup of issue 24 in particular: no transaction for an anonymous caller.
    let r = call(&n, None, "GET", &format!("/transactions/{RRN}"), None).await;
    assert!(!r.body.contains(RRN), "{r:?}");
    // The probes stay open: they carry no data.
    for path in ["/health", "/ready"] {
        assert_eq!(
            call(&n, None, "GET", path, None).await.status,
            200,
            "{path}"
        );
    }
}

/// What a route needs, and whether what it touches belongs to one institution (`testkit`'s
/// hospital).
struct RouteRule {
    method: &'static str,
    permission: Option<Permission>,
    tenant_scoped: bool,
}

/// The matrix: every built-in role, at the resource's own institution (the hospital), at
/// another hospital and at the switch; each protected route answers 403 without the
/// permission, 404 for another institution's resource, and 2xx otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_by_role_and_tenant_answers_403_404_or_2xx() {
    let n = with_transaction().await;
    let hospital = n.fx.hospital.as_str().to_owned();
    let (proposer, _) = user(&n, "proposer", SWITCH, &["administrator"]).await;
    let mut checked = 0;
    for role in BUILTIN_ROLES {
        let granted = PermissionSet::of(role.permissions);
        for (t, tenant) in [hospital.as_str(), OTHER_HOSPITAL, SWITCH]
            .into_iter()
            .enumerate()
        {
            let name = format!("{}-{t}", role.role_id.replace('_', "-"));
            let (_, first) = user(&n, &name, tenant, &[role.role_id]).await;
            let s = session(&n, &name, &first).await;
            // A user of the hospital, and a role change for it proposed by someone else.
            let (target, _) = user(&n, &format!("target-{name}"), &hospital, &[]).await;
            let change = propose_directly(&n, &proposer, &target).await;
            let routes: Vec<(RouteRule, String, Option<Value>)> = vec![
                (
                    rule("GET", Some(Permission::ViewTransactions), true),
                    format!("/transactions/{RRN}"),
                    None,
                ),
                (
                    rule("GET", Some(Permission::ViewTransactions), false),
                    format!("/transactions?rrn={RRN}"),
                    None,
                ),
                (
                    rule("GET", Some(Permission::ViewSaf), false),
                    "/saf".into(),
                    None,
                ),
                (
                    rule("GET", Some(Permission::ViewMetrics), false),
                    "/metrics".into(),
                    None,
                ),
                (rule("GET", None, false), "/me".into(), None),
                (
                    rule("GET", Some(Permission::ViewUsers), false),
                    "/users".into(),
                    None,
                ),
                (
                    rule("GET", Some(Permission::ViewUsers), false),
                    "/roles".into(),
                    None,
                ),
                (
                    rule("GET", Some(Permission::ReadAuditLog), false),
                    "/audit".into(),
                    None,
                ),
                (
                    rule("GET", Some(Permission::ViewUsers), false),
                    "/api-keys".into(),
                    None,
                ),
                (
                    rule("POST", Some(Permission::ManageUsers), false),
                    "/users".into(),
                    Some(json!({"username": format!("new-{name}")})),
                ),
                (
                    rule("POST", Some(Permission::ManageUsers), true),
                    format!("/users/{}/roles", target.user_id),
                    Some(json!({"role_ids": ["auditor"], "reason": "covers the audit desk"})),
                ),
                (
                    rule("POST", Some(Permission::ManageUsers), true),
                    format!("/role-changes/{change}/approve"),
                    None,
                ),
                (
                    rule("POST", Some(Permission::ManageRoles), false),
                    "/roles".into(),
                    Some(
                        json!({"role_id": format!("r-{name}"), "name": "Night cashier", "permissions": ["transactions.read"]}),
                    ),
                ),
            ];
            for (r, path, body) in routes {
                let reply = call(&n, Some(&s), r.method, &path, body.as_ref()).await;
                let allowed = r.permission.is_none_or(|p| granted.contains(p));
                let expected = if !allowed {
                    403
                } else if r.tenant_scoped && tenant == OTHER_HOSPITAL {
                    404
                } else {
                    0
                };
                let what = format!("{} at {tenant}: {} {path}", role.role_id, r.method);
                match expected {
                    0 => assert!((200..300).contains(&reply.status), "{what}: {reply:?}"),
                    403 => {
                        assert_eq!(reply.status, 403, "{what}: {reply:?}");
                        assert_eq!(problem_type(&reply), "/problems/forbidden", "{what}");
                    }
                    _ => {
                        assert_eq!(reply.status, 404, "{what}: {reply:?}");
                        assert_eq!(reply.content_type(), "application/problem+json", "{what}");
                        assert!(!reply.body.contains(RRN), "{what}: no hint of it");
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, BUILTIN_ROLES.len() * 3 * 13);
}

/// The card management routes by role and tenant: the bureau of the region (sees its
/// cardholders' cards and applications, and the personalisation files), the cards' bank (its
/// own cards), another bank (none: 404) and the switch (all). Each route answers 403 without
/// its permission, 404 where the tenant does not see the resource, 2xx otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_card_route_by_role_and_tenant_answers_403_404_or_2xx() {
    let n = node().await;
    let bank = n.fx.bank.as_str().to_owned();
    let other_bank = operator_kit::OTHER_BANK;
    let mut checked = 0;
    let mut serial = 0;
    // Who sees what: cards and applications, the personalisation files, an import job the
    // bureau started.
    #[derive(Clone, Copy)]
    enum Seen {
        All,
        Cards,
        Bureau,
    }
    /// Method, permission, who sees it, path (`#version` for If-Match), body.
    type Route = (
        &'static str,
        Option<Permission>,
        Seen,
        String,
        Option<Value>,
    );
    for role in BUILTIN_ROLES {
        let granted = PermissionSet::of(role.permissions);
        for (t, tenant) in [BUREAU, bank.as_str(), other_bank, SWITCH]
            .into_iter()
            .enumerate()
        {
            let name = format!("cms-{}-{t}", role.role_id.replace('_', "-"));
            let (_, first) = user(&n, &name, tenant, &[role.role_id]).await;
            let s = session(&n, &name, &first).await;
            // A bureau's job, an application, and one card in the state each operation needs.
            let csv = format!(
                "{}{},李四,居民,410102,{bank}\n",
                http_node::BATCH_HEADER,
                http_node::citizen(serial)
            );
            let bureau_job = {
                let (_, f) = user(&n, &format!("job-{name}"), BUREAU, &["issuance_operator"]).await;
                let b = session(&n, &format!("job-{name}"), &f).await;
                let r = upload(&n, &b, &format!("job-{name}"), &csv).await;
                assert_eq!(r.status, 202, "{r:?}");
                serde_json::from_str::<Value>(&r.body).unwrap()["job_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            serial += 1;
            let app = http_node::application(&n.cms, serial, &bank).await;
            let mut card = |ops: &'static [Op]| {
                serial += 1;
                (serial, ops)
            };
            let plan = [
                ("hand-over", card(&[])),
                ("activate", card(&[Op::HandOver])),
                ("suspend", card(&[Op::HandOver, Op::Activate])),
                (
                    "lift-suspension",
                    card(&[Op::HandOver, Op::Activate, Op::Suspend]),
                ),
                ("block", card(&[Op::HandOver, Op::Activate])),
                ("report-lost", card(&[Op::HandOver, Op::Activate])),
                ("report-stolen", card(&[Op::HandOver, Op::Activate])),
                ("unblock", card(&[Op::HandOver, Op::Activate, Op::Block])),
                ("close", card(&[Op::HandOver, Op::Activate])),
                ("replace", card(&[Op::HandOver, Op::Activate])),
                ("pin-reset", card(&[Op::HandOver, Op::Activate])),
            ];
            let mut routes: Vec<Route> = vec![
                (
                    "GET",
                    Some(Permission::ViewCards),
                    Seen::Bureau,
                    format!("/import-jobs/{bureau_job}"),
                    None,
                ),
                (
                    "GET",
                    Some(Permission::ViewCards),
                    Seen::Bureau,
                    format!("/import-jobs/{bureau_job}/errors"),
                    None,
                ),
                (
                    "GET",
                    Some(Permission::ViewCards),
                    Seen::Cards,
                    format!("/applications/{app}"),
                    None,
                ),
                (
                    "GET",
                    Some(Permission::ViewCards),
                    Seen::All,
                    format!("/applications?batch_id=fx-{serial}&citizen_id=x"),
                    None,
                ),
                (
                    "GET",
                    Some(Permission::ViewCards),
                    Seen::All,
                    "/cards?pan_last4=0001".into(),
                    None,
                ),
                (
                    "GET",
                    Some(Permission::ViewCards),
                    Seen::Cards,
                    format!("/cards/{}", n.cms_card),
                    None,
                ),
                (
                    "PUT",
                    Some(Permission::IssueCards),
                    Seen::Cards,
                    format!("/applications/{app}/photo"),
                    None,
                ),
                (
                    "POST",
                    Some(Permission::IssueCards),
                    Seen::Cards,
                    format!("/applications/{app}/issue"),
                    Some(json!({"pin_block": counter_pin_block(&n.world)})),
                ),
                (
                    "GET",
                    Some(Permission::IssueCards),
                    Seen::Bureau,
                    "/perso-files".into(),
                    None,
                ),
                (
                    "GET",
                    Some(Permission::IssueCards),
                    Seen::Bureau,
                    format!("/perso-files/{}", n.perso_file),
                    None,
                ),
            ];
            for (op, (k, ops)) in plan {
                let id = cms_card(&n, k, ops).await;
                let version = n
                    .cms
                    .service
                    .card(switch::store::CardId(id))
                    .await
                    .unwrap()
                    .version;
                let permission = match op {
                    "replace" => Permission::ReplaceCard,
                    "pin-reset" => Permission::ResetPin,
                    other => switch::operator::routes::cms::operation(other).unwrap().1,
                };
                let mut body = json!({"reason": format!("{op} by {name}")});
                if matches!(op, "replace" | "pin-reset") {
                    body["pin_block"] = counter_pin_block(&n.world).into();
                }
                routes.push((
                    "POST",
                    Some(permission),
                    Seen::Cards,
                    format!("/cards/{id}/{op}#{version}"),
                    Some(body),
                ));
            }
            for (method, permission, seen, path, body) in routes {
                let (path, version) = match path.split_once('#') {
                    Some((p, v)) => (p.to_owned(), Some(format!("\"{v}\""))),
                    None => (path, None),
                };
                let mut headers: Vec<(&str, &str)> =
                    vec![("Cookie", &s.cookie), ("X-CSRF-Token", &s.csrf)];
                if let Some(v) = &version {
                    headers.push(("If-Match", v));
                }
                let reply = if method == "PUT" {
                    let jpeg = switch::cms::photo::sample_jpeg(358, 441);
                    request_bytes(n.addr, method, &path, &headers, Some(("image/jpeg", &jpeg)))
                        .await
                } else {
                    let body = body.as_ref().map(Value::to_string);
                    request_with(n.addr, method, &path, &headers, body.as_deref()).await
                };
                let allowed = permission.is_none_or(|p| granted.contains(p));
                let sees = match seen {
                    Seen::All => true,
                    Seen::Cards => tenant != other_bank,
                    Seen::Bureau => tenant == BUREAU || tenant == SWITCH,
                };
                let what = format!("{} at {tenant}: {method} {path}", role.role_id);
                if !allowed {
                    assert_eq!(reply.status, 403, "{what}: {reply:?}");
                    assert_eq!(problem_type(&reply), "/problems/forbidden", "{what}");
                } else if !sees {
                    assert_eq!(reply.status, 404, "{what}: {reply:?}");
                    assert_eq!(problem_type(&reply), "/problems/not-found", "{what}");
                } else {
                    assert!((200..300).contains(&reply.status), "{what}: {reply:?}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, BUILTIN_ROLES.len() * 4 * 21);
}

/// Uploads a one-row batch as session `s`.
async fn upload(n: &Node, s: &Session, batch: &str, csv: &str) -> Reply {
    request_bytes(
        n.addr,
        "POST",
        &format!("/application-batches?batch_id={batch}"),
        &[("Cookie", &s.cookie), ("X-CSRF-Token", &s.csrf)],
        Some(("text/csv", csv.as_bytes())),
    )
    .await
}

fn rule(method: &'static str, permission: Option<Permission>, tenant_scoped: bool) -> RouteRule {
    RouteRule {
        method,
        permission,
        tenant_scoped,
    }
}

async fn propose_directly(n: &Node, proposer: &OperatorUser, target: &OperatorUser) -> uuid::Uuid {
    let change = switch::store::operator::RoleChange {
        change_id: uuid::Uuid::now_v7(),
        user_id: target.user_id,
        role_ids: vec!["auditor".into()],
        reason: "covers the audit desk".into(),
        proposed_by: proposer.user_id,
        proposed_at_us: switch::store::now_us(),
        approved_by: None,
        approved_at_us: None,
    };
    n.store.propose_role_change(&change, None).await.unwrap();
    change.change_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_only_the_callers_institution() {
    let n = with_transaction().await;
    let hospital = n.fx.hospital.as_str().to_owned();
    user(&n, "mine", &hospital, &[]).await;
    user(&n, "theirs", OTHER_HOSPITAL, &[]).await;
    let (_, first) = user(&n, "auditor-h", &hospital, &["auditor"]).await;
    let s = session(&n, "auditor-h", &first).await;
    let users = call(&n, Some(&s), "GET", "/users", None).await;
    assert!(
        users.body.contains("\"mine\"") && !users.body.contains("\"theirs\""),
        "{}",
        users.body
    );
    // The bank's store-and-forward queue is the bank's: the hospital sees none of it.
    let saf: Value =
        serde_json::from_str(&call(&n, Some(&s), "GET", "/saf", None).await.body).unwrap();
    assert_eq!(saf["queues"].as_array().map(Vec::len), Some(0), "{saf}");
    let (_, first) = user(&n, "auditor-s", SWITCH, &["auditor"]).await;
    let s = session(&n, "auditor-s", &first).await;
    let saf: Value =
        serde_json::from_str(&call(&n, Some(&s), "GET", "/saf", None).await.body).unwrap();
    assert_eq!(
        saf["queues"].as_array().map(Vec::len),
        Some(1),
        "the switch sees the advice: {saf}"
    );
    // Pages: a cursor leads to the rest, without repeats.
    let first_page: Value =
        serde_json::from_str(&call(&n, Some(&s), "GET", "/users?limit=2", None).await.body)
            .unwrap();
    let cursor = first_page["next_cursor"]
        .as_str()
        .expect("more users")
        .to_owned();
    let next: Value = serde_json::from_str(
        &call(
            &n,
            Some(&s),
            "GET",
            &format!("/users?limit=2&cursor={cursor}"),
            None,
        )
        .await
        .body,
    )
    .unwrap();
    assert_ne!(
        first_page["items"][0]["user_id"],
        next["items"][0]["user_id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_logins_lock_the_user_and_every_attempt_is_audited_with_its_source() {
    let n = node().await;
    let (u, first) = user(&n, "clerk", SWITCH, &["counter_clerk"]).await;
    let code = totp_now(&first.totp);
    for _ in 0..4 {
        assert_eq!(
            login(&n, "clerk", "wrong password!", &code).await.status,
            401
        );
    }
    // A right password with a wrong code fails too (and counts).
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    let r = login(&n, "clerk", PASSWORD, wrong_code).await;
    assert_eq!(
        (r.status, problem_type(&r).as_str()),
        (401, "/problems/login-failed")
    );
    // Locked: the right password and code are refused, with the same words.
    let locked = login(&n, "clerk", PASSWORD, &totp_now(&first.totp)).await;
    assert_eq!(locked.status, 401);
    assert_eq!(
        locked.body, r.body,
        "a lock is not told apart from a wrong password"
    );
    let stored = n.store.user(u.user_id).await.unwrap().unwrap();
    assert_eq!(stored.failed_logins, 5);
    let printed = format!("{stored:?}");
    assert!(
        !printed.contains(&stored.password_hash) && !printed.contains("argon2"),
        "{printed}"
    );
    assert!(stored.locked_until_us.is_some());
    // An unknown user gets the same answer.
    assert_eq!(login(&n, "nobody", PASSWORD, &code).await.body, r.body);

    let audit = n.store.audit_page(0, 100).await.unwrap();
    let failures: Vec<_> = audit
        .iter()
        .filter(|e| e.entry.action == "operator.login_failed")
        .collect();
    assert_eq!(
        failures.len(),
        7,
        "five failures, the locked attempt and the unknown user"
    );
    assert!(
        failures
            .iter()
            .all(|e| e.entry.detail.contains("\"source\":\"127.0.0.1\"")),
        "{failures:?}"
    );
    assert!(failures
        .iter()
        .any(|e| e.entry.detail.contains("\"failure\":\"locked\"")));
    assert!(
        audit.iter().all(|e| !e.entry.detail.contains(PASSWORD)),
        "no password in the log"
    );
    assert_eq!(
        n.store.verify_audit_chain().await.unwrap(),
        audit.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_state_changing_request_needs_its_csrf_token() {
    let n = node().await;
    let (_, first) = user(&n, "admin", SWITCH, &["administrator"]).await;
    let s = session(&n, "admin", &first).await;
    let body = json!({"username": "newcomer"}).to_string();
    for headers in [
        vec![("Cookie", s.cookie.as_str())],
        vec![("Cookie", s.cookie.as_str()), ("X-CSRF-Token", "0000")],
    ] {
        let r = request_with(n.addr, "POST", "/users", &headers, Some(&body)).await;
        assert_eq!(
            (r.status, problem_type(&r).as_str()),
            (403, "/problems/csrf"),
            "{headers:?}"
        );
    }
    // A GET needs none.
    let me = request_with(n.addr, "GET", "/me", &[("Cookie", s.cookie.as_str())], None).await;
    assert_eq!(me.status, 200);
    let r = call(
        &n,
        Some(&s),
        "POST",
        "/users",
        Some(&json!({"username": "newcomer"})),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        v["password"].as_str().map(str::len),
        Some(20),
        "a one-time password, shown once"
    );
    assert_eq!(v["totp_secret"].as_str().map(str::len), Some(32));
    // Logout ends the session.
    assert_eq!(
        call(&n, Some(&s), "DELETE", "/session", None).await.status,
        204
    );
    assert_eq!(call(&n, Some(&s), "GET", "/me", None).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_cannot_approve_their_own_role_change() {
    let n = node().await;
    let (_, a_first) = user(&n, "admin-a", SWITCH, &["administrator"]).await;
    let (_, b_first) = user(&n, "admin-b", SWITCH, &["administrator"]).await;
    let (target, _) = user(&n, "cashier", SWITCH, &[]).await;
    let a = session(&n, "admin-a", &a_first).await;
    let b = session(&n, "admin-b", &b_first).await;
    let proposed = call(
        &n,
        Some(&a),
        "POST",
        &format!("/users/{}/roles", target.user_id),
        Some(&json!({"role_ids": ["hospital_cashier"], "reason": "new cashier at the front desk"})),
    )
    .await;
    assert_eq!(proposed.status, 202, "{proposed:?}");
    let change: Value = serde_json::from_str(&proposed.body).unwrap();
    let approve = format!(
        "/role-changes/{}/approve",
        change["change_id"].as_str().unwrap()
    );
    let own = call(&n, Some(&a), "POST", &approve, None).await;
    assert_eq!(
        (own.status, problem_type(&own).as_str()),
        (403, "/problems/four-eyes")
    );
    assert!(
        n.store.user_roles(target.user_id).await.unwrap().is_empty(),
        "not applied"
    );
    let other = call(&n, Some(&b), "POST", &approve, None).await;
    assert_eq!(other.status, 200, "{other:?}");
    let roles = n.store.user_roles(target.user_id).await.unwrap();
    assert_eq!(
        roles.iter().map(|r| r.role_id.as_str()).collect::<Vec<_>>(),
        ["hospital_cashier"]
    );
    assert_eq!(
        call(&n, Some(&b), "POST", &approve, None).await.status,
        409,
        "once"
    );
    // Both steps are audited, with the reason.
    let audit = n.store.audit_page(0, 100).await.unwrap();
    let approved = audit
        .iter()
        .find(|e| e.entry.action == "role_change.approve")
        .expect("audited");
    assert!(approved
        .entry
        .detail
        .contains("new cashier at the front desk"));
    assert!(approved.keyed, "MACed under the audit key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let n = node().await;
    let (_, first) = user(&n, "admin", SWITCH, &["administrator"]).await;
    let s = session(&n, "admin", &first).await;
    let post = |body: Value, key: &'static str| {
        let s = &s;
        let n = &n;
        async move {
            let b = body.to_string();
            request_with(
                n.addr,
                "POST",
                "/roles",
                &[
                    ("Cookie", &s.cookie),
                    ("X-CSRF-Token", &s.csrf),
                    ("Idempotency-Key", key),
                ],
                Some(&b),
            )
            .await
        }
    };
    let body =
        json!({"role_id": "night", "name": "Night cashier", "permissions": ["transactions.read"]});
    let one = post(body.clone(), "k-1").await;
    assert_eq!(one.status, 201, "{one:?}");
    let again = post(body.clone(), "k-1").await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (201, one.body.as_str())
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = post(
        json!({"role_id": "day", "name": "Day", "permissions": []}),
        "k-1",
    )
    .await;
    assert_eq!(
        (other.status, problem_type(&other).as_str()),
        (422, "/problems/idempotency-key-reused")
    );
    // Without the key, the same body is a second request: the role exists.
    let r = call(&n, Some(&s), "POST", "/roles", Some(&body)).await;
    assert_eq!(r.status, 409);
    // A new user's secrets are not kept for a replay.
    let b = json!({"username": "once"}).to_string();
    let headers = [
        ("Cookie", s.cookie.as_str()),
        ("X-CSRF-Token", s.csrf.as_str()),
        ("Idempotency-Key", "u-1"),
    ];
    let created = request_with(n.addr, "POST", "/users", &headers, Some(&b)).await;
    let replay = request_with(n.addr, "POST", "/users", &headers, Some(&b)).await;
    let (c, r): (Value, Value) = (
        serde_json::from_str(&created.body).unwrap(),
        serde_json::from_str(&replay.body).unwrap(),
    );
    assert!(c["password"].is_string());
    assert_eq!(
        (r["password"].clone(), r["user_id"].clone()),
        (Value::Null, c["user_id"].clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_needs_the_current_one_and_ends_every_session() {
    let n = node().await;
    let (_, first) = user(&n, "clerk", SWITCH, &["counter_clerk"]).await;
    let s = session(&n, "clerk", &first).await;
    let wrong = call(
        &n,
        Some(&s),
        "POST",
        "/session/password",
        Some(
            &json!({"current_password": "not it at all", "new_password": "another long password"}),
        ),
    )
    .await;
    assert_eq!(wrong.status, 403);
    let short = call(
        &n,
        Some(&s),
        "POST",
        "/session/password",
        Some(&json!({"current_password": PASSWORD, "new_password": "short"})),
    )
    .await;
    assert_eq!(short.status, 400);
    let ok = call(
        &n,
        Some(&s),
        "POST",
        "/session/password",
        Some(&json!({"current_password": PASSWORD, "new_password": "another long password"})),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(
        call(&n, Some(&s), "GET", "/me", None).await.status,
        401,
        "logged out"
    );
    // The next step's code: the current one opened the first session (a code is used once).
    let code = operator_kit::totp_next(&first.totp);
    assert_eq!(login(&n, "clerk", PASSWORD, &code).await.status, 401);
    assert_eq!(
        login(&n, "clerk", "another long password", &code)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_acts_for_its_institution_and_role() {
    let n = with_transaction().await;
    let bank_key = operator_kit::api_key(&*n.store, n.fx.bank.as_str(), "bank_operator")
        .await
        .unwrap();
    let other_key = operator_kit::api_key(&*n.store, operator_kit::OTHER_BANK, "bank_operator")
        .await
        .unwrap();
    let get = |key: String, path: String| {
        let addr = n.addr;
        async move {
            let auth = format!("Bearer {key}");
            request_with(addr, "GET", &path, &[("Authorization", &auth)], None).await
        }
    };
    let mine = get(bank_key.clone(), format!("/transactions/{RRN}")).await;
    assert_eq!(
        mine.status, 200,
        "the issuer bank sees its card's transaction: {mine:?}"
    );
    assert_eq!(
        get(other_key.clone(), format!("/transactions/{RRN}"))
            .await
            .status,
        404
    );
    assert_eq!(get(bank_key.clone(), "/audit".into()).await.status, 403);
    // The search finds the issuer bank's card's transaction by its PAN's last four digits, and
    // nothing for the other bank.
    let last4 = &n.fx.pan.expose_digits()[12..];
    let found: Value = serde_json::from_str(
        &get(
            bank_key.clone(),
            format!("/transactions?pan_last4={last4}&response_code=00"),
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["items"][0]["rrn"], RRN);
    let none: Value = serde_json::from_str(
        &get(
            other_key.clone(),
            format!("/transactions?pan_last4={last4}"),
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "{none}");
    let me: Value = serde_json::from_str(&get(bank_key, "/me".into()).await.body).unwrap();
    assert_eq!(me["principal"]["kind"], "api_key");
    assert_eq!(me["institution"]["institution_id"], n.fx.bank.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_idle_too_long_or_too_old() {
    use switch::operator::token::Token;
    use switch::operator::SessionPolicy;
    use switch::store::now_us;
    use switch::store::operator::OperatorSession;
    let n = node().await;
    let (u, _) = user(&n, "clerk", SWITCH, &["counter_clerk"]).await;
    let policy = SessionPolicy::default();
    let us = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap();
    let now = now_us();
    let second = 1_000_000;
    for (created, last_seen, expected) in [
        (now - second, now - second, 200),
        (
            now - us(policy.idle_timeout) - second,
            now - us(policy.idle_timeout) - second,
            401,
        ),
        (
            now - us(policy.absolute_timeout) - second,
            now - second,
            401,
        ),
    ] {
        let token = Token::generate().unwrap();
        n.store
            .create_session(&OperatorSession {
                token_hash: token.hash(),
                user_id: u.user_id,
                csrf_hash: [0; 32],
                created_at_us: created,
                last_seen_at_us: last_seen,
                ended_at_us: None,
            })
            .await
            .unwrap();
        let cookie = format!("switch_session={}", token.expose());
        let r = request_with(n.addr, "GET", "/me", &[("Cookie", &cookie)], None).await;
        assert_eq!(
            r.status, expected,
            "created {created}, last seen {last_seen}"
        );
    }
}

/// The settlement routes by role and tenant: the switch (the clearing centre: every figure,
/// closes), `testkit`'s bank (its own line and statement), another bank (its own line, not the
/// first bank's statement), a hospital (no settlement: its list is empty, the rest 404). Each
/// route answers 403 without its permission, 404 where the tenant does not see the resource,
/// 2xx otherwise; a bank's answers never carry another institution's line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_settlement_route_by_role_and_tenant_answers_403_404_or_2xx() {
    let n = node().await;
    let bank = n.fx.bank.as_str().to_owned();
    let hospital = n.fx.hospital.as_str().to_owned();
    let other_bank = operator_kit::OTHER_BANK;
    let mut checked = 0;
    for role in BUILTIN_ROLES {
        let granted = PermissionSet::of(role.permissions);
        for (t, tenant) in [hospital.as_str(), bank.as_str(), other_bank, SWITCH]
            .into_iter()
            .enumerate()
        {
            let name = format!("settle-{}-{t}", role.role_id.replace('_', "-"));
            let (_, first) = user(&n, &name, tenant, &[role.role_id]).await;
            let s = session(&n, &name, &first).await;
            let centre = tenant == SWITCH;
            let a_bank = tenant == bank || tenant == other_bank;
            // (method, permission, seen by this tenant, path, body)
            let routes: Vec<(&str, Permission, bool, String, Option<Value>)> = vec![
                (
                    "GET",
                    Permission::ViewClearing,
                    true,
                    "/clearing/windows".into(),
                    None,
                ),
                (
                    "GET",
                    Permission::ViewClearing,
                    centre || a_bank,
                    "/clearing/windows/1".into(),
                    None,
                ),
                (
                    "GET",
                    Permission::ViewClearing,
                    centre || a_bank,
                    "/clearing/positions".into(),
                    None,
                ),
                (
                    "GET",
                    Permission::ViewClearing,
                    centre || tenant == bank,
                    format!("/clearing/windows/1/reports/{bank}?format=csv"),
                    None,
                ),
                (
                    "POST",
                    Permission::CloseWindow,
                    centre,
                    "/clearing/windows/close".into(),
                    Some(json!({"reason": format!("matrix {name}")})),
                ),
            ];
            for (method, permission, seen, path, body) in routes {
                let reply = call(&n, Some(&s), method, &path, body.as_ref()).await;
                let what = format!("{} at {tenant}: {method} {path}", role.role_id);
                if !granted.contains(permission) {
                    assert_eq!(reply.status, 403, "{what}: {reply:?}");
                    assert_eq!(problem_type(&reply), "/problems/forbidden", "{what}");
                } else if !seen {
                    assert_eq!(reply.status, 404, "{what}: {reply:?}");
                    assert_eq!(problem_type(&reply), "/problems/not-found", "{what}");
                } else {
                    assert!((200..300).contains(&reply.status), "{what}: {reply:?}");
                    if method == "GET" && !centre {
                        // A bank's figures are its own only; a hospital's list is empty.
                        let v: Value = serde_json::from_str(&reply.body).unwrap_or_default();
                        for p in v["positions"].as_array().into_iter().flatten() {
                            assert_eq!(p["institution_id"], tenant, "{what}: {v}");
                        }
                        if !a_bank {
                            assert_eq!(v["items"], json!([]), "{what}: {v}");
                        }
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, BUILTIN_ROLES.len() * 4 * 5);
}

/// RFC 6238 §5.2: a TOTP code opens one session. The same code again is refused (401, audited
/// as a replay) even with the right password; a wrong password does not spend the code; a
/// code of a later step opens the next session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_code_opens_one_session_only() {
    let n = node().await;
    let (user, first) = user(&n, "twice", SWITCH, &["auditor"]).await;
    let code = totp_now(&first.totp);
    assert_eq!(
        login(&n, "twice", "not the password", &code).await.status,
        401
    );
    assert_eq!(login(&n, "twice", PASSWORD, &code).await.status, 200);
    let replay = login(&n, "twice", PASSWORD, &code).await;
    assert_eq!(replay.status, 401, "{replay:?}");
    assert_eq!(problem_type(&replay), "/problems/login-failed");
    let audit = n.store.audit_page(0, 1_000).await.unwrap();
    let subject = format!("user:{}", user.user_id);
    assert!(
        audit.iter().any(|r| r.entry.subject == subject
            && r.entry.action == "operator.login_failed"
            && r.entry.detail.contains("code already used")),
        "the replay is audited"
    );
    let next = operator_kit::totp_next(&first.totp);
    assert_eq!(login(&n, "twice", PASSWORD, &next).await.status, 200);
    // And the code of the step before the one used is refused too.
    assert_eq!(login(&n, "twice", PASSWORD, &code).await.status, 401);
}

/// `POST /api-keys` and `DELETE /api-keys/{id}` (users.manage): a key is shown once (a replay
/// answers `key: null`), acts for its institution and role, never holds an administrative
/// permission, is issued and revoked only within the administrator's institution's sight, and
/// a revoked key is refused at once; both are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_issues_and_revokes_machine_keys() {
    let n = with_transaction().await;
    let bank = n.fx.bank.as_str().to_owned();
    let (_, first) = user(&n, "keys-admin", SWITCH, &["administrator"]).await;
    let admin = session(&n, "keys-admin", &first).await;
    let issue = |s: &Session, body: Value, idem: Option<&'static str>| {
        let addr = n.addr;
        let (cookie, csrf) = (s.cookie.clone(), s.csrf.clone());
        async move {
            let mut headers = vec![("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
            if let Some(k) = idem {
                headers.push(("Idempotency-Key", k));
            }
            request_with(addr, "POST", "/api-keys", &headers, Some(&body.to_string())).await
        }
    };
    let body =
        json!({"name": "back office of the bank", "role_id": "bank_operator", "institution": bank});
    let issued = issue(&admin, body.clone(), Some("key-1")).await;
    assert_eq!(issued.status, 201, "{issued:?}");
    let issued: Value = serde_json::from_str(&issued.body).unwrap();
    let key = issued["key"].as_str().expect("the key, once").to_owned();
    let key_id = issued["key_id"].as_str().unwrap().to_owned();
    assert_eq!(issued["institution"], bank.as_str());
    let replay = issue(&admin, body, Some("key-1")).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let replay: Value = serde_json::from_str(&replay.body).unwrap();
    assert!(replay["key"].is_null(), "{replay}");
    assert_eq!(replay["key_id"], key_id.as_str());
    // The key acts for the bank, as a bank operator.
    let auth = format!("Bearer {key}");
    let me = request_with(n.addr, "GET", "/me", &[("Authorization", &auth)], None).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert!(me.body.contains(&bank), "{me:?}");
    // No administrative key.
    let admin_key = issue(
        &admin,
        json!({"name": "x", "role_id": "administrator"}),
        None,
    )
    .await;
    assert_eq!(admin_key.status, 422, "{admin_key:?}");
    assert_eq!(problem_type(&admin_key), "/problems/invalid-input");
    // Another institution's administrator neither issues for the bank nor revokes its key.
    let (_, other_first) = user(&n, "other-admin", OTHER_HOSPITAL, &["administrator"]).await;
    let other = session(&n, "other-admin", &other_first).await;
    let theirs = issue(
        &other,
        json!({"name": "x", "role_id": "bank_operator", "institution": bank}),
        None,
    )
    .await;
    assert_eq!(theirs.status, 404, "{theirs:?}");
    let own = issue(
        &other,
        json!({"name": "HIS", "role_id": "hospital_cashier"}),
        None,
    )
    .await;
    assert_eq!(own.status, 201, "{own:?}");
    let path = format!("/api-keys/{key_id}");
    let not_theirs = call(&n, Some(&other), "DELETE", &path, None).await;
    assert_eq!(not_theirs.status, 404, "{not_theirs:?}");
    // An auditor may not.
    let (_, auditor_first) = user(&n, "keys-auditor", SWITCH, &["auditor"]).await;
    let auditor = session(&n, "keys-auditor", &auditor_first).await;
    assert_eq!(
        call(&n, Some(&auditor), "DELETE", &path, None).await.status,
        403
    );
    // Revoked: refused at once (its cached resolution is dropped); revoking again says when.
    let revoked = call(&n, Some(&admin), "DELETE", &path, None).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let revoked: Value = serde_json::from_str(&revoked.body).unwrap();
    assert!(revoked["revoked_at_us"].is_i64(), "{revoked}");
    let refused = request_with(n.addr, "GET", "/me", &[("Authorization", &auth)], None).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    let again: Value =
        serde_json::from_str(&call(&n, Some(&admin), "DELETE", &path, None).await.body).unwrap();
    assert_eq!(again["revoked_at_us"], revoked["revoked_at_us"]);
    let audit = n.store.audit_page(0, 1_000).await.unwrap();
    let subject = format!("api_key:{key_id}");
    for action in ["api_key.issue", "api_key.revoke"] {
        let count = audit
            .iter()
            .filter(|r| r.entry.action == action && r.entry.subject == subject)
            .count();
        assert_eq!(count, 1, "{action}");
    }
}

/// Runs SQL on the node's database directly (to play a failing disk).
async fn raw_sql(n: &Node, sql: &str) {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(n.dir.path().join("switch.db"))
        .connect()
        .await
        .expect("connect");
    sqlx::query(sql).execute(&mut conn).await.expect("raw SQL");
    conn.close().await.expect("close");
}

/// An administrator's action and its audit entry commit together (GB/T 22239-2019 level 3,
/// security audit): with the audit log refusing appends, creating a user, proposing and
/// approving a role change, issuing and revoking an API key, defining a role and changing a
/// password each answer 503 and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrative_action_whose_audit_entry_cannot_be_appended_is_not_done() {
    let n = node().await;
    let (_, a_first) = user(&n, "audit-admin-a", SWITCH, &["administrator"]).await;
    let (_, b_first) = user(&n, "audit-admin-b", SWITCH, &["administrator"]).await;
    let (target, _) = user(&n, "audit-cashier", SWITCH, &[]).await;
    let a = session(&n, "audit-admin-a", &a_first).await;
    let b = session(&n, "audit-admin-b", &b_first).await;
    let proposed = call(
        &n,
        Some(&a),
        "POST",
        &format!("/users/{}/roles", target.user_id),
        Some(&json!({"role_ids": ["hospital_cashier"], "reason": "front desk"})),
    )
    .await;
    assert_eq!(proposed.status, 202, "{proposed:?}");
    let change: Value = serde_json::from_str(&proposed.body).unwrap();
    let approve = format!(
        "/role-changes/{}/approve",
        change["change_id"].as_str().unwrap()
    );
    let issued = call(
        &n,
        Some(&a),
        "POST",
        "/api-keys",
        Some(&json!({"name": "HIS", "role_id": "hospital_cashier"})),
    )
    .await;
    assert_eq!(issued.status, 201, "{issued:?}");
    let issued: Value = serde_json::from_str(&issued.body).unwrap();
    let key_id = issued["key_id"].as_str().unwrap().to_owned();
    let audited = n.store.verify_audit_chain().await.unwrap();

    raw_sql(
        &n,
        "CREATE TRIGGER audit_log_down BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'audit log down'); END",
    )
    .await;
    let created = call(
        &n,
        Some(&a),
        "POST",
        "/users",
        Some(&json!({"username": "never-created"})),
    )
    .await;
    assert_eq!(created.status, 503, "{created:?}");
    assert!(n
        .store
        .user_by_username("never-created")
        .await
        .unwrap()
        .is_none());
    let again = call(
        &n,
        Some(&a),
        "POST",
        &format!("/users/{}/roles", target.user_id),
        Some(&json!({"role_ids": ["auditor"], "reason": "never proposed"})),
    )
    .await;
    assert_eq!(again.status, 503, "{again:?}");
    let approved = call(&n, Some(&b), "POST", &approve, None).await;
    assert_eq!(approved.status, 503, "{approved:?}");
    assert!(n.store.user_roles(target.user_id).await.unwrap().is_empty());
    let change_id = uuid::Uuid::parse_str(change["change_id"].as_str().unwrap()).unwrap();
    let still = n.store.role_change(change_id).await.unwrap().unwrap();
    assert_eq!(still.approved_by, None, "still proposed");
    let new_key = call(
        &n,
        Some(&a),
        "POST",
        "/api-keys",
        Some(&json!({"name": "never issued", "role_id": "hospital_cashier"})),
    )
    .await;
    assert_eq!(new_key.status, 503, "{new_key:?}");
    let revoked = call(&n, Some(&a), "DELETE", &format!("/api-keys/{key_id}"), None).await;
    assert_eq!(revoked.status, 503, "{revoked:?}");
    let key = n.store.api_key_by_id(&key_id).await.unwrap().unwrap();
    assert_eq!(key.revoked_at_us, None, "not revoked");
    let role = call(
        &n,
        Some(&a),
        "POST",
        "/roles",
        Some(&json!({"role_id": "never", "name": "Never", "permissions": []})),
    )
    .await;
    assert_eq!(role.status, 503, "{role:?}");
    assert!(n
        .store
        .role(&format!("{SWITCH}.never"))
        .await
        .unwrap()
        .is_none());

    let password = call(
        &n,
        Some(&a),
        "POST",
        "/session/password",
        Some(&json!({"current_password": PASSWORD, "new_password": "never changed to this"})),
    )
    .await;
    assert_eq!(password.status, 503, "{password:?}");

    raw_sql(&n, "DROP TRIGGER audit_log_down").await;
    assert_eq!(n.store.verify_audit_chain().await.unwrap(), audited);
    // The password change was not done: the session is open, the old password still opens one.
    assert_eq!(call(&n, Some(&a), "GET", "/me", None).await.status, 200);
    let again = login(
        &n,
        "audit-admin-a",
        PASSWORD,
        &operator_kit::totp_next(&a_first.totp),
    )
    .await;
    assert_eq!(again.status, 200, "{again:?}");
    // Nothing half-done blocks the retry: the approval goes through now, audited.
    let approved = call(&n, Some(&b), "POST", &approve, None).await;
    assert_eq!(approved.status, 200, "{approved:?}");
    // The login above and the approval.
    assert_eq!(n.store.verify_audit_chain().await.unwrap(), audited + 2);
}

/// `GET /api-keys` (users.read): an institution's administrator lists its own keys, the
/// switch's every institution's; no item carries the key or its hash; a key's last use shows
/// once it authenticated, and its revocation once revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_list_shows_the_institutions_keys_without_secrets_and_their_last_use() {
    let n = node().await;
    let hospital = n.fx.hospital.as_str().to_owned();
    let his = operator_kit::api_key(&*n.store, &hospital, "hospital_cashier")
        .await
        .unwrap();
    let other = operator_kit::api_key(&*n.store, OTHER_HOSPITAL, "hospital_cashier")
        .await
        .unwrap();
    let (_, h_first) = user(&n, "hospital-admin", &hospital, &["administrator"]).await;
    let (_, s_first) = user(&n, "switch-admin", SWITCH, &["administrator"]).await;
    let h = session(&n, "hospital-admin", &h_first).await;
    let s = session(&n, "switch-admin", &s_first).await;
    let list = |s: &Session, query: &'static str| {
        let (addr, cookie) = (n.addr, s.cookie.clone());
        async move {
            let r = request_with(addr, "GET", query, &[("Cookie", cookie.as_str())], None).await;
            assert_eq!(r.status, 200, "{r:?}");
            serde_json::from_str::<Value>(&r.body).unwrap()
        }
    };
    let own = list(&h, "/api-keys").await;
    let items = own["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the hospital's key: {own}");
    let item = &items[0];
    assert_eq!(item["institution"], hospital.as_str());
    assert_eq!(item["role_id"], "hospital_cashier");
    assert!(item["last_used_at_us"].is_null(), "not used yet: {item}");
    for secret in ["key", "key_hash"] {
        assert!(item.get(secret).is_none(), "{secret} in {item}");
    }
    assert!(!own.to_string().contains(&his) && !own.to_string().contains(&other));
    // Used once: its last use shows.
    let auth = format!("Bearer {his}");
    let me = request_with(n.addr, "GET", "/me", &[("Authorization", &auth)], None).await;
    assert_eq!(me.status, 200, "{me:?}");
    let used = list(&h, "/api-keys").await;
    assert!(used["items"][0]["last_used_at_us"].is_i64(), "{used}");
    // The switch sees every institution's keys, a page at a time.
    let all = list(&s, "/api-keys?limit=200").await;
    let institutions: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["institution"].as_str())
        .collect();
    assert!(institutions.contains(&hospital.as_str()), "{all}");
    assert!(institutions.contains(&OTHER_HOSPITAL), "{all}");
    let first = list(&s, "/api-keys?limit=1").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let r = request_with(
        n.addr,
        "GET",
        &format!("/api-keys?limit=1&cursor={cursor}"),
        &[("Cookie", s.cookie.as_str())],
        None,
    )
    .await;
    let second: Value = serde_json::from_str(&r.body).unwrap();
    assert_ne!(second["items"][0]["key_id"], first["items"][0]["key_id"]);
    // Revoked: still listed, with the time.
    let key_id = item["key_id"].as_str().unwrap();
    let revoked = call(&n, Some(&h), "DELETE", &format!("/api-keys/{key_id}"), None).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let after = list(&h, "/api-keys").await;
    assert!(after["items"][0]["revoked_at_us"].is_i64(), "{after}");
}

/// A closed personalisation file and an import job's starter are in the store: a second node
/// on the same database (or this one after a restart) serves the file and shows the bureau its
/// job, and another bureau still gets 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_files_and_job_starters_survive_the_node_that_made_them() {
    let n = node().await;
    let issuer = format!("Bearer {}", http_node::ISSUER_KEY);
    let bureau = operator_kit::api_key(&*n.store, BUREAU, "issuance_operator")
        .await
        .unwrap();
    let bureau = format!("Bearer {bureau}");
    let csv = format!(
        "citizen_id,name,insurance_scheme,region_code,bank_id\n{},李四,居民,410102,{}\n",
        http_node::citizen(950),
        n.fx.bank.as_str()
    );
    let r = request_with(
        n.addr,
        "POST",
        "/application-batches?batch_id=survive",
        &[("Authorization", &bureau), ("Content-Type", "text/csv")],
        Some(&csv),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    let job: Value = serde_json::from_str(&r.body).unwrap();
    let job_path = format!("/import-jobs/{}", job["job_id"].as_str().unwrap());
    // A second node on the same database: nothing held in the first one's memory.
    let second = http_node::second_node(&n).await;
    let seen = request_with(
        second,
        "GET",
        &job_path,
        &[("Authorization", &bureau)],
        None,
    )
    .await;
    assert_eq!(
        seen.status, 200,
        "the bureau sees its job from any node: {seen:?}"
    );
    let other = operator_kit::api_key(&*n.store, OTHER_HOSPITAL, "issuance_operator")
        .await
        .unwrap();
    let other = format!("Bearer {other}");
    let hidden = request_with(second, "GET", &job_path, &[("Authorization", &other)], None).await;
    assert_eq!(hidden.status, 404, "{hidden:?}");
    // The node's fixture closed a file at start: the second node lists and serves it.
    let listed = request_with(
        second,
        "GET",
        "/perso-files",
        &[("Authorization", &issuer)],
        None,
    )
    .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert!(listed.body.contains(&n.perso_file), "{listed:?}");
    let path = format!("/perso-files/{}", n.perso_file);
    let file = request_with(second, "GET", &path, &[("Authorization", &issuer)], None).await;
    assert_eq!(file.status, 200, "{file:?}");
    let header: Value = serde_json::from_str(file.body.lines().next().unwrap()).unwrap();
    assert_eq!(header["file_id"], n.perso_file.as_str(), "{header}");
    // Sealed at rest: no PAN digits of the file in the database's row.
    let record: Value = serde_json::from_str(file.body.lines().nth(1).unwrap()).unwrap();
    let pan = record["pan"].as_str().unwrap().to_owned();
    use sqlx::{ConnectOptions, Connection, Row};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(n.dir.path().join("switch.db"))
        .connect()
        .await
        .expect("connect");
    let sealed: Vec<u8> = sqlx::query("SELECT content_sealed FROM perso_file WHERE file_id = ?")
        .bind(&n.perso_file)
        .fetch_one(&mut conn)
        .await
        .expect("the file's row")
        .get(0);
    conn.close().await.expect("close");
    let at_rest = String::from_utf8_lossy(&sealed);
    assert!(!at_rest.contains(&pan) && !at_rest.contains(&n.perso_file));
}

/// Each counter's PIN pad has its own TPK, chosen by the counter whose key authenticated the
/// request: a PIN block under counter 2's TPK is taken at counter 2, refused at counter 1 (it
/// does not decrypt to a PIN under counter 1's TPK) and the card does not change; a clerk who
/// is not a counter enters no PIN (403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_block_under_another_counters_tpk_is_refused() {
    use hsm_sim::keys::{KeyScheme, KeyType, Tpk, TypedKey};
    use hsm_sim::pin::PinBlockFormat;
    use switch::operator::routes::cms::CounterTerminal;
    use switch::sim::world::{clear_keys, with_odd_parity, DEMO_PIN};
    let n = node().await;
    let tpk_2 = with_odd_parity("11223344556677888877665544332211");
    let import = |hex: &str| {
        Tpk::from_token(
            n.world
                .hsm
                .import_clear_key(KeyType::Tpk, KeyScheme::U, hex)
                .unwrap(),
        )
    };
    let bureau = testkit::inst(BUREAU);
    let counters = vec![
        CounterTerminal {
            counter_id: "counter-1".into(),
            institution: bureau.clone(),
            tpk: import(clear_keys::TPK),
        },
        CounterTerminal {
            counter_id: "counter-2".into(),
            institution: bureau.clone(),
            tpk: import(&tpk_2),
        },
    ];
    let addr = http_node::second_node_with(&n, counters).await;
    let counter_key = |counter: &'static str| {
        let store = n.store.clone();
        let bureau = bureau.clone();
        async move {
            let key = switch::operator::token::Token::generate().unwrap();
            store
                .put_api_key(
                    &switch::store::operator::ApiKeyRecord {
                        key_hash: key.hash(),
                        key_id: format!("key-{counter}"),
                        institution: bureau,
                        role_id: "counter_clerk".into(),
                        name: format!("PIN pad of {counter}"),
                        created_at_us: switch::store::now_us(),
                        revoked_at_us: None,
                        last_used_at_us: None,
                        counter_id: Some(counter.into()),
                    },
                    None,
                )
                .await
                .unwrap();
            format!("Bearer {}", key.expose())
        }
    };
    let at_1 = counter_key("counter-1").await;
    let at_2 = counter_key("counter-2").await;
    let not_a_counter = format!(
        "Bearer {}",
        operator_kit::api_key(&*n.store, BUREAU, "counter_clerk")
            .await
            .unwrap()
    );
    let card = cms_card(&n, 961, &[Op::HandOver, Op::Activate]).await;
    let pan = n.store.card_pan(switch::store::CardId(card)).await.unwrap();
    // ISO 9564-1 format 0 under counter 2's TPK: the same block every time (no random fill).
    let block = switch::sim::bureau::counter_pin_under(
        &n.world,
        &tpk_2,
        DEMO_PIN,
        PinBlockFormat::Iso0,
        pan.expose_digits(),
    )
    .unwrap()
    .block
    .to_hex();
    let body = json!({"pin_block": block, "pin_block_format": "iso0", "reason": "forgotten PIN"})
        .to_string();
    let path = format!("/cards/{card}/pin-reset");
    let reset = |auth: String| {
        let (body, path) = (body.clone(), path.clone());
        let store = n.store.clone();
        async move {
            let version = switch::cms::CmsStore::cms_card(&*store, switch::store::CardId(card))
                .await
                .unwrap()
                .unwrap()
                .version;
            let if_match = format!("\"{version}\"");
            let r = request_with(
                addr,
                "POST",
                &path,
                &[("Authorization", &auth), ("If-Match", &if_match)],
                Some(&body),
            )
            .await;
            (r, version)
        }
    };
    let (refused, before) = reset(at_1).await;
    assert!(!(200..300).contains(&refused.status), "{refused:?}");
    let (no_counter, _) = reset(not_a_counter).await;
    assert_eq!(no_counter.status, 403, "{no_counter:?}");
    let unchanged = switch::cms::CmsStore::cms_card(&*n.store, switch::store::CardId(card))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.version, before, "nothing changed");
    let (taken, _) = reset(at_2).await;
    assert_eq!(taken.status, 200, "at its own counter: {taken:?}");
    // A counter's key names a counter of its institution.
    let admin = format!(
        "Bearer {}",
        operator_kit::api_key(&*n.store, SWITCH, "administrator")
            .await
            .unwrap()
    );
    for (counter, status) in [("counter-2", 201), ("counter-9", 400)] {
        let body = json!({"name": "PIN pad", "role_id": "counter_clerk",
                          "institution": BUREAU, "counter_id": counter})
        .to_string();
        let r = request_with(
            addr,
            "POST",
            "/api-keys",
            &[("Authorization", &admin)],
            Some(&body),
        )
        .await;
        assert_eq!(r.status, status, "{counter}: {r:?}");
    }
}
