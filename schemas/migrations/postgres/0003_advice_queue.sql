-- Store-and-forward advices of stand-in approvals (ISO 8583:1987 authorization advice
-- 0120/0121 → 0130, financial advice 0220/0221 → 0230). When a bank's link is down and a
-- stand-in rule lets the switch approve on the bank's behalf, the advice is queued in the same
-- database transaction as the approval and sent until the bank acknowledges it. Same shape as
-- reversal_queue: references only, the forwarder rebuilds the message from the transaction.
--   mti_class      '0120' (authorization) or '0220' (financial): the first attempt's MTI;
--                  repeats add 1 (0121, 0221);
--   card_id        the card, so the per-card daily stand-in limit reads this table alone;
--   stan, transmission_at  fields 11 and 7 of the advice (allocated on the bank's link);
--   reason_code    field 39 of the advice: why the switch stood in ('91' issuer unavailable);
--   auth_code      field 38: the stand-in approval code.
-- The SQLite twin is ../sqlite/0003_advice_queue.sql.
CREATE TABLE advice_queue (
    advice_id                  UUID PRIMARY KEY,
    transaction_id             UUID NOT NULL REFERENCES txn (transaction_id),
    card_id                    BIGINT REFERENCES card (card_id),
    destination_institution_id TEXT NOT NULL REFERENCES institution (institution_id),
    mti_class                  TEXT NOT NULL CHECK (mti_class IN ('0120', '0220')),
    processing_code            TEXT NOT NULL CHECK (length(processing_code) = 6),
    amount_fen                 BIGINT NOT NULL CHECK (amount_fen > 0),
    stan                       TEXT NOT NULL,
    transmission_at            TEXT NOT NULL,
    reason_code                TEXT NOT NULL CHECK (length(reason_code) = 2),
    auth_code                  TEXT NOT NULL CHECK (length(auth_code) = 6),
    state                      TEXT NOT NULL CHECK (state IN ('pending', 'acknowledged')),
    attempts                   BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at_us         BIGINT NOT NULL,
    last_response_code         TEXT,
    created_at_us              BIGINT NOT NULL,
    acknowledged_at_us         BIGINT
);
CREATE INDEX advice_pending_due ON advice_queue (next_attempt_at_us) WHERE state = 'pending';
-- A reversal of a stand-in approval waits for its advice (the bank must know the original
-- before it is reversed): the forwarder looks the advice up by transaction.
CREATE INDEX advice_by_transaction ON advice_queue (transaction_id);
-- The per-card daily stand-in total.
CREATE INDEX advice_by_card ON advice_queue (card_id, destination_institution_id, created_at_us);
