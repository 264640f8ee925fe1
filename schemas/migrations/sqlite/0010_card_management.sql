-- The card management system (issue 25): cardholders, their applications from the
-- social-security bureau's batches, the import jobs, the PAN ranges issuance allocates from,
-- and the card's life-cycle state with a version for compare-and-set (HTTP If-Match).
-- No column holds a PIN, a key or a clear PAN; the photo is sealed (AES-256-GCM).

-- A person, keyed by the GB 11643-1999 citizen ID (check character verified before insert).
CREATE TABLE cardholder (
    cardholder_id      INTEGER PRIMARY KEY,
    citizen_id         TEXT NOT NULL UNIQUE CHECK (length(citizen_id) = 18),
    name               TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 30),
    sex                TEXT NOT NULL CHECK (sex IN ('1', '2')),
    birth_date         TEXT NOT NULL CHECK (length(birth_date) = 8),
    insurance_category TEXT NOT NULL CHECK (insurance_category IN ('employee', 'resident')),
    region_code        TEXT NOT NULL CHECK (length(region_code) = 6),
    created_at_us      INTEGER NOT NULL
) STRICT;

-- One row of a batch: idempotent by (batch_id, citizen_id).
CREATE TABLE card_application (
    application_id      INTEGER PRIMARY KEY,
    batch_id            TEXT NOT NULL CHECK (length(batch_id) BETWEEN 1 AND 64),
    citizen_id          TEXT NOT NULL,
    cardholder_id       INTEGER NOT NULL REFERENCES cardholder (cardholder_id),
    bank_institution_id TEXT NOT NULL REFERENCES institution (institution_id),
    status              TEXT NOT NULL CHECK (status IN ('applied', 'personalised')),
    card_id             INTEGER REFERENCES card (card_id),
    photo_ciphertext    BLOB,
    created_at_us       INTEGER NOT NULL,
    UNIQUE (batch_id, citizen_id)
) STRICT;

-- A batch import, its progress readable while it runs.
CREATE TABLE import_job (
    job_id          TEXT PRIMARY KEY,
    batch_id        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    rows_total      INTEGER NOT NULL,
    rows_done       INTEGER NOT NULL,
    rows_created    INTEGER NOT NULL,
    rows_duplicate  INTEGER NOT NULL,
    rows_rejected   INTEGER NOT NULL,
    row_errors      TEXT NOT NULL,
    started_at_us   INTEGER NOT NULL,
    finished_at_us  INTEGER
) STRICT;

-- Sequential PAN allocation per bank BIN range (the next serial to hand out).
CREATE TABLE pan_range (
    bin            TEXT PRIMARY KEY CHECK (length(bin) BETWEEN 6 AND 11),
    next_serial    INTEGER NOT NULL CHECK (next_serial >= 0)
) STRICT;

-- The life-cycle state (NULL: follow `status`, for cards the CMS never moved and after the
-- switch changes a status itself), the row version every change increments, the cardholder,
-- and the card that replaced this one.
ALTER TABLE card ADD COLUMN lifecycle TEXT CHECK (lifecycle IN ('personalised', 'issued',
    'active', 'suspended', 'lost', 'stolen', 'blocked', 'replaced', 'expired', 'closed'));
ALTER TABLE card ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE card ADD COLUMN cardholder_id INTEGER REFERENCES cardholder (cardholder_id);
ALTER TABLE card ADD COLUMN replaced_by_card_id INTEGER REFERENCES card (card_id);
CREATE INDEX card_by_cardholder ON card (cardholder_id) WHERE cardholder_id IS NOT NULL;
