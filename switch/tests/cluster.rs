//! Two switch nodes and two clearing consumers, one of each killed with SIGKILL under load
//! (issue 28).
//!
//! Both nodes (`switch demo --no-clearing`, each with its own acquirer port and its own six bank
//! simulators, so each signs on and exchanges keys on its own links) share one PostgreSQL
//! schema. Each node has its `clearing relay` beside it, and the relays share one lease, so
//! exactly one publishes at a time. Two `clearing run` consumers in one group apply the topic to
//! one ledger. Kiosks pay bills on both nodes; mid-run the node whose relay holds the lease, with
//! that relay, and consumer 1 are killed. The other relay takes the lease over when it expires,
//! and consumer 2 the partitions when the group rebalances; the other node's kiosks go on.
//!
//! What must hold afterwards:
//! - every approval a kiosk received, on either node, is in the store with its event, and
//!   `switch verify` passes;
//! - the ledger applied each outbox event exactly once (the same set of event ids), posted
//!   exactly the events' amounts, dead-lettered nothing, and its positions sum to zero.
//!
//! Needs PostgreSQL (127.0.0.1:5432, SWITCH_TEST_PG_URL) and the broker (127.0.0.1:9092,
//! CLEARING_TEST_BROKERS); the `clearing` binary is the workspace's (ops/test.sh builds it).

#[path = "support/demo_process.rs"]
mod demo_process;
#[path = "support/kill_kit.rs"]
mod kill_kit;

use demo_process::{demo_command, Processes};
use kill_kit::{check_store, pg_url, unique_tag, wait_approvals, wait_listening, Kiosks};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switch::sim::world::DemoWorld;
use switch::store::{DataKeyPanProtector, PostgresConfig, PostgresStore, Store};

const KIOSKS: usize = 8;
const CARDS_PER_BANK: usize = 8;
/// Approvals received (both nodes) before the kills.
const APPROVALS_BEFORE_KILL: usize = 300;
/// Approvals node B gives after the kills, before the load stops.
const APPROVALS_AFTER_KILL: usize = 150;
const PARTITIONS: &str = "4";

fn brokers() -> String {
    std::env::var("CLEARING_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The workspace's `clearing` binary, beside this package's `switch`.
fn clearing_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_switch")).with_file_name("clearing");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (cargo build -p clearing; ops/test.sh does)",
        p.display()
    );
    p
}

struct Names {
    schema: String,
    ledger_schema: String,
    topic_prefix: String,
    group: String,
}

fn node(url: &str, names: &Names, dir: &Path, keep: bool) -> Command {
    let mut cmd = demo_command();
    cmd.args(["--no-clearing", "--data-dir"])
        .arg(dir)
        .args(["--postgres", url, "--postgres-schema", &names.schema])
        .args(["--cards-per-bank", &CARDS_PER_BANK.to_string()]);
    if keep {
        cmd.arg("--keep-data");
    }
    cmd
}

fn clearing(url: &str, names: &Names) -> Command {
    let mut cmd = Command::new(clearing_bin());
    cmd.args(["--ledger", url, "--ledger-schema", &names.ledger_schema]);
    cmd
}

fn relay(url: &str, names: &Names, holder: &str) -> Command {
    let mut cmd = clearing(url, names);
    cmd.args(["relay", "--outbox", url, "--outbox-schema", &names.schema])
        .args([
            "--brokers",
            &brokers(),
            "--topic-prefix",
            &names.topic_prefix,
        ])
        .args(["--partitions", PARTITIONS, "--holder", holder]);
    cmd
}

fn consumer(url: &str, names: &Names) -> Command {
    let mut cmd = clearing(url, names);
    cmd.args(["run", "--brokers", &brokers(), "--group", &names.group])
        .args([
            "--topic-prefix",
            &names.topic_prefix,
            "--partitions",
            PARTITIONS,
        ]);
    cmd
}

/// The ledger's view of what it applied: event ids, posted total, dead letters, positions' sum.
async fn ledger_state(pool: &sqlx::PgPool, schema: &str) -> (HashSet<uuid::Uuid>, i64, i64, i64) {
    let ids: Vec<(uuid::Uuid,)> = sqlx::query_as(&format!(
        "SELECT event_id FROM {schema}.applied_event WHERE outcome = 'posted'"
    ))
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    // Clearing migration 0004 packs each event's postings into its applied_event row; an event
    // that posted carries its legs, which sum to its amount (`Ledger::posted_total_fen`).
    let (posted,): (Option<i64>,) = sqlx::query_as(&format!(
        "SELECT SUM(amount_fen)::BIGINT FROM {schema}.applied_event WHERE legs IS NOT NULL"
    ))
    .fetch_one(pool)
    .await
    .unwrap_or((None,));
    let (dead,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {schema}.dead_letter"))
        .fetch_one(pool)
        .await
        .unwrap_or((0,));
    let (net,): (Option<i64>,) = sqlx::query_as(&format!(
        "SELECT SUM(credits_posted_fen - debits_posted_fen)::BIGINT FROM {schema}.ledger_account"
    ))
    .fetch_one(pool)
    .await
    .unwrap_or((None,));
    (
        ids.into_iter().map(|(i,)| i).collect(),
        posted.unwrap_or(0),
        dead,
        net.unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_and_two_consumers_lose_and_double_nothing_when_one_of_each_is_killed() {
    let url = pg_url();
    let tag = unique_tag();
    let names = Names {
        schema: format!("cluster_{tag}"),
        ledger_schema: format!("cluster_ledger_{tag}"),
        topic_prefix: format!("cluster{tag}"),
        group: format!("cluster-{tag}"),
    };
    let mut ps = Processes::default();

    // Node A creates and seeds the schema; node B joins it.
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let addr_a = ps.spawn_node("node a", &mut node(&url, &names, dirs.0.path(), false));
    wait_listening(addr_a).await;
    let addr_b = ps.spawn_node("node b", &mut node(&url, &names, dirs.1.path(), true));
    wait_listening(addr_b).await;
    ps.spawn("relay a", &mut relay(&url, &names, "relay-a"));
    ps.spawn("relay b", &mut relay(&url, &names, "relay-b"));
    ps.spawn("consumer 1", &mut consumer(&url, &names));
    ps.spawn("consumer 2", &mut consumer(&url, &names));

    // Kiosks on both nodes, each with cards of its own.
    let approved = Arc::new(Mutex::new(Vec::new()));
    let mut kiosks = Kiosks::new(Arc::new(DemoWorld::new(CARDS_PER_BANK).unwrap()), KIOSKS);
    for k in 0..KIOSKS {
        kiosks.start(k, if k % 2 == 0 { addr_a } else { addr_b }, &approved);
    }
    wait_approvals(&approved, APPROVALS_BEFORE_KILL, Duration::from_secs(180)).await;
    assert!(
        ps.all_running().is_empty(),
        "died on their own: {:?}",
        ps.all_running()
    );

    // The crash, mid-load: the node whose relay holds the lease (so the other relay must take
    // it over), with that relay, and one of the two consumers.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let (holder, cursor): (Option<String>, i64) = sqlx::query_as(&format!(
        "SELECT holder, cursor_seq FROM {}.relay_lease",
        names.ledger_schema
    ))
    .fetch_one(&pool)
    .await
    .expect("a relay holds the lease");
    assert!(cursor > 0, "the relay published before the kill");
    let (killed_node, killed_relay) = match holder.as_deref() {
        Some("relay-a") => ("node a", "relay a"),
        Some("relay-b") => ("node b", "relay b"),
        other => panic!("lease holder {other:?}"),
    };
    ps.kill(killed_node);
    ps.kill(killed_relay);
    ps.kill("consumer 1");
    let at_kill = approved.lock().unwrap().len();
    wait_approvals(
        &approved,
        at_kill + APPROVALS_AFTER_KILL,
        Duration::from_secs(120),
    )
    .await;
    kiosks.stop().await;
    let approved: Vec<String> = approved.lock().unwrap().clone();

    // The store: every approval received, with its event; switch verify.
    let mut config = PostgresConfig::new(url.clone());
    config.schema = Some(names.schema.clone());
    let store = PostgresStore::connect(&config, Arc::new(DataKeyPanProtector::for_tests()))
        .await
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL at {url} (ops/setup.sh): {e}"));
    check_store(&store, &approved).await;
    let outbox = store.outbox_after(0, 1_000_000).await.unwrap();
    let events: HashSet<uuid::Uuid> = outbox.iter().map(|o| o.event_id).collect();
    let amounts: i64 = outbox
        .iter()
        .map(|o| {
            let e: serde_json::Value = serde_json::from_str(&o.payload).unwrap();
            e["amount_fen"].as_i64().expect("amount_fen")
        })
        .sum();
    assert_eq!(events.len(), outbox.len(), "event ids are unique");

    // The ledger catches up through the surviving relay and consumer 2 (the lease expires in
    // 30 s, the group's session in 6 s), then equals the events.
    let deadline = Instant::now() + Duration::from_secs(150);
    let (ids, posted, dead, net) = loop {
        let state = ledger_state(&pool, &names.ledger_schema).await;
        if state.0.len() >= events.len() || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        ps.all_running().is_empty(),
        "died on their own: {:?}",
        ps.all_running()
    );
    assert_eq!(dead, 0, "nothing dead-lettered");
    let missing = events.difference(&ids).count();
    let unknown = ids.difference(&events).count();
    assert_eq!(
        (missing, unknown),
        (0, 0),
        "the ledger applied exactly the outbox's {} events",
        events.len()
    );
    assert_eq!(
        posted, amounts,
        "the ledger posted exactly the events' amounts"
    );
    assert_eq!(net, 0, "positions sum to zero");

    drop(ps);
    store.close().await;
    PostgresStore::drop_schema(&url, &names.schema)
        .await
        .unwrap();
    PostgresStore::drop_schema(&url, &names.ledger_schema)
        .await
        .unwrap();
}
