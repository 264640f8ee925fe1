-- Card risk state the switch keeps with each card (branch cardrisk):
--   atc_max              the highest Application Transaction Counter (EMV Book 3 Annex A, tag
--                        9F36) of a cryptogram the switch verified for this card; NULL before the
--                        first. Written in the same database transaction as the decision that
--                        consumed the ATC, and only upwards: a cryptogram whose ATC is not above
--                        it is a replay and is declined (59).
--   pin_unblock_pending  an issuance operator reset the card's PIN try counter; the next online
--                        chip transaction carries a PIN UNBLOCK issuer script (84 24 00 00, EMV
--                        Book 3 §6.5.10), after which the flag is cleared.
ALTER TABLE card ADD COLUMN atc_max INTEGER CHECK (atc_max BETWEEN 0 AND 65535);
ALTER TABLE card ADD COLUMN pin_unblock_pending BOOLEAN NOT NULL DEFAULT FALSE;
