-- An exact retransmission gets its original answer (issue 24, finding 6): the fields the
-- original answer carried besides field 39 (38 authorization code, 54 balances, 55 ARPC and
-- issuer scripts, 63 bill split), as JSON, on the duplicate key that recognises the
-- retransmission. NULL: the answer carried field 39 only, or is not written yet.
ALTER TABLE duplicate_key ADD COLUMN answer TEXT;
-- card_day_usage is purged by day once its day is past the configured retention
-- (`node::housekeeping`): the purge reads the rows by day.
CREATE INDEX card_day_usage_by_day ON card_day_usage (day_start_us);
