//! Several database hosts, one writable primary: libpq's `target_session_attrs=read-write`
//! for a pool that must follow a failover.
//!
//! `[database] url` may name several hosts the way libpq does,
//! `postgres://user@10.0.0.1:5432,10.0.0.2:5432/switch?target_session_attrs=read-write`
//! (sqlx reads one host per URL: [`host_urls`] splits the list). The store connects to the
//! first host, in order, that accepts writes (`SHOW transaction_read_only` is `off`, the check
//! libpq makes). With more than one host (or `target_session_attrs=read-write`), a
//! [`PrimaryWatch`] then keeps one monitoring connection to that primary and asks it again
//! every [`PROBE_INTERVAL_MS`] (at once when a group commit fails for want of the database,
//! a lost connection or SQLSTATE 25006 `read_only_sql_transaction`); when the answer fails, times out or turns read-only (a standby
//! was promoted elsewhere and this one demoted, SQLSTATE 25006 for writers), it walks the list
//! until a host accepts writes, points the pool's future connections there
//! (`set_connect_options`) and marks every older pooled connection stale, so it is dropped
//! rather than handed out.
//!
//! What happens to decisions in flight: a group commit whose connection dies fails as a whole
//! with a connection error, which the writer reports as `DecisionError::Unavailable` and the
//! pipeline answers `96` (`pipeline::decision`): nothing is answered as approved that was not
//! committed. Because every session sets `synchronous_commit=on` and the primary names its
//! standby in `synchronous_standby_names`, a commit that returned is on the standby too, so an
//! approval a client received survives the promotion. The opposite case is possible: the
//! primary dies after the standby has the commit but before it acknowledges it, so the client
//! got `96` for a transaction the new primary holds: the unknown-outcome commit. The failover
//! drill saw it (1 answer in 4 drills before this was handled). So a group commit whose
//! connection died during COMMIT is not answered at once (one that failed before it was rolled
//! back, and is): [`resolve_commits`], on every PostgreSQL store (one host too: the connection
//! alone can die), waits (at most [`RESOLVE_WAIT_MAX_MS`]) for a writable primary and asks it
//! the batch transaction's status by id (`txid_status`), falling back to looking the
//! decisions' transactions up by their ids (UUIDs made before the commit) when the server
//! cannot say ([`resolve_unknown_outcomes`]): committed ones are answered as committed (an
//! approval is then truly `00`), the others `96`. If no primary answers in time the outcome
//! stays unknown (`DecisionError::OutcomeUnknown`): that is logged with the transaction ids,
//! the acquirer is answered `96`, and the pipeline records the approval's compensation with
//! its decline (`store::spool::Compensation`), committed if the approval turns out committed.

use super::super::model::{Committed, Decision};
use super::super::{DecisionError, StoreError};
use super::batch::UnknownCommit;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the watch asks the primary whether it still accepts writes.
pub const PROBE_INTERVAL_MS: u64 = 200;
/// How long one probe (connect, or the query on the monitoring connection) may take before the
/// host counts as gone.
pub const PROBE_TIMEOUT_MS: u64 = 2_000;

/// How long a group commit that lost its database waits for a writable primary to learn
/// whether it committed (well inside a terminal's 30 s or more).
pub const RESOLVE_WAIT_MAX_MS: u64 = 10_000;

/// The libpq URL parameter that asks for a writable host.
const TARGET_SESSION_ATTRS: &str = "target_session_attrs";

/// The hosts of a libpq URL, each as a URL of its own, and whether the URL asked for a
/// writable host (`target_session_attrs=read-write` or `primary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUrls {
    /// One single-host URL per host, in the order given.
    pub urls: Vec<String>,
    /// `target_session_attrs` asked for a writable primary.
    pub read_write: bool,
}

impl HostUrls {
    /// Whether the pool must follow the primary (several hosts, or a writable one asked for).
    pub fn follows_primary(&self) -> bool {
        self.urls.len() > 1 || self.read_write
    }
}

/// A bad multi-host URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostListError {
    /// Not `postgres://` or `postgresql://`.
    #[error("the url must start with postgres:// or postgresql://")]
    Scheme,
    /// An empty entry in a list of hosts (`h1,,h2`).
    #[error("the url has an empty host in its host list")]
    EmptyHost,
    /// A `target_session_attrs` other than the ones the store honours.
    #[error("target_session_attrs={0} is not supported (read-write, primary or any)")]
    SessionAttrs(String),
}

/// Splits `postgres://[user[:password]@]host1[:port1],host2[:port2]/db?params` into one URL
/// per host (libpq's multi-host connection string, PostgreSQL manual 34.1.1.3), dropping
/// `target_session_attrs`, which sqlx does not read.
pub fn host_urls(url: &str) -> Result<HostUrls, HostListError> {
    let (scheme, rest) = url.split_once("://").ok_or(HostListError::Scheme)?;
    if scheme != "postgres" && scheme != "postgresql" {
        return Err(HostListError::Scheme);
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut read_write = false;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some((TARGET_SESSION_ATTRS, value)) => match value {
                "read-write" | "primary" => read_write = true,
                "any" => {}
                other => return Err(HostListError::SessionAttrs(other.to_owned())),
            },
            _ if pair.is_empty() => {}
            _ => kept.push(pair),
        }
    }
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    let urls = hosts
        .split(',')
        .map(|host| {
            // `postgres:///db` (one empty host: the default socket) is libpq's too.
            if host.is_empty() && hosts.contains(',') {
                Err(HostListError::EmptyHost)
            } else {
                Ok(format!("{scheme}://{userinfo}{host}{path}{query}"))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HostUrls { urls, read_write })
}

/// Parses each host's URL into connect options.
pub(super) fn candidates(urls: &HostUrls) -> Result<Vec<PgConnectOptions>, StoreError> {
    urls.urls
        .iter()
        .map(|u| PgConnectOptions::from_str(u).map_err(StoreError::from))
        .collect()
}

fn host_of(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// Whether this connection's server accepts writes (libpq's `read-write` check).
pub(super) async fn accepts_writes(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
        .fetch_one(conn)
        .await?;
    Ok(read_only == "off")
}

/// A connection to `options`' host if that host accepts writes, within [`PROBE_TIMEOUT_MS`].
async fn writable(options: &PgConnectOptions) -> Result<PgConnection, String> {
    let probe = async {
        let mut conn = options.connect().await.map_err(|e| e.to_string())?;
        if accepts_writes(&mut conn).await.map_err(|e| e.to_string())? {
            Ok(conn)
        } else {
            let _ = conn.close().await;
            Err("read-only (a standby)".to_owned())
        }
    };
    tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), probe)
        .await
        .unwrap_or_else(|_| Err("no answer".to_owned()))
}

/// Finds the first writable host, trying them in order from `first`: its index and a
/// connection to it, or every host's reason.
pub(super) async fn find_primary(
    candidates: &[PgConnectOptions],
    first: usize,
) -> Result<(usize, PgConnection), String> {
    let mut reasons = Vec::with_capacity(candidates.len());
    for k in 0..candidates.len() {
        let i = (first + k) % candidates.len();
        match writable(&candidates[i]).await {
            Ok(conn) => return Ok((i, conn)),
            Err(why) => reasons.push(format!("{}: {why}", host_of(&candidates[i]))),
        }
    }
    Err(reasons.join("; "))
}

/// What the database says of a transaction whose COMMIT lost its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Committed,
    Aborted,
    /// The server cannot tell by the id (too old, or an id from before a failover that this
    /// primary never saw): look the decisions up instead.
    Unknown,
}

/// Resolves the commits whose answer the connection took with it (every PostgreSQL store, one
/// host or several): waits, at most [`RESOLVE_WAIT_MAX_MS`], for the database to answer, then
/// asks it the transaction's status by id (`txid_status`, PostgreSQL manual 9.26: the way to
/// learn "whether their transaction committed or aborted after the application and database
/// server become disconnected while a COMMIT is in progress"). While the old session is still
/// finishing its COMMIT the status is `in progress` and the question is asked again: a lookup
/// of the rows alone could miss a commit not yet visible. Committed: each decision gets what
/// the batch planned for it (an approval is then truly `00`, with its outbox position);
/// aborted: `Unavailable` (certainly not durable, `96`). No answer in time: the results stay
/// `OutcomeUnknown`, and the pipeline records the approval's compensation.
pub(super) async fn resolve_commits(
    pool: &PgPool,
    batch: &[Decision],
    results: &mut [Result<Committed, DecisionError>],
    unknown: Vec<UnknownCommit>,
) {
    let deadline = Instant::now() + Duration::from_millis(RESOLVE_WAIT_MAX_MS);
    for u in unknown {
        let status = match u.xid {
            // Nothing was written: nothing can have committed, and each decision's verdict
            // (a refusal by the plan) stands.
            None => Some(Status::Committed),
            Some(xid) => xact_status(pool, xid, deadline).await,
        };
        match status {
            Some(Status::Committed) => {
                for (&i, planned) in u.positions.iter().zip(u.planned) {
                    results[i] = planned;
                }
            }
            Some(Status::Aborted) => {
                for &i in &u.positions {
                    results[i] = Err(DecisionError::Unavailable(
                        "the connection died during COMMIT; the database rolled it back".into(),
                    ));
                }
            }
            Some(Status::Unknown) => {
                let mut part: Vec<_> = u.positions.iter().map(|&i| results[i].clone()).collect();
                let decisions: Vec<Decision> =
                    u.positions.iter().map(|&i| batch[i].clone()).collect();
                resolve_unknown_outcomes(pool, &decisions, &mut part).await;
                for (&i, r) in u.positions.iter().zip(part) {
                    results[i] = r;
                }
            }
            None => {
                let ids: Vec<uuid::Uuid> = u
                    .positions
                    .iter()
                    .map(|&i| batch[i].transaction.transaction_id.0)
                    .collect();
                tracing::error!(transactions = ?ids, xid = ?u.xid, "commit outcome unknown: the database did not answer in time; answered 96 with compensations recorded");
                continue;
            }
        }
        tracing::warn!(
            decisions = u.positions.len(),
            committed = status == Some(Status::Committed),
            "commit outcome resolved on the database after the connection died during COMMIT"
        );
    }
}

/// `txid_status(xid)`, asked until it is no longer `in progress` or `deadline` passes (`None`).
async fn xact_status(pool: &PgPool, xid: i64, deadline: Instant) -> Option<Status> {
    loop {
        let asked = sqlx::query_scalar::<_, Option<String>>("SELECT txid_status($1)")
            .bind(xid)
            .fetch_one(pool);
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, asked).await {
            Ok(Ok(Some(s))) if s == "committed" => return Some(Status::Committed),
            Ok(Ok(Some(s))) if s == "aborted" => return Some(Status::Aborted),
            // Too old for the server to keep its status (NULL), or an id this server never
            // assigned ("transaction ID ... is in the future", SQLSTATE 22023: a standby
            // promoted without it).
            Ok(Ok(None)) => return Some(Status::Unknown),
            Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("22023") => {
                return Some(Status::Unknown)
            }
            // `in progress`: the old session is still committing; or no database yet.
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS)).await;
            }
            _ => return None,
        }
    }
}

/// For each decision whose result is `Unavailable` or `OutcomeUnknown`: waits for a writable
/// primary (the pool refuses read-only hosts), then looks its transaction up and replaces the
/// error with [`Committed`] when the commit did happen (one not found is `Unavailable`). Used
/// when the transaction's status cannot be asked by its id (`Status::Unknown`).
pub(super) async fn resolve_unknown_outcomes(
    pool: &PgPool,
    batch: &[Decision],
    results: &mut [Result<Committed, DecisionError>],
) {
    let unknown: Vec<usize> = (0..results.len())
        .filter(|&i| {
            matches!(
                results[i],
                Err(DecisionError::Unavailable(_) | DecisionError::OutcomeUnknown(_))
            )
        })
        .collect();
    if unknown.is_empty() {
        return;
    }
    let ids: Vec<uuid::Uuid> = unknown
        .iter()
        .map(|&i| batch[i].transaction.transaction_id.0)
        .collect();
    let deadline = Instant::now() + Duration::from_millis(RESOLVE_WAIT_MAX_MS);
    let found = loop {
        let asked = async {
            let txns: Vec<uuid::Uuid> =
                sqlx::query_scalar("SELECT transaction_id FROM txn WHERE transaction_id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(pool)
                    .await?;
            let events: Vec<uuid::Uuid> = unknown
                .iter()
                .filter_map(|&i| batch[i].event.as_ref().map(|e| e.event_id))
                .collect();
            let seqs: Vec<(uuid::Uuid, i64)> =
                sqlx::query_as("SELECT event_id, outbox_seq FROM outbox WHERE event_id = ANY($1)")
                    .bind(&events)
                    .fetch_all(pool)
                    .await?;
            Ok::<_, sqlx::Error>((txns, seqs))
        };
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), asked).await
        {
            Ok(Ok(found)) => break Some(found),
            Ok(Err(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS)).await;
            }
            _ => break None,
        }
    };
    let Some((txns, seqs)) = found else {
        tracing::error!(transactions = ?ids, "commit outcome unknown: no writable database host answered; answered 96, reconcile these ids");
        return;
    };
    let mut resolved = 0;
    for &i in &unknown {
        let d = &batch[i];
        if txns.contains(&d.transaction.transaction_id.0) {
            let outbox_seq = d.event.as_ref().and_then(|e| {
                seqs.iter()
                    .find(|(id, _)| *id == e.event_id)
                    .map(|(_, seq)| *seq)
            });
            results[i] = Ok(Committed {
                transaction_id: d.transaction.transaction_id,
                outbox_seq,
            });
            resolved += 1;
        } else if matches!(results[i], Err(DecisionError::OutcomeUnknown(_))) {
            results[i] = Err(DecisionError::Unavailable(
                "not found on the database after its connection died: not committed".into(),
            ));
        }
    }
    tracing::warn!(
        unknown = unknown.len(),
        committed = resolved,
        "commit outcomes resolved on the primary after a database failure"
    );
}

/// Which host the pool writes to, and since when.
#[derive(Debug)]
pub struct PrimaryWatch {
    candidates: Vec<PgConnectOptions>,
    state: Mutex<Current>,
    /// A writer saw the database fail: probe now rather than at the next tick.
    wake: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    index: usize,
    since: Instant,
    failovers: u64,
}

impl PrimaryWatch {
    /// A watch over `candidates` whose primary is `index` from now on.
    pub(super) fn new(candidates: Vec<PgConnectOptions>, index: usize) -> Arc<Self> {
        Arc::new(Self {
            candidates,
            state: Mutex::new(Current {
                index,
                since: Instant::now(),
                failovers: 0,
            }),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn current(&self) -> Current {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `host:port` of the primary the pool connects to now.
    pub fn primary(&self) -> String {
        host_of(&self.candidates[self.current().index])
    }

    /// How many times the pool moved to another host.
    pub fn failovers(&self) -> u64 {
        self.current().failovers
    }

    /// Asks for a probe now (a commit failed for want of the database).
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether a pooled connection `age` old was opened before the pool last moved (it may
    /// point at the old primary, now gone or read-only).
    pub(super) fn stale(&self, age: Duration) -> bool {
        age > self.current().since.elapsed()
    }

    /// Points the pool at `index`'s host.
    fn moved_to(&self, pool: &PgPool, index: usize) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let from = host_of(&self.candidates[s.index]);
        pool.set_connect_options(self.candidates[index].clone());
        *s = Current {
            index,
            since: Instant::now(),
            failovers: s.failovers + 1,
        };
        tracing::warn!(from = %from, to = %host_of(&self.candidates[index]), "database primary moved; the store follows it");
    }

    /// Probes the primary until the pool closes, moving the pool when another host takes over.
    pub(super) async fn run(self: Arc<Self>, pool: PgPool, mut monitor: Option<PgConnection>) {
        let mut down_logged = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS)) => {}
                _ = self.wake.notified() => {}
            }
            if pool.is_closed() {
                break;
            }
            if let Some(conn) = monitor.as_mut() {
                let asked = tokio::time::timeout(
                    Duration::from_millis(PROBE_TIMEOUT_MS),
                    accepts_writes(conn),
                )
                .await;
                if matches!(asked, Ok(Ok(true))) {
                    continue;
                }
                tracing::warn!(primary = %self.primary(), "the database primary stopped accepting writes; looking for the new one");
                monitor = None;
            }
            match find_primary(&self.candidates, self.current().index).await {
                Ok((index, conn)) => {
                    if index != self.current().index {
                        self.moved_to(&pool, index);
                    }
                    monitor = Some(conn);
                    down_logged = false;
                }
                Err(reasons) => {
                    if !down_logged {
                        tracing::error!(hosts = %reasons, "no database host accepts writes");
                        down_logged = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::testkit;
    use crate::store::{DataKeyPanProtector, PostgresConfig, PostgresStore, Store};

    /// A commit whose answer was lost (the error says Unavailable) is found committed, with its
    /// outbox position; one that never reached the database stays unavailable (96).
    /// Needs PostgreSQL at 127.0.0.1:5432 (or SWITCH_TEST_PG_URL), as the store suite does.
    #[tokio::test]
    async fn a_lost_commit_answer_is_resolved_by_looking_the_transaction_up() {
        let url = std::env::var("SWITCH_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("resolve_test_{}", std::process::id());
        let mut config = PostgresConfig::new(url.clone());
        config.schema = Some(schema.clone());
        let store = PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL at {url}: {e}"));
        let fx = testkit::seed(&store, 100_000, 500_000).await.unwrap();
        let committed = testkit::debit(&fx, fx.personal, 1, 100);
        let never_sent = testkit::debit(&fx, fx.personal, 2, 100);
        let out = store.commit_decisions(vec![committed.clone()], 1).await;
        let stored = out.results[0].clone().unwrap();
        assert!(stored.outbox_seq.is_some());

        let batch = vec![committed, never_sent];
        let lost = || Err(DecisionError::Unavailable("connection reset".into()));
        let mut results = vec![lost(), lost()];
        resolve_unknown_outcomes(&store.write, &batch, &mut results).await;
        assert_eq!(
            results[0],
            Ok(stored),
            "found committed, with its outbox position"
        );
        assert_eq!(results[1], lost(), "not in the database: still 96");

        store.close().await;
        PostgresStore::drop_schema(&url, &schema).await.unwrap();
    }

    /// The id of a transaction that ran `txid_current()` and then `end` (COMMIT or ROLLBACK).
    async fn xid_ended(pool: &PgPool, end: &str) -> i64 {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
        let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        sqlx::query(end).execute(&mut *conn).await.unwrap();
        xid
    }

    /// A COMMIT whose answer was lost is resolved by its transaction's status: committed, each
    /// decision gets what was planned; aborted, `Unavailable`; an id the server never assigned
    /// (a promoted standby without it), looked up by the decisions' ids instead.
    /// Needs PostgreSQL at 127.0.0.1:5432 (or SWITCH_TEST_PG_URL), as the store suite does.
    #[tokio::test]
    async fn a_lost_commit_is_resolved_by_its_transaction_status() {
        let url = std::env::var("SWITCH_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("xact_status_test_{}", std::process::id());
        let mut config = PostgresConfig::new(url.clone());
        config.schema = Some(schema.clone());
        let store = PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
            .await
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL at {url}: {e}"));
        let fx = testkit::seed(&store, 100_000, 500_000).await.unwrap();
        let stored = testkit::debit(&fx, fx.personal, 1, 100);
        let out = store.commit_decisions(vec![stored.clone()], 1).await;
        let found = out.results[0].clone().unwrap();
        let lost = || Err(DecisionError::OutcomeUnknown("connection reset".into()));
        let planned = Committed {
            transaction_id: stored.transaction.transaction_id,
            outbox_seq: Some(4242),
        };
        let unknown = |xid| UnknownCommit {
            positions: vec![0],
            xid: Some(xid),
            planned: vec![Ok(planned)],
        };
        let batch = vec![stored];

        let committed = xid_ended(&store.write, "COMMIT").await;
        let mut results = vec![lost()];
        resolve_commits(&store.write, &batch, &mut results, vec![unknown(committed)]).await;
        assert_eq!(results, vec![Ok(planned)], "committed: as planned");

        let aborted = xid_ended(&store.write, "ROLLBACK").await;
        let mut results = vec![lost()];
        resolve_commits(&store.write, &batch, &mut results, vec![unknown(aborted)]).await;
        assert!(
            matches!(results[0], Err(DecisionError::Unavailable(_))),
            "{results:?}"
        );

        let future = committed + 1_000_000;
        let mut results = vec![lost()];
        resolve_commits(&store.write, &batch, &mut results, vec![unknown(future)]).await;
        assert_eq!(results, vec![Ok(found)], "never assigned here: looked up");

        store.close().await;
        PostgresStore::drop_schema(&url, &schema).await.unwrap();
    }

    #[test]
    fn a_libpq_host_list_becomes_one_url_per_host() {
        let h = host_urls(
            "postgres://switch:pw@10.0.0.1:5432,10.0.0.2,db3:6432/ssc?sslmode=verify-full&target_session_attrs=read-write&application_name=sw",
        )
        .unwrap();
        assert_eq!(
            h.urls,
            vec![
                "postgres://switch:pw@10.0.0.1:5432/ssc?sslmode=verify-full&application_name=sw",
                "postgres://switch:pw@10.0.0.2/ssc?sslmode=verify-full&application_name=sw",
                "postgres://switch:pw@db3:6432/ssc?sslmode=verify-full&application_name=sw",
            ]
        );
        assert!(h.read_write && h.follows_primary());
        for u in &h.urls {
            PgConnectOptions::from_str(u).unwrap();
        }
    }

    #[test]
    fn one_host_is_left_alone() {
        let h = host_urls("postgresql://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(h.urls, vec!["postgresql://postgres@127.0.0.1:5432/test"]);
        assert!(!h.follows_primary());
        let h = host_urls("postgres://127.0.0.1?target_session_attrs=primary").unwrap();
        assert_eq!(h.urls, vec!["postgres://127.0.0.1"]);
        assert!(h.follows_primary());
    }

    #[test]
    fn bad_host_lists_are_refused() {
        assert_eq!(
            host_urls("postgres://a,,b/db"),
            Err(HostListError::EmptyHost)
        );
        assert_eq!(host_urls("postgres://,b/db"), Err(HostListError::EmptyHost));
        assert_eq!(
            host_urls("postgres:///db").unwrap().urls,
            ["postgres:///db"]
        );
        assert_eq!(host_urls("mysql://a/db"), Err(HostListError::Scheme));
        assert_eq!(
            host_urls("postgres://a,b/db?target_session_attrs=standby"),
            Err(HostListError::SessionAttrs("standby".into()))
        );
    }
}
