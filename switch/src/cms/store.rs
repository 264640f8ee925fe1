//! The card management system's persistence: a sibling of [`Store`] implemented by both
//! backends (SQLite, PostgreSQL) in `store::sql::cms`, on the same pools and write discipline.
//!
//! Why a sibling trait: the data plane never calls these, and keeping them apart keeps
//! [`Store`] the switch's own contract. Every card change is a compare-and-set on the card
//! row's `version` and life-cycle state, so two operators (or two HTTP requests with the same
//! `If-Match`) cannot both move a card from the same state.
//!
//! Every change an operator makes carries its audit entry, appended in the change's own
//! transaction: a card is never lost, replaced or issued without its record in the chain.

use super::lifecycle::Lifecycle;
use super::model::{
    Application, ApplicationId, CardholderId, CmsCard, ImportJob, NewApplication, Stored,
};
use crate::store::{AuditEntry, CardId, NewCard, Store, StoreError};
use std::future::Future;
use uuid::Uuid;

/// Most applications one [`CmsStore::store_applications`] call stores (one transaction).
pub const APPLICATIONS_PER_CALL_MAX: usize = 1_000;

/// The audit entry of an issuance, made once the transaction knows the new card's id.
pub type AuditOfNewCard<'a> = &'a (dyn Fn(CardId) -> AuditEntry + Send + Sync);

/// A compare-and-set change of one card's life-cycle state.
#[derive(Debug, Clone, Copy)]
pub struct CardChange<'a> {
    /// The card.
    pub card_id: CardId,
    /// The version the caller read (HTTP `If-Match`).
    pub expected_version: i64,
    /// The state the caller read.
    pub from: Lifecycle,
    /// The new state.
    pub to: Lifecycle,
    /// Why (kept as the card's status reason).
    pub reason: &'a str,
    /// When.
    pub at_us: i64,
    /// Sets the wrong-PIN count back to 0.
    pub reset_pin_tries: bool,
    /// A new IBM 3624 PIN offset (PIN reset).
    pub pin_offset: Option<&'a str>,
}

/// A closed personalisation file as listed (its content is read on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersoFileInfo {
    /// The file's id (its header's `file_id`).
    pub file_id: String,
    /// Card records in it.
    pub records: u64,
    /// When it was closed.
    pub closed_at_us: i64,
    /// Who closed it (the audit log's actor).
    pub closed_by: String,
}

/// A card search of the operator API: by citizen ID and/or the PAN's last four digits, limited
/// to what the caller's institution sees (its bank, its region), a page after a card id.
#[derive(Debug, Clone, Copy, Default)]
pub struct CardSearch<'a> {
    /// The cardholder's citizen ID.
    pub citizen_id: Option<&'a str>,
    /// The PAN's last four digits.
    pub pan_last4: Option<&'a str>,
    /// Only cards of this bank.
    pub bank: Option<&'a str>,
    /// Only cards of cardholders insured in a region with this GB/T 2260 prefix.
    pub region_prefix: Option<&'a str>,
    /// Cards after this id.
    pub after: i64,
    /// At most this many.
    pub limit: u32,
}

/// An application search of the operator API: by batch and/or citizen ID, limited to what the
/// caller's institution sees, a page after an application id.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplicationSearch<'a> {
    /// The batch.
    pub batch_id: Option<&'a str>,
    /// The cardholder's citizen ID.
    pub citizen_id: Option<&'a str>,
    /// Only applications of this bank.
    pub bank: Option<&'a str>,
    /// Only cardholders insured in a region with this GB/T 2260 prefix.
    pub region_prefix: Option<&'a str>,
    /// Applications after this id.
    pub after: i64,
    /// At most this many.
    pub limit: u32,
}

/// Storage of cardholders, applications, import jobs, PAN ranges and card life cycles.
pub trait CmsStore: Store {
    /// Stores validated applications of `batch_id` in one transaction (cardholders upserted by
    /// citizen ID); a citizen ID the batch already holds is reported [`Stored::Duplicate`] and
    /// changes nothing. At most [`APPLICATIONS_PER_CALL_MAX`].
    fn store_applications(
        &self,
        batch_id: &str,
        applications: &[NewApplication],
        at_us: i64,
    ) -> impl Future<Output = Result<Vec<Stored>, StoreError>> + Send;
    /// One application with its cardholder.
    fn application(
        &self,
        id: ApplicationId,
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;
    /// The application of `citizen_id` in batch `batch_id`.
    fn application_in_batch(
        &self,
        batch_id: &str,
        citizen_id: &str,
    ) -> impl Future<Output = Result<Option<ApplicationId>, StoreError>> + Send;
    /// The latest application of a cardholder (a replacement card's personal data).
    fn latest_application(
        &self,
        cardholder: CardholderId,
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;
    /// Attaches a sealed photo to an application (replacing any earlier one), with `audit`.
    fn set_application_photo(
        &self,
        id: ApplicationId,
        sealed: &[u8],
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The sealed photo of an application.
    fn application_photo(
        &self,
        id: ApplicationId,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// Creates or updates an import job.
    fn put_import_job(
        &self,
        job: &ImportJob,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An import job.
    fn import_job(
        &self,
        job_id: Uuid,
    ) -> impl Future<Output = Result<Option<ImportJob>, StoreError>> + Send;
    /// The next serial of the BIN range `bin` (from 1), atomically; `Conflict` past
    /// `serial_max`.
    fn allocate_pan_serial(
        &self,
        bin: &str,
        serial_max: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Issues `card` (life cycle `personalised`) for an application still `applied`, in one
    /// transaction with the application's move to `personalised` and the entry `audit` makes
    /// for the new card; `Conflict` if it was not.
    fn personalise_application(
        &self,
        id: ApplicationId,
        cardholder: CardholderId,
        card: &NewCard,
        at_us: i64,
        audit: AuditOfNewCard<'_>,
    ) -> impl Future<Output = Result<CardId, StoreError>> + Send;
    /// A card with its life-cycle state and version.
    fn cms_card(
        &self,
        card_id: CardId,
    ) -> impl Future<Output = Result<Option<CmsCard>, StoreError>> + Send;
    /// Applies `change` if the card still has its expected version and state; returns the new
    /// version, with `audit` appended in the same transaction. `Conflict("card version")`
    /// otherwise, `NotFound` for an unknown card.
    fn change_card(
        &self,
        change: &CardChange<'_>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// A replacement in one transaction: `old` moves to `replaced` (compare-and-set as in
    /// [`CmsStore::change_card`]), `new_card` is issued for the same cardholder, and the old
    /// card's accounts move to it (its transactions stay with it); `audit` makes the entry
    /// for the new card's id.
    fn replace_card(
        &self,
        old: &CardChange<'_>,
        new_card: &NewCard,
        audit: AuditOfNewCard<'_>,
    ) -> impl Future<Output = Result<CardId, StoreError>> + Send;
    /// Cards matching `q`, by card id, each with its cardholder's insuring region (None for a
    /// card seeded outside the CMS).
    fn search_cards(
        &self,
        q: &CardSearch<'_>,
    ) -> impl Future<Output = Result<Vec<(CmsCard, Option<String>)>, StoreError>> + Send;
    /// Applications matching `q`, by application id.
    fn search_applications(
        &self,
        q: &ApplicationSearch<'_>,
    ) -> impl Future<Output = Result<Vec<Application>, StoreError>> + Send;
    /// The insuring region of a card's cardholder (None: no such card, or no cardholder).
    fn card_region(
        &self,
        card_id: CardId,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Records `holder` (upserted by citizen ID) as the cardholder of a card issued outside
    /// the card management system (the demo's seeded cards), so an identity session can check
    /// field 61 against it. The batch of `holder.bank` is not touched: no application is made.
    fn enrol_cardholder_of_card(
        &self,
        card_id: CardId,
        holder: &NewApplication,
        at_us: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Keeps a closed personalisation file (JSON Lines; sealed at rest: it holds PANs and
    /// names), with `audit` in the same transaction. A file id kept already is `Conflict`.
    fn put_perso_file(
        &self,
        file: &PersoFileInfo,
        json_lines: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The latest `limit` closed personalisation files, newest first.
    fn perso_files(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PersoFileInfo>, StoreError>> + Send;
    /// A closed personalisation file and its JSON Lines.
    fn perso_file(
        &self,
        file_id: &str,
    ) -> impl Future<Output = Result<Option<(PersoFileInfo, String)>, StoreError>> + Send;
    /// The cards of a cardholder, oldest first.
    fn cards_of_cardholder(
        &self,
        cardholder: CardholderId,
    ) -> impl Future<Output = Result<Vec<CmsCard>, StoreError>> + Send;
}
