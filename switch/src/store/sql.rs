//! What the two backends share: the control plane's per-dialect SQL text, the JSON rows of
//! PostgreSQL's rare batch inserts (new holds, reversals, advices), and the [`impl_store!`]
//! macro that implements [`super::Store`] once for both drivers. The group commit is per
//! backend: `sqlite_batch` (rusqlite on the writer's thread), `postgres` + `postgres_unnest`.
//!
//! Why a macro rather than generics: sqlx's generic bounds (`Executor`, `Encode`, `Decode` for
//! every bound type, higher-ranked over lifetimes) make generic async code over `Database`
//! unreadable and fragile; the same code instantiated per concrete driver is plain sqlx.

use super::model::Decision;
use super::plan::Plan;
use serde_json::{json, Value};
use uuid::Uuid;

/// SQL text of the control plane that differs between SQLite and PostgreSQL (the batch's own
/// SQL is per backend: `sqlite_batch`, `postgres`).
pub struct Dialect {
    /// Suffix locking rows read for update (`FOR UPDATE` on PostgreSQL; SQLite has one
    /// writer, so nothing).
    pub lock: &'static str,
    /// Marks the outbox sequences in `$2` (a JSON array) relayed at `$1`.
    pub mark_relayed: &'static str,
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

/// A UUID as 32 lowercase hex digits (SQLite `unhex`, PostgreSQL `::uuid` both read it).
pub fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

/// `reversal_queue` rows of the accepted decisions, as one JSON array.
pub fn reversal_rows(decisions: &[Decision], plan: &Plan, now_us: i64) -> String {
    let rows: Vec<Value> = plan
        .accepted()
        .filter_map(|i| {
            let d = &decisions[i];
            d.reversal.as_ref().map(|r| {
                json!([
                    hex(r.reversal_id.0),
                    hex(d.transaction.transaction_id.0),
                    r.destination.as_str(),
                    r.reason.as_sql(),
                    r.amount_fen.get(),
                    r.stan.to_string(),
                    r.transmission_at.as_str(),
                    r.first_attempt_at_us,
                    now_us,
                ])
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// `advice_queue` rows of the accepted decisions, as one JSON array.
pub fn advice_rows(decisions: &[Decision], plan: &Plan, now_us: i64) -> String {
    let rows: Vec<Value> = plan
        .accepted()
        .filter_map(|i| {
            let d = &decisions[i];
            d.advice.as_ref().map(|a| {
                json!([
                    hex(a.advice_id.0),
                    hex(d.transaction.transaction_id.0),
                    d.transaction.card_id.map(|c| c.0),
                    a.destination.as_str(),
                    a.class.as_sql(),
                    a.processing_code,
                    a.amount_fen.get(),
                    a.stan.to_string(),
                    a.transmission_at.as_str(),
                    a.reason.as_str(),
                    a.auth_code,
                    a.first_attempt_at_us,
                    now_us,
                ])
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// The holds a plan creates, as one JSON array of rows.
pub fn new_hold_rows(plan: &Plan) -> String {
    let rows: Vec<Value> = plan
        .new_holds
        .iter()
        .map(|(id, h)| {
            json!([
                hex(id.0),
                h.account_id.0,
                hex(h.transaction_id.0),
                h.amount_fen,
                h.captured_fen,
                h.state.as_sql(),
                h.created_at_us,
                h.expires_at_us,
                h.closed_at_us,
            ])
        })
        .collect();
    Value::Array(rows).to_string()
}

/// Number of accepted decisions carrying an event.
pub fn event_count(decisions: &[Decision], plan: &Plan) -> i64 {
    plan.accepted()
        .filter(|i| decisions[*i].event.is_some())
        .count() as i64
}

/// Maps a batch-level database error to what each caller is told.
pub fn classify(e: &sqlx::Error) -> super::DecisionError {
    use super::DecisionError;
    match e {
        sqlx::Error::Database(db) => {
            let msg = db.message().to_owned();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation if msg.contains("duplicate_key") => {
                    DecisionError::Duplicate { existing: None }
                }
                sqlx::error::ErrorKind::Other => DecisionError::Unavailable(msg),
                _ => DecisionError::Rejected(msg),
            }
        }
        other => DecisionError::Unavailable(other.to_string()),
    }
}

/// Implements `Store` for a backend struct that has `read: Pool<$db>`, `write: Pool<$db>`,
/// `pan: Arc<dyn PanProtector>`, an async `begin_write()`, an async `write_gate()` (held by
/// every control-plane write: on SQLite the lock the group commit also takes, see
/// `sqlite_batch`), an async `group_commit()` (the data plane's batch: `sqlite_batch` on
/// SQLite, `postgres_batch` + `postgres_unnest` on PostgreSQL) and a `DIALECT` constant. The
/// row decoders PostgreSQL's batch needs are visible to the whole store module.
macro_rules! impl_store {
    ($store:ty, $db:ty, writer_on_own_thread = $own:expr, group_commits_in_flight = $commits:expr) => {
        pub(super) mod shared_impl {
            use super::*;
            use crate::store::audit;
            use crate::store::model::*;
            use crate::store::plan::HoldRow;
            use crate::store::sql;
            use crate::store::{DecisionError, StoreError, DECISIONS_PER_BATCH_MAX, ROWS_PER_READ_MAX};
            use schemas::domain::*;
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            pub(in crate::store) fn corrupt(column: &'static str) -> StoreError {
                StoreError::Corrupt { column }
            }

            pub(in crate::store) fn parse<T, E>(column: &'static str, r: Result<T, E>) -> Result<T, StoreError> {
                r.map_err(|_| corrupt(column))
            }

            fn institution(row: &DbRow) -> Result<Institution, StoreError> {
                Ok(Institution {
                    institution_id: parse("institution.institution_id", InstitutionId::parse(row.try_get("institution_id")?))?,
                    name: row.try_get("name")?,
                    kind: InstitutionKind::from_sql(row.try_get("kind")?).ok_or(corrupt("institution.kind"))?,
                })
            }

            const CARD_COLUMNS: &str = "card_id, pan_masked, card_identification_code, issuer_institution_id, expiry_yymm, status, status_reason, pan_sequence_number, icc_algorithm, pin_offset, insurance_category, atc_max";

            fn card(row: &DbRow) -> Result<Card, StoreError> {
                let cic: Option<String> = row.try_get("card_identification_code")?;
                Ok(Card {
                    card_id: CardId(row.try_get("card_id")?),
                    pan_masked: row.try_get("pan_masked")?,
                    card_identification_code: match cic {
                        Some(c) => Some(parse("card.card_identification_code", CardIdentificationCode::parse(&c))?),
                        None => None,
                    },
                    issuer: parse("card.issuer_institution_id", InstitutionId::parse(row.try_get("issuer_institution_id")?))?,
                    expiry_yymm: row.try_get("expiry_yymm")?,
                    status: CardStatus::from_sql(row.try_get("status")?).ok_or(corrupt("card.status"))?,
                    status_reason: row.try_get("status_reason")?,
                    issuance: CardIssuance {
                        pan_sequence_number: row.try_get("pan_sequence_number")?,
                        icc_algorithm: match row.try_get::<Option<String>, _>("icc_algorithm")? {
                            Some(a) => Some(IccAlgorithm::from_sql(&a).ok_or(corrupt("card.icc_algorithm"))?),
                            None => None,
                        },
                        pin_offset: row.try_get("pin_offset")?,
                        insurance_category: match row.try_get::<Option<String>, _>("insurance_category")? {
                            Some(c) => Some(InsuranceCategory::from_sql(&c).ok_or(corrupt("card.insurance_category"))?),
                            None => None,
                        },
                    },
                    atc_max: match row.try_get::<Option<i32>, _>("atc_max")? {
                        Some(a) => Some(u16::try_from(a).map_err(|_| corrupt("card.atc_max"))?),
                        None => None,
                    },
                })
            }

            const ACCOUNT_COLUMNS: &str = "account_id, institution_id, card_id, kind, balance_fen, held_fen";

            fn account(row: &DbRow) -> Result<Account, StoreError> {
                Ok(Account {
                    account_id: AccountId(row.try_get("account_id")?),
                    institution: parse("account.institution_id", InstitutionId::parse(row.try_get("institution_id")?))?,
                    card_id: row.try_get::<Option<i64>, _>("card_id")?.map(CardId),
                    kind: AccountKind::from_sql(row.try_get("kind")?).ok_or(corrupt("account.kind"))?,
                    balance_fen: row.try_get("balance_fen")?,
                    held_fen: row.try_get("held_fen")?,
                })
            }

            const HOLD_COLUMNS: &str = "hold_id, account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, expires_at_us, closed_at_us";

            pub(in crate::store) fn hold_row(row: &DbRow) -> Result<(HoldId, HoldRow), StoreError> {
                Ok((
                    HoldId(row.try_get("hold_id")?),
                    HoldRow {
                        account_id: AccountId(row.try_get("account_id")?),
                        transaction_id: TransactionId(row.try_get("transaction_id")?),
                        amount_fen: row.try_get("amount_fen")?,
                        captured_fen: row.try_get("captured_fen")?,
                        state: HoldState::from_sql(row.try_get("state")?).ok_or(corrupt("hold.state"))?,
                        created_at_us: row.try_get("created_at_us")?,
                        expires_at_us: row.try_get("expires_at_us")?,
                        closed_at_us: row.try_get("closed_at_us")?,
                    },
                ))
            }

            fn hold(row: &DbRow) -> Result<Hold, StoreError> {
                let (hold_id, h) = hold_row(row)?;
                Ok(Hold {
                    hold_id,
                    account_id: h.account_id,
                    transaction_id: h.transaction_id,
                    amount_fen: h.amount_fen,
                    captured_fen: h.captured_fen,
                    state: h.state,
                    expires_at_us: h.expires_at_us,
                })
            }

            const TXN_COLUMNS: &str = "transaction_id, kind, mti, processing_code, card_id, pan_masked, acquirer_institution_id, issuer_institution_id, terminal_id, stan, rrn, transmission_at, amount_fen, response_code, original_transaction_id, event_id, decided_at_us";

            fn txn(row: &DbRow) -> Result<(TransactionRecord, Option<uuid::Uuid>), StoreError> {
                let issuer: Option<String> = row.try_get("issuer_institution_id")?;
                let record = TransactionRecord {
                    transaction_id: TransactionId(row.try_get("transaction_id")?),
                    kind: TransactionKind::from_sql(row.try_get("kind")?).ok_or(corrupt("txn.kind"))?,
                    mti: row.try_get("mti")?,
                    processing_code: row.try_get("processing_code")?,
                    card_id: row.try_get::<Option<i64>, _>("card_id")?.map(CardId),
                    pan_masked: row.try_get("pan_masked")?,
                    acquirer: parse("txn.acquirer_institution_id", InstitutionId::parse(row.try_get("acquirer_institution_id")?))?,
                    issuer: match issuer {
                        Some(i) => Some(parse("txn.issuer_institution_id", InstitutionId::parse(&i))?),
                        None => None,
                    },
                    terminal_id: parse("txn.terminal_id", TerminalId::parse(row.try_get("terminal_id")?))?,
                    stan: parse("txn.stan", Stan::parse(row.try_get("stan")?))?,
                    rrn: parse("txn.rrn", Rrn::parse(row.try_get("rrn")?))?,
                    transmission_at: parse("txn.transmission_at", TransmissionDateTime::parse(row.try_get("transmission_at")?))?,
                    amount_fen: parse("txn.amount_fen", AmountFen::new(row.try_get("amount_fen")?))?,
                    response_code: parse("txn.response_code", ResponseCode::parse(row.try_get("response_code")?))?,
                    original_transaction_id: row.try_get::<Option<uuid::Uuid>, _>("original_transaction_id")?.map(TransactionId),
                    decided_at_us: row.try_get("decided_at_us")?,
                };
                Ok((record, row.try_get("event_id")?))
            }

            fn leg(row: &DbRow) -> Result<TxnLeg, StoreError> {
                Ok(TxnLeg {
                    leg_no: parse("txn_leg.leg_no", u8::try_from(row.try_get::<i64, _>("leg_no")?))?,
                    kind: leg_kind_from_sql(row.try_get("kind")?).ok_or(corrupt("txn_leg.kind"))?,
                    institution: parse("txn_leg.institution_id", InstitutionId::parse(row.try_get("institution_id")?))?,
                    account_id: row.try_get::<Option<i64>, _>("account_id")?.map(AccountId),
                    amount_fen: parse("txn_leg.amount_fen", AmountFen::new(row.try_get("amount_fen")?))?,
                })
            }

            const REVERSAL_COLUMNS: &str = "reversal_id, original_transaction_id, destination_institution_id, reason, amount_fen, stan, transmission_at, attempts, next_attempt_at_us";

            fn reversal(row: &DbRow) -> Result<PendingReversal, StoreError> {
                Ok(PendingReversal {
                    reversal_id: ReversalId(row.try_get("reversal_id")?),
                    original_transaction_id: TransactionId(row.try_get("original_transaction_id")?),
                    destination: parse("reversal_queue.destination_institution_id", InstitutionId::parse(row.try_get("destination_institution_id")?))?,
                    reason: ReversalReason::from_sql(row.try_get("reason")?).ok_or(corrupt("reversal_queue.reason"))?,
                    amount_fen: row.try_get("amount_fen")?,
                    stan: parse("reversal_queue.stan", Stan::parse(row.try_get("stan")?))?,
                    transmission_at: parse("reversal_queue.transmission_at", TransmissionDateTime::parse(row.try_get("transmission_at")?))?,
                    attempts: row.try_get("attempts")?,
                    next_attempt_at_us: row.try_get("next_attempt_at_us")?,
                })
            }

            const ADVICE_COLUMNS: &str = "advice_id, transaction_id, destination_institution_id, mti_class, processing_code, amount_fen, stan, transmission_at, reason_code, auth_code, attempts, next_attempt_at_us";

            fn advice(row: &DbRow) -> Result<PendingAdvice, StoreError> {
                Ok(PendingAdvice {
                    advice_id: AdviceId(row.try_get("advice_id")?),
                    transaction_id: TransactionId(row.try_get("transaction_id")?),
                    destination: parse("advice_queue.destination_institution_id", InstitutionId::parse(row.try_get("destination_institution_id")?))?,
                    class: AdviceClass::from_sql(row.try_get("mti_class")?).ok_or(corrupt("advice_queue.mti_class"))?,
                    processing_code: row.try_get("processing_code")?,
                    amount_fen: row.try_get("amount_fen")?,
                    stan: parse("advice_queue.stan", Stan::parse(row.try_get("stan")?))?,
                    transmission_at: parse("advice_queue.transmission_at", TransmissionDateTime::parse(row.try_get("transmission_at")?))?,
                    reason: parse("advice_queue.reason_code", ResponseCode::parse(row.try_get("reason_code")?))?,
                    auth_code: row.try_get("auth_code")?,
                    attempts: row.try_get("attempts")?,
                    next_attempt_at_us: row.try_get("next_attempt_at_us")?,
                })
            }

            /// True for a pending reversal (`q`) of a stand-in approval whose advice is still
            /// pending: the bank must learn of the approval (0220) before it is asked to reverse it.
            const HELD_BY_ADVICE: &str = "EXISTS (SELECT 1 FROM txn AS r JOIN advice_queue AS a ON a.transaction_id = r.original_transaction_id \
                WHERE r.transaction_id = q.original_transaction_id AND a.state = 'pending')";

            /// Table, key column and name of the reversal queue.
            const REVERSAL_QUEUE: (&str, &str, &str) = ("reversal_queue", "reversal_id", "pending reversal");
            /// Table, key column and name of the advice queue.
            const ADVICE_QUEUE: (&str, &str, &str) = ("advice_queue", "advice_id", "pending advice");

            const OUTBOX_COLUMNS: &str = "outbox_seq, event_id, partition_key, event_type, schema_version, payload, created_at_us, relayed_at_us";

            fn outbox(row: &DbRow) -> Result<OutboxRecord, StoreError> {
                Ok(OutboxRecord {
                    outbox_seq: row.try_get("outbox_seq")?,
                    event_id: row.try_get("event_id")?,
                    partition_key: row.try_get("partition_key")?,
                    event_type: row.try_get("event_type")?,
                    schema_version: row.try_get("schema_version")?,
                    payload: row.try_get("payload")?,
                    created_at_us: row.try_get("created_at_us")?,
                    relayed_at_us: row.try_get("relayed_at_us")?,
                })
            }

            fn limit(n: u32) -> i64 {
                i64::from(n.min(ROWS_PER_READ_MAX))
            }

            fn hash32(column: &'static str, v: Vec<u8>) -> Result<[u8; 32], StoreError> {
                <[u8; 32]>::try_from(v.as_slice()).map_err(|_| corrupt(column))
            }

            impl $store {
                /// Records an unacknowledged attempt on a row of a store-and-forward queue
                /// (`reversal_queue` keyed by `reversal_id`, `advice_queue` by `advice_id`). An
                /// attempt left unanswered (`rc` None) keeps the refusal code of an earlier one:
                /// the last thing the bank said is what an operator needs to see in `/saf`.
                async fn queue_attempt(&self, queue: (&str, &str, &'static str), id: uuid::Uuid, next_attempt_at_us: i64, rc: Option<ResponseCode>) -> Result<(), StoreError> {
                    let _gate = self.write_gate().await;
                    let (table, key, what) = queue;
                    let done = sqlx::query(&format!(
                        "UPDATE {table} SET attempts = attempts + 1, next_attempt_at_us = $1, last_response_code = COALESCE($2, last_response_code) \
                         WHERE {key} = $3 AND state = 'pending'"
                    ))
                    .bind(next_attempt_at_us)
                    .bind(rc.map(|c| c.as_str().to_owned()))
                    .bind(id)
                    .execute(&self.write)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound(what));
                    }
                    Ok(())
                }

                /// Marks a row of a store-and-forward queue acknowledged; twice is harmless.
                async fn queue_ack(&self, queue: (&str, &str, &'static str), id: uuid::Uuid, rc: ResponseCode, at_us: i64) -> Result<(), StoreError> {
                    let _gate = self.write_gate().await;
                    let (table, key, what) = queue;
                    let done = sqlx::query(&format!(
                        "UPDATE {table} SET state = 'acknowledged', acknowledged_at_us = $1, last_response_code = $2 \
                         WHERE {key} = $3 AND state = 'pending'"
                    ))
                    .bind(at_us)
                    .bind(rc.as_str())
                    .bind(id)
                    .execute(&self.write)
                    .await?;
                    if done.rows_affected() == 0 {
                        let exists: Option<i64> = sqlx::query_scalar(&format!("SELECT CAST(1 AS BIGINT) FROM {table} WHERE {key} = $1"))
                            .bind(id)
                            .fetch_optional(&self.read)
                            .await?;
                        if exists.is_none() {
                            return Err(StoreError::NotFound(what));
                        }
                    }
                    Ok(())
                }

                /// A transaction row with its legs.
                async fn with_legs(&self, row: &DbRow) -> Result<StoredTransaction, StoreError> {
                    let (record, event_id) = txn(row)?;
                    let legs = sqlx::query(
                        "SELECT leg_no, kind, institution_id, account_id, amount_fen FROM txn_leg WHERE transaction_id = $1 ORDER BY leg_no",
                    )
                    .bind(record.transaction_id.0)
                    .fetch_all(&self.read)
                    .await?;
                    let legs = legs.iter().map(leg).collect::<Result<Vec<_>, _>>()?;
                    Ok(StoredTransaction { record, legs, event_id })
                }

            }

            impl crate::store::Store for $store {
                const WRITER_ON_OWN_THREAD: bool = $own;
                const GROUP_COMMITS_IN_FLIGHT: usize = $commits;
                async fn upsert_institution(&self, i: &Institution) -> Result<(), StoreError> {
                    let _gate = self.write_gate().await;
                    sqlx::query(
                        "INSERT INTO institution (institution_id, name, kind, created_at_us) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (institution_id) DO UPDATE SET name = excluded.name, kind = excluded.kind",
                    )
                    .bind(i.institution_id.as_str())
                    .bind(&i.name)
                    .bind(i.kind.as_sql())
                    .bind(crate::store::now_us())
                    .execute(&self.write)
                    .await?;
                    Ok(())
                }

                async fn institutions(&self) -> Result<Vec<Institution>, StoreError> {
                    let rows = sqlx::query("SELECT institution_id, name, kind FROM institution ORDER BY institution_id")
                        .fetch_all(&self.read)
                        .await?;
                    rows.iter().map(institution).collect()
                }

                async fn put_bin_route(&self, r: &BinRoute) -> Result<(), StoreError> {
                    let _gate = self.write_gate().await;
                    sqlx::query(
                        "INSERT INTO bin_route (bin_prefix, issuer_institution_id) VALUES ($1, $2) \
                         ON CONFLICT (bin_prefix) DO UPDATE SET issuer_institution_id = excluded.issuer_institution_id",
                    )
                    .bind(&r.bin_prefix)
                    .bind(r.issuer.as_str())
                    .execute(&self.write)
                    .await?;
                    Ok(())
                }

                async fn bin_routes(&self) -> Result<Vec<BinRoute>, StoreError> {
                    let rows = sqlx::query("SELECT bin_prefix, issuer_institution_id FROM bin_route ORDER BY bin_prefix")
                        .fetch_all(&self.read)
                        .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(BinRoute {
                                bin_prefix: row.try_get("bin_prefix")?,
                                issuer: parse("bin_route.issuer_institution_id", InstitutionId::parse(row.try_get("issuer_institution_id")?))?,
                            })
                        })
                        .collect()
                }

                async fn route_for_pan(&self, pan: &Pan) -> Result<Option<InstitutionId>, StoreError> {
                    // A PAN has at least 12 digits, so there are always 12 candidate prefixes.
                    let digits = pan.expose_digits();
                    let mut q = sqlx::query(
                        "SELECT issuer_institution_id FROM bin_route WHERE bin_prefix IN \
                         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ORDER BY length(bin_prefix) DESC LIMIT 1",
                    );
                    for len in 1..=12 {
                        q = q.bind(&digits[..len]);
                    }
                    match q.fetch_optional(&self.read).await? {
                        Some(row) => Ok(Some(parse("bin_route.issuer_institution_id", InstitutionId::parse(row.try_get("issuer_institution_id")?))?)),
                        None => Ok(None),
                    }
                }

                async fn issue_card(&self, c: &NewCard) -> Result<CardId, StoreError> {
                    let _gate = self.write_gate().await;
                    let hash = self.pan.lookup_hash(&c.pan);
                    let sealed = self.pan.seal(&c.pan)?;
                    let now = crate::store::now_us();
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO card (pan_hash, pan_ciphertext, pan_masked, card_identification_code, issuer_institution_id, \
                         expiry_yymm, status, status_changed_at_us, created_at_us, pan_sequence_number, icc_algorithm, pin_offset, insurance_category) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12) RETURNING card_id",
                    )
                    .bind(hash.to_vec())
                    .bind(sealed)
                    .bind(c.pan.masked())
                    .bind(c.card_identification_code.as_ref().map(|x| x.as_str().to_owned()))
                    .bind(c.issuer.as_str())
                    .bind(&c.expiry_yymm)
                    .bind(c.status.as_sql())
                    .bind(now)
                    .bind(&c.issuance.pan_sequence_number)
                    .bind(c.issuance.icc_algorithm.map(IccAlgorithm::as_sql))
                    .bind(&c.issuance.pin_offset)
                    .bind(c.issuance.insurance_category.map(InsuranceCategory::as_sql))
                    .fetch_one(&self.write)
                    .await?;
                    Ok(CardId(id))
                }

                async fn card_by_pan(&self, pan: &Pan) -> Result<Option<Card>, StoreError> {
                    let hash = self.pan.lookup_hash(pan);
                    let row = sqlx::query(&format!("SELECT {CARD_COLUMNS} FROM card WHERE pan_hash = $1"))
                        .bind(hash.to_vec())
                        .fetch_optional(&self.read)
                        .await?;
                    row.as_ref().map(card).transpose()
                }

                async fn card_pan(&self, card_id: CardId) -> Result<Pan, StoreError> {
                    let sealed: Vec<u8> = sqlx::query_scalar("SELECT pan_ciphertext FROM card WHERE card_id = $1")
                        .bind(card_id.0)
                        .fetch_optional(&self.read)
                        .await?
                        .ok_or(StoreError::NotFound("card"))?;
                    Ok(self.pan.open(&sealed)?)
                }

                async fn set_card_status(&self, card_id: CardId, status: CardStatus, reason: Option<&str>, at_us: i64) -> Result<(), StoreError> {
                    let _gate = self.write_gate().await;
                    let done = sqlx::query("UPDATE card SET status = $1, status_reason = $2, status_changed_at_us = $3 WHERE card_id = $4")
                        .bind(status.as_sql())
                        .bind(reason)
                        .bind(at_us)
                        .bind(card_id.0)
                        .execute(&self.write)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound("card"));
                    }
                    Ok(())
                }

                async fn hot_list(&self) -> Result<Vec<Card>, StoreError> {
                    let rows = sqlx::query(&format!(
                        "SELECT {CARD_COLUMNS} FROM card WHERE status IN ('lost', 'stolen', 'blocked') ORDER BY card_id"
                    ))
                    .fetch_all(&self.read)
                    .await?;
                    rows.iter().map(card).collect()
                }

                async fn card_directory_page(&self, after: Option<CardId>, n: u32) -> Result<Vec<DirectoryCard>, StoreError> {
                    let rows = sqlx::query(&format!(
                        "SELECT {CARD_COLUMNS}, pan_ciphertext FROM card WHERE card_id > $1 ORDER BY card_id LIMIT $2"
                    ))
                    .bind(after.map_or(i64::MIN, |c| c.0))
                    .bind(limit(n))
                    .fetch_all(&self.read)
                    .await?;
                    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                        return Ok(Vec::new());
                    };
                    let (first, last): (i64, i64) = (first.try_get("card_id")?, last.try_get("card_id")?);
                    let accounts = sqlx::query(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM account WHERE card_id >= $1 AND card_id <= $2 ORDER BY card_id, account_id"
                    ))
                    .bind(first)
                    .bind(last)
                    .fetch_all(&self.read)
                    .await?;
                    let mut by_card: std::collections::HashMap<CardId, Vec<Account>> = std::collections::HashMap::new();
                    for row in &accounts {
                        let a = account(row)?;
                        if let Some(c) = a.card_id {
                            by_card.entry(c).or_default().push(a);
                        }
                    }
                    rows.iter()
                        .map(|row| {
                            let card = card(row)?;
                            let sealed: Vec<u8> = row.try_get("pan_ciphertext")?;
                            let pan = self.pan.open(&sealed)?;
                            let accounts = by_card.remove(&card.card_id).unwrap_or_default();
                            Ok(DirectoryCard { card, pan, accounts })
                        })
                        .collect()
                }

                async fn open_account(&self, a: &NewAccount, at_us: i64) -> Result<AccountId, StoreError> {
                    let _gate = self.write_gate().await;
                    let mut tx = self.begin_write().await?;
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO account (institution_id, card_id, kind, balance_fen, held_fen, created_at_us) \
                         VALUES ($1, $2, $3, $4, 0, $5) RETURNING account_id",
                    )
                    .bind(a.institution.as_str())
                    .bind(a.card_id.map(|c| c.0))
                    .bind(a.kind.as_sql())
                    .bind(a.opening_balance.get())
                    .bind(at_us)
                    .fetch_one(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO account_movement (account_id, kind, amount_fen, balance_after_fen, held_after_fen, at_us) \
                         VALUES ($1, 'opening', $2, $2, 0, $3)",
                    )
                    .bind(id)
                    .bind(a.opening_balance.get())
                    .bind(at_us)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(AccountId(id))
                }

                async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
                    let row = sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE account_id = $1"))
                        .bind(id.0)
                        .fetch_optional(&self.read)
                        .await?;
                    row.as_ref().map(account).transpose()
                }

                async fn accounts_for_card(&self, card_id: CardId) -> Result<Vec<Account>, StoreError> {
                    let rows = sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE card_id = $1 ORDER BY account_id"))
                        .bind(card_id.0)
                        .fetch_all(&self.read)
                        .await?;
                    rows.iter().map(account).collect()
                }

                async fn journal_balance(&self, id: AccountId) -> Result<i64, StoreError> {
                    Ok(sqlx::query_scalar(
                        "SELECT CAST(COALESCE(SUM(CASE kind WHEN 'opening' THEN amount_fen WHEN 'credit' THEN amount_fen \
                         WHEN 'debit' THEN -amount_fen WHEN 'capture' THEN -amount_fen ELSE 0 END), 0) AS BIGINT) \
                         FROM account_movement WHERE account_id = $1",
                    )
                    .bind(id.0)
                    .fetch_one(&self.read)
                    .await?)
                }

                async fn hold(&self, id: HoldId) -> Result<Option<Hold>, StoreError> {
                    let row = sqlx::query(&format!("SELECT {HOLD_COLUMNS} FROM hold WHERE hold_id = $1"))
                        .bind(id.0)
                        .fetch_optional(&self.read)
                        .await?;
                    row.as_ref().map(hold).transpose()
                }

                async fn expired_holds(&self, now_us: i64, n: u32) -> Result<Vec<Hold>, StoreError> {
                    let rows = sqlx::query(&format!(
                        "SELECT {HOLD_COLUMNS} FROM hold WHERE state = 'pending' AND expires_at_us <= $1 ORDER BY expires_at_us LIMIT $2"
                    ))
                    .bind(now_us)
                    .bind(limit(n))
                    .fetch_all(&self.read)
                    .await?;
                    rows.iter().map(hold).collect()
                }

                async fn find_duplicate(&self, k: &DuplicateKey) -> Result<Option<TransactionId>, StoreError> {
                    let id: Option<uuid::Uuid> = sqlx::query_scalar(
                        "SELECT transaction_id FROM duplicate_key WHERE terminal_id = $1 AND stan = $2 AND rrn = $3 \
                         AND transmission_at = $4 AND message_class = $5",
                    )
                    .bind(k.terminal_id.as_str())
                    .bind(k.stan.to_string())
                    .bind(k.rrn.as_str())
                    .bind(k.transmission_at.as_str())
                    .bind(&k.message_class)
                    .fetch_optional(&self.read)
                    .await?;
                    Ok(id.map(TransactionId))
                }

                async fn commit_decisions(&self, batch: Vec<Decision>, now_us: i64) -> BatchOutcome {
                    if batch.len() > DECISIONS_PER_BATCH_MAX {
                        let err = DecisionError::Invalid(format!("batch above {DECISIONS_PER_BATCH_MAX} decisions"));
                        return BatchOutcome { results: vec![Err(err); batch.len()], db_transactions: 0 };
                    }
                    self.group_commit(batch, now_us).await
                }

                async fn transactions_by_rrn(&self, rrn: &Rrn) -> Result<Vec<StoredTransaction>, StoreError> {
                    let rows = sqlx::query(&format!("SELECT {TXN_COLUMNS} FROM txn WHERE rrn = $1 ORDER BY decided_at_us, transaction_id"))
                        .bind(rrn.as_str())
                        .fetch_all(&self.read)
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        out.push(self.with_legs(row).await?);
                    }
                    Ok(out)
                }

                async fn transaction(&self, id: TransactionId) -> Result<Option<StoredTransaction>, StoreError> {
                    let row = sqlx::query(&format!("SELECT {TXN_COLUMNS} FROM txn WHERE transaction_id = $1"))
                        .bind(id.0)
                        .fetch_optional(&self.read)
                        .await?;
                    match row {
                        Some(row) => Ok(Some(self.with_legs(&row).await?)),
                        None => Ok(None),
                    }
                }

                async fn purge_duplicate_keys(&self, older_than_us: i64) -> Result<u64, StoreError> {
                    let _gate = self.write_gate().await;
                    let done = sqlx::query("DELETE FROM duplicate_key WHERE created_at_us < $1")
                        .bind(older_than_us)
                        .execute(&self.write)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn due_reversals(&self, now_us: i64, n: u32) -> Result<Vec<PendingReversal>, StoreError> {
                    let rows = sqlx::query(&format!(
                        "SELECT {REVERSAL_COLUMNS} FROM reversal_queue AS q WHERE q.state = 'pending' AND q.next_attempt_at_us <= $1 \
                         AND NOT {HELD_BY_ADVICE} ORDER BY q.next_attempt_at_us, q.created_at_us LIMIT $2"
                    ))
                    .bind(now_us)
                    .bind(limit(n))
                    .fetch_all(&self.read)
                    .await?;
                    rows.iter().map(reversal).collect()
                }

                async fn record_reversal_attempt(&self, id: ReversalId, next_attempt_at_us: i64, rc: Option<ResponseCode>) -> Result<(), StoreError> {
                    self.queue_attempt(REVERSAL_QUEUE, id.0, next_attempt_at_us, rc).await
                }

                async fn ack_reversal(&self, id: ReversalId, rc: ResponseCode, at_us: i64) -> Result<(), StoreError> {
                    self.queue_ack(REVERSAL_QUEUE, id.0, rc, at_us).await
                }

                async fn due_advices(&self, now_us: i64, n: u32) -> Result<Vec<PendingAdvice>, StoreError> {
                    let rows = sqlx::query(&format!(
                        "SELECT {ADVICE_COLUMNS} FROM advice_queue WHERE state = 'pending' AND next_attempt_at_us <= $1 \
                         ORDER BY next_attempt_at_us, created_at_us LIMIT $2"
                    ))
                    .bind(now_us)
                    .bind(limit(n))
                    .fetch_all(&self.read)
                    .await?;
                    rows.iter().map(advice).collect()
                }

                async fn record_advice_attempt(&self, id: AdviceId, next_attempt_at_us: i64, rc: Option<ResponseCode>) -> Result<(), StoreError> {
                    self.queue_attempt(ADVICE_QUEUE, id.0, next_attempt_at_us, rc).await
                }

                async fn ack_advice(&self, id: AdviceId, rc: ResponseCode, at_us: i64) -> Result<(), StoreError> {
                    self.queue_ack(ADVICE_QUEUE, id.0, rc, at_us).await
                }

                async fn stand_in_total_fen(&self, card_id: CardId, bank: &InstitutionId, since_us: i64) -> Result<i64, StoreError> {
                    Ok(sqlx::query_scalar(
                        "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM advice_queue \
                         WHERE card_id = $1 AND destination_institution_id = $2 AND created_at_us >= $3",
                    )
                    .bind(card_id.0)
                    .bind(bank.as_str())
                    .bind(since_us)
                    .fetch_one(&self.read)
                    .await?)
                }

                async fn store_and_forward_backlog(&self, oldest_max: u32) -> Result<SafBacklog, StoreError> {
                    let rows = sqlx::query(&format!(
                        "SELECT 'reversal' AS kind, q.destination_institution_id AS destination, CAST(COUNT(*) AS BIGINT) AS pending, \
                         CAST(COALESCE(SUM(CASE WHEN {HELD_BY_ADVICE} THEN 1 ELSE 0 END), 0) AS BIGINT) AS held, \
                         CAST(MIN(q.created_at_us) AS BIGINT) AS oldest, CAST(MAX(q.attempts) AS BIGINT) AS attempts_max \
                         FROM reversal_queue AS q WHERE q.state = 'pending' GROUP BY q.destination_institution_id \
                         UNION ALL \
                         SELECT 'advice', a.destination_institution_id, CAST(COUNT(*) AS BIGINT), CAST(0 AS BIGINT), \
                         CAST(MIN(a.created_at_us) AS BIGINT), CAST(MAX(a.attempts) AS BIGINT) \
                         FROM advice_queue AS a WHERE a.state = 'pending' GROUP BY a.destination_institution_id"
                    ))
                    .fetch_all(&self.read)
                    .await?;
                    let count = |row: &DbRow, column: &'static str| -> Result<u64, StoreError> {
                        u64::try_from(row.try_get::<i64, _>(column)?).map_err(|_| corrupt(column))
                    };
                    let mut queues = Vec::with_capacity(rows.len());
                    for row in &rows {
                        queues.push(SafQueue {
                            kind: SafKind::from_sql(row.try_get("kind")?).ok_or(corrupt("kind"))?,
                            destination: parse("destination_institution_id", InstitutionId::parse(row.try_get("destination")?))?,
                            pending: count(row, "pending")?,
                            held: count(row, "held")?,
                            oldest_created_at_us: row.try_get("oldest")?,
                            attempts_max: row.try_get("attempts_max")?,
                        });
                    }
                    queues.sort_by(|a, b| (a.kind, a.destination.as_str()).cmp(&(b.kind, b.destination.as_str())));
                    if oldest_max == 0 {
                        return Ok(SafBacklog { queues, oldest: Vec::new() });
                    }
                    let rows = sqlx::query(&format!(
                        "SELECT kind, id, transaction_id, destination, amount_fen, attempts, last_response_code, held, created_at_us, next_attempt_at_us FROM ( \
                         SELECT 'reversal' AS kind, q.reversal_id AS id, q.original_transaction_id AS transaction_id, \
                         q.destination_institution_id AS destination, q.amount_fen AS amount_fen, CAST(q.attempts AS BIGINT) AS attempts, \
                         q.last_response_code AS last_response_code, CAST(CASE WHEN {HELD_BY_ADVICE} THEN 1 ELSE 0 END AS BIGINT) AS held, \
                         q.created_at_us AS created_at_us, q.next_attempt_at_us AS next_attempt_at_us \
                         FROM reversal_queue AS q WHERE q.state = 'pending' \
                         UNION ALL \
                         SELECT 'advice', a.advice_id, a.transaction_id, a.destination_institution_id, a.amount_fen, CAST(a.attempts AS BIGINT), \
                         a.last_response_code, CAST(0 AS BIGINT), a.created_at_us, a.next_attempt_at_us \
                         FROM advice_queue AS a WHERE a.state = 'pending') AS p \
                         ORDER BY created_at_us, id LIMIT $1"
                    ))
                    .bind(limit(oldest_max))
                    .fetch_all(&self.read)
                    .await?;
                    let mut oldest = Vec::with_capacity(rows.len());
                    for row in &rows {
                        oldest.push(SafItem {
                            kind: SafKind::from_sql(row.try_get("kind")?).ok_or(corrupt("kind"))?,
                            id: row.try_get("id")?,
                            transaction_id: TransactionId(row.try_get("transaction_id")?),
                            destination: parse("destination_institution_id", InstitutionId::parse(row.try_get("destination")?))?,
                            amount_fen: row.try_get("amount_fen")?,
                            attempts: row.try_get("attempts")?,
                            last_response_code: row.try_get("last_response_code")?,
                            held: row.try_get::<i64, _>("held")? != 0,
                            created_at_us: row.try_get("created_at_us")?,
                            next_attempt_at_us: row.try_get("next_attempt_at_us")?,
                        });
                    }
                    Ok(SafBacklog { queues, oldest })
                }

                async fn acquirer_totals(&self, acquirer: &InstitutionId, from_us: i64, to_us: i64) -> Result<ReconciliationTotals, StoreError> {
                    let rows = sqlx::query(sql::ACQUIRER_TOTALS)
                    .bind(acquirer.as_str())
                    .bind(from_us)
                    .bind(to_us)
                    .fetch_all(&self.read)
                    .await?;
                    let mut totals = ReconciliationTotals::default();
                    for row in &rows {
                        let kind = TransactionKind::from_sql(row.try_get("kind")?).ok_or(corrupt("txn.kind"))?;
                        let original = match row.try_get::<Option<String>, _>("original_kind")? {
                            Some(k) => Some(TransactionKind::from_sql(&k).ok_or(corrupt("txn.kind"))?),
                            None => None,
                        };
                        let n: i64 = row.try_get("n")?;
                        totals.add(kind, original, u64::try_from(n).unwrap_or(0), row.try_get("fen")?);
                    }
                    Ok(totals)
                }

                async fn outbox_after(&self, after_seq: i64, n: u32) -> Result<Vec<OutboxRecord>, StoreError> {
                    let rows = sqlx::query(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE outbox_seq > $1 ORDER BY outbox_seq LIMIT $2"))
                        .bind(after_seq)
                        .bind(limit(n))
                        .fetch_all(&self.read)
                        .await?;
                    rows.iter().map(outbox).collect()
                }

                async fn unrelayed_outbox(&self, n: u32) -> Result<Vec<OutboxRecord>, StoreError> {
                    let rows = sqlx::query(&format!(
                        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE relayed_at_us IS NULL ORDER BY outbox_seq LIMIT $1"
                    ))
                    .bind(limit(n))
                    .fetch_all(&self.read)
                    .await?;
                    rows.iter().map(outbox).collect()
                }

                async fn mark_outbox_relayed(&self, seqs: &[i64], at_us: i64) -> Result<u64, StoreError> {
                    let _gate = self.write_gate().await;
                    if seqs.is_empty() {
                        return Ok(0);
                    }
                    let done = sqlx::query(Self::DIALECT.mark_relayed)
                        .bind(at_us)
                        .bind(serde_json::Value::from(seqs.to_vec()).to_string())
                        .execute(&self.write)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn append_audit(&self, e: &AuditEntry) -> Result<AuditRecord, StoreError> {
                    let _gate = self.write_gate().await;
                    let mut tx = self.begin_write().await?;
                    let head = sqlx::query(&format!("SELECT last_seq, last_hash FROM audit_head WHERE id = 1{}", Self::DIALECT.lock))
                        .fetch_one(&mut *tx)
                        .await?;
                    let last_seq: i64 = head.try_get("last_seq")?;
                    let prev = hash32("audit_head.last_hash", head.try_get("last_hash")?)?;
                    let audit_seq = last_seq + 1;
                    let entry_hash = audit::entry_hash(&prev, audit_seq, e);
                    sqlx::query(
                        "INSERT INTO audit_log (audit_seq, at_us, actor, action, subject, detail, prev_hash, entry_hash) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(audit_seq)
                    .bind(e.at_us)
                    .bind(&e.actor)
                    .bind(&e.action)
                    .bind(&e.subject)
                    .bind(&e.detail)
                    .bind(prev.to_vec())
                    .bind(entry_hash.to_vec())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE audit_head SET last_seq = $1, last_hash = $2 WHERE id = 1")
                        .bind(audit_seq)
                        .bind(entry_hash.to_vec())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(AuditRecord { audit_seq, entry_hash })
                }

                async fn verify_audit_chain(&self) -> Result<u64, StoreError> {
                    const PAGE: i64 = 10_000;
                    let mut prev = audit::GENESIS_HASH;
                    let mut expected_seq = 1i64;
                    loop {
                        let rows = sqlx::query(
                            "SELECT audit_seq, at_us, actor, action, subject, detail, prev_hash, entry_hash FROM audit_log \
                             WHERE audit_seq >= $1 ORDER BY audit_seq LIMIT $2",
                        )
                        .bind(expected_seq)
                        .bind(PAGE)
                        .fetch_all(&self.read)
                        .await?;
                        if rows.is_empty() {
                            // The head names the last entry appended: a shorter chain lost its tail.
                            let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM audit_head WHERE id = 1")
                                .fetch_one(&self.read)
                                .await?;
                            if last_seq != expected_seq - 1 {
                                return Err(StoreError::AuditChainBroken { audit_seq: expected_seq });
                            }
                            return Ok(u64::try_from(expected_seq - 1).unwrap_or(0));
                        }
                        for row in &rows {
                            let audit_seq: i64 = row.try_get("audit_seq")?;
                            let entry = AuditEntry {
                                at_us: row.try_get("at_us")?,
                                actor: row.try_get("actor")?,
                                action: row.try_get("action")?,
                                subject: row.try_get("subject")?,
                                detail: row.try_get("detail")?,
                            };
                            let stored_prev = hash32("audit_log.prev_hash", row.try_get("prev_hash")?)?;
                            let stored = hash32("audit_log.entry_hash", row.try_get("entry_hash")?)?;
                            if audit_seq != expected_seq || stored_prev != prev || audit::entry_hash(&prev, audit_seq, &entry) != stored {
                                return Err(StoreError::AuditChainBroken { audit_seq: expected_seq });
                            }
                            prev = stored;
                            expected_seq += 1;
                        }
                    }
                }
            }
        }
    };
}

pub(crate) use impl_store;
