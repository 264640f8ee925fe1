-- The operator console (issue 26).
--
-- An institution's name in Chinese beside the name it has (the console shows names, not codes,
-- in the operator's language); NULL shows the other name.
ALTER TABLE institution ADD COLUMN name_zh TEXT CHECK (name_zh IS NULL OR length(name_zh) BETWEEN 1 AND 100);

-- A card's life-cycle history is its audit entries (subject 'card:<id>'), read by subject newest
-- first instead of scanning the chain.
CREATE INDEX audit_log_by_subject ON audit_log (subject, audit_seq);

-- A card's transactions, for its page in the console (GET /transactions?card_id=). 0005 dropped
-- this index because no query read transactions by card and it cost every decision one more
-- index page in the group commit; the card's history is such a query now (a declined payment
-- moves no money, so the accounts' journal does not have it), so it comes back, partial as before.
CREATE INDEX txn_by_card ON txn (card_id, decided_at_us) WHERE card_id IS NOT NULL;

-- Four eyes both ways: a second administrator approves or rejects a proposed role change, with a
-- reason for a rejection.
ALTER TABLE operator_role_change DROP CONSTRAINT operator_role_change_state_check;
ALTER TABLE operator_role_change ADD CONSTRAINT operator_role_change_state_check
    CHECK (state IN ('proposed', 'approved', 'rejected'));
ALTER TABLE operator_role_change ADD COLUMN rejected_by TEXT,
    ADD COLUMN rejected_at_us BIGINT,
    ADD COLUMN rejection_reason TEXT;
CREATE INDEX operator_role_change_open ON operator_role_change (proposed_at_us, change_id)
    WHERE state = 'proposed';
