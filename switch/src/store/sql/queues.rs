//! The store-and-forward queues of the control plane: reversals (0420) and stand-in advices
//! (0120/0220) due for sending, attempts and acknowledgements, the per-card stand-in total, and
//! the backlog operators watch (`/metrics`, `GET /saf`).

use super::driver::{Backend, Columns, Param, Run};
use super::limit;
use super::rows::{self, corrupt, institution_id};
use crate::store::model::{
    CardId, PendingAdvice, PendingReversal, SafBacklog, SafItem, SafKind, SafQueue, TransactionId,
};
use crate::store::StoreError;
use schemas::domain::{InstitutionId, ResponseCode};
use uuid::Uuid;

/// True for a pending reversal (`q`) of a stand-in approval whose advice is still pending: the
/// bank must learn of the approval (0220) before it is asked to reverse it.
macro_rules! held_by_advice {
    () => {
        "EXISTS (SELECT 1 FROM txn AS r JOIN advice_queue AS a ON a.transaction_id = \
         r.original_transaction_id WHERE r.transaction_id = q.original_transaction_id AND \
         a.state = 'pending')"
    };
}

/// Table, key and statements of one queue.
macro_rules! queue {
    ($table:literal, $key:literal, $what:literal) => {
        Queue {
            what: $what,
            attempt: concat!(
                "UPDATE ",
                $table,
                " SET attempts = attempts + 1, next_attempt_at_us = $1, last_response_code = \
                 COALESCE($2, last_response_code) WHERE ",
                $key,
                " = $3 AND state = 'pending'"
            ),
            ack: concat!(
                "UPDATE ",
                $table,
                " SET state = 'acknowledged', acknowledged_at_us = $1, last_response_code = $2 \
                 WHERE ",
                $key,
                " = $3 AND state = 'pending'"
            ),
            exists: concat!(
                "SELECT CAST(1 AS BIGINT) FROM ",
                $table,
                " WHERE ",
                $key,
                " = $1"
            ),
        }
    };
}

/// A store-and-forward queue's statements.
pub struct Queue {
    /// Its rows' name in a [`StoreError::NotFound`].
    what: &'static str,
    /// Records an unacknowledged attempt.
    attempt: &'static str,
    /// Marks a row acknowledged.
    ack: &'static str,
    /// Whether a row exists.
    exists: &'static str,
}

/// `reversal_queue`, keyed by `reversal_id`.
pub const REVERSALS: Queue = queue!("reversal_queue", "reversal_id", "pending reversal");
/// `advice_queue`, keyed by `advice_id`.
pub const ADVICES: Queue = queue!("advice_queue", "advice_id", "pending advice");

const DUE_REVERSALS: &str = concat!(
    "SELECT reversal_id, original_transaction_id, destination_institution_id, reason, \
     amount_fen, stan, transmission_at, attempts, next_attempt_at_us \
     FROM reversal_queue AS q WHERE q.state = 'pending' AND q.next_attempt_at_us <= $1 AND NOT ",
    held_by_advice!(),
    " ORDER BY q.next_attempt_at_us, q.created_at_us LIMIT $2"
);
const DUE_ADVICES: &str = "SELECT advice_id, transaction_id, destination_institution_id, \
     mti_class, processing_code, amount_fen, stan, transmission_at, reason_code, auth_code, \
     attempts, next_attempt_at_us FROM advice_queue WHERE state = 'pending' AND \
     next_attempt_at_us <= $1 ORDER BY next_attempt_at_us, created_at_us LIMIT $2";
const STAND_IN_TOTAL: &str = "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM \
     advice_queue WHERE card_id = $1 AND destination_institution_id = $2 AND created_at_us >= $3";
const BACKLOG_QUEUES: &str = concat!(
    "SELECT 'reversal' AS kind, q.destination_institution_id AS destination, \
     CAST(COUNT(*) AS BIGINT) AS pending, CAST(COALESCE(SUM(CASE WHEN ",
    held_by_advice!(),
    " THEN 1 ELSE 0 END), 0) AS BIGINT) AS held, CAST(MIN(q.created_at_us) AS BIGINT) AS oldest, \
     CAST(MAX(q.attempts) AS BIGINT) AS attempts_max FROM reversal_queue AS q \
     WHERE q.state = 'pending' GROUP BY q.destination_institution_id \
     UNION ALL \
     SELECT 'advice', a.destination_institution_id, CAST(COUNT(*) AS BIGINT), CAST(0 AS BIGINT), \
     CAST(MIN(a.created_at_us) AS BIGINT), CAST(MAX(a.attempts) AS BIGINT) \
     FROM advice_queue AS a WHERE a.state = 'pending' GROUP BY a.destination_institution_id"
);
const BACKLOG_OLDEST: &str = concat!(
    "SELECT kind, id, transaction_id, destination, amount_fen, attempts, last_response_code, \
     held, created_at_us, next_attempt_at_us FROM ( \
     SELECT 'reversal' AS kind, q.reversal_id AS id, q.original_transaction_id AS transaction_id, \
     q.destination_institution_id AS destination, q.amount_fen AS amount_fen, \
     CAST(q.attempts AS BIGINT) AS attempts, q.last_response_code AS last_response_code, \
     CAST(CASE WHEN ",
    held_by_advice!(),
    " THEN 1 ELSE 0 END AS BIGINT) AS held, q.created_at_us AS created_at_us, \
     q.next_attempt_at_us AS next_attempt_at_us FROM reversal_queue AS q \
     WHERE q.state = 'pending' \
     UNION ALL \
     SELECT 'advice', a.advice_id, a.transaction_id, a.destination_institution_id, a.amount_fen, \
     CAST(a.attempts AS BIGINT), a.last_response_code, CAST(0 AS BIGINT), a.created_at_us, \
     a.next_attempt_at_us FROM advice_queue AS a WHERE a.state = 'pending') AS p \
     ORDER BY created_at_us, id LIMIT $1"
);

impl Queue {
    /// Records an unacknowledged attempt, and when to retry. An attempt left unanswered (`rc`
    /// None) keeps the refusal code of an earlier one: the last thing the bank said is what an
    /// operator needs to see in `/saf`.
    pub async fn attempt<B: Backend>(
        &self,
        store: &B,
        id: Uuid,
        next_attempt_at_us: i64,
        rc: Option<ResponseCode>,
    ) -> Result<(), StoreError> {
        let _gate = store.write_gate().await;
        let params = [
            next_attempt_at_us.into(),
            rc.as_ref().map(ResponseCode::as_str).into(),
            id.into(),
        ];
        if store.writer().execute(self.attempt, &params).await? == 0 {
            return Err(StoreError::NotFound(self.what));
        }
        Ok(())
    }

    /// Marks a row acknowledged; twice is harmless.
    pub async fn ack<B: Backend>(
        &self,
        store: &B,
        id: Uuid,
        rc: ResponseCode,
        at_us: i64,
    ) -> Result<(), StoreError> {
        let _gate = store.write_gate().await;
        let params = [at_us.into(), rc.as_str().into(), id.into()];
        if store.writer().execute(self.ack, &params).await? == 0 {
            let exists = store
                .reader()
                .fetch_optional(self.exists, &[id.into()])
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(self.what));
            }
        }
        Ok(())
    }
}

/// Pending reversals due at `now_us`, except those held back behind a pending advice.
pub async fn due_reversals<B: Backend>(
    store: &B,
    now_us: i64,
    n: u32,
) -> Result<Vec<PendingReversal>, StoreError> {
    let params = [now_us.into(), limit(n).into()];
    let rows = store.reader().fetch_all(DUE_REVERSALS, &params).await?;
    rows.iter().map(rows::reversal).collect()
}

/// Pending advices due at `now_us`.
pub async fn due_advices<B: Backend>(
    store: &B,
    now_us: i64,
    n: u32,
) -> Result<Vec<PendingAdvice>, StoreError> {
    let params = [now_us.into(), limit(n).into()];
    let rows = store.reader().fetch_all(DUE_ADVICES, &params).await?;
    rows.iter().map(rows::advice).collect()
}

/// Fen approved in stand-in for a card on behalf of `bank` since `since_us`.
pub async fn stand_in_total_fen<B: Backend>(
    store: &B,
    card_id: CardId,
    bank: &InstitutionId,
    since_us: i64,
) -> Result<i64, StoreError> {
    let params = [card_id.0.into(), bank.as_str().into(), since_us.into()];
    let row = store.reader().fetch_one(STAND_IN_TOTAL, &params).await?;
    Ok(row.first()?)
}

/// Counts per queue and destination, sorted, and the `oldest_max` oldest messages.
pub async fn backlog<B: Backend>(store: &B, oldest_max: u32) -> Result<SafBacklog, StoreError> {
    let rows = store.reader().fetch_all(BACKLOG_QUEUES, &[]).await?;
    let mut queues = rows.iter().map(saf_queue).collect::<Result<Vec<_>, _>>()?;
    queues.sort_by(|a, b| (a.kind, a.destination.as_str()).cmp(&(b.kind, b.destination.as_str())));
    if oldest_max == 0 {
        return Ok(SafBacklog {
            queues,
            oldest: Vec::new(),
        });
    }
    let params: [Param; 1] = [limit(oldest_max).into()];
    let rows = store.reader().fetch_all(BACKLOG_OLDEST, &params).await?;
    let oldest = rows.iter().map(saf_item).collect::<Result<Vec<_>, _>>()?;
    Ok(SafBacklog { queues, oldest })
}

fn saf_kind(row: &impl Columns) -> Result<SafKind, StoreError> {
    SafKind::from_sql(row.text("kind")?).ok_or(corrupt("kind"))
}

fn saf_queue(row: &impl Columns) -> Result<SafQueue, StoreError> {
    let count = |column: &'static str| -> Result<u64, StoreError> {
        u64::try_from(row.get::<i64>(column)?).map_err(|_| corrupt(column))
    };
    Ok(SafQueue {
        kind: saf_kind(row)?,
        destination: institution_id(row, "destination", "destination_institution_id")?,
        pending: count("pending")?,
        held: count("held")?,
        oldest_created_at_us: row.get("oldest")?,
        attempts_max: row.get("attempts_max")?,
    })
}

fn saf_item(row: &impl Columns) -> Result<SafItem, StoreError> {
    Ok(SafItem {
        kind: saf_kind(row)?,
        id: row.get("id")?,
        transaction_id: TransactionId(row.get("transaction_id")?),
        destination: institution_id(row, "destination", "destination_institution_id")?,
        amount_fen: row.get("amount_fen")?,
        attempts: row.get("attempts")?,
        last_response_code: row.get("last_response_code")?,
        held: row.get::<i64>("held")? != 0,
        created_at_us: row.get("created_at_us")?,
        next_attempt_at_us: row.get("next_attempt_at_us")?,
    })
}
