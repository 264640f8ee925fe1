-- Clearing ledger 0006, PostgreSQL dialect: `posting` again, as a read-only view for auditors.
-- The SQLite twin is ../sqlite/0006_posting_view.sql, which says why.
--
-- legs = leg;leg;...   leg = leg_no,kind,debit_institution,debit_account,
--                             credit_institution,credit_account,amount_fen
-- (0004_ledger_packed_journal.sql); the codes index the names the ledger's readers use.

CREATE VIEW posting AS
SELECT
    a.window_id,
    a.event_id,
    split_part(l.leg, ',', 1)::int8 AS leg_no,
    a.event_type,
    (ARRAY['pooled_fund', 'personal_account', 'bank', 'social_security_fund',
        'fee'])[split_part(l.leg, ',', 2)::int] AS leg_kind,
    split_part(l.leg, ',', 3) AS debit_institution,
    (ARRAY['pooled_fund', 'personal_accounts', 'merchant', 'bank_settlement',
        'social_security_fund', 'fees'])[split_part(l.leg, ',', 4)::int] AS debit_account,
    split_part(l.leg, ',', 5) AS credit_institution,
    (ARRAY['pooled_fund', 'personal_accounts', 'merchant', 'bank_settlement',
        'social_security_fund', 'fees'])[split_part(l.leg, ',', 6)::int] AS credit_account,
    split_part(l.leg, ',', 7)::int8 AS amount_fen,
    a.applied_at_us AS posted_at_us
FROM applied_event AS a
CROSS JOIN LATERAL unnest(string_to_array(a.legs, ';')) AS l(leg)
WHERE a.legs IS NOT NULL;
