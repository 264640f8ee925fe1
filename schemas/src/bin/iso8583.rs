//! `iso8583`: decode, explain and encode ISO 8583 messages with the network's specs.
//!
//! A support engineer's tool: `decode` turns a captured message (hex or a binary file,
//! optionally still framed) into JSON or a masked human table; `encode` turns that JSON back
//! into bytes; `specs` lists the dialects. Bad input exits with status 1 and one line on stderr.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use schemas::iso8583::{self, json, Spec};

#[derive(Parser)]
#[command(
    name = "iso8583",
    version,
    about = "Decode, explain and encode ISO 8583 messages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode one message and print it as JSON (or a table with --explain).
    Decode {
        /// Spec name (see `iso8583 specs`) or path to a .toml/.json spec file.
        #[arg(long)]
        spec: String,
        /// The message as hex (spaces allowed).
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        hex: Option<String>,
        /// A file holding the raw message bytes.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// Print a human table with field names; sensitive fields are masked.
        #[arg(long)]
        explain: bool,
        /// The input still has its length header (and TPDU with --tpdu): strip and check it.
        #[arg(long, value_enum)]
        frame: Option<Frame>,
        /// The framed input carries a 5-byte TPDU after the length header.
        #[arg(long, requires = "frame")]
        tpdu: bool,
    },
    /// Read the JSON form on stdin and write the encoded message as hex (or raw bytes).
    Encode {
        /// Spec name or path to a spec file.
        #[arg(long)]
        spec: String,
        /// Write raw bytes instead of hex.
        #[arg(long)]
        binary: bool,
    },
    /// List the embedded specs.
    Specs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Frame {
    /// 2-byte big-endian binary length.
    Binary2,
    /// 4 ASCII digits.
    Ascii4,
    /// 2 bytes of BCD.
    Bcd2,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // One line: clap's message without the usage block.
            let text = e.to_string();
            let line: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("{}", line.join(" "));
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("error: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn load_spec(name: &str) -> Result<&'static Spec, String> {
    iso8583::spec_or_file(name).map_err(|e| e.to_string())
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Specs => {
            for name in iso8583::spec_names() {
                let spec = load_spec(name)?;
                println!("{name:<16} {}", spec.description());
            }
            Ok(())
        }
        Command::Decode {
            spec,
            hex,
            file,
            explain,
            frame,
            tpdu,
        } => {
            let spec = load_spec(&spec)?;
            let input = match (hex, file) {
                (Some(h), _) => json::parse_hex(&h).ok_or("--hex is not valid hex")?,
                (None, Some(path)) => std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                (None, None) => return Err("give --hex or --file".into()),
            };
            let body = match frame {
                None => &input[..],
                Some(frame) => unframe(frame, tpdu, &input)?,
            };
            let msg = spec.decode(body).map_err(|e| e.to_string())?;
            if explain {
                print!("{}", json::explain(&msg));
            } else {
                println!("{}", json::to_json(&msg));
            }
            Ok(())
        }
        Command::Encode { spec, binary } => {
            let spec = load_spec(&spec)?;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            let msg = json::from_json(spec, &text).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            spec.encode(&msg, &mut out).map_err(|e| e.to_string())?;
            let mut stdout = std::io::stdout().lock();
            let written = if binary {
                stdout.write_all(&out)
            } else {
                writeln!(stdout, "{}", iso8583::hex_upper(&out))
            };
            written.map_err(|e| format!("cannot write stdout: {e}"))
        }
    }
}

/// Strips and checks a length header (and TPDU).
fn unframe(frame: Frame, tpdu: bool, input: &[u8]) -> Result<&[u8], String> {
    let (hlen, len) = match frame {
        Frame::Binary2 if input.len() >= 2 => {
            (2, usize::from(u16::from_be_bytes([input[0], input[1]])))
        }
        Frame::Ascii4 if input.len() >= 4 => (
            4,
            std::str::from_utf8(&input[..4])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("length header is not 4 ASCII digits")?,
        ),
        Frame::Bcd2 if input.len() >= 2 => {
            let digits = iso8583::hex_upper(&input[..2]);
            (2, digits.parse().map_err(|_| "length header is not BCD")?)
        }
        _ => return Err("input shorter than its length header".into()),
    };
    if input.len() - hlen != len {
        return Err(format!(
            "length header says {len} bytes but {} follow",
            input.len() - hlen
        ));
    }
    let skip = hlen + if tpdu { 5 } else { 0 };
    input
        .get(skip..)
        .ok_or_else(|| "frame shorter than its TPDU".to_owned())
}
