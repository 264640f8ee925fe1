-- Clearing ledger 0006, SQLite dialect: `posting` again, as a read-only view for auditors.
-- The PostgreSQL twin is ../postgres/0006_posting_view.sql.
--
-- Migration 0004 packed each event's legs into `applied_event.legs` (issue 27: the journal's
-- inserts were most of the ledger's CPU). The ledger's readers unpack them in Rust
-- (`clearing::ledger::legs`); an auditor with only SQL access lost the one-row-per-leg table
-- they queried. This view gives it back with the columns `posting` had (hold_id aside:
-- `pending_hold.resolved_by_event_id` links a hold to the event that posted it), unpacked
-- from the packed form documented in 0004:
--   legs = leg;leg;...   leg = leg_no,kind,debit_institution,debit_account,
--                              credit_institution,credit_account,amount_fen
-- Institution ids are digits, so neither separator occurs inside a field; the text is turned
-- into a JSON array of arrays of strings and walked with json_each (SQLite's JSON functions,
-- built in since 3.38). The codes map to the names the ledger's readers use.
-- A view cannot be written to; the journal under it stays append-only.

CREATE VIEW posting AS
SELECT
    a.window_id,
    a.event_id,
    CAST(json_extract(l.value, '$[0]') AS INTEGER) AS leg_no,
    a.event_type,
    CASE json_extract(l.value, '$[1]')
        WHEN '1' THEN 'pooled_fund' WHEN '2' THEN 'personal_account' WHEN '3' THEN 'bank'
        WHEN '4' THEN 'social_security_fund' WHEN '5' THEN 'fee' END AS leg_kind,
    json_extract(l.value, '$[2]') AS debit_institution,
    CASE json_extract(l.value, '$[3]')
        WHEN '1' THEN 'pooled_fund' WHEN '2' THEN 'personal_accounts' WHEN '3' THEN 'merchant'
        WHEN '4' THEN 'bank_settlement' WHEN '5' THEN 'social_security_fund'
        WHEN '6' THEN 'fees' END AS debit_account,
    json_extract(l.value, '$[4]') AS credit_institution,
    CASE json_extract(l.value, '$[5]')
        WHEN '1' THEN 'pooled_fund' WHEN '2' THEN 'personal_accounts' WHEN '3' THEN 'merchant'
        WHEN '4' THEN 'bank_settlement' WHEN '5' THEN 'social_security_fund'
        WHEN '6' THEN 'fees' END AS credit_account,
    CAST(json_extract(l.value, '$[6]') AS INTEGER) AS amount_fen,
    a.applied_at_us AS posted_at_us
FROM applied_event AS a,
    json_each('[["' || replace(replace(a.legs, ',', '","'), ';', '"],["') || '"]]') AS l
WHERE a.legs IS NOT NULL;
