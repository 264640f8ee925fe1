//! The control plane of both backends, written once: reference data, cards, accounts, reads of
//! transactions, the store-and-forward queues, reconciliation, the outbox and the audit log.
//! Every [`driver::Backend`] (SQLite, PostgreSQL) gets [`super::Store`] from [`control`]; a
//! backend brings its pools, its [`Dialect`] and its own group commit (the data plane:
//! `sqlite::batch` on the writer's thread, `postgres::batch` with `UNNEST` writes).
//!
//! SQL text is constant (`&'static str`, built with `concat!` from the column lists below), so
//! each statement is prepared once per connection and no text is formatted per call.

/// Columns read by [`rows::card`].
macro_rules! card_columns {
    () => {
        "card_id, pan_masked, card_identification_code, issuer_institution_id, expiry_yymm, \
         status, status_reason, pan_sequence_number, icc_algorithm, pin_offset, \
         insurance_category, atc_max"
    };
}

/// Columns read by [`rows::account`].
macro_rules! account_columns {
    () => {
        "account_id, institution_id, card_id, kind, balance_fen, held_fen"
    };
}

/// Columns read by [`rows::hold`].
macro_rules! hold_columns {
    () => {
        "hold_id, account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, \
         expires_at_us, closed_at_us"
    };
}

/// Columns read by [`rows::txn`].
macro_rules! txn_columns {
    () => {
        "transaction_id, kind, mti, processing_code, card_id, pan_masked, \
         acquirer_institution_id, issuer_institution_id, terminal_id, stan, rrn, \
         transmission_at, amount_fen, response_code, original_transaction_id, event_id, \
         decided_at_us"
    };
}

/// The filters, order and limit of `GET /transactions` (`$1`-`$10`: institution, RRN,
/// terminal, the window, response code, masked PAN, the keyset cursor, the page size) over the
/// rows named `$rows` (`txn`, or a card's chain in [`card_history`]). Every filter is
/// `$n IS NULL OR ...`, so one statement serves every combination.
macro_rules! txn_search_filters {
    ($rows:literal) => {
        concat!(
            " WHERE ($1 IS NULL OR acquirer_institution_id = $1 OR issuer_institution_id = $1 \
             OR EXISTS (SELECT 1 FROM txn_leg AS l WHERE l.transaction_id = ",
            $rows,
            ".transaction_id AND l.institution_id = $1)) \
             AND ($2 IS NULL OR rrn = $2) AND ($3 IS NULL OR terminal_id = $3) \
             AND decided_at_us >= $4 AND decided_at_us < $5 \
             AND ($6 IS NULL OR response_code = $6) AND ($7 IS NULL OR pan_masked LIKE $7) \
             AND (decided_at_us < $8 OR (decided_at_us = $8 AND transaction_id < $9)) \
             ORDER BY decided_at_us DESC, transaction_id DESC LIMIT $10"
        )
    };
}

/// Columns read by [`rows::outbox`].
macro_rules! outbox_columns {
    () => {
        "outbox_seq, event_id, partition_key, event_type, schema_version, payload, \
         created_at_us, relayed_at_us"
    };
}

mod api_keys;
mod audit_log;
pub mod card_history;
mod cms;
mod console;
mod control;
pub mod cutover;
pub mod driver;
pub mod integrity;
mod operator;
mod queues;
pub mod rows;

/// SQL text of the control plane that differs between SQLite and PostgreSQL (the batch's own
/// SQL is per backend: `sqlite::batch`, `postgres::unnest`).
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The audit chain's head, locked for the append (`FOR UPDATE` on PostgreSQL; SQLite has
    /// one writer, so nothing).
    pub audit_head_for_update: &'static str,
    /// Marks the outbox sequences in `$2` (a JSON array) relayed at `$1`.
    pub mark_relayed: &'static str,
    /// The applications of batch `$1` whose citizen IDs are in `$2` (a JSON array of strings):
    /// `citizen_id, application_id` (the CMS's import, one read per chunk).
    pub applications_in_batch: &'static str,
}

/// Approved transactions of acquirer `$1` decided in `[$2, $3)`, counted and summed by kind and
/// by the kind of their original (reversals). The window is read through `txn_by_decided_at`
/// (migration 0006), so a 0500 costs what the window holds, not the whole history.
pub const ACQUIRER_TOTALS: &str =
    "SELECT t.kind AS kind, o.kind AS original_kind, CAST(COUNT(*) AS BIGINT) AS n, \
     CAST(COALESCE(SUM(t.amount_fen), 0) AS BIGINT) AS fen \
     FROM txn AS t LEFT JOIN txn AS o ON o.transaction_id = t.original_transaction_id \
     WHERE t.acquirer_institution_id = $1 AND t.response_code = '00' \
     AND t.decided_at_us >= $2 AND t.decided_at_us < $3 GROUP BY t.kind, o.kind";

/// A read's row limit, capped at [`super::ROWS_PER_READ_MAX`].
fn limit(n: u32) -> i64 {
    i64::from(n.min(super::ROWS_PER_READ_MAX))
}
