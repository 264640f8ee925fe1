//! The authorization pipeline end to end: a kiosk with a virtual card talks ISO 8583 over TCP
//! to the acquirer server; the pipeline checks the card, ARQC and PIN through the software HSM,
//! splits the bill, sends the bank leg to a scripted bank, commits to SQLite and answers.

use async_trait::async_trait;
use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use hsm_sim::keys::Zpk;
use schemas::domain::{InstitutionId, ResponseCode, Stan, TerminalId};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use schemas::iso8583::{self, OwnedMessage};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switch::acquirer::{self, AcquirerListener};
use switch::issuer::gateway::{BankGateway, GatewayError};
use switch::metrics::Metrics;
use switch::pipeline::{AcquirerIdentity, LinkContext, Pipeline, Reply};
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld, DEMO_PIN};
use switch::store::{writer, CardStatus, DataKeyPanProtector, SqliteConfig, SqliteStore, Store};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// What the scripted bank does with the next legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BankMode {
    Approve,
    Decline(ResponseCode),
    Silent,
    Down,
}

struct ScriptedBanks {
    mode: Mutex<BankMode>,
    zpks: HashMap<InstitutionId, Zpk>,
    stan: AtomicU32,
    seen: Mutex<Vec<(String, u64)>>,
}

#[async_trait]
impl BankGateway for ScriptedBanks {
    async fn send(
        &self,
        _bank: &InstitutionId,
        request: OwnedMessage<'static>,
        timeout: Duration,
    ) -> Result<OwnedMessage<'static>, GatewayError> {
        let mode = *self.mode.lock().unwrap();
        self.seen.lock().unwrap().push((
            request.get_str(3).unwrap().into_owned(),
            request.get_u64(4).unwrap(),
        ));
        let answer = |code: &str| {
            let spec = iso8583::spec("ssc87").unwrap();
            let mut wire = Vec::new();
            spec.encode(&request, &mut wire).unwrap();
            let mut a = spec.decode(&wire).unwrap().to_response().unwrap();
            a.set_str(39, code).unwrap();
            a.set_str(38, "B12345").unwrap();
            // Detach from `wire`: re-encode and decode into an owned message.
            let mut out = Vec::new();
            spec.encode(&a, &mut out).unwrap();
            let leaked: &'static [u8] = Box::leak(out.into_boxed_slice());
            spec.decode(leaked).unwrap().to_owned_message()
        };
        match mode {
            BankMode::Approve => Ok(answer("00")),
            BankMode::Decline(code) => Ok(answer(code.as_str())),
            BankMode::Silent => {
                tokio::time::sleep(timeout).await;
                Err(GatewayError::Timeout)
            }
            BankMode::Down => Err(GatewayError::Unavailable),
        }
    }

    fn is_up(&self, _bank: &InstitutionId) -> bool {
        *self.mode.lock().unwrap() != BankMode::Down
    }

    fn zpk(&self, bank: &InstitutionId) -> Option<Zpk> {
        self.zpks.get(bank).cloned()
    }

    fn next_stan(&self, _bank: &InstitutionId) -> Stan {
        Stan::new(self.stan.fetch_add(1, Ordering::Relaxed) % 999_999 + 1).unwrap()
    }
}

struct Net {
    dir: tempfile::TempDir,
    world: DemoWorld,
    store: Arc<SqliteStore>,
    banks: Arc<ScriptedBanks>,
    pipeline: Arc<Pipeline<SqliteStore>>,
    addr: std::net::SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
}

async fn open_store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .unwrap(),
    )
}

/// A switch node (writer, pipeline, acquirer listener) over `store`.
async fn start_node(
    store: &Arc<SqliteStore>,
    world: &DemoWorld,
    banks: &Arc<ScriptedBanks>,
) -> (
    Arc<Pipeline<SqliteStore>>,
    std::net::SocketAddr,
    tokio::sync::watch::Sender<bool>,
) {
    let (w, _task) = writer::spawn(Arc::clone(store), writer::WriterConfig::default());
    let pipeline = Pipeline::new(
        Arc::clone(store),
        w,
        world.hsm.clone(),
        banks.clone(),
        world.keys.clone(),
        world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .unwrap();
    let mut cfg = AcquirerListener::ssc87("127.0.0.1:0".parse().unwrap()).unwrap();
    cfg.frame_len_max = 2048;
    let listener = acquirer::bind(&cfg).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(acquirer::serve(listener, cfg, Arc::clone(&pipeline), rx));
    (pipeline, addr, tx)
}

async fn network(cards_per_bank: usize) -> Net {
    network_with(cards_per_bank, |_| {}).await
}

/// A network whose pipeline configuration `configure` has changed.
async fn network_with(
    cards_per_bank: usize,
    configure: impl FnOnce(&mut switch::pipeline::PipelineConfig),
) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let mut world = DemoWorld::new(cards_per_bank).unwrap();
    world.seed(&*store).await.unwrap();
    world.cfg.bank_timeout = Duration::from_millis(300);
    configure(&mut world.cfg);
    let mut zpks = HashMap::new();
    for (i, b) in world.banks.iter().enumerate() {
        zpks.insert(b.id.clone(), world.bank_keys(i).unwrap().1);
    }
    let banks = Arc::new(ScriptedBanks {
        mode: Mutex::new(BankMode::Approve),
        zpks,
        stan: AtomicU32::new(1),
        seen: Mutex::new(Vec::new()),
    });
    let (pipeline, addr, shutdown) = start_node(&store, &world, &banks).await;
    Net {
        dir,
        world,
        store,
        banks,
        pipeline,
        addr,
        shutdown,
    }
}

type Conn = Framed<TcpStream, FrameCodec>;

async fn connect(addr: std::net::SocketAddr) -> Conn {
    Framed::new(
        TcpStream::connect(addr).await.unwrap(),
        FrameCodec::new(LengthHeader::Binary2),
    )
}

async fn exchange(conn: &mut Conn, request: &[u8]) -> Vec<u8> {
    conn.send(Frame {
        tpdu: None,
        message: request.to_vec().into(),
    })
    .await
    .unwrap();
    let f = tokio::time::timeout(Duration::from_secs(10), conn.next())
        .await
        .expect("answer in time")
        .expect("connection open")
        .expect("well-framed answer");
    f.message.to_vec()
}

/// Field 39 of the answer to `request`.
async fn answer_code(conn: &mut Conn, request: &[u8]) -> String {
    code(&exchange(conn, request).await)
}

fn hospital_kiosk(world: &DemoWorld) -> Kiosk {
    let h = &world.hospitals[0];
    Kiosk::new(
        TerminalId::parse("HK000001").unwrap(),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    )
}

fn reader(world: &DemoWorld, card: &DemoCard) -> MemoryChannel {
    MemoryChannel::new(world.virtual_card(card).unwrap())
}

fn decode(wire: &[u8]) -> iso8583::Message<'_> {
    iso8583::spec("ssc87").unwrap().decode(wire).unwrap()
}

fn insured(world: &DemoWorld) -> DemoCard {
    world
        .cards
        .iter()
        .find(|c| {
            c.insurance == Some(switch::store::InsuranceCategory::Employee)
                && c.algorithm == switch::store::IccAlgorithm::Sm4
        })
        .unwrap()
        .clone()
}

/// A card without medical insurance: the bank pays the whole bill.
fn uninsured(world: &DemoWorld) -> DemoCard {
    world
        .cards
        .iter()
        .find(|c| c.insurance.is_none())
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_bill_is_split_between_fund_personal_account_and_bank_and_the_card_accepts_the_arpc(
) {
    let net = network(2).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    // Level-3 hospital, employee: deductible 800.00, 80 % above it. Bill 3,000.00 →
    // fund 1,760.00; the personal account (≥ 500.00) pays what it can; the bank the rest.
    let bill = 300_000;
    let pending = k
        .medical_bill(&card, &mut r, bill, "MZ-0001", DEMO_PIN)
        .unwrap();
    let answer = exchange(&mut conn, &pending.request).await;
    let a = decode(&answer);
    assert_eq!(a.mti().as_str(), "0210");
    assert_eq!(a.get_str(39).unwrap(), "00");
    assert_eq!(a.get_u64(11).unwrap(), u64::from(pending.stan));
    let leg = |p: &str| a.get_path_str(p).unwrap().parse::<i64>().unwrap();
    let (pooled, personal, bank) = (leg("63.1"), leg("63.2"), leg("63.3"));
    assert_eq!(pooled, 176_000);
    assert_eq!(personal, card.personal_fen.min(bill as i64 - pooled));
    assert_eq!(pooled + personal + bank, bill as i64);
    assert!(bank > 0, "this bill needs the bank");
    assert_eq!(
        a.get_path_str("63.4").unwrap(),
        net.world.banks[card.bank].id.as_str()
    );
    assert_eq!(leg("63.5"), card.personal_fen - personal);
    // The bank saw a purchase for exactly its leg.
    assert_eq!(
        net.banks.seen.lock().unwrap().last().unwrap(),
        &("000000".to_string(), bank as u64)
    );
    // The card checks the ARPC and completes with a TC.
    let outcome = pending.complete(&mut r, &a).unwrap();
    assert!(outcome.approved);
    assert_eq!(outcome.issuer_authentication, Some(true));
    // Durable: the transaction, its legs and its outbox event.
    let rrn = schemas::domain::Rrn::parse(&a.get_str(37).unwrap()).unwrap();
    let stored = net.store.transactions_by_rrn(&rrn).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].legs.len(), 3);
    let outbox = net.store.outbox_after(0, 100).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].event_type, "medical_bill_split");
    assert_eq!(Some(outbox[0].event_id), stored[0].event_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_card_gets_14_bad_pin_55_and_the_third_bad_pin_blocks_the_card() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut conn = connect(net.addr).await;

    let mut stranger = card.clone();
    stranger.pan = schemas::domain::Pan::parse("6288669900000017").unwrap();
    let mut r = reader(&net.world, &stranger);
    let p = k
        .medical_bill(&stranger, &mut r, 10_000, "MZ-1", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "14");

    let mut r = reader(&net.world, &card);
    for expected in ["55", "55", "75"] {
        let p = k
            .medical_bill(&card, &mut r, 10_000, "MZ-2", "654321")
            .unwrap();
        let a = exchange(&mut conn, &p.request).await;
        assert_eq!(decode(&a).get_str(39).unwrap(), expected);
    }
    let stored = net.store.card_by_pan(&card.pan).await.unwrap().unwrap();
    assert_eq!(stored.status, CardStatus::Blocked);
    // Even the right PIN is declined now: the card is on the hot list.
    let p = k
        .medical_bill(&card, &mut r, 10_000, "MZ-3", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "62");
    assert_eq!(net.store.verify_audit_chain().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_wrong_pins_still_blocks_the_card_at_the_third() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let wrong = |k: &mut Kiosk, r: &mut MemoryChannel, no: &str| {
        k.medical_bill(&card, r, 10_000, no, "654321")
            .unwrap()
            .request
    };
    for no in ["MZ-P1", "MZ-P2"] {
        assert_eq!(
            answer_code(&mut conn, &wrong(&mut k, &mut r, no)).await,
            "55"
        );
    }
    // Restart: a new node on the reopened database, nothing in memory.
    net.shutdown.send_replace(true);
    let store = open_store(&net.dir).await;
    let (_pipeline, addr, _shutdown) = start_node(&store, &net.world, &net.banks).await;
    let mut conn = connect(addr).await;
    let third = wrong(&mut k, &mut r, "MZ-P3");
    assert_eq!(answer_code(&mut conn, &third).await, "75");
    let stored = store.card_by_pan(&card.pan).await.unwrap().unwrap();
    assert_eq!(stored.status, CardStatus::Blocked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_reset_the_daily_count() {
    let net = network_with(1, |cfg| {
        cfg.limits = switch::pipeline::velocity::CardLimits {
            per_transaction_fen_max: 500_000,
            daily_fen_max: 800_000,
            daily_count_max: 2,
        };
    })
    .await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let bill = |k: &mut Kiosk, r: &mut MemoryChannel, no: &str| {
        k.medical_bill(&card, r, 1_000, no, DEMO_PIN)
            .unwrap()
            .request
    };
    for no in ["MZ-D1", "MZ-D2"] {
        assert_eq!(
            answer_code(&mut conn, &bill(&mut k, &mut r, no)).await,
            "00"
        );
    }
    net.shutdown.send_replace(true);
    let store = open_store(&net.dir).await;
    let (_pipeline, addr, _shutdown) = start_node(&store, &net.world, &net.banks).await;
    let mut conn = connect(addr).await;
    let third = bill(&mut k, &mut r, "MZ-D3");
    assert_eq!(
        answer_code(&mut conn, &third).await,
        "65",
        "a third approval today"
    );
}

/// Issue 24, finding 5 (the node's pre-check): a restarted node learns the day's committed
/// spend from the store before it checks a card, so a spend past the daily limit is declined
/// before its bank leg goes out, not after the bank has approved it (and then only undone by
/// a reversal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_declines_past_the_daily_limit_before_asking_the_bank() {
    let net = network_with(2, |cfg| {
        cfg.limits = switch::pipeline::velocity::CardLimits {
            per_transaction_fen_max: 500_000,
            daily_fen_max: 5_000,
            daily_count_max: 10,
        };
    })
    .await;
    let card = uninsured(&net.world); // the bank pays the whole bill
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let bill = |k: &mut Kiosk, r: &mut MemoryChannel, fen: u64, no: &str| {
        k.medical_bill(&card, r, fen, no, DEMO_PIN).unwrap().request
    };
    for no in ["MZ-S1", "MZ-S2"] {
        let p = bill(&mut k, &mut r, 2_000, no);
        assert_eq!(answer_code(&mut conn, &p).await, "00");
    }
    let legs_before = net.banks.seen.lock().unwrap().len();
    assert_eq!(legs_before, 2);
    net.shutdown.send_replace(true);
    let store = open_store(&net.dir).await;
    let (_pipeline, addr, _shutdown) = start_node(&store, &net.world, &net.banks).await;
    let mut conn = connect(addr).await;
    // 4,000.00 committed today; 1,001 more is past the 5,000 daily amount.
    let over = bill(&mut k, &mut r, 1_001, "MZ-S3");
    assert_eq!(answer_code(&mut conn, &over).await, "61");
    assert_eq!(
        net.banks.seen.lock().unwrap().len(),
        legs_before,
        "declined before the bank leg"
    );
    assert!(
        store.due_reversals(i64::MAX, 10).await.unwrap().is_empty(),
        "no bank leg to reverse"
    );
    // What is left of the day still passes.
    let rest = bill(&mut k, &mut r, 1_000, "MZ-S4");
    assert_eq!(answer_code(&mut conn, &rest).await, "00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_limits_decline_61_over_an_amount_and_65_over_the_count_and_declines_do_not_count() {
    let net = network_with(2, |cfg| {
        cfg.limits = switch::pipeline::velocity::CardLimits {
            per_transaction_fen_max: 500_000,
            daily_fen_max: 800_000,
            daily_count_max: 3,
        };
    })
    .await;
    let card = uninsured(&net.world); // the bank pays the whole bill
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let mut n = 0;
    let mut bill = |k: &mut Kiosk, r: &mut MemoryChannel, fen: u64| {
        n += 1;
        k.medical_bill(&card, r, fen, &format!("MZ-L{n}"), DEMO_PIN)
            .unwrap()
            .request
    };
    // Over the per-transaction limit.
    let p = bill(&mut k, &mut r, 500_001);
    assert_eq!(answer_code(&mut conn, &p).await, "61");
    // The bank declines: the reservation is given back.
    *net.banks.mode.lock().unwrap() = BankMode::Decline(ResponseCode::InsufficientFunds);
    let p = bill(&mut k, &mut r, 300_000);
    assert_eq!(answer_code(&mut conn, &p).await, "51");
    *net.banks.mode.lock().unwrap() = BankMode::Approve;
    // 300,000 + 300,000 fit the daily 800,000 only because the declines above did not count.
    for _ in 0..2 {
        let p = bill(&mut k, &mut r, 300_000);
        assert_eq!(answer_code(&mut conn, &p).await, "00");
    }
    let p = bill(&mut k, &mut r, 200_001);
    assert_eq!(
        answer_code(&mut conn, &p).await,
        "61",
        "over the daily amount"
    );
    let p = bill(&mut k, &mut r, 200_000);
    assert_eq!(
        answer_code(&mut conn, &p).await,
        "00",
        "exactly the daily amount"
    );
    let p = bill(&mut k, &mut r, 1);
    assert_eq!(
        answer_code(&mut conn, &p).await,
        "65",
        "a fourth approval today"
    );
    // What was approved reached the bank; what was declined by the limits did not.
    let seen: Vec<u64> = net.banks.seen.lock().unwrap().iter().map(|s| s.1).collect();
    assert_eq!(seen, vec![300_000, 300_000, 300_000, 200_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_arqc_is_declined_and_nothing_moves() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let p = k
        .medical_bill(&card, &mut r, 10_000, "MZ-4", DEMO_PIN)
        .unwrap();
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.decode(&p.request).unwrap().to_owned_message();
    let mut arqc = m.get_path("55.9F26").unwrap().into_owned();
    arqc[0] ^= 0x01;
    m.set_path("55.9F26", &arqc).unwrap();
    let tampered = k.seal(&mut m).unwrap();
    let a = exchange(&mut conn, &tampered).await;
    assert_eq!(decode(&a).get_str(39).unwrap(), "05");
    assert!(net.store.outbox_after(0, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_bank_gets_91_and_a_queued_reversal_and_a_down_bank_stand_in_within_limits() {
    let net = network(2).await;
    let card = uninsured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    *net.banks.mode.lock().unwrap() = BankMode::Silent;
    let p = k
        .medical_bill(&card, &mut r, 50_000, "MZ-5", DEMO_PIN)
        .unwrap();
    let a = exchange(&mut conn, &p.request).await;
    assert_eq!(decode(&a).get_str(39).unwrap(), "91");
    let due = net.store.due_reversals(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].amount_fen, 50_000);
    assert_eq!(due[0].destination, net.world.banks[card.bank].id);

    // Link down: stand-in approves up to 200.00 and declines 91 above.
    *net.banks.mode.lock().unwrap() = BankMode::Down;
    let p = k
        .medical_bill(&card, &mut r, 15_000, "MZ-6", DEMO_PIN)
        .unwrap();
    let a = exchange(&mut conn, &p.request).await;
    assert_eq!(decode(&a).get_str(39).unwrap(), "00");
    assert!(decode(&a).get_str(38).unwrap().starts_with('S'));
    let p = k
        .medical_bill(&card, &mut r, 25_000, "MZ-7", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "91");

    *net.banks.mode.lock().unwrap() = BankMode::Decline(ResponseCode::InsufficientFunds);
    let p = k
        .medical_bill(&card, &mut r, 25_000, "MZ-8", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "51");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_in_approval_commits_its_advice_and_a_card_gets_at_most_its_daily_stand_in() {
    let net = network(2).await;
    let card = uninsured(&net.world);
    let bank = net.world.banks[card.bank].id.clone();
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    *net.banks.mode.lock().unwrap() = BankMode::Down;
    // Demo rule: 200.00 per bank leg, 500.00 per card per day.
    let mut codes = Vec::new();
    let mut first = None;
    for (i, amount) in [15_000u64, 20_000, 15_000, 10_000].into_iter().enumerate() {
        let p = k
            .medical_bill(&card, &mut r, amount, &format!("MZ-S{i}"), DEMO_PIN)
            .unwrap();
        first.get_or_insert_with(|| p.request.clone());
        let a = exchange(&mut conn, &p.request).await;
        let a = decode(&a);
        codes.push(a.get_str(39).unwrap().into_owned());
        if codes[i] == "00" {
            // The approval and its advice are one commit: the advice names the approval.
            let rrn = schemas::domain::Rrn::parse(&a.get_str(37).unwrap()).unwrap();
            let stored = net.store.transactions_by_rrn(&rrn).await.unwrap();
            let due = net.store.due_advices(i64::MAX, 10).await.unwrap();
            let advice = due
                .iter()
                .find(|d| d.transaction_id == stored[0].record.transaction_id)
                .expect("the approval's advice");
            assert_eq!(advice.amount_fen, amount as i64);
            assert_eq!(advice.destination, bank);
            assert_eq!(advice.auth_code, a.get_str(38).unwrap());
            assert_eq!(advice.reason, ResponseCode::IssuerUnavailable);
        }
    }
    // 150 + 200 + 150 = 500.00 fits; the next 100.00 would make 600.00.
    assert_eq!(codes, ["00", "00", "00", "91"]);
    let due = net.store.due_advices(i64::MAX, 10).await.unwrap();
    assert_eq!(
        due.len(),
        3,
        "one advice per stand-in approval, none for the decline"
    );
    // The kiosk reverses the first stand-in: its 0420 waits until the bank has the advice.
    let (reversal, _) = k.reversal_of(&first.unwrap()).unwrap();
    assert_eq!(answer_code(&mut conn, &reversal).await, "00");
    assert!(net
        .store
        .due_reversals(i64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    for d in &due {
        net.store
            .ack_advice(d.advice_id, ResponseCode::Approved, 0)
            .await
            .unwrap();
    }
    let reversals = net.store.due_reversals(i64::MAX, 10).await.unwrap();
    assert_eq!(reversals.len(), 1);
    assert_eq!(reversals[0].amount_fen, 15_000);
    // Another card of the same bank still has its own allowance.
    let other = net
        .world
        .cards
        .iter()
        .find(|c| c.bank == card.bank && c.pan != card.pan)
        .unwrap()
        .clone();
    let mut r2 = reader(&net.world, &other);
    let p = k
        .medical_bill(&other, &mut r2, 10_000, "MZ-S9", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversal_restores_the_accounts_once_and_queues_the_bank_leg_reversal() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let balance_req = k.personal_balance(&card, &mut r).unwrap().request;
    let before = decode(&exchange(&mut conn, &balance_req).await)
        .get_str(54)
        .unwrap()
        .into_owned();
    let p = k
        .medical_bill(&card, &mut r, 300_000, "MZ-9", DEMO_PIN)
        .unwrap();
    let original = p.request.clone();
    let a = exchange(&mut conn, &p.request).await;
    assert_eq!(decode(&a).get_str(39).unwrap(), "00");
    let (reversal, _) = k.reversal_of(&original).unwrap();
    let rev = exchange(&mut conn, &reversal).await;
    assert_eq!(decode(&rev).mti().as_str(), "0410");
    assert_eq!(decode(&rev).get_str(39).unwrap(), "00");
    // The same reversal again (a retransmission: the original answer) and a second reversal:
    // no double credit.
    assert_eq!(answer_code(&mut conn, &reversal).await, "00");
    let (again, _) = k.reversal_of(&original).unwrap();
    assert_eq!(answer_code(&mut conn, &again).await, "00");
    let balance_req = k.personal_balance(&card, &mut r).unwrap().request;
    let after = decode(&exchange(&mut conn, &balance_req).await)
        .get_str(54)
        .unwrap()
        .into_owned();
    assert_eq!(before, after, "personal account restored exactly");
    let events: Vec<String> = net
        .store
        .outbox_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.event_type)
        .collect();
    assert_eq!(events, vec!["medical_bill_split", "reversal"]);
    let due = net.store.due_reversals(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1, "the bank leg goes back to the bank");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_30_or_lose_their_connection_and_others_are_unaffected() {
    let net = network(1).await;
    let spec = iso8583::spec("ssc87").unwrap();
    let mut conn = connect(net.addr).await;
    // Missing mandatory fields (no 3, 4, 49): answered 30, STAN echoed.
    let mut m = spec.message(iso8583::Mti::new("0200").unwrap());
    m.set_str(7, "1123101010")
        .unwrap()
        .set_u64(11, 4242)
        .unwrap();
    m.set_str(41, "HK000001").unwrap();
    let mut wire = Vec::new();
    spec.encode_unchecked(&m, &mut wire).unwrap();
    let a = exchange(&mut conn, &wire).await;
    let a = spec.decode_unchecked(&a).unwrap();
    assert_eq!(a.mti().as_str(), "0210");
    assert_eq!(a.get_str(39).unwrap(), "30");
    assert_eq!(a.get_u64(11).unwrap(), 4242);

    // The same connection still works for a good request.
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let p = k
        .medical_bill(&card, &mut r, 1_000, "MZ-10", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "00");

    // No readable MTI: the connection is closed.
    let mut bad = connect(net.addr).await;
    bad.send(Frame {
        tpdu: None,
        message: b"\xFF\xFFgarbage".to_vec().into(),
    })
    .await
    .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), bad.next())
        .await
        .unwrap();
    assert!(next.is_none() || next.unwrap().is_err());

    // An oversize frame (header says 4000 > 2048): closed without reading it.
    let mut raw = TcpStream::connect(net.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(&[0x0F, 0xA0]).await.unwrap();
    raw.write_all(&[b'0'; 64]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "connection closed");

    // The first connection is still served.
    let q = k.personal_balance(&card, &mut r).unwrap().request;
    assert_eq!(answer_code(&mut conn, &q).await, "00");
}

/// An acquirer's 0500: its totals for today (field 15, China Standard Time) in 74-77/86-89,
/// MACed under the acquirer's demo TAK.
fn reconciliation_request(acquirer: &str, stan: u64, totals: [(u64, u64); 4]) -> Vec<u8> {
    let f7 = switch::wire::network::transmission_now();
    reconciliation_request_at(acquirer, stan, totals, &f7)
}

/// A 0500 of `acquirer` for today (China Standard Time) whose field 7 (UTC) is `f7`.
fn reconciliation_request_at(
    acquirer: &str,
    stan: u64,
    totals: [(u64, u64); 4],
    f7: &str,
) -> Vec<u8> {
    let spec = iso8583::spec("ssc87").unwrap();
    let now = chrono::Utc::now() + chrono::Duration::hours(8);
    let mut m = spec.message(iso8583::Mti::new("0500").unwrap());
    m.set_str(7, f7)
        .unwrap()
        .set_u64(11, stan)
        .unwrap()
        .set_str(15, &now.format("%m%d").to_string())
        .unwrap()
        .set_str(32, acquirer)
        .unwrap()
        .set_str(97, "C0000000000000000")
        .unwrap();
    for (i, (count, fen)) in totals.into_iter().enumerate() {
        let i = i as u16;
        m.set_u64(74 + i, count)
            .unwrap()
            .set_u64(86 + i, fen)
            .unwrap();
    }
    let tid = TerminalId::parse("HK000001").unwrap();
    match InstitutionId::parse(acquirer) {
        Ok(id) => Kiosk::new(tid, id, None, "1").seal(&mut m).unwrap(),
        Err(_) => {
            let mut wire = Vec::new();
            spec.encode(&m, &mut wire).unwrap();
            wire
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquirer_0500_is_answered_in_or_out_of_balance_with_the_switch_totals() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let hospital = net.world.hospitals[0].id.as_str().to_owned();
    // Two bills (debits) and the reversal of the second; a declined one does not count.
    let p = k
        .medical_bill(&card, &mut r, 300_000, "MZ-R1", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "00");
    let p = k
        .medical_bill(&card, &mut r, 1_000, "MZ-R2", DEMO_PIN)
        .unwrap();
    let second = p.request.clone();
    assert_eq!(answer_code(&mut conn, &p.request).await, "00");
    let (reversal, _) = k.reversal_of(&second).unwrap();
    assert_eq!(answer_code(&mut conn, &reversal).await, "00");
    let p = k
        .medical_bill(&card, &mut r, 2_000, "MZ-R3", "654321")
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "55");

    let ours = [(0, 0), (0, 0), (2, 301_000), (1, 1_000)];
    let a = exchange(&mut conn, &reconciliation_request(&hospital, 901, ours)).await;
    let a = decode(&a);
    assert_eq!(a.mti().as_str(), "0510");
    assert_eq!(
        (a.get_str(39).unwrap(), a.get_str(66).unwrap()),
        ("00".into(), "1".into())
    );
    assert_eq!(a.get_u64(11).unwrap(), 901);
    let answered: Vec<u64> = [74u16, 75, 76, 77, 86, 87, 88, 89]
        .iter()
        .map(|f| a.get_u64(*f).unwrap())
        .collect();
    assert_eq!(answered, [0, 0, 2, 1, 0, 0, 301_000, 1_000]);
    assert_eq!(a.get_str(97).unwrap(), "D0000000000300000");

    // One fen off on the debits: out of balance, and the switch's own figures to compare.
    let off = [(0, 0), (0, 0), (2, 300_999), (1, 1_000)];
    let a = exchange(&mut conn, &reconciliation_request(&hospital, 902, off)).await;
    let a = decode(&a);
    assert_eq!(
        (a.get_str(39).unwrap(), a.get_str(66).unwrap()),
        ("00".into(), "2".into())
    );
    assert_eq!(a.get_u64(88).unwrap(), 301_000);

    // Another acquirer has its own totals; an unknown one is refused.
    let other = net.world.hospitals[1].id.as_str().to_owned();
    let a = exchange(&mut conn, &reconciliation_request(&other, 903, [(0, 0); 4])).await;
    assert_eq!(decode(&a).get_str(66).unwrap(), "1");
    let a = exchange(
        &mut conn,
        &reconciliation_request("99999", 904, [(0, 0); 4]),
    )
    .await;
    let a = iso8583::spec("ssc87")
        .unwrap()
        .decode_unchecked(&a)
        .unwrap();
    assert_eq!(
        (a.get_str(39).unwrap(), a.get_str(66).unwrap()),
        ("03".into(), "3".into())
    );
}

/// Issue 24, finding 6 (the 0500 part): a reconciliation request is held to the transmission
/// window like any other; a captured 0500 replayed two days later, or one stamped in China
/// Standard Time instead of UTC, gets no totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0500_whose_field_7_is_outside_the_window_is_declined_63_without_totals() {
    let net = network(1).await;
    let mut conn = connect(net.addr).await;
    let hospital = net.world.hospitals[0].id.as_str().to_owned();
    let utc = |d: chrono::TimeDelta| (chrono::Utc::now() + d).format("%m%d%H%M%S").to_string();
    for (stan, f7) in [
        (911, utc(-chrono::TimeDelta::days(2))),
        (912, utc(chrono::TimeDelta::hours(8))),
        (913, utc(-chrono::TimeDelta::minutes(6))),
    ] {
        let wire = reconciliation_request_at(&hospital, stan, [(0, 0); 4], &f7);
        let a = exchange(&mut conn, &wire).await;
        let a = iso8583::spec("ssc87")
            .unwrap()
            .decode_unchecked(&a)
            .unwrap();
        assert_eq!(
            (a.get_str(39).unwrap(), a.get_str(66).unwrap()),
            ("63".into(), "3".into()),
            "field 7 {f7}"
        );
    }
    let fresh = reconciliation_request_at(
        &hospital,
        914,
        [(0, 0); 4],
        &utc(-chrono::TimeDelta::minutes(1)),
    );
    let a = exchange(&mut conn, &fresh).await;
    assert_eq!(
        (
            decode(&a).get_str(39).unwrap(),
            decode(&a).get_str(66).unwrap()
        ),
        ("00".into(), "1".into())
    );
}

/// `wire` with its field 55 replaced by `field55` (a replay under fresh references), MACed
/// again by the kiosk `k`.
fn with_field55(k: &Kiosk, wire: &[u8], field55: &[u8]) -> Vec<u8> {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.decode(wire).unwrap().to_owned_message();
    m.set_bytes(55, field55).unwrap();
    k.seal(&mut m).unwrap()
}

fn field55(wire: &[u8]) -> Vec<u8> {
    decode(wire).get(55).unwrap().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_field_55_is_declined_59_and_a_restarted_node_still_knows_the_last_atc() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let first = k
        .medical_bill(&card, &mut r, 1_000, "MZ-R1", DEMO_PIN)
        .unwrap();
    let recorded = field55(&first.request);
    let a = exchange(&mut conn, &first.request).await;
    assert_eq!(code(&a), "00");
    assert!(first.complete(&mut r, &decode(&a)).unwrap().approved);

    // The recorded cryptogram under new references (STAN, RRN, time): it verifies, but its
    // ATC is not above the card's last.
    let second = k
        .medical_bill(&card, &mut r, 1_000, "MZ-R2", DEMO_PIN)
        .unwrap();
    let carrier = k
        .medical_bill(&card, &mut r, 1_000, "MZ-R2", DEMO_PIN)
        .unwrap();
    let a = exchange(&mut conn, &with_field55(&k, &carrier.request, &recorded)).await;
    assert_eq!(code(&a), "59");
    assert!(!decode(&a).has(55), "no ARPC for a replay");
    // The genuine next cryptogram still passes.
    let genuine = field55(&second.request);
    let a = exchange(&mut conn, &second.request).await;
    assert_eq!(code(&a), "00");

    // Restart: a new node on the reopened database, nothing in memory.
    net.shutdown.send_replace(true);
    let store = open_store(&net.dir).await;
    let (_pipeline, addr, _shutdown) = start_node(&store, &net.world, &net.banks).await;
    let mut conn = connect(addr).await;
    let third = k
        .medical_bill(&card, &mut r, 1_000, "MZ-R3", DEMO_PIN)
        .unwrap();
    let carrier = k
        .medical_bill(&card, &mut r, 1_000, "MZ-R3", DEMO_PIN)
        .unwrap();
    let a = exchange(&mut conn, &with_field55(&k, &carrier.request, &genuine)).await;
    assert_eq!(code(&a), "59");
    let a = exchange(&mut conn, &third.request).await;
    assert_eq!(code(&a), "00");
    assert_eq!(store.outbox_after(0, 10).await.unwrap().len(), 3);
    let stored = store.card_by_pan(&card.pan).await.unwrap().unwrap();
    assert_eq!(stored.atc_max, Some(atc_of(&third.request)));
}

fn atc_of(wire: &[u8]) -> u16 {
    let atc = decode(wire).get_path("55.9F36").unwrap().into_owned();
    u16::from_be_bytes([atc[0], atc[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atc_jump_beyond_the_gap_is_declined_once_and_flagged() {
    let mut net = network(1).await;
    net.shutdown.send_replace(true);
    net.world.cfg.atc_gap_max = Some(2);
    let (_pipeline, addr, _shutdown) = start_node(&net.store, &net.world, &net.banks).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(addr).await;
    let mut bill = |no: &'static str| k.medical_bill(&card, &mut r, 1_000, no, DEMO_PIN).unwrap();
    let first = bill("MZ-G1");
    assert_eq!(code(&exchange(&mut conn, &first.request).await), "00");
    // Three transactions the switch never sees (ATC +4 > +2 allowed).
    for no in ["MZ-X1", "MZ-X2", "MZ-X3"] {
        let _ = bill(no);
    }
    let a = exchange(&mut conn, &bill("MZ-G2").request).await;
    assert_eq!(code(&a), "59");
    assert!(decode(&a).has(55), "the genuine card gets its ARPC");
    assert_eq!(net.store.verify_audit_chain().await.unwrap(), 1, "flagged");
    // The jump is recorded: the card's next transaction passes.
    assert_eq!(
        code(&exchange(&mut conn, &bill("MZ-G3").request).await),
        "00"
    );
}

fn code(answer: &[u8]) -> String {
    decode(answer).get_str(39).unwrap().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_card_online_gets_41_and_an_application_block_script_and_then_cannot_pay() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let stored = net.store.card_by_pan(&card.pan).await.unwrap().unwrap();
    net.store
        .set_card_status(stored.card_id, CardStatus::Lost, Some("reported lost"), 0)
        .await
        .unwrap();
    net.pipeline
        .cards()
        .refresh_hot_list(&*net.store)
        .await
        .unwrap();

    let p = k
        .medical_bill(&card, &mut r, 10_000, "MZ-L1", DEMO_PIN)
        .unwrap();
    let a = exchange(&mut conn, &p.request).await;
    let a = decode(&a);
    assert_eq!(a.get_str(39).unwrap(), "41");
    let command = script_command(&a).expect("issuer script template 2 with a command");
    assert_eq!(
        &command[..5],
        &[0x84, 0x1E, 0x00, 0x00, 0x04],
        "APPLICATION BLOCK"
    );
    assert_eq!(command.len(), 9, "with its 4-byte MAC");
    // The card checks the ARPC, declines with an AAC, then runs the script and blocks itself.
    let outcome = p.complete(&mut r, &a).unwrap();
    assert!(!outcome.approved);
    assert_eq!(outcome.issuer_authentication, Some(true));
    assert_eq!(outcome.scripts.len(), 1);
    assert_eq!(outcome.scripts[0].template, 0x72);
    assert!(
        outcome.scripts[0].ok,
        "script MAC accepted: {:?}",
        outcome.scripts
    );
    // Blocked: SELECT answers 6283 and the kiosk cannot start a payment.
    let refused = k.medical_bill(&card, &mut r, 10_000, "MZ-L2", DEMO_PIN);
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("blocked")),
        "the blocked application refuses to pay"
    );
    // The script is in the audit log (without the PAN).
    let mut db = sqlx_sqlite(&net).await;
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT action, detail FROM audit_log")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "card.issuer_script");
    assert!(rows[0].1.contains("application_block"));
    assert!(!rows[0].1.contains(card.pan.expose_digits()));
}

/// The chip's offline PIN try counter (9F17, GET DATA) after selecting the debit application.
fn offline_pin_tries(r: &mut MemoryChannel) -> u8 {
    use card_apdu::channel::CardChannel;
    let mut select = vec![0x00, 0xA4, 0x04, 0x00, 0x08];
    select.extend_from_slice(&card_apdu::vcard::PBOC_DEBIT_AID);
    select.push(0x00);
    let answer = r.transmit_raw(&select).unwrap();
    assert_eq!(answer[answer.len() - 2..], [0x90, 0x00], "SELECT");
    let answer = r.transmit_raw(&[0x80, 0xCA, 0x9F, 0x17, 0x00]).unwrap();
    assert_eq!(
        answer[..3],
        [0x9F, 0x17, 0x01],
        "GET DATA 9F17: {answer:02X?}"
    );
    answer[3]
}

/// At an offline terminal the cardholder mistypes the offline PIN until the chip refuses it
/// (VERIFY with a plaintext PIN block, EMV Book 3 §6.5.12: "9999").
fn exhaust_offline_pin(r: &mut MemoryChannel) {
    use card_apdu::channel::CardChannel;
    for _ in 0..offline_pin_tries(r) {
        let wrong = [
            0x00, 0x20, 0x00, 0x80, 0x08, 0x24, 0x99, 0x99, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        let _ = r.transmit_raw(&wrong).unwrap();
    }
    assert_eq!(offline_pin_tries(r), 0);
}

/// The first command (86) of the Issuer Script Template 2 (72) in an answer's field 55, which
/// must also carry the ARPC (91).
fn script_command(answer: &iso8583::Message<'_>) -> Option<Vec<u8>> {
    let f55 = answer.get(55).ok()?.into_owned();
    let tlvs = card_apdu::tlv::parse_all(&f55).unwrap();
    assert!(card_apdu::tlv::find_value(&tlvs, 0x91).is_some(), "ARPC");
    let template = card_apdu::tlv::find(&tlvs, 0x72)?;
    card_apdu::tlv::find_value(card_apdu::tlv::children(template), 0x86).map(<[u8]>::to_vec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chip_whose_offline_pin_ran_out_is_unblocked_by_an_approval_with_the_pin_verified_here() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let tries_max = offline_pin_tries(&mut r);
    assert!(tries_max > 0);
    exhaust_offline_pin(&mut r);

    // Online, at a hospital kiosk, with the right PIN verified by the switch.
    let p = k
        .medical_bill(&card, &mut r, 1_000, "MZ-U1", DEMO_PIN)
        .unwrap();
    let a = exchange(&mut conn, &p.request).await;
    let a = decode(&a);
    assert_eq!(a.get_str(39).unwrap(), "00");
    let command = script_command(&a).expect("issuer script template 2 with a command");
    assert_eq!(
        &command[..5],
        &[0x84, 0x24, 0x00, 0x00, 0x04],
        "PIN UNBLOCK"
    );
    let outcome = p.complete(&mut r, &a).unwrap();
    assert!(outcome.approved);
    assert_eq!(outcome.scripts.len(), 1);
    assert!(
        outcome.scripts[0].ok,
        "script MAC accepted: {:?}",
        outcome.scripts
    );
    assert_eq!(
        offline_pin_tries(&mut r),
        tries_max,
        "the chip's counter is reset"
    );

    // The next payment finds the counter full: no script.
    let p = k
        .medical_bill(&card, &mut r, 1_000, "MZ-U2", DEMO_PIN)
        .unwrap();
    let a = exchange(&mut conn, &p.request).await;
    let a = decode(&a);
    assert_eq!(a.get_str(39).unwrap(), "00");
    assert_eq!(script_command(&a), None);
    let mut db = sqlx_sqlite(&net).await;
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT action, detail FROM audit_log")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "card.issuer_script");
    assert!(rows[0].1.contains("pin_unblock"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_online_does_not_unblock_the_chip() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    exhaust_offline_pin(&mut r);
    let p = k
        .medical_bill(&card, &mut r, 1_000, "MZ-W1", "999999")
        .unwrap();
    let a = exchange(&mut conn, &p.request).await;
    let a = decode(&a);
    assert_eq!(a.get_str(39).unwrap(), "55");
    assert_eq!(script_command(&a), None, "no script without the PIN");
    let _ = p.complete(&mut r, &a);
    assert_eq!(offline_pin_tries(&mut r), 0);
}

async fn sqlx_sqlite(net: &Net) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(net.dir.path().join("switch.db"))
        .connect()
        .await
        .unwrap()
}

/// `wire` with field 7 replaced, MACed again by the kiosk that sent it.
fn with_field7(k: &Kiosk, wire: &[u8], f7: &str) -> Vec<u8> {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.decode(wire).unwrap().to_owned_message();
    m.set_str(7, f7).unwrap();
    k.seal(&mut m).unwrap()
}

/// `wire` with field 32 set to `acquirer` (when given) and without its MAC: what someone
/// without the institution's TAK can send.
fn forged(wire: &[u8], acquirer: Option<&InstitutionId>) -> Vec<u8> {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.decode(wire).unwrap().to_owned_message();
    m.remove(64).remove(128);
    if let Some(a) = acquirer {
        m.set_str(32, a.as_str()).unwrap();
    }
    let mut out = Vec::new();
    spec.encode(&m, &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_7_outside_the_transmission_window_is_declined_63_and_nothing_moves() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let utc = |d: chrono::TimeDelta| (chrono::Utc::now() + d).format("%m%d%H%M%S").to_string();

    // Two days old (a captured request replayed), and China Standard Time instead of UTC.
    for f7 in [
        utc(-chrono::TimeDelta::days(2)),
        utc(chrono::TimeDelta::hours(8)),
    ] {
        let p = k
            .medical_bill(&card, &mut r, 1_000, "MZ-OLD", DEMO_PIN)
            .unwrap();
        let a = exchange(&mut conn, &with_field7(&k, &p.request, &f7)).await;
        assert_eq!(code(&a), "63", "field 7 {f7}");
    }
    let q = k.personal_balance(&card, &mut r).unwrap().request;
    let stale = with_field7(&k, &q, &utc(-chrono::TimeDelta::minutes(6)));
    assert_eq!(answer_code(&mut conn, &stale).await, "63");
    assert!(net.store.outbox_after(0, 10).await.unwrap().is_empty());

    // A minute off either way is within the default five minutes.
    for d in [
        chrono::TimeDelta::minutes(-1),
        chrono::TimeDelta::minutes(1),
    ] {
        let q = k.personal_balance(&card, &mut r).unwrap().request;
        assert_eq!(
            answer_code(&mut conn, &with_field7(&k, &q, &utc(d))).await,
            "00"
        );
    }
    // The kiosk's own requests are fresh.
    let p = k
        .medical_bill(&card, &mut r, 1_000, "MZ-NEW", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_retransmission_gets_the_original_answer_and_moves_nothing_again() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;

    let p = k
        .medical_bill(&card, &mut r, 1_000, "MZ-RT", DEMO_PIN)
        .unwrap();
    assert_eq!(answer_code(&mut conn, &p.request).await, "00");
    // The terminal lost the answer and sends the same request again: it learns the approval.
    assert_eq!(answer_code(&mut conn, &p.request).await, "00");
    let rrn = schemas::domain::Rrn::parse(&decode(&p.request).get_str(37).unwrap()).unwrap();
    assert_eq!(net.store.transactions_by_rrn(&rrn).await.unwrap().len(), 1);
    assert_eq!(
        net.store.outbox_after(0, 10).await.unwrap().len(),
        1,
        "charged once"
    );

    // A decline is answered with its own code again (and is no second wrong PIN).
    let wrong = k
        .medical_bill(&card, &mut r, 1_000, "MZ-RT2", "654321")
        .unwrap();
    assert_eq!(answer_code(&mut conn, &wrong.request).await, "55");
    for _ in 0..3 {
        assert_eq!(answer_code(&mut conn, &wrong.request).await, "55");
    }
    let stored = net.store.card_by_pan(&card.pan).await.unwrap().unwrap();
    assert_eq!(stored.status, CardStatus::Active, "one wrong PIN, not four");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_on_different_stans_cannot_add_up_to_more_than_the_purchase() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let purchase = k.bank_purchase(&card, &mut r, 10_000).unwrap();
    assert_eq!(answer_code(&mut conn, &purchase.request).await, "00");

    let refund = |stan, fen| k.refund_of(&purchase.request, stan, fen).unwrap();
    assert_eq!(answer_code(&mut conn, &refund(900_001, 6_000)).await, "00");
    // Each alone is within the purchase; together they are not.
    assert_eq!(answer_code(&mut conn, &refund(900_002, 6_000)).await, "13");
    assert_eq!(answer_code(&mut conn, &refund(900_003, 4_000)).await, "00");
    assert_eq!(answer_code(&mut conn, &refund(900_004, 1)).await, "13");
    let rrn = schemas::domain::Rrn::parse(&decode(&purchase.request).get_str(37).unwrap()).unwrap();
    let refunded: i64 = net
        .store
        .transactions_by_rrn(&rrn)
        .await
        .unwrap()
        .iter()
        .filter(|t| {
            t.record.kind == switch::store::TransactionKind::Refund && t.record.is_approved()
        })
        .map(|t| t.record.amount_fen.get())
        .sum();
    assert_eq!(refunded, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_acquirers_reversal_with_the_same_terminal_and_rrn_finds_nothing() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let purchase = k.bank_purchase(&card, &mut r, 10_000).unwrap();
    assert_eq!(answer_code(&mut conn, &purchase.request).await, "00");

    // Another hospital whose kiosk happens to have the same terminal id.
    let other = &net.world.hospitals[1];
    let mut impostor = Kiosk::new(
        TerminalId::parse("HK000001").unwrap(),
        other.id.clone(),
        Some(other.code.clone()),
        "1",
    );
    let (reversal, _) = impostor.reversal_of(&purchase.request).unwrap();
    assert_eq!(answer_code(&mut conn, &reversal).await, "25");
    let rrn = schemas::domain::Rrn::parse(&decode(&purchase.request).get_str(37).unwrap()).unwrap();
    assert_eq!(net.store.transactions_by_rrn(&rrn).await.unwrap().len(), 1);
    // The purchase's own acquirer reverses it.
    let (reversal, _) = k.reversal_of(&purchase.request).unwrap();
    assert_eq!(answer_code(&mut conn, &reversal).await, "00");
}

/// Issue 24, finding 1: field 32 alone does not make a request the fund's, a job centre's or
/// another hospital's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benefit_credit_or_a_0500_without_a_valid_mac_of_its_field_32_is_not_approved() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut conn = connect(net.addr).await;
    let fund = InstitutionId::parse(switch::sim::world::SOCIAL_SECURITY_FUND_ID).unwrap();
    let job_centre = InstitutionId::parse(switch::sim::world::JOB_CENTRE_ID).unwrap();
    for claimed in [&fund, &job_centre] {
        // From outside: a PAN, field 32 and no MAC.
        let mut k = Kiosk::new(
            TerminalId::parse("JC000001").unwrap(),
            claimed.clone(),
            None,
            "7",
        );
        let (credit, _) = k.benefit_credit(&card, 100_000).unwrap();
        let a = exchange(&mut conn, &forged(&credit, None)).await;
        assert_ne!(code(&a), "00", "no MAC, field 32 = {claimed}");
        // From a hospital's kiosk, its field 32 rewritten.
        let mut h = hospital_kiosk(&net.world);
        let (credit, _) = h.benefit_credit(&card, 100_000).unwrap();
        let a = exchange(&mut conn, &forged(&credit, Some(claimed))).await;
        assert_ne!(code(&a), "00", "a hospital as {claimed}");
    }
    // Another hospital's totals, asked without its MAC.
    let other = net.world.hospitals[1].id.as_str().to_owned();
    let a = exchange(
        &mut conn,
        &forged(&reconciliation_request(&other, 905, [(0, 0); 4]), None),
    )
    .await;
    let a = iso8583::spec("ssc87")
        .unwrap()
        .decode_unchecked(&a)
        .unwrap();
    assert_ne!(
        a.get_str(39).unwrap(),
        "00",
        "no totals of another acquirer"
    );
    assert_eq!(a.get_str(66).unwrap(), "3", "no totals of another acquirer");
}

/// Field 39 of the pipeline's answer to `wire` on a link described by `link`.
async fn code_on(net: &Net, wire: &[u8], link: &LinkContext) -> String {
    match net.pipeline.process(wire, link).await {
        Reply::Send(a) => iso8583::spec("ssc87")
            .unwrap()
            .decode_unchecked(&a)
            .unwrap()
            .get_str(39)
            .unwrap()
            .into_owned(),
        other => panic!("no answer: {other:?}"),
    }
}

/// Issue 24, finding 1: the institution is the connection's. A listener of one hospital
/// declines (03, audited) a request naming another, even one MACed under the other's key; a
/// job centre's genuine MAC is what lets its benefit credit through on a shared listener;
/// and a MAC-free in-house listener still wants a MAC for credits, refunds and 0500s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_32_must_name_the_institution_the_connection_proves() {
    let net = network(1).await;
    let card = insured(&net.world);
    let spec = iso8583::spec("ssc87").unwrap();
    let job_centre = InstitutionId::parse(switch::sim::world::JOB_CENTRE_ID).unwrap();
    let mut jc = Kiosk::new(
        TerminalId::parse("JC000001").unwrap(),
        job_centre.clone(),
        None,
        "7",
    );
    let (credit, _) = jc.benefit_credit(&card, 1_000).unwrap();
    let mut conn = connect(net.addr).await;
    assert_eq!(
        answer_code(&mut conn, &credit).await,
        "00",
        "the job centre's own MAC"
    );

    let hospital = net.world.hospitals[0].id.clone();
    let own_line = LinkContext {
        spec,
        identity: AcquirerIdentity::Fixed(hospital.clone()),
        mac_free_trusted_in_house: false,
    };
    let audited = net.store.verify_audit_chain().await.unwrap();
    let (credit, _) = jc.benefit_credit(&card, 1_000).unwrap();
    assert_eq!(code_on(&net, &credit, &own_line).await, "03");
    let other = &net.world.hospitals[1].id;
    let totals = reconciliation_request(other.as_str(), 906, [(0, 0); 4]);
    assert_eq!(code_on(&net, &totals, &own_line).await, "03");
    assert_eq!(
        net.store.verify_audit_chain().await.unwrap(),
        audited + 2,
        "both audited"
    );
    let own = reconciliation_request(hospital.as_str(), 907, [(0, 0); 4]);
    assert_eq!(code_on(&net, &own, &own_line).await, "00");

    // In-house and MAC-free: purchases without a MAC pass once the hospital has no TAK, a
    // 0500 or a reversal without one does not.
    let mut keys = net.world.keys.clone();
    keys.acquirers.get_mut(&hospital).unwrap().tak = None;
    let (w, _task) = writer::spawn(Arc::clone(&net.store), writer::WriterConfig::default());
    let in_house = Pipeline::new(
        Arc::clone(&net.store),
        w,
        net.world.hsm.clone(),
        net.banks.clone(),
        keys,
        net.world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .unwrap();
    let line = LinkContext {
        mac_free_trusted_in_house: true,
        ..own_line
    };
    let mut k = hospital_kiosk(&net.world).with_tak(None);
    let mut r = reader(&net.world, &card);
    let p = k
        .medical_bill(&card, &mut r, 1_000, "MZ-IH1", DEMO_PIN)
        .unwrap();
    let answer = match in_house.process(&p.request, &line).await {
        Reply::Send(a) => a,
        other => panic!("no answer: {other:?}"),
    };
    assert_eq!(code(&answer), "00");
    let (reversal, _) = k.reversal_of(&p.request).unwrap();
    let (totals, _) = (forged(&own, None), ());
    for wire in [reversal, totals] {
        let a = match in_house.process(&wire, &line).await {
            Reply::Send(a) => a,
            other => panic!("no answer: {other:?}"),
        };
        let a = spec.decode_unchecked(&a).unwrap();
        assert_eq!(a.get_str(39).unwrap(), "A0");
    }
}

/// Issue 24, finding 10: a request cut short inside field 55 is answered 30 with the fields
/// read before it echoed, so the 0210 satisfies the ssc87 rules (3 4 7 11 41 49 39).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_error_answer_echoes_the_fields_that_could_be_read() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let p = k.bank_purchase(&card, &mut r, 1_000).unwrap();
    let cut = &p.request[..p.request.len() - 30];
    let a = exchange(&mut conn, cut).await;
    let a = iso8583::spec("ssc87")
        .unwrap()
        .decode(&a)
        .expect("a 0210 within the ssc87 rules");
    assert_eq!(a.get_str(39).unwrap(), "30");
    assert_eq!(a.get_u64(11).unwrap(), u64::from(p.stan));
    assert_eq!(a.get_u64(4).unwrap(), 1_000);
}

/// Issue 24, finding 9: a chip card's balance inquiry needs its ARQC: approved with its ARPC,
/// 59 when its field 55 is replayed, 05 when the cryptogram is tampered with or absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_inquiry_needs_the_cards_arqc() {
    let net = network(1).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let spec = iso8583::spec("ssc87").unwrap();
    let q = k.personal_balance(&card, &mut r).unwrap();
    let recorded = field55(&q.request);
    let a = exchange(&mut conn, &q.request).await;
    assert_eq!(code(&a), "00");
    assert!(decode(&a).has(55), "the ARPC");
    let q = k.personal_balance(&card, &mut r).unwrap();
    let a = exchange(&mut conn, &with_field55(&k, &q.request, &recorded)).await;
    assert_eq!(code(&a), "59", "replayed");
    let q = k.personal_balance(&card, &mut r).unwrap();
    let mut m = spec.decode(&q.request).unwrap().to_owned_message();
    let mut arqc = m.get_path("55.9F26").unwrap().into_owned();
    arqc[0] ^= 0x01;
    m.set_path("55.9F26", &arqc).unwrap();
    let tampered = k.seal(&mut m).unwrap();
    assert_eq!(answer_code(&mut conn, &tampered).await, "05", "tampered");
    let q = k.personal_balance(&card, &mut r).unwrap();
    let mut m = spec.decode(&q.request).unwrap().to_owned_message();
    m.remove(55);
    let without = k.seal(&mut m).unwrap();
    assert_eq!(answer_code(&mut conn, &without).await, "05", "no field 55");
}

/// The personal medical-insurance account of `card`: (balance, held), fen.
async fn personal_account(net: &Net, card: &DemoCard) -> (i64, i64) {
    let stored = net.store.card_by_pan(&card.pan).await.unwrap().unwrap();
    let a = net
        .store
        .accounts_for_card(stored.card_id)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.kind == switch::store::AccountKind::PersonalMedical)
        .expect("an insured card has a personal account");
    (a.balance_fen, a.held_fen)
}

/// Issue 29: a pre-authorization (0100) holds on the personal account; its completion (0220)
/// captures what it completes, at most the hold, and gives back the rest; a completion above
/// the hold captures the hold; an unknown completion moves nothing; a hold nobody completes is
/// released when it expires. Through the acquirer port, with the store checked after each step
/// and `switch verify` at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preauthorization_holds_and_its_completion_captures_at_most_the_hold() {
    let net = network_with(1, |cfg| cfg.hold_ttl = Duration::from_millis(1_500)).await;
    let card = insured(&net.world);
    let mut k = hospital_kiosk(&net.world);
    let mut r = reader(&net.world, &card);
    let mut conn = connect(net.addr).await;
    let (balance0, held0) = personal_account(&net, &card).await;
    assert_eq!(held0, 0);
    assert!(balance0 >= 10_000, "the seed leaves room for the holds");

    // Below the hold: 3,000 of 5,000 captured, 2,000 back.
    let pre = k.preauthorization(&card, &mut r, 5_000).unwrap();
    let wire = exchange(&mut conn, &pre.request).await;
    let answer = decode(&wire);
    assert_eq!(answer.get_str(39).unwrap(), "00");
    assert!(answer.has(38), "an approval carries its authorization code");
    assert_eq!(personal_account(&net, &card).await, (balance0, 5_000));
    let done = k.completion_of(&pre.request, 3_000).unwrap();
    assert_eq!(answer_code(&mut conn, &done).await, "00");
    assert_eq!(personal_account(&net, &card).await, (balance0 - 3_000, 0));

    // Above the hold: the hold (4,000) is captured, not the 6,000 asked.
    let pre = k.preauthorization(&card, &mut r, 4_000).unwrap();
    assert_eq!(answer_code(&mut conn, &pre.request).await, "00");
    let over = k.completion_of(&pre.request, 6_000).unwrap();
    assert_eq!(answer_code(&mut conn, &over).await, "00", "advices get 00");
    assert_eq!(personal_account(&net, &card).await, (balance0 - 7_000, 0));

    // A completion of nothing known: acknowledged, recorded as a decline, nothing moves.
    let mut unknown = decode(&over).to_owned_message();
    unknown
        .set_str(37, "999999999999")
        .unwrap()
        .set_u64(11, 777_001)
        .unwrap();
    let unknown = k.seal(&mut unknown).unwrap();
    assert_eq!(answer_code(&mut conn, &unknown).await, "00");
    assert_eq!(personal_account(&net, &card).await, (balance0 - 7_000, 0));

    // A hold nobody completes is released when it expires.
    let pre = k.preauthorization(&card, &mut r, 2_500).unwrap();
    assert_eq!(answer_code(&mut conn, &pre.request).await, "00");
    assert_eq!(
        personal_account(&net, &card).await,
        (balance0 - 7_000, 2_500)
    );
    assert_eq!(net.pipeline.release_expired_holds(100).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(net.pipeline.release_expired_holds(100).await.unwrap(), 1);
    assert_eq!(personal_account(&net, &card).await, (balance0 - 7_000, 0));
    // Its late completion finds no pending hold: nothing moves.
    let late = k.completion_of(&pre.request, 2_500).unwrap();
    assert_eq!(answer_code(&mut conn, &late).await, "00");
    assert_eq!(personal_account(&net, &card).await, (balance0 - 7_000, 0));

    let report = net.store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
}
