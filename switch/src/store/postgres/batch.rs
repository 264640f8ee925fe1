//! PostgreSQL's group commit: the batch's rows are loaded and locked (`FOR UPDATE`, in id
//! order, so concurrent switch nodes cannot deadlock), planned in memory ([`plan`]), then
//! written as `UNNEST` of typed arrays ([`super::unnest`]), in one transaction per batch.
//!
//! A batch that fails is told apart by where: before its COMMIT was sent (or with the server's
//! answer to it) it was rolled back, and its decisions are `Unavailable`; with no answer to
//! the COMMIT (the connection died) its outcome is unknown, and it is handed back with its
//! transaction id and what each decision gets if it did commit ([`UnknownCommit`]), for the
//! store to ask the database (`super::failover::resolve_commits`).

use super::json_rows::hex;
use super::{card_risk, session, unnest, PostgresStore};
use crate::store::model::TransactionId;
use crate::store::model::{AccountId, BatchOutcome, CardId, Committed, Decision, DuplicateKey};
use crate::store::plan::{self, AccountRow, BatchKeys, Loaded, RefundRoom};
use crate::store::sql::rows::{corrupt, hold_row, parse};
use crate::store::{DecisionError, StoreError};
use schemas::domain::{InstitutionId, Rrn, Stan, TerminalId, TransmissionDateTime};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

type Tx<'c> = sqlx::Transaction<'c, Postgres>;

// `= ANY(ARRAY(...))` is an index scan over the ids whatever the table statistics say.
const LOAD_ACCOUNTS: &str = "SELECT account_id, balance_fen, held_fen FROM account WHERE account_id = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb))) ORDER BY account_id FOR UPDATE";
const LOAD_HOLDS: &str = "SELECT hold_id, account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, expires_at_us, closed_at_us FROM hold WHERE hold_id = ANY(ARRAY(SELECT value::uuid FROM jsonb_array_elements_text($1::jsonb))) ORDER BY hold_id FOR UPDATE";
// One index probe per key, whatever the statistics say: the LIMIT keeps the planner from
// flattening the subquery into a join, which on a young, fast-growing table it planned as a
// sequential scan (the probe time grew with the table, 2 ms to 15 ms per 512 keys).
const LOAD_DUPLICATE_KEYS: &str = "SELECT d.acquirer, d.terminal_id, d.stan, d.rrn, d.transmission_at, d.message_class, d.transaction_id FROM jsonb_array_elements($1::jsonb) AS j CROSS JOIN LATERAL (SELECT k.acquirer, k.terminal_id, k.stan, k.rrn, k.transmission_at, k.message_class, k.transaction_id FROM duplicate_key AS k WHERE k.terminal_id = j->>0 AND k.stan = j->>1 AND k.rrn = j->>2 AND k.transmission_at = j->>3 AND k.message_class = j->>4 AND k.acquirer = j->>5 LIMIT 1) AS d";
// Locked after the accounts, in card order: every batch takes its locks in the same order.
// Every card a decision names is locked, not only those whose ATC moves: the batch extends the
// card's chain of transactions from the head it reads here (`plan::card_chain`), and a second
// group commit (or node) on the card must wait and read the head this one writes, or the chain
// would fork.
const LOAD_CARDS: &str = "SELECT card_id, atc_max, pin_tries_failed, last_txn_id FROM card WHERE card_id = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb))) ORDER BY card_id FOR UPDATE";
// Typed arrays, not a JSON array: the planner estimates a JSON function at 100 rows, and on a
// table of a few thousand cards (the demo's 6,000) it hash-joined that against a sequential
// scan of every card, once per group commit (pg_stat_user_tables: one seq scan of `card` per
// batch). An array's UNNEST is estimated from the array, so each card is one primary-key probe.
// One row version per card per batch: the ATC and the chain's head in one UPDATE.
const UPDATE_CARDS: &str = "UPDATE card SET atc_max = COALESCE(v.atc, card.atc_max), \
    last_txn_id = COALESCE(v.last, card.last_txn_id) FROM UNNEST($1::bigint[], \
    $2::integer[], $3::uuid[]) AS v(id, atc, last) WHERE card.card_id = v.id";

/// Loads and locks the rows a batch touches.
async fn load(tx: &mut Tx<'_>, keys: &BatchKeys) -> Result<Loaded, sqlx::Error> {
    let mut loaded = Loaded::default();
    let mut account_ids = keys.accounts.clone();
    if !keys.holds.is_empty() {
        let ids: Vec<String> = keys.holds.iter().map(|h| hex(h.0)).collect();
        let rows = sqlx::query(LOAD_HOLDS)
            .bind(serde_json::Value::from(ids).to_string())
            .fetch_all(&mut **tx)
            .await?;
        for row in &rows {
            let (id, h) = hold_row(row).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            account_ids.push(h.account_id);
            loaded.holds.insert(id, h);
        }
    }
    account_ids.sort();
    account_ids.dedup();
    if !account_ids.is_empty() {
        let ids: Vec<i64> = account_ids.iter().map(|a| a.0).collect();
        let rows = sqlx::query(LOAD_ACCOUNTS)
            .bind(serde_json::Value::from(ids).to_string())
            .fetch_all(&mut **tx)
            .await?;
        for row in &rows {
            loaded.accounts.insert(
                AccountId(row.try_get("account_id")?),
                AccountRow {
                    balance_fen: row.try_get("balance_fen")?,
                    held_fen: row.try_get("held_fen")?,
                },
            );
        }
    }
    if !keys.duplicate_keys.is_empty() {
        load_duplicate_keys(tx, &keys.duplicate_keys, &mut loaded).await?;
    }
    if !keys.cards.is_empty() {
        load_cards(tx, &keys.cards, &mut loaded).await?;
    }
    let originals = keys.originals();
    if !originals.is_empty() {
        let ids: Vec<uuid::Uuid> = originals.iter().map(|t| t.0).collect();
        sqlx::query(LOCK_ORIGINALS)
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?;
    }
    if !keys.refunded_originals.is_empty() {
        load_refund_rooms(tx, &keys.refunded_originals, &mut loaded).await?;
    }
    if !keys.reversed_originals.is_empty() {
        load_reversals(tx, &keys.reversed_originals, &mut loaded).await?;
    }
    if !keys.card_days.is_empty() {
        card_risk::load_card_days(tx, &keys.card_days, &mut loaded).await?;
    }
    Ok(loaded)
}

/// The transactions already holding one of the batch's duplicate-detection keys.
async fn load_duplicate_keys(
    tx: &mut Tx<'_>,
    keys: &[DuplicateKey],
    loaded: &mut Loaded,
) -> Result<(), sqlx::Error> {
    let rows: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            serde_json::json!([
                k.terminal_id.as_str(),
                k.stan.to_string(),
                k.rrn.as_str(),
                k.transmission_at.as_str(),
                k.message_class,
                k.acquirer.as_str(),
            ])
        })
        .collect();
    let found = sqlx::query(LOAD_DUPLICATE_KEYS)
        .bind(serde_json::Value::from(rows).to_string())
        .fetch_all(&mut **tx)
        .await?;
    for row in &found {
        let key = duplicate_key(row).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        loaded
            .duplicate_keys
            .insert(key, TransactionId(row.try_get("transaction_id")?));
    }
    Ok(())
}

// The refunded and reversed originals, locked last, in id order (every batch takes its locks
// in the same order): a second node's refund of the same original waits here, then sums the
// refunds this one committed; its reversal waits, then finds this one's.
const LOCK_ORIGINALS: &str = "SELECT transaction_id FROM txn WHERE transaction_id = \
    ANY($1::uuid[]) ORDER BY transaction_id FOR UPDATE";
// One probe of the partial unique index `txn_one_approved_reversal` per original.
const APPROVED_REVERSALS: &str = "SELECT original_transaction_id, transaction_id FROM txn \
    WHERE original_transaction_id = ANY($1::uuid[]) AND kind = 'reversal' \
    AND response_code = '00'";
// Refunds carry their original's RRN: one index probe per original.
const REFUND_ROOMS: &str =
    "SELECT o.transaction_id, o.amount_fen, (SELECT COALESCE(SUM(r.amount_fen), 0)::bigint \
    FROM txn AS r WHERE r.rrn = o.rrn AND r.original_transaction_id = o.transaction_id \
    AND r.kind = 'refund' AND r.response_code = '00' AND NOT EXISTS (SELECT 1 FROM txn AS v \
    WHERE v.rrn = r.rrn AND v.kind = 'reversal' AND v.response_code = '00' \
    AND v.original_transaction_id = r.transaction_id)) AS refunded_fen \
    FROM txn AS o WHERE o.transaction_id = ANY($1::uuid[])";

/// Each refunded original's amount with its approved, unreversed refunds so far (the refund
/// cap of `plan::refund_cap`), the originals locked before.
async fn load_refund_rooms(
    tx: &mut Tx<'_>,
    originals: &[TransactionId],
    loaded: &mut Loaded,
) -> Result<(), sqlx::Error> {
    let ids: Vec<uuid::Uuid> = originals.iter().map(|t| t.0).collect();
    let rows = sqlx::query(REFUND_ROOMS)
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
    for row in &rows {
        loaded.refunds.insert(
            TransactionId(row.try_get("transaction_id")?),
            RefundRoom {
                original_fen: row.try_get("amount_fen")?,
                refunded_fen: row.try_get("refunded_fen")?,
            },
        );
    }
    Ok(())
}

/// The approved reversal each reversed original already has (`plan::reversed_once`), the
/// originals locked before: a reversal another node committed meanwhile is seen here.
async fn load_reversals(
    tx: &mut Tx<'_>,
    originals: &[TransactionId],
    loaded: &mut Loaded,
) -> Result<(), sqlx::Error> {
    let ids: Vec<uuid::Uuid> = originals.iter().map(|t| t.0).collect();
    let rows = sqlx::query(APPROVED_REVERSALS)
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
    for row in &rows {
        loaded.reversals.insert(
            TransactionId(row.try_get("original_transaction_id")?),
            TransactionId(row.try_get("transaction_id")?),
        );
    }
    Ok(())
}

/// A stored duplicate-detection key.
fn duplicate_key(row: &PgRow) -> Result<DuplicateKey, StoreError> {
    Ok(DuplicateKey {
        acquirer: parse(
            "duplicate_key.acquirer",
            InstitutionId::parse(row.try_get("acquirer")?),
        )?,
        terminal_id: parse(
            "duplicate_key.terminal_id",
            TerminalId::parse(row.try_get("terminal_id")?),
        )?,
        stan: parse("duplicate_key.stan", Stan::parse(row.try_get("stan")?))?,
        rrn: parse("duplicate_key.rrn", Rrn::parse(row.try_get("rrn")?))?,
        transmission_at: parse(
            "duplicate_key.transmission_at",
            TransmissionDateTime::parse(row.try_get("transmission_at")?),
        )?,
        message_class: row.try_get("message_class")?,
    })
}

/// The highest verified ATC of each card that has one, each card's wrong-PIN count and its
/// newest transaction (`plan::card_chain`), locked in card order.
async fn load_cards(
    tx: &mut Tx<'_>,
    cards: &[CardId],
    loaded: &mut Loaded,
) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = cards.iter().map(|c| c.0).collect();
    let rows = sqlx::query(LOAD_CARDS)
        .bind(serde_json::Value::from(ids).to_string())
        .fetch_all(&mut **tx)
        .await?;
    for row in &rows {
        let card = CardId(row.try_get("card_id")?);
        let head: Option<uuid::Uuid> = row.try_get("last_txn_id")?;
        loaded.card_heads.insert(card, head.map(TransactionId));
        if let Some(atc) = row.try_get::<Option<i32>, _>("atc_max")? {
            let atc = u16::try_from(atc)
                .map_err(|_| sqlx::Error::Decode(Box::new(corrupt("card.atc_max"))))?;
            loaded.card_atcs.insert(card, atc);
        }
        let tries = u32::try_from(row.try_get::<i32, _>("pin_tries_failed")?)
            .map_err(|_| sqlx::Error::Decode(Box::new(corrupt("card.pin_tries_failed"))))?;
        loaded.card_pin_tries.insert(card, tries);
    }
    Ok(())
}

/// Why a batch did not commit.
enum Failed {
    /// Before COMMIT was sent, or the database's own answer to it: rolled back for sure (a
    /// transaction is committed only by a COMMIT the server completes).
    RolledBack(sqlx::Error),
    /// COMMIT was sent and no answer came back (the connection died, a timeout, an I/O error):
    /// the server may have committed or not.
    Unknown(sqlx::Error, UnknownCommit),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Failed::RolledBack(e)
    }
}

/// A COMMIT whose answer was lost, to be resolved on the database
/// ([`super::failover::resolve_commits`]).
#[derive(Debug, Clone)]
pub(super) struct UnknownCommit {
    /// The decisions of the batch it covers (their positions in the group commit).
    pub positions: Vec<usize>,
    /// The database transaction (`txid_current()`); `None` when the batch wrote no row.
    pub xid: Option<i64>,
    /// What each of those decisions gets if the transaction did commit.
    pub planned: Vec<Result<Committed, DecisionError>>,
}

/// One database transaction for the whole batch, on a connection of its own that is closed,
/// not pooled, when the batch lost it (an I/O error, or no answer in time: it may be dead, or
/// still carrying what was sent).
async fn try_batch(
    store: &PostgresStore,
    decisions: &[Decision],
    now_us: i64,
) -> Result<Vec<Result<Committed, DecisionError>>, Failed> {
    let mut conn = store.write.acquire().await?;
    let result = batch_on(&mut conn, decisions, now_us).await;
    if let Err(Failed::RolledBack(e) | Failed::Unknown(e, _)) = &result {
        if !session::reusable_after(e) {
            conn.close_on_drop();
        }
    }
    result
}

/// The batch's transaction on `conn`: its work before COMMIT bounded by
/// [`session::GROUP_COMMIT_WORK_MAX_MS`], the wait for COMMIT's answer by
/// [`session::COMMIT_ANSWER_MAX_MS`] (a partition drops packets without a word: without these
/// the batch, and every request behind it, waits until the kernel gives up on the connection).
async fn batch_on(
    conn: &mut sqlx::PgConnection,
    decisions: &[Decision],
    now_us: i64,
) -> Result<Vec<Result<Committed, DecisionError>>, Failed> {
    use sqlx::Connection as _;
    let (pre, keys) = plan::prepare(decisions);
    let work = async {
        let mut tx = conn.begin().await?;
        let loaded = load(&mut tx, &keys).await?;
        let plan = plan::plan(decisions, pre, loaded, now_us);
        let cards = plan.card_rows();
        if !cards.is_empty() {
            // Before the batch's writes, which take the outbox sequence row last: that lock
            // is then held for as short a time as possible.
            sqlx::query(UPDATE_CARDS)
                .bind(cards.iter().map(|c| c.card_id.0).collect::<Vec<i64>>())
                .bind(
                    cards
                        .iter()
                        .map(|c| c.atc_max.map(i32::from))
                        .collect::<Vec<Option<i32>>>(),
                )
                .bind(
                    cards
                        .iter()
                        .map(|c| c.last_txn_id.map(|t| t.0))
                        .collect::<Vec<Option<uuid::Uuid>>>(),
                )
                .execute(&mut *tx)
                .await?;
        }
        card_risk::write(&mut tx, &plan).await?;
        let written = unnest::write_batch(&mut tx, decisions, &plan, now_us).await?;
        let planned = plan::committed(plan, decisions, written.seqs);
        Ok((tx, planned, written.xid))
    };
    // Given up before COMMIT was sent: the server cannot commit it (it rolls back when the
    // session ends, `session::IDLE_IN_TRANSACTION_MAX_MS` at the latest).
    let (tx, planned, xid) = session::within(
        session::GROUP_COMMIT_WORK_MAX_MS,
        "group commit before COMMIT",
        work,
    )
    .await?;
    match session::within(
        session::COMMIT_ANSWER_MAX_MS,
        "the answer to COMMIT",
        tx.commit(),
    )
    .await
    {
        Ok(()) => Ok(planned),
        // The server answered the COMMIT (a deferred constraint, a serialization failure): it
        // rolled back.
        Err(e @ sqlx::Error::Database(_)) => Err(Failed::RolledBack(e)),
        // No answer to the COMMIT (the connection died, or none came in time): the server may
        // have committed it or not. The PostgreSQL manual (9.26, System Information Functions)
        // offers `pg_xact_status` (`txid_status` before 13) for exactly this: applications use
        // it "to determine whether their transaction committed or aborted after the
        // application and database server become disconnected while a COMMIT is in
        // progress"; the transaction's id is read inside it (`txid_current()`), since the
        // server reports none on its own.
        Err(e) => Err(Failed::Unknown(
            e,
            UnknownCommit {
                positions: (0..decisions.len()).collect(),
                xid,
                planned,
            },
        )),
    }
}

/// What a group commit gives back: each decision's result, and the commits whose outcome the
/// connection took with it (their decisions' results are `OutcomeUnknown` until resolved).
pub(super) struct Outcome {
    pub batch: BatchOutcome,
    pub unknown: Vec<UnknownCommit>,
}

/// Commits a batch as one transaction; if the database refuses it for something the planner
/// could not see, each decision is retried alone so that only the offender fails.
pub(super) async fn group_commit(
    store: &PostgresStore,
    batch: &[Decision],
    now_us: i64,
) -> Outcome {
    match try_batch(store, batch, now_us).await {
        Ok(results) => Outcome {
            batch: BatchOutcome {
                results,
                db_transactions: 1,
            },
            unknown: Vec::new(),
        },
        // The connection died during COMMIT: every decision's outcome is unknown until the
        // store asks the database (`PostgresStore::group_commit`).
        Err(Failed::Unknown(e, unknown)) => Outcome {
            batch: BatchOutcome {
                results: vec![Err(DecisionError::OutcomeUnknown(e.to_string())); batch.len()],
                db_transactions: 1,
            },
            unknown: vec![unknown],
        },
        // Not an answer from the database (connection, I/O, pool timeout) before COMMIT:
        // nothing was committed, and retrying each decision would only multiply the wait.
        Err(Failed::RolledBack(e))
            if batch.len() == 1 || !matches!(e, sqlx::Error::Database(_)) =>
        {
            let err = plan::refused_alone(classify(&e), batch);
            Outcome {
                batch: BatchOutcome {
                    results: vec![Err(err); batch.len()],
                    db_transactions: 1,
                },
                unknown: Vec::new(),
            }
        }
        Err(Failed::RolledBack(e)) => {
            // Something the planner could not see (a foreign key, another node's
            // race) failed the batch: retry each decision alone so only the
            // offender fails.
            tracing::warn!(error = %e, batch = batch.len(), "group commit failed; retrying decisions one by one");
            let mut results = Vec::with_capacity(batch.len());
            let mut unknown = Vec::new();
            for (i, d) in batch.chunks(1).enumerate() {
                results.push(match try_batch(store, d, now_us).await {
                    Ok(mut r) => r
                        .pop()
                        .unwrap_or(Err(DecisionError::Unavailable("empty result".into()))),
                    Err(Failed::RolledBack(e)) => Err(plan::refused_alone(classify(&e), d)),
                    Err(Failed::Unknown(e, mut u)) => {
                        u.positions = vec![i];
                        unknown.push(u);
                        Err(DecisionError::OutcomeUnknown(e.to_string()))
                    }
                });
            }
            let db_transactions = 1 + u32::try_from(batch.len()).unwrap_or(u32::MAX);
            Outcome {
                batch: BatchOutcome {
                    results,
                    db_transactions,
                },
                unknown,
            }
        }
    }
}

/// Maps a batch-level database error to what each caller is told.
fn classify(e: &sqlx::Error) -> DecisionError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DataKeyPanProtector, PostgresConfig};
    use std::sync::Arc;

    /// The plan PostgreSQL picks for `statement` with these arrays bound, as text.
    async fn plan_of(store: &PostgresStore, statement: &str, ids: Vec<i64>) -> String {
        let n = ids.len();
        let rows = sqlx::query(&format!("EXPLAIN {statement}"))
            .bind(ids)
            .bind(vec![7i32; n])
            .bind(vec![uuid::Uuid::nil(); n])
            .fetch_all(&store.write)
            .await
            .expect("explain");
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).expect("plan line"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Needs PostgreSQL at 127.0.0.1:5432 (or SWITCH_TEST_PG_URL), as the store suite does.
    #[tokio::test]
    async fn a_batch_updates_card_rows_by_primary_key_not_by_scanning_every_card() {
        let url = std::env::var("SWITCH_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("plan_test_{}", std::process::id());
        let mut config = PostgresConfig::new(url.clone());
        config.schema = Some(schema.clone());
        let store = PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL at {url}: {e}"));
        // 5,000 cards, analysed (the demo's size): small enough that a join estimated at 100 rows
        // scans the table, as the JSON form of this statement did.
        sqlx::query(
            "INSERT INTO institution (institution_id, name, kind, created_at_us) \
             VALUES ('01020000', 'Bank', 'bank', 0)",
        )
        .execute(&store.write)
        .await
        .expect("issuer");
        sqlx::query(
            "INSERT INTO card (card_id, pan_hash, pan_ciphertext, pan_masked, \
             issuer_institution_id, expiry_yymm, status, status_changed_at_us, created_at_us) \
             SELECT g, sha256(g::text::bytea), '\\x00'::bytea, '622848******0000', '01020000', \
             '2912', 'active', 0, 0 FROM generate_series(1, 5000) AS g",
        )
        .execute(&store.write)
        .await
        .expect("cards");
        sqlx::query("ANALYZE card")
            .execute(&store.write)
            .await
            .expect("analyze");
        let plan = plan_of(&store, UPDATE_CARDS, vec![17, 4_242, 4_999]).await;
        store.close().await;
        PostgresStore::drop_schema(&url, &schema)
            .await
            .expect("drop schema");
        assert!(plan.contains("card_pkey"), "{plan}");
        assert!(!plan.contains("Seq Scan on card"), "{plan}");
    }
}
