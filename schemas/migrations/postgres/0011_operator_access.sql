-- The operator API's users, roles, sessions and API keys (issue 25), and a MAC on every audit
-- entry under an HSM-held key. Every user and API key belongs to one institution (its tenant).

-- A role is a named set of permissions from the catalogue in switch/src/operator/permission.rs
-- (space-separated names). Built-in roles have no institution; an institution's own roles do.
CREATE TABLE operator_role (
    role_id        TEXT PRIMARY KEY CHECK (length(role_id) BETWEEN 1 AND 64),
    institution_id TEXT REFERENCES institution (institution_id),
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    permissions    TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL
);

-- password_hash: an argon2id PHC string; totp_sealed: the TOTP secret sealed (AES-256-GCM)
-- under the operator data key. failed_logins and locked_until_us live here so that a restart
-- does not lift a lockout.
CREATE TABLE operator_user (
    user_id         TEXT PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
    institution_id  TEXT NOT NULL REFERENCES institution (institution_id),
    password_hash   TEXT NOT NULL,
    totp_sealed     BYTEA NOT NULL,
    failed_logins   BIGINT NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until_us BIGINT,
    created_at_us   BIGINT NOT NULL
);
CREATE INDEX operator_user_by_institution ON operator_user (institution_id, user_id);

CREATE TABLE operator_user_role (
    user_id TEXT NOT NULL REFERENCES operator_user (user_id),
    role_id TEXT NOT NULL REFERENCES operator_role (role_id),
    PRIMARY KEY (user_id, role_id)
);

-- Four eyes: a change of a user's roles is proposed by one administrator and applied only when
-- a different one approves it.
CREATE TABLE operator_role_change (
    change_id      TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES operator_user (user_id),
    role_ids       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    proposed_by    TEXT NOT NULL,
    proposed_at_us BIGINT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('proposed', 'approved')),
    approved_by    TEXT,
    approved_at_us BIGINT
);

-- Only the SHA-256 of a session token and of its CSRF token are kept.
CREATE TABLE operator_session (
    token_hash      BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id         TEXT NOT NULL REFERENCES operator_user (user_id),
    csrf_hash       BYTEA NOT NULL CHECK (octet_length(csrf_hash) = 32),
    created_at_us   BIGINT NOT NULL,
    last_seen_at_us BIGINT NOT NULL,
    ended_at_us     BIGINT
);

-- Machine clients (a hospital's HIS, a bank's back office): the SHA-256 of the key only.
CREATE TABLE operator_api_key (
    key_hash       BYTEA PRIMARY KEY CHECK (octet_length(key_hash) = 32),
    key_id         TEXT NOT NULL UNIQUE,
    institution_id TEXT NOT NULL REFERENCES institution (institution_id),
    role_id        TEXT NOT NULL REFERENCES operator_role (role_id),
    name           TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL,
    revoked_at_us  BIGINT
);

-- Idempotency-Key of a POST: the first answer, replayed for the same key and body.
CREATE TABLE operator_idempotency (
    principal     TEXT NOT NULL,
    idem_key      TEXT NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    request_hash  BYTEA NOT NULL CHECK (octet_length(request_hash) = 32),
    status        BIGINT NOT NULL,
    body          TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (principal, idem_key)
);

-- HMAC-SHA-256 of entry_hash under the audit MAC key (NULL: appended before a key was set).
ALTER TABLE audit_log ADD COLUMN mac BYTEA CHECK (mac IS NULL OR octet_length(mac) = 32);
