-- An original is reversed at most once: at most one approved reversal names it. The group
-- commit's planner refuses a second one (switch/src/store/plan/reversed_once.rs: two 0400s of
-- one approval, a 0400 and its 0420 repeat, or the switch's compensation of an approval
-- answered 96 racing the kiosk's own 0400, each gave the money back); this index is the
-- database's backstop for a race the planner cannot see, and the planner's lookup of an
-- original's approved reversal is one probe of it. Partial, so only approved reversals pay
-- for it (migration 0018 took the hot tables' foreign keys off for speed). The
-- sqlite twin is ../sqlite/0023_one_approved_reversal_per_original.sql.
--
-- A store that already holds an original with two approved reversals fails this migration:
-- `switch verify` names it (invariant original-reversed-once), and which reversal to undo
-- is an operator's decision, not a migration's.
CREATE UNIQUE INDEX txn_one_approved_reversal ON txn (original_transaction_id)
    WHERE kind = 'reversal' AND response_code = '00';
