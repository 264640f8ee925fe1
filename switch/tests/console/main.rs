//! The operator console's journeys in a real browser (issue 26): headless chromium driven
//! over WebDriver against a demo node the test starts. Each journey saves PNG screenshots
//! (paths printed; `target/console-screenshots/`).
//!
//! - `issuance_operator_uploads_a_batch_and_issues_a_card`: log in, upload a CSV with one bad
//!   row, watch the import job, read the per-row error report, issue a card with the counter's
//!   PIN block;
//! - `a_card_reported_lost_at_the_counter_is_declined_41_and_found_in_search`: a counter
//!   clerk finds a card by its last four digits and reports it lost with a reason; the next
//!   payment with it through the acquirer port is declined 41; the clerk replaces the card;
//!   the hospital's cashier finds the declined payment in transaction search;
//! - `a_hospital_cashier_sees_its_own_payment_and_not_another_hospitals`;
//! - `the_dashboard_moves_while_kiosks_pay`: the live figures (server-sent events) change
//!   while the demo's kiosks run;
//! - `a_role_change_takes_two_administrators_and_the_auditor_reads_it`: four eyes in the
//!   users page, the audit log page;
//! - `a_clearing_analyst_closes_the_window_and_downloads_its_camt053`: positions of the open
//!   window, the close with a confirmation and a reason, the closed window's statements; the
//!   camt.053 downloaded with the browser's session validates against the ISO 20022 schema;
//! - `the_dashboards_net_positions_move_with_a_payment_and_sum_to_zero`: the live panel's net
//!   positions (institutions by Chinese name) after a kiosk payment, and clearing's lag.

mod browser;
mod fixtures;
#[path = "../support/ports.rs"]
mod ports;

use browser::{
    browser, chromedriver, click, fill, log_in, log_out, shot, source, text, wait_text,
    wait_text_saying,
};
use fantoccini::Locator;
use fixtures::{citizen, cms_card, connect, counter_pin_block, hospital_kiosk, insured_card, pay};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_operator_uploads_a_batch_and_issues_a_card() {
    let driver = chromedriver();
    let d = fixtures::start().await;
    let c = browser(&driver).await;
    let world = &d.demo.world;
    let j = "a-issuance";

    // The login page is Chinese by default.
    c.goto(&format!("{}/console/login", d.base)).await.unwrap();
    assert!(source(&c).await.contains("lang=\"zh-CN\""));
    shot(&c, j, "1-login").await;
    log_in(&c, &d.base, world, "demo-issuance").await;
    // The navigation offers only what an issuance operator may do.
    let nav = text(&c, "nav.side").await;
    assert!(
        nav.contains("申请批次") && nav.contains("持卡人与卡片"),
        "{nav}"
    );
    assert!(
        !nav.contains("交易查询") && !nav.contains("审计日志"),
        "{nav}"
    );

    // Upload a batch of three rows, one with a citizen ID whose check character is wrong.
    let bank = world.banks[0].id.as_str();
    let mut bad = citizen(902);
    bad.replace_range(17.., if bad.ends_with('0') { "1" } else { "0" });
    let csv = format!(
        "citizen_id,name,insurance_scheme,region_code,bank_id\n\
         {},张三,居民,410102,{bank}\n{},李四,职工,410102,{bank}\n{bad},赵六,居民,410102,{bank}\n",
        citizen(900),
        citizen(901),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch-a.csv");
    std::fs::write(&file, csv).unwrap();
    click(&c, "nav.side a[href='/console/batches']").await;
    fill(&c, "#batch_id", "console-a").await;
    c.find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    shot(&c, j, "2-upload").await;
    click(&c, "#upload").await;
    wait_text(&c, "#job-state", "done", |t| t == "done").await;
    assert_eq!(text(&c, "#rows-created").await, "2");
    assert_eq!(text(&c, "#rows-rejected").await, "1");
    assert_eq!(text(&c, "#percent").await, "100");
    shot(&c, j, "3-import-done").await;
    // The per-row error report downloads as CSV (fetched by the page's own session).
    let href = c
        .find(Locator::Css("#errors-csv"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("an error report link");
    let report = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0]).then(r => r.text()).then(done);",
            vec![href.into()],
        )
        .await
        .unwrap();
    let report = report.as_str().unwrap_or("");
    assert!(report.starts_with("row,field,reason"), "{report}");
    assert!(report.contains("citizen_id"), "{report}");

    // Issue a card from the first application, with the counter's PIN pad's block.
    click(&c, "#batch-link").await;
    let first = c
        .wait()
        .at_most(browser::WAIT)
        .for_element(Locator::Css("a[id^='issue-']"))
        .await
        .unwrap();
    shot(&c, j, "4-applications").await;
    first.click().await.unwrap();
    fill(&c, "#pin_block", &counter_pin_block(world)).await;
    fill(&c, "#reason", "first issue").await;
    shot(&c, j, "5-issue").await;
    click(&c, "#issue").await;
    wait_text(&c, "#card-state", "personalised", |t| t == "personalised").await;
    assert!(text(&c, "#card-done").await.contains("制卡"));
    let pan = text(&c, "#card-pan").await;
    assert_eq!(pan.len(), 16, "{pan}");
    assert!(pan[6..12].chars().all(|ch| ch == '*'), "masked: {pan}");
    shot(&c, j, "6-card-issued").await;
    c.close().await.unwrap();
    d.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_reported_lost_at_the_counter_is_declined_41_and_found_in_search() {
    let driver = chromedriver();
    let d = fixtures::start().await;
    let c = browser(&driver).await;
    let world = &d.demo.world;
    let j = "b-lost-card";
    let (card_id, card, mut chip) = cms_card(&d, &citizen(910)).await;
    let last4 = card.pan.expose_digits()[card.pan.expose_digits().len() - 4..].to_owned();

    // The counter clerk, in English this time.
    c.goto(&format!(
        "{}/console/lang?to=en&back=/console/login",
        d.base
    ))
    .await
    .unwrap();
    log_in(&c, &d.base, world, "demo-clerk").await;
    assert!(source(&c).await.contains("lang=\"en\""));
    click(&c, "nav.side a[href='/console/cards']").await;
    fill(&c, "#pan_last4", &last4).await;
    click(&c, "#card-search").await;
    shot(&c, j, "1-card-search").await;
    click(&c, &format!("a[href='/console/cards/{card_id}']")).await;
    assert_eq!(text(&c, "#card-state").await, "active");
    shot(&c, j, "2-card").await;
    click(&c, "#op-report-lost").await;
    // The confirmation asks for a reason; without one the browser does not send the form.
    fill(&c, "#reason", "cardholder called: lost at the market").await;
    shot(&c, j, "3-confirm").await;
    click(&c, "#confirm").await;
    wait_text(&c, "#card-state", "lost", |t| t == "lost").await;
    let page = source(&c).await;
    assert!(
        page.contains("cardholder called: lost at the market"),
        "history shows the reason"
    );
    shot(&c, j, "4-reported-lost").await;

    // The hot list is read again (the node does so every few seconds), then the card pays.
    d.demo
        .node
        .pipeline
        .cards()
        .refresh_hot_list(&*d.demo.store)
        .await
        .unwrap();
    let mut conn = connect(&d).await;
    let mut kiosk = hospital_kiosk(world, 0, "HK00000B", "B");
    let paid = pay(&mut conn, &mut kiosk, &card, &mut chip, 12_345, "MZ-B1").await;
    assert_eq!(paid.code, "41", "a lost card is declined 41");

    // The cardholder gets a new card: the replacement takes the PIN block of the counter's
    // PIN pad and the new card goes to the bureau's file.
    click(&c, "#op-replace").await;
    fill(&c, "#reason", "replacement of the lost card").await;
    fill(&c, "#pin_block", &counter_pin_block(world)).await;
    click(&c, "#confirm").await;
    wait_text(&c, "#card-state", "personalised", |t| t == "personalised").await;
    assert!(!c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with(&format!("/{card_id}")));
    shot(&c, j, "5-replacement").await;

    // The hospital's cashier finds the declined payment by the card's last four digits.
    log_out(&c).await;
    log_in(&c, &d.base, world, "demo-cashier").await;
    c.goto(&format!(
        "{}/console/transactions?pan_last4={last4}",
        d.base
    ))
    .await
    .unwrap();
    let results = text(&c, "#txn-results").await;
    assert!(
        results.contains(&paid.rrn) && results.contains("41"),
        "{results}"
    );
    assert!(results.contains("123.45"), "amount in yuan: {results}");
    shot(&c, j, "6-search-41").await;
    click(&c, &format!("a[href='/console/transactions/{}']", paid.rrn)).await;
    let detail = text(&c, "main").await;
    assert!(detail.contains("41"), "{detail}");
    shot(&c, j, "7-detail-41").await;

    // The card's history, read by card: the auditor sees the declined bill and the loss report.
    log_out(&c).await;
    log_in(&c, &d.base, world, "demo-auditor").await;
    c.goto(&format!("{}/console/cards/{card_id}", d.base))
        .await
        .unwrap();
    assert!(
        text(&c, "main")
            .await
            .contains("Industrial and Commercial Bank (demo)"),
        "the card's bank by name"
    );
    let txns = text(&c, "#card-transactions").await;
    assert!(
        txns.contains(&paid.rrn) && txns.contains("41") && txns.contains("123.45"),
        "{txns}"
    );
    let events = text(&c, "#card-events").await;
    assert!(
        events.contains("cardholder called: lost at the market"),
        "{events}"
    );
    shot(&c, j, "8-card-history").await;
    c.close().await.unwrap();
    d.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_cashier_sees_its_own_payment_and_not_another_hospitals() {
    let driver = chromedriver();
    let d = fixtures::start().await;
    let c = browser(&driver).await;
    let world = &d.demo.world;
    let j = "c-cashier";
    let mut conn = connect(&d).await;
    let (own_card, other_card) = (insured_card(world, 0), insured_card(world, 1));
    let mut own_chip =
        card_apdu::channel::memory::MemoryChannel::new(world.virtual_card(&own_card).unwrap());
    let mut other_chip =
        card_apdu::channel::memory::MemoryChannel::new(world.virtual_card(&other_card).unwrap());
    let mut own_kiosk = hospital_kiosk(world, 0, "HK00000C", "C");
    let mut other_kiosk = hospital_kiosk(world, 1, "HK00000D", "D");
    let own = pay(
        &mut conn,
        &mut own_kiosk,
        &own_card,
        &mut own_chip,
        8_800,
        "MZ-C1",
    )
    .await;
    let other = pay(
        &mut conn,
        &mut other_kiosk,
        &other_card,
        &mut other_chip,
        6_600,
        "MZ-D1",
    )
    .await;
    assert_eq!((own.code.as_str(), other.code.as_str()), ("00", "00"));

    log_in(&c, &d.base, world, "demo-cashier").await;
    // Keyboard: the first Tab stop of a page is the link that skips to its content.
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let first = c.active_element().await.unwrap();
    assert_eq!(first.attr("class").await.unwrap().as_deref(), Some("skip"));
    let nav = text(&c, "nav.side").await;
    assert!(
        nav.contains("交易查询") && !nav.contains("持卡人与卡片"),
        "{nav}"
    );
    fill(&c, "#rrn", &own.rrn).await;
    click(&c, "#txn-search").await;
    let results = text(&c, "#txn-results").await;
    assert!(
        results.contains(&own.rrn) && results.contains("88.00"),
        "{results}"
    );
    shot(&c, j, "1-own-payment").await;
    click(&c, &format!("a[href='/console/transactions/{}']", own.rrn)).await;
    let detail = text(&c, "main").await;
    assert!(detail.contains("资金分摊"), "the bill's split: {detail}");
    shot(&c, j, "2-own-detail").await;

    // Another hospital's payment does not exist for this cashier.
    c.goto(&format!(
        "{}/console/transactions?rrn={}",
        d.base, other.rrn
    ))
    .await
    .unwrap();
    text(&c, "#txn-none").await;
    assert!(
        !source(&c).await.contains(&other.rrn[..]) || !source(&c).await.contains("txn-results")
    );
    shot(&c, j, "3-other-not-found").await;
    c.goto(&format!("{}/console/transactions/{}", d.base, other.rrn))
        .await
        .unwrap();
    let refused = text(&c, "main").await;
    assert!(refused.contains("404"), "{refused}");
    c.close().await.unwrap();
    d.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_moves_while_kiosks_pay() {
    let driver = chromedriver();
    let d = fixtures::start().await;
    let c = browser(&driver).await;
    let world = &d.demo.world;
    let j = "d-dashboard";
    log_in(&c, &d.base, world, "demo-clearing").await;
    click(&c, "nav.side a[href='/console/dashboard']").await;
    let before: u64 = text(&c, "#total").await.parse().unwrap();
    shot(&c, j, "1-before-traffic").await;
    d.demo.start_traffic(3).await.unwrap();
    // The live panel replaces itself with each event; its figures move with the traffic.
    wait_text(&c, "#live-state", "live", |t| t == "实时更新中").await;
    let moved = wait_text(&c, "#total", "past the first figure", |t| {
        t.parse::<u64>().is_ok_and(|n| n > before + 20)
    })
    .await;
    let first: u64 = moved.parse().unwrap();
    wait_text(&c, "#total", "moving on", |t| {
        t.parse::<u64>().is_ok_and(|n| n > first)
    })
    .await;
    let tps = text(&c, "#tps").await;
    assert!(tps.parse::<f64>().is_ok_and(|v| v > 0.0), "tps {tps}");
    let banks = text(&c, "#banks").await;
    assert_eq!(banks.matches("在线").count(), world.banks.len(), "{banks}");
    // This node has no clearing source: the dashboard says so instead of failing.
    let note = text(&c, "#positions-note").await;
    assert!(note.contains("未连接清算服务"), "{note}");
    // Nothing relays this node's events: they wait, and the lag says for what.
    assert!(text(&c, "#lag-basis").await.contains("中继"));
    wait_text(&c, "#lag-events", "events waiting", |t| {
        t.parse::<u64>().is_ok_and(|n| n > 0)
    })
    .await;
    assert!(text(&c, "#codes").await.contains("00"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    shot(&c, j, "2-live").await;
    c.close().await.unwrap();
    d.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_takes_two_administrators_and_the_auditor_reads_it() {
    use switch::store::OperatorStore;
    let driver = chromedriver();
    let d = fixtures::start().await;
    let c = browser(&driver).await;
    let world = &d.demo.world;
    let j = "e-admin";
    let cashier = d
        .demo
        .store
        .user_by_username("demo-cashier")
        .await
        .unwrap()
        .expect("the demo cashier");
    let form = format!("form[action='/console/users/{}/roles']", cashier.user_id);

    // One administrator proposes: the cashier also audits.
    log_in(&c, &d.base, world, "demo-admin").await;
    click(&c, "nav.side a[href='/console/users']").await;
    fill(
        &c,
        &format!("#roles-{}", cashier.user_id),
        "hospital_cashier, auditor",
    )
    .await;
    fill(&c, &format!("#reason-{}", cashier.user_id), "ticket OPS-26").await;
    click(&c, &format!("{form} button")).await;
    let notice = text(&c, ".notice").await;
    let change = notice
        .split_whitespace()
        .last()
        .expect("the change's id")
        .to_owned();
    assert_eq!(change.len(), 36, "{notice}");
    shot(&c, j, "1-proposed").await;
    // The proposer cannot approve it (four eyes).
    fill(&c, "#change_id", &change).await;
    click(&c, "form[action='/console/role-changes/approve'] button").await;
    let refused = text(&c, ".error").await;
    assert!(
        refused.contains("四眼原则"),
        "the API's problem in Chinese: {refused}"
    );
    shot(&c, j, "2-four-eyes").await;
    // A second proposal, which the other administrator will turn down.
    let bank_user = d
        .demo
        .store
        .user_by_username("demo-bank")
        .await
        .unwrap()
        .expect("the demo bank operator");
    click(&c, "nav.side a[href='/console/users']").await;
    fill(
        &c,
        &format!("#roles-{}", bank_user.user_id),
        "bank_operator, auditor",
    )
    .await;
    fill(
        &c,
        &format!("#reason-{}", bank_user.user_id),
        "ticket OPS-27",
    )
    .await;
    click(
        &c,
        &format!(
            "form[action='/console/users/{}/roles'] button",
            bank_user.user_id
        ),
    )
    .await;
    text(&c, ".notice").await;
    // The proposer sees both open, without buttons to decide them.
    click(&c, "nav.side a[href='/console/role-changes']").await;
    let open = text(&c, "#role-changes").await;
    assert!(
        open.contains("ticket OPS-26") && open.contains("ticket OPS-27"),
        "{open}"
    );
    assert!(source(&c).await.contains(&format!("id=\"rc-{change}\"")));
    assert!(c
        .find(Locator::Css(&format!("#approve-{change}")))
        .await
        .is_err());
    log_out(&c).await;

    // Another administrator finds both in the list of open proposals, approves the first
    // after its confirmation, and rejects the second with a reason.
    log_in(&c, &d.base, world, "demo-admin2").await;
    click(&c, "nav.side a[href='/console/role-changes']").await;
    shot(&c, j, "3-open-proposals").await;
    click(&c, &format!("#approve-{change}")).await;
    let facts = text(&c, "#rc-facts").await;
    assert!(
        facts.contains("demo-cashier") && facts.contains("ticket OPS-26"),
        "{facts}"
    );
    click(&c, "#confirm").await;
    assert_eq!(text(&c, "#rc-done").await, "已批准，用户的角色已变更。");
    let open = text(&c, "#role-changes").await;
    assert!(
        !open.contains("ticket OPS-26") && open.contains("ticket OPS-27"),
        "{open}"
    );
    let second = c
        .find(Locator::Css("a[id^='reject-']"))
        .await
        .unwrap()
        .attr("id")
        .await
        .unwrap()
        .expect("a reject button");
    click(&c, &format!("#{second}")).await;
    fill(&c, "#reason", "bank operators do not audit (ticket OPS-27)").await;
    shot(&c, j, "4-confirm-rejection").await;
    // By keyboard: from the reason, Tab reaches the confirm button and Enter sends the form.
    c.active_element()
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let focused = c.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("confirm")
    );
    focused.send_keys("\u{E007}").await.unwrap();
    assert_eq!(text(&c, "#rc-done").await, "已驳回，用户的角色未变。");
    assert!(text(&c, "#rc-none").await.contains("没有记录"));
    click(&c, "nav.side a[href='/console/users']").await;
    let users = text(&c, "#users").await;
    let bank_row = users
        .lines()
        .find(|l| l.contains("demo-bank"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        !bank_row.contains("auditor"),
        "rejected, unchanged: {bank_row}"
    );
    let row = users
        .lines()
        .find(|l| l.contains("demo-cashier"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        row.contains("auditor") && row.contains("hospital_cashier"),
        "{row}"
    );
    shot(&c, j, "5-decided").await;
    log_out(&c).await;

    // The auditor reads both steps, with the reason.
    log_in(&c, &d.base, world, "demo-auditor").await;
    click(&c, "nav.side a[href='/console/audit']").await;
    let log = text(&c, "#audit").await;
    for action in [
        "role_change.propose",
        "role_change.approve",
        "role_change.reject",
        "operator.login",
    ] {
        assert!(log.contains(action), "{action} in {log}");
    }
    assert!(log.contains("ticket OPS-26"), "{log}");
    assert!(log.contains("bank operators do not audit"), "{log}");
    shot(&c, j, "6-audit-log").await;
    c.close().await.unwrap();
    d.demo.stop().await;
}

/// A bare HTTP/1.1 exchange (`Connection: close`): status, headers, body.
async fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The cookies a login set (`name=value; name=value`).
fn cookies_of(head: &str) -> String {
    head.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_forms_need_their_csrf_token_and_a_password_change_ends_the_sessions() {
    let d = fixtures::start().await;
    let op = browser::operator(&d.demo.world, "demo-auditor");
    // A wrong code: the login page again, 401, with the API's one message for every failure.
    let wrong = format!(
        "username=demo-auditor&password={}&totp=000000",
        op.password()
    );
    let (status, _, body) = http(
        &d.base,
        "POST",
        "/console/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &wrong,
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("login-error"), "{body}");
    // The same operator logs in three times below, and a TOTP code is accepted once: the
    // previous step's code, then the current one, then the next one.
    let form = format!(
        "username=demo-auditor&password={}&totp={}",
        op.password(),
        switch::sim::operator_kit::totp_previous(&op.totp())
    );
    let (status, head, _) = http(
        &d.base,
        "POST",
        "/console/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await;
    assert_eq!(status, 303, "{head}");
    let cookies = cookies_of(&head);
    assert!(
        cookies.contains("switch_session=") && cookies.contains("console_csrf="),
        "{head}"
    );
    let csrf = cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("console_csrf="))
        .unwrap()
        .to_owned();
    let (status, _, page) = http(
        &d.base,
        "GET",
        "/console/audit",
        &[("Cookie", &cookies)],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("login") && page.contains(&csrf),
        "forms carry the CSRF token"
    );
    // A logout posted without the token (a forged form) is refused and the session lives on.
    let (status, _, _) = http(
        &d.base,
        "POST",
        "/console/logout",
        &[
            ("Cookie", &cookies),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = http(
        &d.base,
        "GET",
        "/console/audit",
        &[("Cookie", &cookies)],
        "",
    )
    .await;
    assert_eq!(status, 200, "still logged in");
    // A page of a permission the role lacks is the refusal page, not the action.
    let (status, _, page) = http(
        &d.base,
        "GET",
        "/console/cards/1/report-lost",
        &[("Cookie", &cookies)],
        "",
    )
    .await;
    assert_eq!(status, 403);
    assert!(page.contains("cards.report_lost"), "{page}");
    // With its token it ends the session: the console sends the next request to the login.
    let body = format!("csrf_token={csrf}");
    let (status, _, _) = http(
        &d.base,
        "POST",
        "/console/logout",
        &[
            ("Cookie", &cookies),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 303);
    let (status, head, _) = http(
        &d.base,
        "GET",
        "/console/audit",
        &[("Cookie", &cookies)],
        "",
    )
    .await;
    assert_eq!(status, 303, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("location: /console/login"),
        "{head}"
    );

    // Changing the password: the wrong current one is refused on the page; the right one
    // ends every session of the user, and the new password logs in.
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    let form = format!(
        "username=demo-auditor&password={}&totp={}",
        op.password(),
        switch::sim::operator_kit::totp_now(&op.totp())
    );
    let (_, head, _) = http(&d.base, "POST", "/console/login", &[form_type], &form).await;
    let cookies = cookies_of(&head);
    let csrf = cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("console_csrf="))
        .unwrap()
        .to_owned();
    let new_password = "a new long enough password";
    let wrong = format!(
        "csrf_token={csrf}&current_password=not-it&new_password={}",
        new_password.replace(' ', "+")
    );
    let (status, _, page) = http(
        &d.base,
        "POST",
        "/console/password",
        &[("Cookie", &cookies), form_type],
        &wrong,
    )
    .await;
    assert_eq!(status, 403);
    assert!(page.contains("role=\"alert\""), "{page}");
    let right = format!(
        "csrf_token={csrf}&current_password={}&new_password={}",
        op.password(),
        new_password.replace(' ', "+")
    );
    let (status, head, _) = http(
        &d.base,
        "POST",
        "/console/password",
        &[("Cookie", &cookies), form_type],
        &right,
    )
    .await;
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("/console/login?m=pw"), "{head}");
    let (status, _, _) = http(
        &d.base,
        "GET",
        "/console/audit",
        &[("Cookie", &cookies)],
        "",
    )
    .await;
    assert_eq!(status, 303, "the session ended with the password change");
    let again = format!(
        "username=demo-auditor&password={}&totp={}",
        new_password.replace(' ', "+"),
        switch::sim::operator_kit::totp_next(&op.totp())
    );
    let (status, _, _) = http(&d.base, "POST", "/console/login", &[form_type], &again).await;
    assert_eq!(status, 303, "the new password logs in");
    d.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clearing_analyst_closes_the_window_and_downloads_its_camt053() {
    let driver = chromedriver();
    let d = fixtures::start_with(false).await;
    let c = browser(&driver).await;
    let world = &d.demo.world;
    let j = "f-settlement";
    let mut conn = connect(&d).await;
    let card = insured_card(world, 0);
    let mut chip =
        card_apdu::channel::memory::MemoryChannel::new(world.virtual_card(&card).unwrap());
    let mut kiosk = hospital_kiosk(world, 0, "HK00000F", "F");
    let paid = pay(&mut conn, &mut kiosk, &card, &mut chip, 12_300, "MZ-F1").await;
    assert_eq!(paid.code, "00");

    log_in(&c, &d.base, world, "demo-clearing").await;
    let nav = text(&c, "nav.side").await;
    assert!(nav.contains("清算结算"), "{nav}");
    // The bill reaches the ledger through the embedded relay: wait for the open window's lines.
    let mut positions = String::new();
    for _ in 0..50 {
        c.goto(&format!("{}/console/settlement", d.base))
            .await
            .unwrap();
        if source(&c).await.contains("open-positions") {
            positions = text(&c, "#open-positions").await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(positions.contains("123.00"), "the bill's legs: {positions}");
    // Institutions by their Chinese names (the code beside), not by codes alone.
    assert!(positions.contains("省人民医院（演示）"), "{positions}");
    shot(&c, j, "1-open-window").await;

    click(&c, "#close-window").await;
    fill(&c, "#reason", "end of the settlement day").await;
    shot(&c, j, "2-confirm").await;
    click(&c, "#confirm").await;
    let notice = wait_text(&c, "#notice", "the close's notice", |t| !t.is_empty()).await;
    let closed_id: String = notice.chars().filter(|ch| ch.is_ascii_digit()).collect();
    assert!(!closed_id.is_empty(), "{notice}");
    shot(&c, j, "3-closed").await;
    click(&c, &format!("#window-{closed_id}")).await;
    assert_eq!(text(&c, "#window-state").await, "已关闭");
    let state = c.find(Locator::Css("#window-state")).await.unwrap();
    assert_eq!(
        state.attr("data-state").await.unwrap().as_deref(),
        Some("closed")
    );
    shot(&c, j, "4-window").await;

    // The statement, as the browser would download it (its session cookie).
    let link = c
        .find(Locator::Css("a[id^='camt-']"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("a camt.053 link");
    let cookies = c
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|k| format!("{}={}", k.name(), k.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let (status, head, body) = http(&d.base, "GET", &link, &[("Cookie", &cookies)], "").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-disposition: attachment"),
        "{head}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("statement.xml");
    std::fs::write(&file, body.as_bytes()).unwrap();
    let xsd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/iso20022/camt.053.001.08.xsd"
    );
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema", xsd])
        .arg(&file)
        .output()
        .expect("xmllint (libxml2-utils, ops/setup.sh) must be installed");
    assert!(
        out.status.success(),
        "camt.053 fails the schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.close().await.unwrap();
    d.demo.stop().await;
}

/// The net positions of the dashboard's table: (institution code, net in fen), and the
/// footer's sum in fen.
fn nets_of(table: &str) -> (Vec<(String, i64)>, Option<i64>) {
    let fen = |y: &str| -> Option<i64> {
        let y = y.replace(',', "");
        let (sign, y) = y.strip_prefix('-').map_or((1, y.as_str()), |r| (-1, r));
        let (whole, cents) = y.split_once('.')?;
        Some(sign * (whole.parse::<i64>().ok()? * 100 + cents.parse::<i64>().ok()?))
    };
    let (mut rows, mut sum) = (Vec::new(), None);
    for line in table.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [.., code, net] if words.len() >= 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
                rows.push(((*code).to_owned(), fen(net).expect("a net in yuan")));
            }
            [_, net] => sum = fen(net),
            _ => {}
        }
    }
    (rows, sum)
}

/// Waits until the demo's next settlement cut-over is further away than the longest wait of
/// a check ([`browser::WAIT`]) and a margin.
async fn clear_of_a_cutover() {
    let margin = browser::WAIT + Duration::from_secs(30);
    let now = chrono::Utc::now();
    let next = switch::sim::demo::DEMO_WINDOWS
        .next_cutover_after(now)
        .expect("the demo cuts windows over");
    let left = (next - now).to_std().unwrap_or_default();
    if left < margin {
        eprintln!("waiting {left:?} for the settlement cut-over to pass");
        tokio::time::sleep(left + Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_net_positions_move_with_a_payment_and_sum_to_zero() {
    let driver = chromedriver();
    let d = fixtures::start_with(false).await;
    let c = browser(&driver).await;
    let world = &d.demo.world;
    let j = "g-positions";
    log_in(&c, &d.base, world, "demo-clearing").await;
    click(&c, "nav.side a[href='/console/dashboard']").await;
    wait_text(&c, "#live-state", "live", |t| t == "实时更新中").await;
    // The panel shows the open window's positions: a cut-over between the look before and the
    // look after the bill would compare two windows (or find the new one empty). Look well
    // clear of one.
    clear_of_a_cutover().await;
    // The open window may have no positions yet (then the table is not there).
    let before = match c.find(Locator::Css("#positions")).await {
        Ok(t) => nets_of(&t.text().await.unwrap_or_default()).0,
        Err(_) => Vec::new(),
    };
    // The embedded ledger says how far it has applied the outbox: the lag is what it has not.
    assert!(text(&c, "#lag-basis").await.contains("清算账簿"));
    let waited: f64 = text(&c, "#lag-secs").await.parse().expect("seconds");
    assert!(waited >= 0.0, "{waited}");
    shot(&c, j, "1-before").await;

    // A hospital bill through the acquirer port; the panel shows its positions by itself.
    let mut conn = connect(&d).await;
    let card = insured_card(world, 0);
    let mut chip =
        card_apdu::channel::memory::MemoryChannel::new(world.virtual_card(&card).unwrap());
    let mut kiosk = hospital_kiosk(world, 0, "HK00000G", "G");
    let paid = pay(&mut conn, &mut kiosk, &card, &mut chip, 12_300, "MZ-G1").await;
    assert_eq!(paid.code, "00");
    let hospital = world.hospitals[0].id.as_str().to_owned();
    let moved = wait_text_saying(
        &c,
        "#positions",
        "the bill's positions",
        Some("#live"),
        |t| {
            let (rows, _) = nets_of(t);
            let net = |of: &[(String, i64)]| of.iter().find(|r| r.0 == hospital).map(|r| r.1);
            net(&rows).unwrap_or(0) > net(&before).unwrap_or(0)
        },
    )
    .await;
    let (after, sum) = nets_of(&moved);
    assert!(after.len() >= 2, "payer and payee: {moved}");
    assert_ne!(after, before);
    assert_eq!(
        after.iter().map(|r| r.1).sum::<i64>(),
        0,
        "the nets sum to zero: {moved}"
    );
    assert_eq!(sum, Some(0), "{moved}");
    // Names in the page's language, the code beside.
    assert!(moved.contains("省人民医院（演示）"), "{moved}");
    let banks = text(&c, "#banks").await;
    assert!(banks.contains("工商银行（演示）"), "{banks}");
    assert!(text(&c, "header.top")
        .await
        .contains("省社会保障卡交换中心"));
    // The bill's event is in the ledger, so clearing has caught up.
    wait_text(&c, "#lag-events", "clearing caught up", |t| t == "0").await;
    assert!(source(&c).await.contains("<svg"), "the chart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.execute(
        "document.getElementById('h-positions').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, j, "2-after-payment").await;

    // A bank's operator sees only its own line: this bill moved none of its money.
    log_out(&c).await;
    log_in(&c, &d.base, world, "demo-bank").await;
    click(&c, "nav.side a[href='/console/dashboard']").await;
    let note = text(&c, "#positions-note").await;
    assert!(note.contains("尚无头寸"), "{note}");
    let panel = text(&c, "#live").await;
    assert!(
        !panel.contains("省人民医院") && !panel.contains("净额合计"),
        "{panel}"
    );
    assert!(
        !source(&c).await.contains("lag-events"),
        "the network's lag is the centre's"
    );
    shot(&c, j, "3-bank").await;
    c.close().await.unwrap();
    d.demo.stop().await;
}
