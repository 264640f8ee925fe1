//! What the pipeline knows about cards and their accounts between requests.
//!
//! Why this exists: reading a card, its accounts and their balances from the database on every
//! authorization would cost more than the whole rest of the pipeline. The directory reads a card
//! once (through the store's keyed PAN hash) and keeps it; the hot list is re-read every few
//! seconds so a card reported lost on another node is declined here too; balances are mirrored
//! and updated from this node's own commits.
//!
//! Correctness does not rest on the mirror: the store re-checks every balance at commit (a
//! balance can never go negative, see the `account` table), so a stale mirror can only turn an
//! approval into a decline (51), never overdraw an account. Requests of one card are serialised
//! by a striped lock, so on one node the mirror is exact.
//!
//! The highest ATC (EMV Book 3 Annex A, 9F36) committed per card is mirrored the same way, so a
//! replayed cryptogram is declined before any HSM call; the store re-checks it at commit under
//! a row lock, so a replay sent to two nodes at once is still accepted only once.

use crate::store::{AccountId, AccountKind, Card, CardId, CardStatus, Store, StoreError};
use schemas::domain::Pan;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

const LOCK_STRIPES: usize = 1_024;
/// Most cards kept in memory; beyond it the directory is cleared and refilled on demand.
pub const CARDS_CACHED_MAX: usize = 1_000_000;

/// A card with the accounts the pipeline pays from.
#[derive(Debug, Clone)]
pub struct CardEntry {
    /// The stored card (status as last seen).
    pub card: Card,
    /// Personal medical-insurance account.
    pub personal: Option<AccountId>,
    /// What is left of the cardholder's annual pooled-fund entitlement (an account of kind
    /// `pooled_fund` belonging to the card).
    pub entitlement: Option<AccountId>,
}

/// Cards, balances and per-card locks.
pub struct CardDirectory {
    cards: RwLock<HashMap<String, Arc<CardEntry>>>,
    status: RwLock<HashMap<CardId, CardStatus>>,
    available: Mutex<HashMap<AccountId, i64>>,
    atcs: Mutex<HashMap<CardId, u16>>,
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl Default for CardDirectory {
    fn default() -> Self {
        Self {
            cards: RwLock::new(HashMap::new()),
            status: RwLock::new(HashMap::new()),
            available: Mutex::new(HashMap::new()),
            atcs: Mutex::new(HashMap::new()),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }
}

impl CardDirectory {
    /// The lock serialising requests of `card` on this node.
    pub fn lock(&self, card: CardId) -> &tokio::sync::Mutex<()> {
        &self.locks[(card.0.unsigned_abs() as usize) % LOCK_STRIPES]
    }

    /// The card with this PAN, from memory or the store. `None`: no such card.
    pub async fn lookup<S: Store>(
        &self,
        store: &S,
        pan: &Pan,
    ) -> Result<Option<Arc<CardEntry>>, StoreError> {
        let hit = self
            .cards
            .read()
            .ok()
            .and_then(|m| m.get(pan.expose_digits()).cloned());
        let entry = match hit {
            Some(e) => e,
            None => {
                let Some(card) = store.card_by_pan(pan).await? else {
                    return Ok(None);
                };
                let accounts = store.accounts_for_card(card.card_id).await?;
                let find = |kind| {
                    accounts
                        .iter()
                        .find(|a| a.kind == kind)
                        .map(|a| a.account_id)
                };
                let entry = Arc::new(CardEntry {
                    personal: find(AccountKind::PersonalMedical),
                    entitlement: find(AccountKind::PooledFund),
                    card,
                });
                if let Ok(mut m) = self.cards.write() {
                    if m.len() >= CARDS_CACHED_MAX {
                        m.clear();
                    }
                    m.insert(pan.expose_digits().to_owned(), Arc::clone(&entry));
                }
                entry
            }
        };
        Ok(Some(entry))
    }

    /// The card's status: a hot-list entry seen since the card was loaded wins.
    pub fn status(&self, entry: &CardEntry) -> CardStatus {
        self.status
            .read()
            .ok()
            .and_then(|m| m.get(&entry.card.card_id).copied())
            .unwrap_or(entry.card.status)
    }

    /// Records a status change made on this node or read from the hot list.
    pub fn set_status(&self, card: CardId, status: CardStatus) {
        if let Ok(mut m) = self.status.write() {
            m.insert(card, status);
        }
    }

    /// Re-reads the hot list from the store (cards lost, stolen or blocked anywhere).
    pub async fn refresh_hot_list<S: Store>(&self, store: &S) -> Result<usize, StoreError> {
        let hot = store.hot_list().await?;
        let n = hot.len();
        if let Ok(mut m) = self.status.write() {
            // Cards no longer hot (unblocked) fall back to what was loaded... unless loaded
            // while hot: forget every card so it is re-read.
            let unlisted: Vec<CardId> = m
                .iter()
                .filter(|(id, s)| s.is_hot_listed() && !hot.iter().any(|c| c.card_id == **id))
                .map(|(id, _)| *id)
                .collect();
            for id in unlisted {
                m.insert(id, CardStatus::Active);
            }
            for c in hot {
                m.insert(c.card_id, c.status);
            }
        }
        Ok(n)
    }

    /// Available balance (balance − held) of an account, from the mirror or the store.
    pub async fn available<S: Store>(
        &self,
        store: &S,
        account: AccountId,
    ) -> Result<i64, StoreError> {
        if let Some(v) = self
            .available
            .lock()
            .ok()
            .and_then(|m| m.get(&account).copied())
        {
            return Ok(v);
        }
        let a = store
            .account(account)
            .await?
            .ok_or(StoreError::NotFound("account"))?;
        let v = a.balance_fen - a.held_fen;
        if let Ok(mut m) = self.available.lock() {
            m.insert(account, v);
        }
        Ok(v)
    }

    /// Applies a committed change of `delta_fen` to the mirror.
    pub fn adjust(&self, account: AccountId, delta_fen: i64) {
        if let Ok(mut m) = self.available.lock() {
            if let Some(v) = m.get_mut(&account) {
                *v += delta_fen;
            }
        }
    }

    /// The highest ATC committed for the card as this node knows it: its own commits, else the
    /// card row as loaded.
    pub fn atc_max(&self, entry: &CardEntry) -> Option<u16> {
        let mirrored = self
            .atcs
            .lock()
            .ok()
            .and_then(|m| m.get(&entry.card.card_id).copied());
        mirrored.max(entry.card.atc_max)
    }

    /// Records an ATC committed here, or found committed by another node.
    pub fn note_atc(&self, card: CardId, atc: u16) {
        if let Ok(mut m) = self.atcs.lock() {
            if m.len() >= CARDS_CACHED_MAX {
                m.clear(); // falls back to the card rows; the store still checks every commit
            }
            let v = m.entry(card).or_insert(atc);
            *v = (*v).max(atc);
        }
    }

    /// Forgets an account's mirrored balance (after the store disagreed).
    pub fn forget_balance(&self, account: AccountId) {
        if let Ok(mut m) = self.available.lock() {
            m.remove(&account);
        }
    }
}
