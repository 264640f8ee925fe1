//! Persistence of the switch: cards, accounts and holds, transactions, the reversal and advice
//! queues, the outbox of settlement events and the audit log, behind one [`Store`] trait with two
//! backends, [`SqliteStore`] (embedded default, WAL) and [`PostgresStore`].
//!
//! The data plane writes only through [`Store::commit_decisions`]: one call is one database
//! transaction holding many decisions (group commit), fed by the single [`writer`] task so
//! that a response leaves only after its decision is durable. Everything else (reference data,
//! reversal acknowledgements, outbox relay marks, audit) is low-volume control-plane traffic.
//!
//! Schema: `schemas/migrations/{sqlite,postgres}`, run by [`SqliteStore::open`] and
//! [`PostgresStore::connect`] at start-up.

pub mod audit;
pub mod cutover;
mod error;
mod migrate;
mod model;
pub mod operator;
mod pan_protector;
pub mod plan;
mod postgres;
pub mod spool;
mod sql;
mod sqlite;
pub mod writer;

pub use audit::AuditMacKey;
pub use cutover::CutoverStore;
pub use error::{DecisionError, StoreError};
pub use model::{
    leg_kind_from_sql, leg_kind_sql, Account, AccountId, AccountKind, AdviceClass, AdviceId,
    AdviceRequest, AuditEntry, AuditRecord, BalanceOp, BatchOutcome, BinRoute, Card, CardAtc,
    CardId, CardIssuance, CardRisk, CardStatus, Committed, DailySpend, DayUsage, Decision,
    DirectoryCard, DuplicateKey, Hold, HoldId, HoldState, IccAlgorithm, Institution,
    InstitutionKind, InsuranceCategory, MovementKind, NewAccount, NewCard, OutboxRecord,
    PendingAdvice, PendingReversal, ReversalId, ReversalReason, ReversalRequest, SafBacklog,
    SafItem, SafKind, SafQueue, StandInSpend, StoredTransaction, TransactionId, TransactionKind,
    TransactionRecord, TxnLeg, BALANCE_OPS_PER_DECISION_MAX, LEGS_PER_DECISION_MAX,
};
pub use operator::OperatorStore;
pub use pan_protector::{
    DataKeyPanProtector, HsmPanProtector, PanProtectError, PanProtector, TEST_DATA_KEY,
    TEST_HASH_KEY,
};
pub use postgres::{
    host_urls as postgres_host_urls, HostListError, HostUrls, PostgresConfig, PostgresStore,
    PrimaryWatch,
};
/// A card's history (the chain walk), for checking its plan against a database.
pub use sql::card_history::SEARCH_CARD_TRANSACTIONS;
/// The bank cut-over's totals query, for checking its plan against a database.
pub use sql::cutover::BANK_TOTALS;
pub use sql::integrity::{IntegrityReport, Invariant, Violation};
/// The reconciliation query, for checking its plan against a database.
pub use sql::ACQUIRER_TOTALS;
pub use sqlite::{backup as sqlite_backup, SqliteConfig, SqliteStore, SqliteSync};

use schemas::domain::{InstitutionId, Pan, ResponseCode, Rrn};
use schemas::iso8583::ReconciliationTotals;
use std::future::Future;

/// Most decisions one [`Store::commit_decisions`] call accepts.
pub const DECISIONS_PER_BATCH_MAX: usize = 1024;
/// Most rows one read of the outbox, reversal or advice queue returns.
pub const ROWS_PER_READ_MAX: u32 = 10_000;

/// The switch's persistence. All amounts are fen; all times microseconds since the epoch.
pub trait Store: OperatorStore + CutoverStore + Send + Sync + 'static {
    /// Whether the group-commit writer should run on its own thread (see
    /// [`writer::WriterConfig::dedicated_thread`]): true where the driver's connections are
    /// not tied to the caller's runtime.
    const WRITER_ON_OWN_THREAD: bool = false;
    /// Group commits the writer runs at once by default (see
    /// [`writer::WriterConfig::commits_in_flight_max`]): 1 where one connection writes
    /// (SQLite); 2 on PostgreSQL, whose concurrent transactions order themselves by row locks.
    const GROUP_COMMITS_IN_FLIGHT: usize = 1;

    // ---- reference data (control plane) ----

    /// Adds or renames an institution.
    fn upsert_institution(
        &self,
        institution: &Institution,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// All institutions.
    fn institutions(&self) -> impl Future<Output = Result<Vec<Institution>, StoreError>> + Send;
    /// Adds or replaces a BIN route.
    fn put_bin_route(
        &self,
        route: &BinRoute,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// All BIN routes.
    fn bin_routes(&self) -> impl Future<Output = Result<Vec<BinRoute>, StoreError>> + Send;
    /// The issuing bank of a PAN: the route with the longest matching prefix.
    fn route_for_pan(
        &self,
        pan: &Pan,
    ) -> impl Future<Output = Result<Option<InstitutionId>, StoreError>> + Send;

    // ---- cards ----

    /// Issues a card (PAN hashed and sealed by the store's `PanProtector`).
    fn issue_card(&self, card: &NewCard)
        -> impl Future<Output = Result<CardId, StoreError>> + Send;
    /// Looks a card up by PAN (through its keyed hash).
    fn card_by_pan(
        &self,
        pan: &Pan,
    ) -> impl Future<Output = Result<Option<Card>, StoreError>> + Send;
    /// The clear PAN of a card (to build a bank leg or a reversal).
    fn card_pan(&self, card_id: CardId) -> impl Future<Output = Result<Pan, StoreError>> + Send;
    /// The card whose SSSE card identification code is `cic`, with the citizen ID of its
    /// cardholder on record (`None` for a card seeded outside the card management system):
    /// what an identity session checks fields 120 and 61 against.
    fn card_by_identification_code(
        &self,
        cic: &schemas::domain::CardIdentificationCode,
    ) -> impl Future<Output = Result<Option<(Card, Option<String>)>, StoreError>> + Send;
    /// Counts a wrong PIN for the card, atomically, and returns its wrong PINs in a row: what
    /// every node and every restart sees (a verified PIN sets it back to 0 inside the commit of
    /// its decision; activating the card does too).
    fn count_wrong_pin(
        &self,
        card_id: CardId,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// Changes a card's status (and with it, its place on the hot list). Activating a card
    /// also clears its wrong-PIN count. The card's CMS life-cycle state then follows the new
    /// status and its version increments (`cms::CmsStore`), so a compare-and-set of an
    /// operator who read the card before fails.
    fn set_card_status(
        &self,
        card_id: CardId,
        status: CardStatus,
        reason: Option<&str>,
        at_us: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Cards on the hot list (lost, stolen, blocked).
    fn hot_list(&self) -> impl Future<Output = Result<Vec<Card>, StoreError>> + Send;
    /// Up to `limit` cards with ids above `after`, by id, each with its clear PAN and its
    /// accounts: what the pipeline's card directory loads at start, in pages, so the first
    /// request of each card does not wait for the store.
    fn card_directory_page(
        &self,
        after: Option<CardId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DirectoryCard>, StoreError>> + Send;

    // ---- accounts and holds ----

    /// Opens an account with an opening balance (journalled).
    fn open_account(
        &self,
        account: &NewAccount,
        at_us: i64,
    ) -> impl Future<Output = Result<AccountId, StoreError>> + Send;
    /// An account and its balances.
    fn account(
        &self,
        account_id: AccountId,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;
    /// The accounts of a card.
    fn accounts_for_card(
        &self,
        card_id: CardId,
    ) -> impl Future<Output = Result<Vec<Account>, StoreError>> + Send;
    /// Sum of an account's journal (opening + credits - debits - captures): equals
    /// `balance_fen` unless something bypassed the store.
    fn journal_balance(
        &self,
        account_id: AccountId,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// A hold.
    fn hold(
        &self,
        hold_id: HoldId,
    ) -> impl Future<Output = Result<Option<Hold>, StoreError>> + Send;
    /// Pending holds past their expiry (for the pipeline to release with an event).
    fn expired_holds(
        &self,
        now_us: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Hold>, StoreError>> + Send;

    // ---- decisions (data plane) ----

    /// The transaction already holding this duplicate-detection key, if any. A hint for the
    /// pipeline; the authoritative check is made again at commit.
    fn find_duplicate(
        &self,
        key: &DuplicateKey,
    ) -> impl Future<Output = Result<Option<TransactionId>, StoreError>> + Send;
    /// Commits many decisions in one database transaction (group commit). Each decision is
    /// all-or-nothing (transaction row, legs, balance ops, duplicate key, outbox event,
    /// reversal), and a decision that fails leaves the others committed. At most
    /// [`DECISIONS_PER_BATCH_MAX`].
    fn commit_decisions(
        &self,
        batch: Vec<Decision>,
        now_us: i64,
    ) -> impl Future<Output = BatchOutcome> + Send;
    /// Transactions with this RRN (a retrieval reference repeats across a request, its
    /// reversal and its repeats), oldest first.
    fn transactions_by_rrn(
        &self,
        rrn: &Rrn,
    ) -> impl Future<Output = Result<Vec<StoredTransaction>, StoreError>> + Send;
    /// One transaction by id, with its legs.
    fn transaction(
        &self,
        id: TransactionId,
    ) -> impl Future<Output = Result<Option<StoredTransaction>, StoreError>> + Send;
    /// Work of the store's own on the writer, between two group commits: after the last one's
    /// callers have their results, before the writer takes the next batch (SQLite: the flush of
    /// the duplicate keys kept in memory). Nothing by default.
    fn between_group_commits(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Deletes duplicate-detection keys older than the retransmission window.
    fn purge_duplicate_keys(
        &self,
        older_than_us: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Remembers, on the duplicate key of each decided request, the fields its answer carried
    /// besides field 39 (an opaque text the pipeline writes and reads back), so an exact
    /// retransmission gets the original answer; all in one database transaction. Returns how
    /// many keys were found (a key no decision holds is skipped).
    fn record_answers(
        &self,
        answers: &[(DuplicateKey, String)],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// The transaction holding this duplicate key and the answer remembered on it, if any.
    fn find_answer(
        &self,
        key: &DuplicateKey,
    ) -> impl Future<Output = Result<Option<(TransactionId, Option<String>)>, StoreError>> + Send;

    // ---- card risk state ----

    /// The card's approved spend of the China Standard Time day starting at `day_start_us`
    /// (nothing spent: zeros), as committed by every node.
    fn card_day_usage(
        &self,
        card_id: CardId,
        day_start_us: i64,
    ) -> impl Future<Output = Result<DayUsage, StoreError>> + Send;
    /// Deletes the card-day spend of days that started before `before_day_start_us`.
    fn purge_card_day_usage(
        &self,
        before_day_start_us: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // ---- reversal queue (store-and-forward) ----

    /// Pending reversals due at `now_us`, oldest due first. A reversal of a stand-in approval
    /// is held back while that approval's advice is pending: the bank must learn of the
    /// original (0220) before it is asked to reverse it (0420).
    fn due_reversals(
        &self,
        now_us: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PendingReversal>, StoreError>> + Send;
    /// Records a send attempt that was not acknowledged, and when to retry; `rc` is the
    /// refusal the bank answered (None: no answer, which keeps the previous refusal).
    fn record_reversal_attempt(
        &self,
        reversal_id: ReversalId,
        next_attempt_at_us: i64,
        response_code: Option<ResponseCode>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Marks a reversal acknowledged (0430 received). Acknowledging twice is harmless.
    fn ack_reversal(
        &self,
        reversal_id: ReversalId,
        response_code: ResponseCode,
        at_us: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    // ---- advice queue (store-and-forward stand-in advices) ----

    /// Pending advices due at `now_us`, oldest due first.
    fn due_advices(
        &self,
        now_us: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PendingAdvice>, StoreError>> + Send;
    /// Records a send attempt that was not acknowledged, and when to retry; `rc` is the
    /// refusal the bank answered (None: no answer, which keeps the previous refusal).
    fn record_advice_attempt(
        &self,
        advice_id: AdviceId,
        next_attempt_at_us: i64,
        response_code: Option<ResponseCode>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Marks an advice acknowledged (0130/0230 received). Acknowledging twice is harmless.
    fn ack_advice(
        &self,
        advice_id: AdviceId,
        response_code: ResponseCode,
        at_us: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Fen approved in stand-in for `card_id` on behalf of `bank` since `since_us` (the
    /// per-card daily stand-in limit), whatever became of the advices.
    fn stand_in_total_fen(
        &self,
        card_id: CardId,
        bank: &InstitutionId,
        since_us: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// What waits in the store-and-forward queues: counts per kind and destination (with the
    /// reversals held back behind a pending advice) and the `oldest_max` oldest messages. For
    /// operators: `/metrics` and `GET /saf`, and the forwarder's alert on an old backlog.
    fn store_and_forward_backlog(
        &self,
        oldest_max: u32,
    ) -> impl Future<Output = Result<SafBacklog, StoreError>> + Send;

    // ---- reconciliation ----

    /// The switch's totals for an acquirer's approved decisions in `[from_us, to_us)`, the
    /// figures of its 0510 (ISO 8583:1987 fields 74-77, 86-89).
    fn acquirer_totals(
        &self,
        acquirer: &InstitutionId,
        from_us: i64,
        to_us: i64,
    ) -> impl Future<Output = Result<ReconciliationTotals, StoreError>> + Send;

    // ---- outbox ----

    /// Outbox rows with `outbox_seq > after_seq`, in sequence order. Sequences are gap-free
    /// and commit-ordered, so a relay that keeps `after_seq` as its cursor never skips a row.
    fn outbox_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutboxRecord>, StoreError>> + Send;
    /// Rows not yet relayed, in sequence order.
    fn unrelayed_outbox(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutboxRecord>, StoreError>> + Send;
    /// Marks rows as published by a relay. Returns how many were newly marked.
    fn mark_outbox_relayed(
        &self,
        outbox_seqs: &[i64],
        at_us: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // ---- audit ----

    /// Appends to the hash-chained audit log.
    fn append_audit(
        &self,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<AuditRecord, StoreError>> + Send;
    /// Recomputes the chain, and each entry's MAC once a key is installed; returns the number
    /// of entries or the first that breaks ([`StoreError::AuditChainBroken`],
    /// [`StoreError::AuditMacMismatch`]).
    fn verify_audit_chain(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Installs the key that MACs every audit entry appended from now on (and that
    /// [`Store::verify_audit_chain`] checks): an HSM data key, see [`audit`]. False when a key
    /// is installed already (it is never replaced).
    fn install_audit_mac_key(&self, key: std::sync::Arc<dyn AuditMacKey>) -> bool;

    // ---- integrity ----

    /// Checks the store's invariants (balances against journals, legs and movements against
    /// their transactions and accounts, the outbox gap-free and complete, the queues against
    /// their originals): see [`Invariant`]. `switch verify` prints it.
    fn verify_integrity(&self) -> impl Future<Output = Result<IntegrityReport, StoreError>> + Send;
}

/// Microseconds since the Unix epoch, the time unit of every `*_at_us` column.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
