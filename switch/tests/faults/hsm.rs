//! HSM faults. The pipeline's HSM is hsm-sim's payShield server reached over TCP (the
//! switch's `HsmClient`, 2 s timeout) through a proxy that moves the switch between four
//! servers, cutting its connections at each move; the links keep the world's software HSM.
//! Injected, one after another under load on banks 0 and 1 (hsm-sim's `FaultConfig`):
//!
//! 1. errors: every command answered with error 41 (`error_per_million = 1_000_000`);
//! 2. some errors: 30 % of commands answered with error 41;
//! 3. too slow: 2.5 s of service time per command (`latency_ms`), past the client's timeout;
//! 4. dropped connections: every request drops its connection unanswered (`drop_per_million`).
//!
//! Asserted: every request is answered (a bound of 30 s each: no hang); while every command
//! fails, every answer is `96` (system malfunction: not `A0` as if the acquirer's MAC were
//! wrong, not `55` as if the PIN were, and never `00`: no answer without its checks); with 30 %
//! errors only `00`, `96`, or no answer for an approval whose answer the HSM could not MAC (the
//! kiosk then reverses it, as an acquirer does with an unanswered request); after the HSM
//! heals, `00` again (after one round in which commands caught on a cut connection may fail);
//! and the books balance: a purchase whose checks failed after its bank leg, or whose approval
//! went unanswered, was reversed at the bank.

use super::harness::{self, codes, Options};
use hsm_sim::server::{FaultConfig, Server, ServerConfig};
use hsm_sim::{ClientConfig, HsmClient, SoftHsm};
use std::net::SocketAddr;
use std::sync::Arc;
use switch::store::{DataKeyPanProtector, SqliteConfig, SqliteStore};

const LOADED: [usize; 2] = [0, 1];

async fn hsm_server(faults: FaultConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = ServerConfig {
        faults,
        ..ServerConfig::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    // The server runs until the test's runtime ends.
    std::mem::forget(stop);
    tokio::spawn(Server::new(Arc::new(SoftHsm::with_test_lmk()), config, None).serve(listener, rx));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_errors_timeouts_and_drops_are_declined_96_without_a_hang_and_the_books_balance() {
    let healthy = hsm_server(FaultConfig::default()).await;
    let failing = hsm_server(FaultConfig {
        error_per_million: 1_000_000,
        error_code: "41".into(),
        ..FaultConfig::default()
    })
    .await;
    let flaky = hsm_server(FaultConfig {
        error_per_million: 300_000,
        error_code: "41".into(),
        seed: 28,
        ..FaultConfig::default()
    })
    .await;
    let slow = hsm_server(FaultConfig {
        latency_ms: 2_500,
        ..FaultConfig::default()
    })
    .await;
    let dropping = hsm_server(FaultConfig {
        drop_per_million: 1_000_000,
        ..FaultConfig::default()
    })
    .await;
    let proxy = harness::SwitchProxy::start(vec![healthy, failing, flaky, slow, dropping]).await;
    let client: Arc<dyn hsm_sim::Hsm> = Arc::new(HsmClient::new(ClientConfig::new(proxy.addr)));

    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store"),
    );
    let net = harness::start(
        store,
        Options {
            pipeline_hsm: Some(client),
            ..Options::default()
        },
    )
    .await;
    let mut all = net.purchases(&LOADED, 2).await;
    assert!(
        all.iter().all(|a| a.code == "00"),
        "healthy: {:?}",
        codes(&all)
    );

    for (name, upstream) in [("errors", 1), ("timeouts", 3), ("dropped connections", 4)] {
        proxy.select(upstream);
        let answers = net.purchases(&LOADED, 2).await;
        assert!(
            answers.iter().all(|a| a.code == "96"),
            "{name}: {:?}",
            codes(&answers)
        );
        all.extend(answers);
    }

    proxy.select(2);
    let answers = net.purchases(&LOADED, 6).await;
    assert!(
        answers
            .iter()
            .all(|a| a.code == "00" || a.code == "96" || a.code == harness::UNANSWERED),
        "30 % errors: {:?}",
        codes(&answers)
    );
    all.extend(answers);

    proxy.select(0);
    // Commands in flight on a connection the move cut fail once (`96`): the client learns that
    // a connection is gone by losing it, and does not resend the command on a new one.
    let answers = net.purchases(&LOADED, 1).await;
    assert!(
        answers.iter().all(|a| a.code == "00" || a.code == "96"),
        "healing: {:?}",
        codes(&answers)
    );
    all.extend(answers);
    let answers = net.purchases(&LOADED, 2).await;
    assert!(
        answers.iter().all(|a| a.code == "00"),
        "healed: {:?}",
        codes(&answers)
    );
    all.extend(answers);

    net.settle_unanswered().await;
    net.drain_store_and_forward().await;
    net.assert_books(&all).await;
    net.stop().await;
}
