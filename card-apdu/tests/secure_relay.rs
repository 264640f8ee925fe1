//! Card relay v2 over loopback TCP: the back end drives a kiosk's card only after both ends
//! prove the institution's relay key, every frame is MACed and counted, and a session is
//! bounded (one at a time per reader, idle and command limits, frame size).

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use card_apdu::channel::relay::{read_frame, KIND_ERROR, KIND_TRANSMIT};
use card_apdu::channel::secure_relay::{
    serve_one_at_a_time, AgentConfig, RelayLimits, SecureRelayChannel, SessionReport,
};
use card_apdu::channel::{CardChannel, ChannelError};
use card_apdu::kiosk::identity::{KioskMac, KioskMacAlgorithm};
use card_apdu::kiosk::ssse::SsseCard;
use hsm_sim::card_crypto::ClearPin;

const TERMINAL: &str = "JC000001";
const KEY: [u8; 16] = [0x3C; 16];

fn key(bytes: &[u8; 16]) -> KioskMac {
    KioskMac::new(KioskMacAlgorithm::Sm4, bytes).expect("key")
}

type Sessions = mpsc::Receiver<Result<SessionReport, ChannelError>>;

/// A kiosk agent serving the demo card with `limits`; how each session ended comes out of
/// the receiver.
fn agent(limits: RelayLimits) -> (std::net::SocketAddr, Sessions) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut card, _) = common::demo();
        let cfg = AgentConfig {
            terminal: TERMINAL.into(),
            key: key(&KEY),
            limits,
        };
        let stop = Arc::new(AtomicBool::new(false));
        serve_one_at_a_time(listener, &mut card, &cfg, &stop, |r| {
            let _ = tx.send(r);
        });
    });
    (addr, rx)
}

fn driver(addr: std::net::SocketAddr, k: &[u8; 16]) -> Result<SecureRelayChannel, ChannelError> {
    SecureRelayChannel::connect(
        addr,
        TERMINAL,
        key(k),
        RelayLimits::default(),
        Duration::from_secs(5),
    )
}

fn session(rx: &Sessions) -> Result<SessionReport, ChannelError> {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the agent reports the session")
}

#[test]
fn the_back_end_unblocks_the_ssse_pin_over_the_authenticated_relay() {
    let (addr, sessions) = agent(RelayLimits::default());
    let (_, mut issuer) = common::demo();
    let new_pin = ClearPin::new("654321").expect("pin");
    {
        let mut ch = driver(addr, &KEY).expect("both ends authenticated");
        assert_eq!(ch.atr().expect("atr"), card_apdu::vcard::default_atr());
        let mut card = SsseCard::open(&mut ch).expect("select");
        card.unblock_pin(&mut issuer, &new_pin)
            .expect("PIN unblock");
        card.verify_pin(&new_pin).expect("the new PIN works");
    }
    let report = session(&sessions).expect("a clean session");
    assert!(report.apdus >= 4, "{report:?}");
}

#[test]
fn a_driver_without_the_institutions_key_is_refused_before_any_command() {
    let (addr, sessions) = agent(RelayLimits::default());
    let refused = driver(addr, &[0x77; 16]).err().expect("refused");
    assert!(
        refused.to_string().contains("driver not authenticated"),
        "{refused}"
    );
    let agent_side = session(&sessions).expect_err("the agent refused it");
    assert!(agent_side.to_string().contains("driver not authenticated"));
}

#[test]
fn an_agent_without_the_key_is_not_trusted_by_the_back_end() {
    // The back end dials a kiosk that answers with another key (an impostor agent).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let (mut card, _) = common::demo();
        let cfg = AgentConfig {
            terminal: TERMINAL.into(),
            key: key(&[0x55; 16]),
            limits: RelayLimits::default(),
        };
        let stop = AtomicBool::new(false);
        serve_one_at_a_time(listener, &mut card, &cfg, &stop, |_| {});
    });
    assert!(driver(addr, &KEY).is_err());
}

#[test]
fn a_second_driver_while_a_session_is_open_is_told_busy_and_served_after() {
    let (addr, sessions) = agent(RelayLimits::default());
    let mut first = driver(addr, &KEY).expect("first session");
    first.atr().expect("first session works");
    let busy = driver(addr, &KEY).err().expect("second refused");
    assert!(busy.to_string().contains("busy"), "{busy}");
    drop(first);
    session(&sessions).expect("first session ended cleanly");
    let mut third = driver(addr, &KEY).expect("served once the reader is free");
    third.atr().expect("atr");
}

#[test]
fn a_frame_with_a_wrong_mac_ends_the_session() {
    let (addr, sessions) = agent(RelayLimits::default());
    let mut ch = driver(addr, &KEY).expect("session");
    // SELECT SSSE with a MAC of zeros.
    let mut frame = 13u32.to_be_bytes().to_vec();
    frame.push(KIND_TRANSMIT);
    frame.extend_from_slice(&[0x00, 0xA4, 0x04, 0x00]);
    frame.extend_from_slice(&[0u8; 8]);
    ch.stream_mut().write_all(&frame).expect("write");
    let (kind, reason) = read_frame(ch.stream_mut()).expect("read").expect("frame");
    assert_eq!(kind, KIND_ERROR);
    assert!(String::from_utf8_lossy(&reason).contains("MAC"));
    assert!(session(&sessions).is_err());
}

#[test]
fn a_frame_longer_than_the_limit_is_refused() {
    let (addr, sessions) = agent(RelayLimits::default());
    let mut ch = driver(addr, &KEY).expect("session");
    ch.stream_mut()
        .write_all(&5_000u32.to_be_bytes())
        .expect("write");
    let (kind, _) = read_frame(ch.stream_mut()).expect("read").expect("frame");
    assert_eq!(kind, KIND_ERROR);
    let e = session(&sessions).expect_err("refused");
    assert!(e.to_string().contains("frame length"), "{e}");
}

#[test]
fn a_driver_that_goes_quiet_is_cut_off() {
    let limits = RelayLimits {
        idle_timeout: Duration::from_millis(200),
        ..RelayLimits::default()
    };
    let (addr, sessions) = agent(limits);
    let mut ch = driver(addr, &KEY).expect("session");
    // Say nothing: the agent ends the session with a timeout.
    let (kind, reason) = read_frame(ch.stream_mut()).expect("read").expect("frame");
    assert_eq!(kind, KIND_ERROR);
    assert!(String::from_utf8_lossy(&reason).contains("timeout"));
    assert!(matches!(session(&sessions), Err(ChannelError::Timeout(_))));
}

#[test]
fn a_session_carries_at_most_its_command_limit() {
    let limits = RelayLimits {
        apdus_per_session_max: 2,
        ..RelayLimits::default()
    };
    let (addr, sessions) = agent(limits);
    let mut ch = driver(addr, &KEY).expect("session");
    for _ in 0..2 {
        ch.transmit_raw(&[0x00, 0x84, 0x00, 0x00, 0x08])
            .expect("within the limit");
    }
    let e = ch
        .transmit_raw(&[0x00, 0x84, 0x00, 0x00, 0x08])
        .expect_err("third refused");
    assert!(e.to_string().contains("too many commands"), "{e}");
    assert!(session(&sessions).is_err());
}

/// EF06's record 0A, the cardholder's sex (GB/T 2261.1: `1` male, `2` female).
const SEX: u8 = card_apdu::tags::ssse::SEX;

#[test]
fn the_back_end_rewrites_an_ef06_record_under_line_protection_over_the_relay() {
    let (addr, sessions) = agent(RelayLimits::default());
    let (_, mut issuer) = common::demo();
    {
        let mut ch = driver(addr, &KEY).expect("both ends authenticated");
        let mut card = SsseCard::open(&mut ch).expect("select");
        assert_eq!(card.read_ef06_record(SEX).expect("read"), b"1");
        card.update_ef06_record(&mut issuer, SEX, b"2")
            .expect("UPDATE RECORD with secure messaging");
        assert_eq!(card.read_ef06_record(SEX).expect("read back"), b"2");
    }
    session(&sessions).expect("a clean session");
}

/// A back end holding another line-protection key: its MAC is wrong for the card.
struct WrongLineKey(card_apdu::issuer::IssuerSim);

impl card_apdu::kiosk::ssse::SsseBackend for WrongLineKey {
    fn verify_internal_auth(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        response: &[u8],
    ) -> Result<bool, card_apdu::kiosk::KioskError> {
        self.0.verify_internal_auth(card_id, challenge, response)
    }
    fn external_auth_cryptogram(
        &mut self,
        card_id: &str,
        card_challenge: &[u8],
    ) -> Result<Vec<u8>, card_apdu::kiosk::KioskError> {
        self.0.external_auth_cryptogram(card_id, card_challenge)
    }
    fn pin_unblock_mac(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        new_pin_bcd: &[u8],
    ) -> Result<[u8; 4], card_apdu::kiosk::KioskError> {
        self.0.pin_unblock_mac(card_id, challenge, new_pin_bcd)
    }
    fn update_record_mac(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        p1p2: [u8; 2],
        record: &[u8],
    ) -> Result<[u8; 4], card_apdu::kiosk::KioskError> {
        let mut mac = self.0.update_record_mac(card_id, challenge, p1p2, record)?;
        mac[3] ^= 0x01;
        Ok(mac)
    }
}

#[test]
fn the_card_refuses_an_ef06_update_whose_mac_does_not_verify_with_6988() {
    let (addr, sessions) = agent(RelayLimits::default());
    let (_, issuer) = common::demo();
    let mut wrong = WrongLineKey(issuer);
    {
        let mut ch = driver(addr, &KEY).expect("both ends authenticated");
        let mut card = SsseCard::open(&mut ch).expect("select");
        let refused = card
            .update_ef06_record(&mut wrong, SEX, b"2")
            .expect_err("a wrong MAC");
        assert!(
            matches!(
                refused,
                card_apdu::kiosk::KioskError::Card {
                    sw: card_apdu::sw::StatusWord::SecureMessagingDataIncorrect,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert_eq!(card.read_ef06_record(SEX).expect("read"), b"1", "unchanged");
    }
    session(&sessions).expect("the relay itself stayed sound");
}
