-- Write path of the group commit.
--
-- The `txn_by_card` index (0001) is dropped: no query of the switch reads transactions by card
-- (lookups go by RRN or transaction id; a card's money movements are in `account_movement`,
-- indexed by account), and keeping it cost every decision one more randomly placed index page in
-- the group commit. A card's history, should an operator view need it, can be served from the
-- accounts' journal or by adding the index back in a later migration.
DROP INDEX IF EXISTS txn_by_card;
