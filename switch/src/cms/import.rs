//! Batch import of applications from the social-security bureau's CSV file (UTF-8, a header
//! row, Chinese names): every row validated on its own, stored in chunks, a job record
//! updated after each chunk so its progress can be read (API: the job resource; CLI: a
//! progress bar) while it runs.
//!
//! Columns (header names, any order, extra columns ignored): `citizen_id`, `name`,
//! `insurance_scheme`, `region_code`, `bank_id`. Idempotent: a row whose citizen ID the batch
//! already holds creates nothing (counted as a duplicate), so an upload interrupted or repeated
//! is simply uploaded again.

use super::application::{today_cst, validate, ApplicationFields};
use super::error::CmsError;
use super::model::{ImportJob, JobState, RowError, Stored};
use super::store::CmsStore;
use crate::store::{now_us, InstitutionKind};
use std::collections::HashSet;

/// Rows stored per transaction (and per progress update).
pub const IMPORT_CHUNK_ROWS: usize = 500;
/// Row errors kept in the job record (the counts cover every row).
pub const ROW_ERRORS_KEPT_MAX: usize = 1_000;
/// Longest batch id, in bytes.
pub const BATCH_ID_LEN_MAX_BYTES: usize = 64;
/// Largest file accepted, in bytes (100,000 rows are about 8 MiB).
pub const IMPORT_FILE_LEN_MAX_BYTES: usize = 64 * 1024 * 1024;

const COLUMNS: [&str; 5] = [
    "citizen_id",
    "name",
    "insurance_scheme",
    "region_code",
    "bank_id",
];

/// Checks a batch id: 1-64 characters of `[A-Za-z0-9._-]`.
pub fn check_batch_id(batch_id: &str) -> Result<(), CmsError> {
    let ok = !batch_id.is_empty()
        && batch_id.len() <= BATCH_ID_LEN_MAX_BYTES
        && batch_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CmsError::Invalid {
            field: "batch_id",
            reason: format!("1-{BATCH_ID_LEN_MAX_BYTES} characters of A-Z a-z 0-9 . _ -"),
        })
    }
}

fn reader(csv: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(csv)
}

/// The column positions of the header, or which column is missing.
fn columns(csv: &[u8]) -> Result<[usize; 5], CmsError> {
    let bad = |reason: String| CmsError::Invalid {
        field: "file",
        reason,
    };
    let header = reader(csv)
        .byte_headers()
        .map_err(|e| bad(format!("header row: {e}")))?
        .clone();
    let mut at = [0usize; 5];
    for (slot, name) in at.iter_mut().zip(COLUMNS) {
        // A UTF-8 byte-order mark before the first column name is tolerated.
        *slot = header
            .iter()
            .position(|h| h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h) == name.as_bytes())
            .ok_or_else(|| bad(format!("header has no column {name}")))?;
    }
    Ok(at)
}

/// Counts the data rows (a first pass, so progress has a total).
fn count_rows(csv: &[u8]) -> u64 {
    let mut r = reader(csv);
    let mut record = csv::ByteRecord::new();
    let mut n = 0;
    loop {
        match r.read_byte_record(&mut record) {
            Ok(true) | Err(_) => n += 1,
            Ok(false) => return n,
        }
    }
}

/// One record's fields as UTF-8, or the row's error.
fn fields<'r>(
    row: u64,
    record: &'r csv::ByteRecord,
    at: &[usize; 5],
) -> Result<ApplicationFields<'r>, RowError> {
    let get = |i: usize| -> Result<&'r str, RowError> {
        let raw = record.get(at[i]).unwrap_or_default();
        std::str::from_utf8(raw).map_err(|_| RowError {
            row,
            field: COLUMNS[i].to_owned(),
            reason: "not UTF-8".into(),
        })
    };
    Ok(ApplicationFields {
        citizen_id: get(0)?,
        name: get(1)?,
        insurance_scheme: get(2)?,
        region_code: get(3)?,
        bank_id: get(4)?,
    })
}

/// Runs an import of `csv` as `job` (already stored as running), calling `progress` after each
/// chunk. Returns the finished job.
pub async fn run<S: CmsStore>(
    store: &S,
    mut job: ImportJob,
    csv: &[u8],
    progress: &(dyn Fn(&ImportJob) + Send + Sync),
) -> Result<ImportJob, CmsError> {
    let at = match columns(csv) {
        Ok(at) => at,
        Err(e) => {
            fail(store, &mut job).await?;
            return Err(e);
        }
    };
    let banks: HashSet<_> = store
        .institutions()
        .await?
        .into_iter()
        .filter(|i| i.kind == InstitutionKind::Bank)
        .map(|i| i.institution_id)
        .collect();
    let today = today_cst(now_us());
    let mut r = reader(csv);
    let mut record = csv::ByteRecord::new();
    let mut chunk = Vec::with_capacity(IMPORT_CHUNK_ROWS);
    let mut row = 0u64;
    loop {
        let more = match r.read_byte_record(&mut record) {
            Ok(false) => false,
            Ok(true) => {
                row += 1;
                match fields(row, &record, &at).and_then(|f| validate(row, f, &banks, today)) {
                    Ok(app) => chunk.push(app),
                    Err(e) => reject(&mut job, e),
                }
                true
            }
            Err(e) => {
                continue_or_stop(&e)?;
                row += 1;
                reject(&mut job, row_error(row, &e));
                true
            }
        };
        let chunk_read = row.is_multiple_of(IMPORT_CHUNK_ROWS as u64);
        if !more || (chunk_read && row > 0) {
            if let Err(e) = store_chunk(store, &mut job, &mut chunk).await {
                fail(store, &mut job).await?;
                return Err(e);
            }
            job.rows_done = row.min(job.rows_total);
            if !more {
                break;
            }
            store.put_import_job(&job).await?;
            progress(&job);
        }
    }
    job.state = JobState::Done;
    job.rows_done = job.rows_total;
    job.finished_at_us = Some(now_us());
    store.put_import_job(&job).await?;
    progress(&job);
    Ok(job)
}

/// A read error of the CSV reader as a row error.
fn row_error(row: u64, e: &csv::Error) -> RowError {
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of fields".to_owned(),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
        _ => "unreadable record".to_owned(),
    };
    RowError {
        row,
        field: "row".into(),
        reason,
    }
}

/// An I/O error stops the import; a bad record does not.
fn continue_or_stop(e: &csv::Error) -> Result<(), CmsError> {
    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
        return Err(CmsError::Invalid {
            field: "file",
            reason: "unreadable".into(),
        });
    }
    Ok(())
}

fn reject(job: &mut ImportJob, e: RowError) {
    job.rows_rejected += 1;
    if job.row_errors.len() < ROW_ERRORS_KEPT_MAX {
        job.row_errors.push(e);
    }
}

async fn store_chunk<S: CmsStore>(
    store: &S,
    job: &mut ImportJob,
    chunk: &mut Vec<super::model::NewApplication>,
) -> Result<(), CmsError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let stored = store
        .store_applications(&job.batch_id, chunk, now_us())
        .await?;
    for s in stored {
        match s {
            Stored::Created(_) => job.rows_created += 1,
            Stored::Duplicate(_) => job.rows_duplicate += 1,
        }
    }
    chunk.clear();
    Ok(())
}

async fn fail<S: CmsStore>(store: &S, job: &mut ImportJob) -> Result<(), CmsError> {
    job.state = JobState::Failed;
    job.finished_at_us = Some(now_us());
    store.put_import_job(job).await?;
    Ok(())
}

/// A new running job for `batch_id` over `csv`.
pub fn new_job(batch_id: &str, csv: &[u8]) -> ImportJob {
    ImportJob {
        job_id: uuid::Uuid::now_v7(),
        batch_id: batch_id.to_owned(),
        state: JobState::Running,
        rows_total: count_rows(csv),
        rows_done: 0,
        rows_created: 0,
        rows_duplicate: 0,
        rows_rejected: 0,
        row_errors: Vec::new(),
        started_at_us: now_us(),
        finished_at_us: None,
        started_by: None,
    }
}
