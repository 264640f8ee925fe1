//! SQLite's disk full. The store is a SQLite file on a small tmpfs mounted for the test (its
//! own mount point; nothing else lives there). Injected under load on banks 0, 1 and 2: the
//! filesystem filled to the last byte by a filler file (`ENOSPC` for every write that needs a
//! new block: the WAL growing, the checkpoint growing the database file) for 10 s, then the
//! filler deleted; the switch process is not restarted and the store is not reopened.
//!
//! Why a full tmpfs and not `chmod`: the tests run as root, whom permissions do not stop; and a
//! read-only remount is refused while the store holds its files open for writing. A full
//! filesystem is what a real disk does to SQLite (`SQLITE_FULL`), and root cannot write past it
//! either (tmpfs keeps no reserved blocks).
//!
//! Asserted: every request is answered (no hang, no crash); every answer while the disk is full
//! is `00` (the commit found room: a WAL frame already allocated) or `96` (the store could not
//! record the decision), never another code; at least one `96` (the fault was seen); `00` again
//! for every bank once space returns, without a restart; and the books balance: every approval
//! is in the store with the answer the kiosk got (a batch that failed left nothing of itself: no
//! decision stored that its kiosk was told was declined), each bank holds exactly the approved
//! purchases, `verify_integrity` finds nothing.
//!
//! Needs root (mount); it FAILS, never skips, when the tmpfs cannot be mounted.

use super::harness::{self, codes, Answered, Options};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switch::store::{DataKeyPanProtector, SqliteConfig, SqliteStore, Store};

const LOADED: [usize; 3] = [0, 1, 2];

/// A tmpfs of `size` mounted on a fresh folder, unmounted (lazily: the store may still hold
/// its files) when dropped.
pub struct SmallDisk {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "the disk-full fault needs a tmpfs of its own (mount as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path, _dir: dir }
    }

    /// Writes a filler file until the filesystem refuses (`ENOSPC`), off the runtime's threads:
    /// 1 MiB writes, then smaller ones for the last blocks. Returns the bytes written.
    pub async fn fill(&self) -> u64 {
        let filler = self.filler();
        tokio::task::spawn_blocking(move || fill(&filler))
            .await
            .expect("fill")
    }

    /// Deletes the filler: the space returns.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).expect("filler removed");
    }

    /// Bytes free now (`df`'s answer).
    pub fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df answers")
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }
}

/// Writes `filler` until the filesystem refuses (`ENOSPC`).
fn fill(filler: &Path) -> u64 {
    let mut f = std::fs::File::create(filler).expect("filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let block = vec![0xA5u8; chunk];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    written
}

/// `ENOSPC` on Linux.
fn libc_enospc() -> i32 {
    28
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Waits (at most `bound`) until each bank holds exactly the purchases the switch approved:
/// the reversals of legs booked for requests answered `96` have all arrived. Returns how long
/// it took; `assert_books` then says what is wrong if the bound passed.
pub async fn banks_settle<S: switch::store::Store>(
    net: &harness::Net<S>,
    answers: &[Answered],
    bound: Duration,
) -> Option<Duration> {
    let mut approved: std::collections::HashMap<&str, i64> = Default::default();
    for a in answers.iter().filter(|a| a.code == "00") {
        *approved.entry(a.pan.as_str()).or_default() += a.amount_fen as i64;
    }
    let started = Instant::now();
    while started.elapsed() < bound {
        let settled = net.world.cards.iter().all(|c| {
            let pan = c.pan.expose_digits();
            net.banks[c.bank].balance_fen(pan)
                == Some(net.opening[pan] - approved.get(pan).copied().unwrap_or(0))
        });
        if settled {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn db_path(disk: &Path) -> PathBuf {
    disk.join("switch.db")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_for_10_s_under_load_is_answered_96_and_the_switch_recovers_without_a_restart(
) {
    let disk = SmallDisk::mount("48m");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(db_path(&disk.path)),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store on the small disk"),
    );
    let net = Arc::new(harness::start(store, Options::default()).await);
    let mut all = net.purchases(&LOADED, 2).await;
    assert!(
        all.iter().all(|a| a.code == "00"),
        "healthy: {:?}",
        codes(&all)
    );

    // Load all along: rounds of purchases until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (net, stop) = (Arc::clone(&net), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut answers: Vec<(Instant, Vec<Answered>)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let round = net.purchases(&LOADED, 1).await;
                answers.push((Instant::now(), round));
                // A cardholder's pace, not a loop's: a card tried more than the ATC gap
                // (`atc_gap_max`, 100) times while no decision is recorded would be declined
                // `59` when it next reaches the store, as a card whose ATC jumped.
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let filled = disk.fill().await;
    let full_at = Instant::now();
    assert!(
        disk.available() < 64 * 1024,
        "the disk is not full after {filled} bytes: {} free",
        disk.available()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    disk.free();
    let freed_at = Instant::now();
    let full_for = full_at.elapsed();

    // Recovery: every bank's cardholders approved again, within 30 s of the space returning.
    let mut recovered = None;
    for _ in 0..30 {
        let round = net.purchases(&LOADED, 1).await;
        let ok = round.iter().all(|a| a.code == "00");
        all.extend(round);
        if ok {
            recovered = Some(freed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let rounds = load.await.expect("load");
    for (at, round) in &rounds {
        let phase = if *at < full_at {
            "before"
        } else if *at < freed_at {
            "full"
        } else {
            "after"
        };
        eprintln!("{phase} {:?}", codes(round));
    }
    let during: Vec<Answered> = rounds.into_iter().flat_map(|(_, r)| r).collect();
    eprintln!(
        "disk full for {full_for:?} ({filled} bytes of filler); answers under load: {:?}; \
         recovered {recovered:?} after the space returned",
        codes(&during)
    );
    assert!(
        during.iter().all(|a| a.code == "00" || a.code == "96"),
        "with the disk full: {:?}",
        codes(&during)
    );
    assert!(
        during.iter().any(|a| a.code == "96"),
        "the full disk was never seen: {:?}",
        codes(&during)
    );
    assert!(
        recovered.is_some(),
        "no full round approved after the space returned"
    );
    all.extend(during);

    // The control plane's writes (audit trail, remembered answers) work again too: the
    // connection that took them while the disk was full is usable, not stuck in a transaction.
    let entry = switch::store::AuditEntry {
        actor: "faults".into(),
        action: "test.disk_full".into(),
        subject: "store".into(),
        detail: "{}".into(),
        at_us: switch::store::now_us(),
    };
    net.store
        .append_audit(&entry)
        .await
        .expect("an audit entry is written once the space is back");

    // The declines whose bank legs were approved while the disk was full are stored (with their
    // reversals) once the space is back, a retry later; the forwarder then delivers them.
    let settled = banks_settle(&net, &all, Duration::from_secs(30)).await;
    eprintln!("banks settled {settled:?} after the space returned");
    net.drain_store_and_forward().await;
    net.assert_books(&all).await;
    match Arc::try_unwrap(net) {
        Ok(net) => net.stop().await,
        Err(_) => panic!("the network is still shared"),
    }
}
