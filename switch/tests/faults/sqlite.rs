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
//! The control plane too (audit log, operator tables: written on sqlx's connection, outside
//! the group commit): an operator keeps writing audit entries and idempotent answers while the
//! disk is full; the first audit append and operator write after the space returns succeed at
//! once (no retry), and every write answered done during the outage is there afterwards, the
//! audit chain whole.
//!
//! Needs root (mount); it FAILS, never skips, when the tmpfs cannot be mounted.

use super::harness::{self, codes, Answered, Options};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switch::store::operator::IdempotentAnswer;
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
    // An operator all along: an audit entry and an idempotent answer every 50 ms, each kept
    // with whether the store answered it done.
    let operator = {
        let (store, stop) = (Arc::clone(&net.store), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut done = ControlWrites::default();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                done.write(&*store, &format!("during-{i}")).await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            done
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

    // The control plane's writes work as soon as the space is back: the connection that took
    // them while the disk was full is usable (not stuck counting a transaction SQLite rolled
    // back by itself), at the first attempt.
    let mut after = ControlWrites::default();
    after.write(&*net.store, "after-1").await;
    assert!(
        after.failed.is_empty(),
        "the control plane's first writes once the space is back: {:?}",
        after.failed
    );

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
    let during_outage = operator.await.expect("operator");
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

    // The control plane's writes (audit trail, operator tables) after the recovery too, and
    // nothing it answered done, during the outage or after, is missing.
    after.write(&*net.store, "after-2").await;
    eprintln!(
        "control plane: {} writes done and {} failed while the load ran ({:?}), {} done after",
        during_outage.done.len(),
        during_outage.failed.len(),
        during_outage.failed.iter().take(3).collect::<Vec<_>>(),
        after.done.len()
    );
    assert!(
        after.failed.is_empty(),
        "the control plane's writes after the recovery: {:?}",
        after.failed
    );
    assert!(
        !during_outage.failed.is_empty(),
        "the control plane never saw the full disk"
    );
    during_outage.assert_kept(&*net.store).await;
    after.assert_kept(&*net.store).await;
    net.store
        .verify_audit_chain()
        .await
        .expect("the audit chain is whole");

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

/// The control plane's writes an operator made, by whether the store answered them done.
#[derive(Default)]
struct ControlWrites {
    /// Audit subjects and idempotency keys answered done.
    done: Vec<(&'static str, String)>,
    /// What failed, and why.
    failed: Vec<(&'static str, String, String)>,
}

/// The principal of the operator's idempotent answers.
const OPERATOR: &str = "faults-operator";

impl ControlWrites {
    /// An audit entry (a write transaction) and an idempotent answer (one statement), both
    /// named `name`.
    async fn write<S: Store>(&mut self, store: &S, name: &str) {
        let entry = switch::store::AuditEntry {
            actor: OPERATOR.into(),
            action: "test.disk_full".into(),
            subject: name.into(),
            detail: "{}".into(),
            at_us: switch::store::now_us(),
        };
        match store.append_audit(&entry).await {
            Ok(_) => self.done.push(("audit", name.to_owned())),
            Err(e) => self.failed.push(("audit", name.to_owned(), e.to_string())),
        }
        let answer = IdempotentAnswer {
            request_hash: [7; 32],
            status: 201,
            body: format!("{{\"name\":\"{name}\"}}"),
        };
        match store
            .put_idempotent_answer(OPERATOR, name, &answer, switch::store::now_us())
            .await
        {
            Ok(true) => self.done.push(("idempotent", name.to_owned())),
            Ok(false) => self
                .failed
                .push(("idempotent", name.to_owned(), "kept already".into())),
            Err(e) => self
                .failed
                .push(("idempotent", name.to_owned(), e.to_string())),
        }
    }

    /// Every write answered done is in the store.
    async fn assert_kept<S: Store>(&self, store: &S) {
        let mut subjects = std::collections::HashSet::new();
        let mut after = 0;
        loop {
            let page = store.audit_page(after, 500).await.expect("audit page");
            let Some(last) = page.last() else { break };
            after = last.audit_seq;
            subjects.extend(
                page.into_iter()
                    .filter(|r| r.entry.actor == OPERATOR)
                    .map(|r| r.entry.subject),
            );
        }
        for (kind, name) in &self.done {
            match *kind {
                "audit" => assert!(
                    subjects.contains(name),
                    "audit entry {name} was answered done and is missing"
                ),
                _ => assert!(
                    store
                        .idempotent_answer(OPERATOR, name)
                        .await
                        .expect("idempotent answer")
                        .is_some(),
                    "idempotent answer {name} was answered done and is missing"
                ),
            }
        }
    }
}
