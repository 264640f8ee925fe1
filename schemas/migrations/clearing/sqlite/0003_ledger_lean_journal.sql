-- Clearing ledger 0003, SQLite dialect (issue 27): one B-tree write per journal row where there
-- were two. The PostgreSQL twin is ../postgres/0003_ledger_lean_journal.sql.
--
-- * posting: the rowid table plus its UNIQUE (window_id, event_id, leg_no) index were two
--   B-trees per posting. Nothing reads posting_seq; that key is the window's canonical order
--   (close-window and the reports read it without sorting), so it becomes the primary key of a
--   WITHOUT ROWID table: the rows themselves are stored in it. Event ids are UUIDv7, so new
--   postings go to the right edge of the current window's keys.
-- * applied_event: `reverses_event_id BLOB UNIQUE` kept an index entry for every event, NULL for
--   all but reversals. A partial unique index over the non-NULL values keeps the guard (nothing
--   is reversed twice) and the lookup `reverses_event_id = ?` with an entry per reversal only.
--
-- SQLite cannot drop a column's UNIQUE or change a table's key in place: both tables are
-- rebuilt (same columns, constraints and triggers otherwise), which copies an existing ledger
-- once, inside the migration's transaction.

CREATE TABLE applied_event_0003 (
    event_id       BLOB PRIMARY KEY CHECK (length(event_id) = 16),
    event_type     TEXT NOT NULL,
    acquirer_id    TEXT NOT NULL,
    amount_fen     INTEGER NOT NULL CHECK (amount_fen >= 0),
    occurred_at_us INTEGER NOT NULL,
    applied_at_us  INTEGER NOT NULL,
    window_id      INTEGER NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('posted', 'held', 'hold_posted',
                       'hold_voided', 'dead_letter')),
    -- Set on reversals: the event reversed (unique: see applied_event_reverses).
    reverses_event_id BLOB
) STRICT, WITHOUT ROWID;
INSERT INTO applied_event_0003 (event_id, event_type, acquirer_id, amount_fen, occurred_at_us,
    applied_at_us, window_id, outcome, reverses_event_id)
SELECT event_id, event_type, acquirer_id, amount_fen, occurred_at_us, applied_at_us, window_id,
    outcome, reverses_event_id FROM applied_event;
DROP TABLE applied_event;
ALTER TABLE applied_event_0003 RENAME TO applied_event;
CREATE UNIQUE INDEX applied_event_reverses ON applied_event (reverses_event_id)
    WHERE reverses_event_id IS NOT NULL;

CREATE TABLE posting_0003 (
    window_id          INTEGER NOT NULL,
    event_id           BLOB NOT NULL CHECK (length(event_id) = 16),
    leg_no             INTEGER NOT NULL CHECK (leg_no BETWEEN 1 AND 255),
    event_type         TEXT NOT NULL,
    leg_kind           TEXT NOT NULL,
    debit_institution  TEXT NOT NULL,
    debit_account      TEXT NOT NULL,
    credit_institution TEXT NOT NULL,
    credit_account     TEXT NOT NULL,
    amount_fen         INTEGER NOT NULL CHECK (amount_fen > 0),
    hold_id            BLOB,
    posted_at_us       INTEGER NOT NULL,
    CHECK (debit_institution <> credit_institution OR debit_account <> credit_account),
    -- The window's canonical order (close-window and reports read it without sorting).
    PRIMARY KEY (window_id, event_id, leg_no)
) STRICT, WITHOUT ROWID;
INSERT INTO posting_0003 (window_id, event_id, leg_no, event_type, leg_kind, debit_institution,
    debit_account, credit_institution, credit_account, amount_fen, hold_id, posted_at_us)
SELECT window_id, event_id, leg_no, event_type, leg_kind, debit_institution, debit_account,
    credit_institution, credit_account, amount_fen, hold_id, posted_at_us FROM posting;
DROP TABLE posting;
ALTER TABLE posting_0003 RENAME TO posting;
CREATE TRIGGER posting_no_update BEFORE UPDATE ON posting
BEGIN SELECT RAISE(ABORT, 'posting is append-only'); END;
CREATE TRIGGER posting_no_delete BEFORE DELETE ON posting
BEGIN SELECT RAISE(ABORT, 'posting is append-only'); END;
