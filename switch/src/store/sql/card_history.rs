//! A card's transactions, newest first (`GET /transactions?card_id=`, the console's card page),
//! read by walking the card's chain of transactions (migration 0024) instead of an index.
//!
//! Why: the index `txn_by_card (card_id, decided_at_us)` that served this read made every
//! decision insert into a leaf chosen at random by its card id, the largest B-tree the SQLite
//! group commit wrote (21.5 % of the WAL frames, benches/README.md). The card row now holds its
//! newest transaction (`card.last_txn_id`) and each transaction the card's previous one
//! (`txn.prev_card_txn_id`), kept by the group commit (`store::plan::card_chain`); `switch
//! verify` checks the chain is whole (`Invariant::CardChainWhole`).
//!
//! The walk starts at the card's head every time, also when paging: a chain is in commit order,
//! and commit order is not quite decision order (two group commits in flight on PostgreSQL, two
//! nodes' clocks, a decision replayed from the spool after an outage commits after newer ones).
//! Walking from the keyset cursor's transaction would lose, at each page boundary, a transaction
//! committed after the cursor's but decided before it. So a page costs one primary-key probe per
//! transaction of the card (a card makes a few a day), then the filters, the order and the
//! limit of [`super::operator`]'s search, unchanged.

/// The search of `GET /transactions` (same parameters `$1`-`$10`, same filters, order and
/// limit) for the card `$11`: its chain from `card.last_txn_id` along `prev_card_txn_id`, each
/// step one probe of `txn`'s primary key. `UNION` (not `UNION ALL`) ends the walk on a corrupt
/// chain that loops, and a step stays on the card's own transactions. SQLite's plan: `SEARCH
/// card USING INTEGER PRIMARY KEY`, then `SEARCH t USING INDEX sqlite_autoindex_txn_1
/// (transaction_id=?)` per step and per row read (`store_sqlite.rs` checks it).
pub const SEARCH_CARD_TRANSACTIONS: &str = concat!(
    "WITH RECURSIVE chain (id) AS (SELECT last_txn_id FROM card WHERE card_id = $11 \
     AND last_txn_id IS NOT NULL \
     UNION SELECT t.prev_card_txn_id FROM chain JOIN txn AS t ON t.transaction_id = chain.id \
     WHERE t.card_id = $11 AND t.prev_card_txn_id IS NOT NULL) \
     SELECT ",
    txn_columns!(),
    " FROM chain JOIN txn ON txn.transaction_id = chain.id \
     WHERE txn.card_id = $11 AND ($1 IS NULL OR acquirer_institution_id = $1 \
     OR issuer_institution_id = $1 \
     OR EXISTS (SELECT 1 FROM txn_leg AS l WHERE l.transaction_id = txn.transaction_id \
     AND l.institution_id = $1)) \
     AND ($2 IS NULL OR rrn = $2) AND ($3 IS NULL OR terminal_id = $3) \
     AND decided_at_us >= $4 AND decided_at_us < $5 \
     AND ($6 IS NULL OR response_code = $6) AND ($7 IS NULL OR pan_masked LIKE $7) \
     AND (decided_at_us < $8 OR (decided_at_us = $8 AND transaction_id < $9)) \
     ORDER BY decided_at_us DESC, transaction_id DESC LIMIT $10"
);
