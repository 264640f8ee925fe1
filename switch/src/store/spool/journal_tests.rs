//! The bank-leg journal: an intent is on disk once `open` returns, a retired one is not
//! recovered after a clean stop, one still open at a crash is, a torn or corrupted line is left
//! out (never a panic), and a rewrite keeps exactly the open intents.

use super::tests::sample;
use super::*;

fn journal_bytes(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(dir.join(JOURNAL_FILE)).unwrap()
}

#[tokio::test]
async fn an_intent_is_on_disk_once_open_returns_and_a_crash_recovers_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = LegJournal::start(dir.path()).unwrap();
    let (a, b) = (sample(1, 100), sample(3, 250));
    let _open_a = journal.open(&a).await.unwrap();
    let _open_b = journal.open(&b).await.unwrap();
    // What a restart after a SIGKILL here would read: both, in order.
    let recovered = read_open(&journal_bytes(dir.path()));
    assert_eq!(recovered.open, vec![a, b]);
    assert_eq!(recovered.unreadable, 0);
}

#[tokio::test]
async fn retired_intents_are_not_recovered_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let journal = LegJournal::start(dir.path()).unwrap();
    let (a, b, c) = (sample(1, 100), sample(3, 250), sample(5, 75));
    let open_a = journal.open(&a).await.unwrap();
    let _open_b = journal.open(&b).await.unwrap();
    drop(open_a);
    // The retirement rides with the next group.
    let open_c = journal.open(&c).await.unwrap();
    assert_eq!(
        read_open(&journal_bytes(dir.path())).open,
        vec![b.clone(), c]
    );
    drop(open_c);
    journal.stop();
    let recovered = LegJournal::recover(dir.path()).unwrap();
    assert_eq!(recovered.open, vec![b]);
    // After a stop with nothing open, the file is empty.
    drop(_open_b);
    let journal = LegJournal::start(dir.path()).unwrap();
    journal.stop();
    assert!(journal_bytes(dir.path()).is_empty());
}

#[tokio::test]
async fn start_empties_the_journal_it_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let journal = LegJournal::start(dir.path()).unwrap();
    let a = sample(1, 100);
    std::mem::forget(journal.open(&a).await.unwrap());
    journal.stop();
    assert_eq!(LegJournal::recover(dir.path()).unwrap().open, vec![a]);
    let again = LegJournal::start(dir.path()).unwrap();
    assert!(LegJournal::recover(dir.path()).unwrap().open.is_empty());
    again.stop();
}

#[tokio::test]
async fn concurrent_intents_all_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let journal = LegJournal::start(dir.path()).unwrap();
    let records: Vec<SpooledReversal> = (0..64)
        .map(|i| sample(2 * i + 1, 100 + i64::from(i)))
        .collect();
    let opened = futures_util::future::join_all(records.iter().map(|r| journal.open(r))).await;
    let kept: Vec<LegIntent> = opened.into_iter().map(Result::unwrap).collect();
    let mut recovered = read_open(&journal_bytes(dir.path())).open;
    recovered.sort_by_key(|r| r.id());
    let mut expected = records.clone();
    expected.sort_by_key(|r| r.id());
    assert_eq!(recovered, expected);
    drop(kept);
    journal.stop();
    assert!(LegJournal::recover(dir.path()).unwrap().open.is_empty());
}

#[tokio::test]
async fn a_rewrite_keeps_exactly_the_open_intents() {
    let dir = tempfile::tempdir().unwrap();
    // A rewrite after every group.
    let journal = LegJournal::start_rewriting_at(dir.path(), 1).unwrap();
    let keep = sample(1, 100);
    let _kept = journal.open(&keep).await.unwrap();
    for i in 0..5 {
        drop(journal.open(&sample(3 + 2 * i, 10)).await.unwrap());
    }
    let last = sample(99, 5);
    let _last = journal.open(&last).await.unwrap();
    // Acknowledged before its group's rewrite: the next group finds it done.
    let probe = sample(101, 5);
    let _probe = journal.open(&probe).await.unwrap();
    let bytes = journal_bytes(dir.path());
    assert_eq!(read_open(&bytes).open, vec![keep, last, probe]);
    // The rewritten two and the probe: the retired intents and their retirements are gone.
    let lines = bytes.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, 3, "{}", String::from_utf8_lossy(&bytes));
}

#[test]
fn a_torn_or_corrupted_line_is_left_out_never_a_panic() {
    let (a, b) = (sample(1, 100), sample(3, 250));
    let mut bytes = super::file::line_of(&a).into_bytes();
    let mut bad = super::file::line_of(&b).into_bytes();
    bad[30] ^= 0x01;
    bytes.extend_from_slice(&bad);
    bytes.extend_from_slice(b"0123456789abcdef retired 0190");
    let recovered = read_open(&bytes);
    assert_eq!(recovered.open, vec![a]);
    assert_eq!(recovered.unreadable, 2);
    // Any bytes at all.
    for n in 0..bytes.len() {
        let _ = read_open(&bytes[..n]);
    }
}
