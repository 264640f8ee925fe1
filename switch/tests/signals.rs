//! SIGTERM stops `switch demo` the way Ctrl-C does (issue 24, finding 7): the node drains,
//! signs its bank links off and the process exits 0, instead of dying on the signal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sigterm_stops_the_demo_like_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (acquirer, http, banks) = (free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_switch"))
        .args(["demo", "--no-traffic", "--no-clearing", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{acquirer}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--bank-port-base", &banks.to_string()])
        .args(["--cards-per-bank", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("switch binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", acquirer)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the demo did not start listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "SIGTERM ends the demo cleanly (exit 0), not by the signal: {status:?}"
    );
}
