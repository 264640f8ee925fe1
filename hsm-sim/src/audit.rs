//! Append-only, hash-chained audit log of key operations.
//!
//! Why this exists: every key generation, import, export, component formation and data-key
//! release must leave a trace that cannot be edited silently. Each line carries the SHA-256 of
//! the previous line's hash and its own content, so deleting, reordering or changing a line breaks
//! the chain at that point ([`verify_audit_log`]). Lines never contain clear keys or PINs: only the
//! command, the key type, the key check value and the result code.
//!
//! Line format (`|`-separated): `seq|unix_ms|peer|command|error|detail|prev_hash|hash`, where
//! `hash = hex(SHA-256(prev_hash || "seq|unix_ms|peer|command|error|detail"))` and the first
//! `prev_hash` is 64 zeros. Writes go through a bounded channel ([`AUDIT_QUEUE_MAX`]) to one
//! writer task that appends and flushes each line.

use std::path::{Path, PathBuf};

use ring::digest::{digest, SHA256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Bound on queued audit events; senders wait when it is full (back-pressure, nothing dropped).
pub const AUDIT_QUEUE_MAX: usize = 4096;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Peer address.
    pub peer: String,
    /// Command code.
    pub command: String,
    /// Result error code (`00` success).
    pub error: String,
    /// Key type / KCV detail (never secret).
    pub detail: String,
}

/// Errors reading or verifying an audit log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditError {
    /// The file could not be read.
    #[error("audit log unreadable")]
    Io,
    /// The chain breaks at this 1-based line.
    #[error("audit chain broken at line {0}")]
    Broken(usize),
}

fn chain_hash(prev: &str, content: &str) -> String {
    let mut buf = Vec::with_capacity(prev.len() + content.len());
    buf.extend_from_slice(prev.as_bytes());
    buf.extend_from_slice(content.as_bytes());
    hex::encode(digest(&SHA256, &buf))
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c == '|' || c.is_control() { '_' } else { c })
        .collect()
}

/// Check the whole chain; returns the number of lines.
pub fn verify_audit_log(path: &Path) -> Result<usize, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|_| AuditError::Io)?;
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.rsplitn(3, '|').collect();
        let [hash, prev_in_line, content] = parts[..] else {
            return Err(AuditError::Broken(i + 1));
        };
        if prev_in_line != prev || chain_hash(&prev, content) != hash {
            return Err(AuditError::Broken(i + 1));
        }
        let seq_ok = content
            .split('|')
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            == Some(i + 1);
        if !seq_ok {
            return Err(AuditError::Broken(i + 1));
        }
        prev = hash.to_string();
        count += 1;
    }
    Ok(count)
}

/// Handle used by connections to record events.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditEvent>,
}

impl AuditLog {
    /// Open (or continue) the log at `path` and start its writer task. An existing log must
    /// verify; appending to a broken chain is refused.
    pub async fn open(path: PathBuf) -> Result<AuditLog, AuditError> {
        let (mut seq, mut prev) = match std::fs::metadata(&path) {
            Ok(_) => {
                let n = verify_audit_log(&path)?;
                let text = std::fs::read_to_string(&path).map_err(|_| AuditError::Io)?;
                let last = text
                    .lines()
                    .last()
                    .and_then(|l| l.rsplit('|').next())
                    .unwrap_or(GENESIS)
                    .to_string();
                (n, last)
            }
            Err(_) => (0, GENESIS.to_string()),
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|_| AuditError::Io)?;
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(AUDIT_QUEUE_MAX);
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                seq += 1;
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                let content = format!(
                    "{seq}|{ms}|{}|{}|{}|{}",
                    clean(&ev.peer),
                    clean(&ev.command),
                    clean(&ev.error),
                    clean(&ev.detail)
                );
                let hash = chain_hash(&prev, &content);
                let line = format!("{content}|{prev}|{hash}\n");
                if file.write_all(line.as_bytes()).await.is_err() || file.flush().await.is_err() {
                    tracing::error!("audit log write failed; stopping audit writer");
                    break;
                }
                prev = hash;
            }
        });
        Ok(AuditLog { tx })
    }

    /// Record an event (waits if the queue is full).
    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(event).await.is_err() {
            tracing::error!("audit writer gone; event not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chain_verifies_continues_and_detects_tampering() {
        let dir = std::env::temp_dir().join(format!("hsm-audit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("audit.log");
        let _ = std::fs::remove_file(&path);
        let ev = |c: &str| AuditEvent {
            peer: "127.0.0.1:1".into(),
            command: c.into(),
            error: "00".into(),
            detail: "001 kcv=08D7B4".into(),
        };
        {
            let log = AuditLog::open(path.clone()).await.expect("open");
            log.record(ev("A0")).await;
            log.record(ev("A6")).await;
            drop(log);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(verify_audit_log(&path), Ok(2));
        {
            let log = AuditLog::open(path.clone()).await.expect("reopen");
            log.record(ev("A8")).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(verify_audit_log(&path), Ok(3));
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replacen("|A6|", "|A4|", 1)).expect("write");
        assert_eq!(verify_audit_log(&path), Err(AuditError::Broken(2)));
        assert!(AuditLog::open(path.clone()).await.is_err());
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).expect("write");
        assert_eq!(verify_audit_log(&path), Err(AuditError::Broken(2)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
