-- The duplicate-detection key includes the acquirer (field 32, or the link's): terminal ids
-- and STANs are each acquirer's own numbering, so another acquirer's request is never a
-- retransmission of this one's, and must not be answered with its decision. SQLite cannot
-- change a primary key in place: the table is rebuilt, existing keys taking the acquirer of
-- the transaction they point to.
CREATE TABLE duplicate_key_new (
    terminal_id     TEXT NOT NULL,
    stan            TEXT NOT NULL,
    rrn             TEXT NOT NULL,
    transmission_at TEXT NOT NULL,
    message_class   TEXT NOT NULL CHECK (length(message_class) = 2),
    transaction_id  BLOB NOT NULL,
    created_at_us   INTEGER NOT NULL,
    acquirer        TEXT NOT NULL,
    PRIMARY KEY (terminal_id, stan, rrn, transmission_at, message_class, acquirer)
) STRICT, WITHOUT ROWID;
INSERT INTO duplicate_key_new (terminal_id, stan, rrn, transmission_at, message_class,
    transaction_id, created_at_us, acquirer)
    SELECT d.terminal_id, d.stan, d.rrn, d.transmission_at, d.message_class, d.transaction_id,
           d.created_at_us, t.acquirer_institution_id
    FROM duplicate_key AS d JOIN txn AS t ON t.transaction_id = d.transaction_id;
DROP TABLE duplicate_key;
ALTER TABLE duplicate_key_new RENAME TO duplicate_key;
