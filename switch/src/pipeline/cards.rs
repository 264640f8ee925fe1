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

use crate::store::{Account, AccountId, AccountKind, Card, CardId, CardStatus, Store, StoreError};
use schemas::domain::Pan;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

const LOCK_STRIPES: usize = 1_024;
/// Cards read per query while warming the directory.
const WARM_PAGE: u32 = 1_000;
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

    /// Loads cards, their accounts and balances from the store, page by page, up to
    /// `cards_max` (at most [`CARDS_CACHED_MAX`]) or the directory's room, and returns how
    /// many it added. Run at start: otherwise every card's first request reads the store
    /// (card, accounts, then each balance), and a node restarted under load answered its first
    /// two seconds at p50 100-355 ms (loadgen `--timeline`, 10,000 tps). Requests served
    /// meanwhile are not disturbed: a card or balance already in memory is kept as it is, since
    /// it may already include this node's newer commits.
    pub async fn warm<S: Store>(&self, store: &S, cards_max: usize) -> Result<usize, StoreError> {
        let cards_max = cards_max.min(CARDS_CACHED_MAX);
        let mut added = 0usize;
        let mut after = None;
        loop {
            let room = cards_max.saturating_sub(self.cached());
            if room == 0 {
                break;
            }
            let page = u32::try_from(room).unwrap_or(WARM_PAGE).min(WARM_PAGE);
            let cards = store.card_directory_page(after, page).await?;
            let Some(last) = cards.last() else { break };
            after = Some(last.card.card_id);
            let full = cards.len() == page as usize;
            for c in cards {
                if self.keep(c.pan.expose_digits(), c.card, &c.accounts) {
                    added += 1;
                }
            }
            if !full {
                break;
            }
        }
        Ok(added)
    }

    /// Cards in memory.
    fn cached(&self) -> usize {
        self.cards
            .read()
            .map(|m| m.len())
            .unwrap_or(CARDS_CACHED_MAX)
    }

    /// Adds a card read by [`Self::warm`] unless it is already known; mirrors the balances of
    /// its accounts that are not mirrored yet. True when added.
    fn keep(&self, pan_digits: &str, card: Card, accounts: &[Account]) -> bool {
        let Ok(mut cards) = self.cards.write() else {
            return false;
        };
        if cards.contains_key(pan_digits) || cards.len() >= CARDS_CACHED_MAX {
            return false;
        }
        let entry = CardEntry {
            personal: find_account(accounts, AccountKind::PersonalMedical),
            entitlement: find_account(accounts, AccountKind::PooledFund),
            card,
        };
        cards.insert(pan_digits.to_owned(), Arc::new(entry));
        drop(cards);
        if let Ok(mut available) = self.available.lock() {
            for a in accounts {
                available
                    .entry(a.account_id)
                    .or_insert(a.balance_fen - a.held_fen);
            }
        }
        true
    }

    /// The card with this PAN, from memory or the store. `None`: no such card.
    pub async fn lookup<S: Store>(
        &self,
        store: &S,
        pan: &Pan,
    ) -> Result<Option<Arc<CardEntry>>, StoreError> {
        // A card loaded before its activation (at a counter or a kiosk, by the card management
        // system) is read again: activation does not go through the hot list, and a card not
        // yet active is rare enough that the extra read costs nothing.
        let hit = self
            .cards
            .read()
            .ok()
            .and_then(|m| m.get(pan.expose_digits()).cloned())
            .filter(|e| self.status(e) != CardStatus::Issued);
        let entry = match hit {
            Some(e) => e,
            None => {
                let Some(card) = store.card_by_pan(pan).await? else {
                    return Ok(None);
                };
                let accounts = store.accounts_for_card(card.card_id).await?;
                let entry = Arc::new(CardEntry {
                    personal: find_account(&accounts, AccountKind::PersonalMedical),
                    entitlement: find_account(&accounts, AccountKind::PooledFund),
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

/// The card's account of this kind, if it has one.
fn find_account(accounts: &[Account], kind: AccountKind) -> Option<AccountId> {
    accounts
        .iter()
        .find(|a| a.kind == kind)
        .map(|a| a.account_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::testkit;
    use crate::store::{DataKeyPanProtector, SqliteConfig, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warming_loads_cards_up_to_the_limit_and_keeps_what_is_already_mirrored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("open");
        let fx = testkit::seed(&store, 700, 0).await.expect("seed");
        let mut pans = vec![fx.pan.clone()];
        for n in 0..2u32 {
            let pan = Pan::parse(&format!("62284800300000{n:02}")).expect("pan");
            testkit::issue_plain_card(&store, &fx.bank, &pan, CardStatus::Active)
                .await
                .expect("card");
            pans.push(pan);
        }
        let cards = CardDirectory::default();
        // This node's own view of the personal account (a commit it made): warming must not
        // replace it with the older row it reads.
        assert_eq!(cards.available(&store, fx.personal).await.unwrap(), 700);
        cards.adjust(fx.personal, -50);
        assert_eq!(cards.warm(&store, 2).await.unwrap(), 2);
        assert_eq!(cards.warm(&store, 10).await.unwrap(), 1);
        assert_eq!(cards.warm(&store, 10).await.unwrap(), 0, "nothing twice");
        assert_eq!(cards.available(&store, fx.personal).await.unwrap(), 650);
        // Everything now answers from memory: the store is closed.
        store.close().await;
        let first = cards.lookup(&store, &pans[0]).await.unwrap().expect("card");
        assert_eq!(first.card.card_id, fx.card_id);
        assert_eq!(first.personal, Some(fx.personal));
        assert_eq!(first.entitlement, None);
        for pan in &pans[1..] {
            let entry = cards.lookup(&store, pan).await.unwrap().expect("card");
            assert_eq!(entry.personal, None);
        }
        assert!(cards
            .lookup(&store, &Pan::parse("6228480099999999").unwrap())
            .await
            .is_err());
    }
}
