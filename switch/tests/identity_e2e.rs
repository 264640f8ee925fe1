//! The job-centre identity session end to end, every part a real one: the `kiosk` binary
//! (card-apdu) reads a virtual card through Debian's pcscd and vsmartcard's vpcd driver, sends
//! the 0100 to the switch's acquirer port, the switch checks the card through an `hsm-sim`
//! server reached over TCP (host commands XG and XI, keys under the test LMK), and the kiosk
//! gives the switch's cryptogram to the card. Then the switch drives the same card itself over
//! card relay v2 served by the `kiosk` binary (`serve-relay`, keyed with the job centre's TAK):
//! an SSSE PIN unblock and an EF06 update, MACed by the network HSM (XU, XR) and read back
//! through pcscd.
//!
//! Only one pcscd can run on a machine (fixed socket /run/pcscd/pcscd.comm, vpcd port 35963):
//! everything is in ONE #[test], and nextest runs this binary in the `pcsc` test group with
//! card-apdu's `pcsc_stack` (`.config/nextest.toml`). The test FAILS when pcscd cannot start
//! or another pcscd already runs; it never skips.
//!
//! The cards, one after another in the one reader (pcscd restarted for each): a genuine card of
//! its cardholder (`00`, the card accepts the switch's cryptogram), the same card once reported
//! lost (`41`), a card whose identification code nobody issued (`14`), and a card personalised
//! with another city's keys, so its INTERNAL AUTHENTICATE answer is not what the HSM expects
//! (`05`). Each decline: the kiosk exits 4 with the code and opens nothing; each session is in
//! the audit log with its code.

#[path = "support/network_hsm.rs"]
mod network_hsm;
use network_hsm::network_hsm;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemas::domain::InstitutionId;
use switch::acquirer::{self, AcquirerListener};
use switch::issuer::gateway::NoBanks;
use switch::metrics::Metrics;
use switch::pipeline::Pipeline;
use switch::sim::world::{clear_keys, DemoCard, DemoWorld, JOB_CENTRE_ID};
use switch::store::{
    writer, CardStatus, DataKeyPanProtector, OperatorStore, SqliteConfig, SqliteStore, Store,
};

const READER: &str = "Virtual PCD 00 00";
const SOCKET: &str = "/run/pcscd/pcscd.comm";
const VPCD: &str = "127.0.0.1:35963";

/// pcscd started by this test, and the virtual card's thread; stopped on drop.
struct PcscStack {
    pcscd: Option<Child>,
    card_stop: Arc<AtomicBool>,
    log: PathBuf,
}

impl PcscStack {
    fn start(dir: &Path, card: card_apdu::vcard::VirtualCard) -> Self {
        let out = Command::new("pgrep").args(["-x", "pcscd"]).output();
        if let Ok(out) = out {
            let pids = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert!(
                pids.is_empty(),
                "another pcscd is running (pid {pids}); this test needs to own pcscd"
            );
        }
        let log = dir.join("pcscd.log");
        let file = std::fs::File::create(&log).expect("log");
        let pcscd = Command::new("pcscd")
            .args(["--foreground", "--info"])
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pcscd (install it with ops/setup.sh): {e}"));
        let stack = PcscStack {
            pcscd: Some(pcscd),
            card_stop: Arc::new(AtomicBool::new(false)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(SOCKET).exists() {
            assert!(
                Instant::now() < deadline,
                "pcscd did not create {SOCKET}:\n{}",
                stack.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let stop = Arc::clone(&stack.card_stop);
        std::thread::spawn(move || {
            let mut card = card;
            card_apdu::vpcd::run_client(VPCD, &mut card, Duration::from_millis(50), &stop);
        });
        card_apdu::channel::pcsc::wait_for_card(Some(READER), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("no card in {READER}: {e}\n{}", stack.logs()));
        stack
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PcscStack {
    fn drop(&mut self) {
        self.card_stop.store(true, Ordering::Relaxed);
        if let Some(mut c) = self.pcscd.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

/// The newest modification time of the files under `dir`.
fn newest_under(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(m) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(m);
            }
        }
    }
    newest
}

/// The `kiosk` binary of card-apdu, beside this test's own executable in the target
/// directory (a workspace run builds it). Built here, with the cargo that runs the tests, when
/// it is missing or older than its sources (card-apdu, hsm-sim, schemas), so a stale binary
/// of an older build never runs.
fn kiosk_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf();
    let kiosk = dir.join("kiosk");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = [
        "card-apdu/src",
        "hsm-sim/src",
        "schemas/src",
        "schemas/iso8583",
    ]
    .iter()
    .map(|d| newest_under(&root.join(d)))
    .max()
    .unwrap_or(std::time::UNIX_EPOCH);
    let fresh = std::fs::metadata(&kiosk)
        .and_then(|m| m.modified())
        .is_ok_and(|built| built >= sources);
    if !fresh {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "card-apdu", "--bin", "kiosk"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo build of the kiosk binary");
        assert!(status.success(), "the kiosk binary did not build");
    }
    assert!(kiosk.exists(), "no kiosk binary at {}", kiosk.display());
    kiosk
}

/// Runs `kiosk --json identity ...` with a hard time limit: (exit code, stdout + stderr).
fn kiosk_identity(
    kiosk: &Path,
    switch: std::net::SocketAddr,
    tak_file: &Path,
    stan: u32,
) -> (i32, String) {
    let mut child = Command::new(kiosk)
        .args(["--json", "--reader", READER, "identity", "--switch"])
        .arg(switch.to_string())
        .args(["--acquirer", JOB_CENTRE_ID, "--terminal", "JC000042"])
        .arg("--tak-file")
        .arg(tak_file)
        .args(["--stan", &stan.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiosk");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kiosk did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("kiosk output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Runs the kiosk binary off the runtime's workers: (exit code, its JSON outcome).
async fn session(
    kiosk: &Path,
    switch: std::net::SocketAddr,
    tak_file: &Path,
    stan: u32,
    stack: &PcscStack,
) -> (i32, serde_json::Value) {
    let (kiosk, tak) = (kiosk.to_path_buf(), tak_file.to_path_buf());
    let (code, out) =
        tokio::task::spawn_blocking(move || kiosk_identity(&kiosk, switch, &tak, stan))
            .await
            .expect("kiosk task");
    let outcome = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{e}: kiosk:\n{out}\npcscd:\n{}", stack.logs()));
    (code, outcome)
}

/// A decline: the kiosk exits 4 with `expected` and the card never authenticated the switch.
fn assert_declined((code, outcome): (i32, serde_json::Value), expected: &str) {
    assert_eq!(
        (code, outcome["response_code"].as_str()),
        (4, Some(expected)),
        "{outcome}"
    );
    assert_eq!(outcome["backend_authenticated"], false, "{outcome}");
}

fn sm4_card(world: &DemoWorld) -> DemoCard {
    world
        .cards
        .iter()
        .find(|c| c.algorithm == switch::store::IccAlgorithm::Sm4)
        .expect("an SM4 card")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_binary_opens_an_identity_session_through_pcscd_the_switch_and_a_network_hsm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store"),
    );
    store.install_audit_mac_key(Arc::new(switch::operator::keys::audit_key_for_tests()));
    let mut world = DemoWorld::new(1).expect("world");
    world.seed(&*store).await.expect("seed");
    let (w, _writer) = writer::spawn(Arc::clone(&store), writer::WriterConfig::default());
    let pipeline = Pipeline::new(
        Arc::clone(&store),
        w,
        network_hsm().await,
        Arc::new(NoBanks),
        world.keys.clone(),
        world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .expect("pipeline");
    let cfg = AcquirerListener::ssc87("127.0.0.1:0".parse().expect("addr")).expect("listener");
    let listener = acquirer::bind(&cfg).await.expect("bind");
    let switch_addr = listener.local_addr().expect("addr");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(acquirer::serve(
        listener,
        cfg,
        Arc::clone(&pipeline),
        stopped,
    ));

    let job_centre = InstitutionId::parse(JOB_CENTRE_ID).expect("id");
    let tak_file = dir.path().join("kiosk.tak");
    std::fs::write(
        &tak_file,
        hex::encode_upper(clear_keys::acquirer_tak(&job_centre)),
    )
    .expect("tak file");
    let card = sm4_card(&world);
    let kiosk = kiosk_binary();
    let stack = PcscStack::start(dir.path(), world.virtual_card(&card).expect("card"));

    // A genuine card of its cardholder: the session opens, the card accepts the switch.
    let (code, outcome) = session(&kiosk, switch_addr, &tak_file, 1, &stack).await;
    assert_eq!(code, 0, "{outcome}\npcscd:\n{}", stack.logs());
    assert_eq!(outcome["response_code"], "00");
    assert_eq!(outcome["backend_authenticated"], true);
    assert_eq!(
        outcome["card_identification_code"],
        card.card_identification_code.as_str()
    );

    // The switch drives the card itself: the kiosk binary serves it over card relay v2.
    let relay_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        probe.local_addr().expect("addr").port()
    };
    let mut agent = Command::new(&kiosk)
        .args([
            "--reader",
            READER,
            "--relay-terminal",
            "JC000042",
            "--relay-key-file",
        ])
        .arg(&tak_file)
        .args([
            "serve-relay",
            "--listen",
            &format!("127.0.0.1:{relay_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiosk serve-relay");
    {
        use std::io::BufRead;
        let stderr = agent.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(
            first.contains("relaying the card"),
            "kiosk serve-relay: {first}"
        );
        // Keep reading so the agent never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
    }
    let card_id = store
        .card_by_pan(&card.pan)
        .await
        .expect("card")
        .expect("card")
        .card_id;
    let relay = switch::cms::card_relay::CardRelay::new(
        network_hsm().await,
        &world.keys,
        vec![switch::cms::card_relay::RelayKiosk {
            terminal: "JC000042".into(),
            institution: job_centre.clone(),
            address: format!("127.0.0.1:{relay_port}"),
        }],
    );
    let clerk = switch::cms::Actor {
        operator: "clerk-7".into(),
        institution: job_centre.clone(),
        source: "127.0.0.1".into(),
        reason: "PIN forgotten".into(),
    };
    let new_pin = hsm_sim::card_crypto::ClearPin::new("246810").expect("pin");
    let unblocked = relay
        .run(
            &*store,
            &clerk,
            card_id,
            "JC000042",
            switch::cms::card_relay::RelayAction::PinUnblock(new_pin),
        )
        .await;
    assert_eq!(
        unblocked.expect("the PIN unblocked through pcscd"),
        switch::cms::card_relay::RelayDone::PinUnblocked { tries_left: 3 }
    );
    let updated = relay
        .run(
            &*store,
            &clerk,
            card_id,
            "JC000042",
            switch::cms::card_relay::RelayAction::UpdateEf06 {
                record: 0x0A,
                value: b"2".to_vec(),
            },
        )
        .await;
    assert_eq!(
        updated.expect("EF06 record 0A rewritten through pcscd"),
        switch::cms::card_relay::RelayDone::RecordUpdated { record: 0x0A }
    );
    let _ = Command::new("kill").arg(agent.id().to_string()).status();
    let _ = agent.wait();

    // The same card once reported lost: declined 41, and the kiosk opens nothing.
    let record = store
        .card_by_pan(&card.pan)
        .await
        .expect("card")
        .expect("card");
    store
        .set_card_status(record.card_id, CardStatus::Lost, Some("reported lost"), 1)
        .await
        .expect("status");
    assert_declined(
        session(&kiosk, switch_addr, &tak_file, 2, &stack).await,
        "41",
    );
    drop(stack);

    // A card whose identification code (EF05, field 120) nobody issued: 14.
    let mut unissued = sm4_card(&world);
    unissued.card_identification_code = "410100D1560000059999999999999999".into();
    let stack = PcscStack::start(dir.path(), world.virtual_card(&unissued).expect("card"));
    assert_declined(
        session(&kiosk, switch_addr, &tak_file, 3, &stack).await,
        "14",
    );
    drop(stack);

    // Another card of the switch's records, personalised with another city's keys (410300
    // instead of the 410100 its identification code names): its answer to the session
    // challenge is not the one the HSM computes with the card's dispersed key. 05.
    let other = world
        .cards
        .iter()
        .find(|c| c.algorithm == switch::store::IccAlgorithm::Sm4 && c.pan != card.pan)
        .expect("a second SM4 card")
        .clone();
    let mut perso = world.perso_file(&other, 0).expect("perso file");
    perso.ssse.city_code = "410300".into();
    let forged = card_apdu::vcard::VirtualCard::new(
        card_apdu::perso::CardProfile::from_perso(&perso).expect("profile"),
    );
    let stack = PcscStack::start(dir.path(), forged);
    assert_declined(
        session(&kiosk, switch_addr, &tak_file, 4, &stack).await,
        "05",
    );
    drop(stack);
    // Nor does the switch drive a lost card: refused before any kiosk is dialled.
    let refused = relay
        .run(
            &*store,
            &clerk,
            card_id,
            "JC000042",
            switch::cms::card_relay::RelayAction::PinUnblock(
                hsm_sim::card_crypto::ClearPin::new("135790").expect("pin"),
            ),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(switch::cms::card_relay::CardRelayError::CardNotUsable(_))
        ),
        "{refused:?}"
    );
    let relayed: Vec<String> = store
        .audit_page(0, 1_000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|r| r.entry.action.starts_with("card.relay."))
        .map(|r| format!("{} {}", r.entry.action, r.entry.detail))
        .collect();
    assert_eq!(relayed.len(), 3, "{relayed:?}");
    assert!(
        relayed[0].starts_with("card.relay.pin_unblock")
            && relayed[0].contains("\"outcome\":\"done\"")
    );
    assert!(
        relayed[1].starts_with("card.relay.ef06_update")
            && relayed[1].contains("\"outcome\":\"done\"")
    );
    assert!(relayed[2].contains("reported lost"), "{relayed:?}");

    let audited: Vec<String> = store
        .audit_page(0, 1_000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|r| r.entry.action == "identity.session")
        .map(|r| r.entry.detail)
        .collect();
    assert_eq!(audited.len(), 4, "{audited:?}");
    for (detail, code) in audited.iter().zip(["00", "41", "14", "05"]) {
        assert!(
            detail.contains(&format!("\"response_code\":\"{code}\"")),
            "{code}: {audited:?}"
        );
    }
}
