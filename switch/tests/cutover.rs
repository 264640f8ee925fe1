//! The bank cut-over (issue 29; `switch::issuer::cutover`): a switch node with the demo world's
//! simulated banks, real issuer links, traffic through the pipeline, and at the end of the day
//! a 0500 to every bank with the switch's totals for it. A day whose traffic every bank posted
//! reconciles in balance; a bank whose books lost a posting is out of balance, with the
//! differing lines recorded, shown by `GET /reconciliations` and `/metrics`, until an operator
//! resolves it; a second cut-over of the same day sends nothing; a bank whose link is down is
//! tried again once it is back.

mod http_node;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use card_apdu::channel::memory::MemoryChannel;
use chrono::NaiveDate;
use http_node::{request_with, Reply};
use schemas::domain::{InstitutionId, TerminalId};
use schemas::iso8583::{self, TotalsLine};
use serde_json::{json, Value};
use switch::acquirer::AcquirerListener;
use switch::issuer::cutover::{BankOutcome, Clock, Cutover, CutoverConfig};
use switch::issuer::LinkState;
use switch::node::{Node, NodeParts};
use switch::operator::OperatorContext;
use switch::pipeline::{LinkContext, Reply as PipelineReply};
use switch::sim::banksim::BankSim;
use switch::sim::demo::start_bank;
use switch::sim::kiosk::Kiosk;
use switch::sim::operator_kit;
use switch::sim::world::{DemoWorld, DEMO_PIN, JOB_CENTRE_ID};
use switch::store::cutover::{ReconciliationQuery, ReconciliationStatus};
use switch::store::{
    now_us, writer, CutoverStore, DataKeyPanProtector, SqliteConfig, SqliteStore, Store,
};
use switch::wire::settlement_day;

/// The world's banks, a node with links to them (and its HTTP face), kiosks in front.
struct Net {
    _dir: tempfile::TempDir,
    world: DemoWorld,
    banks: Vec<BankSim>,
    node: Node<SqliteStore>,
    http: SocketAddr,
    hospital: Kiosk,
    job_centre: Kiosk,
    /// Each card's virtual card, kept so its ATC moves on from request to request.
    readers: HashMap<usize, MemoryChannel>,
}

async fn network() -> Net {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store"),
    );
    store.install_audit_mac_key(Arc::new(switch::operator::keys::audit_key_for_tests()));
    let mut world = DemoWorld::new(2).expect("world");
    world.seed(&*store).await.expect("seed");
    let mut banks = Vec::new();
    let mut links = Vec::new();
    for i in 0..world.banks.len() {
        let (sim, link) = start_bank(&world, i, "127.0.0.1:0").await.expect("bank");
        banks.push(sim);
        links.push(link);
    }
    let mut cutover = CutoverConfig::new(world.cfg.switch_id.clone());
    // Today's traffic is what the tests cut over; the scheduled task looks once at start.
    cutover.open_day_allowed = true;
    cutover.poll_interval = Duration::from_secs(3_600);
    cutover.retry_interval = Duration::from_millis(1_500);
    cutover.response_timeout = Duration::from_secs(1);
    let node = NodeParts {
        store: Arc::clone(&store),
        hsm: world.hsm.clone(),
        keys: world.keys.clone(),
        pipeline: world.cfg.clone(),
        writer: writer::config_for::<SqliteStore>(),
        banks: links,
        sign_on_wait: Duration::from_secs(20),
        listeners: vec![AcquirerListener::ssc87("127.0.0.1:0".parse().expect("addr")).expect("l")],
        http: Some("127.0.0.1:0".parse().expect("addr")),
        http_tls: None,
        operator: Arc::new(OperatorContext::for_tests()),
        cms: None,
        cutover: Some(cutover),
        clearing: None,
    }
    .start()
    .await
    .expect("node");
    assert_eq!(node.banks_up(), world.banks.len(), "every link signed on");
    let http = node.http_addr.expect("http");
    let h = &world.hospitals[0];
    let hospital = Kiosk::new(
        TerminalId::parse("HK000001").expect("terminal"),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    );
    let job_centre = Kiosk::new(
        TerminalId::parse("JC000001").expect("terminal"),
        InstitutionId::parse(JOB_CENTRE_ID).expect("id"),
        None,
        "2",
    );
    Net {
        _dir: dir,
        world,
        banks,
        node,
        http,
        hospital,
        job_centre,
        readers: HashMap::new(),
    }
}

fn today() -> NaiveDate {
    settlement_day::day_of(now_us()).expect("today")
}

impl Net {
    fn bank_id(&self, i: usize) -> InstitutionId {
        self.world.banks[i].id.clone()
    }

    /// The index of a card of bank `i` (with insurance when `insured`).
    fn card_of(&self, i: usize, insured: bool) -> usize {
        self.world
            .cards
            .iter()
            .position(|c| c.bank == i && c.insurance.is_some() == insured)
            .or_else(|| self.world.cards.iter().position(|c| c.bank == i))
            .expect("a card of the bank")
    }

    fn reader(&mut self, card: usize) -> MemoryChannel {
        match self.readers.remove(&card) {
            Some(r) => r,
            None => MemoryChannel::new(
                self.world
                    .virtual_card(&self.world.cards[card])
                    .expect("virtual card"),
            ),
        }
    }

    /// `request` through the pipeline: the answer's field 39 and the answer.
    async fn process(&self, request: &[u8]) -> (String, Vec<u8>) {
        let spec = iso8583::spec("ssc87").expect("spec");
        let PipelineReply::Send(answer) = self
            .node
            .pipeline
            .process(request, &LinkContext::shared(spec))
            .await
        else {
            panic!("the pipeline answers");
        };
        let code = spec.decode_unchecked(&answer).expect("answer").get_str(39);
        (code.expect("39").into_owned(), answer.to_vec())
    }

    /// A purchase of `amount_fen` on the card's bank application; the request (for a
    /// reversal).
    async fn purchase(&mut self, card: usize, amount_fen: u64) -> Vec<u8> {
        let mut reader = self.reader(card);
        let pending = self
            .hospital
            .bank_purchase(&self.world.cards[card], &mut reader, amount_fen)
            .expect("request");
        let request = pending.request.clone();
        let (code, answer) = self.process(&request).await;
        assert_eq!(code, "00", "purchase approved");
        let spec = iso8583::spec("ssc87").expect("spec");
        let _ = pending.complete(&mut reader, &spec.decode(&answer).expect("answer"));
        self.readers.insert(card, reader);
        request
    }

    /// A hospital bill of `bill_fen`, split between the funds and the card's bank.
    async fn bill(&mut self, card: usize, bill_fen: u64, bill_no: &str) {
        let mut reader = self.reader(card);
        let pending = self
            .hospital
            .medical_bill(
                &self.world.cards[card],
                &mut reader,
                bill_fen,
                bill_no,
                DEMO_PIN,
            )
            .expect("request");
        let (code, answer) = self.process(&pending.request.clone()).await;
        assert_eq!(code, "00", "bill approved");
        let spec = iso8583::spec("ssc87").expect("spec");
        let _ = pending.complete(&mut reader, &spec.decode(&answer).expect("answer"));
        self.readers.insert(card, reader);
    }

    /// A benefit credit paid by the job centre into the card's bank account; the request.
    async fn benefit(&mut self, card: usize, amount_fen: u64) -> Vec<u8> {
        let (request, _) = self
            .job_centre
            .benefit_credit(&self.world.cards[card], amount_fen)
            .expect("request");
        assert_eq!(self.process(&request).await.0, "00", "benefit credited");
        request
    }

    /// The hospital kiosk reverses `original`.
    async fn reverse(&mut self, original: &[u8]) {
        let (request, _) = self.hospital.reversal_of(original).expect("reversal");
        assert_eq!(self.process(&request).await.0, "00", "reversal approved");
    }

    /// Waits until the forwarder has delivered every reversal and advice (the banks' books
    /// then hold what the switch's do).
    async fn store_and_forward_drained(&self) {
        for _ in 0..200 {
            let backlog = self
                .node
                .store
                .store_and_forward_backlog(0)
                .await
                .expect("backlog");
            if backlog.queues.iter().all(|q| q.pending == 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the store-and-forward queue did not drain");
    }

    /// 0500s each bank has received.
    fn reconciliations_received(&self) -> Vec<u64> {
        self.banks
            .iter()
            .map(|b| b.stats().reconciliations)
            .collect()
    }

    /// An API key of `institution` with `role`.
    async fn key(&self, institution: &str, role: &str) -> String {
        operator_kit::api_key(&*self.node.store, institution, role)
            .await
            .expect("key")
    }

    async fn call(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {key}");
        let body = body.map(|b| b.to_string());
        request_with(
            self.http,
            method,
            path,
            &[("Authorization", &auth)],
            body.as_deref(),
        )
        .await
    }
}

fn json_of(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("JSON: {r:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_with_traffic_reconciles_in_balance_with_every_bank_and_only_once() {
    let mut n = network().await;
    // Purchases on every bank's cards, a bill split with a bank leg, a benefit credit, and a
    // purchase reversed: debits, credits and a debit reversal.
    for i in 0..n.world.banks.len() {
        let card = n.card_of(i, false);
        n.purchase(card, 1_000 + i as u64).await;
    }
    let card = n.card_of(0, false);
    let reversed = n.purchase(card, 777).await;
    n.reverse(&reversed).await;
    let insured = n.card_of(1, true);
    n.bill(insured, 300_000, "MZ-CUT-1").await;
    n.benefit(n.card_of(2, false), 5_000).await;
    n.store_and_forward_drained().await;

    let day = today();
    let report = n
        .node
        .cutover
        .as_ref()
        .expect("cut-over")
        .run_day(day)
        .await
        .expect("run");
    assert_eq!(report.banks.len(), n.world.banks.len());
    for (bank, outcome) in &report.banks {
        assert_eq!(*outcome, BankOutcome::InBalance, "{bank}");
    }
    // What was recorded: both sets of figures, equal, with the traffic in them.
    let store = &n.node.store;
    let records = store
        .bank_reconciliations(&ReconciliationQuery {
            day: Some(day),
            limit: 100,
            ..ReconciliationQuery::default()
        })
        .await
        .expect("records");
    assert_eq!(records.len(), n.world.banks.len());
    for r in &records {
        assert_eq!(r.status, ReconciliationStatus::InBalance);
        let a = r.answer.as_ref().expect("answered");
        assert_eq!(a.switch_totals, a.bank_totals, "{}", r.bank);
        assert!(a.differing_fields.is_empty());
        let bank = n
            .banks
            .iter()
            .find(|b| *b.institution() == r.bank)
            .expect("bank");
        assert_eq!(
            a.bank_totals,
            bank.totals_of(day),
            "the bank's own books of the day"
        );
    }
    let of = |i: usize| {
        let id = n.bank_id(i);
        records
            .iter()
            .find(|r| r.bank == id)
            .and_then(|r| r.answer.clone())
            .expect("bank's record")
            .switch_totals
    };
    let bank0 = of(0);
    assert_eq!(bank0.debits.count, 2, "two purchases");
    assert_eq!(bank0.debit_reversals.count, 1);
    assert_eq!(bank0.debit_reversals.amount.get(), 777);
    assert!(of(1).debits.count >= 1, "a purchase and a bill's bank leg");
    assert_eq!(
        of(2).line(TotalsLine::Credits).amount.get(),
        5_000,
        "the benefit credit"
    );

    // A second cut-over of the day sends nothing to anyone.
    let sent = n.reconciliations_received();
    assert!(sent.iter().all(|n| *n >= 1), "{sent:?}");
    let again = n
        .node
        .cutover
        .as_ref()
        .expect("cut-over")
        .run_day(day)
        .await
        .expect("run");
    for (bank, outcome) in &again.banks {
        assert_eq!(*outcome, BankOutcome::AlreadyReconciled, "{bank}");
    }
    assert_eq!(
        n.reconciliations_received(),
        sent,
        "no 0500 the second time"
    );
    // Nor through the API, and a day not over (tomorrow) is refused.
    let analyst = n
        .key(n.world.cfg.switch_id.as_str(), "clearing_analyst")
        .await;
    let body = json!({ "day": day.format("%Y-%m-%d").to_string() });
    let r = n.call(&analyst, "POST", "/cutover", Some(body)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let answer = json_of(&r);
    let outcomes: Vec<&str> = answer["banks"]
        .as_array()
        .expect("banks")
        .iter()
        .filter_map(|b| b["outcome"].as_str())
        .collect();
    assert!(
        outcomes.iter().all(|o| *o == "already_reconciled"),
        "{outcomes:?}"
    );
    assert_eq!(n.reconciliations_received(), sent);
    let tomorrow = day
        .succ_opt()
        .expect("tomorrow")
        .format("%Y-%m-%d")
        .to_string();
    let r = n
        .call(
            &analyst,
            "POST",
            "/cutover",
            Some(json!({ "day": tomorrow })),
        )
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    n.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_that_lost_a_posting_is_out_of_balance_until_an_operator_resolves_it() {
    let mut n = network().await;
    let card = n.card_of(0, false);
    n.purchase(card, 1_500).await;
    // Bank 0's books lose the next posting: it approves the purchase but does not count it.
    n.banks[0].leave_out_of_totals(1);
    n.purchase(card, 2_345).await;
    n.store_and_forward_drained().await;

    let day = today();
    let report = n
        .node
        .cutover
        .as_ref()
        .expect("cut-over")
        .run_day(day)
        .await
        .expect("run");
    let bank0 = n.bank_id(0);
    for (bank, outcome) in &report.banks {
        if *bank == bank0 {
            // Debits: count (76) and amount (88) differ, and so does the net (97).
            assert_eq!(*outcome, BankOutcome::OutOfBalance(vec![76, 88, 97]));
        } else {
            assert_eq!(*outcome, BankOutcome::InBalance, "{bank}");
        }
    }

    // The exception, as the switch's clearing analyst sees it.
    let switch_id = n.world.cfg.switch_id.as_str().to_owned();
    let analyst = n.key(&switch_id, "clearing_analyst").await;
    let url = format!("/reconciliations?bank={bank0}&status=out_of_balance");
    let r = n.call(&analyst, "GET", &url, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let items = json_of(&r)["items"].as_array().cloned().expect("items");
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(item["settlement_day"], day.format("%Y-%m-%d").to_string());
    assert_eq!(item["bank_settlement_code"], "2", "the bank said so too");
    let differing = item["differing"].as_array().expect("differing");
    assert_eq!(
        differing[0],
        json!({"field": 76, "name": "debits, number", "switch": 2, "bank": 1})
    );
    assert_eq!(
        differing[1],
        json!({"field": 88, "name": "debits, amount", "switch": 3_845, "bank": 1_500})
    );
    assert_eq!(differing[2]["field"], 97);
    assert_eq!(item["switch_totals"]["debits"]["count"], 2);
    assert_eq!(item["bank_totals"]["debits"]["count"], 1);
    let id = item["reconciliation_id"].as_i64().expect("id");

    // The metric counts it and the gauge shows the open exception.
    let metrics = n.call(&analyst, "GET", "/metrics", None).await;
    let line = |name: &str| format!("{name}{{bank=\"{bank0}\"");
    assert!(
        metrics.body.contains(&format!(
            "{},result=\"out_of_balance\"}} 1",
            line("switch_bank_reconciliations_total")
        )),
        "{}",
        metrics.body
    );
    let open = format!("{}}} 1", line("switch_bank_reconciliation_exceptions_open"));
    assert!(metrics.body.contains(&open), "{}", metrics.body);

    // Another bank sees nothing of it, and may not resolve it.
    let other_bank = n.bank_id(1);
    let bank_key = n.key(other_bank.as_str(), "bank_operator").await;
    let r = n.call(&bank_key, "GET", &url, None).await;
    assert_eq!(json_of(&r)["items"], json!([]), "{r:?}");
    let mine = n.call(&bank_key, "GET", "/reconciliations", None).await;
    let mine = json_of(&mine)["items"].as_array().cloned().expect("items");
    assert!(!mine.is_empty() && mine.iter().all(|i| i["bank"] == other_bank.as_str()));
    let resolve = format!("/reconciliations/{id}/resolve");
    let reason = json!({ "reason": "bank 0 re-posted the lost purchase on its side" });
    let r = n
        .call(&bank_key, "POST", &resolve, Some(reason.clone()))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    // The clearing analyst resolves it, with a reason; audited; the gauge drops.
    let r = n
        .call(&analyst, "POST", &resolve, Some(json!({ "reason": " " })))
        .await;
    assert_eq!(r.status, 400, "a reason is needed: {r:?}");
    let r = n
        .call(&analyst, "POST", &resolve, Some(reason.clone()))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let resolved = json_of(&r);
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        resolved["resolution"]["reason"],
        "bank 0 re-posted the lost purchase on its side"
    );
    let r = n.call(&analyst, "POST", &resolve, Some(reason)).await;
    assert_eq!(r.status, 409, "resolved once: {r:?}");
    let auditor = n.key(&switch_id, "auditor").await;
    let audit = json_of(&n.call(&auditor, "GET", "/audit?limit=200", None).await);
    let entry = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["action"] == "reconciliation.resolve")
        .cloned()
        .expect("the resolution is audited");
    assert_eq!(entry["subject"], format!("reconciliation:{id}"));
    assert_eq!(entry["detail"]["bank"], bank0.as_str());
    let metrics = n.call(&analyst, "GET", "/metrics", None).await;
    let open = format!("{}}} 0", line("switch_bank_reconciliation_exceptions_open"));
    assert!(metrics.body.contains(&open), "{}", metrics.body);
    n.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversed_benefit_credit_is_reversed_at_the_bank_too() {
    let mut n = network().await;
    let card = n.card_of(5, false);
    let pan = n.world.cards[card].pan.expose_digits().to_owned();
    let before = n.banks[5].balance_fen(&pan).expect("account");
    let credit = n.benefit(card, 6_000).await;
    let (reversal, _) = n.job_centre.reversal_of(&credit).expect("reversal");
    assert_eq!(n.process(&reversal).await.0, "00", "reversal approved");
    n.store_and_forward_drained().await;
    let report = n
        .node
        .cutover
        .as_ref()
        .expect("cut-over")
        .run_day(today())
        .await
        .expect("run");
    let bank5 = n.bank_id(5);
    let outcome = report
        .banks
        .iter()
        .find(|(b, _)| *b == bank5)
        .map(|(_, o)| o.clone());
    assert_eq!(outcome, Some(BankOutcome::InBalance), "{report:?}");
    assert_eq!(
        n.banks[5].balance_fen(&pan),
        Some(before),
        "the bank gave it back"
    );
    n.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_whose_link_is_down_is_reconciled_once_it_is_back() {
    let mut n = network().await;
    let card = n.card_of(3, false);
    n.purchase(card, 4_200).await;
    let bank3 = n.bank_id(3);
    let mut state = n.node.links.watch_state(&bank3).expect("link");
    n.banks[3].stop().await;
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| *s != LinkState::SignedOn),
    )
    .await
    .expect("down in time")
    .expect("state");
    let cutover = Arc::clone(n.node.cutover.as_ref().expect("cut-over"));
    let day = today();
    let report = cutover.run_day(day).await.expect("run");
    let outcome = |r: &switch::issuer::cutover::CutoverReport| {
        r.banks
            .iter()
            .find(|(b, _)| *b == bank3)
            .map(|(_, o)| o.clone())
            .expect("bank 3")
    };
    assert!(
        matches!(outcome(&report), BankOutcome::Deferred(_)),
        "{report:?}"
    );
    n.banks[3].restart().await.expect("restart");
    tokio::time::timeout(
        Duration::from_secs(30),
        state.wait_for(|s| *s == LinkState::SignedOn),
    )
    .await
    .expect("back in time")
    .expect("state");
    let report = cutover.run_day(day).await.expect("run");
    assert_eq!(outcome(&report), BankOutcome::InBalance, "{report:?}");
    let received = n.banks[3].stats().reconciliations;
    assert_eq!(received, 1, "one 0500 reached the bank");
    n.node.stop().await;
}

/// A clock the test sets.
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_cuts_a_day_over_once_its_cut_over_time_has_passed() {
    let mut n = network().await;
    let card = n.card_of(4, false);
    n.purchase(card, 990).await;
    let day = today();
    let (midnight, _) =
        settlement_day::window_us(day.succ_opt().expect("tomorrow")).expect("window");
    // Four minutes past the next midnight: the 00:05 cut-over of today is not due yet.
    let clock = Arc::new(TestClock(AtomicI64::new(midnight + 4 * 60 * 1_000_000)));
    let mut config = CutoverConfig::new(n.world.cfg.switch_id.clone());
    config.poll_interval = Duration::from_millis(50);
    let banks: Vec<InstitutionId> = n.node.links.banks().cloned().collect();
    let task = Cutover::new(
        Arc::clone(&n.node.store),
        n.node.links.clone(),
        banks,
        config,
    )
    .expect("cut-over")
    .with_clock(clock.clone());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Arc::new(task).run(stopping));
    let store = Arc::clone(&n.node.store);
    // At 00:04 the day due is yesterday's (cut over, with nothing in it); not today's.
    let yesterday = day.pred_opt().expect("yesterday");
    for _ in 0..200 {
        if store.reconciled_banks(yesterday).await.expect("read").len() == n.world.banks.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        store.reconciled_banks(day).await.expect("read").is_empty(),
        "not before 00:05"
    );
    let before = n.reconciliations_received();
    assert_eq!(before, vec![1; n.world.banks.len()], "yesterday's, once");
    // 00:05: today is due, and every bank is reconciled once however often the task looks.
    clock
        .0
        .store(midnight + 5 * 60 * 1_000_000, Ordering::Relaxed);
    let answered = || async {
        store
            .reconciled_banks(day)
            .await
            .expect("reconciled banks")
            .len()
    };
    for _ in 0..200 {
        if answered().await == n.world.banks.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered().await, n.world.banks.len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        n.reconciliations_received(),
        vec![2; n.world.banks.len()],
        "once per bank and day"
    );
    stop.send_replace(true);
    running.await.expect("task");
    n.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_a_bank_missed_stays_pending_and_is_reconciled_once_its_link_is_back() {
    let mut n = network().await;
    let card = n.card_of(3, false);
    n.purchase(card, 1_234).await;
    let bank3 = n.bank_id(3);
    let mut state = n.node.links.watch_state(&bank3).expect("link");
    n.banks[3].stop().await;
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| *s != LinkState::SignedOn),
    )
    .await
    .expect("down in time")
    .expect("state");
    let banks = n.world.banks.len();
    let day = today();
    let next = day.succ_opt().expect("tomorrow");
    let midnight = |d: NaiveDate| settlement_day::window_us(d).expect("window").0;
    // 00:05 after today: today is due.
    let five_past = 5 * 60 * 1_000_000;
    let clock = Arc::new(TestClock(AtomicI64::new(midnight(next) + five_past)));
    let mut config = CutoverConfig::new(n.world.cfg.switch_id.clone());
    config.poll_interval = Duration::from_millis(50);
    let all: Vec<InstitutionId> = n.node.links.banks().cloned().collect();
    let task = Cutover::new(Arc::clone(&n.node.store), n.node.links.clone(), all, config)
        .expect("cut-over")
        .with_clock(clock.clone());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Arc::new(task).run(stopping));
    let store = Arc::clone(&n.node.store);
    let reconciled = |d: NaiveDate| {
        let store = Arc::clone(&store);
        async move { store.reconciled_banks(d).await.expect("read").len() }
    };
    let wait_for = |d: NaiveDate, count: usize| {
        let reconciled = &reconciled;
        async move {
            for _ in 0..300 {
                if reconciled(d).await == count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{d}: {} of {count} banks reconciled", reconciled(d).await);
        }
    };
    wait_for(day, banks - 1).await;
    // The bank left out is pending, and says why.
    let pending = store
        .bank_reconciliations(&ReconciliationQuery {
            status: Some(ReconciliationStatus::Pending),
            limit: 10,
            ..ReconciliationQuery::default()
        })
        .await
        .expect("pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].bank, bank3);
    assert_eq!(
        pending[0].last_error.as_deref(),
        Some("the bank's link is down")
    );
    // A day later the next day is due; the bank is still down.
    clock.0.store(
        midnight(next.succ_opt().expect("day after")) + five_past,
        Ordering::Relaxed,
    );
    wait_for(next, banks - 1).await;
    // Back: both days it missed are reconciled, once each.
    n.banks[3].restart().await.expect("restart");
    wait_for(day, banks).await;
    wait_for(next, banks).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(n.banks[3].stats().reconciliations, 2, "one 0500 per day");
    stop.send_replace(true);
    running.await.expect("task");
    n.node.stop().await;
}
