//! SIGTERM stops `switch demo` the way Ctrl-C does (issue 24, finding 7): the node drains,
//! signs its bank links off and the process exits 0, instead of dying on the signal.

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
    let mut ps = demo_process::Processes::default();
    let acquirer = ps.spawn_node("demo", &mut cmd);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(acquirer).is_err() {
        assert!(
            Instant::now() < deadline,
            "the demo did not start listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = ps.terminate("demo");
    assert!(
        status.success(),
        "SIGTERM ends the demo cleanly (exit 0), not by the signal: {status:?}"
    );
}
