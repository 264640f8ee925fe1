//! The group-commit planner: decides, in memory, which decisions of a batch commit and what
//! they write.
//!
//! A batch is applied as one database transaction with a handful of set-oriented statements
//! (one per table) instead of one round trip per row, which is what makes group commit fast.
//! That needs every per-decision check done up front: the backend loads the rows the batch
//! touches (locking them on PostgreSQL), this module replays the decisions in submission order
//! against those rows, and a decision that would break a rule (duplicate, insufficient funds,
//! hold not pending) is left out without disturbing the others. Anything the planner cannot see
//! (a foreign key to an unknown institution, a race with another node) makes the database
//! reject the batch; the backend then retries each decision on its own.
//!
//! The card's ATC (EMV Book 3 Annex A, 9F36) is planned the same way: the batch loads (and on
//! PostgreSQL locks) the `atc_max` of the cards it names, and a decision whose ATC is not above
//! it — including one taken by an earlier decision of the same batch — is left out.
//!
//! Refunds are capped the same way ([`refund_cap`]): the batch loads each refunded original
//! with its refunds so far, and a refund that would take them above the original is left out.
//! So is the card's risk state ([`risk`]): its wrong-PIN count and its approved spend per day.
//! And an original is reversed at most once ([`reversed_once`]): the batch loads each reversed
//! original's approved reversal, and a second one is left out. Each card's transactions are
//! chained ([`card_chain`]): the batch loads the card's newest transaction, each accepted
//! decision with a card links to it and becomes it.

use super::error::DecisionError;
use super::model::{
    AccountId, BalanceOp, CardAtc, CardId, Committed, DayUsage, Decision, DuplicateKey, HoldId,
    HoldState, MovementKind, TransactionId,
};
pub use refund_cap::RefundRoom;
pub use reversed_once::refused_alone;
use std::collections::{HashMap, HashSet};

/// Rows a batch needs loaded before it can be planned.
#[derive(Debug, Default)]
pub struct BatchKeys {
    /// Holds captured or released by the batch (load these first, then their accounts).
    pub holds: Vec<HoldId>,
    /// Accounts named directly by balance ops.
    pub accounts: Vec<AccountId>,
    /// Duplicate-detection keys of the batch.
    pub duplicate_keys: Vec<DuplicateKey>,
    /// Cards whose ATC the batch consumes, whose wrong-PIN count it resets, or whose chain of
    /// transactions it extends (every card a decision names).
    pub cards: Vec<CardId>,
    /// Originals the batch's approved refunds take room from (see [`refund_cap`]).
    pub refunded_originals: Vec<TransactionId>,
    /// Card days the batch spends on, sorted.
    pub card_days: Vec<CardDay>,
    /// Originals the batch's approved reversals give the money back for (see
    /// [`reversed_once`]).
    pub reversed_originals: Vec<TransactionId>,
}

impl BatchKeys {
    /// The originals to lock on PostgreSQL (refunded or reversed), sorted and deduplicated:
    /// one lock statement, in id order, so two batches cannot deadlock on them.
    pub fn originals(&self) -> Vec<TransactionId> {
        let mut ids = self.refunded_originals.clone();
        ids.extend(&self.reversed_originals);
        ids.sort();
        ids.dedup();
        ids
    }

    /// Collects the keys of the valid decisions, sorted and deduplicated (sorted ids give a
    /// fixed lock order on PostgreSQL, so concurrent nodes cannot deadlock).
    pub fn of(decisions: &[&Decision]) -> Self {
        let mut keys = BatchKeys::default();
        for d in decisions {
            keys.duplicate_keys.push(d.transaction.duplicate_key());
            if let Some(a) = d.atc {
                keys.cards.push(a.card_id);
            }
            keys.refunded_originals
                .extend(refund_cap::refunded_original(d));
            keys.reversed_originals
                .extend(reversed_once::reversed_original(d));
            risk::keys_of(d, &mut keys);
            card_chain::keys_of(d, &mut keys);
            for op in &d.balance_ops {
                match op {
                    BalanceOp::Debit { account_id, .. }
                    | BalanceOp::Credit { account_id, .. }
                    | BalanceOp::PlaceHold { account_id, .. } => keys.accounts.push(*account_id),
                    BalanceOp::CaptureHold { hold_id, .. } | BalanceOp::ReleaseHold { hold_id } => {
                        keys.holds.push(*hold_id)
                    }
                }
            }
        }
        keys.holds.sort();
        keys.holds.dedup();
        keys.accounts.sort();
        keys.accounts.dedup();
        keys.cards.sort();
        keys.cards.dedup();
        keys.refunded_originals.sort();
        keys.refunded_originals.dedup();
        keys.card_days.sort();
        keys.card_days.dedup();
        keys.reversed_originals.sort();
        keys.reversed_originals.dedup();
        keys
    }
}

/// An account as loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRow {
    /// Ledger balance.
    pub balance_fen: i64,
    /// Held amount.
    pub held_fen: i64,
}

/// A hold as loaded or as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    /// Account.
    pub account_id: AccountId,
    /// Authorizing transaction.
    pub transaction_id: TransactionId,
    /// Held amount.
    pub amount_fen: i64,
    /// Captured amount.
    pub captured_fen: i64,
    /// State.
    pub state: HoldState,
    /// Creation time.
    pub created_at_us: i64,
    /// Expiry.
    pub expires_at_us: i64,
    /// When captured or released.
    pub closed_at_us: Option<i64>,
}

/// State loaded from the database for one batch.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Accounts by id (those that exist).
    pub accounts: HashMap<AccountId, AccountRow>,
    /// Holds by id (those that exist).
    pub holds: HashMap<HoldId, HoldRow>,
    /// Keys already recorded, with their transaction.
    pub duplicate_keys: HashMap<DuplicateKey, TransactionId>,
    /// `atc_max` of the cards that have one.
    pub card_atcs: HashMap<CardId, u16>,
    /// The originals of the batch's refunds (those that exist), with their refunds so far.
    pub refunds: HashMap<TransactionId, RefundRoom>,
    /// `pin_tries_failed` of the cards loaded for their ATC or PIN (those that exist).
    pub card_pin_tries: HashMap<CardId, u32>,
    /// Approved spend of the card days that have some.
    pub card_days: HashMap<CardDay, DayUsage>,
    /// The approved reversal of each of the batch's reversed originals that has one.
    pub reversals: HashMap<TransactionId, TransactionId>,
    /// The newest transaction (`card.last_txn_id`) of each loaded card that exists (`None`: it
    /// has none yet).
    pub card_heads: HashMap<CardId, Option<TransactionId>>,
}

/// One journal row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementRow {
    /// Account.
    pub account_id: AccountId,
    /// Transaction.
    pub transaction_id: TransactionId,
    /// Hold concerned, if any.
    pub hold_id: Option<HoldId>,
    /// Kind.
    pub kind: MovementKind,
    /// Amount moved.
    pub amount_fen: i64,
    /// Balance after.
    pub balance_after_fen: i64,
    /// Held after.
    pub held_after_fen: i64,
}

/// What a planned batch writes, besides the per-decision rows (transaction, legs, key, event,
/// reversal) of the accepted decisions.
#[derive(Debug, Default)]
pub struct Plan {
    /// Per decision: accepted, or why not.
    pub verdicts: Vec<Result<(), DecisionError>>,
    /// Final balances of changed accounts, sorted by id.
    pub accounts: Vec<(AccountId, AccountRow)>,
    /// Holds created by the batch, in their final state.
    pub new_holds: Vec<(HoldId, HoldRow)>,
    /// Existing holds whose state changed, in their final state.
    pub changed_holds: Vec<(HoldId, HoldRow)>,
    /// Journal rows, in application order.
    pub movements: Vec<MovementRow>,
    /// New `atc_max` of the cards whose ATC moved, sorted by card.
    pub card_atcs: Vec<(CardId, u16)>,
    /// Cards whose wrong-PIN count goes back to 0, sorted.
    pub pin_resets: Vec<CardId>,
    /// New spend of the card days the batch spent on, sorted.
    pub card_days: Vec<(CardDay, DayUsage)>,
    /// Per decision (aligned with the batch): the same card's previous transaction, which an
    /// accepted decision's row links to (`txn.prev_card_txn_id`); `None` for the others.
    pub prev_card_txns: Vec<Option<TransactionId>>,
    /// New newest transaction (`card.last_txn_id`) of the cards whose chain the batch
    /// extended, sorted by card.
    pub card_heads: Vec<(CardId, TransactionId)>,
}

impl Plan {
    /// Indices of accepted decisions.
    pub fn accepted(&self) -> impl Iterator<Item = usize> + '_ {
        self.verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.is_ok().then_some(i))
    }

    /// The card rows the batch writes, one per card, sorted: the new `atc_max` and the new
    /// `last_txn_id`, each `None` where the batch leaves it (the merge of [`Plan::card_atcs`]
    /// and [`Plan::card_heads`], so each card row is written once).
    pub fn card_rows(&self) -> Vec<CardRow> {
        let mut rows: std::collections::BTreeMap<CardId, CardRow> = self
            .card_atcs
            .iter()
            .map(|&(card_id, atc)| {
                let row = CardRow {
                    card_id,
                    atc_max: Some(atc),
                    last_txn_id: None,
                };
                (card_id, row)
            })
            .collect();
        for &(card_id, last) in &self.card_heads {
            rows.entry(card_id)
                .or_insert(CardRow {
                    card_id,
                    atc_max: None,
                    last_txn_id: None,
                })
                .last_txn_id = Some(last);
        }
        rows.into_values().collect()
    }
}

/// One card row a batch writes ([`Plan::card_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardRow {
    /// The card.
    pub card_id: CardId,
    /// Its new highest verified ATC, if the batch moved it.
    pub atc_max: Option<u16>,
    /// Its new newest transaction, if the batch extended its chain.
    pub last_txn_id: Option<TransactionId>,
}

enum Undo {
    Account(AccountId, AccountRow),
    Hold(HoldId, Option<HoldRow>),
    Atc(CardId, Option<u16>),
    Refund(TransactionId, RefundRoom),
    PinTries(CardId, u32),
    Day(CardDay, Option<DayUsage>),
}

struct Planner {
    loaded: Loaded,
    new_hold_ids: HashSet<HoldId>,
    dirty_accounts: HashSet<AccountId>,
    dirty_cards: HashSet<CardId>,
    dirty_pin_tries: HashSet<CardId>,
    dirty_days: HashSet<CardDay>,
    dirty_holds: HashSet<HoldId>,
    dirty_heads: HashSet<CardId>,
    txn_ids: HashSet<TransactionId>,
    undo: Vec<Undo>,
    movements: Vec<MovementRow>,
    now_us: i64,
}

/// The checks a batch makes before touching the database: each decision's own validity
/// (`Some(err)` for an invalid one), and the keys of the valid ones to load.
pub fn prepare(decisions: &[Decision]) -> (Vec<Option<DecisionError>>, BatchKeys) {
    let pre: Vec<Option<DecisionError>> = decisions
        .iter()
        .map(|d| d.validate().err().map(DecisionError::Invalid))
        .collect();
    let valid: Vec<&Decision> = decisions
        .iter()
        .zip(&pre)
        .filter(|(_, p)| p.is_none())
        .map(|(d, _)| d)
        .collect();
    let keys = BatchKeys::of(&valid);
    (pre, keys)
}

/// What each caller of a committed batch is told: its verdict, with its outbox position.
pub fn committed(
    plan: Plan,
    decisions: &[Decision],
    outbox_seqs: Vec<Option<i64>>,
) -> Vec<Result<Committed, DecisionError>> {
    plan.verdicts
        .into_iter()
        .zip(decisions)
        .zip(outbox_seqs)
        .map(|((v, d), outbox_seq)| {
            v.map(|()| Committed {
                transaction_id: d.transaction.transaction_id,
                outbox_seq,
            })
        })
        .collect()
}

/// Replays `decisions` in order against `loaded`. `pre` holds verdicts decided before loading
/// (invalid decisions): `Some(err)` entries are kept as they are and skipped.
pub fn plan(
    decisions: &[Decision],
    pre: Vec<Option<DecisionError>>,
    loaded: Loaded,
    now_us: i64,
) -> Plan {
    let mut p = Planner {
        loaded,
        new_hold_ids: HashSet::new(),
        dirty_accounts: HashSet::new(),
        dirty_cards: HashSet::new(),
        dirty_pin_tries: HashSet::new(),
        dirty_days: HashSet::new(),
        dirty_holds: HashSet::new(),
        dirty_heads: HashSet::new(),
        txn_ids: HashSet::new(),
        undo: Vec::new(),
        movements: Vec::new(),
        now_us,
    };
    let mut verdicts = Vec::with_capacity(decisions.len());
    let mut prevs = Vec::with_capacity(decisions.len());
    for (d, pre) in decisions.iter().zip(pre) {
        let verdict = match pre {
            Some(err) => Err(err),
            None => p.apply(d),
        };
        prevs.push(if verdict.is_ok() { p.chain(d) } else { None });
        verdicts.push(verdict);
    }
    p.finish(verdicts, prevs)
}

impl Planner {
    fn apply(&mut self, d: &Decision) -> Result<(), DecisionError> {
        let key = d.transaction.duplicate_key();
        if let Some(existing) = self.loaded.duplicate_keys.get(&key) {
            return Err(DecisionError::Duplicate {
                existing: Some(*existing),
            });
        }
        let txn_id = d.transaction.transaction_id;
        if self.txn_ids.contains(&txn_id) {
            return Err(DecisionError::Invalid("transaction id used twice".into()));
        }
        self.check_not_reversed(d)?;
        self.undo.clear();
        let movements_before = self.movements.len();
        if let Some(atc) = d.atc {
            self.consume_atc(atc)?;
        }
        if let Some(r) = d.risk {
            if let Err(e) = self.apply_risk(r) {
                self.rollback(movements_before);
                return Err(e);
            }
        }
        for op in &d.balance_ops {
            if let Err(e) = self.apply_op(txn_id, op) {
                self.rollback(movements_before);
                return Err(e);
            }
        }
        if let Err(e) = self.take_refund_room(d) {
            self.rollback(movements_before);
            return Err(e);
        }
        for u in self.undo.drain(..) {
            match u {
                Undo::Account(id, _) => self.dirty_accounts.insert(id),
                Undo::Hold(id, _) => self.dirty_holds.insert(id),
                Undo::Atc(id, _) => self.dirty_cards.insert(id),
                Undo::Refund(..) => false,
                Undo::PinTries(id, _) => self.dirty_pin_tries.insert(id),
                Undo::Day(day, _) => self.dirty_days.insert(day),
            };
        }
        self.note_reversal(d);
        self.txn_ids.insert(txn_id);
        self.loaded.duplicate_keys.insert(key, txn_id);
        Ok(())
    }

    fn rollback(&mut self, movements_before: usize) {
        self.movements.truncate(movements_before);
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Account(id, row) => {
                    self.loaded.accounts.insert(id, row);
                }
                Undo::Hold(id, Some(row)) => {
                    self.loaded.holds.insert(id, row);
                }
                Undo::Hold(id, None) => {
                    self.loaded.holds.remove(&id);
                    self.new_hold_ids.remove(&id);
                }
                Undo::Atc(id, Some(atc)) => {
                    self.loaded.card_atcs.insert(id, atc);
                }
                Undo::Atc(id, None) => {
                    self.loaded.card_atcs.remove(&id);
                }
                Undo::Refund(id, room) => {
                    self.loaded.refunds.insert(id, room);
                }
                Undo::PinTries(id, tries) => {
                    self.loaded.card_pin_tries.insert(id, tries);
                }
                Undo::Day(day, Some(usage)) => {
                    self.loaded.card_days.insert(day, usage);
                }
                Undo::Day(day, None) => {
                    self.loaded.card_days.remove(&day);
                }
            }
        }
    }

    /// Takes the card's ATC if it is above every ATC the card has used.
    fn consume_atc(&mut self, a: CardAtc) -> Result<(), DecisionError> {
        let before = self.loaded.card_atcs.get(&a.card_id).copied();
        if let Some(atc_max) = before.filter(|m| a.atc <= *m) {
            return Err(DecisionError::AtcNotIncreasing {
                card_id: a.card_id,
                atc: a.atc,
                atc_max,
            });
        }
        self.undo.push(Undo::Atc(a.card_id, before));
        self.loaded.card_atcs.insert(a.card_id, a.atc);
        Ok(())
    }

    fn account(&mut self, id: AccountId) -> Result<AccountRow, DecisionError> {
        let row = *self
            .loaded
            .accounts
            .get(&id)
            .ok_or(DecisionError::UnknownAccount(id))?;
        self.undo.push(Undo::Account(id, row));
        Ok(row)
    }

    fn pending_hold(&mut self, id: HoldId) -> Result<HoldRow, DecisionError> {
        let row = self
            .loaded
            .holds
            .get(&id)
            .cloned()
            .ok_or(DecisionError::UnknownHold(id))?;
        if row.state != HoldState::Pending {
            return Err(DecisionError::HoldNotPending(id));
        }
        self.undo.push(Undo::Hold(id, Some(row.clone())));
        Ok(row)
    }

    fn record(
        &mut self,
        account_id: AccountId,
        row: AccountRow,
        transaction_id: TransactionId,
        hold_id: Option<HoldId>,
        kind: MovementKind,
        amount_fen: i64,
    ) {
        debug_assert!(row.balance_fen >= 0 && row.held_fen >= 0 && row.held_fen <= row.balance_fen);
        self.loaded.accounts.insert(account_id, row);
        self.movements.push(MovementRow {
            account_id,
            transaction_id,
            hold_id,
            kind,
            amount_fen,
            balance_after_fen: row.balance_fen,
            held_after_fen: row.held_fen,
        });
    }

    fn apply_op(&mut self, txn: TransactionId, op: &BalanceOp) -> Result<(), DecisionError> {
        match op {
            BalanceOp::Debit {
                account_id,
                amount_fen,
            } => self.debit(txn, *account_id, amount_fen.get()),
            BalanceOp::Credit {
                account_id,
                amount_fen,
            } => self.credit(txn, *account_id, amount_fen.get()),
            BalanceOp::PlaceHold {
                hold_id,
                account_id,
                amount_fen,
                expires_at_us,
            } => self.place_hold(txn, *hold_id, *account_id, amount_fen.get(), *expires_at_us),
            BalanceOp::CaptureHold {
                hold_id,
                amount_fen,
            } => self.capture_hold(txn, *hold_id, amount_fen.get()),
            BalanceOp::ReleaseHold { hold_id } => self.release_hold(txn, *hold_id),
        }
    }

    /// Takes `amount` from the available balance.
    fn debit(
        &mut self,
        txn: TransactionId,
        account_id: AccountId,
        amount: i64,
    ) -> Result<(), DecisionError> {
        let mut a = self.account(account_id)?;
        if a.balance_fen - a.held_fen < amount {
            return Err(DecisionError::InsufficientFunds(account_id));
        }
        a.balance_fen -= amount;
        self.record(account_id, a, txn, None, MovementKind::Debit, amount);
        Ok(())
    }

    /// Adds `amount` to the balance.
    fn credit(
        &mut self,
        txn: TransactionId,
        account_id: AccountId,
        amount: i64,
    ) -> Result<(), DecisionError> {
        let mut a = self.account(account_id)?;
        a.balance_fen = a
            .balance_fen
            .checked_add(amount)
            .ok_or_else(|| DecisionError::Invalid("balance overflow".into()))?;
        self.record(account_id, a, txn, None, MovementKind::Credit, amount);
        Ok(())
    }

    /// Reserves `amount` of the available balance under a new hold.
    fn place_hold(
        &mut self,
        txn: TransactionId,
        hold_id: HoldId,
        account_id: AccountId,
        amount: i64,
        expires_at_us: i64,
    ) -> Result<(), DecisionError> {
        if self.loaded.holds.contains_key(&hold_id) {
            return Err(DecisionError::Invalid("hold id used twice".into()));
        }
        let mut a = self.account(account_id)?;
        if a.balance_fen - a.held_fen < amount {
            return Err(DecisionError::InsufficientFunds(account_id));
        }
        a.held_fen += amount;
        self.undo.push(Undo::Hold(hold_id, None));
        self.new_hold_ids.insert(hold_id);
        self.loaded.holds.insert(
            hold_id,
            HoldRow {
                account_id,
                transaction_id: txn,
                amount_fen: amount,
                captured_fen: 0,
                state: HoldState::Pending,
                created_at_us: self.now_us,
                expires_at_us,
                closed_at_us: None,
            },
        );
        self.record(
            account_id,
            a,
            txn,
            Some(hold_id),
            MovementKind::Hold,
            amount,
        );
        Ok(())
    }

    /// Takes `amount` (at most the held amount) and releases the rest of a pending hold.
    fn capture_hold(
        &mut self,
        txn: TransactionId,
        hold_id: HoldId,
        amount: i64,
    ) -> Result<(), DecisionError> {
        let mut h = self.pending_hold(hold_id)?;
        if amount > h.amount_fen {
            return Err(DecisionError::CaptureExceedsHold(hold_id));
        }
        let mut a = self.account(h.account_id)?;
        a.held_fen -= h.amount_fen;
        a.balance_fen -= amount;
        h.state = HoldState::Captured;
        h.captured_fen = amount;
        h.closed_at_us = Some(self.now_us);
        let account_id = h.account_id;
        self.loaded.holds.insert(hold_id, h);
        self.record(
            account_id,
            a,
            txn,
            Some(hold_id),
            MovementKind::Capture,
            amount,
        );
        Ok(())
    }

    /// Lifts a pending hold without capture.
    fn release_hold(&mut self, txn: TransactionId, hold_id: HoldId) -> Result<(), DecisionError> {
        let mut h = self.pending_hold(hold_id)?;
        let mut a = self.account(h.account_id)?;
        a.held_fen -= h.amount_fen;
        h.state = HoldState::Released;
        h.closed_at_us = Some(self.now_us);
        let (account_id, amount) = (h.account_id, h.amount_fen);
        self.loaded.holds.insert(hold_id, h);
        self.record(
            account_id,
            a,
            txn,
            Some(hold_id),
            MovementKind::Release,
            amount,
        );
        Ok(())
    }

    fn finish(
        mut self,
        verdicts: Vec<Result<(), DecisionError>>,
        prev_card_txns: Vec<Option<TransactionId>>,
    ) -> Plan {
        let mut accounts: Vec<(AccountId, AccountRow)> = self
            .dirty_accounts
            .iter()
            .filter_map(|id| self.loaded.accounts.get(id).map(|row| (*id, *row)))
            .collect();
        accounts.sort_by_key(|(id, _)| *id);
        let mut new_holds = Vec::new();
        let mut changed_holds = Vec::new();
        let mut dirty: Vec<HoldId> = self.dirty_holds.drain().collect();
        dirty.sort();
        for id in dirty {
            if let Some(row) = self.loaded.holds.get(&id) {
                if self.new_hold_ids.contains(&id) {
                    new_holds.push((id, row.clone()));
                } else {
                    changed_holds.push((id, row.clone()));
                }
            }
        }
        let mut card_atcs: Vec<(CardId, u16)> = self
            .dirty_cards
            .iter()
            .filter_map(|id| self.loaded.card_atcs.get(id).map(|atc| (*id, *atc)))
            .collect();
        card_atcs.sort();
        let (pin_resets, card_days) = self.finish_risk();
        let card_heads = self.finish_chain();
        Plan {
            verdicts,
            accounts,
            new_holds,
            changed_holds,
            movements: self.movements,
            card_atcs,
            pin_resets,
            card_days,
            prev_card_txns,
            card_heads,
        }
    }
}

mod card_chain;
mod refund_cap;
mod reversed_once;
mod risk;
#[cfg(test)]
mod tests;

pub use risk::CardDay;
