//! Body of clearing's fuzz target `settlement_batch`: a batch of bus payloads (one per line, as
//! the consumer receives them from one partition) decoded and planned against an empty ledger
//! (`clearing::ledger::dry_run`: the consumer's decoding, validation and ledger rules, without a
//! database). Never panics; every delivery is accounted for once; money is neither created nor
//! destroyed: posted debits equal posted credits (so net positions sum to zero), pending likewise,
//! and no account's sums go below zero.

/// See the module documentation.
pub fn settlement_batch(data: &[u8]) {
    let payloads: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let run = clearing::ledger::dry_run(&payloads);
    let r = run.report;
    assert_eq!(
        r.applied + r.duplicates + r.dead_lettered + r.already_consumed,
        payloads.len() as u64,
        "a delivery unaccounted for: {r:?}"
    );
    assert_eq!(
        run.debits_posted_fen, run.credits_posted_fen,
        "posted: {run:?}"
    );
    assert_eq!(
        run.debits_pending_fen, run.credits_pending_fen,
        "pending: {run:?}"
    );
    assert_eq!(run.negative_accounts, 0, "{run:?}");
}
