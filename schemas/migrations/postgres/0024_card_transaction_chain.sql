-- A card's transactions as a chain instead of an index (issue 27, "bytes written per request").
-- The SQLite twin is ../sqlite/0024_card_transaction_chain.sql.
--
-- What it replaces: `txn_by_card (card_id, decided_at_us)` (0016, rebuilt by 0018), the index
-- behind a card's history (`GET /transactions?card_id=`, the console's card page). Every
-- decision inserted into a leaf chosen by its card id, at random among the cards: on SQLite it
-- was the largest B-tree the group commit wrote, 21.5 % of the WAL frames (benches/README.md,
-- "Write path after this wave's merges", `wal_pages.py` on a copy of the log 9 s into a 16 x 16
-- load), each page written twice (the log, then the checkpoint). On PostgreSQL it was one more
-- index entry per decision, on a leaf as random, in the WAL and the checkpoint. The card row's
-- update stays a heap-only tuple (fillfactor 70, 0005) as long as `last_txn_id` is not indexed.
--
-- Instead, each card row holds its newest transaction (`last_txn_id`) and each transaction row
-- the same card's previous one (`prev_card_txn_id`): a linked list from the card's head. The
-- group commit already reads and writes the card row of a card-bearing decision (its ATC), so
-- the head rides that row write, one per card per batch (`store::plan::card_chain`); the
-- transaction row carries its link at no extra page. The history is read by walking the chain
-- from the card's head (`store::sql::card_history`), and `switch verify` checks that the chain
-- of every card reaches each of its transactions exactly once (invariant card-chain-whole).
--
-- Backfill: each card's transactions in (decided_at_us, transaction_id) order, each linked to
-- the one before it (LAG), the card's head its latest.
ALTER TABLE card ADD COLUMN last_txn_id UUID;
ALTER TABLE txn ADD COLUMN prev_card_txn_id UUID;

UPDATE txn SET prev_card_txn_id = c.prev
    FROM (SELECT transaction_id, LAG(transaction_id) OVER (PARTITION BY card_id
              ORDER BY decided_at_us, transaction_id) AS prev
          FROM txn WHERE card_id IS NOT NULL) AS c
    WHERE c.transaction_id = txn.transaction_id AND c.prev IS NOT NULL;
UPDATE card SET last_txn_id = h.transaction_id
    FROM (SELECT card_id, transaction_id, ROW_NUMBER() OVER (PARTITION BY card_id
              ORDER BY decided_at_us DESC, transaction_id DESC) AS n
          FROM txn WHERE card_id IS NOT NULL) AS h
    WHERE h.card_id = card.card_id AND h.n = 1;

DROP INDEX IF EXISTS txn_by_card;
