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
-- reason for a rejection. SQLite cannot change a CHECK in place, so the table is rebuilt.
CREATE TABLE operator_role_change_0016 (
    change_id        TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES operator_user (user_id),
    role_ids         TEXT NOT NULL,
    reason           TEXT NOT NULL,
    proposed_by      TEXT NOT NULL,
    proposed_at_us   INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('proposed', 'approved', 'rejected')),
    approved_by      TEXT,
    approved_at_us   INTEGER,
    rejected_by      TEXT,
    rejected_at_us   INTEGER,
    rejection_reason TEXT
) STRICT;
INSERT INTO operator_role_change_0016 (change_id, user_id, role_ids, reason, proposed_by,
    proposed_at_us, state, approved_by, approved_at_us)
SELECT change_id, user_id, role_ids, reason, proposed_by, proposed_at_us, state, approved_by,
    approved_at_us FROM operator_role_change;
DROP TABLE operator_role_change;
ALTER TABLE operator_role_change_0016 RENAME TO operator_role_change;
CREATE INDEX operator_role_change_open ON operator_role_change (proposed_at_us, change_id)
    WHERE state = 'proposed';
