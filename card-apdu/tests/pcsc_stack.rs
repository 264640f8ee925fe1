//! The real PC/SC stack: Debian pcscd + vsmartcard's vpcd driver + our `vcard`, driven through
//! the `pcsc` crate, `scriptor` and `pcsc_scan` (pcsc-tools) and the `kiosk` binary.
//!
//! Only one pcscd can run on a machine (fixed socket /run/pcscd/pcscd.comm), so every PC/SC
//! check lives in this one test binary and runs in ONE #[test], in order (nextest also puts the
//! binary in the `pcsc` test group, see .config/nextest.toml). The test FAILS when pcscd cannot
//! start or another pcscd already runs; it never skips. Timings are printed, not asserted (speed
//! is measured in benches/).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use card_apdu::apdu::Command as Apdu;
use card_apdu::channel::pcsc::{self, CardEvent, PcscChannel, PcscMonitor};
use card_apdu::channel::{CardChannel, ChannelError};
use card_apdu::kiosk::pboc::{complete_payment, start_payment, PaymentRequest, Terminal};
use card_apdu::kiosk::ssse::SsseCard;
use card_apdu::sw::StatusWord;
use hsm_sim::card_crypto::ClearPin;

const READER: &str = "Virtual PCD 00 00";
const ATR_SPACED: &str = "3B 8A 80 01 53 53 43 33 2E 30 50 42 4F 43 7B";
const SOCKET: &str = "/run/pcscd/pcscd.comm";

/// pcscd and vcard started by this test; killed (by their own handles) on drop.
struct Stack {
    pcscd: Option<Child>,
    vcard: Option<Child>,
    dir: tempfile::TempDir,
}

fn pid_alive(name: &str) -> Option<String> {
    let out = Command::new("pgrep").args(["-x", name]).output().ok()?;
    let pids = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!pids.is_empty()).then_some(pids)
}

impl Stack {
    fn start() -> Self {
        if let Some(pids) = pid_alive("pcscd") {
            panic!("another pcscd is running (pid {pids}); the PC/SC tests need to own pcscd — stop it and rerun");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut stack = Stack {
            pcscd: None,
            vcard: None,
            dir,
        };
        stack.start_pcscd();
        stack.start_vcard();
        pcsc::wait_for_card(Some(READER), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("no card in {READER}: {e}\n{}", stack.logs()));
        stack
    }

    fn start_pcscd(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("pcscd.log")).expect("log");
        let child = Command::new("pcscd")
            .args(["--foreground", "--info"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pcscd (install it with ops/setup.sh): {e}"));
        self.pcscd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(SOCKET).exists() {
            if let Some(Ok(Some(status))) = self.pcscd.as_mut().map(Child::try_wait) {
                panic!("pcscd exited at start ({status}):\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "pcscd did not create {SOCKET} within 10 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_pcscd(&mut self) {
        if let Some(mut c) = self.pcscd.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    fn start_vcard(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("vcard.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_vcard"))
            .args(["--card", common::DEMO_CARD, "--retry-ms", "50"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vcard");
        self.vcard = Some(child);
    }

    fn stop_vcard(&mut self) {
        if let Some(mut c) = self.vcard.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- pcscd.log ---\n{}\n--- vcard.log ---\n{}",
            read("pcscd.log"),
            read("vcard.log")
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_vcard();
        self.stop_pcscd();
    }
}

/// Runs a tool with a hard time limit and returns (exit success, stdout + stderr).
fn run_tool(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let out_path = tempfile::NamedTempFile::new().expect("temp");
    let out = out_path.reopen().expect("reopen");
    let mut child = cmd
        .stdout(out.try_clone().expect("clone"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {cmd:?} (pcsc-tools installed by ops/setup.sh?): {e}")
        });
    let deadline = Instant::now() + limit;
    let ok = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.success();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        ok,
        std::fs::read_to_string(out_path.path()).unwrap_or_default(),
    )
}

fn pin(s: &str) -> ClearPin {
    ClearPin::new(s).expect("pin")
}

fn kiosk(args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiosk"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiosk");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("kiosk output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn pcsc_scan_sees_reader_and_atr() {
    let (_, out) = run_tool(
        Command::new("pcsc_scan").args(["-n", "-c", "-t", "1"]),
        Duration::from_secs(15),
    );
    assert!(
        out.contains(READER),
        "pcsc_scan output lacks the reader:\n{out}"
    );
    assert!(
        out.contains(ATR_SPACED),
        "pcsc_scan output lacks the ATR:\n{out}"
    );
}

fn scriptor_reads_records_and_gets_iso_status_words(dir: &Path) {
    let script: PathBuf = dir.join("ssse.apdu");
    std::fs::write(
        &script,
        "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n00A4020C02EF05\n00B2070000\n00A4020C02EF06\n00B2090000\n\
         0020000003000000\n0020000003123456\n00B2990000\n00A4040005A00000099900\nA0B0000000\n00200000031234\n",
    )
    .expect("script");
    let (ok, out) = run_tool(
        Command::new("scriptor").args(["-r", READER]).arg(&script),
        Duration::from_secs(20),
    );
    assert!(ok, "scriptor failed:\n{out}");
    // EF05 record 07: card number "A01234567".
    assert!(
        out.contains("< 07 09 41 30 31 32 33 34 35 36 37 90 00"),
        "{out}"
    );
    // EF06 record 09: name 张三 in GBK (D5C5 C8FD), 30 bytes.
    assert!(out.contains("< 09 1E D5 C5 C8 FD 00"), "{out}");
    assert!(
        out.contains("< 63 C2"),
        "wrong PIN must answer 63C2:\n{out}"
    );
    assert!(
        out.contains("< 6A 83"),
        "unknown record must answer 6A83:\n{out}"
    );
    assert!(
        out.contains("< 6A 82"),
        "unknown AID must answer 6A82:\n{out}"
    );
    assert!(
        out.contains("< 6E 00"),
        "unknown class must answer 6E00:\n{out}"
    );
    assert!(
        out.contains("< 67 00"),
        "Lc without data must answer 6700:\n{out}"
    );
}

fn pcsc_crate_lists_reader_and_runs_kiosk_flows() {
    let readers = pcsc::list_readers().expect("list readers");
    let r = readers
        .iter()
        .find(|r| r.name == READER)
        .expect("vpcd reader listed");
    assert!(r.card_present);
    assert_eq!(r.atr.as_deref(), Some(&card_apdu::vcard::default_atr()[..]));

    let mut ch = PcscChannel::connect(READER, false).expect("connect");
    let basics = SsseCard::open(&mut ch)
        .expect("select")
        .read_basics()
        .expect("basics");
    assert_eq!(basics.name, "张三");
    assert_eq!(basics.atr, "3B8A8001535343332E3050424F437B");
    let mut card = SsseCard::open(&mut ch).expect("select");
    card.verify_pin(&pin("123456")).expect("verify");
}

fn exclusive_connection_keeps_others_out() {
    let mut owner = PcscChannel::connect(READER, true).expect("exclusive connect");
    match PcscChannel::connect(READER, false) {
        Err(ChannelError::Pcsc(::pcsc::Error::SharingViolation)) => {}
        Err(e) => panic!("expected a sharing violation, got {e}"),
        Ok(_) => panic!("a second connection got in during an exclusive one"),
    }
    // Inside a transaction on the owner, flows still work.
    let name = owner
        .transaction(|tx| {
            SsseCard::open(tx)
                .and_then(|mut c| c.read_basics())
                .map(|b| b.name)
        })
        .expect("transaction")
        .expect("read");
    assert_eq!(name, "张三");
}

fn power_off_resets_security_state() {
    let mut ch = PcscChannel::connect(READER, false).expect("connect");
    let mut card = SsseCard::open(&mut ch).expect("select");
    card.verify_pin(&pin("123456")).expect("verify");
    assert_eq!(
        card.pin_tries_left().expect("status"),
        None,
        "verified in this session"
    );
    ch.reset_card(true).expect("cold reset");
    let mut card = SsseCard::open(&mut ch).expect("select");
    assert_eq!(
        card.pin_tries_left().expect("status"),
        Some(3),
        "power off must drop the verified state"
    );
    // DF01 records need the PIN: refused after the reset.
    ch.transmit(&Apdu::new(0, 0xA4, 0x01, 0x0C).with_data([0xDF, 0x01]))
        .expect("select DF01");
    let r = ch
        .transmit(&Apdu::new(0, 0xB2, 1, 0x15 << 3 | 4).with_ne(256))
        .expect("read");
    assert_eq!(r.sw, StatusWord::SecurityStatusNotSatisfied);
}

fn payment_through_pcscd_and_vpcd(issuer: &card_apdu::issuer::IssuerSim) -> Duration {
    let mut ch = PcscChannel::connect(READER, true).expect("connect");
    let runs = 20;
    let started = Instant::now();
    for _ in 0..runs {
        let mut s = start_payment(
            &mut ch,
            &Terminal::default(),
            &PaymentRequest::new(12_345, [0x26, 0x11, 0x23], [0x12, 0, 0]),
        )
        .expect("start");
        let auth = issuer
            .authorise(&s.pan, &s.request.psn, &s.request.field55, *b"00")
            .expect("authorise");
        assert!(auth.arqc_valid, "ARQC made through PC/SC must verify");
        assert!(
            complete_payment(&mut ch, &mut s, &auth.response)
                .expect("complete")
                .approved
        );
    }
    started.elapsed() / runs
}

fn card_removal_and_insertion_are_events(stack: &mut Stack) {
    let mut monitor = PcscMonitor::new().expect("monitor");
    let initial = monitor.wait(Duration::from_secs(2)).expect("initial");
    assert!(
        initial
            .iter()
            .any(|e| matches!(e, CardEvent::CardInserted { reader, .. } if reader == READER)),
        "present card reported first: {initial:?}"
    );
    stack.stop_vcard();
    let removed = wait_for(
        &mut monitor,
        |e| matches!(e, CardEvent::CardRemoved { reader } if reader == READER),
    );
    assert!(removed, "removal seen");
    stack.start_vcard();
    let inserted = wait_for(
        &mut monitor,
        |e| matches!(e, CardEvent::CardInserted { reader, .. } if reader == READER),
    );
    assert!(inserted, "insertion seen");
}

fn wait_for(monitor: &mut PcscMonitor, want: impl Fn(&CardEvent) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if monitor
            .wait(Duration::from_millis(500))
            .expect("events")
            .iter()
            .any(&want)
        {
            return true;
        }
    }
    false
}

fn channel_survives_pcscd_restart(stack: &mut Stack) {
    let mut ch = PcscChannel::connect(READER, false).expect("connect");
    SsseCard::open(&mut ch).expect("select before restart");
    stack.stop_pcscd();
    stack.start_pcscd();
    pcsc::wait_for_card(Some(READER), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("card back after restart: {e}\n{}", stack.logs()));
    // The old handle is dead: the first exchange reports it, the next one reconnects.
    let first = ch.transmit(&card_apdu::kiosk::select_by_name(
        &card_apdu::vcard::SSSE_AID,
    ));
    if let Ok(r) = &first {
        panic!("a handle from the old pcscd cannot still work: {r:?}");
    }
    let basics = SsseCard::open(&mut ch)
        .and_then(|mut c| c.read_basics())
        .expect("flow after reconnect");
    assert_eq!(basics.card_number, "A01234567");
}

fn kiosk_binary_through_pcscd() {
    let (code, out) = kiosk(&["--json", "read"], "");
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["name"], "张三");
    let (code, out) = kiosk(&["verify-pin"], "123456\n");
    assert_eq!(code, 0, "{out}");
    let (code, out) = kiosk(&["--json", "verify-pin"], "111111\n");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("\"tries_left\":2"), "{out}");
    let (code, out) = kiosk(&["verify-pin"], "123456\n");
    assert_eq!(code, 0, "right PIN resets the counter: {out}");
    let (code, out) = kiosk(&["--json", "pay", "--amount", "12.34"], "");
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["status"], "pending_switch");
    assert!(
        v["online_request"]["field55"]
            .as_str()
            .expect("field55")
            .starts_with("9F2608"),
        "{out}"
    );
    let (code, out) = kiosk(&["readers"], "");
    assert_eq!(code, 0);
    assert!(out.contains(READER) && out.contains("3B8A8001"), "{out}");
}

#[test]
fn real_pcsc_stack() {
    let mut stack = Stack::start();
    let (_, issuer) = common::demo();
    pcsc_scan_sees_reader_and_atr();
    scriptor_reads_records_and_gets_iso_status_words(stack.dir.path());
    pcsc_crate_lists_reader_and_runs_kiosk_flows();
    exclusive_connection_keeps_others_out();
    power_off_resets_security_state();
    let per_payment = payment_through_pcscd_and_vpcd(&issuer);
    eprintln!(
        "full kiosk payment (select … GAC1, issuer, ARPC, GAC2) through pcscd + vpcd: {:.2} ms",
        per_payment.as_secs_f64() * 1000.0
    );
    kiosk_binary_through_pcscd();
    card_removal_and_insertion_are_events(&mut stack);
    channel_survives_pcscd_restart(&mut stack);
}
