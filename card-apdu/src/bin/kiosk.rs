//! `kiosk`: the kiosk agent's command line. Reads the social-security card, checks PINs, runs the
//! PBOC payment up to the ARQC, and exposes the card to a back end over the relay protocol.
//!
//! ```text
//! kiosk [--json] [--reader NAME | --card FILE | --relay HOST:PORT] COMMAND
//!   readers                      list PC/SC readers and cards
//!   read                         card basics (iReadCardBas equivalent)
//!   verify-pin                   PIN from stdin (one line)
//!   change-pin                   old PIN then new PIN from stdin (two lines)
//!   authenticate --issuer FILE   online card authentication against a simulated back end
//!   pay --amount 12.34           PBOC debit up to the ARQC; prints the field 55 for the switch
//!   identity --switch HOST:PORT --acquirer ID --terminal ID [--tak-file FILE]
//!                                job-centre identity session with the switch (ISO 8583 0100,
//!                                60.1 03): the card and its holder proven, the switch proven
//!                                to the card
//!   serve-relay --listen ADDR    let the back end drive this card over TCP (card relay v2:
//!                                authenticated with --relay-key-file, one session at a time)
//! ```
//! `pay` stops after the first GENERATE AC: sending the ISO 8583 request needs the switch, which
//! does not exist yet. `--complete-with-simulated-issuer FILE` finishes the flow against the
//! simulated issuer of `card_apdu::issuer` (for demos and timing; it is not a switch).
//! Exit codes: 0 done, 2 wrong PIN, 3 PIN or application blocked, 4 identity session declined
//! by the switch (its field 39 printed), 1 anything else.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use card_apdu::channel::memory::MemoryChannel;
use card_apdu::channel::pcsc::{self, PcscChannel};
use card_apdu::channel::secure_relay::{self, AgentConfig, RelayLimits, SecureRelayChannel};
use card_apdu::channel::CardChannel;
use card_apdu::issuer::IssuerSim;
use card_apdu::kiosk::identity;
use card_apdu::kiosk::pboc::{complete_payment, start_payment, PaymentRequest, Terminal};
use card_apdu::kiosk::ssse::SsseCard;
use card_apdu::kiosk::KioskError;
use card_apdu::perso::{CardProfile, PersoFile};
use card_apdu::vcard::VirtualCard;
use clap::{Parser, Subcommand};
use hsm_sim::card_crypto::ClearPin;
use rust_decimal::Decimal;

#[derive(Parser)]
#[command(about = "Kiosk agent for third-generation social-security cards")]
struct Args {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// PC/SC reader (substring of its name); default: the first reader holding a card.
    #[arg(long, global = true)]
    reader: Option<String>,
    /// Use an in-memory virtual card personalised from FILE instead of PC/SC.
    #[arg(long, global = true, conflicts_with_all = ["reader", "relay"])]
    card: Option<PathBuf>,
    /// Drive a card held by a relay agent at HOST:PORT (card relay v2: needs --relay-key-file
    /// and --relay-terminal).
    #[arg(long, global = true)]
    relay: Option<String>,
    /// File holding the relay key of the kiosk's institution, hex (card relay v2).
    #[arg(long, global = true)]
    relay_key_file: Option<PathBuf>,
    /// The relay key's MAC algorithm: sm4, x9.19 or aes-cmac.
    #[arg(long, global = true, default_value = "sm4")]
    relay_mac_algorithm: String,
    /// The kiosk's terminal id in the relay handshake (8 characters).
    #[arg(long, global = true)]
    relay_terminal: Option<String>,
    /// Seconds to wait for a card.
    #[arg(long, global = true, default_value_t = 10)]
    wait: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List PC/SC readers.
    Readers,
    /// Read the card basics (EF05, EF06).
    Read {
        /// Terminal number for the iReadCardBas line.
        #[arg(long, default_value = "T0000001")]
        terminal: String,
    },
    /// Verify the SSSE PIN read from stdin.
    VerifyPin,
    /// Change the SSSE PIN: old then new PIN on stdin.
    ChangePin,
    /// Online card authentication (internal + external) against the simulated back end.
    Authenticate {
        /// Personalisation file whose master keys the simulated back end holds.
        #[arg(long)]
        issuer: PathBuf,
    },
    /// PBOC debit up to the ARQC and field 55.
    Pay {
        /// Amount in yuan, e.g. 12.34.
        #[arg(long)]
        amount: Decimal,
        /// Finish against the simulated issuer holding this file's master keys (not a switch).
        #[arg(long)]
        complete_with_simulated_issuer: Option<PathBuf>,
        /// Terminal without SM algorithm support (forces 3DES).
        #[arg(long)]
        no_sm: bool,
    },
    /// Job-centre identity session with the switch (`schemas/iso8583/ssc87.md`).
    Identity {
        /// The switch's acquirer port (ISO 8583 ssc87, 2-byte length header).
        #[arg(long)]
        switch: String,
        /// Field 32: the job centre's institution id.
        #[arg(long)]
        acquirer: String,
        /// Field 41: this kiosk's terminal id (8 characters).
        #[arg(long)]
        terminal: String,
        /// File holding the kiosk's TAK as hex (its secure module's key); without it the
        /// request goes without a MAC, which only a MAC-free in-house listener accepts.
        #[arg(long)]
        tak_file: Option<PathBuf>,
        /// The TAK's algorithm: sm4, x9.19 or aes-cmac.
        #[arg(long, default_value = "sm4")]
        mac_algorithm: String,
        /// 60.2: the insuring area (GB/T 2260).
        #[arg(long, default_value = "410100")]
        region: String,
        /// Field 11; default from the clock.
        #[arg(long)]
        stan: Option<u32>,
    },
    /// Serve this kiosk's card to a back end over the relay protocol.
    ServeRelay {
        #[arg(long)]
        listen: String,
    },
}

fn read_pin(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Result<ClearPin, String> {
    let mut line = lines
        .next()
        .ok_or("no PIN on stdin")?
        .map_err(|e| e.to_string())?;
    let pin = ClearPin::new(line.trim()).map_err(|_| "PIN must be 4 to 12 digits".to_string());
    zeroize::Zeroize::zeroize(&mut line);
    pin
}

fn open(args: &Args) -> Result<Box<dyn CardChannel>, String> {
    if let Some(file) = &args.card {
        let profile = CardProfile::load(file).map_err(|e| e.to_string())?;
        return Ok(Box::new(MemoryChannel::new(VirtualCard::new(profile))));
    }
    if let Some(addr) = &args.relay {
        let (terminal, key) = relay_credentials(args)?;
        return Ok(Box::new(
            SecureRelayChannel::connect(
                addr.as_str(),
                &terminal,
                key,
                RelayLimits::default(),
                Duration::from_secs(args.wait),
            )
            .map_err(|e| e.to_string())?,
        ));
    }
    let reader = pcsc::wait_for_card(args.reader.as_deref(), Duration::from_secs(args.wait))
        .map_err(|e| e.to_string())?;
    Ok(Box::new(
        PcscChannel::connect(&reader, true).map_err(|e| e.to_string())?,
    ))
}

/// A key in hex from `path`, as the MAC key of `algorithm` (the file's text is wiped).
fn key_file(
    path: &std::path::Path,
    algorithm: &str,
    what: &str,
) -> Result<identity::KioskMac, String> {
    let algorithm = identity::KioskMacAlgorithm::parse(algorithm)
        .ok_or(format!("{what}: the algorithm is sm4, x9.19 or aes-cmac"))?;
    let mut text = std::fs::read_to_string(path).map_err(|e| format!("{what}: {e}"))?;
    let key = hex::decode(text.trim()).map_err(|_| format!("{what}: not hex"));
    zeroize::Zeroize::zeroize(&mut text);
    let mut key = key?;
    let mac = identity::KioskMac::new(algorithm, &key).map_err(|e| format!("{what}: {e}"));
    zeroize::Zeroize::zeroize(&mut key);
    mac
}

/// The terminal id and relay key of card relay v2.
fn relay_credentials(args: &Args) -> Result<(String, identity::KioskMac), String> {
    let terminal = args
        .relay_terminal
        .clone()
        .ok_or("the card relay needs --relay-terminal")?;
    let path = args
        .relay_key_file
        .as_deref()
        .ok_or("the card relay needs --relay-key-file (it is authenticated)")?;
    Ok((
        terminal,
        key_file(path, &args.relay_mac_algorithm, "--relay-key-file")?,
    ))
}

fn today() -> ([u8; 3], [u8; 3]) {
    // UTC date and time as BCD from the system clock (no calendar crate: civil-from-days).
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let bcd = |v: i64| ((v / 10 % 10) as u8) << 4 | (v % 10) as u8;
    let s = secs % 86_400;
    (
        [bcd(y % 100), bcd(m), bcd(d)],
        [
            bcd((s / 3600) as i64),
            bcd((s / 60 % 60) as i64),
            bcd((s % 60) as i64),
        ],
    )
}

fn print<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else {
        println!("{}", human());
    }
}

fn fail(json: bool, e: &KioskError) -> ExitCode {
    let (code, kind) = match e {
        KioskError::PinWrong { .. } => (2, "pin_wrong"),
        KioskError::PinBlocked => (3, "pin_blocked"),
        KioskError::ApplicationBlocked => (3, "application_blocked"),
        _ => (1, "error"),
    };
    if json {
        let tries = if let KioskError::PinWrong { tries_left } = e {
            Some(*tries_left)
        } else {
            None
        };
        println!(
            "{}",
            serde_json::json!({ "error": kind, "message": e.to_string(), "tries_left": tries })
        );
    } else {
        eprintln!("kiosk: {e}");
    }
    ExitCode::from(code)
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    if let Cmd::Readers = args.command {
        let readers = pcsc::list_readers().map_err(|e| e.to_string())?;
        print(args.json, &readers, || {
            readers
                .iter()
                .map(|r| match &r.atr {
                    Some(atr) => {
                        format!("{}: card present, ATR {}", r.name, hex::encode_upper(atr))
                    }
                    None => format!("{}: no card", r.name),
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(ExitCode::SUCCESS);
    }
    let mut ch = open(args)?;
    let json = args.json;
    let outcome = match &args.command {
        Cmd::Readers => Ok(()),
        Cmd::Read { terminal } => SsseCard::open(&mut *ch).and_then(|mut c| c.read_basics()).map(|b| {
            print(json, &b, || {
                format!(
                    "姓名 name: {}\n社会保障号码 SSN: {}\n卡号 card number: {}\n卡识别码 card id: {}\n发卡地区 area: {}\n规范版本 version: {}\n发卡日期 issued: {}\n有效期 expires: {}\niReadCardBas: {}",
                    b.name, b.social_security_number, b.card_number, b.card_identification_code, b.area_code, b.spec_version,
                    b.issue_date, b.expiry_date, b.to_ireadcardbas(terminal, "")
                )
            })
        }),
        Cmd::VerifyPin => {
            let pin = read_pin(&mut lines)?;
            SsseCard::open(&mut *ch).and_then(|mut c| c.verify_pin(&pin)).map(|()| {
                print(json, &serde_json::json!({"pin": "verified"}), || "PIN verified".into())
            })
        }
        Cmd::ChangePin => {
            let (old, new) = (read_pin(&mut lines)?, read_pin(&mut lines)?);
            SsseCard::open(&mut *ch).and_then(|mut c| c.change_pin(&old, &new)).map(|()| {
                print(json, &serde_json::json!({"pin": "changed"}), || "PIN changed".into())
            })
        }
        Cmd::Authenticate { issuer } => {
            let file = PersoFile::load(issuer).map_err(|e| e.to_string())?;
            let mut backend = IssuerSim::from_perso(&file).map_err(|e| e.to_string())?;
            SsseCard::open(&mut *ch).and_then(|mut c| c.authenticate(&mut backend, true)).map(|r| {
                print(json, &r, || format!("card {} authenticated; back end authenticated to the card: {}", r.card_identification_code, r.backend_authenticated))
            })
        }
        Cmd::Pay { amount, complete_with_simulated_issuer, no_sm } => pay(&mut *ch, json, *amount, complete_with_simulated_issuer.as_deref(), *no_sm)?,
        Cmd::Identity { switch, acquirer, terminal, tak_file, mac_algorithm, region, stan } => {
            let session = IdentityArgs { switch, acquirer, terminal, tak_file: tak_file.as_deref(), mac_algorithm, region, stan: *stan, wait: args.wait };
            return identity_session(&mut *ch, json, &session);
        }
        Cmd::ServeRelay { listen } => {
            let (terminal, key) = relay_credentials(args)?;
            let cfg = AgentConfig { terminal, key, limits: RelayLimits::default() };
            let listener = std::net::TcpListener::bind(listen).map_err(|e| e.to_string())?;
            eprintln!("kiosk: relaying the card on {listen} (card relay v2, one session at a time)");
            let stop = std::sync::atomic::AtomicBool::new(false);
            secure_relay::serve_one_at_a_time(listener, &mut *ch, &cfg, &stop, |r| match r {
                Ok(report) => eprintln!("kiosk: relay session ended after {} commands", report.apdus),
                Err(e) => eprintln!("kiosk: relay session refused or cut: {e}"),
            });
            Ok(())
        }
    };
    Ok(match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(json, &e),
    })
}

struct IdentityArgs<'a> {
    switch: &'a str,
    acquirer: &'a str,
    terminal: &'a str,
    tak_file: Option<&'a std::path::Path>,
    mac_algorithm: &'a str,
    region: &'a str,
    stan: Option<u32>,
    wait: u64,
}

/// One identity session: the card read and answering its challenges, the 0100 to the switch,
/// the 0110's cryptogram to the card.
fn identity_session(
    ch: &mut dyn CardChannel,
    json: bool,
    a: &IdentityArgs<'_>,
) -> Result<ExitCode, String> {
    let mac = match a.tak_file {
        Some(path) => Some(key_file(path, a.mac_algorithm, "--tak-file")?),
        None => None,
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stan = a.stan.unwrap_or((secs % 999_999) as u32 + 1);
    let fields = identity::SessionFields {
        acquirer: a.acquirer.to_owned(),
        terminal: a.terminal.to_owned(),
        stan,
        rrn: format!("{:012}", secs % 1_000_000_000_000),
        transmission_at: identity::transmission_now(),
        region: a.region.to_owned(),
    };
    let pending = match identity::prepare(ch, &fields, mac.as_ref()) {
        Ok(p) => p,
        Err(e) => return Ok(fail(json, &e)),
    };
    let answer = exchange(a.switch, &pending.request, Duration::from_secs(a.wait))?;
    let outcome = match identity::complete(ch, &pending, &answer, mac.as_ref()) {
        Ok(o) => o,
        Err(e) => return Ok(fail(json, &e)),
    };
    print(json, &outcome, || {
        format!(
            "card {} of {} ({}): switch answered {}; back end authenticated to the card: {}",
            outcome.card_identification_code,
            outcome.name,
            outcome.social_security_number,
            outcome.response_code,
            outcome.backend_authenticated
        )
    });
    Ok(if outcome.backend_authenticated {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

/// One request and its answer on a new connection to the switch (2-byte big-endian length
/// header, `schemas::iso8583::framing`), each way bounded by `timeout`.
fn exchange(addr: &str, request: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    let target = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(|e| format!("--switch: {e}"))?
        .next()
        .ok_or("--switch: resolves to nothing")?;
    let mut s = std::net::TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("switch: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(request.len()).map_err(|_| "request too long")?;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(request);
    s.write_all(&frame).map_err(|e| format!("switch: {e}"))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|e| format!("switch: {e}"))?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut answer)
        .map_err(|e| format!("switch: {e}"))?;
    Ok(answer)
}

fn pay(
    ch: &mut dyn CardChannel,
    json: bool,
    amount: Decimal,
    issuer: Option<&std::path::Path>,
    no_sm: bool,
) -> Result<Result<(), KioskError>, String> {
    let fen = (amount * Decimal::from(100)).normalize();
    if fen.is_sign_negative() || fen.fract() != Decimal::ZERO {
        return Err("amount must be a non-negative number of yuan with at most 2 decimals".into());
    }
    let fen = u64::try_from(fen).map_err(|_| "amount too large".to_string())?;
    let (date, time) = today();
    let started = Instant::now();
    let terminal = Terminal {
        supports_sm: !no_sm,
        ..Terminal::default()
    };
    let mut session = match start_payment(ch, &terminal, &PaymentRequest::new(fen, date, time)) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let Some(path) = issuer else {
        let r = &session.request;
        print(
            json,
            &serde_json::json!({"status": "pending_switch", "online_request": r}),
            || {
                format!(
                "PAN {} PSN {} amount {} fen, {} ARQC {} ATC {}\nfield 55 ({} bytes): {}\nPENDING: the switch does not exist yet; this is the ISO 8583 field 55 the kiosk would send.",
                r.pan_masked, r.psn, r.amount_fen, r.algorithm, hex::encode_upper(&r.arqc), r.atc, r.field55.len(), hex::encode_upper(&r.field55)
            )
            },
        );
        return Ok(Ok(()));
    };
    let file = PersoFile::load(path).map_err(|e| e.to_string())?;
    let issuer = IssuerSim::from_perso(&file).map_err(|e| e.to_string())?;
    let auth = match issuer.authorise(
        &session.pan,
        &session.request.psn,
        &session.request.field55,
        *b"00",
    ) {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    let outcome = match complete_payment(ch, &mut session, &auth.response) {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let r = &session.request;
    print(
        json,
        &serde_json::json!({"status": "completed_with_simulated_issuer", "online_request": r, "arqc_valid": auth.arqc_valid, "outcome": outcome, "elapsed_ms": elapsed_ms}),
        || {
            format!(
                "PAN {} amount {} fen, {} ARQC {} (valid: {})\nsimulated issuer (not a switch): ARC 00, issuer authentication {:?}\ncard: {} cryptogram {}\nflow time {:.1} ms",
                r.pan_masked,
                r.amount_fen,
                r.algorithm,
                hex::encode_upper(&r.arqc),
                auth.arqc_valid,
                outcome.issuer_authentication,
                if outcome.approved { "TC (approved)" } else { "AAC (declined)" },
                hex::encode_upper(&outcome.cryptogram),
                elapsed_ms
            )
        },
    );
    Ok(Ok(()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            if args.json {
                println!("{}", serde_json::json!({"error": "error", "message": e}));
            } else {
                eprintln!("kiosk: {e}");
            }
            ExitCode::from(1)
        }
    }
}
