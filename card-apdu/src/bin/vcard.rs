//! `vcard`: serves virtual social-security cards to vsmartcard's vpcd driver so pcscd shows them
//! in real readers.
//!
//! ```text
//! vcard [--card FILE]...                    # default: the built-in demo card
//!       [--vpcd HOST:PORT]                  # connect to a listening vpcd (default 127.0.0.1:35963)
//!       [--listen ADDR]                     # or wait for a vpcd configured to dial the card
//! ```
//! With several `--card`s, card *i* goes to vpcd slot *i* (port + i), i.e. reader
//! "Virtual PCD 00 0i". The process reconnects whenever pcscd restarts; stop it with a signal.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use card_apdu::perso::{CardProfile, PersoFile};
use card_apdu::vcard::VirtualCard;
use card_apdu::vpcd;
use clap::Parser;

const DEMO_CARD: &str = include_str!("../../testdata/demo-card.toml");

#[derive(Parser)]
#[command(about = "Serve virtual social-security cards (SSSE + PBOC) to vsmartcard's vpcd")]
struct Args {
    /// Personalisation file (TOML or JSON); repeat for more cards (one per vpcd slot).
    #[arg(long)]
    card: Vec<PathBuf>,
    /// Address of a listening vpcd (Debian default).
    #[arg(long, default_value = "127.0.0.1")]
    vpcd_host: String,
    /// Port of vpcd slot 0; slot i uses port + i.
    #[arg(long, default_value_t = vpcd::VPCD_PORT)]
    vpcd_port: u16,
    /// Listen here instead, for a vpcd configured to connect to the card (first card only).
    #[arg(long)]
    listen: Option<String>,
    /// Pause between reconnection attempts, in milliseconds.
    #[arg(long, default_value_t = 200)]
    retry_ms: u64,
}

fn load(args: &Args) -> Result<Vec<VirtualCard>, String> {
    if args.card.is_empty() {
        let file = PersoFile::from_toml(DEMO_CARD).map_err(|e| e.to_string())?;
        return Ok(vec![VirtualCard::new(
            CardProfile::from_perso(&file).map_err(|e| e.to_string())?,
        )]);
    }
    args.card
        .iter()
        .map(|p| {
            CardProfile::load(p)
                .map(VirtualCard::new)
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let cards = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vcard: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    static STOP: AtomicBool = AtomicBool::new(false);
    if let Some(addr) = &args.listen {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("vcard: cannot listen on {addr}: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        let Some(mut card) = cards.into_iter().next() else {
            return std::process::ExitCode::from(2);
        };
        eprintln!("vcard: waiting for vpcd on {addr}");
        if let Err(e) = vpcd::run_listener(&listener, &mut card, &STOP) {
            eprintln!("vcard: {e}");
            return std::process::ExitCode::from(1);
        }
        return std::process::ExitCode::SUCCESS;
    }
    let retry = Duration::from_millis(args.retry_ms);
    let handles: Vec<_> = cards
        .into_iter()
        .enumerate()
        .map(|(slot, mut card)| {
            let host = args.vpcd_host.clone();
            let port = args.vpcd_port.saturating_add(slot as u16);
            eprintln!("vcard: card {slot} → vpcd at {host}:{port} ({card:?})");
            std::thread::spawn(move || {
                vpcd::run_client((host.as_str(), port), &mut card, retry, &STOP)
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    std::process::ExitCode::SUCCESS
}
