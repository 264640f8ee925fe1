-- Card risk state that a restart or a second node must not reset (issue 24, finding 5):
--   card.pin_tries_failed  wrong PINs in a row, counted by one atomic UPDATE per wrong PIN and
--                          set back to 0 inside the group commit of a decision whose PIN the
--                          switch verified; at the configured maximum the card is blocked (75).
--   card_day_usage         approved spend per card per China Standard Time day (day_start_us is
--                          that day's midnight CST in µs since the epoch), planned and written
--                          inside the same group commit as the approval that spends: the daily
--                          amount (61) and count (65) limits hold across restarts and nodes.
ALTER TABLE card ADD COLUMN pin_tries_failed INTEGER NOT NULL DEFAULT 0
    CHECK (pin_tries_failed >= 0);
CREATE TABLE card_day_usage (
    card_id        BIGINT NOT NULL REFERENCES card (card_id),
    day_start_us   BIGINT NOT NULL,
    approved_count INTEGER NOT NULL CHECK (approved_count >= 0),
    amount_fen     BIGINT NOT NULL CHECK (amount_fen >= 0),
    PRIMARY KEY (card_id, day_start_us)
);
