-- Write path of the group commit.
--
-- The `txn_by_card` index (0001) is dropped: no query of the switch reads transactions by card
-- (lookups go by RRN or transaction id; a card's money movements are in `account_movement`,
-- indexed by account), and keeping it cost every decision one more randomly placed index page in
-- the group commit. A card's history, should an operator view need it, can be served from the
-- accounts' journal or by adding the index back in a later migration.
DROP INDEX IF EXISTS txn_by_card;

-- Every decision updates its card's `atc_max` and one or two `account` balances. With full pages
-- (fillfactor 100) each such update writes the new row version to another page and a new entry
-- into every index of the table; with room left on the page PostgreSQL keeps the new version
-- beside the old one (a heap-only tuple, HOT: no indexed column changes) and touches no index.
-- Applies to pages written from now on (all of them in a new database).
ALTER TABLE account SET (fillfactor = 70);
ALTER TABLE card SET (fillfactor = 70);
