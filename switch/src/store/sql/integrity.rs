//! The store's auditor: the invariants that foreign keys and per-row triggers would otherwise
//! guard, checked over the whole store by one pass of set queries, as a ledger's auditor does,
//! instead of by a trigger on every hot-path row (issue 27, decision 2). `switch verify` runs
//! it; the store suite runs it after every scenario, the crash test after each restart and the
//! demo test on the demo's data.
//!
//! Each invariant is one query that counts the rows breaking it and names the first of them,
//! so a report says what is wrong and where to look. The queries are the same text on SQLite
//! and PostgreSQL.

use super::driver::{Backend, Columns, Run};
use crate::store::StoreError;

/// One invariant of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// Every leg belongs to a transaction.
    LegHasTransaction,
    /// A leg that names an account names one that exists.
    LegHasAccount,
    /// Only approved transactions have legs.
    LegsOnlyOnApprovals,
    /// Every movement belongs to an account.
    MovementHasAccount,
    /// A movement that names a transaction names one that exists.
    MovementHasTransaction,
    /// Every hold belongs to an account and a transaction.
    HoldHasAccountAndTransaction,
    /// An account's balance equals its opening balance plus its movements.
    BalanceEqualsJournal,
    /// An account's balance and held amount equal those after its last movement.
    BalanceEqualsLastMovement,
    /// An account's held amount equals the sum of its pending holds.
    HeldEqualsPendingHolds,
    /// No balance below zero, no held amount above the balance.
    NoNegativeBalance,
    /// Outbox sequence numbers run from 1 without a gap, and the sequence's next value follows
    /// the last.
    OutboxGapFree,
    /// Every transaction with legs (an approved movement of money) has its settlement event in
    /// the outbox.
    ApprovalHasEvent,
    /// Every event a transaction names is in the outbox.
    EventInOutbox,
    /// Every queued reversal has its original transaction.
    ReversalHasOriginal,
    /// Every queued advice has its transaction.
    AdviceHasTransaction,
    /// A transaction's acquirer, issuer, card and original exist (what `txn`'s foreign keys
    /// guarded until migration 0018).
    TransactionReferencesExist,
    /// A leg's institution, and a queued reversal's or advice's destination (and an advice's
    /// card) exist (the other foreign keys migration 0018 dropped).
    RoutingReferencesExist,
    /// No original has two approved reversals (the money goes back once; what migration
    /// 0023's unique index and the group commit's planner guard).
    OriginalReversedOnce,
    /// Each card's chain of transactions (migration 0024) is whole: walked from the card's
    /// `last_txn_id` along `prev_card_txn_id`, it reaches every transaction of the card exactly
    /// once. Broken by: a link to a missing transaction or another card's; two transactions
    /// of a card linked to the same previous one (a fork); a head that is not the card's own
    /// transaction or that a newer one links to; a transaction of the card the walk does not
    /// reach (lost from the card's history, `sql::card_history`).
    CardChainWhole,
}

impl Invariant {
    /// Every invariant, in the order they are checked.
    pub const ALL: [Invariant; 19] = [
        Invariant::LegHasTransaction,
        Invariant::LegHasAccount,
        Invariant::LegsOnlyOnApprovals,
        Invariant::MovementHasAccount,
        Invariant::MovementHasTransaction,
        Invariant::HoldHasAccountAndTransaction,
        Invariant::BalanceEqualsJournal,
        Invariant::BalanceEqualsLastMovement,
        Invariant::HeldEqualsPendingHolds,
        Invariant::NoNegativeBalance,
        Invariant::OutboxGapFree,
        Invariant::ApprovalHasEvent,
        Invariant::EventInOutbox,
        Invariant::ReversalHasOriginal,
        Invariant::AdviceHasTransaction,
        Invariant::TransactionReferencesExist,
        Invariant::RoutingReferencesExist,
        Invariant::OriginalReversedOnce,
        Invariant::CardChainWhole,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::LegHasTransaction => "leg-has-transaction",
            Invariant::LegHasAccount => "leg-has-account",
            Invariant::LegsOnlyOnApprovals => "legs-only-on-approvals",
            Invariant::MovementHasAccount => "movement-has-account",
            Invariant::MovementHasTransaction => "movement-has-transaction",
            Invariant::HoldHasAccountAndTransaction => "hold-has-account-and-transaction",
            Invariant::BalanceEqualsJournal => "balance-equals-journal",
            Invariant::BalanceEqualsLastMovement => "balance-equals-last-movement",
            Invariant::HeldEqualsPendingHolds => "held-equals-pending-holds",
            Invariant::NoNegativeBalance => "no-negative-balance",
            Invariant::OutboxGapFree => "outbox-gap-free",
            Invariant::ApprovalHasEvent => "approval-has-event",
            Invariant::EventInOutbox => "event-in-outbox",
            Invariant::ReversalHasOriginal => "reversal-has-original",
            Invariant::AdviceHasTransaction => "advice-has-transaction",
            Invariant::TransactionReferencesExist => "transaction-references-exist",
            Invariant::RoutingReferencesExist => "routing-references-exist",
            Invariant::OriginalReversedOnce => "original-reversed-once",
            Invariant::CardChainWhole => "card-chain-whole",
        }
    }

    /// The query: one row with `n` (rows breaking the invariant) and `first` (text naming the
    /// first of them, NULL when none).
    fn query(self) -> &'static str {
        match self {
            Invariant::LegHasTransaction => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN(CAST(l.leg_no AS TEXT)) AS first \
                 FROM txn_leg AS l LEFT JOIN txn AS t ON t.transaction_id = l.transaction_id \
                 WHERE t.transaction_id IS NULL"
            }
            Invariant::LegHasAccount => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                 MIN('account ' || CAST(l.account_id AS TEXT)) AS first \
                 FROM txn_leg AS l LEFT JOIN account AS a ON a.account_id = l.account_id \
                 WHERE l.account_id IS NOT NULL AND a.account_id IS NULL"
            }
            Invariant::LegsOnlyOnApprovals => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN('rrn ' || t.rrn) AS first \
                 FROM txn_leg AS l JOIN txn AS t ON t.transaction_id = l.transaction_id \
                 WHERE t.response_code <> '00'"
            }
            Invariant::MovementHasAccount => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                 MIN('movement ' || CAST(m.movement_id AS TEXT)) AS first \
                 FROM account_movement AS m LEFT JOIN account AS a ON a.account_id = m.account_id \
                 WHERE a.account_id IS NULL"
            }
            Invariant::MovementHasTransaction => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                 MIN('movement ' || CAST(m.movement_id AS TEXT)) AS first \
                 FROM account_movement AS m \
                 LEFT JOIN txn AS t ON t.transaction_id = m.transaction_id \
                 WHERE m.transaction_id IS NOT NULL AND t.transaction_id IS NULL"
            }
            Invariant::HoldHasAccountAndTransaction => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                 MIN('hold of account ' || CAST(h.account_id AS TEXT)) AS first \
                 FROM hold AS h LEFT JOIN account AS a ON a.account_id = h.account_id \
                 LEFT JOIN txn AS t ON t.transaction_id = h.transaction_id \
                 WHERE a.account_id IS NULL OR t.transaction_id IS NULL"
            }
            Invariant::BalanceEqualsJournal => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                 MIN('account ' || CAST(a.account_id AS TEXT)) AS first \
                 FROM account AS a LEFT JOIN (SELECT account_id, \
                 SUM(CASE kind WHEN 'opening' THEN amount_fen WHEN 'credit' THEN amount_fen \
                 WHEN 'debit' THEN -amount_fen WHEN 'capture' THEN -amount_fen ELSE 0 END) AS fen \
                 FROM account_movement GROUP BY account_id) AS j ON j.account_id = a.account_id \
                 WHERE a.balance_fen <> COALESCE(j.fen, 0)"
            }
            Invariant::BalanceEqualsLastMovement => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                 MIN('account ' || CAST(a.account_id AS TEXT)) AS first \
                 FROM account AS a JOIN (SELECT account_id, MAX(movement_id) AS last_id \
                 FROM account_movement GROUP BY account_id) AS l ON l.account_id = a.account_id \
                 JOIN account_movement AS m ON m.movement_id = l.last_id \
                 WHERE a.balance_fen <> m.balance_after_fen OR a.held_fen <> m.held_after_fen"
            }
            Invariant::HeldEqualsPendingHolds => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                 MIN('account ' || CAST(a.account_id AS TEXT)) AS first \
                 FROM account AS a LEFT JOIN (SELECT account_id, SUM(amount_fen) AS fen \
                 FROM hold WHERE state = 'pending' GROUP BY account_id) AS h \
                 ON h.account_id = a.account_id \
                 WHERE a.held_fen <> COALESCE(h.fen, 0)"
            }
            Invariant::NoNegativeBalance => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                 MIN('account ' || CAST(account_id AS TEXT)) AS first \
                 FROM account WHERE balance_fen < 0 OR held_fen < 0 OR held_fen > balance_fen"
            }
            Invariant::OutboxGapFree => {
                "SELECT CAST(CASE WHEN o.n = COALESCE(o.last, 0) \
                 AND s.next_seq = COALESCE(o.last, 0) + 1 THEN 0 ELSE 1 END AS BIGINT) AS n, \
                 CASE WHEN o.n = COALESCE(o.last, 0) AND s.next_seq = COALESCE(o.last, 0) + 1 \
                 THEN NULL ELSE CAST(o.n AS TEXT) || ' events, last seq ' \
                 || CAST(COALESCE(o.last, 0) AS TEXT) || ', next seq ' \
                 || CAST(s.next_seq AS TEXT) END AS first \
                 FROM (SELECT COUNT(*) AS n, MAX(outbox_seq) AS last FROM outbox) AS o, \
                 outbox_sequence AS s WHERE s.id = 1"
            }
            Invariant::ApprovalHasEvent => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN('rrn ' || t.rrn) AS first \
                 FROM txn AS t LEFT JOIN outbox AS o ON o.event_id = t.event_id \
                 WHERE o.event_id IS NULL AND EXISTS \
                 (SELECT 1 FROM txn_leg AS l WHERE l.transaction_id = t.transaction_id)"
            }
            Invariant::EventInOutbox => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN('rrn ' || t.rrn) AS first \
                 FROM txn AS t LEFT JOIN outbox AS o ON o.event_id = t.event_id \
                 WHERE t.event_id IS NOT NULL AND o.event_id IS NULL"
            }
            Invariant::ReversalHasOriginal => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN('stan ' || r.stan) AS first \
                 FROM reversal_queue AS r \
                 LEFT JOIN txn AS t ON t.transaction_id = r.original_transaction_id \
                 WHERE t.transaction_id IS NULL"
            }
            Invariant::AdviceHasTransaction => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN('stan ' || q.stan) AS first \
                 FROM advice_queue AS q LEFT JOIN txn AS t ON t.transaction_id = q.transaction_id \
                 WHERE t.transaction_id IS NULL"
            }
            Invariant::TransactionReferencesExist => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN('rrn ' || t.rrn) AS first \
                 FROM txn AS t WHERE NOT EXISTS (SELECT 1 FROM institution AS i \
                 WHERE i.institution_id = t.acquirer_institution_id) \
                 OR (t.issuer_institution_id IS NOT NULL AND NOT EXISTS (SELECT 1 \
                 FROM institution AS i WHERE i.institution_id = t.issuer_institution_id)) \
                 OR (t.card_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM card AS c \
                 WHERE c.card_id = t.card_id)) \
                 OR (t.original_transaction_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM txn AS o \
                 WHERE o.transaction_id = t.original_transaction_id))"
            }
            Invariant::RoutingReferencesExist => {
                "SELECT CAST(SUM(n) AS BIGINT) AS n, MIN(first) AS first FROM ( \
                 SELECT COUNT(*) AS n, MIN('leg institution ' || l.institution_id) AS first \
                 FROM txn_leg AS l WHERE NOT EXISTS (SELECT 1 FROM institution AS i \
                 WHERE i.institution_id = l.institution_id) \
                 UNION ALL SELECT COUNT(*), MIN('reversal destination ' || r.destination_institution_id) \
                 FROM reversal_queue AS r WHERE NOT EXISTS (SELECT 1 FROM institution AS i \
                 WHERE i.institution_id = r.destination_institution_id) \
                 UNION ALL SELECT COUNT(*), MIN('advice stan ' || q.stan) FROM advice_queue AS q \
                 WHERE NOT EXISTS (SELECT 1 FROM institution AS i \
                 WHERE i.institution_id = q.destination_institution_id) \
                 OR (q.card_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM card AS c \
                 WHERE c.card_id = q.card_id))) AS u"
            }
            Invariant::OriginalReversedOnce => {
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN('rrn ' || o.rrn) AS first \
                 FROM (SELECT original_transaction_id FROM txn WHERE kind = 'reversal' \
                 AND response_code = '00' AND original_transaction_id IS NOT NULL \
                 GROUP BY original_transaction_id HAVING COUNT(*) > 1) AS r \
                 LEFT JOIN txn AS o ON o.transaction_id = r.original_transaction_id"
            }
            Invariant::CardChainWhole => CARD_CHAIN_WHOLE,
        }
    }
}

/// [`Invariant::CardChainWhole`]: links that leave the card or dangle, forks, heads that are
/// not the card's newest transaction, and transactions the walk from their card's head does not
/// reach; one row per breaking link, previous transaction, card or transaction. The walk is
/// `UNION`, so a chain that loops ends. Each check is a set query (`NOT IN` a subquery is one
/// hashed set, not a probe per row): `txn` has no index on `prev_card_txn_id`.
const CARD_CHAIN_WHOLE: &str = "WITH RECURSIVE reached (id, card_id) AS ( \
     SELECT last_txn_id, card_id FROM card WHERE last_txn_id IS NOT NULL \
     UNION SELECT t.prev_card_txn_id, t.card_id FROM reached AS r \
     JOIN txn AS t ON t.transaction_id = r.id \
     WHERE t.card_id = r.card_id AND t.prev_card_txn_id IS NOT NULL) \
     SELECT CAST(SUM(n) AS BIGINT) AS n, MIN(first) AS first FROM ( \
     SELECT COUNT(*) AS n, MIN('card ' || CAST(t.card_id AS TEXT) || ': a link leaves the card') \
     AS first FROM txn AS t WHERE t.prev_card_txn_id IS NOT NULL AND NOT EXISTS \
     (SELECT 1 FROM txn AS p WHERE p.transaction_id = t.prev_card_txn_id \
     AND p.card_id = t.card_id) \
     UNION ALL SELECT COUNT(*), MIN('card ' || CAST(f.card_id AS TEXT) || ': a fork') \
     FROM (SELECT MIN(card_id) AS card_id FROM txn WHERE prev_card_txn_id IS NOT NULL \
     GROUP BY prev_card_txn_id HAVING COUNT(*) > 1) AS f \
     UNION ALL SELECT COUNT(*), MIN('card ' || CAST(c.card_id AS TEXT) || ': a wrong head') \
     FROM card AS c WHERE c.last_txn_id IS NOT NULL AND (NOT EXISTS (SELECT 1 FROM txn AS h \
     WHERE h.transaction_id = c.last_txn_id AND h.card_id = c.card_id) \
     OR c.last_txn_id IN (SELECT prev_card_txn_id FROM txn \
     WHERE prev_card_txn_id IS NOT NULL)) \
     UNION ALL SELECT COUNT(*), MIN('card ' || CAST(t.card_id AS TEXT) || ': rrn ' || t.rrn \
     || ' not on the chain') FROM txn AS t WHERE t.card_id IS NOT NULL \
     AND t.transaction_id NOT IN (SELECT r.id FROM reached AS r)) AS u";

/// An invariant that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// How many rows break it.
    pub rows: i64,
    /// The first of them, as the query names it.
    pub first: String,
}

/// What [`verify`] found, with the sizes of what it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Transactions read.
    pub transactions: i64,
    /// Accounts read.
    pub accounts: i64,
    /// Movements read.
    pub movements: i64,
    /// Outbox events read.
    pub events: i64,
    /// Broken invariants (empty: the store is consistent).
    pub violations: Vec<Violation>,
}

impl IntegrityReport {
    /// Every invariant holds.
    pub fn is_consistent(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether `invariant` is among the violations.
    pub fn breaks(&self, invariant: Invariant) -> bool {
        self.violations.iter().any(|v| v.invariant == invariant)
    }
}

impl std::fmt::Display for IntegrityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "checked {} transactions, {} accounts, {} movements, {} outbox events",
            self.transactions, self.accounts, self.movements, self.events
        )?;
        if self.violations.is_empty() {
            return write!(f, "all {} invariants hold", Invariant::ALL.len());
        }
        for v in &self.violations {
            writeln!(
                f,
                "BROKEN {}: {} row(s), first: {}",
                v.invariant.name(),
                v.rows,
                v.first
            )?;
        }
        Ok(())
    }
}

const SIZES: &str = "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM txn) AS transactions, \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM account) AS accounts, \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM account_movement) AS movements, \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM outbox) AS events";

/// Checks every [`Invariant`] on the read pool (a consistent snapshot per query; run it on a
/// quiet store, or expect in-flight commits to show as transient differences between queries).
pub async fn verify<B: Backend>(store: &B) -> Result<IntegrityReport, StoreError> {
    let sizes = store.reader().fetch_one(SIZES, &[]).await?;
    let mut report = IntegrityReport {
        transactions: sizes.get("transactions")?,
        accounts: sizes.get("accounts")?,
        movements: sizes.get("movements")?,
        events: sizes.get("events")?,
        violations: Vec::new(),
    };
    for invariant in Invariant::ALL {
        let row = store.reader().fetch_one(invariant.query(), &[]).await?;
        let rows: i64 = row.get("n")?;
        if rows > 0 {
            let first: Option<String> = row.get("first")?;
            report.violations.push(Violation {
                invariant,
                rows,
                first: first.unwrap_or_default(),
            });
        }
    }
    Ok(report)
}
