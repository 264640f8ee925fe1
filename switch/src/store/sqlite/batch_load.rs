//! The first step of a SQLite group commit: the rows the batch touches, one indexed lookup per
//! key with a cached statement, for [`crate::store::plan`] to decide against. (SQLite has one
//! writer and the transaction is `IMMEDIATE`, so nothing needs locking row by row.)

use super::batch::{corrupt, uuid_blob, uuid_from};
use crate::store::model::DayUsage;
use crate::store::model::{AccountId, CardId, DuplicateKey, HoldId, HoldState, TransactionId};
use crate::store::plan::{AccountRow, BatchKeys, CardDay, HoldRow, Loaded, RefundRoom};
use rusqlite::{params, OptionalExtension, Transaction};

/// The rows the batch touches: holds first (they name more accounts), then accounts,
/// duplicate keys, cards (ATC, wrong-PIN count and newest transaction), card days, the refunded originals and the
/// reversed originals' approved reversals.
pub fn load(tx: &Transaction<'_>, keys: &BatchKeys) -> Result<Loaded, rusqlite::Error> {
    let mut loaded = Loaded::default();
    let mut account_ids = keys.accounts.clone();
    if !keys.holds.is_empty() {
        load_holds(tx, &keys.holds, &mut loaded, &mut account_ids)?;
    }
    account_ids.sort();
    account_ids.dedup();
    if !account_ids.is_empty() {
        load_accounts(tx, &account_ids, &mut loaded)?;
    }
    if !keys.duplicate_keys.is_empty() {
        load_duplicate_keys(tx, &keys.duplicate_keys, &mut loaded)?;
    }
    if !keys.cards.is_empty() {
        load_cards(tx, &keys.cards, &mut loaded)?;
    }
    if !keys.card_days.is_empty() {
        load_card_days(tx, &keys.card_days, &mut loaded)?;
    }
    if !keys.refunded_originals.is_empty() {
        load_refund_rooms(tx, &keys.refunded_originals, &mut loaded)?;
    }
    if !keys.reversed_originals.is_empty() {
        load_reversals(tx, &keys.reversed_originals, &mut loaded)?;
    }
    Ok(loaded)
}

/// The holds found, and their accounts added to `account_ids`.
fn load_holds(
    tx: &Transaction<'_>,
    holds: &[HoldId],
    loaded: &mut Loaded,
    account_ids: &mut Vec<AccountId>,
) -> Result<(), rusqlite::Error> {
    let mut q = tx.prepare_cached(
        "SELECT account_id, transaction_id, amount_fen, captured_fen, state, created_at_us, \
         expires_at_us, closed_at_us FROM hold WHERE hold_id = ?1",
    )?;
    for id in holds {
        let row = q
            .query_row([uuid_blob(&id.0)], |r| {
                let state: String = r.get(4)?;
                Ok(HoldRow {
                    account_id: AccountId(r.get(0)?),
                    transaction_id: TransactionId(uuid_from(
                        "hold.transaction_id",
                        &r.get::<_, Vec<u8>>(1)?,
                    )?),
                    amount_fen: r.get(2)?,
                    captured_fen: r.get(3)?,
                    state: HoldState::from_sql(&state)
                        .ok_or_else(|| corrupt("hold.state", state))?,
                    created_at_us: r.get(5)?,
                    expires_at_us: r.get(6)?,
                    closed_at_us: r.get(7)?,
                })
            })
            .optional()?;
        if let Some(h) = row {
            account_ids.push(h.account_id);
            loaded.holds.insert(*id, h);
        }
    }
    Ok(())
}

/// The balances of the accounts found (`ids` sorted and deduplicated).
fn load_accounts(
    tx: &Transaction<'_>,
    ids: &[AccountId],
    loaded: &mut Loaded,
) -> Result<(), rusqlite::Error> {
    let mut q =
        tx.prepare_cached("SELECT balance_fen, held_fen FROM account WHERE account_id = ?1")?;
    for id in ids {
        let row = q
            .query_row([id.0], |r| {
                Ok(AccountRow {
                    balance_fen: r.get(0)?,
                    held_fen: r.get(1)?,
                })
            })
            .optional()?;
        if let Some(a) = row {
            loaded.accounts.insert(*id, a);
        }
    }
    Ok(())
}

/// The transactions already holding one of the batch's duplicate-detection keys in the table
/// (the group commit passes only the keys its memory tier does not hold, see
/// [`super::key_tier`]).
fn load_duplicate_keys(
    tx: &Transaction<'_>,
    keys: &[DuplicateKey],
    loaded: &mut Loaded,
) -> Result<(), rusqlite::Error> {
    let mut q = tx.prepare_cached(
        "SELECT transaction_id FROM duplicate_key WHERE terminal_id = ?1 AND stan = ?2 \
         AND rrn = ?3 AND transmission_at = ?4 AND message_class = ?5 AND acquirer = ?6",
    )?;
    for k in keys {
        let found: Option<Vec<u8>> = q
            .query_row(
                params![
                    k.terminal_id.as_str(),
                    k.stan.to_string(),
                    k.rrn.as_str(),
                    k.transmission_at.as_str(),
                    k.message_class,
                    k.acquirer.as_str(),
                ],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = found {
            let id = uuid_from("duplicate_key.transaction_id", &id)?;
            loaded.duplicate_keys.insert(k.clone(), TransactionId(id));
        }
    }
    Ok(())
}

/// The highest verified ATC of each card that has one, each card's wrong-PIN count, and its
/// newest transaction (the head of its chain, `plan::card_chain`).
fn load_cards(
    tx: &Transaction<'_>,
    cards: &[CardId],
    loaded: &mut Loaded,
) -> Result<(), rusqlite::Error> {
    let mut q = tx.prepare_cached(
        "SELECT atc_max, pin_tries_failed, last_txn_id FROM card WHERE card_id = ?1",
    )?;
    for id in cards {
        let row: Option<(Option<i64>, i64, Option<Vec<u8>>)> = q
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((atc, tries, head)) = row else {
            continue;
        };
        let head = match head {
            Some(blob) => Some(TransactionId(uuid_from("card.last_txn_id", &blob)?)),
            None => None,
        };
        loaded.card_heads.insert(*id, head);
        if let Some(atc) = atc {
            let atc = u16::try_from(atc).map_err(|e| corrupt("card.atc_max", e))?;
            loaded.card_atcs.insert(*id, atc);
        }
        let tries = u32::try_from(tries).map_err(|e| corrupt("card.pin_tries_failed", e))?;
        loaded.card_pin_tries.insert(*id, tries);
    }
    Ok(())
}

/// The approved spend of each card day that has some.
fn load_card_days(
    tx: &Transaction<'_>,
    days: &[CardDay],
    loaded: &mut Loaded,
) -> Result<(), rusqlite::Error> {
    let mut q = tx.prepare_cached(
        "SELECT approved_count, amount_fen, stand_in_fen FROM card_day_usage \
         WHERE card_id = ?1 AND day_start_us = ?2",
    )?;
    for day in days {
        let row: Option<(i64, i64, i64)> = q
            .query_row(params![day.card_id.0, day.day_start_us], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        if let Some((count, amount_fen, stand_in_fen)) = row {
            let approved_count =
                u32::try_from(count).map_err(|e| corrupt("card_day_usage.approved_count", e))?;
            let usage = DayUsage {
                approved_count,
                amount_fen,
                stand_in_fen,
            };
            loaded.card_days.insert(*day, usage);
        }
    }
    Ok(())
}

/// Each refunded original's amount with its approved, unreversed refunds so far (the
/// refund cap of `plan::refund_cap`). Refunds carry their original's RRN: one index probe.
fn load_refund_rooms(
    tx: &Transaction<'_>,
    originals: &[TransactionId],
    loaded: &mut Loaded,
) -> Result<(), rusqlite::Error> {
    let mut q = tx.prepare_cached(REFUND_ROOM)?;
    for id in originals {
        let room = q
            .query_row([uuid_blob(&id.0)], |r| {
                Ok(RefundRoom {
                    original_fen: r.get(0)?,
                    refunded_fen: r.get(1)?,
                })
            })
            .optional()?;
        if let Some(room) = room {
            loaded.refunds.insert(*id, room);
        }
    }
    Ok(())
}

const REFUND_ROOM: &str = "SELECT o.amount_fen, (SELECT COALESCE(SUM(r.amount_fen), 0) \
     FROM txn AS r WHERE r.rrn = o.rrn AND r.original_transaction_id = o.transaction_id \
     AND r.kind = 'refund' AND r.response_code = '00' AND NOT EXISTS (SELECT 1 FROM txn AS v \
     WHERE v.rrn = r.rrn AND v.kind = 'reversal' AND v.response_code = '00' \
     AND v.original_transaction_id = r.transaction_id)) FROM txn AS o WHERE o.transaction_id = ?1";

/// The approved reversal each reversed original already has (`plan::reversed_once`): one probe
/// of the partial unique index `txn_one_approved_reversal` per original.
fn load_reversals(
    tx: &Transaction<'_>,
    originals: &[TransactionId],
    loaded: &mut Loaded,
) -> Result<(), rusqlite::Error> {
    let mut q = tx.prepare_cached(APPROVED_REVERSAL)?;
    for id in originals {
        let reversal = q
            .query_row([uuid_blob(&id.0)], |r| r.get::<_, Vec<u8>>(0))
            .optional()?;
        if let Some(reversal) = reversal {
            let reversal = TransactionId(uuid_from("txn.transaction_id", &reversal)?);
            loaded.reversals.insert(*id, reversal);
        }
    }
    Ok(())
}

const APPROVED_REVERSAL: &str = "SELECT transaction_id FROM txn \
     WHERE original_transaction_id = ?1 AND kind = 'reversal' AND response_code = '00'";
