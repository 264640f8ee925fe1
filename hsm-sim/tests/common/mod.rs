//! Helpers shared by the integration tests that need a network address.

use std::net::IpAddr;

/// One of this machine's non-loopback addresses, if it has one: the source address the kernel
/// picks for a route to a documentation or private address (a UDP connect sends no packet).
pub fn non_loopback_ip() -> Option<IpAddr> {
    ["203.0.113.1:9", "10.255.255.254:9", "192.168.255.254:9"]
        .into_iter()
        .find_map(|target| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            s.connect(target).ok()?;
            let ip = s.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
}
