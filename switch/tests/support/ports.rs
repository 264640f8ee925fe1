//! Ports for the servers a test starts itself (a private PostgreSQL cluster, a broker, a
//! WebDriver): a port is chosen first and bound later by another process, so it must be one
//! the kernel never hands out on its own.
//!
//! Why: a port taken with `bind(":0")` and released is an ephemeral port, and the kernel may
//! give the same port to the next `bind(":0")` of a test running beside this one before the
//! server it was meant for binds it. On CI (2026-12-07) one test's kiosks reached another
//! test's switch that way: each saw the other's cards (code 14) and an approval went missing
//! from the store its test checked. Ports below the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 by default) are never given out
//! by the kernel; two tests choosing the same one at random is the rare case left, and a
//! `switch demo` child avoids even that by binding `:0` itself (`demo_process.rs`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out (above the well-known and most registered services' ports).
const PORT_FIRST: u16 = 20_000;
/// One past the highest: the start of the kernel's default ephemeral range.
const PORT_END: u16 = 32_768;

/// A port below the ephemeral range that nothing listens on right now.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PORT_END - PORT_FIRST);
    // A start of this process's own (its pid and the clock), then the ports after it in turn.
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    for _ in 0..span {
        let offset = (seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % span;
        let port = PORT_FIRST + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORT_FIRST}..{PORT_END}");
}
