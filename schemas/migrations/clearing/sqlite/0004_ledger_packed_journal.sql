-- Clearing ledger 0004, SQLite dialect (issue 27): one journal row per event, its legs packed.
-- The PostgreSQL twin is ../postgres/0004_ledger_packed_journal.sql.
--
-- Applying a batch cost ~10 µs of CPU per event, most of it SQLite inserting the journal: one
-- `applied_event` row and one `posting` row per leg (1.5 per event in the benchmark's mix), each
-- posting repeating the event type, the leg kind, both institutions and both account names as
-- text, with 12 bound parameters. Now an event that posts carries its legs in its own
-- `applied_event` row (`legs`), and `posting` goes:
--
-- * `legs`: the event's posted legs in leg_no order, joined by ';', each leg
--   `leg_no,kind,debit_institution,debit_account,credit_institution,credit_account,amount_fen`
--   in decimal, kind and accounts as the codes below (institution ids are digits). NULL when
--   the event posted nothing (held, hold_voided, dead_letter).
--     leg kind: 1 pooled_fund, 2 personal_account, 3 bank, 4 social_security_fund, 5 fee
--     account:  1 pooled_fund, 2 personal_accounts, 3 merchant, 4 bank_settlement,
--               5 social_security_fund, 6 fees
--   The rest of what a posting held is the event's: event_type, window_id, and posted_at_us
--   (= applied_at_us, one transaction). posting.hold_id goes: pending_hold.resolved_by_event_id
--   links the hold and its completion already.
-- * `applied_event_window` (window_id, event_id) over the events that posted is the window's
--   canonical order (event_id, then leg_no inside `legs`): close-window and the reports read a
--   window through it, as they read posting's primary key before. One index entry per event
--   where posting wrote a row per leg.
-- * The journal stays append-only: applied_event refuses UPDATE and DELETE (nothing updates
--   or deletes it; posting had the same triggers).
--
-- What is read back is unchanged: `clearing::window` unpacks the legs into the same posting
-- records (canonical lines, digests, statements). Existing postings are packed here, once,
-- inside the migration's transaction.

ALTER TABLE applied_event ADD COLUMN legs TEXT
    CHECK (legs IS NULL OR outcome IN ('posted', 'hold_posted'));

UPDATE applied_event SET legs = (
    SELECT group_concat(p.leg_no || ',' ||
            CASE p.leg_kind WHEN 'pooled_fund' THEN 1 WHEN 'personal_account' THEN 2
                WHEN 'bank' THEN 3 WHEN 'social_security_fund' THEN 4 WHEN 'fee' THEN 5 END
            || ',' || p.debit_institution || ',' ||
            CASE p.debit_account WHEN 'pooled_fund' THEN 1 WHEN 'personal_accounts' THEN 2
                WHEN 'merchant' THEN 3 WHEN 'bank_settlement' THEN 4
                WHEN 'social_security_fund' THEN 5 WHEN 'fees' THEN 6 END
            || ',' || p.credit_institution || ',' ||
            CASE p.credit_account WHEN 'pooled_fund' THEN 1 WHEN 'personal_accounts' THEN 2
                WHEN 'merchant' THEN 3 WHEN 'bank_settlement' THEN 4
                WHEN 'social_security_fund' THEN 5 WHEN 'fees' THEN 6 END
            || ',' || p.amount_fen, ';' ORDER BY p.leg_no)
    FROM posting AS p
    WHERE p.window_id = applied_event.window_id AND p.event_id = applied_event.event_id)
WHERE outcome IN ('posted', 'hold_posted');

CREATE INDEX applied_event_window ON applied_event (window_id, event_id)
    WHERE legs IS NOT NULL;

DROP TABLE posting;

CREATE TRIGGER applied_event_no_update BEFORE UPDATE ON applied_event
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER applied_event_no_delete BEFORE DELETE ON applied_event
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
