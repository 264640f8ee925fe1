-- The hot tables lose their foreign keys, and two indexes that no hot-path query reads go
-- (issue 27, decision 2 and "fewer secondary indexes"). The SQLite twin is
-- ../sqlite/0018_hot_tables_without_foreign_keys.sql, which says why each one goes; in short:
-- each foreign key was one more index probe (and a share lock on the parent row) per row in
-- every group commit, about a quarter of the database server's CPU per request, and what they
-- guarded is checked by `switch verify` (`Store::verify_integrity`) instead.
ALTER TABLE reversal_queue DROP CONSTRAINT IF EXISTS reversal_queue_original_transaction_id_fkey;
ALTER TABLE reversal_queue DROP CONSTRAINT IF EXISTS reversal_queue_destination_institution_id_fkey;
ALTER TABLE advice_queue DROP CONSTRAINT IF EXISTS advice_queue_transaction_id_fkey;
ALTER TABLE advice_queue DROP CONSTRAINT IF EXISTS advice_queue_card_id_fkey;
ALTER TABLE advice_queue DROP CONSTRAINT IF EXISTS advice_queue_destination_institution_id_fkey;
ALTER TABLE txn_leg DROP CONSTRAINT IF EXISTS txn_leg_institution_id_fkey;
ALTER TABLE txn_leg DROP CONSTRAINT IF EXISTS txn_leg_account_id_fkey;
ALTER TABLE account_movement DROP CONSTRAINT IF EXISTS account_movement_account_id_fkey;
ALTER TABLE txn DROP CONSTRAINT IF EXISTS txn_card_id_fkey;
ALTER TABLE txn DROP CONSTRAINT IF EXISTS txn_acquirer_institution_id_fkey;
ALTER TABLE txn DROP CONSTRAINT IF EXISTS txn_issuer_institution_id_fkey;
ALTER TABLE txn DROP CONSTRAINT IF EXISTS txn_original_transaction_id_fkey;
-- No query of the switch reads one account's movements by index (see the SQLite twin).
DROP INDEX IF EXISTS movement_by_account;
-- The daily purge reads a prefix of the primary key instead of its own index.
ALTER TABLE card_day_usage DROP CONSTRAINT card_day_usage_pkey;
ALTER TABLE card_day_usage ADD PRIMARY KEY (day_start_us, card_id);
DROP INDEX IF EXISTS card_day_usage_by_day;
