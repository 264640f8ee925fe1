//! A network partition between the switch and PostgreSQL: packets silently dropped both ways,
//! no RST, every socket left open. Injected: a proxy between the switch and a private cluster
//! ([`PartitionProxy`]) partitions right after a group commit sent the statement that records
//! its transactions, so the server holds that transaction open with its rows locked and the
//! switch waits for an answer that never comes; new connections are accepted and never
//! answered. Kiosks of banks 0-2 pay throughout. After [`PARTITION_S`] the partition heals: new
//! connections go through, the connections it caught are reset on the switch's side and left
//! open and silent on the server's (the server never hears that its client is gone).
//!
//! Asserted: every request is answered during the partition (the harness's bound: 30 s per
//! request, no hang; the store's own bound is lower, see `switch::store::postgres`), with `00`
//! (committed before the partition, or learnt committed) or a decline (`96`: the store could not
//! record the decision; `91`: no answer in time), never an approval that is not stored; at least
//! one decline while partitioned; after healing every card of banks 0-2 is approved again,
//! without restarting the switch, although the server may still hold the caught connection's
//! locks; and the books balance (`harness::Net::assert_books`: every `00` a kiosk got is an
//! approved transaction in the store, each bank holds exactly the approved purchases, so none
//! was booked twice, and `verify_integrity`, what `switch verify` runs, finds nothing).
//!
//! The numbers each run prints: the time from the partition to the first answer, the answers by
//! code while partitioned, and the time from healing to the first approval of each bank.

use super::database::Cluster;
use super::harness::{self, codes, Answered, Options};
use super::pg_partition_proxy::PartitionProxy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOADED: [usize; 3] = [0, 1, 2];

/// How long the partition lasts: past the pool's wait for a connection, the store's bound on a
/// group commit and the server's idle-in-transaction timeout, so each of them fires during it.
const PARTITION_S: u64 = 40;

/// Rounds a bank's kiosks may take after healing before the switch must have approved again.
const ROUNDS_AFTER_HEAL_MAX: usize = 50;

/// One answer, when the kiosk sent its request and when it got the answer.
struct Stamped {
    answer: Answered,
    sent: Instant,
    at: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_from_postgres_is_answered_in_time_and_the_switch_approves_once_it_heals() {
    let cluster = Cluster::create();
    let proxy = PartitionProxy::start(cluster.addr()).await;
    let net = Arc::new(
        harness::start(
            harness::store_through_proxy(proxy.addr.port()).await,
            Options {
                cards_per_bank: 1,
                bank_timeout: Duration::from_secs(5),
                ..Options::default()
            },
        )
        .await,
    );
    let healthy = net.purchases(&LOADED, 1).await;
    assert!(
        healthy.iter().all(|a| a.code == "00"),
        "healthy: {:?}",
        codes(&healthy)
    );

    // Each bank's kiosks pay, round after round, until told to stop; after healing a bank's
    // loop stops by itself after its first round approved in full.
    let stamped: Arc<Mutex<Vec<Stamped>>> = Arc::default();
    let healed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = tokio::task::JoinSet::new();
    for bank in LOADED {
        let (net, stamped, healed_at, stop) = (
            Arc::clone(&net),
            Arc::clone(&stamped),
            Arc::clone(&healed_at),
            Arc::clone(&stop),
        );
        loads.spawn(async move {
            let mut rounds_after_heal = 0;
            while !stop.load(Ordering::SeqCst) {
                let healed = healed_at.lock().expect("lock").is_some();
                let sent = Instant::now();
                let round = net.purchases(&[bank], 1).await;
                let at = Instant::now();
                let approved = round.iter().all(|a| a.code == "00");
                stamped
                    .lock()
                    .expect("lock")
                    .extend(round.into_iter().map(|answer| Stamped { answer, sent, at }));
                if healed {
                    rounds_after_heal += 1;
                    if approved {
                        return;
                    }
                    assert!(
                        rounds_after_heal < ROUNDS_AFTER_HEAL_MAX,
                        "bank {bank}: no approval in {rounds_after_heal} rounds after healing"
                    );
                }
                // A cardholder's pace, not a loop (the ATC gap check counts every try).
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    proxy.partition_during_group_commit();
    while !proxy.partitioned() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let partitioned_at = proxy.partitioned_at().expect("partitioned");
    tokio::time::sleep(Duration::from_secs(PARTITION_S)).await;
    let healed = Instant::now();
    proxy.heal();
    *healed_at.lock().expect("lock") = Some(healed);
    // Each loop ends after its first round approved in full (or fails).
    while let Some(r) = loads.join_next().await {
        r.expect("kiosks of a bank");
    }
    stop.store(true, Ordering::SeqCst);

    let stamped = std::mem::take(&mut *stamped.lock().expect("lock"));
    let during: Vec<Answered> = stamped
        .iter()
        .filter(|s| s.at > partitioned_at && s.at <= healed)
        .map(|s| s.answer.clone())
        .collect();
    let first_answer = stamped
        .iter()
        .filter(|s| s.at > partitioned_at)
        .map(|s| s.at - partitioned_at)
        .min();
    let slowest = stamped
        .iter()
        .filter(|s| s.at > partitioned_at)
        .map(|s| s.at - s.sent)
        .max();
    let first_approvals: Vec<_> = LOADED
        .iter()
        .map(|&b| {
            stamped
                .iter()
                .filter(|s| s.at > healed && s.answer.bank == b && s.answer.code == "00")
                .map(|s| s.at - healed)
                .min()
        })
        .collect();
    eprintln!(
        "partition: first answer {first_answer:?} after it began; answers while partitioned \
         {:?}; slowest answer since it began {slowest:?}; first approval after healing, per \
         bank: {first_approvals:?}; connections caught {}",
        codes(&during),
        proxy.caught()
    );
    assert!(
        during
            .iter()
            .all(|a| ["00", "96", "91", harness::UNANSWERED].contains(&a.code.as_str())),
        "answers while partitioned: {:?}",
        codes(&during)
    );
    assert!(
        during.iter().any(|a| a.code != "00"),
        "declines while the database was unreachable: {:?}",
        codes(&during)
    );

    let mut all = healthy;
    all.extend(stamped.into_iter().map(|s| s.answer));
    net.settle_unanswered().await;
    net.drain_store_and_forward().await;
    net.assert_books(&all).await;
    let net = Arc::into_inner(net).expect("the loads are over");
    net.stop().await;
}
