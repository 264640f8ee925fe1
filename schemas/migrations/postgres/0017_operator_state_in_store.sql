-- Operator API state a restart or another node must see (issue 25), moved out of node memory.
--
-- When an API key last authenticated (written when a node resolves the key, so to within the
-- key cache's minute), for GET /api-keys.
ALTER TABLE operator_api_key ADD COLUMN last_used_at_us BIGINT;

-- The counter terminal a key belongs to (its PIN pad's TPK is the counter's own, `[[cms.counter]]`):
-- a PIN typed there is taken only under that TPK.
ALTER TABLE operator_api_key ADD COLUMN counter_id TEXT;

-- The institution that started an import job: it and the switch's operators see the job.
ALTER TABLE import_job ADD COLUMN started_by_institution_id TEXT;

-- Closed personalisation files, kept for the card bureau's download. The records hold PANs,
-- names and citizen IDs beside their encrypted keys, so the file is stored sealed
-- (AES-256-GCM under the store's data key, as card.pan_ciphertext).
CREATE TABLE perso_file (
    file_id        TEXT PRIMARY KEY,
    records        BIGINT NOT NULL CHECK (records >= 0),
    closed_at_us   BIGINT NOT NULL,
    closed_by      TEXT NOT NULL,
    content_sealed BYTEA NOT NULL
);
CREATE INDEX perso_file_by_closed_at ON perso_file (closed_at_us);
