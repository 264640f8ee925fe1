//! SIGTERM stops `switch demo` the way Ctrl-C does (issue 24, finding 7): the node drains,
//! signs its bank links off and the process exits 0, instead of dying on the signal.

use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/demo_process.rs"]
mod demo_process;

#[test]
fn sigterm_stops_the_demo_like_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = demo_process::demo_command();
    cmd.args(["--no-clearing", "--data-dir"])
        .arg(dir.path())
        .args(["--cards-per-bank", "1"]);
    let (mut child, addrs) = demo_process::spawn(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addrs.acquirer).is_err() {
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
