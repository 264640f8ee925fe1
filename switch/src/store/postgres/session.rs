//! The limits that keep an unreachable PostgreSQL from holding the switch, and the server from
//! holding locks for a switch it can no longer hear: a network partition (packets dropped, no
//! RST, sockets left open) otherwise leaves a group commit waiting for its answer until the
//! kernel gives up on the connection (about 15 min of retransmissions), with every request
//! queued behind it unanswered, while the server keeps the batch's transaction open, its rows
//! locked `FOR UPDATE`, until its own TCP keepalive notices (2 h by default). The `partition`
//! fault test saw both: no answer at all for the 20 s of the partition, then, healed, the
//! cards of the caught batch blocked for good behind its locks.
//!
//! Client side, each group commit's round trips are bounded ([`GROUP_COMMIT_WORK_MAX_MS`]
//! before COMMIT, [`COMMIT_ANSWER_MAX_MS`] for COMMIT's answer, by [`within`]); a connection
//! that ran out of time is closed, not pooled (`batch::try_batch`). Server side, every session
//! the store opens sets, in its startup packet (no extra round trip), limits that end a session
//! whose client vanished and free its locks ([`with_session_limits`]).
//!
//! The chosen values, against the timeouts around them: an acquirer (the kiosks, a terminal)
//! waits 30 s or more for an answer; the bank leg takes at most `bank_timeout` (5 s by
//! default) before the decision is committed; the pool waits at most `ACQUIRE_TIMEOUT_S` (5 s)
//! for a connection (sqlx tests an idle one with a ping within that wait, so a dead idle
//! connection costs no more); a COMMIT whose answer is lost is resolved for at most
//! `failover::RESOLVE_WAIT_MAX_MS` (10 s). A healthy group commit takes milliseconds (tens
//! under load), so 2 s of work and 2 s for COMMIT's answer are far from it, and a request whose
//! batch meets a partition is answered within 5 + 2 + 2 + 10 = 19 s of its decision reaching the
//! store (at most one batch ahead of it is stuck as long: the writer has two in flight).
//! Measured by the `partition` fault test (40 s, kiosks paying throughout): the first answer
//! 7 to 12 s after the partition began, each `96` within 20 s of its request (every store call
//! a request makes meanwhile waits the pool's 5 s for a connection that never opens: a read
//! before the decision, the decision, the decline's reversal), `00` again within 0.2 s of
//! healing.
//! [`IDLE_IN_TRANSACTION_MAX_MS`] is above any pause a live switch makes inside a transaction
//! (its statements go back to back) and below the resolution wait, so a COMMIT that never
//! reached the server is seen aborted (`txid_status`) before the wait ends; it is also how
//! long a vanished node's batch can keep other nodes off its cards.

use sqlx::postgres::PgConnectOptions;
use std::future::Future;
use std::time::Duration;

/// How long a group commit's round trips before COMMIT (BEGIN, the locking loads, the writes)
/// may take in all before the batch is given up: rolled back for sure (no COMMIT was sent),
/// its decisions `Unavailable` (`96`), its connection closed.
pub const GROUP_COMMIT_WORK_MAX_MS: u64 = 2_000;

/// How long a group commit waits for the answer to its COMMIT; past it the outcome is
/// unknown, learnt from the database (`failover::resolve_commits`).
pub const COMMIT_ANSWER_MAX_MS: u64 = 2_000;

/// The server ends a session idle inside a transaction this long (`FATAL`, the transaction
/// rolled back, its locks released): `idle_in_transaction_session_timeout`, PostgreSQL manual
/// 20.11.
pub const IDLE_IN_TRANSACTION_MAX_MS: u64 = 5_000;

/// While a statement runs, the server checks this often that the client's socket is still
/// there, and cancels the statement if it closed (a group commit the switch gave up while it
/// waited for a lock): `client_connection_check_interval`, PostgreSQL 14 and later.
pub const CLIENT_CHECK_INTERVAL_MS: u64 = 1_000;

/// The server's TCP keepalives on the session's socket (PostgreSQL manual 20.3.1), so an idle
/// session whose client vanished is ended and its connection slot freed: first probe after
/// this much silence,
pub const KEEPALIVE_IDLE_S: u64 = 10;
/// then one probe this often,
pub const KEEPALIVE_INTERVAL_S: u64 = 5;
/// this many unanswered probes ending it.
pub const KEEPALIVE_PROBES_MAX: u32 = 3;

/// Data the server sent that stays unacknowledged this long ends the connection
/// (`tcp_user_timeout`, Linux's `TCP_USER_TIMEOUT`, RFC 5482).
pub const UNACKNOWLEDGED_MAX_MS: u64 = 10_000;

/// `options` with the server-side limits of every session the store opens, sent in the
/// startup packet (`-c name=value`).
pub(super) fn with_session_limits(options: PgConnectOptions) -> PgConnectOptions {
    options.options([
        (
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_MAX_MS.to_string(),
        ),
        (
            "client_connection_check_interval",
            CLIENT_CHECK_INTERVAL_MS.to_string(),
        ),
        ("tcp_keepalives_idle", KEEPALIVE_IDLE_S.to_string()),
        ("tcp_keepalives_interval", KEEPALIVE_INTERVAL_S.to_string()),
        ("tcp_keepalives_count", KEEPALIVE_PROBES_MAX.to_string()),
        ("tcp_user_timeout", UNACKNOWLEDGED_MAX_MS.to_string()),
    ])
}

/// `work`, or an I/O error `TimedOut` after `limit_ms` (the work is dropped: whatever it sent
/// may still be on its way, so its connection must not be used again).
pub(super) async fn within<T>(
    limit_ms: u64,
    what: &'static str,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(Duration::from_millis(limit_ms), work)
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer from the database within {limit_ms} ms ({what})"),
            )))
        })
}

/// Whether a connection that failed with `e` may be used again: only if the server answered
/// (a database error); after an I/O or protocol error, or a timeout, it may be dead or out of
/// step with the server.
pub(super) fn reusable_after(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DataKeyPanProtector, PostgresConfig, PostgresStore};
    use std::sync::Arc;

    /// Needs PostgreSQL at 127.0.0.1:5432 (or SWITCH_TEST_PG_URL), as the store suite does.
    #[tokio::test]
    async fn every_store_session_carries_the_server_side_limits() {
        let url = std::env::var("SWITCH_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("session_test_{}", std::process::id());
        let mut config = PostgresConfig::new(url.clone());
        config.schema = Some(schema.clone());
        let store = PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL at {url}: {e}"));
        let mut seen = Vec::new();
        for name in [
            "idle_in_transaction_session_timeout",
            "client_connection_check_interval",
            "tcp_keepalives_count",
        ] {
            let value: String = sqlx::query_scalar(&format!("SHOW {name}"))
                .fetch_one(&store.write)
                .await
                .expect("show");
            seen.push(value);
        }
        store.close().await;
        PostgresStore::drop_schema(&url, &schema)
            .await
            .expect("drop schema");
        assert_eq!(
            seen,
            [
                format!("{}s", IDLE_IN_TRANSACTION_MAX_MS / 1_000),
                format!("{}s", CLIENT_CHECK_INTERVAL_MS / 1_000),
                KEEPALIVE_PROBES_MAX.to_string(),
            ]
        );
    }
}
