//! Why this exists: fuzz targets that only build under `cargo fuzz` (nightly sanitizer flags,
//! libFuzzer linked in) rot unseen. With [`fuzz_target!`] a target is one body and two binaries:
//!
//! - under `cargo fuzz` (`--cfg fuzzing`), libfuzzer-sys's target, coverage-guided;
//! - on stable, a plain `main` ([`main`]) that replays the target's corpus
//!   (`<fuzz crate>/corpus/<target>/`, committed seeds and what campaigns kept) or given files,
//!   and with `--campaign SECS` runs a coverage-less campaign: random mutations (bit flips,
//!   byte edits, inserts, deletes, splices, ASCII digits) of the corpus inputs for SECS seconds.
//!
//! `ops/test.sh` builds every target and replays its corpus through each fuzz crate's
//! `tests/corpus.rs`. A panic found by the replay or the campaign is written to
//! `<fuzz crate>/artifacts/<target>/` and fails the run.

#[cfg(fuzzing)]
pub use libfuzzer_sys;

mod campaign;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub use campaign::{campaign, Budget, CampaignReport};

/// A fuzz target: `fuzz_replay::fuzz_target!(|data| body);` with `data: &[u8]`. The file also
/// needs `#![cfg_attr(fuzzing, no_main)]`.
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident| $body:expr) => {
        #[cfg(fuzzing)]
        $crate::libfuzzer_sys::fuzz_target!(|$data: &[u8]| {
            $body;
        });

        #[cfg(not(fuzzing))]
        fn main() -> ::std::process::ExitCode {
            $crate::main(
                env!("CARGO_BIN_NAME"),
                env!("CARGO_MANIFEST_DIR"),
                |$data: &[u8]| {
                    $body;
                },
            )
        }
    };
}

/// Every file under `path` (recursively, sorted), or `path` itself when it is a file.
pub fn inputs(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs `body` on `data`; `Err` with the panic's message when it panics.
pub fn run_one(body: &dyn Fn(&[u8]), data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| body(data))).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned())
    })
}

/// Writes a panicking input to `<manifest>/artifacts/<target>/crash-<fnv64>` and returns the path.
pub fn save_crash(target: &str, manifest_dir: &str, data: &[u8]) -> PathBuf {
    let dir = Path::new(manifest_dir).join("artifacts").join(target);
    let name = format!("crash-{:016x}", fnv64(data));
    let path = dir.join(name);
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, data)) {
        eprintln!("{target}: cannot write {}: {e}", path.display());
    }
    path
}

/// FNV-1a, 64 bits: a stable name for an input.
fn fnv64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The stable `main` of a target: `[FILE|DIR]...` replays those (default: the target's corpus,
/// which must not be empty); `--campaign SECS` mutates the corpus for SECS seconds.
pub fn main(target: &str, manifest_dir: &str, body: impl Fn(&[u8])) -> ExitCode {
    let corpus = Path::new(manifest_dir).join("corpus").join(target);
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Panics are reported per input below; the default hook would print each one as well.
    std::panic::set_hook(Box::new(|_| {}));
    if let [flag, secs] = &args[..] {
        if flag == "--campaign" {
            let Ok(secs) = secs.parse::<u64>() else {
                eprintln!("{target}: --campaign takes whole seconds");
                return ExitCode::from(2);
            };
            return run_campaign(target, manifest_dir, &corpus, secs, &body);
        }
    }
    let paths = if args.is_empty() {
        vec![corpus.clone()]
    } else {
        args.iter().map(PathBuf::from).collect()
    };
    let mut files = Vec::new();
    for p in &paths {
        match inputs(p) {
            Ok(f) => files.extend(f),
            Err(e) => {
                eprintln!("{target}: cannot read {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if files.is_empty() {
        eprintln!("{target}: no inputs under {paths:?}");
        return ExitCode::FAILURE;
    }
    let mut failed = 0usize;
    for f in &files {
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{target}: cannot read {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        };
        if let Err(msg) = run_one(&body, &data) {
            eprintln!("{target}: {} panicked: {msg}", f.display());
            failed += 1;
        }
    }
    println!(
        "{target}: replayed {} inputs, {failed} panicked",
        files.len()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_campaign(
    target: &str,
    manifest_dir: &str,
    corpus: &Path,
    secs: u64,
    body: &dyn Fn(&[u8]),
) -> ExitCode {
    let seeds: Vec<Vec<u8>> = match inputs(corpus) {
        Ok(files) => files.iter().filter_map(|f| std::fs::read(f).ok()).collect(),
        Err(e) => {
            eprintln!("{target}: cannot read {}: {e}", corpus.display());
            return ExitCode::FAILURE;
        }
    };
    let report = campaign(&seeds, Budget::Time(Duration::from_secs(secs)), body);
    println!(
        "{target}: campaign of {:.0} s, {} executions ({:.0}/s), {} seeds, {} panicked",
        report.elapsed.as_secs_f64(),
        report.executions,
        report.executions as f64 / report.elapsed.as_secs_f64().max(0.001),
        seeds.len(),
        report.crashes.len()
    );
    for (data, msg) in &report.crashes {
        let path = save_crash(target, manifest_dir, data);
        eprintln!("{target}: {} panicked: {msg}", path.display());
    }
    if report.crashes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// For a fuzz crate's `tests/corpus.rs`: runs the target binary `exe` (stable build, no
/// arguments: it replays its corpus) and fails unless it replayed at least one input and none
/// panicked.
pub fn check_replay(exe: &str) {
    let out = std::process::Command::new(exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{exe} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let replayed: u64 = stdout
        .split_whitespace()
        .skip_while(|w| *w != "replayed")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(replayed > 0, "{exe} replayed nothing:\n{stdout}\n{stderr}");
}

/// `replays!(target, ...)`: one test per target of the calling fuzz crate, each replaying the
/// target's corpus through its stable binary ([`check_replay`]).
#[macro_export]
macro_rules! replays {
    ($($target:ident),+ $(,)?) => {
        $(
            #[test]
            fn $target() {
                $crate::check_replay(env!(concat!("CARGO_BIN_EXE_", stringify!($target))));
            }
        )+
    };
}
