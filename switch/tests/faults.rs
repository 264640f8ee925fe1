//! Faults on the real parts under load (issue 28): each test states what it injects, keeps
//! load on the switch while the fault lasts and after it heals, and checks the books: no
//! approval lost (every `00` a kiosk got is an approved transaction in the store), no money
//! created or destroyed (each bank holds exactly the approved purchases, every leg it booked for
//! a declined request reversed once; `verify_integrity` finds nothing; with clearing, the
//! ledger equals the events and positions sum to zero).
//!
//! - `bank_links`: a bank's host stalls, answers late, answers garbage, drops off the network;
//! - `hsm`: the switch's network HSM answers errors, answers too slowly, drops connections;
//! - `database`: PostgreSQL stopped for 10 s under load (a private cluster) and restarted;
//! - `commit_outcome`: the connection to PostgreSQL dies while a group commit's COMMIT is in
//!   flight (a proxy loses the answer), the database back at once or only after the request's
//!   time to learn the outcome has passed;
//! - `partition`: the network between the switch and PostgreSQL partitioned (packets dropped,
//!   no RST, sockets open) in the middle of a group commit for 20 s, then healed;
//! - `broker`: the Kafka-protocol broker down for 60 s (a private tansu);
//! - `sqlite`: the SQLite store's disk full (a small tmpfs filled) for 10 s under load;
//! - `clock`: the switch's wall clock jumps forward and back (field 7's window, the key purge).
//!
//! PostgreSQL's server binaries and tansu must be installed (ops/setup.sh); a test that needs
//! them FAILS when they are missing.

#[path = "faults/harness.rs"]
mod harness;

#[path = "support/pg_server.rs"]
mod pg_server;

#[path = "support/pg_commit_proxy.rs"]
mod pg_commit_proxy;

#[path = "support/pg_partition_proxy.rs"]
mod pg_partition_proxy;

#[path = "faults/database.rs"]
mod database;

#[path = "faults/commit_outcome.rs"]
mod commit_outcome;

#[path = "faults/partition.rs"]
mod partition;

#[path = "faults/bank_links.rs"]
mod bank_links;

#[path = "faults/hsm.rs"]
mod hsm;

#[path = "faults/broker.rs"]
mod broker;

#[path = "faults/sqlite.rs"]
mod sqlite;

#[path = "faults/clock.rs"]
mod clock;
