-- Clearing ledger schema, PostgreSQL dialect. The SQLite twin is
-- ../sqlite/0001_clearing_ledger.sql: keep both in step (same tables, columns, constraints).
-- This is clearing's OWN database, separate from the switch's: clearing never reads the switch's
-- tables except the outbox, through its relay.
--
-- Conventions as in the switch schema: amounts are integer fen (`*_fen`), times microseconds
-- since the Unix epoch (`*_at_us`), event ids UUIDs (uuid here, 16-byte BLOB in SQLite). Accounts are
-- named by (institution_id, account_kind), account_kind being schemas::events::LedgerAccount.

-- Settlement windows. Exactly one is open; closing it opens the next one in the same
-- transaction. A closed window's postings are frozen (digest and net settlement computed once).
CREATE TABLE settlement_window (
    window_id        BIGINT PRIMARY KEY CHECK (window_id > 0),
    state            TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    opened_at_us     BIGINT NOT NULL,
    closed_at_us     BIGINT,
    posting_count    BIGINT,
    posted_total_fen BIGINT,
    digest           BYTEA CHECK (digest IS NULL OR length(digest) = 32),
    CHECK ((state = 'closed') = (closed_at_us IS NOT NULL))
);
CREATE UNIQUE INDEX settlement_window_one_open ON settlement_window (state) WHERE state = 'open';
INSERT INTO settlement_window (window_id, state, opened_at_us) VALUES (1, 'open', 0);

-- The window postings go to. Appliers lock it shared (PostgreSQL: FOR SHARE), the closer locks
-- it exclusively, so no posting can land in a window after it is closed.
CREATE TABLE window_head (
    id                BIGINT PRIMARY KEY CHECK (id = 1),
    current_window_id BIGINT NOT NULL REFERENCES settlement_window (window_id)
);
INSERT INTO window_head (id, current_window_id) VALUES (1, 1);

-- Every event applied (or refused), once: the exactly-once key.
CREATE TABLE applied_event (
    event_id       UUID PRIMARY KEY,
    event_type     TEXT NOT NULL,
    acquirer_id    TEXT NOT NULL,
    amount_fen     BIGINT NOT NULL CHECK (amount_fen >= 0),
    occurred_at_us BIGINT NOT NULL,
    applied_at_us  BIGINT NOT NULL,
    window_id      BIGINT NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('posted', 'held', 'hold_posted',
                       'hold_voided', 'dead_letter')),
    -- Set on reversals: the event reversed. Unique, so nothing is reversed twice.
    reverses_event_id UUID UNIQUE
);

-- Posted transfers (one per leg): the double-entry journal. Append-only.
CREATE TABLE posting (
    posting_seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    window_id          BIGINT NOT NULL,
    event_id           UUID NOT NULL,
    leg_no             BIGINT NOT NULL CHECK (leg_no BETWEEN 1 AND 255),
    event_type         TEXT NOT NULL,
    leg_kind           TEXT NOT NULL,
    debit_institution  TEXT NOT NULL,
    debit_account      TEXT NOT NULL,
    credit_institution TEXT NOT NULL,
    credit_account     TEXT NOT NULL,
    amount_fen         BIGINT NOT NULL CHECK (amount_fen > 0),
    hold_id            UUID,
    posted_at_us       BIGINT NOT NULL,
    CHECK (debit_institution <> credit_institution OR debit_account <> credit_account),
    -- Also the window's canonical order (close-window and reports read it without sorting).
    UNIQUE (window_id, event_id, leg_no)
);
CREATE FUNCTION posting_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'posting is append-only'; END $$;
CREATE TRIGGER posting_no_update_or_delete BEFORE UPDATE OR DELETE ON posting
FOR EACH ROW EXECUTE FUNCTION posting_append_only();

-- Two-phase transfers (TigerBeetle's pending -> posted | voided): an authorization hold
-- reserves amounts on both sides without moving them.
CREATE TABLE pending_hold (
    hold_id              UUID PRIMARY KEY,
    event_id             UUID NOT NULL,
    acquirer_id          TEXT NOT NULL,
    amount_fen           BIGINT NOT NULL CHECK (amount_fen > 0),
    state                TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    created_at_us        BIGINT NOT NULL,
    resolved_at_us       BIGINT,
    resolved_by_event_id UUID,
    CHECK ((state = 'pending') = (resolved_at_us IS NULL))
);

CREATE TABLE pending_hold_leg (
    hold_id            UUID NOT NULL,
    leg_no             BIGINT NOT NULL CHECK (leg_no BETWEEN 1 AND 255),
    debit_institution  TEXT NOT NULL,
    debit_account      TEXT NOT NULL,
    credit_institution TEXT NOT NULL,
    credit_account     TEXT NOT NULL,
    amount_fen         BIGINT NOT NULL CHECK (amount_fen > 0),
    PRIMARY KEY (hold_id, leg_no)
);

-- Account balances, TigerBeetle style: four running sums, never a computed balance column.
CREATE TABLE ledger_account (
    institution_id      TEXT NOT NULL,
    account_kind        TEXT NOT NULL,
    debits_pending_fen  BIGINT NOT NULL DEFAULT 0 CHECK (debits_pending_fen >= 0),
    debits_posted_fen   BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted_fen >= 0),
    credits_pending_fen BIGINT NOT NULL DEFAULT 0 CHECK (credits_pending_fen >= 0),
    credits_posted_fen  BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted_fen >= 0),
    PRIMARY KEY (institution_id, account_kind)
);

-- Live net position between two institutions, stored once per unordered pair
-- (institution_a < institution_b): net_fen is what b owes a (negative: a owes b).
CREATE TABLE pair_position (
    institution_a TEXT NOT NULL,
    institution_b TEXT NOT NULL,
    net_fen       BIGINT NOT NULL,
    PRIMARY KEY (institution_a, institution_b),
    CHECK (institution_a < institution_b)
);

-- Where each consumer group is in each bus partition: the next offset to apply. Written in the
-- same transaction as the postings, so offsets and ledger can never disagree.
CREATE TABLE consumer_offset (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    partition_no   BIGINT NOT NULL CHECK (partition_no >= 0),
    next_offset    BIGINT NOT NULL CHECK (next_offset >= 0),
    updated_at_us  BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_no)
);

-- Events that cannot be applied, with the reason. The stream goes on past them.
CREATE TABLE dead_letter (
    dead_letter_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic          TEXT NOT NULL,
    partition_no   BIGINT NOT NULL,
    bus_offset     BIGINT NOT NULL,
    event_id       UUID,
    reason_code    TEXT NOT NULL,
    reason         TEXT NOT NULL,
    payload        TEXT NOT NULL,
    received_at_us BIGINT NOT NULL
);

-- Outbox relays: one lease row per relayed outbox. The holder (with an expiring lease and a
-- fencing epoch) is the only relay publishing; cursor_seq is the last outbox_seq it published.
CREATE TABLE relay_lease (
    relay_name        TEXT PRIMARY KEY,
    cursor_seq        BIGINT NOT NULL CHECK (cursor_seq >= 0),
    holder            TEXT,
    epoch             BIGINT NOT NULL DEFAULT 0,
    lease_until_us    BIGINT NOT NULL DEFAULT 0
);

-- Net settlement of a closed window: each institution's net (positive: receives), and the
-- instructions (payer pays payee) that settle them.
CREATE TABLE window_net_position (
    window_id      BIGINT NOT NULL REFERENCES settlement_window (window_id),
    institution_id TEXT NOT NULL,
    debits_fen     BIGINT NOT NULL CHECK (debits_fen >= 0),
    credits_fen    BIGINT NOT NULL CHECK (credits_fen >= 0),
    net_fen        BIGINT NOT NULL,
    digest         BYTEA NOT NULL CHECK (length(digest) = 32),
    PRIMARY KEY (window_id, institution_id)
);

CREATE TABLE settlement_instruction (
    window_id      BIGINT NOT NULL REFERENCES settlement_window (window_id),
    instruction_no BIGINT NOT NULL CHECK (instruction_no > 0),
    payer_id       TEXT NOT NULL,
    payee_id       TEXT NOT NULL,
    amount_fen     BIGINT NOT NULL CHECK (amount_fen > 0),
    PRIMARY KEY (window_id, instruction_no),
    CHECK (payer_id <> payee_id)
);
