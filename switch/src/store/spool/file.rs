//! The spool file in the node's data directory: one record per line, each line
//! `<checksum> <json>\n`, the checksum the first 8 bytes of the SHA-256 of the JSON text in hex.
//!
//! Why lines with a checksum: an append is the only write on the answer's path, and a crash
//! can stop it anywhere. A record is durable once its line and newline are fsynced; a last
//! line without its newline is a torn append (the process died before the answer left, so
//! nobody was told it was kept) and is set aside with a warning, never a panic. A line whose
//! checksum does not match (a bad sector, an edit by hand) is set aside too, into
//! `reversals.spool.unreadable` for the operator, so that compaction never destroys what it
//! could not read. Compaction writes the records still pending to a new file, fsyncs it and
//! renames it over the old one (then fsyncs the directory), so a crash during it leaves one
//! whole file or the other.
//!
//! One node per data directory: `spool.lock` is held locked (an advisory lock of the OS) for
//! the life of the spool, so a second node on the same directory refuses to start instead of
//! compacting away the first one's records.

use super::record::SpooledReversal;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The spool's file name in the data directory.
pub const SPOOL_FILE: &str = "reversals.spool";
/// Where lines that cannot be read are set aside.
pub const UNREADABLE_FILE: &str = "reversals.spool.unreadable";
/// Where records the store refused for good are set aside (see `super::ReversalSpool`).
pub const REFUSED_FILE: &str = "reversals.spool.refused";
/// The lock that keeps a second node off the directory.
pub const LOCK_FILE: &str = "spool.lock";
const COMPACT_FILE: &str = "reversals.spool.new";

/// Longest line read back (a record is about 800 bytes).
pub const LINE_BYTES_MAX: usize = 4_096;
/// Most records the file holds: past it an append is refused (the record stays in memory, not
/// durable, and the error is logged). 65,536 reversals are a long outage under full load.
pub const RECORDS_MAX: usize = 65_536;

/// Hex digits of the checksum.
const CHECKSUM_HEX: usize = 16;

/// Why the spool file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading, writing or syncing failed.
    #[error("reversal spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("reversal spool {0}: in use by another node")]
    InUse(PathBuf),
    /// The file holds as many records as it may ([`RECORDS_MAX`]).
    #[error("reversal spool full ({0} records)")]
    Full(usize),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What reading the file found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records, in the order they were appended.
    pub records: Vec<SpooledReversal>,
    /// Lines that could not be read (bad checksum, bad record), set aside.
    pub unreadable: usize,
    /// A last line without its newline (a crash mid-append), set aside.
    pub torn_tail: bool,
}

/// The open spool file (appends go to its end).
#[derive(Debug)]
pub struct SpoolFile {
    dir: PathBuf,
    file: File,
    /// Records in the file.
    records: usize,
    /// Most records it takes.
    records_max: usize,
    /// Bytes in the file: an append that fails is cut back to it.
    len: u64,
    _lock: File,
}

/// `record` as its line.
pub fn line_of(record: &SpooledReversal) -> String {
    let json = record.to_json();
    format!("{} {json}\n", checksum(json.as_bytes()))
}

pub(super) fn checksum(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    hex::encode(&digest.as_ref()[..CHECKSUM_HEX / 2])
}

/// The text of one line (without its newline) whose checksum matches.
pub(super) fn parse_checked_line(line: &[u8]) -> Option<&[u8]> {
    if line.len() > LINE_BYTES_MAX || line.len() < CHECKSUM_HEX + 2 {
        return None;
    }
    let (sum, rest) = line.split_at(CHECKSUM_HEX);
    let text = rest.strip_prefix(b" ")?;
    (checksum(text).as_bytes() == sum).then_some(text)
}

/// One line (without its newline) as a record, if it reads.
fn parse_line(line: &[u8]) -> Option<SpooledReversal> {
    let json = parse_checked_line(line)?;
    SpooledReversal::from_json(std::str::from_utf8(json).ok()?).ok()
}

/// Splits the file's bytes into what reads and what does not: the records, the unreadable
/// lines, and the torn tail (bytes after the last newline). Never panics on any input.
pub fn parse(bytes: &[u8]) -> (Vec<SpooledReversal>, Vec<&[u8]>, &[u8]) {
    let (whole, tail) = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(last) => bytes.split_at(last + 1),
        None => (&bytes[..0], bytes),
    };
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for line in whole.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match parse_line(line) {
            Some(r) => records.push(r),
            None => bad.push(line),
        }
    }
    (records, bad, tail)
}

impl SpoolFile {
    /// Opens (creating) the spool in `dir`, locks the directory, and reads back what it holds;
    /// unreadable lines and a torn tail are moved to [`UNREADABLE_FILE`], so the file holds
    /// whole records only and the next append starts on a line of its own.
    pub fn open(dir: &Path) -> Result<(Self, Loaded), SpoolError> {
        Self::open_bounded(dir, RECORDS_MAX)
    }

    /// [`SpoolFile::open`] taking at most `records_max` records.
    pub fn open_bounded(dir: &Path, records_max: usize) -> Result<(Self, Loaded), SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(SpoolError::InUse(dir.to_owned()));
        }
        let path = dir.join(SPOOL_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        let (records, bad, tail) = parse(&bytes);
        let loaded = Loaded {
            unreadable: bad.len(),
            torn_tail: !tail.is_empty(),
            records,
        };
        let mut spool = SpoolFile {
            dir: dir.to_owned(),
            records: loaded.records.len(),
            records_max,
            len: bytes.len() as u64,
            file,
            _lock: lock,
        };
        if !bad.is_empty() || !tail.is_empty() {
            let mut aside: Vec<u8> = Vec::new();
            for line in bad.iter().chain(std::iter::once(&tail)) {
                if !line.is_empty() {
                    aside.extend_from_slice(line);
                    aside.push(b'\n');
                }
            }
            spool.set_aside(UNREADABLE_FILE, &aside)?;
            spool.rewrite(&loaded.records)?;
        }
        Ok((spool, loaded))
    }

    /// Records in the file.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Appends `record` and fsyncs it: once this returns `Ok`, the record survives a crash of
    /// the process or of the machine.
    pub fn append(&mut self, record: &SpooledReversal) -> Result<(), SpoolError> {
        if self.records >= self.records_max {
            return Err(SpoolError::Full(self.records_max));
        }
        let line = line_of(record);
        let path = self.dir.join(SPOOL_FILE);
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut a partial line off, so the next append starts on a line of its own.
            let _ = self.file.set_len(self.len);
            return Err(io(&path)(e));
        }
        self.len += line.len() as u64;
        self.records += 1;
        Ok(())
    }

    /// Replaces the file's content with `records` (compaction): an empty spool is truncated in
    /// place; otherwise a new file is written, fsynced and renamed over the old one.
    pub fn rewrite(&mut self, records: &[SpooledReversal]) -> Result<(), SpoolError> {
        let path = self.dir.join(SPOOL_FILE);
        if records.is_empty() {
            self.file.set_len(0).map_err(io(&path))?;
            self.file.sync_all().map_err(io(&path))?;
            self.len = 0;
            self.records = 0;
            return Ok(());
        }
        let text: String = records.iter().map(line_of).collect();
        replace_durably(&self.dir, SPOOL_FILE, COMPACT_FILE, text.as_bytes())?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.len = text.len() as u64;
        self.records = records.len();
        Ok(())
    }

    /// Appends `bytes` to the file `name` beside the spool (for the operator), fsynced.
    pub fn set_aside(&self, name: &str, bytes: &[u8]) -> Result<(), SpoolError> {
        let path = self.dir.join(name);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_data())
            .map_err(io(&path))?;
        sync_dir(&self.dir)
    }
}

/// Replaces the file `name` in `dir` with `bytes`: written to `scratch`, fsynced, renamed over
/// `name`, the directory fsynced. A crash leaves one whole file or the other.
pub(super) fn replace_durably(
    dir: &Path,
    name: &str,
    scratch: &str,
    bytes: &[u8],
) -> Result<(), SpoolError> {
    let (path, new_path) = (dir.join(name), dir.join(scratch));
    let mut new = File::create(&new_path).map_err(io(&new_path))?;
    new.write_all(bytes)
        .and_then(|()| new.sync_all())
        .map_err(io(&new_path))?;
    drop(new);
    std::fs::rename(&new_path, &path).map_err(io(&path))?;
    sync_dir(dir)
}

/// Makes a rename or a new file in `dir` durable (POSIX: the directory entry is the
/// directory's data).
pub(super) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
