//! `switch demo`: the whole network on one machine.
//!
//! SQLite under a data folder, the software HSM, six simulated bank issuer hosts on their own
//! ports with the switch's issuer links signed on to them, the acquirer server, the HTTP face,
//! the reversal and advice forwarder and the hold releaser, in-process clearing, and (unless
//! `--no-traffic`) simulated hospital and job-centre kiosks with virtual cards. A line of live
//! figures is printed every two seconds.

use super::kiosk::Kiosk;
use super::world::{clear_keys, DemoWorld, DECIMALISATION_TABLE, DEMO_PIN, JOB_CENTRE_ID};
use crate::acquirer::{self, AcquirerListener};
use crate::banksim::{AccountSeed, BankSim, BankSimData};
use crate::http::{self, HttpState};
use crate::link::issuer::{IssuerConfig, IssuerLinks, LinksOptions};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::store::writer;
use crate::store::{DataKeyPanProtector, SqliteConfig, SqliteStore};
use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use schemas::domain::TerminalId;
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Options of `switch demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Data folder (created; the previous demo database in it is replaced).
    pub data_dir: PathBuf,
    /// Acquirer listener.
    pub listen: SocketAddr,
    /// HTTP listener.
    pub http: SocketAddr,
    /// First port of the six bank hosts.
    pub bank_port_base: u16,
    /// Cards per bank.
    pub cards_per_bank: usize,
    /// Run simulated kiosks.
    pub traffic: bool,
    /// Simulated kiosks.
    pub kiosks: usize,
    /// Stop after this long (`None`: until Ctrl-C).
    pub duration: Option<Duration>,
    /// Keep the data folder's databases from an earlier run (restart after a crash) instead
    /// of starting afresh.
    pub keep_data: bool,
    /// Run without the in-process clearing.
    pub no_clearing: bool,
    /// Use this PostgreSQL database (schema `switch_demo`, recreated) instead of SQLite. The
    /// in-process clearing then stays off (it relays from the SQLite outbox).
    pub postgres_url: Option<String>,
    /// The switch's HSM: `None` is the in-process software HSM; an address is a network HSM
    /// spoken to over payShield host commands (`hsm-sim`, or an HSM loaded with the published
    /// test LMK), the shape of a production node. The simulated banks keep their own software
    /// HSMs either way.
    pub hsm: Option<SocketAddr>,
    /// Group commits under way at once (`None`: the store's default,
    /// [`crate::store::Store::GROUP_COMMITS_IN_FLIGHT`]).
    pub group_commits: Option<usize>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("demo-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8583)),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            bank_port_base: 9101,
            cards_per_bank: 50,
            traffic: true,
            kiosks: 6,
            duration: None,
            keep_data: false,
            postgres_url: None,
            no_clearing: false,
            hsm: None,
            group_commits: None,
        }
    }
}

/// What a demo run answered, by service and response code (field 39).
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// Answers per (service, response code).
    pub responses: std::collections::BTreeMap<(&'static str, String), u64>,
}

impl DemoSummary {
    /// All answers.
    pub fn total(&self) -> u64 {
        self.responses.values().sum()
    }

    /// Answers with response code `code`, all services.
    pub fn with_code(&self, code: &str) -> u64 {
        self.responses
            .iter()
            .filter(|((_, c), _)| c == code)
            .map(|(_, n)| n)
            .sum()
    }

    /// Answers to `service` with response code `code`.
    pub fn of(&self, service: &str, code: &str) -> u64 {
        self.responses
            .iter()
            .filter(|((s, c), _)| *s == service && c == code)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Why the demo stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DemoRunError {
    /// Setting up the world.
    #[error(transparent)]
    World(#[from] super::world::DemoError),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A socket or file.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Something else, described.
    #[error("{0}")]
    Other(String),
}

/// What `switch demo --describe` prints: links, keys (clear, demo only), cards.
pub fn describe(opts: &DemoOptions) -> Result<String, DemoRunError> {
    let world = DemoWorld::new(opts.cards_per_bank.min(3))?;
    let mut s = String::new();
    s.push_str("# switch demo: how to talk to it\n\n");
    s.push_str(&format!(
        "Acquirer link: tcp://{} - ISO 8583 dialect ssc87 (schemas/iso8583/ssc87.md), 2-byte big-endian length header, no TPDU.\n",
        opts.listen
    ));
    s.push_str(&format!(
        "HTTP: http://{}/health /ready /metrics /transactions/{{rrn}} /saf\n\n",
        opts.http
    ));
    s.push_str("DEMO KEYS - printed in clear on purpose; never use outside the demo:\n");
    s.push_str(&format!(
        "  TPK (PIN blocks, ISO 9564 format 0, every acquirer): {}\n",
        clear_keys::TPK
    ));
    s.push_str(&format!(
        "  IMK-AC 3DES (EMV option A): {}\n  IMK-AC SM4 (PBOC 3.0):      {}\n",
        clear_keys::IMK_AC_TDES,
        clear_keys::IMK_AC_SM4
    ));
    s.push_str(&format!(
        "  PVK (IBM 3624 offsets, decimalisation {DECIMALISATION_TABLE}): {}\n",
        clear_keys::PVK
    ));
    s.push_str(&format!("  Every cardholder's PIN: {DEMO_PIN}\n\n"));
    s.push_str("Institutions (field 32):\n");
    for h in &world.hospitals {
        s.push_str(&format!(
            "  {}  hospital level {}, code (62.2) {}  {}\n",
            h.id, h.level, h.code, h.name
        ));
    }
    s.push_str(&format!("  {JOB_CENTRE_ID}  job centre\n"));
    s.push_str("Banks (issuer hosts the switch signs on to):\n");
    for (i, b) in world.banks.iter().enumerate() {
        s.push_str(&format!(
            "  {}  BIN {}  127.0.0.1:{}  ZMK {}  {}\n",
            b.id,
            b.bin,
            opts.bank_port_base + i as u16,
            b.zmk_clear,
            b.name
        ));
    }
    s.push_str(&format!(
        "\nCards: {} per bank, PAN = BIN + 7-digit serial from 0000001 + Luhn digit, PSN 00, expiry 3412.\n",
        opts.cards_per_bank
    ));
    s.push_str("Some cards:\n");
    for c in world.cards.iter().take(6) {
        s.push_str(&format!(
            "  {}  {:?}  insurance {:?}\n",
            c.pan.expose_digits(),
            c.algorithm,
            c.insurance.map(|i| i.as_sql())
        ));
    }
    s.push_str(
        "\nA hospital bill: 0200, field 3 190000, 4 = 62.4, 52 PIN block under the TPK, 55 the card's\n\
         ARQC data (9F26, 9F27, 9F10, 9F36, 9F02, ...), 60 = 01|410100|01, 62 = category|hospital code|bill no|total|items.\n\
         The 0210 carries 39, 38, 55 (tag 91 = ARPC || ARC) and 63 (pooled | personal | bank | bank id | balance).\n",
    );
    Ok(s)
}

/// Runs the demo until Ctrl-C or the duration. Port 0 in `listen`, `http` or
/// `bank_port_base` means any free port (the first status line names the acquirer's and
/// HTTP's).
pub async fn run(opts: DemoOptions) -> Result<DemoSummary, DemoRunError> {
    std::fs::create_dir_all(&opts.data_dir)?;
    if let Some(url) = opts.postgres_url.clone() {
        const SCHEMA: &str = "switch_demo";
        crate::store::PostgresStore::drop_schema(&url, SCHEMA).await?;
        let store = Arc::new(
            crate::store::PostgresStore::connect(
                &crate::store::PostgresConfig {
                    url,
                    schema: Some(SCHEMA.into()),
                    connections_max: 16,
                },
                Arc::new(DataKeyPanProtector::for_tests()),
            )
            .await?,
        );
        let mut world = DemoWorld::new(opts.cards_per_bank)?;
        world.seed(&*store).await?;
        return run_on(opts, store, world, false).await;
    }
    let resume = opts.keep_data && opts.data_dir.join("switch.db").exists();
    for f in [
        "switch.db",
        "switch.db-wal",
        "switch.db-shm",
        "clearing.db",
        "clearing.db-wal",
        "clearing.db-shm",
    ] {
        if !resume {
            let _ = std::fs::remove_file(opts.data_dir.join(f));
        }
    }
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(opts.data_dir.join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await?,
    );
    let mut world = DemoWorld::new(opts.cards_per_bank)?;
    if resume {
        world.resume();
    } else {
        world.seed(&*store).await?;
    }
    let with_clearing = !opts.no_clearing;
    run_on(opts, store, world, with_clearing).await
}

/// Starts the simulated issuer host of the world's bank `i` on `listen` (its own HSM, same
/// test LMK) and returns it with the switch's link configuration to it: keys exchanged at each
/// sign-on, and MACs on (a TAK travels with every ZPK; see [`crate::link::mac`]).
pub async fn start_bank(
    world: &DemoWorld,
    i: usize,
    listen: &str,
) -> Result<(BankSim, IssuerConfig), DemoRunError> {
    let other = |e: &dyn std::fmt::Display| DemoRunError::Other(e.to_string());
    let bank = world.banks.get(i).ok_or_else(|| other(&"no such bank"))?;
    let accounts = world
        .cards
        .iter()
        .filter(|c| c.bank == i)
        .map(|c| AccountSeed {
            pan: c.pan.expose_digits().to_owned(),
            balance_fen: c.bank_balance_fen,
            pin_offset: c.pin_offset.clone(),
        })
        .collect();
    let data = BankSimData {
        institution: bank.id.as_str().to_owned(),
        listen: listen.to_owned(),
        zmk_clear_hex: bank.zmk_clear.clone(),
        zpk_clear_hex: Some(bank.zpk_clear.clone()),
        tak_clear_hex: None,
        mac: true,
        pvk_clear_hex: clear_keys::PVK.to_owned(),
        decimalisation_table: DECIMALISATION_TABLE.to_owned(),
        accounts,
    };
    let bank_hsm = Arc::new(hsm_sim::SoftHsm::with_test_lmk());
    let cfg = data.into_config(&bank_hsm).map_err(|e| other(&e))?;
    let sim = BankSim::start(cfg, bank_hsm).await.map_err(|e| other(&e))?;
    let (zmk, zpk) = world.bank_keys(i)?;
    let mut lc = IssuerConfig::new(bank.id.clone(), sim.addr().to_string(), zmk);
    lc.zpk = Some(zpk);
    lc.mac = true;
    lc.key_exchange_on_sign_on = true;
    Ok((sim, lc))
}

async fn run_on<S: crate::store::Store>(
    opts: DemoOptions,
    store: Arc<S>,
    world: DemoWorld,
    with_clearing: bool,
) -> Result<DemoSummary, DemoRunError> {
    let metrics = Arc::new(Metrics::default());
    // The demo keys are tokens under the test LMK, so any HSM holding that LMK can use them.
    let hsm: Arc<dyn hsm_sim::Hsm> = match opts.hsm {
        None => world.hsm.clone(),
        Some(addr) => Arc::new(hsm_sim::HsmClient::new(hsm_sim::ClientConfig::new(addr))),
    };

    // Six bank hosts, each with its own HSM (same test LMK), and the links to them.
    let mut bank_sims = Vec::new();
    let mut link_configs = Vec::new();
    for i in 0..world.banks.len() {
        let port = match opts.bank_port_base {
            0 => 0,
            base => base.saturating_add(i as u16),
        };
        let listen = format!("127.0.0.1:{port}");
        let (sim, mut lc) = start_bank(&world, i, &listen).await?;
        lc.echo_interval = Duration::from_secs(10);
        link_configs.push(lc);
        bank_sims.push(sim);
    }
    let links = Arc::new(
        IssuerLinks::start(
            link_configs,
            Arc::clone(&hsm),
            LinksOptions::new(world.cfg.switch_id.clone()),
        )
        .map_err(|e| DemoRunError::Other(e.to_string()))?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.banks.iter().any(|b| !links.is_up(&b.id)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut writer_config = writer::config_for::<S>();
    if let Some(n) = opts.group_commits {
        writer_config.commits_in_flight_max = n.max(1);
    }
    let (writer, _writer_task) = writer::spawn(Arc::clone(&store), writer_config);
    let pipeline = Pipeline::new(
        Arc::clone(&store),
        writer.clone(),
        hsm,
        links.clone(),
        world.keys.clone(),
        world.cfg.clone(),
        Arc::clone(&metrics),
    )
    .await?;
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);

    let listener_cfg =
        AcquirerListener::ssc87(opts.listen).map_err(|e| DemoRunError::Other(e.to_string()))?;
    let listener = acquirer::bind(&listener_cfg).await?;
    let acquirer_addr = listener.local_addr()?;
    tokio::spawn(acquirer::serve(
        listener,
        listener_cfg,
        Arc::clone(&pipeline),
        shutdown.clone(),
    ));
    let http_state = Arc::new(HttpState {
        store: Arc::clone(&store),
        writer: writer.clone(),
        metrics: Arc::clone(&metrics),
        links: Some(Arc::clone(&links)),
    });
    let http_listener = tokio::net::TcpListener::bind(opts.http).await?;
    let http_addr = http_listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(http_listener, http::router(http_state)).await;
    });
    let forwarder = crate::app::spawn_forwarder(
        Arc::clone(&store),
        links.clone(),
        world.cfg.switch_id.clone(),
        Arc::clone(&metrics),
        shutdown.clone(),
    )
    .map_err(|e| DemoRunError::Other(e.to_string()))?;
    let clearing = if with_clearing {
        Some(
            clearing::embedded::EmbeddedClearing::start(clearing::embedded::EmbeddedConfig::new(
                opts.data_dir.join("switch.db"),
                opts.data_dir.join("clearing.db"),
                clearing::window::WindowSchedule::EveryMinutes(15),
            ))
            .await
            .map_err(|e| DemoRunError::Other(format!("clearing: {e}")))?,
        )
    } else {
        None
    };
    crate::app::spawn_housekeeping(Arc::clone(&pipeline), shutdown.clone());

    println!(
        "switch demo: acquirer tcp://{}  http://{}  {} banks signed on  {} cards  data in {}",
        acquirer_addr,
        http_addr,
        world.banks.iter().filter(|b| links.is_up(&b.id)).count(),
        world.cards.len(),
        opts.data_dir.display()
    );
    println!("(`switch demo --describe` prints the demo cards, keys and links; Ctrl-C stops)");

    let world = Arc::new(world);
    let sent = Arc::new(AtomicU64::new(0));
    if opts.traffic {
        let cards = Arc::new(DemoCards::new(&world, &*store).await?);
        for k in 0..opts.kiosks {
            let (world, sent, shutdown) = (Arc::clone(&world), Arc::clone(&sent), shutdown.clone());
            let cards = Arc::clone(&cards);
            let addr = acquirer_addr;
            tokio::spawn(async move {
                let stopping = shutdown.clone();
                if let Err(e) = kiosk_loop(k, world, cards, addr, sent, shutdown).await {
                    if !*stopping.borrow() {
                        eprintln!("kiosk {k} stopped: {e}");
                    }
                }
            });
        }
    }

    let started = Instant::now();
    let mut last = (0u64, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let total = metrics.responses_total();
        let rate = (total - last.0) as f64 / last.1.elapsed().as_secs_f64().max(0.001);
        last = (total, Instant::now());
        let mut by_code: std::collections::BTreeMap<String, u64> = Default::default();
        for ((_, code), n) in metrics.responses() {
            *by_code.entry(code).or_default() += n;
        }
        let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{c}:{n}")).collect();
        let forwarded = forwarder.totals();
        let clearing_line = match &clearing {
            None => "clearing: off".to_owned(),
            Some(clearing) => match (clearing.stats().await, clearing.positions().await) {
                (Ok(st), Ok(pos)) => {
                    let fund = pos.net_fen(super::world::INSURANCE_FUND_ID);
                    format!(
                        "clearing: {} events applied, lag {}, fund net {:.2} CNY, sum {}",
                        st.events_applied,
                        st.lag_events,
                        rust_decimal::Decimal::new(fund, 2),
                        pos.sum_fen()
                    )
                }
                _ => "clearing: unavailable".to_owned(),
            },
        };
        println!(
            "[{:>5.0}s] {:>6.0} tps  total {:>7}  codes {}  p50 {}µs p99 {}µs  writer queue {}  reversals queued {} acked {}  advices queued {} acked {}  banks up {}/6  {}",
            started.elapsed().as_secs_f64(),
            rate,
            total,
            codes.join(" "),
            metrics.latency.quantile_us(0.5).unwrap_or(0),
            metrics.latency.quantile_us(0.99).unwrap_or(0),
            writer.queue_depth(),
            metrics.reversals_queued.load(Ordering::Relaxed),
            forwarded.reversals_acknowledged,
            metrics.advices_queued.load(Ordering::Relaxed),
            forwarded.advices_acknowledged,
            world.banks.iter().filter(|b| links.is_up(&b.id)).count(),
            clearing_line,
        );
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    let _ = shutdown_tx.send(true);
    if let Some(clearing) = clearing {
        if let Err(e) = clearing.shutdown().await {
            eprintln!("clearing shutdown: {e}");
        }
    }
    links.shutdown().await;
    for b in &bank_sims {
        b.stop().await;
    }
    Ok(DemoSummary {
        responses: metrics.responses(),
    })
}

/// The demo's cards in the cardholders' hands: one virtual card per demo card, shared by every
/// kiosk and in one reader at a time, so each card's ATC only moves forward (EMV Book 3
/// Annex A) — the switch declines a cryptogram whose ATC it has already seen.
struct DemoCards {
    /// Per card: `None` until first used or while in a reader.
    readers: Mutex<Vec<Option<MemoryChannel>>>,
    /// Per card: in use by a kiosk (or lost with a kiosk that stopped).
    taken: Mutex<Vec<bool>>,
    /// Per card: the highest ATC the store has seen (a resumed demo), where new virtual cards
    /// continue from.
    atc_start: Vec<u16>,
}

impl DemoCards {
    async fn new<S: crate::store::Store>(
        world: &DemoWorld,
        store: &S,
    ) -> Result<Self, DemoRunError> {
        let mut atc_start = Vec::with_capacity(world.cards.len());
        for c in &world.cards {
            let stored = store.card_by_pan(&c.pan).await?;
            atc_start.push(stored.and_then(|s| s.atc_max).unwrap_or(0));
        }
        Ok(Self {
            readers: Mutex::new((0..world.cards.len()).map(|_| None).collect()),
            taken: Mutex::new(vec![false; world.cards.len()]),
            atc_start,
        })
    }

    /// Card `idx` in a reader, or `None` while another kiosk holds it.
    fn take(&self, world: &DemoWorld, idx: usize) -> Result<Option<MemoryChannel>, DemoRunError> {
        {
            let Ok(mut taken) = self.taken.lock() else {
                return Ok(None);
            };
            match taken.get_mut(idx) {
                Some(t) if !*t => *t = true,
                _ => return Ok(None),
            }
        }
        let kept = self
            .readers
            .lock()
            .ok()
            .and_then(|mut r| r.get_mut(idx).and_then(Option::take));
        match kept {
            Some(r) => Ok(Some(r)),
            None => {
                let atc = self.atc_start.get(idx).copied().unwrap_or(0);
                Ok(Some(MemoryChannel::new(
                    world.virtual_card_after(&world.cards[idx], atc)?,
                )))
            }
        }
    }

    /// Gives card `idx` back.
    fn give_back(&self, idx: usize, reader: MemoryChannel) {
        if let Ok(mut r) = self.readers.lock() {
            if let Some(slot) = r.get_mut(idx) {
                *slot = Some(reader);
            }
        }
        if let Ok(mut t) = self.taken.lock() {
            if let Some(slot) = t.get_mut(idx) {
                *slot = false;
            }
        }
    }
}

/// The bank balance a job-centre kiosk's benefit credit brings a card back to (50,000 CNY).
const BENEFIT_TARGET_FEN: i64 = 5_000_000;

/// Below this, a top-up is not worth a credit (100 CNY).
const BENEFIT_MIN_FEN: i64 = 10_000;

/// The kiosk's connection to the switch.
type KioskConn = Framed<TcpStream, FrameCodec>;

/// Sends one request and waits for its answer (the kiosk has one request outstanding).
async fn exchange(
    conn: &mut KioskConn,
    request: Vec<u8>,
    sent: &AtomicU64,
) -> Result<Vec<u8>, DemoRunError> {
    conn.send(Frame {
        tpdu: None,
        message: request.into(),
    })
    .await
    .map_err(|e| DemoRunError::Other(e.to_string()))?;
    let answer = match conn.next().await {
        Some(Ok(f)) => f.message.to_vec(),
        _ => return Err(DemoRunError::Other("switch closed the connection".into())),
    };
    sent.fetch_add(1, Ordering::Relaxed);
    Ok(answer)
}

/// One simulated kiosk, with a cardholder and a card at it on every round.
///
/// Hospital kiosks pay bills (3% first typed with a wrong PIN, then again with the right one,
/// as a cardholder would; 3% of approved bills reversed) and answer a few personal-account
/// balance inquiries of insured cardholders. At the job-centre kiosk (every sixth) the
/// cardholders come in turn, card after card: each asks the bank balance (or sometimes the
/// personal account's) and receives a benefit credit that brings the bank balance back to
/// 50,000 CNY. That credit stands in for the money that reaches cardholders' accounts in real
/// life (wages, pensions, unemployment benefits): the demo puts a city's bills on a few hundred
/// cards, and without it they drain the cards within minutes and the demo shows mostly 51.
async fn kiosk_loop(
    k: usize,
    world: Arc<DemoWorld>,
    cards: Arc<DemoCards>,
    addr: SocketAddr,
    sent: Arc<AtomicU64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), DemoRunError> {
    let hospital = &world.hospitals[k % world.hospitals.len()];
    let job_centre = k % 6 == 5;
    let acquirer = if job_centre {
        schemas::domain::InstitutionId::parse(JOB_CENTRE_ID)
            .map_err(|_| DemoRunError::Other("id".into()))?
    } else {
        hospital.id.clone()
    };
    let tid = TerminalId::parse(&format!("KSK{k:05}"))
        .map_err(|_| DemoRunError::Other("terminal".into()))?;
    let mut kiosk = Kiosk::new(
        tid,
        acquirer,
        (!job_centre).then(|| hospital.code.clone()),
        &format!("{}", k % 10),
    );
    let mut conn = Framed::new(
        TcpStream::connect(addr).await?,
        FrameCodec::new(LengthHeader::Binary2),
    );
    let mut n: u64 = 0;
    while !*shutdown.borrow() {
        n += 1;
        let (idx, roll, bill) = {
            let mut rng = rand::thread_rng();
            let idx = if job_centre {
                (k + n as usize) % world.cards.len()
            } else {
                rng.gen_range(0..world.cards.len())
            };
            (
                idx,
                rng.gen_range(0..100u32),
                rng.gen_range(2_000..400_000u64),
            )
        };
        let card = &world.cards[idx];
        let Some(mut reader) = cards.take(&world, idx)? else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue; // in another kiosk's reader
        };
        let round = if job_centre {
            job_centre_round(&mut kiosk, &mut conn, card, roll, &sent).await
        } else {
            let bill_no = format!("MZ{k}-{n}");
            hospital_round(
                &mut kiosk,
                &mut conn,
                card,
                &mut reader,
                (roll, bill, &bill_no),
                &sent,
            )
            .await
        };
        cards.give_back(idx, reader);
        round?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A cardholder at a job-centre kiosk: a balance inquiry, and after a bank balance inquiry a
/// benefit credit up to [`BENEFIT_TARGET_FEN`].
async fn job_centre_round(
    kiosk: &mut Kiosk,
    conn: &mut KioskConn,
    card: &super::world::DemoCard,
    roll: u32,
    sent: &AtomicU64,
) -> Result<(), DemoRunError> {
    let spec = schemas::iso8583::spec("ssc87").map_err(|e| DemoRunError::Other(e.to_string()))?;
    if roll < 30 && card.insurance.is_some() {
        exchange(conn, kiosk.personal_balance(card)?.0, sent).await?;
        return Ok(());
    }
    let answer = exchange(conn, kiosk.bank_balance(card)?.0, sent).await?;
    let Ok(a) = spec.decode(&answer) else {
        return Ok(());
    };
    if a.get_str(39).map(|c| c == "00").unwrap_or(false) {
        if let Some(balance) = a
            .get_str(54)
            .ok()
            .and_then(|f| super::kiosk::balance_fen(&f))
        {
            let top_up = BENEFIT_TARGET_FEN - balance;
            if top_up >= BENEFIT_MIN_FEN {
                exchange(conn, kiosk.benefit_credit(card, top_up as u64)?.0, sent).await?;
            }
        }
    }
    Ok(())
}

/// A cardholder at a hospital kiosk: a bill (retyping a wrong PIN once), sometimes reversed,
/// or a personal-account balance inquiry. `plan` is (roll 0..100, bill in fen, bill number).
async fn hospital_round(
    kiosk: &mut Kiosk,
    conn: &mut KioskConn,
    card: &super::world::DemoCard,
    reader: &mut MemoryChannel,
    plan: (u32, u64, &str),
    sent: &AtomicU64,
) -> Result<(), DemoRunError> {
    let (roll, bill, bill_no) = plan;
    let spec = schemas::iso8583::spec("ssc87").map_err(|e| DemoRunError::Other(e.to_string()))?;
    if roll < 10 && card.insurance.is_some() {
        exchange(conn, kiosk.personal_balance(card)?.0, sent).await?;
        return Ok(());
    }
    let mut pin = if roll < 13 { "000000" } else { DEMO_PIN };
    loop {
        let p = kiosk.medical_bill(card, reader, bill, bill_no, pin)?;
        let request = p.request.clone();
        let answer = exchange(conn, request.clone(), sent).await?;
        let Ok(a) = spec.decode(&answer) else {
            return Ok(());
        };
        let code = a.get_str(39).map(|c| c.into_owned()).unwrap_or_default();
        let _ = p.complete(reader, &a);
        if code == "55" && pin != DEMO_PIN {
            pin = DEMO_PIN; // the cardholder types it again, correctly
            continue;
        }
        if code == "00" && roll >= 97 {
            exchange(conn, kiosk.reversal_of(&request)?.0, sent).await?;
        }
        return Ok(());
    }
}
