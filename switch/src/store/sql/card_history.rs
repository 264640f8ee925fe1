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
/// step one probe of `txn`'s primary key that reads the whole row, so the filters run over the
/// walk and nothing joins back to `txn` (joined, SQLite preferred a range of
/// `txn_by_decided_at` over the whole window against the walk: a scan of every transaction).
/// `UNION` (not `UNION ALL`) ends the walk on a corrupt chain that loops, and a step stays on
/// the card's own transactions. SQLite's plan: `SEARCH card USING INTEGER PRIMARY KEY`, then
/// `SEARCH txn USING INDEX sqlite_autoindex_txn_1 (transaction_id=?)` for the head and for each
/// step (`store_sqlite.rs` checks it). The step's column list is [`txn_columns!`] on `t`.
pub const SEARCH_CARD_TRANSACTIONS: &str = concat!(
    "WITH RECURSIVE chain (",
    txn_columns!(),
    ", prev) AS (SELECT ",
    txn_columns!(),
    ", prev_card_txn_id FROM txn WHERE transaction_id = \
     (SELECT last_txn_id FROM card WHERE card_id = $11) AND card_id = $11 \
     UNION SELECT t.transaction_id, t.kind, t.mti, t.processing_code, t.card_id, t.pan_masked, \
     t.acquirer_institution_id, t.issuer_institution_id, t.terminal_id, t.stan, t.rrn, \
     t.transmission_at, t.amount_fen, t.response_code, t.original_transaction_id, t.event_id, \
     t.decided_at_us, t.prev_card_txn_id FROM chain AS c JOIN txn AS t \
     ON t.transaction_id = c.prev WHERE t.card_id = $11) \
     SELECT ",
    txn_columns!(),
    " FROM chain",
    txn_search_filters!("chain")
);
