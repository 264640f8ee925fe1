//! The connection to a single-host PostgreSQL dies while a group commit's COMMIT is in flight.
//! Injected: a proxy between the switch and a private cluster ([`CommitProxy`]) forwards the
//! COMMIT of the group commit that records a bank-approved purchase, then closes the switch's
//! connection before the server's answer reaches it. The server commits: the approval is
//! durable although the switch never heard so.
//!
//! Asserted: with the database reachable at once, the store learns the outcome by asking the
//! server (`txid_status`) and the kiosk gets `00`; with the database gone for longer than the
//! switch may wait for it (every connection cut and new ones refused for 14 s, past
//! `RESOLVE_WAIT_MAX_MS`), the kiosk gets `96` and the approval, once the store answers again,
//! is reversed by the switch: an approved reversal of it is stored, its 0420 reaches the bank
//! (which holds its opening balance again), `verify_integrity` finds nothing and the books
//! balance (`harness::Net::assert_books`); a retransmission of the request is answered `96`, as
//! the terminal was. Before this was handled, the kiosk got `96`, the
//! store held `00` with its settlement event, and no 0420 was ever sent: the customer was told
//! "declined" and charged.

use super::database::Cluster;
use super::harness::{self, codes, Options};
use super::pg_commit_proxy::CommitProxy;
use std::time::Duration;
use switch::store::{Store, TransactionKind};

fn options() -> Options {
    Options {
        cards_per_bank: 1,
        bank_timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_learnt_from_the_database_and_answered_00() {
    let cluster = Cluster::create();
    let proxy = CommitProxy::start(cluster.addr()).await;
    let net = harness::start(
        harness::store_through_proxy(proxy.addr.port()).await,
        options(),
    )
    .await;
    let mut all = net.purchases(&[0], 1).await;
    assert!(
        all.iter().all(|a| a.code == "00"),
        "healthy: {:?}",
        codes(&all)
    );

    proxy.arm();
    let lost = net.purchases(&[0], 1).await;
    assert_eq!(proxy.cuts(), 1, "the purchase's COMMIT lost its answer");
    assert_eq!(
        codes(&lost),
        [("00".to_owned(), 1)].into(),
        "committed, and the switch learnt it"
    );
    all.extend(lost);
    net.drain_store_and_forward().await;
    net.assert_books(&all).await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_outcome_stays_unknown_is_answered_96_and_the_approval_reversed() {
    let cluster = Cluster::create();
    let proxy = CommitProxy::start(cluster.addr()).await;
    let net = harness::start(
        harness::store_through_proxy(proxy.addr.port()).await,
        options(),
    )
    .await;
    let mut all = net.purchases(&[0], 1).await;
    assert!(
        all.iter().all(|a| a.code == "00"),
        "healthy: {:?}",
        codes(&all)
    );

    // The COMMIT is cut, then the database looks gone past the switch's wait for it.
    proxy.arm_with_blackout(Duration::from_secs(14));
    let lost = net.purchases(&[0], 1).await;
    assert_eq!(proxy.cuts(), 1, "the purchase's COMMIT lost its answer");
    assert_eq!(
        codes(&lost),
        [("96".to_owned(), 1)].into(),
        "the outcome unknown when answered"
    );
    all.extend(lost.clone());
    net.drain_store_and_forward().await;

    // The approval committed, and the switch reversed it.
    let rrn = schemas::domain::Rrn::parse(&lost[0].rrn).expect("rrn");
    let stored = net.store.transactions_by_rrn(&rrn).await.expect("store");
    let approval = stored
        .iter()
        .find(|t| t.record.original_transaction_id.is_none())
        .expect("the request is recorded");
    assert!(
        approval.record.is_approved(),
        "the cut COMMIT committed the approval: {stored:?}"
    );
    assert!(
        stored
            .iter()
            .any(|t| t.record.kind == TransactionKind::Reversal
                && t.record.is_approved()
                && t.record.original_transaction_id == Some(approval.record.transaction_id)),
        "the approval answered 96 is reversed: {stored:?}"
    );
    let pan = &lost[0].pan;
    assert_eq!(
        net.banks[0].balance_fen(pan),
        Some(net.opening[pan] - all[0].amount_fen as i64),
        "the bank holds its opening balance less the one purchase answered 00"
    );
    // The terminal's retransmission gets the answer it got, not the reversed approval's.
    assert_eq!(net.retransmit_last(0).await, ["96"]);
    net.assert_books(&all).await;
    net.stop().await;
}
