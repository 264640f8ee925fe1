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

-- And the table is ordered by field 7 first (ISO 8583 bit 7, transmission date and time,
-- MMDDhhmmss), then terminal and STAN: a flush inserts a quarter second of keys, sorted, so
-- they land at the right edge of the tree (where the last flush ended) instead of in one leaf
-- per terminal in the middle of it; the helper's measurement of the terminal-first order put
-- a flush at 110-160 pages per 1,000 keys, about four times what the rows themselves fill.
-- (Without the memory tier this order was worse: each commit's keys spread over the whole
-- second's range, migration 0019's note.) Lookups give all six columns, so any order serves
-- them; the purge by created_at_us reads the whole table either way.
CREATE TABLE duplicate_key_0025 (
    terminal_id     TEXT NOT NULL,
    stan            TEXT NOT NULL,
    rrn             TEXT NOT NULL,
    transmission_at TEXT NOT NULL,
    message_class   TEXT NOT NULL CHECK (length(message_class) = 2),
    transaction_id  BLOB NOT NULL,
    created_at_us   INTEGER NOT NULL,
    acquirer        TEXT NOT NULL,
    PRIMARY KEY (transmission_at, terminal_id, stan, rrn, message_class, acquirer)
) STRICT, WITHOUT ROWID;
INSERT INTO duplicate_key_0025 (terminal_id, stan, rrn, transmission_at, message_class,
    transaction_id, created_at_us, acquirer)
    SELECT terminal_id, stan, rrn, transmission_at, message_class, transaction_id,
           created_at_us, acquirer
    FROM duplicate_key;
DROP TABLE duplicate_key;
ALTER TABLE duplicate_key_0025 RENAME TO duplicate_key;
