-- Clearing ledger 0003, PostgreSQL dialect (issue 27): the twin of
-- ../sqlite/0003_ledger_lean_journal.sql, one index write fewer per journal row.
--
-- * posting: posting_seq (an identity nobody reads) and its primary-key index go; the
--   UNIQUE (window_id, event_id, leg_no) index, the window's canonical order, becomes the
--   primary key.
-- * applied_event: the UNIQUE constraint on reverses_event_id indexed every event (NULL for all
--   but reversals); a partial unique index over the non-NULL values keeps the guard (nothing is
--   reversed twice) with an entry per reversal only.

ALTER TABLE posting DROP COLUMN posting_seq;
ALTER TABLE posting DROP CONSTRAINT posting_window_id_event_id_leg_no_key,
    ADD CONSTRAINT posting_pkey PRIMARY KEY (window_id, event_id, leg_no);

ALTER TABLE applied_event DROP CONSTRAINT applied_event_reverses_event_id_key;
CREATE UNIQUE INDEX applied_event_reverses ON applied_event (reverses_event_id)
    WHERE reverses_event_id IS NOT NULL;
