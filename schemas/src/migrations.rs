//! SQL migrations of the switch schema and of clearing's ledger schema, embedded in the binary.
//!
//! The `.sql` files under `schemas/migrations/{sqlite,postgres}/` are the source of truth; this
//! module embeds them so a binary runs them at start-up without the files beside it (the
//! switch feeds them to sqlx's migrator). Both dialects must define the same tables, columns and
//! constraints: the switch runs one store test suite against both. The exception is the SQLite
//! store's own bookkeeping (sqlite/0025, the duplicate keys' flush watermark), which the test
//! below names. Adding a migration means
//! adding the two files and one line to each list below (a test checks the lists match the
//! folders).
//!
//! Clearing keeps its own database (the double-entry ledger, positions, windows, consumer
//! offsets): its migrations live under `schemas/migrations/clearing/{sqlite,postgres}/` and are
//! exposed as [`CLEARING_SQLITE`] and [`CLEARING_POSTGRES`]. The two lists are independent of the
//! switch's: each database records its own applied versions.

/// One migration step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Monotonic version, the file name's numeric prefix.
    pub version: i64,
    /// Human-readable name, the file name without prefix and extension.
    pub description: &'static str,
    /// The SQL, possibly several statements.
    pub sql: &'static str,
}

/// Migrations for SQLite (3.37+, STRICT tables), in order.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        description: "switch_core",
        sql: include_str!("../migrations/sqlite/0001_switch_core.sql"),
    },
    Migration {
        version: 2,
        description: "card_issuance_data",
        sql: include_str!("../migrations/sqlite/0002_card_issuance_data.sql"),
    },
    Migration {
        version: 3,
        description: "advice_queue",
        sql: include_str!("../migrations/sqlite/0003_advice_queue.sql"),
    },
    Migration {
        version: 4,
        description: "card_risk",
        sql: include_str!("../migrations/sqlite/0004_card_risk.sql"),
    },
    Migration {
        version: 5,
        description: "write_path",
        sql: include_str!("../migrations/sqlite/0005_write_path.sql"),
    },
    Migration {
        version: 6,
        description: "txn_by_decided_at",
        sql: include_str!("../migrations/sqlite/0006_txn_by_decided_at.sql"),
    },
    Migration {
        version: 7,
        description: "outbox_without_partition_index",
        sql: include_str!("../migrations/sqlite/0007_outbox_without_partition_index.sql"),
    },
    Migration {
        version: 8,
        description: "card_risk_in_store",
        sql: include_str!("../migrations/sqlite/0008_card_risk_in_store.sql"),
    },
    Migration {
        version: 9,
        description: "duplicate_key_acquirer",
        sql: include_str!("../migrations/sqlite/0009_duplicate_key_acquirer.sql"),
    },
    Migration {
        version: 10,
        description: "card_management",
        sql: include_str!("../migrations/sqlite/0010_card_management.sql"),
    },
    Migration {
        version: 11,
        description: "operator_access",
        sql: include_str!("../migrations/sqlite/0011_operator_access.sql"),
    },
    Migration {
        version: 12,
        description: "bank_reconciliation",
        sql: include_str!("../migrations/sqlite/0012_bank_reconciliation.sql"),
    },
    Migration {
        version: 14,
        description: "retransmission_answer_and_day_purge",
        sql: include_str!("../migrations/sqlite/0014_retransmission_answer_and_day_purge.sql"),
    },
    Migration {
        version: 15,
        description: "totp_replay_guard",
        sql: include_str!("../migrations/sqlite/0015_totp_replay_guard.sql"),
    },
    Migration {
        version: 16,
        description: "console_names_history_proposals",
        sql: include_str!("../migrations/sqlite/0016_console_names_history_proposals.sql"),
    },
    Migration {
        version: 17,
        description: "operator_state_in_store",
        sql: include_str!("../migrations/sqlite/0017_operator_state_in_store.sql"),
    },
    Migration {
        version: 18,
        description: "hot_tables_without_foreign_keys",
        sql: include_str!("../migrations/sqlite/0018_hot_tables_without_foreign_keys.sql"),
    },
    Migration {
        version: 19,
        description: "retransmission_answers_appended",
        sql: include_str!("../migrations/sqlite/0019_retransmission_answers_appended.sql"),
    },
    Migration {
        version: 20,
        description: "stand_in_in_card_day",
        sql: include_str!("../migrations/sqlite/0020_stand_in_in_card_day.sql"),
    },
    Migration {
        version: 23,
        description: "one_approved_reversal_per_original",
        sql: include_str!("../migrations/sqlite/0023_one_approved_reversal_per_original.sql"),
    },
    Migration {
        version: 24,
        description: "card_transaction_chain",
        sql: include_str!("../migrations/sqlite/0024_card_transaction_chain.sql"),
    },
    Migration {
        version: 25,
        description: "duplicate_key_watermark",
        sql: include_str!("../migrations/sqlite/0025_duplicate_key_watermark.sql"),
    },
];

/// Migrations for PostgreSQL (13+), in order.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        description: "switch_core",
        sql: include_str!("../migrations/postgres/0001_switch_core.sql"),
    },
    Migration {
        version: 2,
        description: "card_issuance_data",
        sql: include_str!("../migrations/postgres/0002_card_issuance_data.sql"),
    },
    Migration {
        version: 3,
        description: "advice_queue",
        sql: include_str!("../migrations/postgres/0003_advice_queue.sql"),
    },
    Migration {
        version: 4,
        description: "card_risk",
        sql: include_str!("../migrations/postgres/0004_card_risk.sql"),
    },
    Migration {
        version: 5,
        description: "write_path",
        sql: include_str!("../migrations/postgres/0005_write_path.sql"),
    },
    Migration {
        version: 6,
        description: "txn_by_decided_at",
        sql: include_str!("../migrations/postgres/0006_txn_by_decided_at.sql"),
    },
    Migration {
        version: 7,
        description: "outbox_without_partition_index",
        sql: include_str!("../migrations/postgres/0007_outbox_without_partition_index.sql"),
    },
    Migration {
        version: 8,
        description: "card_risk_in_store",
        sql: include_str!("../migrations/postgres/0008_card_risk_in_store.sql"),
    },
    Migration {
        version: 9,
        description: "duplicate_key_acquirer",
        sql: include_str!("../migrations/postgres/0009_duplicate_key_acquirer.sql"),
    },
    Migration {
        version: 10,
        description: "card_management",
        sql: include_str!("../migrations/postgres/0010_card_management.sql"),
    },
    Migration {
        version: 11,
        description: "operator_access",
        sql: include_str!("../migrations/postgres/0011_operator_access.sql"),
    },
    Migration {
        version: 12,
        description: "bank_reconciliation",
        sql: include_str!("../migrations/postgres/0012_bank_reconciliation.sql"),
    },
    Migration {
        version: 14,
        description: "retransmission_answer_and_day_purge",
        sql: include_str!("../migrations/postgres/0014_retransmission_answer_and_day_purge.sql"),
    },
    Migration {
        version: 15,
        description: "totp_replay_guard",
        sql: include_str!("../migrations/postgres/0015_totp_replay_guard.sql"),
    },
    Migration {
        version: 16,
        description: "console_names_history_proposals",
        sql: include_str!("../migrations/postgres/0016_console_names_history_proposals.sql"),
    },
    Migration {
        version: 17,
        description: "operator_state_in_store",
        sql: include_str!("../migrations/postgres/0017_operator_state_in_store.sql"),
    },
    Migration {
        version: 18,
        description: "hot_tables_without_foreign_keys",
        sql: include_str!("../migrations/postgres/0018_hot_tables_without_foreign_keys.sql"),
    },
    Migration {
        version: 19,
        description: "retransmission_answers_appended",
        sql: include_str!("../migrations/postgres/0019_retransmission_answers_appended.sql"),
    },
    Migration {
        version: 20,
        description: "stand_in_in_card_day",
        sql: include_str!("../migrations/postgres/0020_stand_in_in_card_day.sql"),
    },
    Migration {
        version: 23,
        description: "one_approved_reversal_per_original",
        sql: include_str!("../migrations/postgres/0023_one_approved_reversal_per_original.sql"),
    },
    Migration {
        version: 24,
        description: "card_transaction_chain",
        sql: include_str!("../migrations/postgres/0024_card_transaction_chain.sql"),
    },
];

/// Migrations of clearing's ledger database for SQLite, in order.
pub const CLEARING_SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        description: "clearing_ledger",
        sql: include_str!("../migrations/clearing/sqlite/0001_clearing_ledger.sql"),
    },
    Migration {
        version: 3,
        description: "ledger_lean_journal",
        sql: include_str!("../migrations/clearing/sqlite/0003_ledger_lean_journal.sql"),
    },
    Migration {
        version: 4,
        description: "ledger_packed_journal",
        sql: include_str!("../migrations/clearing/sqlite/0004_ledger_packed_journal.sql"),
    },
    Migration {
        version: 6,
        description: "posting_view",
        sql: include_str!("../migrations/clearing/sqlite/0006_posting_view.sql"),
    },
];

/// Migrations of clearing's ledger database for PostgreSQL, in order.
pub const CLEARING_POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        description: "clearing_ledger",
        sql: include_str!("../migrations/clearing/postgres/0001_clearing_ledger.sql"),
    },
    Migration {
        version: 3,
        description: "ledger_lean_journal",
        sql: include_str!("../migrations/clearing/postgres/0003_ledger_lean_journal.sql"),
    },
    Migration {
        version: 4,
        description: "ledger_packed_journal",
        sql: include_str!("../migrations/clearing/postgres/0004_ledger_packed_journal.sql"),
    },
    Migration {
        version: 6,
        description: "posting_view",
        sql: include_str!("../migrations/clearing/postgres/0006_posting_view.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dialect: &str) -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/").to_owned() + dialect;
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    fn listed(list: &[Migration]) -> Vec<String> {
        list.iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.description))
            .collect()
    }

    #[test]
    fn embedded_lists_match_the_migration_folders() {
        assert_eq!(listed(SQLITE), files("sqlite"));
        assert_eq!(listed(POSTGRES), files("postgres"));
        assert_eq!(listed(CLEARING_SQLITE), files("clearing/sqlite"));
        assert_eq!(listed(CLEARING_POSTGRES), files("clearing/postgres"));
    }

    #[test]
    fn both_dialects_create_the_same_tables() {
        /// The tables left after every migration ran: created, dropped and renamed in order
        /// (SQLite rebuilds a table to change its key: create `x_new`, drop `x`, rename).
        fn tables(list: &[Migration]) -> Vec<String> {
            let mut t = std::collections::BTreeSet::new();
            let first = |l: &str| l.split_whitespace().next().unwrap_or_default().to_owned();
            for line in list.iter().flat_map(|m| m.sql.lines()) {
                if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                    t.insert(first(rest));
                } else if let Some(rest) = line.strip_prefix("DROP TABLE ") {
                    t.remove(first(rest).trim_end_matches(';'));
                } else if let Some(rest) = line.strip_prefix("ALTER TABLE ") {
                    if let Some((from, to)) = rest.split_once(" RENAME TO ") {
                        t.remove(from.trim());
                        t.insert(to.trim().trim_end_matches(';').to_owned());
                    }
                }
            }
            t.into_iter().collect()
        }
        // The SQLite store's own bookkeeping, which PostgreSQL (shared by several nodes) has
        // no use for: the duplicate keys' flush watermark (sqlite/0025).
        let sqlite_only = ["duplicate_key_watermark".to_owned()];
        let mut sqlite = tables(SQLITE);
        sqlite.retain(|t| !sqlite_only.contains(t));
        assert_eq!(sqlite, tables(POSTGRES));
        assert!(tables(SQLITE).contains(&"outbox".to_owned()));
        assert_eq!(tables(CLEARING_SQLITE), tables(CLEARING_POSTGRES));
        assert!(tables(CLEARING_SQLITE).contains(&"applied_event".to_owned()));
        // Clearing 0004 packed the postings into applied_event and dropped the table.
        assert!(!tables(CLEARING_SQLITE).contains(&"posting".to_owned()));
    }
}
