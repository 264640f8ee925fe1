//! Database faults. The store is PostgreSQL on a private cluster made for the test (initdb on
//! a free port; the machine's cluster on 5432 is never touched). Injected under load on banks
//! 0, 1 and 2: the cluster stopped (`pg_ctl stop -m immediate`, as a crash) for 10 s, then
//! started again; the switch process is not restarted. The stop comes while purchases of bank
//! 0 are at the bank (it answers them 2 s late), so the bank approves legs whose decisions the
//! store can no longer record: the switch must answer them `96` and still reverse them.
//!
//! Asserted: every request is answered (no hang, no crash); every answer is `00` (decided and
//! committed) or `96` (the store could not record the decision; never an approval it did not
//! record); at least one `96` while the database was gone; `00` again for every bank once it is
//! back, without a restart; and the books balance: every approval is in the store, each bank
//! holds exactly the approved purchases (a bank leg approved for a request the store could not
//! record is reversed), `verify_integrity` finds nothing.
//!
//! And the node itself dying while the database is down: the reversal it could not store is in
//! its spool on disk, and the next node on the same data directory stores and sends it.

use super::harness::{self, codes, Answered, Options};
use super::pg_server::*;
use card_apdu::channel::memory::MemoryChannel;
use schemas::domain::{Rrn, TerminalId};
use schemas::iso8583;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switch::pipeline::{LinkContext, Reply};
use switch::sim::kiosk::Kiosk;
use switch::sim::world::DemoWorld;
use switch::store::{now_us, spool, DataKeyPanProtector, PostgresConfig, PostgresStore, Store};

const LOADED: [usize; 3] = [0, 1, 2];

pub struct Cluster {
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn create() -> Cluster {
        let dir = tempfile::tempdir().expect("dir");
        chown_to_server_user(dir.path());
        let data = dir.path().join("data");
        let port = free_port();
        run_ok(
            as_server_user(
                &pg_bin("initdb"),
                &[
                    "-D",
                    data.to_str().expect("path"),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                ],
            ),
            "initdb",
        );
        let conf = data.join("postgresql.conf");
        let mut c = std::fs::read_to_string(&conf).expect("conf");
        c.push_str(&format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 40\n",
            dir.path().display()
        ));
        std::fs::write(&conf, c).expect("conf");
        chown_to_server_user(&data);
        let cluster = Cluster {
            data,
            port,
            _dir: dir,
        };
        cluster.start();
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Where the server listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec!["-D", self.data.to_str().expect("path")];
        all.extend_from_slice(args);
        run_ok(as_server_user(&pg_bin("pg_ctl"), &all), "pg_ctl");
    }

    fn start(&self) {
        let log = self.data.join("server.log");
        self.pg_ctl(&["-l", log.to_str().expect("path"), "-w", "-t", "60", "start"]);
    }

    fn stop_immediately(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_server_user(
            &pg_bin("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap_or("."),
                "-m",
                "immediate",
                "stop",
            ],
        )
        .output();
    }
}

// Quarantined 2026-12-07 after one failure in three full runs (bank 1 held 1.00 CNY less than
// the store's approvals for one card): the reversal of a leg approved while PostgreSQL was down
// was resubmitted from memory only, and the books were compared before it was stored. Since
// then such a reversal goes to the node's reversal spool, fsynced, and `drain_store_and_forward`
// waits until the spool is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gone_for_10_s_under_load_is_answered_96_and_the_switch_recovers_without_a_restart(
) {
    let cluster = Cluster::create();
    let mut config = PostgresConfig::new(cluster.url());
    config.schema = Some("faults".into());
    config.connections_max = 6;
    let store = Arc::new(
        PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .expect("store on the private cluster"),
    );
    let net = Arc::new(
        harness::start(
            store,
            Options {
                bank_timeout: Duration::from_secs(5),
                ..Options::default()
            },
        )
        .await,
    );
    let mut all = net.purchases(&LOADED, 2).await;
    assert!(
        all.iter().all(|a| a.code == "00"),
        "healthy: {:?}",
        codes(&all)
    );

    // Load all along: rounds of purchases until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (net, stop) = (Arc::clone(&net), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut answers: Vec<Answered> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                answers.extend(net.purchases(&LOADED, 1).await);
            }
            answers
        })
    };
    // Bank 0 books its legs and answers 2 s later: the database goes away while they are at
    // the bank, so their decisions cannot be recorded after the bank approved them.
    net.banks[0]
        .faults()
        .set_response_delay(Duration::from_secs(2));
    let at_bank = net.banks[0].stats().messages;
    let orphans = {
        let net = Arc::clone(&net);
        tokio::spawn(async move { net.purchases(&[0], 1).await })
    };
    let in_flight = net.world.cards.iter().filter(|c| c.bank == 0).count() as u64;
    for _ in 0..600 {
        if net.banks[0].stats().messages >= at_bank + in_flight {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.stop_immediately();
    let orphans = orphans.await.expect("bank 0's purchases");
    net.banks[0].faults().set_response_delay(Duration::ZERO);
    assert!(
        orphans.iter().all(|a| a.code == "96"),
        "approved by the bank, not recorded: {:?}",
        codes(&orphans)
    );
    all.extend(orphans);
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster.start();
    // Recovery: every bank's cardholders approved again, within 60 s of the restart.
    let mut recovered = false;
    for _ in 0..60 {
        let round = net.purchases(&LOADED, 1).await;
        let ok = round.iter().all(|a| a.code == "00");
        all.extend(round);
        if ok {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let during = load.await.expect("load");
    assert!(
        during.iter().all(|a| a.code == "00" || a.code == "96"),
        "under the outage: {:?}",
        codes(&during)
    );
    assert!(
        during.iter().any(|a| a.code == "96"),
        "the outage was never seen: {:?}",
        codes(&during)
    );
    assert!(
        recovered,
        "no full round approved after the database came back"
    );
    all.extend(during);

    net.drain_store_and_forward().await;
    net.assert_books(&all).await;
    match Arc::try_unwrap(net) {
        Ok(net) => net.stop().await,
        Err(_) => panic!("the network is still shared"),
    }
}

/// A node killed while PostgreSQL is down keeps, in its data directory, the reversal (0420) of a
/// bank leg the bank approved but the store could not record; the next node on the same data
/// directory and database stores it once the database is back, the forwarder sends it, and the
/// bank holds its opening balance again.
///
/// The first node runs on a runtime of its own, shut down while the database is away: every
/// task of it ends there, as in a process killed, and whatever it kept only in memory is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversal_spooled_while_postgres_is_down_outlives_its_node_and_reaches_the_bank() {
    let cluster = Cluster::create();
    let data = tempfile::tempdir().expect("data dir");
    let mut world = DemoWorld::new(1).expect("world");
    world.cfg.bank_timeout = Duration::from_secs(5);
    let checks = connect(&cluster.url()).await;
    world.seed(&*checks).await.expect("seed");
    let world = Arc::new(world);
    let (banks, configs) = harness::start_banks(&world).await;
    let card = world
        .cards
        .iter()
        .find(|c| c.bank == 0)
        .expect("a card")
        .clone();
    let pan = card.pan.expose_digits().to_owned();
    let opening = banks[0].balance_fen(&pan).expect("account");

    // Node A on its own runtime, with its own connection to the database.
    let node_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let side_a = {
        let (world, configs, url) = (Arc::clone(&world), configs.clone(), cluster.url());
        let dir = data.path().to_owned();
        node_a
            .spawn(async move {
                let store = connect(&url).await;
                let hsm = world.hsm.clone();
                harness::start_switch(&world, store, configs, hsm, &dir).await
            })
            .await
            .expect("node a")
    };

    // A purchase the bank approves 2 s late, the database stopped meanwhile.
    let h = &world.hospitals[0];
    let mut kiosk = Kiosk::new(
        TerminalId::parse("FT900001").expect("terminal"),
        h.id.clone(),
        Some(h.code.clone()),
        "901",
    );
    let mut reader = MemoryChannel::new(world.virtual_card(&card).expect("card"));
    let request = kiosk
        .bank_purchase(&card, &mut reader, 100)
        .expect("request")
        .request;
    let rrn = Rrn::parse(&harness::field(&request, 37)).expect("rrn");
    banks[0].faults().set_response_delay(Duration::from_secs(2));
    let answer = {
        let pipeline = Arc::clone(&side_a.pipeline);
        node_a.spawn(async move {
            let spec = iso8583::spec("ssc87").expect("spec");
            pipeline.process(&request, &LinkContext::shared(spec)).await
        })
    };
    // The bank books the leg on receipt and answers 2 s later (counting its messages would
    // count the link's echo tests too).
    for _ in 0..600 {
        if banks[0].balance_fen(&pan) != Some(opening) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.stop_immediately();
    let code = match answer.await.expect("answered") {
        Reply::Send(a) => harness::field(&a, 39),
        other => panic!("answered {other:?}"),
    };
    banks[0].faults().set_response_delay(Duration::ZERO);
    assert_eq!(code, "96", "approved by the bank, not recorded");
    assert_eq!(
        banks[0].balance_fen(&pan),
        Some(opening - 100),
        "the bank booked the leg"
    );
    // On disk before the answer left.
    assert_eq!(side_a.pipeline.reversal_spool().len(), 1);
    let spooled = std::fs::read_to_string(data.path().join(spool::SPOOL_FILE)).expect("spool");
    assert_eq!(spooled.lines().count(), 1);
    assert!(!spooled.contains(&pan), "no clear PAN in the spool");

    // Node A dies with the database still down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(side_a);
    tokio::task::spawn_blocking(move || node_a.shutdown_timeout(Duration::from_secs(5)))
        .await
        .expect("node a stopped");

    // The database comes back; node B starts on the same data directory.
    cluster.start();
    let store_b = connect(&cluster.url()).await;
    let side_b = harness::start_switch(
        &world,
        Arc::clone(&store_b),
        configs,
        world.hsm.clone(),
        data.path(),
    )
    .await;
    // Settled: the spool replayed into the store, the queue acknowledged, and the bank's books
    // back at the opening balance. All three are waited for: the suite once read the first two
    // settled and the bank's balance not yet restored (under a loaded CI-like run; not seen
    // alone), so the end state is what the loop waits on, and a timeout says which part is
    // missing.
    let mut settled = false;
    let mut queued = Ok(0);
    for _ in 0..3000 {
        let later = now_us() + 3_600_000_000;
        queued = checks.due_reversals(later, 10).await.map(|r| r.len());
        if side_b.pipeline.reversal_spool().is_empty()
            && matches!(queued, Ok(0))
            && banks[0].balance_fen(&pan) == Some(opening)
        {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bank = banks[0].stats();
    assert!(
        settled,
        "spool: {} left; reversals due: {queued:?}; the bank saw {} reversal messages and \
         applied {}; its balance {:?} against opening {opening}",
        side_b.pipeline.reversal_spool().len(),
        bank.reversal_messages,
        bank.reversals_applied,
        banks[0].balance_fen(&pan),
    );
    assert_eq!(
        banks[0].balance_fen(&pan),
        Some(opening),
        "the bank holds opening minus approved (nothing approved)"
    );
    let stored = checks.transactions_by_rrn(&rrn).await.expect("store");
    assert!(
        stored
            .iter()
            .any(|t| t.record.response_code.as_str() == "96"),
        "the decline is recorded: {stored:?}"
    );
    let report = checks.verify_integrity().await.expect("verify");
    assert!(report.is_consistent(), "{report}");
    side_b.stop.send_replace(true);
    let _ = side_b.forwarder_task.await;
    for b in &banks {
        b.stop().await;
    }
}

/// A store on the private cluster, schema `faults`.
async fn connect(url: &str) -> Arc<PostgresStore> {
    let mut config = PostgresConfig::new(url.to_owned());
    config.schema = Some("faults".into());
    config.connections_max = 4;
    Arc::new(
        PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .expect("store on the private cluster"),
    )
}
