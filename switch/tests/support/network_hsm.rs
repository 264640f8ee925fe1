//! A network HSM for tests that want the production shape (payShield host commands over TCP):
//! an `hsm-sim` server holding the published test LMK, on a port it binds itself, and a
//! client of it. Shared so the card-relay and identity tests start it one way.

#![allow(dead_code)]

use std::sync::Arc;

/// An `hsm-sim` server (published test LMK) on a free port, and a client of it. The server
/// runs until the test's runtime ends.
pub async fn network_hsm() -> Arc<dyn hsm_sim::Hsm> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = hsm_sim::server::Server::new(
        Arc::new(hsm_sim::SoftHsm::with_test_lmk()),
        hsm_sim::server::ServerConfig::default(),
        None,
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _stop = stop; // the server runs for the whole test
        let _ = server.serve(listener, stopped).await;
    });
    let mut client = hsm_sim::ClientConfig::new(addr);
    client.timeout_ms = 10_000;
    Arc::new(hsm_sim::HsmClient::new(client))
}
