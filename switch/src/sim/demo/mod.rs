//! `switch demo`: the whole network on one machine.
//!
//! SQLite under a data folder, the software HSM, six simulated bank issuer hosts on their own
//! ports with the switch's issuer links signed on to them, the acquirer server, the HTTP face,
//! the reversal and advice forwarder and the hold releaser, in-process clearing, and (unless
//! `--no-traffic`) simulated hospital and job-centre kiosks with virtual cards. A line of live
//! figures is printed every two seconds.

mod banks;
mod describe;
pub mod operators;
pub mod pki;
mod status;
mod traffic;

pub use banks::{start_bank, start_bank_with};
pub use describe::describe;

use crate::acquirer::AcquirerListener;
use crate::node::{NodeError, NodeParts};
use crate::operator::keys::SecretKey;
use crate::operator::OperatorContext;
use crate::pipeline::PipelineConfig;
use crate::sim::world::DemoWorld;
use crate::store::writer;
use crate::store::{DataKeyPanProtector, SqliteConfig, SqliteStore, Store};
use clearing::embedded::{EmbeddedClearing, EmbeddedConfig};
use clearing::window::WindowSchedule;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Use this PostgreSQL database (schema [`DemoOptions::postgres_schema`], recreated
    /// unless `keep_data`) instead of SQLite. The in-process clearing then stays off (it
    /// relays from the SQLite outbox).
    pub postgres_url: Option<String>,
    /// The PostgreSQL schema of the demo's store.
    pub postgres_schema: String,
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
            postgres_schema: "switch_demo".into(),
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
    World(#[from] crate::sim::world::DemoError),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A socket or file.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The switch node did not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Something else, described.
    #[error("{0}")]
    Other(String),
}

/// Runs the demo until Ctrl-C or the duration. Port 0 in `listen`, `http` or
/// `bank_port_base` means any free port (the first status line names the acquirer's and
/// HTTP's).
pub async fn run(opts: DemoOptions) -> Result<DemoSummary, DemoRunError> {
    std::fs::create_dir_all(&opts.data_dir)?;
    if let Some(url) = opts.postgres_url.clone() {
        // Keeping the data resumes on the schema an earlier run (or a crash) left.
        let resume = opts.keep_data;
        if !resume {
            crate::store::PostgresStore::drop_schema(&url, &opts.postgres_schema).await?;
            // The spool's declines and the journal's bank legs belong to the dropped store.
            for f in [
                crate::store::spool::SPOOL_FILE,
                crate::store::spool::JOURNAL_FILE,
            ] {
                let _ = std::fs::remove_file(opts.data_dir.join(f));
            }
        }
        let store = Arc::new(
            crate::store::PostgresStore::connect(
                &crate::store::PostgresConfig {
                    url,
                    schema: Some(opts.postgres_schema.clone()),
                    connections_max: 16,
                },
                Arc::new(DataKeyPanProtector::for_tests()),
            )
            .await?,
        );
        let mut world = DemoWorld::new(opts.cards_per_bank)?;
        install_demo_audit_key(&*store);
        if resume {
            world.resume();
        } else {
            world.seed(&*store).await?;
            operators::seed_operators(&*store, &SecretKey::for_tests(), &world).await?;
        }
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
        crate::store::spool::SPOOL_FILE,
        crate::store::spool::JOURNAL_FILE,
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
    install_demo_audit_key(&*store);
    if resume {
        world.resume();
    } else {
        world.seed(&*store).await?;
        operators::seed_operators(&*store, &SecretKey::for_tests(), &world).await?;
    }
    let with_clearing = !opts.no_clearing;
    run_on(opts, store, world, with_clearing).await
}

/// The demo's audit MAC key (public, demo only; a node's comes from its HSM).
fn install_demo_audit_key<S: Store>(store: &S) {
    store.install_audit_mac_key(Arc::new(crate::operator::keys::audit_key_for_tests()));
}

/// A demo node started and serving (banks signed on, clearing running), before its kiosks:
/// what [`run`] runs, and what a test drives from outside (the console's browser journeys,
/// `tests/console/`).
pub struct RunningDemo<S: crate::cms::CmsStore> {
    /// The switch node.
    pub node: crate::node::Node<S>,
    /// The world: cards, keys, institutions.
    pub world: Arc<DemoWorld>,
    /// The store.
    pub store: Arc<S>,
    clearing: Option<EmbeddedClearing>,
    bank_sims: Vec<crate::sim::banksim::BankSim>,
    /// Dropped after the sims (fields drop in order): stops their runtime's threads.
    _bank_runtime: banks::BankRuntime,
}

impl<S: crate::cms::CmsStore> RunningDemo<S> {
    /// Where the acquirer listens.
    pub fn acquirer(&self) -> Result<SocketAddr, DemoRunError> {
        self.node
            .acquirer_addrs
            .first()
            .copied()
            .ok_or_else(|| DemoRunError::Other("no acquirer listener".into()))
    }

    /// Where HTTP (the API and the console) listens.
    pub fn http(&self) -> Result<SocketAddr, DemoRunError> {
        self.node
            .http_addr
            .ok_or_else(|| DemoRunError::Other("no HTTP listener".into()))
    }

    /// Starts `kiosks` simulated kiosks, paying and asking until the demo stops.
    pub async fn start_traffic(&self, kiosks: usize) -> Result<(), DemoRunError> {
        traffic::start(
            &self.world,
            &*self.store,
            kiosks,
            self.acquirer()?,
            &self.node.shutdown_signal(),
        )
        .await
    }

    /// Stops the kiosks, clearing, the node and the banks; what the node answered.
    pub async fn stop(self) -> DemoSummary {
        self.node.begin_shutdown();
        if let Some(clearing) = self.clearing {
            if let Err(e) = clearing.shutdown().await {
                eprintln!("clearing shutdown: {e}");
            }
        }
        let metrics = Arc::clone(&self.node.metrics);
        self.node.stop().await;
        for b in &self.bank_sims {
            b.stop().await;
        }
        DemoSummary {
            responses: metrics.responses(),
        }
    }
}

/// Opens and seeds a fresh SQLite demo store under `opts.data_dir` and starts the demo node on
/// it (no kiosks): for tests.
pub async fn start(opts: &DemoOptions) -> Result<RunningDemo<SqliteStore>, DemoRunError> {
    std::fs::create_dir_all(&opts.data_dir)?;
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(opts.data_dir.join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await?,
    );
    let mut world = DemoWorld::new(opts.cards_per_bank)?;
    install_demo_audit_key(&*store);
    world.seed(&*store).await?;
    operators::seed_operators(&*store, &SecretKey::for_tests(), &world).await?;
    start_on(opts, store, world, !opts.no_clearing).await
}

/// Starts the bank hosts, the switch node and the in-process clearing (`with_clearing`) on an
/// opened and seeded `store`.
async fn start_on<S: crate::cms::CmsStore>(
    opts: &DemoOptions,
    store: Arc<S>,
    world: DemoWorld,
    with_clearing: bool,
) -> Result<RunningDemo<S>, DemoRunError> {
    let (bank_runtime, bank_sims, banks) = banks::start_all(&world, opts.bank_port_base).await?;
    let mut writer = writer::config_for::<S>();
    if let Some(n) = opts.group_commits {
        writer.commits_in_flight_max = n.max(1);
    }
    let listener =
        AcquirerListener::ssc87(opts.listen).map_err(|e| DemoRunError::Other(e.to_string()))?;
    // Clearing first, so the node's `/clearing/...` routes answer from its ledger.
    let clearing = if with_clearing {
        Some(start_clearing(&opts.data_dir).await?)
    } else {
        None
    };
    let settlement = clearing.as_ref().map(|c| {
        Arc::new(crate::sim::settlement::InProcessSettlement::new(
            c.ledger().clone(),
        )) as Arc<dyn crate::clearing_link::SettlementSource>
    });
    let node = NodeParts {
        store: Arc::clone(&store),
        hsm: switch_hsm(&world, opts.hsm),
        keys: world.keys.clone(),
        pipeline: PipelineConfig {
            data_dir: Some(opts.data_dir.clone()),
            ..world.cfg.clone()
        },
        writer,
        banks,
        sign_on_wait: crate::node::SIGN_ON_WAIT,
        listeners: vec![listener],
        http: Some(opts.http),
        http_tls: None,
        operator: Arc::new(OperatorContext::for_tests()),
        cms: Some(crate::sim::bureau::demo_cms(&world)?),
        cutover: Some(demo_cutover(&world)),
        clearing: settlement,
    }
    .start()
    .await?;
    Ok(RunningDemo {
        node,
        world: Arc::new(world),
        store,
        clearing,
        bank_sims,
        _bank_runtime: bank_runtime,
    })
}

/// Runs the demo on an opened and seeded `store`: [`start_on`], the kiosks, and the live
/// screen until Ctrl-C or the duration; then stops them in turn.
async fn run_on<S: crate::cms::CmsStore>(
    opts: DemoOptions,
    store: Arc<S>,
    world: DemoWorld,
    with_clearing: bool,
) -> Result<DemoSummary, DemoRunError> {
    let cards = world.cards.len();
    // Before the status line: a SIGTERM once the demo says it listens stops it in order.
    let stop = crate::node::signal::StopSignal::install();
    let demo = start_on(&opts, store, world, with_clearing).await?;
    let (acquirer, http) = (demo.acquirer()?, demo.http()?);
    println!(
        "switch demo: acquirer tcp://{}  http://{}  {} banks signed on  {} cards  data in {}",
        acquirer,
        http,
        demo.node.banks_up(),
        cards,
        opts.data_dir.display()
    );
    println!("operator console: http://{http}/console/ (demo users: `switch demo --describe`)");
    println!("(`switch demo --describe` prints the demo cards, keys and links; Ctrl-C stops)");

    if opts.traffic {
        demo.start_traffic(opts.kiosks).await?;
    }
    status::report_until_stopped(&demo.node, demo.clearing.as_ref(), opts.duration, stop).await;
    Ok(demo.stop().await)
}

/// The demo's bank cut-over: the configured defaults (00:05 China Standard Time), and `POST
/// /cutover` may cut today over too, so a demo shows a cut-over on demand.
fn demo_cutover(world: &DemoWorld) -> crate::issuer::cutover::CutoverConfig {
    let mut c = crate::issuer::cutover::CutoverConfig::new(world.cfg.switch_id.clone());
    c.open_day_allowed = true;
    c
}

/// The switch's HSM: the world's software HSM, or a network HSM at `addr`. The demo keys are
/// tokens under the test LMK, so any HSM holding that LMK can use them.
fn switch_hsm(world: &DemoWorld, addr: Option<SocketAddr>) -> Arc<dyn hsm_sim::Hsm> {
    match addr {
        None => world.hsm.clone(),
        Some(addr) => Arc::new(hsm_sim::HsmClient::new(hsm_sim::ClientConfig::new(addr))),
    }
}

/// The demo's settlement windows: every 15 minutes, aligned to multiples of 15 minutes since
/// the Unix epoch.
pub const DEMO_WINDOWS: WindowSchedule = WindowSchedule::EveryMinutes(15);

/// The in-process clearing, relaying from the demo's SQLite outbox into its own ledger under
/// `data_dir`, with a settlement window every 15 minutes.
async fn start_clearing(data_dir: &Path) -> Result<EmbeddedClearing, DemoRunError> {
    EmbeddedClearing::start(EmbeddedConfig::new(
        data_dir.join("switch.db"),
        data_dir.join("clearing.db"),
        DEMO_WINDOWS,
    ))
    .await
    .map_err(|e| DemoRunError::Other(format!("clearing: {e}")))
}
