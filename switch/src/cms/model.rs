//! What the card management system reads and writes: the actor of every operation, cardholders,
//! applications, import jobs and cards with their life-cycle state and version.
//!
//! Why apart from the service: the store (`CmsStore`) and the HTTP layer share these types and
//! nothing else of the service.

use super::citizen_id::{CitizenId, Sex};
use super::lifecycle::Lifecycle;
use super::region::RegionCode;
use crate::store::{CardId, CardStatus, InsuranceCategory};
use schemas::domain::InstitutionId;
use uuid::Uuid;

/// Who does an operation, for the audit log: the operator, their institution, where the
/// request came from and why. Every service call takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The operator's user id (or `system` for a job).
    pub operator: String,
    /// The operator's institution.
    pub institution: InstitutionId,
    /// The request's source address (IP, or `cli`).
    pub source: String,
    /// The reason the operator gave (a ticket, "cardholder called at 02:10").
    pub reason: String,
}

/// Store key of a cardholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardholderId(pub i64);

/// Store key of an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApplicationId(pub i64);

/// A validated application, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApplication {
    /// The person.
    pub citizen_id: CitizenId,
    /// Name, UTF-8 (Chinese), as printed on the card.
    pub name: String,
    /// Sex from the citizen ID.
    pub sex: Sex,
    /// Medical-insurance scheme.
    pub insurance: InsuranceCategory,
    /// Insuring region (GB/T 2260).
    pub region: RegionCode,
    /// The bank whose application (PAN) the card carries.
    pub bank: InstitutionId,
}

/// What storing one application did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new application.
    Created(ApplicationId),
    /// The batch already held this citizen ID: nothing created.
    Duplicate(ApplicationId),
}

/// The state of an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationStatus {
    /// Accepted, no card yet.
    Applied,
    /// Its card is personalised (`card_id` set).
    Personalised,
}

impl ApplicationStatus {
    /// Stored text.
    pub fn as_sql(self) -> &'static str {
        match self {
            ApplicationStatus::Applied => "applied",
            ApplicationStatus::Personalised => "personalised",
        }
    }

    /// Parses stored text.
    pub fn from_sql(s: &str) -> Option<Self> {
        match s {
            "applied" => Some(ApplicationStatus::Applied),
            "personalised" => Some(ApplicationStatus::Personalised),
            _ => None,
        }
    }
}

/// A stored application with its cardholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Application {
    /// Key.
    pub application_id: ApplicationId,
    /// The batch it came in.
    pub batch_id: String,
    /// The cardholder.
    pub cardholder_id: CardholderId,
    /// Citizen ID (18 characters; personal data).
    pub citizen_id: String,
    /// Name.
    pub name: String,
    /// `1` male, `2` female.
    pub sex: String,
    /// `YYYYMMDD`.
    pub birth_date: String,
    /// Scheme.
    pub insurance: InsuranceCategory,
    /// Insuring region.
    pub region_code: String,
    /// The card's bank.
    pub bank: InstitutionId,
    /// Applied or personalised.
    pub status: ApplicationStatus,
    /// Its card, once personalised.
    pub card_id: Option<CardId>,
    /// Whether a photo is attached.
    pub has_photo: bool,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("application_id", &self.application_id)
            .field("batch_id", &self.batch_id)
            .field("status", &self.status)
            .field("card_id", &self.card_id)
            .finish_non_exhaustive()
    }
}

/// A row the import refused: which row, which field, why (never the field's value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowError {
    /// 1-based data row (the header is row 0).
    pub row: u64,
    /// The column at fault (`citizen_id`, `name`, ... or `row` for the record itself).
    pub field: String,
    /// Why.
    pub reason: String,
}

/// State of an import job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Rows still being imported.
    Running,
    /// Every row handled (some may be rejected).
    Done,
    /// Stopped by an error of the file or the store (rows done so far stay).
    Failed,
}

impl JobState {
    /// Stored text.
    pub fn as_sql(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    /// Parses stored text.
    pub fn from_sql(s: &str) -> Option<Self> {
        match s {
            "running" => Some(JobState::Running),
            "done" => Some(JobState::Done),
            "failed" => Some(JobState::Failed),
            _ => None,
        }
    }
}

/// An import job and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportJob {
    /// Key (UUID v7).
    pub job_id: Uuid,
    /// The batch.
    pub batch_id: String,
    /// Running, done, failed.
    pub state: JobState,
    /// Data rows in the file.
    pub rows_total: u64,
    /// Rows handled so far.
    pub rows_done: u64,
    /// Applications created.
    pub rows_created: u64,
    /// Rows already imported by an earlier upload of the batch.
    pub rows_duplicate: u64,
    /// Rows refused.
    pub rows_rejected: u64,
    /// The first refused rows' errors (at most `ROW_ERRORS_KEPT_MAX`).
    pub row_errors: Vec<RowError>,
    /// Start.
    pub started_at_us: i64,
    /// End, when not running.
    pub finished_at_us: Option<i64>,
    /// The institution whose operator started it over the API (it and the switch see the
    /// job); None for the CLI's imports.
    pub started_by: Option<InstitutionId>,
}

impl ImportJob {
    /// Progress in percent (0-100).
    pub fn percent(&self) -> u8 {
        if self.rows_total == 0 {
            return if self.state == JobState::Running {
                0
            } else {
                100
            };
        }
        u8::try_from(self.rows_done.saturating_mul(100) / self.rows_total).unwrap_or(100)
    }
}

/// A card as the CMS sees it: the store's card plus its life-cycle state and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmsCard {
    /// Key.
    pub card_id: CardId,
    /// First six and last four PAN digits.
    pub pan_masked: String,
    /// The bank.
    pub issuer: InstitutionId,
    /// `YYMM`.
    pub expiry_yymm: String,
    /// Life-cycle state.
    pub lifecycle: Lifecycle,
    /// What the switch sees.
    pub status: CardStatus,
    /// Row version, incremented by every change (the HTTP ETag).
    pub version: i64,
    /// Wrong PINs in a row.
    pub pin_tries_failed: u32,
    /// The cardholder (None for cards seeded outside the CMS).
    pub cardholder_id: Option<CardholderId>,
    /// The card that replaced this one.
    pub replaced_by: Option<CardId>,
}
