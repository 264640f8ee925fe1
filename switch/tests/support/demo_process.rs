//! A `switch demo` or `switch serve` child process whose listeners are on ports it bound itself
//! (`:0`), and the addresses it bound, read from its first status line.
//!
//! Why: a test that picks a free port and passes it to a child gives the port away for as long
//! as the child takes to start, and a test running beside it may be handed the same port by
//! the kernel. On CI (2026-12-07) the kill test's kiosks reached the demo-traffic test's switch
//! that way, and both failed (`ports.rs`). A port bound by the child cannot be anyone else's.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a demo may take to open its store, seed it and sign its banks on.
const START_TIMEOUT_S: u64 = 120;

/// Where a started demo listens.
#[derive(Debug, Clone, Copy)]
pub struct DemoAddrs {
    /// The acquirer listener (kiosks' ISO 8583).
    pub acquirer: SocketAddr,
    /// The operator HTTP API and console.
    pub http: SocketAddr,
}

/// `switch demo --no-traffic` with the acquirer, the HTTP API and the bank simulators on
/// ports of the kernel's choosing; add the test's own arguments, then [`spawn`] it.
pub fn demo_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switch"));
    cmd.args(["demo", "--no-traffic"])
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--bank-port-base", "0"]);
    cmd
}

/// Starts `cmd` (from [`demo_command`], or a `switch serve` whose file listens on `:0`) and
/// waits for its first status line; its standard output is read to the end by a thread of its
/// own so the child never blocks on it.
pub fn spawn(cmd: &mut Command) -> (Child, DemoAddrs) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("switch binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addrs) = parse_status_line(&line) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addrs);
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(START_TIMEOUT_S)) {
        Ok(addrs) => (child, addrs),
        Err(_) => {
            let status = child.try_wait();
            let _ = child.kill();
            panic!(
                "the switch printed no status line within {START_TIMEOUT_S} s (exit: {status:?})"
            );
        }
    }
}

/// Children killed when the test ends, however it ends.
#[derive(Default)]
pub struct Processes(Vec<(&'static str, Child)>);

impl Processes {
    /// Starts a `switch demo` node and gives its acquirer's address (a port it bound itself).
    pub fn spawn_node(&mut self, name: &'static str, cmd: &mut Command) -> SocketAddr {
        let (child, addrs) = spawn(cmd);
        self.0.push((name, child));
        addrs.acquirer
    }

    /// Takes a child started elsewhere (by [`spawn`]) under `name`.
    pub fn adopt(&mut self, name: &'static str, child: Child) {
        self.0.push((name, child));
    }

    pub fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        self.0.push((name, child));
    }

    /// SIGKILL, as a crash: no shutdown path runs.
    pub fn kill(&mut self, name: &str) {
        let i = self
            .0
            .iter()
            .position(|(n, _)| *n == name)
            .expect("a process of that name");
        let (_, mut child) = self.0.remove(i);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// SIGTERM, as an operator stops a node, and its exit status (at most 60 s).
    pub fn terminate(&mut self, name: &str) -> std::process::ExitStatus {
        let i = self
            .0
            .iter()
            .position(|(n, _)| *n == name)
            .expect("a process of that name");
        let (_, mut child) = self.0.remove(i);
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "SIGTERM sent to {name}");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name} did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether every process still runs (none died on its own).
    pub fn all_running(&mut self) -> Vec<&'static str> {
        self.0
            .iter_mut()
            .filter_map(|(n, c)| c.try_wait().ok().flatten().map(|_| *n))
            .collect()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `switch demo: acquirer tcp://A  http://H  ...` (`sim::demo::run_on`) or `switch serve:
/// acquirer tcp://A[,tcp://B...]  http://H  ...` (`config::start`): the first acquirer.
fn parse_status_line(line: &str) -> Option<DemoAddrs> {
    let rest = line
        .strip_prefix("switch demo: acquirer tcp://")
        .or_else(|| line.strip_prefix("switch serve: acquirer tcp://"))?;
    let mut words = rest.split_whitespace();
    let acquirer = words.next()?.split(',').next()?.parse().ok()?;
    let http = words.next()?.strip_prefix("http://")?.parse().ok()?;
    Some(DemoAddrs { acquirer, http })
}
