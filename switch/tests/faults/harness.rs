//! The network the fault tests break: a store, the demo world's banks (simulated issuer hosts
//! with their fault knobs), the switch's issuer links to them, the pipeline, the reversal
//! forwarder running, and load from kiosks, one per card, all at once. After the fault, the
//! books are checked: every approval a kiosk received is an approved transaction in the store,
//! each bank holds exactly the purchases the switch approved (every debit it made for a request
//! the switch declined was reversed), and `verify_integrity` finds nothing.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use card_apdu::channel::memory::MemoryChannel;
use hsm_sim::Hsm;
use schemas::domain::{Rrn, TerminalId};
use schemas::iso8583;
use switch::issuer::forwarder::{Forwarder, ForwarderConfig};
use switch::issuer::{IssuerConfig, IssuerLinks, LinkState, LinksOptions};
use switch::metrics::Metrics;
use switch::pipeline::{LinkContext, Pipeline, Reply};
use switch::sim::banksim::BankSim;
use switch::sim::demo::start_bank;
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld};
use switch::store::{now_us, writer, Store, TransactionKind};
use tokio::sync::watch;

/// How the network is built.
pub struct Options {
    /// How long the pipeline waits for a bank's answer.
    pub bank_timeout: Duration,
    /// The pipeline's HSM (the world's software HSM when `None`); the links keep the world's.
    pub pipeline_hsm: Option<Arc<dyn Hsm>>,
    /// Cards per bank in the demo world.
    pub cards_per_bank: usize,
    /// The node's data directory (its reversal spool); `None`: a fresh one, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// The pipeline's wall clock (the system's; `clock.rs` makes it jump).
    pub clock: switch::clock::Clock,
    /// Changes to the demo world's pipeline configuration (limits, windows).
    pub configure: fn(&mut switch::pipeline::PipelineConfig),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bank_timeout: Duration::from_secs(2),
            pipeline_hsm: None,
            cards_per_bank: 2,
            data_dir: None,
            clock: switch::clock::Clock::system(),
            configure: |_| {},
        }
    }
}

/// The network.
pub struct Net<S: Store> {
    pub world: DemoWorld,
    pub store: Arc<S>,
    pub banks: Vec<BankSim>,
    pub links: Arc<IssuerLinks>,
    pub pipeline: Arc<Pipeline<S>>,
    pub forwarder: Arc<Forwarder<S, IssuerLinks>>,
    /// Each card's bank balance at the start, by PAN.
    pub opening: HashMap<String, i64>,
    stop: watch::Sender<bool>,
    forwarder_task: tokio::task::JoinHandle<()>,
    /// The data directory made for this network, if it was not given.
    _data_dir: Option<tempfile::TempDir>,
    /// One kiosk and one card reader per card, kept across rounds (STANs and ATCs move on).
    lanes: Vec<Arc<tokio::sync::Mutex<Lane>>>,
}

/// One card at its own kiosk.
pub struct Lane {
    card: DemoCard,
    kiosk: Kiosk,
    reader: MemoryChannel,
    /// Reversals owed for requests the switch left unanswered.
    reversals: Vec<Vec<u8>>,
    /// The last request sent, for a retransmission.
    last: Option<Vec<u8>>,
}

/// The code recorded for a request the switch closed the connection on.
pub const UNANSWERED: &str = "unanswered";

/// One answered request.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The card's bank (index in the world).
    pub bank: usize,
    pub pan: String,
    pub rrn: String,
    pub amount_fen: u64,
    /// Field 39.
    pub code: String,
}

/// Forwarder settings for tests: quick polls and retries.
pub fn forwarder_config() -> ForwarderConfig {
    let mut c = ForwarderConfig::new(switch::sim::testkit::inst("9999"));
    c.poll_interval = Duration::from_millis(20);
    c.response_timeout = Duration::from_millis(300);
    c.retry_backoff_min = Duration::from_millis(20);
    c.retry_backoff_max = Duration::from_millis(200);
    c
}

/// Seeds `store` with a demo world, starts its banks, links, pipeline and forwarder.
pub async fn start<S: switch::cms::CmsStore>(store: Arc<S>, o: Options) -> Net<S> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut world = DemoWorld::new(o.cards_per_bank).expect("world");
    world.seed(&*store).await.expect("seed");
    world.cfg.bank_timeout = o.bank_timeout;
    world.cfg.clock = o.clock;
    (o.configure)(&mut world.cfg);
    let (banks, configs) = start_banks(&world).await;
    let hsm = o.pipeline_hsm.unwrap_or_else(|| world.hsm.clone());
    let (data_dir, made) = match o.data_dir {
        Some(dir) => (dir, None),
        None => {
            let made = tempfile::tempdir().expect("data dir");
            (made.path().to_owned(), Some(made))
        }
    };
    let SwitchSide {
        links,
        pipeline,
        forwarder,
        stop,
        forwarder_task,
    } = start_switch(&world, Arc::clone(&store), configs, hsm, &data_dir).await;
    let opening = opening_balances(&world, &banks);
    let mut lanes = Vec::new();
    let h = &world.hospitals[0];
    for (i, card) in world.cards.iter().enumerate() {
        let kiosk = Kiosk::new(
            TerminalId::parse(&format!("FT{i:06}")).expect("terminal"),
            h.id.clone(),
            Some(h.code.clone()),
            &format!("{i:03}"),
        );
        let reader = MemoryChannel::new(world.virtual_card(card).expect("card"));
        lanes.push(Arc::new(tokio::sync::Mutex::new(Lane {
            card: card.clone(),
            kiosk,
            reader,
            reversals: Vec::new(),
            last: None,
        })));
    }
    Net {
        world,
        store,
        banks,
        links,
        pipeline,
        forwarder,
        opening,
        stop,
        forwarder_task,
        _data_dir: made,
        lanes,
    }
}

/// Each card's balance at its bank now, by PAN (what [`assert_books_of`] counts from).
pub fn opening_balances(world: &DemoWorld, banks: &[BankSim]) -> HashMap<String, i64> {
    world
        .cards
        .iter()
        .map(|card| {
            let pan = card.pan.expose_digits().to_owned();
            let balance = banks[card.bank].balance_fen(&pan).expect("bank account");
            (pan, balance)
        })
        .collect()
}

/// The world's bank hosts, and the switch's link configurations to them (quick reconnects).
pub async fn start_banks(world: &DemoWorld) -> (Vec<BankSim>, Vec<IssuerConfig>) {
    let mut banks = Vec::new();
    let mut configs = Vec::new();
    for i in 0..world.banks.len() {
        let (sim, mut config) = start_bank(world, i, "127.0.0.1:0").await.expect("bank");
        config.reconnect_backoff_max = Duration::from_millis(200);
        config.network_timeout = Duration::from_millis(500);
        banks.push(sim);
        configs.push(config);
    }
    (banks, configs)
}

/// The switch's side of the network: its issuer links, writer, pipeline and forwarder.
pub struct SwitchSide<S: Store> {
    pub links: Arc<IssuerLinks>,
    pub pipeline: Arc<Pipeline<S>>,
    pub forwarder: Arc<Forwarder<S, IssuerLinks>>,
    pub stop: watch::Sender<bool>,
    pub forwarder_task: tokio::task::JoinHandle<()>,
}

/// Starts the switch's side on `store` (seeded with `world`): links to the banks of `configs`
/// (signed on before it returns), the writer, the pipeline (its reversal spool in `data_dir`,
/// replayed from what it holds) and the forwarder, all on the current runtime.
pub async fn start_switch<S: switch::cms::CmsStore>(
    world: &DemoWorld,
    store: Arc<S>,
    configs: Vec<IssuerConfig>,
    hsm: Arc<dyn Hsm>,
    data_dir: &Path,
) -> SwitchSide<S> {
    let links_hsm: Arc<dyn Hsm> = world.hsm.clone();
    let links = Arc::new(
        IssuerLinks::start(
            configs,
            links_hsm,
            LinksOptions::new(world.cfg.switch_id.clone()),
        )
        .expect("links"),
    );
    for b in &world.banks {
        wait_link(&links, &b.id, LinkState::SignedOn).await;
    }
    let (w, _task) = writer::spawn(Arc::clone(&store), writer::WriterConfig::default());
    let mut cfg = world.cfg.clone();
    cfg.data_dir = Some(data_dir.to_owned());
    let pipeline = Pipeline::new(
        Arc::clone(&store),
        w,
        hsm,
        links.clone(),
        world.keys.clone(),
        cfg,
        Arc::new(Metrics::default()),
    )
    .await
    .expect("pipeline");
    let forwarder = Arc::new(
        Forwarder::new(Arc::clone(&store), Arc::clone(&links), forwarder_config())
            .expect("forwarder"),
    );
    let (stop, rx) = watch::channel(false);
    let forwarder_task = {
        let f = Arc::clone(&forwarder);
        tokio::spawn(async move { f.run(rx).await })
    };
    SwitchSide {
        links,
        pipeline,
        forwarder,
        stop,
        forwarder_task,
    }
}

/// Waits (at most 30 s) for `bank`'s link to reach `want`.
pub async fn wait_link(
    links: &IssuerLinks,
    bank: &schemas::domain::InstitutionId,
    want: LinkState,
) {
    let mut rx = links.watch_state(bank).expect("bank");
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| *s == want))
        .await
        .unwrap_or_else(|_| panic!("link to {bank} never reached {want:?}"))
        .expect("state");
}

/// Field `f` of an answer.
pub fn field(answer: &[u8], f: u16) -> String {
    let spec = iso8583::spec("ssc87").expect("spec");
    spec.decode_unchecked(answer)
        .expect("answer decodes")
        .get_str(f)
        .map(|s| s.into_owned())
        .unwrap_or_default()
}

impl<S: Store> Net<S> {
    /// The world's index of the bank with institution id `id`.
    pub fn bank_index(&self, id: &schemas::domain::InstitutionId) -> usize {
        self.world
            .banks
            .iter()
            .position(|b| &b.id == id)
            .expect("a bank of the world")
    }

    /// `rounds` bank purchases on every card of `banks`, the cards all at once (each card's
    /// purchases one after another). Every request is answered within 30 s (no hang) or the
    /// test fails.
    pub async fn purchases(&self, banks: &[usize], rounds: usize) -> Vec<Answered> {
        let mut set = tokio::task::JoinSet::new();
        // The lanes are the world's cards, in order: a lane is picked without locking it, so
        // purchases on other banks' cards under way do not hold this call up.
        for (lane, card) in self.lanes.iter().zip(&self.world.cards) {
            if !banks.contains(&card.bank) {
                continue;
            }
            let lane = Arc::clone(lane);
            let pipeline = Arc::clone(&self.pipeline);
            set.spawn(async move {
                let mut out = Vec::new();
                let mut lane_reversals = Vec::new();
                let mut lane_last = None;
                let mut lane = lane.lock().await;
                for r in 0..rounds {
                    let amount_fen = 100 + 37 * (r as u64 % 20);
                    let Lane {
                        card,
                        kiosk,
                        reader,
                        ..
                    } = &mut *lane;
                    let request = kiosk
                        .bank_purchase(card, reader, amount_fen)
                        .expect("request")
                        .request;
                    lane_last = Some(request.clone());
                    let spec = iso8583::spec("ssc87").expect("spec");
                    let context = LinkContext::shared(spec);
                    let reply = tokio::time::timeout(
                        Duration::from_secs(30),
                        pipeline.process(&request, &context),
                    )
                    .await
                    .expect("the switch answers (no hang)");
                    let code = match reply {
                        Reply::Send(answer) => field(&answer, 39),
                        // Closed unanswered (an approval the switch could not MAC): the kiosk
                        // reverses it, as an acquirer does with a request left unanswered.
                        Reply::Close => {
                            let (reversal, _) = kiosk.reversal_of(&request).expect("reversal");
                            lane_reversals.push(reversal);
                            UNANSWERED.to_owned()
                        }
                        Reply::Nothing => panic!("a purchase is answered"),
                    };
                    out.push(Answered {
                        bank: card.bank,
                        pan: card.pan.expose_digits().to_owned(),
                        rrn: field(&request, 37),
                        amount_fen,
                        code,
                    });
                }
                lane.reversals.extend(lane_reversals);
                if lane_last.is_some() {
                    lane.last = lane_last;
                }
                out
            });
        }
        let mut all = Vec::new();
        while let Some(r) = set.join_next().await {
            all.extend(r.expect("lane"));
        }
        all
    }

    /// Sends again, unchanged, the last request of every card of `bank` (a terminal that lost
    /// the answer): field 39 of each answer.
    pub async fn retransmit_last(&self, bank: usize) -> Vec<String> {
        let spec = iso8583::spec("ssc87").expect("spec");
        let context = LinkContext::shared(spec);
        let mut codes = Vec::new();
        for lane in &self.lanes {
            let lane = lane.lock().await;
            let (true, Some(request)) = (lane.card.bank == bank, lane.last.clone()) else {
                continue;
            };
            if let Reply::Send(a) = self.pipeline.process(&request, &context).await {
                codes.push(field(&a, 39));
            }
        }
        codes
    }

    /// Sends the reversals the kiosks owe for requests left unanswered, each until the switch
    /// answers it `00` (or `25`: it never decided the original), at most 20 tries.
    pub async fn settle_unanswered(&self) {
        let spec = iso8583::spec("ssc87").expect("spec");
        let context = LinkContext::shared(spec);
        for lane in &self.lanes {
            let reversals = std::mem::take(&mut lane.lock().await.reversals);
            for reversal in reversals {
                let mut last = String::new();
                for _ in 0..20 {
                    if let Reply::Send(a) = self.pipeline.process(&reversal, &context).await {
                        last = field(&a, 39);
                        if last == "00" || last == "25" {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert!(last == "00" || last == "25", "reversal answered {last:?}");
            }
        }
    }

    /// Waits (at most 60 s) until the node's reversal spool is empty (the store took every
    /// decline and reversal it kept while the database was away) and every queued reversal and
    /// advice has been acknowledged.
    pub async fn drain_store_and_forward(&self) {
        for _ in 0..3000 {
            if !self.pipeline.reversal_spool().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let later = now_us() + 3_600_000_000;
            let reversals = self.store.due_reversals(later, 10).await.expect("due");
            let advices = self.store.due_advices(later, 10).await.expect("due");
            if reversals.is_empty() && advices.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "spooled reversals never stored ({} left), or queued reversals or advices never acknowledged",
            self.pipeline.reversal_spool().len()
        );
    }

    /// Reversals still queued.
    pub async fn reversals_queued(&self) -> usize {
        let later = now_us() + 3_600_000_000;
        self.store
            .due_reversals(later, 100_000)
            .await
            .expect("due")
            .len()
    }

    /// Advices (stand-in approvals) still queued.
    pub async fn advices_queued(&self) -> usize {
        let later = now_us() + 3_600_000_000;
        self.store
            .due_advices(later, 100_000)
            .await
            .expect("due")
            .len()
    }

    /// The books after the fault ([`assert_books_of`]).
    pub async fn assert_books(&self, answers: &[Answered]) {
        assert_books_of(
            &*self.store,
            &self.world,
            &self.banks,
            &self.opening,
            answers,
        )
        .await;
    }

    /// Stops the forwarder and the banks.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.forwarder_task.await;
        for b in &self.banks {
            b.stop().await;
        }
    }
}

/// How many answers per code, for messages.
pub fn codes(answers: &[Answered]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in answers {
        *m.entry(a.code.clone()).or_default() += 1;
    }
    m
}

/// A TCP proxy in front of several servers that sends new connections to the selected one;
/// selecting another cuts every open connection, so clients reconnect to it (a network HSM
/// failing over, or its service changing under load).
pub struct SwitchProxy {
    pub addr: std::net::SocketAddr,
    target: Arc<std::sync::atomic::AtomicUsize>,
    cut: tokio::sync::broadcast::Sender<()>,
}

impl SwitchProxy {
    pub async fn start(upstreams: Vec<std::net::SocketAddr>) -> SwitchProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let target = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (cut, _) = tokio::sync::broadcast::channel(4);
        let t = Arc::clone(&target);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstreams[t.load(Ordering::SeqCst)];
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        SwitchProxy { addr, target, cut }
    }

    /// Sends new connections to upstream `i` and cuts the open ones.
    pub fn select(&self, i: usize) {
        self.target.store(i, std::sync::atomic::Ordering::SeqCst);
        let _ = self.cut.send(());
    }
}

/// The books after a fault: every approval is in the store, each bank holds exactly the
/// approved purchases (its balances at `opening` less them), the store's invariants hold. An
/// approval the kiosk was not told of (left unanswered, or answered a decline while its commit
/// outcome was unknown) must be reversed in the store, and its bank leg then counts for nothing.
pub async fn assert_books_of<S: Store>(
    store: &S,
    world: &DemoWorld,
    banks: &[BankSim],
    opening: &HashMap<String, i64>,
    answers: &[Answered],
) {
    let mut approved_fen: HashMap<&str, i64> = HashMap::new();
    for a in answers {
        let rrn = Rrn::parse(&a.rrn).expect("rrn");
        let stored = store.transactions_by_rrn(&rrn).await.expect("store");
        let Some(original) = stored
            .iter()
            .find(|t| t.record.original_transaction_id.is_none())
        else {
            // Refused before a decision (MAC or HSM failure at the door): nothing recorded,
            // which only an approval may not be.
            assert_ne!(a.code, "00", "approval {} is not in the store", a.rrn);
            continue;
        };
        if a.code == UNANSWERED {
            // Reversed by the kiosk: if it was approved, its reversal is approved too.
            if original.record.is_approved() {
                assert!(
                    stored
                        .iter()
                        .any(|t| t.record.original_transaction_id.is_some()
                            && t.record.is_approved()),
                    "unanswered approval {} was never reversed",
                    a.rrn
                );
            }
            continue;
        }
        if a.code != "00" && original.record.is_approved() {
            // Answered a decline while its approval's commit outcome was unknown (the
            // connection died during COMMIT), and the approval had committed: the switch
            // reversed it, as the kiosk reverses an approval left unanswered.
            assert!(
                stored
                    .iter()
                    .any(|t| t.record.kind == TransactionKind::Reversal
                        && t.record.is_approved()
                        && t.record.original_transaction_id
                            == Some(original.record.transaction_id)),
                "approval {} answered {} was never reversed",
                a.rrn,
                a.code
            );
            continue;
        }
        assert_eq!(
            original.record.response_code.as_str(),
            a.code,
            "the store disagrees with the answer the kiosk got for {}",
            a.rrn
        );
        if a.code == "00" {
            *approved_fen.entry(&a.pan).or_default() += a.amount_fen as i64;
        }
    }
    for card in &world.cards {
        let pan = card.pan.expose_digits();
        let opening = opening[pan];
        let approved = approved_fen.get(pan).copied().unwrap_or(0);
        assert_eq!(
            banks[card.bank].balance_fen(pan),
            Some(opening - approved),
            "bank {} holds other money than the approved purchases for card {}",
            card.bank,
            card.pan
        );
    }
    let report = store.verify_integrity().await.expect("verify");
    assert!(report.is_consistent(), "{report}");
}

/// A store on a private cluster reached through a test proxy listening on `port` (schema
/// `faults`, 4 connections), in plain text so the proxy can read the protocol.
pub async fn store_through_proxy(port: u16) -> Arc<switch::store::PostgresStore> {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let mut config = switch::store::PostgresConfig::new(url);
    config.schema = Some("faults".into());
    config.connections_max = 4;
    let pan = Arc::new(switch::store::DataKeyPanProtector::for_tests());
    Arc::new(
        switch::store::PostgresStore::connect(&config, pan)
            .await
            .expect("store behind the proxy"),
    )
}
