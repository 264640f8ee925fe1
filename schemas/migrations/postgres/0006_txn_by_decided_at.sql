-- Transactions by decision time, for the acquirer reconciliation (0500/0510, ISO 8583:1987
-- fields 74-77 and 86-89): `Store::acquirer_totals` sums one acquirer's approved transactions
-- decided within a window. Without an index the query read the whole `txn` table for every 0500,
-- a cost that grows with every day the switch keeps its history. Decision times only increase,
-- so each group commit appends its entries at the right edge of this index: about one page per
-- commit, not one per decision.
CREATE INDEX txn_by_decided_at ON txn (decided_at_us);
