//! `switch demo`'s own traffic stays a demo of approvals: the simulated kiosks pay bills, ask
//! balances, open identity sessions and pay benefits, and over a run the answers keep the mix a user expects to see
//! (mostly approved, insufficient funds rare, no PIN blocks from the 3% mistyped PINs, no
//! system errors). The run uses few cards, so each card sees many bills: with the bills alone
//! the cards' bank accounts are empty within seconds and code 51 takes over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switch::sim::demo::{run, DemoOptions};
use switch::store::{DataKeyPanProtector, SqliteConfig, SqliteStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_traffic_keeps_approving_as_the_cards_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let opts = DemoOptions {
        data_dir: dir.path().to_path_buf(),
        listen: any,
        http: any,
        bank_port_base: 0,
        cards_per_bank: 2,
        traffic: true,
        kiosks: 6,
        duration: Some(Duration::from_secs(30)),
        keep_data: false,
        no_clearing: false,
        postgres_url: None,
        postgres_schema: "switch_demo".into(),
        hsm: None,
        group_commits: None,
    };
    let summary = run(opts).await.expect("demo runs");
    let total = summary.total();
    let share = |n: u64| n as f64 / total as f64;
    eprintln!("{:?}", summary.responses);
    assert!(total >= 300, "too little traffic to judge: {total} answers");
    let bills = summary.of("medical_bill", "00");
    assert!(bills > 0, "no bill approved: {:?}", summary.responses);
    assert!(
        summary.of("benefit_credit", "00") > 0,
        "the job centre paid no benefit: {:?}",
        summary.responses
    );
    assert!(
        summary.of("identity_session", "00") > 0,
        "the job centre opened no identity session: {:?}",
        summary.responses
    );
    assert!(
        share(summary.with_code("51")) < 0.03,
        "insufficient funds in {} of {total} answers: {:?}",
        summary.with_code("51"),
        summary.responses
    );
    assert!(
        share(summary.with_code("00")) > 0.85,
        "approved only {} of {total}: {:?}",
        summary.with_code("00"),
        summary.responses
    );
    for code in ["75", "91", "96", "30", "12"] {
        assert_eq!(
            summary.with_code(code),
            0,
            "code {code} in the demo's own traffic: {:?}",
            summary.responses
        );
    }

    // What the run left is consistent (`switch verify`): balances equal their journals, every
    // approval has its settlement event, the outbox has no gap.
    let store = SqliteStore::open(
        &SqliteConfig::new(dir.path().join("switch.db")),
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .unwrap();
    let report = store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
    assert!(report.transactions >= total as i64 / 2, "{report}");
}
