-- Switch core schema, SQLite dialect (STRICT tables). The PostgreSQL twin is
-- ../postgres/0001_switch_core.sql: keep both in step (same tables, columns and constraints).
--
-- Conventions: amounts are integer fen (`*_fen`), times are microseconds since the Unix epoch
-- (`*_at_us`), ids of records created by the switch are UUIDs (16-byte BLOB here, uuid there).
-- No column ever holds a clear PAN, PIN or key.
-- Rows the writer inserts in the same transaction as their txn row (legs, holds, journal,
-- duplicate keys) carry no foreign key back to txn: the single writer guarantees the link, and
-- per-row foreign-key checks were the largest cost of a group commit on PostgreSQL.

-- Institutions of the network: banks, hospitals, funds, the switch itself.
CREATE TABLE institution (
    institution_id TEXT PRIMARY KEY CHECK (length(institution_id) BETWEEN 1 AND 11),
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('bank', 'hospital', 'insurance_fund',
                       'social_security_fund', 'job_centre', 'switch')),
    created_at_us  INTEGER NOT NULL
) STRICT;

-- Routing: the issuing bank of a card range (longest matching prefix wins).
CREATE TABLE bin_route (
    bin_prefix            TEXT PRIMARY KEY CHECK (length(bin_prefix) BETWEEN 1 AND 12),
    issuer_institution_id TEXT NOT NULL REFERENCES institution (institution_id)
) STRICT;

-- Cards. Looked up by a keyed hash of the PAN; the PAN itself only encrypted.
CREATE TABLE card (
    card_id                  INTEGER PRIMARY KEY,
    pan_hash                 BLOB NOT NULL UNIQUE CHECK (length(pan_hash) = 32),
    pan_ciphertext           BLOB NOT NULL,
    pan_masked               TEXT NOT NULL,
    card_identification_code TEXT UNIQUE,
    issuer_institution_id    TEXT NOT NULL REFERENCES institution (institution_id),
    expiry_yymm              TEXT NOT NULL CHECK (length(expiry_yymm) = 4),
    status                   TEXT NOT NULL CHECK (status IN ('issued', 'active', 'lost',
                                 'stolen', 'blocked', 'closed')),
    status_reason            TEXT,
    status_changed_at_us     INTEGER NOT NULL,
    created_at_us            INTEGER NOT NULL
) STRICT;
-- The hot list: cards that must be declined (and blocked by script at next use).
CREATE INDEX card_hot_list ON card (status) WHERE status IN ('lost', 'stolen', 'blocked');

-- Balances the switch authorizes against. held_fen is reserved by pending holds;
-- available = balance_fen - held_fen. Neither can go negative.
CREATE TABLE account (
    account_id     INTEGER PRIMARY KEY,
    institution_id TEXT NOT NULL REFERENCES institution (institution_id),
    card_id        INTEGER REFERENCES card (card_id),
    kind           TEXT NOT NULL CHECK (kind IN ('personal_medical', 'pooled_fund',
                       'social_security_fund')),
    balance_fen    INTEGER NOT NULL CHECK (balance_fen >= 0),
    held_fen       INTEGER NOT NULL DEFAULT 0 CHECK (held_fen >= 0 AND held_fen <= balance_fen),
    created_at_us  INTEGER NOT NULL
) STRICT;
CREATE INDEX account_by_card ON account (card_id) WHERE card_id IS NOT NULL;

-- Every authorization decision, approved or declined.
CREATE TABLE txn (
    transaction_id          BLOB PRIMARY KEY CHECK (length(transaction_id) = 16),
    kind                    TEXT NOT NULL CHECK (kind IN ('purchase', 'preauthorization',
                                'completion', 'hold_release', 'balance_inquiry', 'refund',
                                'benefit_credit', 'medical_bill_split', 'reversal')),
    mti                     TEXT NOT NULL CHECK (length(mti) = 4),
    processing_code         TEXT NOT NULL CHECK (length(processing_code) = 6),
    card_id                 INTEGER REFERENCES card (card_id),
    pan_masked              TEXT,
    acquirer_institution_id TEXT NOT NULL REFERENCES institution (institution_id),
    issuer_institution_id   TEXT REFERENCES institution (institution_id),
    terminal_id             TEXT NOT NULL,
    stan                    TEXT NOT NULL,
    rrn                     TEXT NOT NULL,
    transmission_at         TEXT NOT NULL,
    amount_fen              INTEGER NOT NULL CHECK (amount_fen >= 0),
    decision                TEXT NOT NULL CHECK (decision IN ('approved', 'declined')),
    response_code           TEXT NOT NULL CHECK (length(response_code) = 2),
    original_transaction_id BLOB REFERENCES txn (transaction_id),
    event_id                BLOB,
    decided_at_us           INTEGER NOT NULL,
    CHECK ((decision = 'approved') = (response_code = '00'))
) STRICT;
CREATE INDEX txn_by_rrn ON txn (rrn);
CREATE INDEX txn_by_card ON txn (card_id, decided_at_us) WHERE card_id IS NOT NULL;

-- How an approved amount was split between funding sources (the response carries each leg).
CREATE TABLE txn_leg (
    transaction_id BLOB NOT NULL,
    leg_no         INTEGER NOT NULL CHECK (leg_no BETWEEN 1 AND 255),
    kind           TEXT NOT NULL CHECK (kind IN ('pooled_fund', 'personal_account', 'bank',
                       'social_security_fund', 'fee')),
    institution_id TEXT NOT NULL REFERENCES institution (institution_id),
    account_id     INTEGER REFERENCES account (account_id),
    amount_fen     INTEGER NOT NULL CHECK (amount_fen > 0),
    PRIMARY KEY (transaction_id, leg_no)
) STRICT, WITHOUT ROWID;

-- Authorization holds on accounts (two-phase: pending, then captured or released).
CREATE TABLE hold (
    hold_id        BLOB PRIMARY KEY CHECK (length(hold_id) = 16),
    account_id     INTEGER NOT NULL REFERENCES account (account_id),
    transaction_id BLOB NOT NULL,
    amount_fen     INTEGER NOT NULL CHECK (amount_fen > 0),
    captured_fen   INTEGER NOT NULL DEFAULT 0 CHECK (captured_fen >= 0 AND captured_fen <= amount_fen),
    state          TEXT NOT NULL CHECK (state IN ('pending', 'captured', 'released')),
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER NOT NULL,
    closed_at_us   INTEGER
) STRICT;
CREATE INDEX hold_pending_by_expiry ON hold (expires_at_us) WHERE state = 'pending';

-- Journal of every balance change: balance_fen always equals the sum of its movements.
CREATE TABLE account_movement (
    movement_id       INTEGER PRIMARY KEY,
    account_id        INTEGER NOT NULL REFERENCES account (account_id),
    transaction_id    BLOB,
    hold_id           BLOB,
    kind              TEXT NOT NULL CHECK (kind IN ('opening', 'debit', 'credit', 'hold',
                          'release', 'capture')),
    amount_fen        INTEGER NOT NULL CHECK (amount_fen >= 0),
    balance_after_fen INTEGER NOT NULL CHECK (balance_after_fen >= 0),
    held_after_fen    INTEGER NOT NULL CHECK (held_after_fen >= 0),
    at_us             INTEGER NOT NULL
) STRICT;
CREATE INDEX movement_by_account ON account_movement (account_id, movement_id);

-- Duplicate detection (terminal + STAN + RRN + transmission time, per message class so that a
-- reversal may repeat its original's references). Purgeable after the retransmission window.
CREATE TABLE duplicate_key (
    terminal_id     TEXT NOT NULL,
    stan            TEXT NOT NULL,
    rrn             TEXT NOT NULL,
    transmission_at TEXT NOT NULL,
    message_class   TEXT NOT NULL CHECK (length(message_class) = 2),
    transaction_id  BLOB NOT NULL,
    created_at_us   INTEGER NOT NULL,
    PRIMARY KEY (terminal_id, stan, rrn, transmission_at, message_class)
) STRICT, WITHOUT ROWID;

-- Store-and-forward reversals (0420, repeated as 0421) until the destination acknowledges.
-- Holds references only: the forwarder rebuilds the message from the original transaction.
CREATE TABLE reversal_queue (
    reversal_id                BLOB PRIMARY KEY CHECK (length(reversal_id) = 16),
    original_transaction_id    BLOB NOT NULL REFERENCES txn (transaction_id),
    destination_institution_id TEXT NOT NULL REFERENCES institution (institution_id),
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
CREATE INDEX reversal_pending_due ON reversal_queue (next_attempt_at_us) WHERE state = 'pending';

-- Transactional outbox of settlement events. outbox_seq is gap-free and increases in commit
-- order: it is taken from outbox_sequence inside the committing transaction, whose row lock
-- serialises writers until commit, so a relay reading "seq > cursor" never skips a row that
-- commits late.
CREATE TABLE outbox (
    outbox_seq     INTEGER PRIMARY KEY CHECK (outbox_seq > 0),
    event_id       BLOB NOT NULL UNIQUE,
    partition_key  TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL,
    relayed_at_us  INTEGER
) STRICT;
CREATE INDEX outbox_by_partition ON outbox (partition_key, outbox_seq);
CREATE INDEX outbox_unrelayed ON outbox (outbox_seq) WHERE relayed_at_us IS NULL;

CREATE TABLE outbox_sequence (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq INTEGER NOT NULL CHECK (next_seq > 0)
) STRICT;
INSERT INTO outbox_sequence (id, next_seq) VALUES (1, 1);

-- Hash-chained, append-only audit log: entry_hash = SHA-256(prev_hash || entry fields).
CREATE TABLE audit_log (
    audit_seq  INTEGER PRIMARY KEY CHECK (audit_seq > 0),
    at_us      INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  BLOB NOT NULL CHECK (length(prev_hash) = 32),
    entry_hash BLOB NOT NULL UNIQUE CHECK (length(entry_hash) = 32)
) STRICT;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The chain head, locked by each append so concurrent appenders cannot fork the chain.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq  INTEGER NOT NULL,
    last_hash BLOB NOT NULL CHECK (length(last_hash) = 32)
) STRICT;
INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, zeroblob(32));
