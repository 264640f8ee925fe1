//! [`CmsStore`] for every [`Backend`]: the card management system's statements, written once
//! for SQLite and PostgreSQL like the rest of the control plane ([`super::control`]).

use super::audit_log::append_in;
use super::driver::{Backend, Columns, Param, Run, WriteTx};
use super::rows::{corrupt, institution_id, parse};
use crate::cms::lifecycle::Lifecycle;
use crate::cms::model::{
    Application, ApplicationId, ApplicationStatus, CardholderId, CmsCard, ImportJob, JobState,
    NewApplication, RowError, Stored,
};
use crate::cms::store::{
    ApplicationSearch, AuditOfNewCard, CardChange, CardSearch, CmsStore, PersoFileInfo,
    APPLICATIONS_PER_CALL_MAX,
};
use crate::store::model::{
    AuditEntry, CardId, CardStatus, IccAlgorithm, InsuranceCategory, NewCard,
};
use crate::store::StoreError;
use uuid::Uuid;

const UPSERT_CARDHOLDER: &str = "INSERT INTO cardholder (citizen_id, name, sex, birth_date, \
     insurance_category, region_code, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (citizen_id) DO UPDATE SET name = excluded.name, \
     insurance_category = excluded.insurance_category, region_code = excluded.region_code \
     RETURNING cardholder_id";
const SET_CARD_HOLDER: &str = "UPDATE card SET cardholder_id = $1 WHERE card_id = $2";
const INSERT_APPLICATION: &str = "INSERT INTO card_application (batch_id, citizen_id, \
     cardholder_id, bank_institution_id, status, created_at_us) \
     VALUES ($1, $2, $3, $4, 'applied', $5) ON CONFLICT (batch_id, citizen_id) DO NOTHING \
     RETURNING application_id";
const APPLICATION_IN_BATCH: &str =
    "SELECT application_id FROM card_application WHERE batch_id = $1 AND citizen_id = $2";
const APPLICATION: &str = "SELECT a.application_id, a.batch_id, a.cardholder_id, a.citizen_id, \
     h.name, h.sex, h.birth_date, h.insurance_category, h.region_code, a.bank_institution_id, \
     a.status, a.card_id, CAST(CASE WHEN a.photo_ciphertext IS NULL THEN 0 ELSE 1 END AS BIGINT) \
     AS has_photo FROM card_application AS a JOIN cardholder AS h \
     ON h.cardholder_id = a.cardholder_id WHERE a.application_id = $1";
const LATEST_APPLICATION: &str = "SELECT a.application_id, a.batch_id, a.cardholder_id, \
     a.citizen_id, h.name, h.sex, h.birth_date, h.insurance_category, h.region_code, \
     a.bank_institution_id, a.status, a.card_id, \
     CAST(CASE WHEN a.photo_ciphertext IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_photo \
     FROM card_application AS a JOIN cardholder AS h ON h.cardholder_id = a.cardholder_id \
     WHERE a.cardholder_id = $1 ORDER BY a.application_id DESC LIMIT 1";
const SET_PHOTO: &str =
    "UPDATE card_application SET photo_ciphertext = $1 WHERE application_id = $2";
const PHOTO: &str = "SELECT photo_ciphertext FROM card_application WHERE application_id = $1";
const PUT_JOB: &str = "INSERT INTO import_job (job_id, batch_id, state, rows_total, rows_done, \
     rows_created, rows_duplicate, rows_rejected, row_errors, started_at_us, finished_at_us, \
     started_by_institution_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (job_id) DO UPDATE SET \
     state = excluded.state, rows_total = excluded.rows_total, rows_done = excluded.rows_done, \
     rows_created = excluded.rows_created, rows_duplicate = excluded.rows_duplicate, \
     rows_rejected = excluded.rows_rejected, row_errors = excluded.row_errors, \
     finished_at_us = excluded.finished_at_us";
const JOB: &str = "SELECT job_id, batch_id, state, rows_total, rows_done, rows_created, \
     rows_duplicate, rows_rejected, row_errors, started_at_us, finished_at_us, \
     started_by_institution_id FROM import_job WHERE job_id = $1";
const ALLOCATE_SERIAL: &str = "INSERT INTO pan_range (bin, next_serial) VALUES ($1, 2) \
     ON CONFLICT (bin) DO UPDATE SET next_serial = pan_range.next_serial + 1 \
     RETURNING CAST(next_serial - 1 AS BIGINT)";
const INSERT_CARD: &str = "INSERT INTO card (pan_hash, pan_ciphertext, pan_masked, \
     card_identification_code, issuer_institution_id, expiry_yymm, status, status_changed_at_us, \
     created_at_us, pan_sequence_number, icc_algorithm, pin_offset, insurance_category, \
     lifecycle, cardholder_id) VALUES ($1, $2, $3, $4, $5, $6, 'issued', $7, $7, $8, $9, $10, \
     $11, 'personalised', $12) RETURNING card_id";
const APPLICATION_PERSONALISED: &str = "UPDATE card_application SET status = 'personalised', \
     card_id = $1 WHERE application_id = $2 AND status = 'applied'";
const CMS_CARD: &str = "SELECT card_id, pan_masked, issuer_institution_id, expiry_yymm, status, \
     COALESCE(lifecycle, status) AS lifecycle, version, \
     CAST(pin_tries_failed AS BIGINT) AS pin_tries_failed, cardholder_id, replaced_by_card_id \
     FROM card WHERE card_id = $1";
const CARDS_OF_CARDHOLDER: &str = "SELECT card_id, pan_masked, issuer_institution_id, \
     expiry_yymm, status, COALESCE(lifecycle, status) AS lifecycle, version, \
     CAST(pin_tries_failed AS BIGINT) AS pin_tries_failed, cardholder_id, replaced_by_card_id \
     FROM card WHERE cardholder_id = $1 ORDER BY card_id";
const SEARCH_CARDS: &str = "SELECT c.card_id, c.pan_masked, c.issuer_institution_id, \
     c.expiry_yymm, c.status, COALESCE(c.lifecycle, c.status) AS lifecycle, c.version, \
     CAST(c.pin_tries_failed AS BIGINT) AS pin_tries_failed, c.cardholder_id, \
     c.replaced_by_card_id, h.region_code FROM card c \
     LEFT JOIN cardholder h ON h.cardholder_id = c.cardholder_id \
     WHERE ($1 IS NULL OR h.citizen_id = $1) AND ($2 IS NULL OR c.pan_masked LIKE $2) \
     AND ($3 IS NULL OR c.issuer_institution_id = $3) AND ($4 IS NULL OR h.region_code LIKE $4) \
     AND c.card_id > $5 ORDER BY c.card_id LIMIT $6";
const SEARCH_APPLICATIONS: &str = "SELECT a.application_id, a.batch_id, a.cardholder_id, \
     a.citizen_id, h.name, h.sex, h.birth_date, h.insurance_category, h.region_code, \
     a.bank_institution_id, a.status, a.card_id, \
     CAST(CASE WHEN a.photo_ciphertext IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_photo \
     FROM card_application AS a JOIN cardholder AS h ON h.cardholder_id = a.cardholder_id \
     WHERE ($1 IS NULL OR a.batch_id = $1) AND ($2 IS NULL OR a.citizen_id = $2) \
     AND ($3 IS NULL OR a.bank_institution_id = $3) AND ($4 IS NULL OR h.region_code LIKE $4) \
     AND a.application_id > $5 ORDER BY a.application_id LIMIT $6";
const CARD_REGION: &str = "SELECT h.region_code FROM card c \
     JOIN cardholder h ON h.cardholder_id = c.cardholder_id WHERE c.card_id = $1";
const CHANGE_CARD: &str = "UPDATE card SET lifecycle = $1, status = $2, status_reason = $3, \
     status_changed_at_us = $4, version = version + 1, \
     pin_tries_failed = CASE WHEN $5 = 1 THEN 0 ELSE pin_tries_failed END, \
     pin_offset = COALESCE($6, pin_offset), \
     replaced_by_card_id = COALESCE($7, replaced_by_card_id) \
     WHERE card_id = $8 AND version = $9 AND COALESCE(lifecycle, status) = $10 RETURNING version";
const INSERT_PERSO_FILE: &str = "INSERT INTO perso_file (file_id, records, closed_at_us, \
     closed_by, content_sealed) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (file_id) DO NOTHING";
const PERSO_FILES: &str = "SELECT file_id, records, closed_at_us, closed_by FROM perso_file \
     ORDER BY closed_at_us DESC, file_id DESC LIMIT $1";
const PERSO_FILE: &str = "SELECT file_id, records, closed_at_us, closed_by, content_sealed \
     FROM perso_file WHERE file_id = $1";
/// Binds a sealed personalisation file to its column (AES-GCM associated data).
const PERSO_FILE_LABEL: &[u8] = b"perso_file.content_sealed";
const CARD_EXISTS: &str = "SELECT card_id FROM card WHERE card_id = $1";
const MOVE_ACCOUNTS: &str = "UPDATE account SET card_id = $1 WHERE card_id = $2";

/// Errors kept in an import job's row.
fn errors_json(errors: &[RowError]) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| "[]".into())
}

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn ucount(row: &impl Columns, column: &'static str) -> Result<u64, StoreError> {
    let v: i64 = row.get(column)?;
    u64::try_from(v).map_err(|_| corrupt(column))
}

fn application_row(row: &impl Columns) -> Result<Application, StoreError> {
    let has_photo: i64 = row.get("has_photo")?;
    Ok(Application {
        application_id: ApplicationId(row.get("application_id")?),
        batch_id: row.get("batch_id")?,
        cardholder_id: CardholderId(row.get("cardholder_id")?),
        citizen_id: row.get("citizen_id")?,
        name: row.get("name")?,
        sex: row.get("sex")?,
        birth_date: row.get("birth_date")?,
        insurance: InsuranceCategory::from_sql(row.text("insurance_category")?)
            .ok_or(corrupt("cardholder.insurance_category"))?,
        region_code: row.get("region_code")?,
        bank: institution_id(
            row,
            "bank_institution_id",
            "card_application.bank_institution_id",
        )?,
        status: ApplicationStatus::from_sql(row.text("status")?)
            .ok_or(corrupt("card_application.status"))?,
        card_id: row.get::<Option<i64>>("card_id")?.map(CardId),
        has_photo: has_photo != 0,
    })
}

fn cms_card_row(row: &impl Columns) -> Result<CmsCard, StoreError> {
    let tries: i64 = row.get("pin_tries_failed")?;
    Ok(CmsCard {
        card_id: CardId(row.get("card_id")?),
        pan_masked: row.get("pan_masked")?,
        issuer: institution_id(row, "issuer_institution_id", "card.issuer_institution_id")?,
        expiry_yymm: row.get("expiry_yymm")?,
        lifecycle: Lifecycle::from_sql(row.text("lifecycle")?).ok_or(corrupt("card.lifecycle"))?,
        status: CardStatus::from_sql(row.text("status")?).ok_or(corrupt("card.status"))?,
        version: row.get("version")?,
        pin_tries_failed: u32::try_from(tries).map_err(|_| corrupt("card.pin_tries_failed"))?,
        cardholder_id: row.get::<Option<i64>>("cardholder_id")?.map(CardholderId),
        replaced_by: row.get::<Option<i64>>("replaced_by_card_id")?.map(CardId),
    })
}

fn perso_file_row(row: &impl Columns) -> Result<PersoFileInfo, StoreError> {
    Ok(PersoFileInfo {
        file_id: row.get("file_id")?,
        records: ucount(row, "records")?,
        closed_at_us: row.get("closed_at_us")?,
        closed_by: row.get("closed_by")?,
    })
}

fn job_row(row: &impl Columns) -> Result<ImportJob, StoreError> {
    Ok(ImportJob {
        job_id: parse("import_job.job_id", Uuid::parse_str(row.text("job_id")?))?,
        batch_id: row.get("batch_id")?,
        state: JobState::from_sql(row.text("state")?).ok_or(corrupt("import_job.state"))?,
        rows_total: ucount(row, "rows_total")?,
        rows_done: ucount(row, "rows_done")?,
        rows_created: ucount(row, "rows_created")?,
        rows_duplicate: ucount(row, "rows_duplicate")?,
        rows_rejected: ucount(row, "rows_rejected")?,
        row_errors: parse(
            "import_job.row_errors",
            serde_json::from_str(row.text("row_errors")?),
        )?,
        started_at_us: row.get("started_at_us")?,
        finished_at_us: row.get("finished_at_us")?,
        started_by: match row.get::<Option<String>>("started_by_institution_id")? {
            Some(id) => Some(parse(
                "import_job.started_by_institution_id",
                schemas::domain::InstitutionId::parse(&id),
            )?),
            None => None,
        },
    })
}

/// Inserts `card` (life cycle `personalised`) in `tx`.
async fn insert_card<B: Backend>(
    store: &B,
    tx: &mut B::Tx,
    card: &NewCard,
    cardholder: Option<CardholderId>,
    at_us: i64,
) -> Result<CardId, StoreError> {
    let hash = store.pan().lookup_hash(&card.pan);
    let sealed = store.pan().seal(&card.pan)?;
    let masked = card.pan.masked();
    let params = [
        hash.as_slice().into(),
        sealed.as_slice().into(),
        masked.as_str().into(),
        card.card_identification_code
            .as_ref()
            .map(|x| x.as_str())
            .into(),
        card.issuer.as_str().into(),
        (&card.expiry_yymm).into(),
        at_us.into(),
        (&card.issuance.pan_sequence_number).into(),
        card.issuance.icc_algorithm.map(IccAlgorithm::as_sql).into(),
        card.issuance.pin_offset.as_deref().into(),
        card.issuance
            .insurance_category
            .map(InsuranceCategory::as_sql)
            .into(),
        cardholder.map(|c| c.0).into(),
    ];
    Ok(CardId(
        tx.run().fetch_one(INSERT_CARD, &params).await?.first()?,
    ))
}

/// Runs the compare-and-set of `c` in `tx`; `replaced_by` is set on a replacement.
async fn change_in<B: Backend>(
    store: &B,
    tx: &mut B::Tx,
    c: &CardChange<'_>,
    replaced_by: Option<CardId>,
) -> Result<i64, StoreError> {
    let params: [Param<'_>; 10] = [
        c.to.as_sql().into(),
        c.to.switch_status().as_sql().into(),
        c.reason.into(),
        c.at_us.into(),
        i64::from(c.reset_pin_tries).into(),
        c.pin_offset.into(),
        replaced_by.map(|x| x.0).into(),
        c.card_id.0.into(),
        c.expected_version.into(),
        c.from.as_sql().into(),
    ];
    match tx.run().fetch_optional(CHANGE_CARD, &params).await? {
        Some(row) => Ok(row.first()?),
        None => {
            let exists = store
                .reader()
                .fetch_optional(CARD_EXISTS, &[c.card_id.0.into()])
                .await?;
            Err(match exists {
                Some(_) => StoreError::Conflict("card version"),
                None => StoreError::NotFound("card"),
            })
        }
    }
}

impl<B: Backend> CmsStore for B {
    async fn store_applications(
        &self,
        batch_id: &str,
        apps: &[NewApplication],
        at_us: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        if apps.len() > APPLICATIONS_PER_CALL_MAX {
            return Err(StoreError::OutOfRange("applications per call"));
        }
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        // The rows the batch already holds, in one read: they write nothing (not even the
        // cardholder).
        let citizens: Vec<&str> = apps.iter().map(|a| a.citizen_id.expose()).collect();
        let citizens = serde_json::to_string(&citizens).unwrap_or_else(|_| "[]".into());
        let params = [batch_id.into(), citizens.as_str().into()];
        let mut held = std::collections::HashMap::new();
        for row in tx
            .run()
            .fetch_all(B::DIALECT.applications_in_batch, &params)
            .await?
        {
            let citizen: String = row.get("citizen_id")?;
            held.insert(citizen, ApplicationId(row.get("application_id")?));
        }
        let mut out = Vec::with_capacity(apps.len());
        for a in apps {
            let citizen = a.citizen_id.expose();
            if let Some(id) = held.get(citizen) {
                out.push(Stored::Duplicate(*id));
                continue;
            }
            let params = [
                citizen.into(),
                a.name.as_str().into(),
                a.sex.code().into(),
                a.citizen_id.birth_yyyymmdd().into(),
                a.insurance.as_sql().into(),
                a.region.as_str().into(),
                at_us.into(),
            ];
            let holder: i64 = tx
                .run()
                .fetch_one(UPSERT_CARDHOLDER, &params)
                .await?
                .first()?;
            let params = [
                batch_id.into(),
                citizen.into(),
                holder.into(),
                a.bank.as_str().into(),
                at_us.into(),
            ];
            match tx.run().fetch_optional(INSERT_APPLICATION, &params).await? {
                Some(row) => out.push(Stored::Created(ApplicationId(row.first()?))),
                None => {
                    let params = [batch_id.into(), citizen.into()];
                    let row = tx.run().fetch_one(APPLICATION_IN_BATCH, &params).await?;
                    out.push(Stored::Duplicate(ApplicationId(row.first()?)));
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn application(&self, id: ApplicationId) -> Result<Option<Application>, StoreError> {
        let row = self
            .reader()
            .fetch_optional(APPLICATION, &[id.0.into()])
            .await?;
        row.as_ref().map(application_row).transpose()
    }

    async fn application_in_batch(
        &self,
        batch_id: &str,
        citizen_id: &str,
    ) -> Result<Option<ApplicationId>, StoreError> {
        let params = [batch_id.into(), citizen_id.into()];
        match self
            .reader()
            .fetch_optional(APPLICATION_IN_BATCH, &params)
            .await?
        {
            Some(row) => Ok(Some(ApplicationId(row.first()?))),
            None => Ok(None),
        }
    }

    async fn latest_application(
        &self,
        cardholder: CardholderId,
    ) -> Result<Option<Application>, StoreError> {
        let row = self
            .reader()
            .fetch_optional(LATEST_APPLICATION, &[cardholder.0.into()])
            .await?;
        row.as_ref().map(application_row).transpose()
    }

    async fn set_application_photo(
        &self,
        id: ApplicationId,
        sealed: &[u8],
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        let params = [sealed.into(), id.0.into()];
        if tx.run().execute(SET_PHOTO, &params).await? == 0 {
            return Err(StoreError::NotFound("application"));
        }
        append_in(self, &mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn application_photo(&self, id: ApplicationId) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .reader()
            .fetch_optional(PHOTO, &[id.0.into()])
            .await?
            .ok_or(StoreError::NotFound("application"))?;
        Ok(row.first()?)
    }

    async fn put_import_job(&self, job: &ImportJob) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let id = job.job_id.to_string();
        let errors = errors_json(&job.row_errors);
        let params = [
            id.as_str().into(),
            job.batch_id.as_str().into(),
            job.state.as_sql().into(),
            count(job.rows_total).into(),
            count(job.rows_done).into(),
            count(job.rows_created).into(),
            count(job.rows_duplicate).into(),
            count(job.rows_rejected).into(),
            errors.as_str().into(),
            job.started_at_us.into(),
            job.finished_at_us.into(),
            job.started_by
                .as_ref()
                .map(schemas::domain::InstitutionId::as_str)
                .into(),
        ];
        self.writer().execute(PUT_JOB, &params).await?;
        Ok(())
    }

    async fn import_job(&self, job_id: Uuid) -> Result<Option<ImportJob>, StoreError> {
        let id = job_id.to_string();
        let row = self
            .reader()
            .fetch_optional(JOB, &[id.as_str().into()])
            .await?;
        row.as_ref().map(job_row).transpose()
    }

    async fn allocate_pan_serial(&self, bin: &str, serial_max: i64) -> Result<i64, StoreError> {
        let _gate = self.write_gate().await;
        let serial: i64 = self
            .writer()
            .fetch_one(ALLOCATE_SERIAL, &[bin.into()])
            .await?
            .first()?;
        if serial > serial_max {
            return Err(StoreError::Conflict("PAN range exhausted"));
        }
        Ok(serial)
    }

    async fn personalise_application(
        &self,
        id: ApplicationId,
        cardholder: CardholderId,
        card: &NewCard,
        at_us: i64,
        audit: AuditOfNewCard<'_>,
    ) -> Result<CardId, StoreError> {
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        let card_id = insert_card(self, &mut tx, card, Some(cardholder), at_us).await?;
        let params = [card_id.0.into(), id.0.into()];
        if tx.run().execute(APPLICATION_PERSONALISED, &params).await? == 0 {
            return Err(StoreError::Conflict("application not in state applied"));
        }
        append_in(self, &mut tx, &audit(card_id)).await?;
        tx.commit().await?;
        Ok(card_id)
    }

    async fn cms_card(&self, card_id: CardId) -> Result<Option<CmsCard>, StoreError> {
        let row = self
            .reader()
            .fetch_optional(CMS_CARD, &[card_id.0.into()])
            .await?;
        row.as_ref().map(cms_card_row).transpose()
    }

    async fn change_card(
        &self,
        change: &CardChange<'_>,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        let version = change_in(self, &mut tx, change, None).await?;
        append_in(self, &mut tx, audit).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn replace_card(
        &self,
        old: &CardChange<'_>,
        new_card: &NewCard,
        audit: AuditOfNewCard<'_>,
    ) -> Result<CardId, StoreError> {
        let _gate = self.write_gate().await;
        let holder = self
            .cms_card(old.card_id)
            .await?
            .ok_or(StoreError::NotFound("card"))?
            .cardholder_id;
        let mut tx = self.begin_write().await?;
        let new_id = insert_card(self, &mut tx, new_card, holder, old.at_us).await?;
        change_in(self, &mut tx, old, Some(new_id)).await?;
        let params = [new_id.0.into(), old.card_id.0.into()];
        tx.run().execute(MOVE_ACCOUNTS, &params).await?;
        append_in(self, &mut tx, &audit(new_id)).await?;
        tx.commit().await?;
        Ok(new_id)
    }

    async fn search_cards(
        &self,
        q: &CardSearch<'_>,
    ) -> Result<Vec<(CmsCard, Option<String>)>, StoreError> {
        let last4 = q.pan_last4.map(|d| format!("%{d}"));
        let region = q.region_prefix.map(|p| format!("{p}%"));
        let params = [
            q.citizen_id.into(),
            last4.as_deref().into(),
            q.bank.into(),
            region.as_deref().into(),
            q.after.into(),
            i64::from(q.limit).into(),
        ];
        let rows = self.reader().fetch_all(SEARCH_CARDS, &params).await?;
        rows.iter()
            .map(|r| Ok((cms_card_row(r)?, r.get::<Option<String>>("region_code")?)))
            .collect()
    }

    async fn search_applications(
        &self,
        q: &ApplicationSearch<'_>,
    ) -> Result<Vec<Application>, StoreError> {
        let region = q.region_prefix.map(|p| format!("{p}%"));
        let params = [
            q.batch_id.into(),
            q.citizen_id.into(),
            q.bank.into(),
            region.as_deref().into(),
            q.after.into(),
            i64::from(q.limit).into(),
        ];
        let rows = self
            .reader()
            .fetch_all(SEARCH_APPLICATIONS, &params)
            .await?;
        rows.iter().map(application_row).collect()
    }

    async fn card_region(&self, card_id: CardId) -> Result<Option<String>, StoreError> {
        let row = self
            .reader()
            .fetch_optional(CARD_REGION, &[card_id.0.into()])
            .await?;
        Ok(row.map(|r| r.get::<String>("region_code")).transpose()?)
    }

    async fn enrol_cardholder_of_card(
        &self,
        card_id: CardId,
        a: &NewApplication,
        at_us: i64,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        let params = [
            a.citizen_id.expose().into(),
            a.name.as_str().into(),
            a.sex.code().into(),
            a.citizen_id.birth_yyyymmdd().into(),
            a.insurance.as_sql().into(),
            a.region.as_str().into(),
            at_us.into(),
        ];
        let holder: i64 = tx
            .run()
            .fetch_one(UPSERT_CARDHOLDER, &params)
            .await?
            .first()?;
        let params = [holder.into(), card_id.0.into()];
        if tx.run().execute(SET_CARD_HOLDER, &params).await? == 0 {
            return Err(StoreError::NotFound("card"));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn put_perso_file(
        &self,
        f: &PersoFileInfo,
        json_lines: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let sealed = self
            .pan()
            .seal_data(json_lines.as_bytes(), PERSO_FILE_LABEL)?;
        let params = [
            f.file_id.as_str().into(),
            count(f.records).into(),
            f.closed_at_us.into(),
            f.closed_by.as_str().into(),
            sealed.as_slice().into(),
        ];
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        if tx.run().execute(INSERT_PERSO_FILE, &params).await? == 0 {
            return Err(StoreError::Conflict("personalisation file kept already"));
        }
        append_in(self, &mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn perso_files(&self, limit: u32) -> Result<Vec<PersoFileInfo>, StoreError> {
        let rows = self
            .reader()
            .fetch_all(PERSO_FILES, &[i64::from(limit).into()])
            .await?;
        rows.iter().map(perso_file_row).collect()
    }

    async fn perso_file(
        &self,
        file_id: &str,
    ) -> Result<Option<(PersoFileInfo, String)>, StoreError> {
        let Some(row) = self
            .reader()
            .fetch_optional(PERSO_FILE, &[file_id.into()])
            .await?
        else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.get("content_sealed")?;
        let clear = self.pan().open_data(&sealed, PERSO_FILE_LABEL)?;
        let text = String::from_utf8(clear).map_err(|_| corrupt("perso_file.content_sealed"))?;
        Ok(Some((perso_file_row(&row)?, text)))
    }

    async fn cards_of_cardholder(
        &self,
        cardholder: CardholderId,
    ) -> Result<Vec<CmsCard>, StoreError> {
        let rows = self
            .reader()
            .fetch_all(CARDS_OF_CARDHOLDER, &[cardholder.0.into()])
            .await?;
        rows.iter().map(cms_card_row).collect()
    }
}
