//! The permission catalogue and the built-in roles.
//!
//! Why: every route asks for one [`Permission`]; a role is only a named set of them, stored in
//! the store, so an institution defines its own roles (a night cashier who cannot refund)
//! without code, as payment control centres (Hyperswitch, Stripe) let their merchants do. The
//! built-in roles below are the seven kinds of operator issue 25 names; they are written to
//! the store at start ([`builtin_roles`]), so they are read like any other role.

use crate::store::operator::OperatorRole;
use std::collections::BTreeSet;

macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// One thing an operator may do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Permission { $($(#[$doc])* $variant,)* }

        impl Permission {
            /// Every permission, in catalogue order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            /// Its stable name (stored in roles, shown in the API).
            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name,)* }
            }

            /// Parses a stable name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Permission::$variant),)* _ => None }
            }
        }
    };
}

catalogue! {
    /// Search and read transactions (scoped to the caller's institution).
    ViewTransactions = "transactions.read",
    /// Refund a transaction.
    Refund = "transactions.refund",
    /// Read cards and cardholders.
    ViewCards = "cards.read",
    /// Issue cards.
    IssueCards = "cards.issue",
    /// Import batches of card applications.
    ImportApplications = "applications.import",
    /// Activate a card.
    ActivateCard = "cards.activate",
    /// Report a card lost or stolen.
    ReportCardLost = "cards.report_lost",
    /// Suspend a card and lift the suspension.
    SuspendCard = "cards.suspend",
    /// Replace a card.
    ReplaceCard = "cards.replace",
    /// Unblock a card after too many wrong PINs.
    UnblockCard = "cards.unblock",
    /// Close a card.
    CloseCard = "cards.close",
    /// Reset a card's PIN at a counter.
    ResetPin = "cards.pin_reset",
    /// Drive a card in a job-centre kiosk's reader over the card relay: SSSE PIN unblock,
    /// EF06 record update.
    DriveCardAtKiosk = "cards.kiosk_relay",
    /// Read the store-and-forward queue.
    ViewSaf = "saf.read",
    /// Read clearing positions, windows and reports.
    ViewClearing = "clearing.read",
    /// Close a clearing window (and cut a settlement day over with the banks: `POST /cutover`).
    CloseWindow = "clearing.close_window",
    /// Resolve a bank reconciliation exception (an out-of-balance cut-over), with a reason.
    ResolveReconciliation = "reconciliation.resolve",
    /// Read users and roles.
    ViewUsers = "users.read",
    /// Create users and propose and approve their role changes.
    ManageUsers = "users.manage",
    /// Define roles.
    ManageRoles = "roles.manage",
    /// Read the audit log.
    ReadAuditLog = "audit.read",
    /// Scrape the Prometheus metrics.
    ViewMetrics = "metrics.read",
}

/// A set of permissions (a caller's: the union of its roles').
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// From permissions.
    pub fn of(list: &[Permission]) -> Self {
        Self(list.iter().copied().collect())
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    /// Adds the permissions of a stored role; names not in the catalogue (a role written by a
    /// later version) grant nothing.
    pub fn add_names(&mut self, names: &[String]) {
        self.0
            .extend(names.iter().filter_map(|n| Permission::parse(n)));
    }

    /// The names, in catalogue order.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|p| p.as_str()).collect()
    }
}

/// A built-in role: its id, name and permissions.
pub struct BuiltinRole {
    /// Stable id.
    pub role_id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// What it may do.
    pub permissions: &'static [Permission],
}

use Permission::*;

/// The built-in roles of issue 25.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        role_id: "issuance_operator",
        name: "Card issuance operator",
        permissions: &[ViewCards, IssueCards, ImportApplications],
    },
    BuiltinRole {
        role_id: "counter_clerk",
        name: "Counter clerk",
        permissions: &[
            ViewCards,
            ViewTransactions,
            ActivateCard,
            ReportCardLost,
            SuspendCard,
            ReplaceCard,
            UnblockCard,
            CloseCard,
            ResetPin,
            DriveCardAtKiosk,
        ],
    },
    BuiltinRole {
        role_id: "hospital_cashier",
        name: "Hospital cashier",
        permissions: &[ViewTransactions, Refund],
    },
    BuiltinRole {
        role_id: "bank_operator",
        name: "Bank operator",
        permissions: &[ViewTransactions, ViewCards, ViewSaf, ViewClearing],
    },
    BuiltinRole {
        role_id: "clearing_analyst",
        name: "Clearing analyst",
        permissions: &[
            ViewTransactions,
            ViewSaf,
            ViewClearing,
            CloseWindow,
            ResolveReconciliation,
            ViewMetrics,
        ],
    },
    BuiltinRole {
        role_id: "auditor",
        name: "Auditor (read-only, audit log)",
        permissions: &[
            ViewTransactions,
            ViewCards,
            ViewSaf,
            ViewClearing,
            ViewUsers,
            ReadAuditLog,
            ViewMetrics,
        ],
    },
    BuiltinRole {
        role_id: "administrator",
        name: "Administrator (users and roles)",
        permissions: &[ViewUsers, ManageUsers, ManageRoles],
    },
];

/// The built-in roles as stored (no institution: offered to every one).
pub fn builtin_roles(at_us: i64) -> Vec<OperatorRole> {
    BUILTIN_ROLES
        .iter()
        .map(|r| OperatorRole {
            role_id: r.role_id.to_owned(),
            institution: None,
            name: r.name.to_owned(),
            permissions: PermissionSet::of(r.permissions)
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            created_at_us: at_us,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_name_parses_back_and_names_are_unique() {
        let mut seen = BTreeSet::new();
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            assert!(seen.insert(p.as_str()), "{} twice", p.as_str());
        }
        assert_eq!(Permission::parse("transactions.delete"), None);
    }

    #[test]
    fn the_auditor_reads_only_and_only_the_administrator_manages_users() {
        let writes = [
            Refund,
            IssueCards,
            ImportApplications,
            ActivateCard,
            ReportCardLost,
            SuspendCard,
            ReplaceCard,
            UnblockCard,
            CloseCard,
            ResetPin,
            DriveCardAtKiosk,
            CloseWindow,
            ResolveReconciliation,
            ManageUsers,
            ManageRoles,
        ];
        for role in BUILTIN_ROLES {
            let set = PermissionSet::of(role.permissions);
            if role.role_id == "auditor" {
                assert!(writes.iter().all(|w| !set.contains(*w)));
                assert!(set.contains(ReadAuditLog));
            }
            assert_eq!(
                set.contains(ManageUsers),
                role.role_id == "administrator",
                "{}",
                role.role_id
            );
        }
    }
}
