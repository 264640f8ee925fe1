//! The relay channel over loopback TCP: a back end drives the card held by a kiosk agent
//! (online card authentication, a whole payment), and bad frames end only their connection.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use card_apdu::channel::relay::{self, RelayChannel, KIND_ERROR};
use card_apdu::channel::CardChannel;
use card_apdu::kiosk::pboc::{complete_payment, start_payment, PaymentRequest, Terminal};
use card_apdu::kiosk::ssse::SsseCard;

/// Starts an agent serving the demo card to `connections` successive drivers.
fn agent(connections: usize) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<bool>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let (mut card, _) = common::demo();
        (0..connections)
            .map(|_| {
                let (mut stream, _) = listener.accept().expect("accept");
                relay::serve(&mut stream, &mut card).is_ok()
            })
            .collect()
    });
    (addr, handle)
}

#[test]
fn back_end_authenticates_the_card_and_pays_through_the_relay() {
    let (addr, agent) = agent(1);
    let (_, mut issuer) = common::demo();
    {
        let mut ch = RelayChannel::connect(addr, Duration::from_secs(5)).expect("connect");
        assert_eq!(ch.atr().expect("atr"), card_apdu::vcard::default_atr());
        let mut card = SsseCard::open(&mut ch).expect("select");
        let auth = card.authenticate(&mut issuer, true).expect("authenticate");
        assert!(auth.card_authenticated && auth.backend_authenticated);
        let mut s = start_payment(
            &mut ch,
            &Terminal::default(),
            &PaymentRequest::new(500, [0x26, 1, 1], [0, 0, 0]),
        )
        .expect("start");
        let a = issuer
            .authorise(&s.pan, &s.request.psn, &s.request.field55, *b"00")
            .expect("authorise");
        assert!(a.arqc_valid);
        assert!(
            complete_payment(&mut ch, &mut s, &a.response)
                .expect("complete")
                .approved
        );
    }
    assert_eq!(agent.join().expect("agent"), vec![true]);
}

#[test]
fn unknown_frame_kind_gets_an_error_frame_and_only_that_connection_closes() {
    let (addr, agent) = agent(2);
    let mut bad = TcpStream::connect(addr).expect("connect");
    bad.write_all(&[0, 0, 0, 2, 0x55, 0x00]).expect("write");
    let (kind, body) = relay::read_frame(&mut bad).expect("read").expect("a frame");
    assert_eq!(kind, KIND_ERROR);
    assert!(String::from_utf8_lossy(&body).contains("unknown request kind 55"));
    let mut rest = Vec::new();
    bad.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty(), "agent closes after the error frame");

    // The next driver is served normally.
    let mut ch = RelayChannel::connect(addr, Duration::from_secs(5)).expect("connect");
    let basics = SsseCard::open(&mut ch)
        .expect("select")
        .read_basics()
        .expect("read");
    assert_eq!(basics.name, "张三");
    drop(ch);
    assert_eq!(agent.join().expect("agent"), vec![false, true]);
}

#[test]
fn oversized_frame_length_is_refused() {
    let (addr, agent) = agent(1);
    let mut bad = TcpStream::connect(addr).expect("connect");
    bad.write_all(&(relay::FRAME_LEN_MAX as u32 + 1).to_be_bytes())
        .expect("write");
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    assert_eq!(agent.join().expect("agent"), vec![false]);
}
