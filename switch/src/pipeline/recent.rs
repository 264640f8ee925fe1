//! The first, cheap duplicate check of step 3: a bounded memory of recent duplicate keys
//! (acquirer + terminal + STAN + RRN + transmission time + message class), consulted before any HSM call.
//! The authoritative check is the store's, at commit.
//!
//! Why shards: one set of 100,000 keys behind one lock stalled the whole node whenever the
//! table rehashed (while growing, and again each time tombstones used up its free slots): a
//! rehash of every key under the lock, with both runtime workers waiting on it. At 10,000 tps
//! `loadgen --timeline` showed it as 60-200 ms p99 spikes at fixed request counts. Here each of
//! [`SHARDS`] shards holds its share of the keys in a table sized once for twice that share, so
//! the table never grows, a rehash in place touches one shard's keys, and it holds up only the
//! requests that hash to that shard.

use crate::store::DuplicateKey;
use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;

/// Shards of the memory.
pub const SHARDS: usize = 64;

/// Recent duplicate keys, bounded (oldest forgotten first, per shard).
#[derive(Debug)]
pub(crate) struct RecentKeys {
    shards: Vec<Mutex<Shard>>,
    /// Keyed (SipHash, random key): the keys come from the network.
    pick: RandomState,
}

#[derive(Debug)]
struct Shard {
    set: HashSet<DuplicateKey>,
    order: VecDeque<DuplicateKey>,
    max: usize,
}

impl RecentKeys {
    /// Remembers up to about `max` keys (at least one per shard).
    pub(crate) fn new(max: usize) -> Self {
        let per_shard = max.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    set: HashSet::with_capacity(2 * per_shard),
                    order: VecDeque::with_capacity(per_shard + 1),
                    max: per_shard,
                })
            })
            .collect();
        Self {
            shards,
            pick: RandomState::new(),
        }
    }

    /// True if seen before; remembers it otherwise. A poisoned shard answers "not seen": the
    /// store still refuses the duplicate at commit.
    pub(crate) fn seen(&self, key: &DuplicateKey) -> bool {
        let i = (self.pick.hash_one(key) % SHARDS as u64) as usize;
        let Ok(mut shard) = self.shards[i].lock() else {
            return false;
        };
        if shard.set.contains(key) {
            return true;
        }
        if shard.order.len() >= shard.max {
            if let Some(old) = shard.order.pop_front() {
                shard.set.remove(&old);
            }
        }
        shard.set.insert(key.clone());
        shard.order.push_back(key.clone());
        false
    }

    /// Forgets `key`: the request it names was answered without a decision (96), and its
    /// resend must be decided, not answered as a duplicate.
    pub(crate) fn forget(&self, key: &DuplicateKey) {
        let i = (self.pick.hash_one(key) % SHARDS as u64) as usize;
        let Ok(mut shard) = self.shards[i].lock() else {
            return;
        };
        if shard.set.remove(key) {
            shard.order.retain(|k| k != key);
        }
    }

    /// Keys remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.order.len()).unwrap_or(0))
            .sum()
    }

    /// Keys the shards' tables can take before they must rehash (tombstones lower it; a table
    /// that grew would raise it).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.set.capacity()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::domain::{InstitutionId, Rrn, Stan, TerminalId, TransmissionDateTime};

    fn key(n: u32) -> DuplicateKey {
        DuplicateKey {
            acquirer: InstitutionId::parse("4101001").expect("acquirer"),
            terminal_id: TerminalId::parse("KIOSK001").expect("terminal"),
            stan: Stan::new(n % 1_000_000).expect("stan"),
            rrn: Rrn::parse(&format!("{n:012}")).expect("rrn"),
            transmission_at: TransmissionDateTime::parse("1204120000").expect("time"),
            message_class: "02".into(),
        }
    }

    #[test]
    fn a_key_is_a_duplicate_until_it_is_forgotten_oldest_first() {
        // Room for 100 keys a shard; 640 keys spread over 64 shards never fill one.
        let recent = RecentKeys::new(SHARDS * 100);
        let first = SHARDS as u32 * 10;
        for n in 0..first {
            assert!(!recent.seen(&key(n)), "first sight of {n}");
        }
        assert!((0..first).all(|n| recent.seen(&key(n))), "all remembered");
        assert_eq!(recent.len(), first as usize);
        // A hundred times as many new keys: every shard has turned over many times.
        for n in first..first * 101 {
            recent.seen(&key(n));
        }
        assert!(recent.len() <= SHARDS * 100);
        assert!(!recent.seen(&key(0)), "forgotten, so seen anew");
        assert!(recent.seen(&key(first * 101 - 1)), "the newest stays");
    }

    #[test]
    fn a_forgotten_key_is_seen_anew_and_the_others_stay() {
        let recent = RecentKeys::new(SHARDS * 100);
        for n in 0..10 {
            recent.seen(&key(n));
        }
        recent.forget(&key(3));
        recent.forget(&key(99)); // never seen: nothing to forget
        assert_eq!(recent.len(), 9);
        assert!(!recent.seen(&key(3)), "decided again");
        assert!(recent.seen(&key(3)), "and remembered again");
        assert!((0..10).all(|n| recent.seen(&key(n))));
    }

    #[test]
    fn the_tables_never_grow_however_many_keys_pass() {
        let recent = RecentKeys::new(10_000);
        let before = recent.capacity();
        for n in 0..200_000 {
            recent.seen(&key(n));
        }
        assert!(recent.capacity() <= before, "a table grew");
        assert!(recent.len() <= 10_000 + SHARDS);
    }
}
