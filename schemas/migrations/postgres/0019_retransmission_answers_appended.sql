-- The answers remembered for retransmissions move from the duplicate key to a table of their
-- own keyed by transaction id (UUID v7: appended in time order). Why:
-- ../sqlite/0019_retransmission_answers_appended.sql.
CREATE TABLE txn_answer (
    transaction_id UUID PRIMARY KEY,
    answer         TEXT NOT NULL
);
INSERT INTO txn_answer (transaction_id, answer)
    SELECT transaction_id, answer FROM duplicate_key WHERE answer IS NOT NULL
    ON CONFLICT (transaction_id) DO NOTHING;
ALTER TABLE duplicate_key DROP COLUMN answer;
