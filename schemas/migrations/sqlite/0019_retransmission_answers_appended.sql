-- The answers remembered for retransmissions move from the duplicate key to a table of their
-- own keyed by transaction id (issue 27, time-ordered keys). The PostgreSQL twin is
-- ../postgres/0019_retransmission_answers_appended.sql.
--
-- Why: the answer (fields 38, 54, 55 and 63 as JSON, about 250 bytes) is known only after the
-- decision's commit, so it was an UPDATE of a duplicate key written a moment before: the row
-- grew to four times its size in place, on leaves keyed by terminal (one per active terminal
-- per commit), and duplicate_key was a third of the pages the switch wrote under the
-- standard load (benches/scripts/wal_pages.py). Transaction ids are UUID v7, ordered by time,
-- so answers are appended at the right edge of their own B-tree, and the duplicate keys are
-- written once and stay narrow. A lookup joins the two by transaction id; the purge of old
-- duplicate keys purges answers by the time in their ids (`Store::purge_duplicate_keys`).
CREATE TABLE txn_answer (
    transaction_id BLOB PRIMARY KEY CHECK (length(transaction_id) = 16),
    answer         TEXT NOT NULL
) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO txn_answer (transaction_id, answer)
    SELECT transaction_id, answer FROM duplicate_key WHERE answer IS NOT NULL;
CREATE TABLE duplicate_key_new (
    terminal_id     TEXT NOT NULL,
    stan            TEXT NOT NULL,
    rrn             TEXT NOT NULL,
    transmission_at TEXT NOT NULL,
    message_class   TEXT NOT NULL CHECK (length(message_class) = 2),
    transaction_id  BLOB NOT NULL,
    created_at_us   INTEGER NOT NULL,
    acquirer        TEXT NOT NULL,
    PRIMARY KEY (terminal_id, stan, rrn, transmission_at, message_class, acquirer)
) STRICT, WITHOUT ROWID;
INSERT INTO duplicate_key_new (terminal_id, stan, rrn, transmission_at, message_class,
    transaction_id, created_at_us, acquirer)
    SELECT terminal_id, stan, rrn, transmission_at, message_class, transaction_id,
           created_at_us, acquirer
    FROM duplicate_key;
DROP TABLE duplicate_key;
ALTER TABLE duplicate_key_new RENAME TO duplicate_key;
