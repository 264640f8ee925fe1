//! SQL migrations of the switch (and later clearing) schema, embedded in the binary.
//!
//! The `.sql` files under `schemas/migrations/{sqlite,postgres}/` are the source of truth; this
//! module embeds them so a binary runs them at start-up without the files beside it (the
//! switch feeds them to sqlx's migrator). Both dialects must define the same tables, columns and
//! constraints: the switch runs one store test suite against both. Adding a migration means
//! adding the two files and one line to each list below (a test checks the lists match the
//! folders).

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
    }

    #[test]
    fn both_dialects_create_the_same_tables() {
        fn tables(list: &[Migration]) -> Vec<String> {
            let mut t: Vec<String> = list
                .iter()
                .flat_map(|m| m.sql.lines())
                .filter_map(|l| l.strip_prefix("CREATE TABLE "))
                .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
                .collect();
            t.sort();
            t
        }
        assert_eq!(tables(SQLITE), tables(POSTGRES));
        assert!(tables(SQLITE).contains(&"outbox".to_owned()));
    }
}
