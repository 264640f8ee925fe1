-- The duplicate-detection key includes the acquirer (field 32, or the link's): terminal ids
-- and STANs are each acquirer's own numbering, so another acquirer's request is never a
-- retransmission of this one's, and must not be answered with its decision. Existing keys take
-- the acquirer of the transaction they point to.
ALTER TABLE duplicate_key ADD COLUMN acquirer TEXT;
UPDATE duplicate_key AS d SET acquirer = t.acquirer_institution_id
    FROM txn AS t WHERE t.transaction_id = d.transaction_id;
DELETE FROM duplicate_key WHERE acquirer IS NULL;
ALTER TABLE duplicate_key ALTER COLUMN acquirer SET NOT NULL;
ALTER TABLE duplicate_key DROP CONSTRAINT duplicate_key_pkey;
ALTER TABLE duplicate_key
    ADD PRIMARY KEY (terminal_id, stan, rrn, transmission_at, message_class, acquirer);
