-- Bank cut-over (issue 29): at the end of each settlement day (a calendar day in China
-- Standard Time) the switch sends every bank a 0500 with the switch's totals for that bank and
-- records the bank's 0510 here, once per bank and day (the UNIQUE key is what keeps a second
-- cut-over of the same day from sending again, on any node). A row without `result` is a
-- cut-over not yet answered: `next_attempt_at_us` is when a node may try again (a node that
-- claims the row moves it forward first, so two nodes never send the same 0500 at once).
-- Figures are ISO 8583:1987 fields 74-77 (counts) and 86-89 (amounts, fen), as the switch
-- computed them (`switch_*`) and as the bank answered them (`bank_*`, NULL until it did);
-- `differing_fields` lists the fields that differ (space-separated, 97 for the net). An
-- out-of-balance result is a reconciliation exception until an operator resolves it, with a
-- reason (`resolved_*`; the resolution is audited too).
CREATE TABLE bank_reconciliation (
    reconciliation_id              INTEGER PRIMARY KEY,
    bank_institution_id            TEXT NOT NULL REFERENCES institution (institution_id),
    settlement_day                 TEXT NOT NULL CHECK (length(settlement_day) = 10),
    created_at_us                  INTEGER NOT NULL,
    attempts                       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at_us             INTEGER NOT NULL,
    last_error                     TEXT,
    stan                           TEXT,
    result                         TEXT CHECK (result IN ('in_balance', 'out_of_balance')),
    bank_settlement_code           TEXT,
    reconciled_at_us               INTEGER,
    switch_credits_count           INTEGER,
    switch_credits_fen             INTEGER,
    switch_credit_reversals_count  INTEGER,
    switch_credit_reversals_fen    INTEGER,
    switch_debits_count            INTEGER,
    switch_debits_fen              INTEGER,
    switch_debit_reversals_count   INTEGER,
    switch_debit_reversals_fen     INTEGER,
    bank_credits_count             INTEGER,
    bank_credits_fen               INTEGER,
    bank_credit_reversals_count    INTEGER,
    bank_credit_reversals_fen      INTEGER,
    bank_debits_count              INTEGER,
    bank_debits_fen                INTEGER,
    bank_debit_reversals_count     INTEGER,
    bank_debit_reversals_fen       INTEGER,
    differing_fields               TEXT,
    resolved_by                    TEXT,
    resolved_reason                TEXT,
    resolved_at_us                 INTEGER,
    UNIQUE (bank_institution_id, settlement_day),
    CHECK ((result IS NULL) = (reconciled_at_us IS NULL)),
    CHECK (resolved_at_us IS NULL OR result = 'out_of_balance')
) STRICT;
-- Open exceptions, for the gauge and the operators' list.
CREATE INDEX bank_reconciliation_open ON bank_reconciliation (reconciliation_id)
    WHERE result = 'out_of_balance' AND resolved_at_us IS NULL;
