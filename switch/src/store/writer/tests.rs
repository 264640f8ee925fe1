use super::*;
use crate::sim::testkit::{self, inst, Fixture};
use crate::store::model::CardId;
use schemas::domain::{Pan, ResponseCode};
use schemas::events::sample::ids;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A sink that records batch sizes and commits only when the test lets it.
struct GatedSink {
    gate: Semaphore,
    sizes: Mutex<Vec<usize>>,
}

impl DecisionSink for GatedSink {
    async fn commit(&self, batch: Vec<Decision>, _now_us: i64) -> BatchOutcome {
        self.sizes.lock().unwrap().push(batch.len());
        // Closed only when the test is over; an error here just means "go".
        let _permit = self.gate.acquire().await;
        BatchOutcome {
            results: batch
                .iter()
                .map(|d| {
                    if d.transaction.response_code == ResponseCode::SystemMalfunction {
                        Err(DecisionError::Rejected("test".into()))
                    } else {
                        Ok(Committed {
                            transaction_id: d.transaction.transaction_id,
                            outbox_seq: None,
                        })
                    }
                })
                .collect(),
            db_transactions: 1,
        }
    }
}

fn fx() -> Fixture {
    Fixture {
        hospital: inst(ids::HOSPITAL),
        fund: inst(ids::INSURANCE_FUND),
        bank: inst(ids::BANK),
        pan: Pan::parse("6228480012345678").unwrap(),
        card_id: CardId(1),
        personal: crate::store::AccountId(1),
        pooled: crate::store::AccountId(2),
    }
}

fn sink(permits: usize) -> Arc<GatedSink> {
    Arc::new(GatedSink {
        gate: Semaphore::new(permits),
        sizes: Mutex::new(vec![]),
    })
}

#[tokio::test]
async fn a_full_queue_refuses_try_submit_with_overloaded() {
    let s = sink(0);
    let (w, _task) = spawn(
        s.clone(),
        WriterConfig {
            queue_depth_max: 4,
            batch_size_max: 1,
            ..WriterConfig::default()
        },
    );
    let f = fx();
    let mut waiting = Vec::new();
    // One is taken by the (blocked) writer, four fill the queue.
    for seq in 0..5 {
        let w = w.clone();
        let d = testkit::decline(&f, seq, 1, ResponseCode::DoNotHonour);
        waiting.push(tokio::spawn(async move { w.submit(d).await }));
        tokio::task::yield_now().await;
    }
    while w.queue_depth() < 4 {
        tokio::task::yield_now().await;
    }
    let refused = w
        .try_submit(testkit::decline(&f, 99, 1, ResponseCode::DoNotHonour))
        .await;
    assert_eq!(refused, Err(WriteError::Overloaded));
    s.gate.add_permits(1_000);
    for h in waiting {
        assert!(h.await.unwrap().is_ok());
    }
    assert_eq!(w.stats().decisions, 5);
}

#[tokio::test]
async fn batches_never_exceed_batch_size_max_and_each_caller_gets_its_own_result() {
    let s = sink(0);
    let (w, _task) = spawn(
        s.clone(),
        WriterConfig {
            queue_depth_max: 64,
            batch_size_max: 3,
            ..WriterConfig::default()
        },
    );
    let f = fx();
    let mut waiting = Vec::new();
    for seq in 0..10u32 {
        let code = if seq == 4 {
            ResponseCode::SystemMalfunction
        } else {
            ResponseCode::DoNotHonour
        };
        let d = testkit::decline(&f, seq, 1, code);
        let id = d.transaction.transaction_id;
        let w = w.clone();
        waiting.push((id, tokio::spawn(async move { w.submit(d).await })));
    }
    // Wait until the writer holds its first batch and the rest is queued behind it.
    loop {
        let taken: usize = s.sizes.lock().unwrap().iter().sum();
        if taken > 0 && taken + w.queue_depth() == 10 {
            break;
        }
        tokio::task::yield_now().await;
    }
    s.gate.add_permits(1_000);
    for (i, (id, h)) in waiting.into_iter().enumerate() {
        let r = h.await.unwrap();
        if i == 4 {
            assert_eq!(
                r,
                Err(WriteError::Decision(DecisionError::Rejected("test".into())))
            );
        } else {
            assert_eq!(r.unwrap().transaction_id, id);
        }
    }
    let sizes = s.sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|n| *n <= 3), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 10);
    assert!(sizes.len() < 10, "queued decisions were grouped: {sizes:?}");
}

#[tokio::test]
async fn the_writer_stops_after_draining_when_every_handle_is_dropped() {
    stops_after_draining(false).await;
}

#[tokio::test]
async fn a_writer_on_its_own_thread_commits_and_stops_the_same_way() {
    stops_after_draining(true).await;
}

async fn stops_after_draining(dedicated_thread: bool) {
    let s = sink(1_000);
    let (w, task) = spawn(
        s.clone(),
        WriterConfig {
            dedicated_thread,
            ..WriterConfig::default()
        },
    );
    let f = fx();
    let pending = {
        let w = w.clone();
        tokio::spawn(async move {
            w.submit(testkit::decline(&f, 1, 1, ResponseCode::DoNotHonour))
                .await
        })
    };
    assert!(pending.await.unwrap().is_ok());
    drop(w);
    task.await.unwrap();
    assert_eq!(s.sizes.lock().unwrap().iter().sum::<usize>(), 1);
}

/// A sink whose commits each wait until `together` of them are under way at once.
struct RendezvousSink {
    together: tokio::sync::Barrier,
    sizes: Mutex<Vec<usize>>,
}

impl DecisionSink for RendezvousSink {
    async fn commit(&self, batch: Vec<Decision>, _now_us: i64) -> BatchOutcome {
        self.sizes.lock().unwrap().push(batch.len());
        self.together.wait().await;
        BatchOutcome {
            results: batch
                .iter()
                .map(|d| {
                    Ok(Committed {
                        transaction_id: d.transaction.transaction_id,
                        outbox_seq: None,
                    })
                })
                .collect(),
            db_transactions: 1,
        }
    }
}

/// Submits `n` decisions one after the other (each waits for room), all from their own task.
async fn submit_spread(w: &WriterHandle, n: u32) -> Vec<tokio::task::JoinHandle<bool>> {
    let f = fx();
    let mut waiting = Vec::new();
    for seq in 0..n {
        let w = w.clone();
        let d = testkit::decline(&f, seq, 1, ResponseCode::DoNotHonour);
        let id = d.transaction.transaction_id;
        waiting.push(tokio::spawn(async move {
            w.submit(d).await.map(|c| c.transaction_id) == Ok(id)
        }));
        // Let the writer take this one before the next arrives.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }
    waiting
}

#[tokio::test]
async fn with_two_commits_in_flight_the_next_batch_commits_while_the_first_is_under_way() {
    let s = Arc::new(RendezvousSink {
        together: tokio::sync::Barrier::new(2),
        sizes: Mutex::new(vec![]),
    });
    let (w, _task) = spawn(
        s.clone(),
        WriterConfig {
            commits_in_flight_max: 2,
            ..WriterConfig::default()
        },
    );
    let waiting = submit_spread(&w, 2).await;
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        let mut ok = 0;
        for h in waiting {
            ok += usize::from(h.await.unwrap());
        }
        ok
    })
    .await
    .expect("the two batches met: both were committing at once");
    assert_eq!(answered, 2, "each caller got its own transaction");
    assert_eq!(*s.sizes.lock().unwrap(), [1, 1]);
    assert_eq!(w.stats().batches, 2);
}

#[tokio::test]
async fn with_one_commit_in_flight_a_batch_waits_for_the_previous_one() {
    let s = Arc::new(RendezvousSink {
        together: tokio::sync::Barrier::new(2),
        sizes: Mutex::new(vec![]),
    });
    let (w, _task) = spawn(s.clone(), WriterConfig::default());
    let waiting = submit_spread(&w, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The first batch waits at the barrier for a second commit that never starts.
    assert_eq!(s.sizes.lock().unwrap().len(), 1);
    assert!(waiting.iter().all(|h| !h.is_finished()));
    for h in waiting {
        h.abort();
    }
}
