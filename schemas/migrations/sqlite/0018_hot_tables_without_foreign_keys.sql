-- The hot tables lose their foreign keys, and two indexes that no hot-path query reads go
-- (issue 27, decision 2 and "fewer secondary indexes"). The PostgreSQL twin is
-- ../postgres/0018_hot_tables_without_foreign_keys.sql.
--
-- Foreign keys: txn, txn_leg, account_movement, reversal_queue and advice_queue are written by
-- every group commit, and each foreign key was one more B-tree probe per row inside it. What
-- they guarded is now checked by the store's auditor (`switch verify`,
-- `Store::verify_integrity`: every leg, movement, hold, reversal and advice has its
-- transaction and account), which the store suite runs after every case, the crash test after
-- each restart and the demo test on the demo's data. SQLite cannot drop a constraint in place,
-- so each table is rebuilt (https://www.sqlite.org/lang_altertable.html#otheralter): children
-- before txn, their parent, so dropping txn checks no foreign key.
--
-- Indexes:
--   movement_by_account (account_id, movement_id): no query of the switch reads one account's
--     movements (`Store::journal_balance`, which the tests call, and `switch verify` scan the
--     journal), and with accounts keyed at random every movement cost one more randomly placed
--     leaf page in the group commit, written twice (the log, then the checkpoint).
--   card_day_usage_by_day (day_start_us): the daily purge's index. card_day_usage is keyed
--     (day_start_us, card_id) instead, so the purge reads a prefix of the primary key and each
--     approval writes one B-tree, not two; the planner's lookups give both columns.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE reversal_queue_new (
    reversal_id                BLOB PRIMARY KEY CHECK (length(reversal_id) = 16),
    original_transaction_id    BLOB NOT NULL,
    destination_institution_id TEXT NOT NULL,
    reason                     TEXT NOT NULL CHECK (reason IN ('issuer_timeout',
                                   'issuer_unavailable', 'late_approval', 'acquirer_request')),
    amount_fen                 INTEGER NOT NULL CHECK (amount_fen >= 0),
    stan                       TEXT NOT NULL,
    transmission_at            TEXT NOT NULL,
    state                      TEXT NOT NULL CHECK (state IN ('pending', 'acknowledged')),
    attempts                   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at_us         INTEGER NOT NULL,
    last_response_code         TEXT,
    created_at_us              INTEGER NOT NULL,
    acknowledged_at_us         INTEGER
) STRICT;
INSERT INTO reversal_queue_new (reversal_id, original_transaction_id,
    destination_institution_id, reason, amount_fen, stan, transmission_at, state, attempts,
    next_attempt_at_us, last_response_code, created_at_us, acknowledged_at_us)
    SELECT reversal_id, original_transaction_id, destination_institution_id, reason,
           amount_fen, stan, transmission_at, state, attempts, next_attempt_at_us,
           last_response_code, created_at_us, acknowledged_at_us
    FROM reversal_queue;
DROP TABLE reversal_queue;
ALTER TABLE reversal_queue_new RENAME TO reversal_queue;
CREATE INDEX reversal_pending_due ON reversal_queue (next_attempt_at_us) WHERE state = 'pending';

CREATE TABLE advice_queue_new (
    advice_id                  BLOB PRIMARY KEY CHECK (length(advice_id) = 16),
    transaction_id             BLOB NOT NULL,
    card_id                    INTEGER,
    destination_institution_id TEXT NOT NULL,
    mti_class                  TEXT NOT NULL CHECK (mti_class IN ('0120', '0220')),
    processing_code            TEXT NOT NULL CHECK (length(processing_code) = 6),
    amount_fen                 INTEGER NOT NULL CHECK (amount_fen > 0),
    stan                       TEXT NOT NULL,
    transmission_at            TEXT NOT NULL,
    reason_code                TEXT NOT NULL CHECK (length(reason_code) = 2),
    auth_code                  TEXT NOT NULL CHECK (length(auth_code) = 6),
    state                      TEXT NOT NULL CHECK (state IN ('pending', 'acknowledged')),
    attempts                   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at_us         INTEGER NOT NULL,
    last_response_code         TEXT,
    created_at_us              INTEGER NOT NULL,
    acknowledged_at_us         INTEGER
) STRICT;
INSERT INTO advice_queue_new (advice_id, transaction_id, card_id, destination_institution_id,
    mti_class, processing_code, amount_fen, stan, transmission_at, reason_code, auth_code,
    state, attempts, next_attempt_at_us, last_response_code, created_at_us, acknowledged_at_us)
    SELECT advice_id, transaction_id, card_id, destination_institution_id, mti_class,
           processing_code, amount_fen, stan, transmission_at, reason_code, auth_code, state,
           attempts, next_attempt_at_us, last_response_code, created_at_us, acknowledged_at_us
    FROM advice_queue;
DROP TABLE advice_queue;
ALTER TABLE advice_queue_new RENAME TO advice_queue;
CREATE INDEX advice_pending_due ON advice_queue (next_attempt_at_us) WHERE state = 'pending';
CREATE INDEX advice_by_transaction ON advice_queue (transaction_id);
CREATE INDEX advice_by_card ON advice_queue (card_id, destination_institution_id, created_at_us);

CREATE TABLE txn_leg_new (
    transaction_id BLOB NOT NULL,
    leg_no         INTEGER NOT NULL CHECK (leg_no BETWEEN 1 AND 255),
    kind           TEXT NOT NULL CHECK (kind IN ('pooled_fund', 'personal_account', 'bank',
                       'social_security_fund', 'fee')),
    institution_id TEXT NOT NULL,
    account_id     INTEGER,
    amount_fen     INTEGER NOT NULL CHECK (amount_fen > 0),
    PRIMARY KEY (transaction_id, leg_no)
) STRICT, WITHOUT ROWID;
INSERT INTO txn_leg_new (transaction_id, leg_no, kind, institution_id, account_id, amount_fen)
    SELECT transaction_id, leg_no, kind, institution_id, account_id, amount_fen FROM txn_leg;
DROP TABLE txn_leg;
ALTER TABLE txn_leg_new RENAME TO txn_leg;

CREATE TABLE account_movement_new (
    movement_id       INTEGER PRIMARY KEY,
    account_id        INTEGER NOT NULL,
    transaction_id    BLOB,
    hold_id           BLOB,
    kind              TEXT NOT NULL CHECK (kind IN ('opening', 'debit', 'credit', 'hold',
                          'release', 'capture')),
    amount_fen        INTEGER NOT NULL CHECK (amount_fen >= 0),
    balance_after_fen INTEGER NOT NULL CHECK (balance_after_fen >= 0),
    held_after_fen    INTEGER NOT NULL CHECK (held_after_fen >= 0),
    at_us             INTEGER NOT NULL
) STRICT;
INSERT INTO account_movement_new (movement_id, account_id, transaction_id, hold_id, kind,
    amount_fen, balance_after_fen, held_after_fen, at_us)
    SELECT movement_id, account_id, transaction_id, hold_id, kind, amount_fen,
           balance_after_fen, held_after_fen, at_us
    FROM account_movement;
DROP TABLE account_movement;
ALTER TABLE account_movement_new RENAME TO account_movement;

CREATE TABLE txn_new (
    transaction_id          BLOB PRIMARY KEY CHECK (length(transaction_id) = 16),
    kind                    TEXT NOT NULL CHECK (kind IN ('purchase', 'preauthorization',
                                'completion', 'hold_release', 'balance_inquiry', 'refund',
                                'benefit_credit', 'medical_bill_split', 'reversal')),
    mti                     TEXT NOT NULL CHECK (length(mti) = 4),
    processing_code         TEXT NOT NULL CHECK (length(processing_code) = 6),
    card_id                 INTEGER,
    pan_masked              TEXT,
    acquirer_institution_id TEXT NOT NULL,
    issuer_institution_id   TEXT,
    terminal_id             TEXT NOT NULL,
    stan                    TEXT NOT NULL,
    rrn                     TEXT NOT NULL,
    transmission_at         TEXT NOT NULL,
    amount_fen              INTEGER NOT NULL CHECK (amount_fen >= 0),
    decision                TEXT NOT NULL CHECK (decision IN ('approved', 'declined')),
    response_code           TEXT NOT NULL CHECK (length(response_code) = 2),
    original_transaction_id BLOB,
    event_id                BLOB,
    decided_at_us           INTEGER NOT NULL,
    CHECK ((decision = 'approved') = (response_code = '00'))
) STRICT;
INSERT INTO txn_new (transaction_id, kind, mti, processing_code, card_id, pan_masked,
    acquirer_institution_id, issuer_institution_id, terminal_id, stan, rrn, transmission_at,
    amount_fen, decision, response_code, original_transaction_id, event_id, decided_at_us)
    SELECT transaction_id, kind, mti, processing_code, card_id, pan_masked,
           acquirer_institution_id, issuer_institution_id, terminal_id, stan, rrn,
           transmission_at, amount_fen, decision, response_code, original_transaction_id,
           event_id, decided_at_us
    FROM txn;
DROP TABLE txn;
ALTER TABLE txn_new RENAME TO txn;
CREATE INDEX txn_by_rrn ON txn (rrn);
CREATE INDEX txn_by_decided_at ON txn (decided_at_us);
-- The card's history (0016), dropped with the table it indexed.
CREATE INDEX txn_by_card ON txn (card_id, decided_at_us) WHERE card_id IS NOT NULL;

CREATE TABLE card_day_usage_new (
    day_start_us   INTEGER NOT NULL,
    card_id        INTEGER NOT NULL REFERENCES card (card_id),
    approved_count INTEGER NOT NULL CHECK (approved_count >= 0),
    amount_fen     INTEGER NOT NULL CHECK (amount_fen >= 0),
    PRIMARY KEY (day_start_us, card_id)
) WITHOUT ROWID, STRICT;
INSERT INTO card_day_usage_new (day_start_us, card_id, approved_count, amount_fen)
    SELECT day_start_us, card_id, approved_count, amount_fen FROM card_day_usage;
DROP TABLE card_day_usage;
ALTER TABLE card_day_usage_new RENAME TO card_day_usage;
