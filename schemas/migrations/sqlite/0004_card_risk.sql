-- Card risk state the switch keeps with each card:
--   atc_max              the highest Application Transaction Counter (EMV Book 3 Annex A, tag
--                        9F36) of a cryptogram the switch verified for this card; NULL before the
--                        first. Written in the same database transaction as the decision that
--                        consumed the ATC, and only upwards: a cryptogram whose ATC is not above
--                        it is a replay and is declined (59).
ALTER TABLE card ADD COLUMN atc_max INTEGER CHECK (atc_max BETWEEN 0 AND 65535);
