//! The virtual card's side of vsmartcard's vpcd protocol, so pcscd shows a real reader ("Virtual
//! PCD 00 00") holding our card and any PC/SC application (pcsc_scan, scriptor, a kiosk) can use it.
//!
//! Protocol (vsmartcard `vpcd.c` / `vpicc`): every message in both directions is a 2-byte
//! big-endian length followed by that many bytes. From vpcd, a 1-byte message is a control
//! code — `00` power off, `01` power on, `02` reset, `04` get ATR (answered with the ATR) —
//! anything longer is a command APDU, answered with the response APDU.
//!
//! Topology: Debian's driver (`/etc/reader.conf.d/vpcd`, `DEVICENAME /dev/null:0x8C7B`) listens on
//! TCP 35963 (slot 0; 35964 for slot 1) and the card connects to it: [`run_client`], which
//! reconnects when pcscd restarts. If vpcd is configured with a host name instead
//! (`DEVICENAME host:0x8C7B`) it connects out to the card: [`run_listener`].

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::vcard::VirtualCard;

/// Debian's default vpcd port (0x8C7B) for slot 0.
pub const VPCD_PORT: u16 = 35963;
/// Control code: power off.
pub const CTRL_POWER_OFF: u8 = 0x00;
/// Control code: power on.
pub const CTRL_POWER_ON: u8 = 0x01;
/// Control code: reset.
pub const CTRL_RESET: u8 = 0x02;
/// Control code: get ATR.
pub const CTRL_GET_ATR: u8 = 0x04;

fn send(stream: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| std::io::Error::other("response longer than 65535 bytes"))?;
    let mut buf = Vec::with_capacity(payload.len() + 2);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    stream.write_all(&buf)?;
    stream.flush()
}

/// Serves one vpcd connection until it closes. The card is powered off when it ends, as when a
/// card leaves a reader (pcscd restarting, reader removed).
pub fn serve(stream: &mut (impl Read + Write), card: &mut VirtualCard) -> std::io::Result<()> {
    let result = serve_inner(stream, card);
    card.power_off();
    result
}

fn serve_inner(stream: &mut (impl Read + Write), card: &mut VirtualCard) -> std::io::Result<()> {
    let mut len = [0u8; 2];
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        match stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let n = usize::from(u16::from_be_bytes(len));
        let msg = &mut buf[..n];
        stream.read_exact(msg)?;
        match *msg {
            [] => {}
            [CTRL_POWER_OFF] => card.power_off(),
            [CTRL_POWER_ON] => {
                card.power_on();
            }
            [CTRL_RESET] => {
                card.reset();
            }
            [CTRL_GET_ATR] => send(stream, card.atr())?,
            [_] => {} // Unknown control codes are ignored, as vpicc does.
            _ => {
                let response = card.process(msg);
                send(stream, &response)?;
            }
        }
    }
}

/// A vpcd TCP connection that acknowledges every segment at once. vpcd writes the length and
/// the APDU in two `send()`s without TCP_NODELAY, so Nagle holds the APDU until the length is
/// acknowledged; with Linux's delayed ACK that costs ~40 ms per APDU. TCP_QUICKACK (re-armed
/// after each read, as the kernel clears it) removes the wait: measured 50 → ~1 ms per APDU.
struct QuickAck<'a>(&'a mut TcpStream);

impl Read for QuickAck<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&*self.0).set_tcp_quickack(true);
        Ok(n)
    }
}

impl Write for QuickAck<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Serves one vpcd TCP connection (see [`serve`]) with low-latency socket options.
pub fn serve_tcp(stream: &mut TcpStream, card: &mut VirtualCard) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(&*stream).set_tcp_quickack(true);
    serve(&mut QuickAck(stream), card)
}

/// Connects to a listening vpcd at `addr` and serves it; when the connection drops (pcscd
/// stopped or restarted) waits `retry` and connects again, until `stop` is set.
pub fn run_client(
    addr: impl ToSocketAddrs + Clone,
    card: &mut VirtualCard,
    retry: Duration,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match TcpStream::connect(addr.clone()) {
            Ok(mut stream) => {
                if let Err(e) = serve_tcp(&mut stream, card) {
                    eprintln!("vcard: vpcd connection ended: {e}");
                }
            }
            Err(_) => std::thread::sleep(retry),
        }
    }
}

/// Accepts connections from a vpcd configured to dial the card, serving one at a time.
pub fn run_listener(
    listener: &TcpListener,
    card: &mut VirtualCard,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut stream = stream?;
        if let Err(e) = serve_tcp(&mut stream, card) {
            eprintln!("vcard: vpcd connection ended: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A duplex in-memory stream: reads from `input`, collects writes.
    struct Duplex {
        input: std::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_bytes_and_apdus_follow_the_vpcd_framing() {
        let text = include_str!("../testdata/demo-card.toml");
        let file = crate::perso::PersoFile::from_toml(text).expect("perso");
        let mut card =
            VirtualCard::new(crate::perso::CardProfile::from_perso(&file).expect("profile"));
        // power on, get ATR, SELECT PPSE (case 4), unknown INS, power off.
        let input = hex::decode(
            "00010100010400140 0A404000E325041592E5359532E444446303100 0004 00010000 000100"
                .replace(' ', ""),
        )
        .expect("hex");
        let mut io = Duplex {
            input: std::io::Cursor::new(input),
            output: Vec::new(),
        };
        serve(&mut io, &mut card).expect("serve");
        let atr = crate::vcard::default_atr();
        assert_eq!(&io.output[..2], &(atr.len() as u16).to_be_bytes());
        assert_eq!(&io.output[2..2 + atr.len()], &atr[..]);
        let rest = &io.output[2 + atr.len()..];
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert_eq!(
            &rest[2 + n - 2..2 + n],
            &[0x90, 0x00],
            "SELECT PPSE answers 9000"
        );
        let tail = &rest[2 + n..];
        assert_eq!(tail, &[0x00, 0x02, 0x6D, 0x00], "unknown INS answers 6D00");
        assert!(!card.is_powered());
    }

    #[test]
    fn listening_mode_serves_a_vpcd_that_dials_in() {
        let text = include_str!("../testdata/demo-card.toml");
        let file = crate::perso::PersoFile::from_toml(text).expect("perso");
        let mut card =
            VirtualCard::new(crate::perso::CardProfile::from_perso(&file).expect("profile"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        static STOP: AtomicBool = AtomicBool::new(false);
        let server = std::thread::spawn(move || run_listener(&listener, &mut card, &STOP));
        let mut vpcd = TcpStream::connect(addr).expect("connect");
        vpcd.write_all(&[0, 1, CTRL_POWER_ON, 0, 1, CTRL_GET_ATR])
            .expect("write");
        let mut len = [0u8; 2];
        vpcd.read_exact(&mut len).expect("len");
        let mut atr = vec![0u8; usize::from(u16::from_be_bytes(len))];
        vpcd.read_exact(&mut atr).expect("atr");
        assert_eq!(atr, crate::vcard::default_atr());
        drop(vpcd);
        STOP.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(addr); // wakes the accept loop so it sees the stop flag
        server.join().expect("join").expect("listener");
    }
}
