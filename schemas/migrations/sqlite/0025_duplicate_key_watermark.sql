-- The duplicate-detection keys become a two-tier store on SQLite (issue 27, bytes written per
-- request): a group commit no longer inserts its decisions' keys into duplicate_key (one leaf
-- per terminal per commit, keyed by terminal first); they stay in the store's memory, and the
-- writer inserts them in bulk, sorted, every 250 ms or 2,000 keys
-- (switch/src/store/sqlite/key_tier.rs). The txn row of each decision, written in the same
-- commit, carries every column of its key and is the durable record until then.
--
-- This one row is the flush's watermark: the highest txn rowid whose key is in duplicate_key,
-- written in the flush's transaction. At open the store rebuilds its memory from the txn rows
-- above it. Every key written so far is in duplicate_key, so it starts at the last txn row.
--
-- SQLite only: PostgreSQL, shared by several nodes, keeps inserting each key with its commit
-- (no node could see another's memory).
CREATE TABLE duplicate_key_watermark (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    txn_rowid INTEGER NOT NULL CHECK (txn_rowid >= 0)
) STRICT;
INSERT INTO duplicate_key_watermark (id, txn_rowid)
    SELECT 1, COALESCE(MAX(rowid), 0) FROM txn;
