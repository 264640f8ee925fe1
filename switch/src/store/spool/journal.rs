//! The node's bank-leg journal: what the switch sent to a bank and has not yet decided on.
//!
//! Why: between a 0200 leaving on a bank link and the request's decision being committed, the
//! bank may book the leg while the switch records nothing. If the node dies in that window (a
//! SIGKILL, a power cut), the bank holds the cardholder's money for a payment nobody was told
//! of, and the kiosk's 0400 finds no original to reverse. Card switches close that window as
//! they close every other one: the intent is written before the message leaves (a local
//! journal of requests forwarded, as a SAF file is one of advices), and whatever a restart
//! finds still open is reversed (ISO 8583:1987 0420, reversal advice, keyed by the leg's STAN
//! and field 7 as field 90 names them).
//!
//! Each intent is the decline the request would get had the bank not answered, with the leg's
//! 0420: a [`SpooledReversal`] with no compensation. At start the open intents move into the
//! reversal spool, whose replay stores each under the request's duplicate key: a request whose
//! real decision committed (approved, declined, reversed since) comes back `Duplicate` and
//! nothing happens; one that never committed is declined `96` and its 0420 goes to the bank
//! (which answers 25 for a leg it never saw). So a stale intent is harmless, and only a
//! missing one loses money: intents are fsynced before the 0200 leaves, retirements are not.
//!
//! Appends from concurrent requests are grouped: one thread writes every intent that waits and
//! syncs once for all of them (as the store's group commit does). A request's intent is
//! retired when the request is done with it ([`LegIntent`] dropped), its outcome being in the
//! store or the spool by then; retirements ride along with the next group, unsynced. The file
//! is rewritten with only the open intents once it grows past [`JOURNAL_REWRITE_BYTES`].
//!
//! Lines are the spool's (`<checksum> <text>`, see `file`): an intent's text is its record's
//! JSON, a retirement's is `retired <transaction id>`.

use super::file::{checksum, parse_checked_line, replace_durably, sync_dir, SpoolError};
use super::record::SpooledReversal;
use crate::store::TransactionId;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "bank-legs.journal";
const JOURNAL_NEW_FILE: &str = "bank-legs.journal.new";
/// Past this size the journal is rewritten with its open intents only (about 8,000 intents).
pub const JOURNAL_REWRITE_BYTES: u64 = 8 * 1024 * 1024;
/// The text that starts a retirement line.
const RETIRED: &str = "retired ";

/// Why an intent is not journaled (the leg must then not be sent).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Writing or syncing the journal failed.
    #[error("bank-leg journal: {0}")]
    Io(String),
    /// The journal's thread has stopped.
    #[error("bank-leg journal stopped")]
    Stopped,
}

/// What reading the journal at start found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Intents never retired, in the order they were written: legs that may be booked at
    /// their bank with no decision in the store.
    pub open: Vec<SpooledReversal>,
    /// Lines that did not read (a torn last append, a bad checksum): left out.
    pub unreadable: usize,
}

/// An append waiting for the journal's thread.
struct Append {
    id: TransactionId,
    line: String,
    done: tokio::sync::oneshot::Sender<Result<(), JournalError>>,
}

/// The journal of one node (see the module's documentation).
#[derive(Debug)]
pub struct LegJournal {
    appends: Mutex<Option<mpsc::Sender<Append>>>,
    retired: Arc<Mutex<Vec<TransactionId>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// An open intent: retired when dropped.
#[derive(Debug)]
pub struct LegIntent {
    id: TransactionId,
    retired: Arc<Mutex<Vec<TransactionId>>>,
}

impl Drop for LegIntent {
    fn drop(&mut self) {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.id);
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `text` as a journal line.
fn line(text: &str) -> String {
    format!("{} {text}\n", checksum(text.as_bytes()))
}

/// The open intents of the journal's bytes: intents minus retirements, in order.
pub fn read_open(bytes: &[u8]) -> Recovered {
    let whole = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(last) => &bytes[..=last],
        None => &bytes[..0],
    };
    let mut unreadable = usize::from(whole.len() < bytes.len());
    let mut open: Vec<Option<SpooledReversal>> = Vec::new();
    let mut at: HashMap<TransactionId, usize> = HashMap::new();
    for raw in whole.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let text = parse_checked_line(raw).and_then(|t| std::str::from_utf8(t).ok());
        let retired = text
            .and_then(|t| t.strip_prefix(RETIRED))
            .and_then(|id| Uuid::parse_str(id).ok());
        match (text, retired) {
            (_, Some(id)) => {
                if let Some(i) = at.remove(&TransactionId(id)) {
                    open[i] = None;
                }
            }
            (Some(t), None) => match SpooledReversal::from_json(t) {
                Ok(r) => {
                    at.insert(r.id(), open.len());
                    open.push(Some(r));
                }
                Err(_) => unreadable += 1,
            },
            (None, None) => unreadable += 1,
        }
    }
    Recovered {
        open: open.into_iter().flatten().collect(),
        unreadable,
    }
}

impl LegJournal {
    /// Reads the journal of the data directory `dir` (created if missing): the intents a
    /// previous run left open. The journal is not written until [`LegJournal::start`].
    pub fn recover(dir: &Path) -> Result<Recovered, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(JOURNAL_FILE);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io(&path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        Ok(read_open(&bytes))
    }

    /// Empties the journal of `dir` (its open intents are in the reversal spool by now) and
    /// starts its thread.
    pub fn start(dir: &Path) -> Result<Arc<Self>, SpoolError> {
        Self::start_rewriting_at(dir, JOURNAL_REWRITE_BYTES)
    }

    /// [`LegJournal::start`], rewriting the file once it passes `rewrite_bytes`.
    pub fn start_rewriting_at(dir: &Path, rewrite_bytes: u64) -> Result<Arc<Self>, SpoolError> {
        let path = dir.join(JOURNAL_FILE);
        File::create(&path)
            .and_then(|f| f.sync_all())
            .map_err(io(&path))?;
        sync_dir(dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let (tx, rx) = mpsc::channel();
        let retired = Arc::new(Mutex::new(Vec::new()));
        let mut writer = Writer {
            dir: dir.to_owned(),
            file,
            len: 0,
            rewrite_bytes,
            open: BTreeMap::new(),
            retired: Arc::clone(&retired),
        };
        let thread = std::thread::Builder::new()
            .name("bank-leg-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(io(&path))?;
        Ok(Arc::new(Self {
            appends: Mutex::new(Some(tx)),
            retired,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Journals `intent` and returns once it is fsynced: the leg may leave. Dropping the
    /// returned [`LegIntent`] retires it.
    pub async fn open(&self, intent: &SpooledReversal) -> Result<LegIntent, JournalError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let append = Append {
            id: intent.id(),
            line: line(&intent.to_json()),
            done,
        };
        self.appends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .ok_or(JournalError::Stopped)?
            .send(append)
            .map_err(|_| JournalError::Stopped)?;
        answer.await.map_err(|_| JournalError::Stopped)??;
        Ok(LegIntent {
            id: intent.id(),
            retired: Arc::clone(&self.retired),
        })
    }

    /// Stops the thread after it wrote what waits (retirements included): a clean stop
    /// leaves the journal holding only intents still open.
    pub fn stop(&self) {
        drop(
            self.appends
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for LegJournal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The journal's thread: the only writer of the file.
struct Writer {
    dir: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Past this, the file is rewritten.
    rewrite_bytes: u64,
    /// Open intents by id (UUID v7: in the order they were made), as their lines (what a
    /// rewrite keeps).
    open: BTreeMap<TransactionId, String>,
    retired: Arc<Mutex<Vec<TransactionId>>>,
}

impl Writer {
    fn run(&mut self, appends: mpsc::Receiver<Append>) {
        let mut buf = String::new();
        while let Ok(first) = appends.recv() {
            let mut group = vec![first];
            group.extend(appends.try_iter());
            buf.clear();
            self.retirements(&mut buf);
            for a in &group {
                buf.push_str(&a.line);
            }
            let written = self
                .file
                .write_all(buf.as_bytes())
                .and_then(|()| self.file.sync_data());
            match written {
                Ok(()) => {
                    self.len += buf.len() as u64;
                    for a in group {
                        self.open.insert(a.id, a.line);
                        let _ = a.done.send(Ok(()));
                    }
                }
                Err(e) => {
                    // Cut a partial write off, so the next group starts on a line of its own.
                    let _ = self.file.set_len(self.len);
                    tracing::error!(error = %e, "bank-leg journal not written: legs not sent");
                    for a in group {
                        let _ = a.done.send(Err(JournalError::Io(e.to_string())));
                    }
                }
            }
            if self.len > self.rewrite_bytes {
                self.rewrite();
            }
        }
        // Stopping: what was retired since the last group, then only the open intents.
        buf.clear();
        self.retirements(&mut buf);
        self.rewrite();
    }

    /// Retirement lines of the intents retired since the last group (dropping them from
    /// `open`).
    fn retirements(&mut self, buf: &mut String) {
        let retired =
            std::mem::take(&mut *self.retired.lock().unwrap_or_else(PoisonError::into_inner));
        for id in retired {
            if self.open.remove(&id).is_some() {
                buf.push_str(&line(&format!("{RETIRED}{}", id.0.simple())));
            }
        }
    }

    /// Replaces the file with the open intents' lines (new file, fsync, rename, fsync of the
    /// directory: a crash leaves one whole file or the other).
    fn rewrite(&mut self) {
        let text: String = self.open.values().map(String::as_str).collect();
        let path = self.dir.join(JOURNAL_FILE);
        let rewritten = (|| -> Result<File, SpoolError> {
            replace_durably(&self.dir, JOURNAL_FILE, JOURNAL_NEW_FILE, text.as_bytes())?;
            OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io(&path))
        })();
        match rewritten {
            Ok(file) => {
                self.file = file;
                self.len = text.len() as u64;
            }
            // The old file still holds every open intent (and more, replayed harmlessly).
            Err(e) => tracing::error!(error = %e, "bank-leg journal not compacted"),
        }
    }
}
