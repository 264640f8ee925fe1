-- The card's stand-in spend of the day beside its approved spend (issue 28, several nodes): the
-- bank legs the switch approved in stand-in for a card whose bank was unreachable, counted in the
-- group commit against the per-card daily stand-in limit. Each node used to check the limit
-- alone before its commit, so two nodes standing in for one card at once could both fit.
ALTER TABLE card_day_usage ADD COLUMN stand_in_fen INTEGER NOT NULL DEFAULT 0 CHECK (stand_in_fen >= 0);
