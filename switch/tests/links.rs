//! Issuer links against the simulated bank host: sign-on, echo, reconnection, the MUX under
//! concurrency, timeouts and late responses, the in-flight bound, key exchange with PIN
//! translation, oversize frames, and store-and-forward reversals and stand-in advices.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hsm_sim::crypto::WorkingCipher;
use hsm_sim::hsm::PinBlockIn;
use hsm_sim::keys::{ClearKey, KeyScheme, KeyType, Pvk, Tpk, TypedKey, Zmk, Zpk};
use hsm_sim::lmk::{LmkSet, LMK_PAIR_COUNT};
use hsm_sim::pin::{encrypt_pin_block, PinBlockFormat};
use hsm_sim::{Hsm, SoftHsm};
use schemas::domain::InstitutionId;
use schemas::iso8583::{spec, Mti, OwnedMessage};
use switch::issuer::forwarder::{Forwarder, ForwarderConfig};
use switch::issuer::mux::UnmatchedKind;
use switch::issuer::{IssuerConfig, IssuerLinks, LinkError, LinkState, LinksOptions};
use switch::sim::banksim::{pin_offset_for, AccountSeed, BankKeys, BankSim, BankSimConfig};
use switch::sim::testkit;
use switch::store::{
    now_us, DataKeyPanProtector, PostgresConfig, PostgresStore, SafKind, SqliteConfig, SqliteStore,
    Store,
};
use switch::wire::transport::Framing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// Demo/test clear keys (odd parity), never used outside tests.
const ZMK_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";
const ZPK_HEX: &str = "1032547698BADCFEEFCDAB8967452301";
const PVK_HEX: &str = "FEDCBA98765432100123456789ABCDEF";
const TPK_HEX: &str = "0123456789ABCDEF1032547698BADCFE";
const DECIMALISATION: &str = "0123456789012345";
const PAN: &str = "6228480012345678";
const PAN_POOR: &str = "6228480099990001";
const PIN: &str = "1234";

fn bank_id() -> InstitutionId {
    InstitutionId::parse("01020000").expect("id")
}

/// The bank runs its own HSM under another LMK: keys travel only under the ZMK.
fn bank_hsm() -> SoftHsm {
    let mut pairs = [[0u8; 16]; LMK_PAIR_COUNT];
    for (i, p) in pairs.iter_mut().enumerate() {
        for (j, b) in p.iter_mut().enumerate() {
            let v = (i as u8).wrapping_mul(37).wrapping_add(j as u8 * 11) | 1;
            *b = if v.count_ones() % 2 == 1 { v } else { v ^ 0x80 };
        }
    }
    SoftHsm::new(LmkSet::from_pairs(&pairs))
}

struct Net {
    switch_hsm: Arc<SoftHsm>,
    bank: BankSim,
    links: Arc<IssuerLinks>,
    tpk: Tpk,
}

struct Options {
    in_flight_max: usize,
    echo_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            in_flight_max: 2048,
            echo_interval: Duration::from_secs(30),
        }
    }
}

async fn start_bank(bank_hsm: SoftHsm, listen: &str) -> BankSim {
    let zmk = Zmk::from_token(
        bank_hsm
            .import_clear_key(KeyType::Zmk, KeyScheme::U, ZMK_HEX)
            .expect("zmk"),
    );
    let zpk = Zpk::from_token(
        bank_hsm
            .import_clear_key(KeyType::Zpk, KeyScheme::U, ZPK_HEX)
            .expect("zpk"),
    );
    let pvk = Pvk::from_token(
        bank_hsm
            .import_clear_key(KeyType::Pvk, KeyScheme::U, PVK_HEX)
            .expect("pvk"),
    );
    let offset =
        |pan: &str| pin_offset_for(&bank_hsm, &pvk, pan, PIN, DECIMALISATION).expect("offset");
    let accounts = vec![
        AccountSeed {
            pan: PAN.into(),
            balance_fen: 1_000_000,
            pin_offset: offset(PAN),
        },
        AccountSeed {
            pan: PAN_POOR.into(),
            balance_fen: 100,
            pin_offset: offset(PAN_POOR),
        },
    ];
    let config = BankSimConfig {
        institution: bank_id(),
        listen: listen.into(),
        spec_name: "ssc87".into(),
        framing: Framing::default(),
        keys: BankKeys {
            zmk,
            zpk: Some(zpk),
            tak: None,
            pvk,
        },
        decimalisation_table: DECIMALISATION.into(),
        pin_check_length: 4,
        accounts,
        connections_max: 8,
        mac: false,
        mac_algorithm: Default::default(),
        tls: None,
    };
    BankSim::start(config, Arc::new(bank_hsm))
        .await
        .expect("bank sim")
}

fn issuer_config(hsm: &SoftHsm, address: String, o: &Options) -> IssuerConfig {
    let zmk = Zmk::from_token(
        hsm.import_clear_key(KeyType::Zmk, KeyScheme::U, ZMK_HEX)
            .expect("zmk"),
    );
    let zpk = Zpk::from_token(
        hsm.import_clear_key(KeyType::Zpk, KeyScheme::U, ZPK_HEX)
            .expect("zpk"),
    );
    let mut c = IssuerConfig::new(bank_id(), address, zmk);
    c.zpk = Some(zpk);
    c.in_flight_max = o.in_flight_max;
    c.echo_interval = o.echo_interval;
    c.reconnect_backoff_min = Duration::from_millis(20);
    c.reconnect_backoff_max = Duration::from_millis(200);
    c.network_timeout = Duration::from_secs(5);
    c
}

async fn net(o: Options) -> Net {
    let bank = start_bank(bank_hsm(), "127.0.0.1:0").await;
    let switch_hsm = Arc::new(SoftHsm::with_test_lmk());
    let config = issuer_config(&switch_hsm, bank.addr().to_string(), &o);
    let links = Arc::new(
        IssuerLinks::start(
            vec![config],
            switch_hsm.clone() as Arc<dyn Hsm>,
            LinksOptions::new(InstitutionId::parse("9999").expect("id")),
        )
        .expect("links"),
    );
    let tpk = Tpk::from_token(
        switch_hsm
            .import_clear_key(KeyType::Tpk, KeyScheme::U, TPK_HEX)
            .expect("tpk"),
    );
    wait_state(&links, LinkState::SignedOn).await;
    Net {
        switch_hsm,
        bank,
        links,
        tpk,
    }
}

async fn wait_state(links: &IssuerLinks, want: LinkState) {
    let mut rx = links.watch_state(&bank_id()).expect("bank");
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| *s == want))
        .await
        .unwrap_or_else(|_| panic!("link never reached {want:?}"))
        .expect("state channel");
}

/// Polls `cond` until it holds (generous deadline: this waits for an event, it does not time
/// anything).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// A PIN block under the terminal's TPK (what a kiosk sends), ISO 9564-1 format 0.
fn kiosk_pin_block(pan: &str, pin: &str) -> hsm_sim::pin::EncryptedPinBlock {
    let clear = ClearKey::new(KeyScheme::U, hex::decode(TPK_HEX).expect("hex")).expect("key");
    let cipher = WorkingCipher::new(&clear).expect("cipher");
    let pin = hsm_sim::card_crypto::ClearPin::new(pin).expect("pin");
    encrypt_pin_block(&cipher, PinBlockFormat::Iso0, &pin, pan).expect("block")
}

async fn pin_under_zpk(n: &Net, zpk: &Zpk, pan: &str, pin: &str) -> Vec<u8> {
    let translated = n
        .switch_hsm
        .translate_pin_tpk_to_zpk(
            &n.tpk,
            zpk,
            &PinBlockIn {
                block: kiosk_pin_block(pan, pin),
                format: PinBlockFormat::Iso0,
                pan: pan.into(),
            },
            PinBlockFormat::Iso0,
        )
        .await
        .expect("translate");
    translated.block.as_bytes().to_vec()
}

fn financial(
    links: &IssuerLinks,
    processing_code: &str,
    pan: &str,
    amount_fen: u64,
    rrn: &str,
    terminal: &str,
    pin_block: Option<&[u8]>,
) -> OwnedMessage<'static> {
    let s = spec("ssc87").expect("spec");
    let mut m = s.message(Mti::new("0200").expect("mti"));
    m.set_str(2, pan)
        .and_then(|m| m.set_str(3, processing_code))
        .and_then(|m| m.set_u64(4, amount_fen))
        .and_then(|m| m.set_str(7, "1123093605"))
        .and_then(|m| m.set_u64(11, u64::from(links.next_stan(&bank_id()).value())))
        .and_then(|m| m.set_str(37, rrn))
        .and_then(|m| m.set_str(41, terminal))
        .and_then(|m| m.set_str(49, "156"))
        .expect("fields");
    if let Some(b) = pin_block {
        m.set_bytes(52, b).expect("52");
    }
    m
}

/// A 0200 from terminal KIOSK001 to the bank, answered within [`T`].
async fn ask(
    n: &Net,
    processing_code: &str,
    pan: &str,
    amount_fen: u64,
    rrn: &str,
    pin_block: Option<&[u8]>,
) -> OwnedMessage<'static> {
    let req = financial(
        &n.links,
        processing_code,
        pan,
        amount_fen,
        rrn,
        "KIOSK001",
        pin_block,
    );
    n.links.request(&bank_id(), req, T).await.expect("answer")
}

fn code(m: &OwnedMessage<'_>) -> String {
    m.get_str(39).expect("39").into_owned()
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn signs_on_and_keeps_the_link_alive_with_echo_tests() {
    let n = net(Options {
        echo_interval: Duration::from_millis(100),
        ..Options::default()
    })
    .await;
    assert!(n.links.is_up(&bank_id()));
    assert_eq!(n.bank.stats().sign_ons, 1);
    // Idle: the link sends 0800/301 on its own.
    eventually("two idle echo tests", || n.bank.stats().echoes >= 2).await;
    n.links.echo(&bank_id()).await.expect("explicit echo");
    n.links.shutdown().await;
    eventually("sign-off at shutdown", || n.bank.stats().sign_offs == 1).await;
    assert!(!n.links.is_up(&bank_id()));
}

#[tokio::test]
async fn reconnects_and_signs_on_again_after_the_bank_restarts() {
    let n = net(Options::default()).await;
    n.bank.stop().await;
    wait_state(&n.links, LinkState::Down).await;
    let refused = n
        .links
        .request(
            &bank_id(),
            financial(&n.links, "200000", PAN, 1, "000000000001", "KIOSK001", None),
            T,
        )
        .await;
    assert!(
        matches!(refused, Err(LinkError::Down | LinkError::NotSignedOn)),
        "{refused:?}"
    );
    n.bank.restart().await.expect("restart");
    wait_state(&n.links, LinkState::SignedOn).await;
    assert_eq!(n.bank.stats().sign_ons, 2);
    assert!(n.links.stats(&bank_id()).expect("stats").connections >= 2);
    let ok = n
        .links
        .request(
            &bank_id(),
            financial(&n.links, "200000", PAN, 1, "000000000002", "KIOSK001", None),
            T,
        )
        .await
        .expect("answered after reconnection");
    assert_eq!(code(&ok), "00");
}

#[tokio::test]
async fn the_mux_matches_1000_concurrent_requests_on_one_link() {
    let n = Arc::new(net(Options::default()).await);
    let mut tasks = Vec::new();
    for i in 0..1000u64 {
        let n = Arc::clone(&n);
        tasks.push(tokio::spawn(async move {
            // Distinct amounts, terminals and RRNs: each answer must echo its own request.
            let terminal = format!("KSK{:05}", i % 7);
            let rrn = format!("{:012}", 500_000 + i);
            let req = financial(&n.links, "210000", PAN, 1 + i, &rrn, &terminal, None);
            let stan = req.get_u64(11).expect("11");
            let resp = n.links.request(&bank_id(), req, T).await.expect("answer");
            assert_eq!(code(&resp), "00");
            assert_eq!(resp.get_u64(11).expect("11"), stan);
            assert_eq!(resp.get_u64(4).expect("4"), 1 + i);
            assert_eq!(resp.get_str(41).expect("41"), terminal);
            assert_eq!(resp.get_str(37).expect("37"), rrn);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stats = n.links.stats(&bank_id()).expect("stats");
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.mux.in_flight, 0);
    assert!(stats.mux.matched >= 1000);
    assert_eq!(stats.mux.unmatched + stats.mux.late, 0);
    // 1000 benefit credits of 1..=1000 fen.
    assert_eq!(n.bank.balance_fen(PAN), Some(1_000_000 + 500_500));
}

#[tokio::test]
async fn a_timed_out_request_fails_with_timeout_and_its_late_answer_is_kept() {
    let n = net(Options::default()).await;
    n.bank
        .faults()
        .set_response_delay(Duration::from_millis(300));
    let req = financial(&n.links, "200000", PAN, 5, "000000000003", "KIOSK001", None);
    let stan = req.get_u64(11).expect("11");
    let r = n
        .links
        .request(&bank_id(), req, Duration::from_millis(30))
        .await;
    assert!(matches!(r, Err(LinkError::Timeout)), "{r:?}");
    let mut late = Vec::new();
    eventually("the late answer is parked", || {
        late.extend(n.links.late_responses().drain(10));
        !late.is_empty()
    })
    .await;
    assert_eq!(late[0].kind, UnmatchedKind::Late);
    assert_eq!(late[0].bank, bank_id());
    assert_eq!(u64::from(late[0].key.stan()), stan);
    assert_eq!(late[0].message.get_str(39).expect("39"), "00");
    let stats = n.links.stats(&bank_id()).expect("stats").mux;
    assert_eq!((stats.timeouts, stats.late), (1, 1));
}

#[tokio::test]
async fn requests_beyond_the_in_flight_bound_are_refused() {
    let n = Arc::new(
        net(Options {
            in_flight_max: 4,
            ..Options::default()
        })
        .await,
    );
    n.bank.faults().set_drop_responses(true);
    let mut hanging = Vec::new();
    for i in 0..4u64 {
        let n = Arc::clone(&n);
        hanging.push(tokio::spawn(async move {
            let req = financial(
                &n.links,
                "200000",
                PAN,
                1,
                &format!("{:012}", 700 + i),
                "KIOSK001",
                None,
            );
            n.links
                .request(&bank_id(), req, Duration::from_secs(30))
                .await
        }));
    }
    eventually("four requests in flight", || {
        n.links.stats(&bank_id()).expect("stats").mux.in_flight == 4
    })
    .await;
    let fifth = financial(&n.links, "200000", PAN, 1, "000000000799", "KIOSK001", None);
    let r = n.links.request(&bank_id(), fifth, T).await;
    assert!(matches!(r, Err(LinkError::InFlightFull(4))), "{r:?}");
    assert_eq!(
        n.links.stats(&bank_id()).expect("stats").mux.rejected_full,
        1
    );
    for h in hanging {
        h.abort();
    }
}

#[tokio::test]
async fn a_duplicate_key_in_flight_is_refused() {
    let n = Arc::new(net(Options::default()).await);
    n.bank.faults().set_drop_responses(true);
    let first = financial(&n.links, "200000", PAN, 1, "000000000801", "KIOSK001", None);
    let again = first.clone();
    let n2 = Arc::clone(&n);
    let waiting = tokio::spawn(async move {
        n2.links
            .request(&bank_id(), first, Duration::from_secs(30))
            .await
    });
    eventually("first in flight", || {
        n.links.stats(&bank_id()).expect("stats").mux.in_flight == 1
    })
    .await;
    let r = n.links.request(&bank_id(), again, T).await;
    assert!(matches!(r, Err(LinkError::DuplicateInFlight)), "{r:?}");
    waiting.abort();
}

#[tokio::test]
async fn key_exchange_changes_the_zpk_and_translated_pins_verify_at_the_bank() {
    let n = net(Options::default()).await;
    let old = n.links.zpk(&bank_id()).expect("initial zpk");
    let old_at_bank = n.bank.current_zpk().expect("bank zpk");

    let block = pin_under_zpk(&n, &old, PAN, PIN).await;
    let r = ask(&n, "000000", PAN, 100, "000000000901", Some(&block)).await;
    assert_eq!(code(&r), "00");

    n.links
        .exchange_keys(&bank_id())
        .await
        .expect("key exchange");
    let new = n.links.zpk(&bank_id()).expect("new zpk");
    assert_ne!(new, old);
    assert_eq!(n.links.previous_zpk(&bank_id()), Some(old.clone()));
    assert_ne!(n.bank.current_zpk().expect("bank zpk"), old_at_bank);
    assert_eq!(n.bank.stats().key_exchanges, 1);

    // TPK -> new ZPK verifies at the bank (its own HSM, its own LMK).
    let block = pin_under_zpk(&n, &new, PAN, PIN).await;
    let r = ask(&n, "000000", PAN, 100, "000000000902", Some(&block)).await;
    assert_eq!(code(&r), "00");
    assert!(r.has(38));
    assert_eq!(r.get_str(54).expect("54"), "1002156C000000999800");

    // A block translated just before the exchange (previous key) is still accepted.
    let block = pin_under_zpk(&n, &old, PAN, PIN).await;
    let r = ask(&n, "310000", PAN, 0, "000000000903", Some(&block)).await;
    assert_eq!(code(&r), "00");

    // A wrong PIN, and a key the bank never received, are both 55.
    let block = pin_under_zpk(&n, &new, PAN, "9999").await;
    let r = ask(&n, "000000", PAN, 100, "000000000904", Some(&block)).await;
    assert_eq!(code(&r), "55");
    let stranger = Zpk::from_token(
        n.switch_hsm
            .generate_key(KeyType::Zpk, KeyScheme::U, None)
            .await
            .expect("key")
            .token,
    );
    let block = pin_under_zpk(&n, &stranger, PAN, PIN).await;
    let r = ask(&n, "000000", PAN, 100, "000000000905", Some(&block)).await;
    assert_eq!(code(&r), "55");
}

#[tokio::test]
async fn the_bank_declines_unknown_cards_and_insufficient_funds() {
    let n = net(Options::default()).await;
    let zpk = n.links.zpk(&bank_id()).expect("zpk");
    let unknown = "6228480000000000";
    let block = pin_under_zpk(&n, &zpk, unknown, PIN).await;
    let r = ask(&n, "000000", unknown, 1, "000000001001", Some(&block)).await;
    assert_eq!(code(&r), "14");
    let block = pin_under_zpk(&n, &zpk, PAN_POOR, PIN).await;
    let r = ask(&n, "000000", PAN_POOR, 101, "000000001002", Some(&block)).await;
    assert_eq!(code(&r), "51");
    assert_eq!(n.bank.balance_fen(PAN_POOR), Some(100));
    let r = ask(&n, "000000", PAN_POOR, 100, "000000001003", None).await;
    assert_eq!(
        code(&r),
        "55",
        "a purchase without a PIN block is a PIN failure"
    );
}

fn reversal_advice(
    links: &IssuerLinks,
    mti: &str,
    rrn: &str,
    amount_fen: u64,
) -> OwnedMessage<'static> {
    let s = spec("ssc87").expect("spec");
    let mut m = s.message(Mti::new(mti).expect("mti"));
    let stan = links.next_stan(&bank_id()).value();
    m.set_str(2, PAN)
        .and_then(|m| m.set_str(3, "000000"))
        .and_then(|m| m.set_u64(4, amount_fen))
        .and_then(|m| m.set_str(7, "1123093700"))
        .and_then(|m| m.set_u64(11, u64::from(stan)))
        .and_then(|m| m.set_str(37, rrn))
        .and_then(|m| m.set_str(41, "KIOSK001"))
        .and_then(|m| {
            m.set_str(
                90,
                &format!("0200{stan:06}11230936050000000999900000009999"),
            )
        })
        .expect("fields");
    m
}

#[tokio::test]
async fn the_same_reversal_twice_restores_the_balance_once_and_totals_reconcile() {
    let n = net(Options::default()).await;
    let zpk = n.links.zpk(&bank_id()).expect("zpk");
    let block = pin_under_zpk(&n, &zpk, PAN, PIN).await;
    let r = ask(&n, "000000", PAN, 2_500, "000000001101", Some(&block)).await;
    assert_eq!(code(&r), "00");
    assert_eq!(n.bank.balance_fen(PAN), Some(997_500));
    for mti in ["0420", "0421"] {
        let r = n
            .links
            .request(
                &bank_id(),
                reversal_advice(&n.links, mti, "000000001101", 2_500),
                T,
            )
            .await
            .expect("answer");
        assert_eq!(r.mti().as_str(), "0430");
        assert_eq!(code(&r), "00");
    }
    assert_eq!(n.bank.balance_fen(PAN), Some(1_000_000));
    assert_eq!(n.bank.stats().reversals_applied, 1);
    let r = n
        .links
        .request(
            &bank_id(),
            reversal_advice(&n.links, "0420", "000000009999", 1),
            T,
        )
        .await
        .expect("answer");
    assert_eq!(code(&r), "25", "unknown original");

    // 0500 with the switch's view of today (the bank answers with its postings of the
    // settlement day of field 15): one debit of 2500 fen and its reversal.
    let s = spec("ssc87").expect("spec");
    let mut m = s.message(Mti::new("0500").expect("mti"));
    let today = switch::wire::settlement_day::day_of(now_us()).expect("today");
    m.set_str(7, "1123235959")
        .and_then(|m| m.set_u64(11, u64::from(n.links.next_stan(&bank_id()).value())))
        .and_then(|m| m.set_str(15, &switch::wire::settlement_day::mmdd(today)))
        .and_then(|m| m.set_u64(74, 0))
        .and_then(|m| m.set_u64(75, 0))
        .and_then(|m| m.set_u64(76, 1))
        .and_then(|m| m.set_u64(77, 1))
        .and_then(|m| m.set_u64(86, 0))
        .and_then(|m| m.set_u64(87, 0))
        .and_then(|m| m.set_u64(88, 2_500))
        .and_then(|m| m.set_u64(89, 2_500))
        .and_then(|m| m.set_str(97, "C0000000000000000"))
        .expect("fields");
    let mut off = m.clone();
    let r = n.links.request(&bank_id(), m, T).await.expect("0510");
    assert_eq!(
        (code(&r).as_str(), r.get_str(66).expect("66").as_ref()),
        ("00", "1")
    );
    off.set_u64(11, u64::from(n.links.next_stan(&bank_id()).value()))
        .and_then(|m| m.set_u64(88, 2_499))
        .expect("fields");
    let r = n.links.request(&bank_id(), off, T).await.expect("0510");
    assert_eq!(r.get_str(66).expect("66"), "2", "out of balance");
}

#[tokio::test]
async fn an_oversize_frame_closes_the_bank_connection() {
    let n = net(Options::default()).await;
    let mut raw = tokio::net::TcpStream::connect(n.bank.addr())
        .await
        .expect("connect");
    // Announces 65535 bytes, more than the 8 KiB frame maximum.
    raw.write_all(&[0xFF, 0xFF, b'0', b'8'])
        .await
        .expect("write");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
        .await
        .expect("the bank closes instead of waiting for 64 KiB");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The link on its own connection is unaffected.
    n.links.echo(&bank_id()).await.expect("echo");
}

#[tokio::test]
async fn an_oversize_frame_from_the_bank_closes_the_link_which_reconnects() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let links = IssuerLinks::start(
        vec![issuer_config(&hsm, addr.to_string(), &Options::default())],
        hsm.clone() as Arc<dyn Hsm>,
        LinksOptions::new(InstitutionId::parse("9999").expect("id")),
    )
    .expect("links");
    // A broken host: reads the sign-on, answers with a frame header announcing 60000 bytes.
    let (mut sock, _) = listener.accept().await.expect("accept");
    let mut head = [0u8; 2];
    sock.read_exact(&mut head).await.expect("sign-on header");
    sock.write_all(&[0xEA, 0x60]).await.expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut rest))
        .await
        .expect("the link closes the connection");
    assert!(closed.is_ok());
    // ... and connects again.
    let again = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
    assert!(again.is_ok(), "no reconnection");
    assert_ne!(links.state(&bank_id()), Some(LinkState::SignedOn));
}

#[tokio::test]
async fn close_after_n_messages_and_refused_connections_keep_the_link_down_then_recover() {
    let n = net(Options::default()).await;
    n.bank.faults().set_refuse_connections(true);
    n.bank.faults().set_close_after_messages(1);
    // The next message closes the connection; reconnections are refused.
    let _ = n.links.echo(&bank_id()).await;
    wait_state(&n.links, LinkState::Down).await;
    n.bank.faults().set_close_after_messages(0);
    n.bank.faults().set_refuse_connections(false);
    wait_state(&n.links, LinkState::SignedOn).await;
    n.links.echo(&bank_id()).await.expect("echo after recovery");
}

// ---- store-and-forward reversals ----

trait Backend {
    type S: Store;
    async fn open(&self) -> Arc<Self::S>;
}

struct SqliteBackend(tempfile::TempDir);

impl Backend for SqliteBackend {
    type S = SqliteStore;
    async fn open(&self) -> Arc<SqliteStore> {
        let config = SqliteConfig::new(self.0.path().join("switch.db"));
        Arc::new(
            SqliteStore::open(&config, Arc::new(DataKeyPanProtector::for_tests()))
                .await
                .expect("open sqlite store"),
        )
    }
}

struct PostgresBackend(PostgresConfig);

impl Backend for PostgresBackend {
    type S = PostgresStore;
    async fn open(&self) -> Arc<PostgresStore> {
        match PostgresStore::connect(&self.0, Arc::new(DataKeyPanProtector::for_tests())).await {
            Ok(s) => Arc::new(s),
            Err(e) => panic!(
                "this test needs PostgreSQL at {} (run ops/setup.sh): {e}",
                self.0.url
            ),
        }
    }
}

fn forwarder_config() -> ForwarderConfig {
    let mut c = ForwarderConfig::new(InstitutionId::parse("9999").expect("id"));
    c.poll_interval = Duration::from_millis(20);
    c.response_timeout = Duration::from_millis(200);
    c.retry_backoff_min = Duration::from_millis(10);
    c.retry_backoff_max = Duration::from_millis(50);
    c
}

/// Commits `decision` (which queues one message for the bank), takes the bank down, checks that
/// a poll defers the message (nothing sent, nothing recorded) and restarts the switch: returns
/// the reopened store, where the message must still be queued.
async fn queue_while_the_bank_is_down_and_restart<B: Backend>(
    n: &Net,
    backend: &B,
    store: Arc<B::S>,
    decision: switch::store::Decision,
) -> Arc<B::S> {
    let outcome = store.commit_decisions(vec![decision], now_us()).await;
    assert!(outcome.results[0].is_ok(), "{:?}", outcome.results);
    n.bank.stop().await;
    wait_state(&n.links, LinkState::Down).await;
    let f = Forwarder::new(Arc::clone(&store), Arc::clone(&n.links), forwarder_config())
        .expect("forwarder");
    let report = f.run_once().await.expect("poll");
    assert_eq!((report.due, report.deferred), (1, 1));
    drop(f);
    drop(store);
    backend.open().await
}

/// The bank approved a purchase whose answer never reached the switch; the switch declined
/// with 91 and queued a reversal. The bank is down when the forwarder first looks, the switch
/// restarts (store reopened), the first 0420 goes unanswered, and the 0421 repeat is
/// acknowledged: the bank's balance is restored exactly once.
async fn queued_reversal_is_delivered_after_the_bank_returns<B: Backend>(backend: &B) -> Arc<B::S> {
    let n = net(Options::default()).await;
    let store = backend.open().await;
    let fx = testkit::seed(&*store, 1_000_000, 1_000_000)
        .await
        .expect("seed");
    assert_eq!(fx.bank, bank_id());
    assert_eq!(fx.pan.expose_digits(), PAN);
    let seq = 4242;
    let amount = 12_345;
    let decision = testkit::bank_timeout(&fx, seq, amount);
    let rrn = decision.transaction.rrn.as_str().to_owned();

    // The bank leg: processed by the bank, answer lost.
    n.bank.faults().set_drop_responses(true);
    let zpk = n.links.zpk(&bank_id()).expect("zpk");
    let block = pin_under_zpk(&n, &zpk, PAN, PIN).await;
    let leg = financial(
        &n.links,
        "000000",
        PAN,
        amount as u64,
        &rrn,
        "KIOSK001",
        Some(&block),
    );
    let r = n
        .links
        .request(&bank_id(), leg, Duration::from_millis(100))
        .await;
    assert!(matches!(r, Err(LinkError::Timeout)), "{r:?}");
    eventually("bank debited", || {
        n.bank.balance_fen(PAN) == Some(1_000_000 - amount)
    })
    .await;
    n.bank.faults().set_drop_responses(false);
    let store = queue_while_the_bank_is_down_and_restart(&n, backend, store, decision).await;
    let pending = store.due_reversals(now_us(), 10).await.expect("due");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 0);
    let f = Forwarder::new(Arc::clone(&store), Arc::clone(&n.links), forwarder_config())
        .expect("forwarder");

    n.bank.restart().await.expect("restart");
    wait_state(&n.links, LinkState::SignedOn).await;
    // First 0420: the bank applies it, its answer is lost.
    n.bank.faults().set_drop_responses(true);
    let report = f.run_once().await.expect("poll");
    assert_eq!(report.unanswered, 1);
    assert_eq!(n.bank.balance_fen(PAN), Some(1_000_000));
    n.bank.faults().set_drop_responses(false);

    // The running forwarder repeats it (0421) after the back-off and gets the 0430.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let f = Arc::new(f);
    let runner = {
        let f = Arc::clone(&f);
        tokio::spawn(async move { f.run(stop_rx).await })
    };
    let mut delivered = false;
    for _ in 0..1000 {
        if store
            .due_reversals(now_us() + 3_600_000_000, 10)
            .await
            .expect("due")
            .is_empty()
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send_replace(true);
    runner.await.expect("runner");
    assert!(delivered, "reversal never acknowledged");
    let bank = n.bank.stats();
    assert_eq!(bank.reversals_applied, 1);
    assert!(bank.reversal_repeats >= 1);
    assert_eq!(n.bank.balance_fen(PAN), Some(1_000_000));
    assert_eq!(f.totals().reversals_acknowledged, 1);
    store
}

#[tokio::test]
async fn a_queued_reversal_is_delivered_after_the_bank_comes_back_sqlite() {
    let backend = SqliteBackend(tempfile::tempdir().expect("dir"));
    let store = queued_reversal_is_delivered_after_the_bank_returns(&backend).await;
    store.close().await;
}

/// A PostgreSQL backend in a schema of its own, its URL and the schema (to drop at the end).
fn postgres_backend(test: &str) -> (PostgresBackend, String, String) {
    let url = std::env::var("SWITCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "links_{test}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut config = PostgresConfig::new(url.clone());
    config.schema = Some(schema.clone());
    config.connections_max = 4;
    (PostgresBackend(config), url, schema)
}

#[tokio::test]
async fn a_queued_reversal_is_delivered_after_the_bank_comes_back_postgres() {
    let (backend, url, schema) = postgres_backend("test");
    let store = queued_reversal_is_delivered_after_the_bank_returns(&backend).await;
    store.close().await;
    PostgresStore::drop_schema(&url, &schema)
        .await
        .expect("drop test schema");
}

/// Runs the forwarder until nothing is due within the next hour (every queued message
/// acknowledged), failing after a generous deadline.
async fn forward_until_acknowledged<S: Store>(f: &Forwarder<S, IssuerLinks>, store: &S) {
    for _ in 0..500 {
        f.run_once().await.expect("poll");
        let later = now_us() + 3_600_000_000;
        if store.due_advices(later, 10).await.expect("due").is_empty()
            && store
                .due_reversals(later, 10)
                .await
                .expect("due")
                .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("queued messages never acknowledged");
}

/// The switch approved a purchase in stand-in while the bank's link was down and queued its
/// 0220. The bank is still down at the first poll, the switch restarts, the first 0220 is
/// applied but its answer lost, the 0221 repeat is acknowledged: the bank's account carries
/// the purchase exactly once. Then the acquirer reverses it: the bank undoes it and ends
/// with the original balance. A second stand-in reversed while the bank is still down reaches
/// the bank as advice, then reversal, in one poll.
async fn stand_in_advice_is_posted_once_then_reversed<B: Backend>(backend: &B) -> Arc<B::S> {
    let n = net(Options::default()).await;
    let store = backend.open().await;
    let fx = testkit::seed(&*store, 1_000_000, 1_000_000)
        .await
        .expect("seed");
    assert_eq!((&fx.bank, fx.pan.expose_digits()), (&bank_id(), PAN));
    let opening = n.bank.balance_fen(PAN).expect("account");

    let approval = testkit::stand_in(&fx, 5151, 4_321);
    let store =
        queue_while_the_bank_is_down_and_restart(&n, backend, store, approval.clone()).await;
    let due = store.due_advices(now_us(), 10).await.expect("due");
    assert_eq!((due.len(), due[0].attempts), (1, 0));
    let metrics = Arc::new(switch::metrics::Metrics::default());
    let f = Forwarder::new(Arc::clone(&store), Arc::clone(&n.links), forwarder_config())
        .expect("forwarder")
        .with_metrics(Arc::clone(&metrics));
    n.bank.restart().await.expect("restart");
    wait_state(&n.links, LinkState::SignedOn).await;
    n.bank.faults().set_drop_responses(true);
    let report = f.run_once().await.expect("poll");
    assert_eq!(report.unanswered, 1, "the 0220's answer is lost");
    assert_eq!(n.bank.balance_fen(PAN), Some(opening - 4_321));
    n.bank.faults().set_drop_responses(false);
    forward_until_acknowledged(&f, &*store).await;
    let stats = n.bank.stats();
    assert_eq!(stats.advices_applied, 1, "posted once");
    assert!(stats.advice_repeats >= 1, "a 0221 was sent");
    assert_eq!(n.bank.balance_fen(PAN), Some(opening - 4_321));
    assert_eq!(
        n.bank.totals().debits,
        schemas::iso8583::Tally {
            count: 1,
            amount: schemas::domain::AmountFen::new(4_321).unwrap()
        }
    );
    assert_eq!(f.totals().advices_acknowledged, 1);
    assert_eq!(metrics.advices_acknowledged.load(Ordering::Relaxed), 1);

    // The acquirer reverses the stand-in: the bank undoes it.
    let reversal = testkit::reversal_of(&fx, &approval, 5152);
    let outcome = store.commit_decisions(vec![reversal], now_us()).await;
    assert!(outcome.results[0].is_ok(), "{:?}", outcome.results);
    forward_until_acknowledged(&f, &*store).await;
    assert_eq!(n.bank.stats().reversals_applied, 1);
    assert_eq!(n.bank.balance_fen(PAN), Some(opening));

    // Stand-in and its reversal both queued while the bank is down: advice first, in one poll.
    n.bank.stop().await;
    wait_state(&n.links, LinkState::Down).await;
    let second = testkit::stand_in(&fx, 5153, 999);
    let reversal = testkit::reversal_of(&fx, &second, 5154);
    let outcome = store
        .commit_decisions(vec![second, reversal], now_us())
        .await;
    assert!(outcome.results.iter().all(|r| r.is_ok()));
    assert!(
        store
            .due_reversals(i64::MAX, 10)
            .await
            .expect("due")
            .is_empty(),
        "the reversal waits for its advice"
    );
    // Both are overdue for a forwarder that alerts at once; the reversal is held.
    let mut alert_at_once = forwarder_config();
    alert_at_once.backlog_alert_age = Duration::ZERO;
    let watcher =
        Forwarder::new(Arc::clone(&store), Arc::clone(&n.links), alert_at_once).expect("forwarder");
    let overdue: Vec<(SafKind, u64, u64)> = watcher
        .overdue()
        .await
        .expect("backlog")
        .iter()
        .map(|q| (q.kind, q.pending, q.held))
        .collect();
    assert_eq!(
        overdue,
        vec![(SafKind::Reversal, 1, 1), (SafKind::Advice, 1, 0)]
    );
    assert!(
        f.overdue().await.expect("backlog").is_empty(),
        "15 min not passed"
    );
    n.bank.restart().await.expect("restart");
    wait_state(&n.links, LinkState::SignedOn).await;
    let report = f.run_once().await.expect("poll");
    assert_eq!((report.due, report.acknowledged), (2, 2));
    assert!(watcher.overdue().await.expect("backlog").is_empty());
    let stats = n.bank.stats();
    assert_eq!((stats.advices_applied, stats.reversals_applied), (2, 2));
    assert_eq!(n.bank.balance_fen(PAN), Some(opening));
    store
}

#[tokio::test]
async fn a_stand_in_advice_is_posted_once_and_its_reversal_follows_it_sqlite() {
    let backend = SqliteBackend(tempfile::tempdir().expect("dir"));
    let store = stand_in_advice_is_posted_once_then_reversed(&backend).await;
    store.close().await;
}

#[tokio::test]
async fn a_stand_in_advice_is_posted_once_and_its_reversal_follows_it_postgres() {
    let (backend, url, schema) = postgres_backend("advice");
    let store = stand_in_advice_is_posted_once_then_reversed(&backend).await;
    store.close().await;
    PostgresStore::drop_schema(&url, &schema)
        .await
        .expect("drop test schema");
}

#[tokio::test]
async fn a_key_exchange_the_bank_rejects_keeps_the_current_key() {
    // The switch holds a ZMK the bank does not share: the bank cannot import the new ZPK.
    let bank = start_bank(bank_hsm(), "127.0.0.1:0").await;
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let mut config = issuer_config(&hsm, bank.addr().to_string(), &Options::default());
    config.zmk = Zmk::from_token(
        hsm.import_clear_key(KeyType::Zmk, KeyScheme::U, TPK_HEX)
            .expect("other zmk"),
    );
    let links = IssuerLinks::start(
        vec![config],
        hsm.clone() as Arc<dyn Hsm>,
        LinksOptions::new(InstitutionId::parse("9999").expect("id")),
    )
    .expect("links");
    wait_state(&links, LinkState::SignedOn).await;
    let before = links.zpk(&bank_id()).expect("zpk");
    let bank_before = bank.current_zpk().expect("bank zpk");
    let r = links.exchange_keys(&bank_id()).await;
    assert!(
        matches!(r, Err(LinkError::Declined(c)) if c.as_str() == "30"),
        "{r:?}"
    );
    assert_eq!(links.zpk(&bank_id()), Some(before));
    assert_eq!(links.previous_zpk(&bank_id()), None);
    assert_eq!(bank.current_zpk(), Some(bank_before));
    assert_eq!(bank.stats().key_exchanges, 0);
}

#[tokio::test]
async fn with_key_exchange_on_sign_on_every_connection_starts_with_a_fresh_zpk() {
    let bank = start_bank(bank_hsm(), "127.0.0.1:0").await;
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let mut config = issuer_config(&hsm, bank.addr().to_string(), &Options::default());
    config.key_exchange_on_sign_on = true;
    let configured = config.zpk.clone().expect("zpk");
    let links = IssuerLinks::start(
        vec![config],
        hsm.clone() as Arc<dyn Hsm>,
        LinksOptions::new(InstitutionId::parse("9999").expect("id")),
    )
    .expect("links");
    wait_state(&links, LinkState::SignedOn).await;
    let first = links.zpk(&bank_id()).expect("zpk");
    assert_ne!(first, configured);
    assert_eq!(bank.stats().key_exchanges, 1);
    bank.stop().await;
    wait_state(&links, LinkState::Down).await;
    bank.restart().await.expect("restart");
    wait_state(&links, LinkState::SignedOn).await;
    let second = links.zpk(&bank_id()).expect("zpk");
    assert_ne!(second, first);
    assert_eq!(bank.stats().key_exchanges, 2);
}

async fn read_frame(sock: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    sock.read_exact(&mut len).await.expect("length");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    sock.read_exact(&mut body).await.expect("body");
    body
}

async fn write_frame(sock: &mut tokio::net::TcpStream, m: &OwnedMessage<'_>) {
    let mut body = Vec::new();
    spec("ssc87")
        .expect("spec")
        .encode(m, &mut body)
        .expect("encode");
    let mut frame = (body.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    sock.write_all(&frame).await.expect("write");
}

#[tokio::test]
async fn an_echo_test_from_the_bank_is_answered_and_garbage_is_counted_not_fatal() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let links = IssuerLinks::start(
        vec![issuer_config(&hsm, addr.to_string(), &Options::default())],
        hsm.clone() as Arc<dyn Hsm>,
        LinksOptions::new(InstitutionId::parse("9999").expect("id")),
    )
    .expect("links");
    let (mut sock, _) = listener.accept().await.expect("accept");
    let s = spec("ssc87").expect("spec");
    // Answer the sign-on.
    let body = read_frame(&mut sock).await;
    let sign_on = s.decode(&body).expect("decode");
    assert_eq!(sign_on.mti().as_str(), "0800");
    assert_eq!(sign_on.get_str(70).expect("70"), "001");
    let mut ok = sign_on.to_response().expect("0810");
    ok.set_str(39, "00").expect("39");
    write_frame(&mut sock, &ok).await;
    wait_state(&links, LinkState::SignedOn).await;
    // The bank tests the link.
    let mut echo = s.message(Mti::new("0800").expect("mti"));
    echo.set_str(7, "1123093605")
        .and_then(|m| m.set_u64(11, 777))
        .and_then(|m| m.set_str(70, "301"))
        .expect("fields");
    write_frame(&mut sock, &echo).await;
    let body = read_frame(&mut sock).await;
    let answer = s.decode(&body).expect("decode");
    assert_eq!(answer.mti().as_str(), "0810");
    assert_eq!(answer.get_u64(11).expect("11"), 777);
    assert_eq!(answer.get_str(39).expect("39"), "00");
    assert!(links.is_up(&bank_id()));
    // A well-framed message that is not ISO 8583 is counted and discarded; the link stays.
    sock.write_all(&[0x00, 0x04, b'X', b'X', b'X', b'X'])
        .await
        .expect("write");
    eventually("garbage counted", || {
        links.stats(&bank_id()).expect("stats").undecodable == 1
    })
    .await;
    assert!(links.is_up(&bank_id()));
}

/// The advices the forwarder builds carry what `ssc87.md` says: 0420 then 0421, the
/// reversal's STAN and time, the original's RRN and terminal, 90 and 100.
#[tokio::test]
async fn the_forwarder_sends_0420_then_0421_with_the_documented_fields() {
    let fields = [2u16, 3, 4, 7, 11, 37, 41, 90, 100];
    let (fx, t, seen) =
        scripted_bank_sees(|fx| testkit::bank_timeout(fx, 77, 3_000), &fields).await;
    let stan = format!("{:06}", t.stan.value());
    let expected = vec![
        PAN.to_owned(),
        "000000".into(),
        "000000003000".into(),
        t.transmission_at.as_str().to_owned(),
        stan.clone(),
        t.rrn.as_str().to_owned(),
        "KIOSK001".into(),
        format!(
            "0200{stan}{}{:0>11}{:0>11}",
            t.transmission_at.as_str(),
            fx.hospital.as_str(),
            "9999"
        ),
        bank_id().as_str().to_owned(),
    ];
    assert_eq!(seen[0], ("0420".to_owned(), expected.clone()));
    assert_eq!(seen[1], ("0421".to_owned(), expected));
}

/// A stand-in advice carries what `ssc87.md` says ("Stand-in advices"): 0220 then 0221, 38 the
/// stand-in code, 39 the stand-in reason, 48 the stand-in indicator.
#[tokio::test]
async fn the_forwarder_sends_0220_then_0221_with_the_documented_fields() {
    let fields = [2u16, 3, 4, 7, 11, 32, 33, 37, 38, 39, 41, 48, 49, 100];
    let (fx, t, seen) = scripted_bank_sees(|fx| testkit::stand_in(fx, 78, 4_000), &fields).await;
    let expected = vec![
        PAN.to_owned(),
        "000000".into(),
        "000000004000".into(),
        t.transmission_at.as_str().to_owned(),
        format!("{:06}", t.stan.value()),
        fx.hospital.as_str().to_owned(),
        "9999".into(),
        t.rrn.as_str().to_owned(),
        "S00078".into(),
        "91".into(),
        "KIOSK001".into(),
        "STI0011".into(),
        "156".into(),
        bank_id().as_str().to_owned(),
    ];
    assert_eq!(seen[0], ("0220".to_owned(), expected.clone()));
    assert_eq!(seen[1], ("0221".to_owned(), expected));
}

/// Commits `decision`, lets the forwarder send its queued message to a scripted bank that
/// ignores the first copy and answers the repeat, and returns what the bank saw of `fields`.
async fn scripted_bank_sees(
    decision: impl FnOnce(&testkit::Fixture) -> switch::store::Decision,
    fields: &[u16],
) -> (
    testkit::Fixture,
    switch::store::TransactionRecord,
    Vec<(String, Vec<String>)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let links = Arc::new(
        IssuerLinks::start(
            vec![issuer_config(&hsm, addr.to_string(), &Options::default())],
            hsm.clone() as Arc<dyn Hsm>,
            LinksOptions::new(InstitutionId::parse("9999").expect("id")),
        )
        .expect("links"),
    );
    let backend = SqliteBackend(tempfile::tempdir().expect("dir"));
    let store = backend.open().await;
    let fx = testkit::seed(&*store, 0, 0).await.expect("seed");
    let decision = decision(&fx);
    let t = decision.transaction.clone();
    let outcome = store.commit_decisions(vec![decision], now_us()).await;
    assert!(outcome.results[0].is_ok());

    let fields = fields.to_vec();
    let bank = tokio::spawn(async move {
        let s = spec("ssc87").expect("spec");
        let (mut sock, _) = listener.accept().await.expect("accept");
        let body = read_frame(&mut sock).await;
        let mut ok = s
            .decode(&body)
            .expect("sign-on")
            .to_response()
            .expect("0810");
        ok.set_str(39, "00").expect("39");
        write_frame(&mut sock, &ok).await;
        let mut seen = Vec::new();
        for answer in [false, true] {
            let body = read_frame(&mut sock).await;
            let m = s.decode(&body).expect("advice");
            let values: Vec<String> = fields
                .iter()
                .map(|id| m.get_str(*id).expect("field").into_owned())
                .collect();
            seen.push((m.mti().as_str().to_owned(), values));
            if answer {
                let class = m.mti().as_str()[..2].to_owned();
                let mut r = m.to_response().expect("response");
                r.set_mti(Mti::new(&format!("{class}30")).expect("mti"));
                r.set_str(39, "00").expect("39");
                write_frame(&mut sock, &r).await;
            }
        }
        seen
    });
    wait_state(&links, LinkState::SignedOn).await;
    let f = Forwarder::new(Arc::clone(&store), Arc::clone(&links), forwarder_config())
        .expect("forwarder");
    assert_eq!(f.run_once().await.expect("poll").unanswered, 1);
    let mut acknowledged = 0;
    for _ in 0..500 {
        acknowledged += f.run_once().await.expect("poll").acknowledged;
        if acknowledged > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(acknowledged, 1);
    let seen = bank.await.expect("bank");
    let later = now_us() + 3_600_000_000;
    assert!(store
        .due_reversals(later, 10)
        .await
        .expect("due")
        .is_empty());
    assert!(store.due_advices(later, 10).await.expect("due").is_empty());
    store.close().await;
    (fx, t, seen)
}

#[tokio::test]
async fn keys_are_exchanged_periodically_while_signed_on() {
    let bank = start_bank(bank_hsm(), "127.0.0.1:0").await;
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let mut config = issuer_config(&hsm, bank.addr().to_string(), &Options::default());
    config.key_exchange_interval = Some(Duration::from_millis(50));
    let links = IssuerLinks::start(
        vec![config],
        hsm.clone() as Arc<dyn Hsm>,
        LinksOptions::new(InstitutionId::parse("9999").expect("id")),
    )
    .expect("links");
    wait_state(&links, LinkState::SignedOn).await;
    eventually("two periodic key exchanges", || {
        links.stats(&bank_id()).expect("stats").key_exchanges >= 2
    })
    .await;
    assert!(bank.stats().key_exchanges >= 2);
    assert!(links.previous_zpk(&bank_id()).is_some());
}
