-- Clearing ledger 0004, PostgreSQL dialect (issue 27): the twin of
-- ../sqlite/0004_ledger_packed_journal.sql (which documents the packed form of `legs` and its
-- codes): one journal row per event, its legs packed in `applied_event.legs`, and `posting`
-- goes. Per event that posts, one heap tuple and two index entries where there were two heap
-- tuples and two index entries per event plus one of each per further leg.

ALTER TABLE applied_event ADD COLUMN legs TEXT;

UPDATE applied_event AS a SET legs = p.legs
FROM (
    SELECT window_id, event_id, string_agg(leg_no || ',' ||
            CASE leg_kind WHEN 'pooled_fund' THEN 1 WHEN 'personal_account' THEN 2
                WHEN 'bank' THEN 3 WHEN 'social_security_fund' THEN 4 WHEN 'fee' THEN 5 END
            || ',' || debit_institution || ',' ||
            CASE debit_account WHEN 'pooled_fund' THEN 1 WHEN 'personal_accounts' THEN 2
                WHEN 'merchant' THEN 3 WHEN 'bank_settlement' THEN 4
                WHEN 'social_security_fund' THEN 5 WHEN 'fees' THEN 6 END
            || ',' || credit_institution || ',' ||
            CASE credit_account WHEN 'pooled_fund' THEN 1 WHEN 'personal_accounts' THEN 2
                WHEN 'merchant' THEN 3 WHEN 'bank_settlement' THEN 4
                WHEN 'social_security_fund' THEN 5 WHEN 'fees' THEN 6 END
            || ',' || amount_fen, ';' ORDER BY leg_no) AS legs
    FROM posting GROUP BY window_id, event_id
) AS p
WHERE a.event_id = p.event_id AND a.window_id = p.window_id
    AND a.outcome IN ('posted', 'hold_posted');

ALTER TABLE applied_event ADD CONSTRAINT applied_event_legs_posted
    CHECK (legs IS NULL OR outcome IN ('posted', 'hold_posted'));
CREATE INDEX applied_event_window ON applied_event (window_id, event_id)
    WHERE legs IS NOT NULL;

DROP TABLE posting;
DROP FUNCTION posting_append_only();

CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the journal is append-only'; END $$;
CREATE TRIGGER applied_event_append_only BEFORE UPDATE OR DELETE ON applied_event
FOR EACH ROW EXECUTE FUNCTION journal_append_only();
