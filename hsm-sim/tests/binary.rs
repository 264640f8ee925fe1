//! The `hsm-sim` binary's refusals at start-up (issue 24, finding 4): no published test LMK
//! unless the operator says so by name, and no LMK whose components are weak.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hsm_sim::lmk::{LMK_PAIR_COUNT, TEST_LMK_HEX};

const BIN: &str = env!("CARGO_BIN_EXE_hsm-sim");

/// Start the binary on an ephemeral loopback port with `args`.
fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hsm-sim")
}

/// The exit status within `limit`, or `None` (and the child killed) if it is still running.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}

/// A component file of 20 pairs in a directory of this test process under the system temp dir.
fn component_file(name: &str, pairs: &[String]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hsm-sim-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, pairs.join("\n")).expect("write component");
    path
}

/// A component of odd-parity pairs: pair `i` is `base` with its bytes varied by `i`.
fn component(base: [u8; 16]) -> Vec<String> {
    (0..LMK_PAIR_COUNT)
        .map(|i| {
            let mut p = base;
            for (j, b) in p.iter_mut().enumerate() {
                *b = b.wrapping_add((i * 2 + j * 6) as u8 & 0xFE);
            }
            hsm_sim::block::adjust_odd_parity(&mut p);
            hex::encode_upper(p)
        })
        .collect()
}

#[test]
fn without_an_lmk_flag_the_binary_refuses_to_start() {
    let mut child = spawn(&[]);
    let status = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "hsm-sim must not start on the test LMK by default"
    );
    let err = stderr_of(&mut child);
    assert!(err.contains("--insecure-test-lmk"), "{err}");
}

#[test]
fn with_insecure_test_lmk_the_binary_starts() {
    let mut child = spawn(&["--insecure-test-lmk"]);
    assert_eq!(
        exit_within(&mut child, Duration::from_millis(700)),
        None,
        "hsm-sim --insecure-test-lmk should keep running"
    );
}

/// Start the binary on two component files written from `a` and `b`.
fn spawn_with_components(test: &str, a: &[String], b: &[String]) -> Child {
    let a = component_file(&format!("{test}-a.txt"), a);
    let b = component_file(&format!("{test}-b.txt"), b);
    spawn(&[
        "--lmk-component",
        a.to_str().expect("path"),
        "--lmk-component",
        b.to_str().expect("path"),
    ])
}

fn pairs_of(hexes: &[String]) -> Vec<[u8; 16]> {
    hexes
        .iter()
        .map(|h| {
            let mut p = [0u8; 16];
            hex::decode_to_slice(h, &mut p).expect("hex");
            p
        })
        .collect()
}

#[test]
fn components_that_combine_to_a_weak_key_are_refused() {
    let strong = component(*b"\x3B\x8A\x52\xC4\x19\xE6\x70\x2D\x97\x0B\xF4\x61\xAE\x35\xD8\x4F");
    // Two components equal to each other: their XOR is all zeros.
    let mut child = spawn_with_components("same", &strong, &strong);
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(10)).and_then(|s| s.code()),
        Some(2),
        "equal components must be refused"
    );
    // A second component chosen so that the XOR is the published test LMK (weak pair 00-01);
    // its parity is fixed, which changes only bits DES ignores.
    let test: Vec<String> = TEST_LMK_HEX.iter().map(|s| s.to_string()).collect();
    let cancel: Vec<String> = pairs_of(&strong)
        .iter()
        .zip(pairs_of(&test))
        .map(|(s, t)| {
            let mut p = [0u8; 16];
            for (o, (x, y)) in p.iter_mut().zip(s.iter().zip(t)) {
                *o = x ^ y;
            }
            hsm_sim::block::adjust_odd_parity(&mut p);
            hex::encode_upper(p)
        })
        .collect();
    let mut child = spawn_with_components("test-lmk", &strong, &cancel);
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(10)).and_then(|s| s.code()),
        Some(2),
        "components combining to weak pairs must be refused"
    );
    let err = stderr_of(&mut child);
    assert!(err.contains("00-01"), "{err}");
}

#[test]
fn strong_components_start_the_binary() {
    let a = component(*b"\x3B\x8A\x52\xC4\x19\xE6\x70\x2D\x97\x0B\xF4\x61\xAE\x35\xD8\x4F");
    let b = component(*b"\x5E\x13\xA7\x68\xCB\x20\x9D\xF1\x46\xB9\x0E\x7C\x83\xD5\x2A\x64");
    let mut child = spawn_with_components("strong", &a, &b);
    let status = exit_within(&mut child, Duration::from_millis(700));
    assert_eq!(status, None, "{}", stderr_of(&mut child));
}
