//! The card management service: what an HTTP handler, the CLI or a test calls. Every method
//! takes the [`Actor`] and writes one audit entry when it changes something, in the change's
//! own transaction (an action whose entry cannot be appended is not done); life-cycle
//! operations go through the one transition table ([`super::lifecycle::TRANSITIONS`]) and a
//! compare-and-set on the card's version.
//!
//! Issuance, replacement and PIN reset need the HSM; they are in [`super::issuance`] and use the
//! [`super::issuance::IssuanceConfig`] given at construction.

use super::audit;
use super::error::CmsError;
use super::import;
use super::issuance::IssuanceConfig;
use super::lifecycle::{next, CardOperation, Lifecycle};
use super::model::{Actor, Application, ApplicationId, CmsCard, ImportJob};
use super::photo::PhotoSealer;
use super::store::{CardChange, CmsStore};
use crate::store::{now_us, CardId};
use schemas::domain::InstitutionId;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// The card management system over a store (SQLite or PostgreSQL).
pub struct CardManagement<S> {
    pub(super) store: Arc<S>,
    pub(super) photos: Option<PhotoSealer>,
    pub(super) issuance: Option<IssuanceConfig>,
}

impl<S> std::fmt::Debug for CardManagement<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardManagement")
            .field("issuance", &self.issuance.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: CmsStore> CardManagement<S> {
    /// A service without photos or issuance (applications and life cycle only).
    pub fn new(store: Arc<S>) -> Self {
        Self {
            store,
            photos: None,
            issuance: None,
        }
    }

    /// With photos, sealed under a data key from the HSM.
    pub fn with_photos(mut self, photos: PhotoSealer) -> Self {
        self.photos = Some(photos);
        self
    }

    fn photos(&self) -> Result<&PhotoSealer, CmsError> {
        self.photos.as_ref().ok_or(CmsError::Invalid {
            field: "photo",
            reason: "this service has no photo key".into(),
        })
    }

    /// With issuance (PAN ranges, master keys, the bureau's transport keys).
    pub fn with_issuance(mut self, issuance: IssuanceConfig) -> Self {
        self.issuance = Some(issuance);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    // ---- applications ----

    /// Imports a CSV batch (see [`super::import`]); `progress` sees the job after every chunk.
    /// The job can also be read by id ([`CardManagement::import_job`]) while it runs.
    pub async fn import_applications(
        &self,
        actor: &Actor,
        batch_id: &str,
        csv: &[u8],
        progress: &(dyn Fn(&ImportJob) + Send + Sync),
    ) -> Result<ImportJob, CmsError> {
        let job = self.start_import(batch_id, csv).await?;
        self.finish_import(actor, job, csv, progress).await
    }

    /// Checks the batch and stores its job as running (its id is the API's job resource).
    pub async fn start_import(&self, batch_id: &str, csv: &[u8]) -> Result<ImportJob, CmsError> {
        self.start_import_by(None, batch_id, csv).await
    }

    /// [`CardManagement::start_import`] for an operator of `started_by`: the job is stored with
    /// its starter, so it and the switch see it from any node and after a restart.
    pub async fn start_import_by(
        &self,
        started_by: Option<&InstitutionId>,
        batch_id: &str,
        csv: &[u8],
    ) -> Result<ImportJob, CmsError> {
        import::check_batch_id(batch_id)?;
        if csv.len() > import::IMPORT_FILE_LEN_MAX_BYTES {
            return Err(CmsError::Invalid {
                field: "file",
                reason: format!("above {} bytes", import::IMPORT_FILE_LEN_MAX_BYTES),
            });
        }
        let mut job = import::new_job(batch_id, csv);
        job.started_by = started_by.cloned();
        self.store.put_import_job(&job).await?;
        Ok(job)
    }

    /// Runs a job [`CardManagement::start_import`] created, and audits its outcome.
    pub async fn finish_import(
        &self,
        actor: &Actor,
        job: ImportJob,
        csv: &[u8],
        progress: &(dyn Fn(&ImportJob) + Send + Sync),
    ) -> Result<ImportJob, CmsError> {
        let job_id = job.job_id;
        let batch = job.batch_id.clone();
        let result = import::run(&*self.store, job, csv, progress).await;
        let detail = match &result {
            Ok(j) => json!({"job_id": job_id.to_string(), "rows_total": j.rows_total,
                "created": j.rows_created, "duplicate": j.rows_duplicate,
                "rejected": j.rows_rejected}),
            Err(e) => json!({"job_id": job_id.to_string(), "failed": e.to_string()}),
        };
        audit::record(
            &*self.store,
            actor,
            "applications.import",
            format!("batch:{batch}"),
            detail,
        )
        .await?;
        result
    }

    /// An import job (progress while it runs).
    pub async fn import_job(&self, job_id: Uuid) -> Result<ImportJob, CmsError> {
        self.store
            .import_job(job_id)
            .await?
            .ok_or(CmsError::NotFound("import job"))
    }

    /// One application.
    pub async fn application(&self, id: ApplicationId) -> Result<Application, CmsError> {
        self.store
            .application(id)
            .await?
            .ok_or(CmsError::NotFound("application"))
    }

    /// The application of a citizen ID in a batch (the import's answer to "what became of
    /// this row").
    pub async fn application_in_batch(
        &self,
        batch_id: &str,
        citizen_id: &str,
    ) -> Result<Application, CmsError> {
        let id = self
            .store
            .application_in_batch(batch_id, citizen_id)
            .await?
            .ok_or(CmsError::NotFound("application"))?;
        self.application(id).await
    }

    /// Attaches the cardholder's photo (JPEG, at most `PHOTO_LEN_MAX_BYTES`), sealed at rest.
    pub async fn attach_photo(
        &self,
        actor: &Actor,
        id: ApplicationId,
        jpeg: &[u8],
    ) -> Result<(), CmsError> {
        let info = super::photo::check_jpeg(jpeg)?;
        let sealed = self.photos()?.seal(jpeg)?;
        let entry = audit::entry(
            actor,
            "application.photo",
            format!("application:{}", id.0),
            json!({"bytes": jpeg.len(), "width": info.width, "height": info.height}),
        );
        self.store
            .set_application_photo(id, &sealed, &entry)
            .await?;
        Ok(())
    }

    /// The photo of an application, opened (for the personalisation file).
    pub async fn photo(&self, id: ApplicationId) -> Result<Option<Vec<u8>>, CmsError> {
        match self.store.application_photo(id).await? {
            Some(sealed) => Ok(Some(self.photos()?.open(&sealed)?)),
            None => Ok(None),
        }
    }

    // ---- cards ----

    /// A card with its life-cycle state and version (the HTTP ETag).
    pub async fn card(&self, card_id: CardId) -> Result<CmsCard, CmsError> {
        self.store
            .cms_card(card_id)
            .await?
            .ok_or(CmsError::NotFound("card"))
    }

    /// Reads the card and checks `if_match` against its version.
    pub(super) async fn card_at(
        &self,
        card_id: CardId,
        if_match: Option<i64>,
    ) -> Result<CmsCard, CmsError> {
        let card = self.card(card_id).await?;
        match if_match {
            Some(v) if v != card.version => Err(CmsError::VersionMismatch {
                current: card.version,
            }),
            _ => Ok(card),
        }
    }

    /// A life-cycle operation without side data: hand over, activate, suspend, lift, report
    /// lost or stolen, block, unblock, expire, close. `if_match` is the version the caller
    /// read (HTTP `If-Match`); `None` acts on the current version.
    pub async fn apply(
        &self,
        actor: &Actor,
        card_id: CardId,
        op: CardOperation,
        if_match: Option<i64>,
    ) -> Result<CmsCard, CmsError> {
        if matches!(
            op,
            CardOperation::Personalise | CardOperation::Replace | CardOperation::ResetPin
        ) {
            return Err(CmsError::Invalid {
                field: "operation",
                reason: "personalise, replace and PIN reset have their own calls".into(),
            });
        }
        let card = self.card_at(card_id, if_match).await?;
        let to = next(op, card.lifecycle)?;
        let change = CardChange {
            card_id,
            expected_version: card.version,
            from: card.lifecycle,
            to,
            reason: &actor.reason,
            at_us: now_us(),
            reset_pin_tries: op == CardOperation::Unblock,
            pin_offset: None,
        };
        self.commit_change(actor, op, &card, &change).await
    }

    /// Runs `change` (compare-and-set) with its audit entry and returns the card as it now is.
    pub(super) async fn commit_change(
        &self,
        actor: &Actor,
        op: CardOperation,
        card: &CmsCard,
        change: &CardChange<'_>,
    ) -> Result<CmsCard, CmsError> {
        // The compare-and-set moves the version on by one.
        let entry = card_entry(actor, op, card, change.to, card.version + 1, json!({}));
        match self.store.change_card(change, &entry).await {
            Ok(v) => debug_assert_eq!(v, card.version + 1),
            Err(crate::store::StoreError::Conflict(_)) => {
                let now = self.card(card.card_id).await?;
                return Err(CmsError::VersionMismatch {
                    current: now.version,
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.card(card.card_id).await
    }
}

/// The audit entry of a card operation on `card_id` (from `from` to `to`, the card's version
/// once changed), with `extra` detail.
pub(super) fn card_entry_of(
    actor: &Actor,
    op: CardOperation,
    card_id: CardId,
    from: Lifecycle,
    to: Lifecycle,
    version: i64,
    mut extra: serde_json::Value,
) -> crate::store::AuditEntry {
    if let Some(map) = extra.as_object_mut() {
        map.insert("from".into(), from.as_sql().into());
        map.insert("to".into(), to.as_sql().into());
        map.insert("version".into(), version.into());
    }
    audit::entry(
        actor,
        op.audit_action(),
        format!("card:{}", card_id.0),
        extra,
    )
}

/// The audit entry of an operation on `card`.
fn card_entry(
    actor: &Actor,
    op: CardOperation,
    card: &CmsCard,
    to: Lifecycle,
    version: i64,
    extra: serde_json::Value,
) -> crate::store::AuditEntry {
    card_entry_of(actor, op, card.card_id, card.lifecycle, to, version, extra)
}
