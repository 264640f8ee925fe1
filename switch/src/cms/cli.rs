//! `switch applications import --config FILE --batch ID --institution ID --reason TEXT CSV`:
//! a batch of applications imported from the command line, against the store a node's
//! configuration names, with a progress bar on standard error.
//!
//! Why a CLI beside the API: the social-security bureau's files arrive by the hundred thousand
//! at the start of a campaign, and an operator at the data centre imports them where the file
//! is, watching the progress, without an upload of several megabytes through a browser.

use super::model::{Actor, ImportJob};
use super::service::CardManagement;
use super::store::CmsStore;
use crate::config::{hsm_of, open_store, NodeConfig};
use schemas::domain::InstitutionId;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Width of the progress bar in characters.
const BAR_WIDTH_CHARS: usize = 40;

/// Who runs the import.
#[derive(Debug, Clone)]
pub struct ImportArgs<'a> {
    /// The node configuration.
    pub config: &'a Path,
    /// The batch id (idempotency key with each citizen ID).
    pub batch_id: &'a str,
    /// The operator's institution.
    pub institution: &'a str,
    /// Why (a ticket).
    pub reason: &'a str,
    /// The CSV file.
    pub file: &'a Path,
}

/// One line of progress: `[#####-----]  45% 45000/100000 rows, 12 rejected`.
pub fn progress_line(job: &ImportJob) -> String {
    let pct = usize::from(job.percent());
    let filled = pct * BAR_WIDTH_CHARS / 100;
    format!(
        "[{}{}] {pct:>3}% {}/{} rows, {} created, {} duplicate, {} rejected",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH_CHARS - filled),
        job.rows_done,
        job.rows_total,
        job.rows_created,
        job.rows_duplicate,
        job.rows_rejected
    )
}

fn draw(job: &ImportJob) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{}", progress_line(job));
    let _ = err.flush();
}

/// Runs the import and returns the finished job.
pub async fn import(args: ImportArgs<'_>) -> Result<ImportJob, String> {
    let cfg = NodeConfig::load(args.config).map_err(|e| e.to_string())?;
    let institution = InstitutionId::parse(args.institution)
        .map_err(|_| "--institution: not an institution id".to_owned())?;
    let actor = Actor {
        operator: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
        institution,
        source: "cli".into(),
        reason: args.reason.to_owned(),
    };
    let csv = std::fs::read(args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let hsm = hsm_of(&cfg).map_err(|e| e.to_string())?;
    let opened = open_store(&cfg, &*hsm).await.map_err(|e| e.to_string())?;
    let job = crate::on_store!(opened, |store| {
        // The banks of `[[bank]]` are the institutions the rows name.
        crate::config::admin::ensure_configured_institutions(&*store, &cfg)
            .await
            .map_err(|e| e.to_string())?;
        run(store, &actor, args.batch_id, &csv).await?
    });
    eprintln!();
    Ok(job)
}

async fn run<S: CmsStore>(
    store: Arc<S>,
    actor: &Actor,
    batch_id: &str,
    csv: &[u8],
) -> Result<ImportJob, String> {
    let cms = CardManagement::new(store);
    let job = cms
        .start_import(batch_id, csv)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("job {} for batch {batch_id}", job.job_id);
    draw(&job);
    cms.finish_import(actor, job, csv, &draw)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cms::model::JobState;

    #[test]
    fn the_progress_bar_fills_with_the_rows_done() {
        let mut job = crate::cms::import::new_job("b", b"citizen_id\n1\n2\n3\n4\n");
        assert_eq!(job.rows_total, 4);
        job.rows_done = 2;
        let line = progress_line(&job);
        assert!(line.starts_with(&format!("[{}{}]  50%", "#".repeat(20), "-".repeat(20))));
        job.rows_done = 4;
        job.state = JobState::Done;
        assert!(progress_line(&job).contains("100% 4/4 rows"));
    }
}
