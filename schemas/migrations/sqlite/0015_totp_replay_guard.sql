-- TOTP replay guard (RFC 6238 §5.2): the last time step whose code a user logged in with. A
-- code of that step or an earlier one is refused, so a code seen over a shoulder or in a log
-- cannot open a second session within its 90-second window.
ALTER TABLE operator_user ADD COLUMN totp_last_step INTEGER;
