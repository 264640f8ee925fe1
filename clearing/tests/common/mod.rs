//! Shared test harness: a fresh ledger on SQLite (temp file) or PostgreSQL (own schema at
//! 127.0.0.1:5432, database `test`; override with CLEARING_TEST_PG_URL). PostgreSQL tests FAIL
//! when it is unreachable: run ops/setup.sh.
#![allow(dead_code)]

use clearing::bus::Delivery;
use clearing::db::{Db, LedgerDbConfig};
use clearing::ledger::Ledger;
use schemas::events::sample::{self, ids};
use schemas::events::{EventType, SettlementEvent};
use std::sync::atomic::{AtomicU32, Ordering};
use uuid::Uuid;

pub fn pg_url() -> String {
    std::env::var("CLEARING_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn unique_schema(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A ledger and what to clean up after it.
pub struct Harness {
    pub ledger: Ledger,
    pub config: LedgerDbConfig,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = LedgerDbConfig::sqlite(dir.path().join("ledger.db"));
        let db = Db::connect(&config).await.expect("sqlite ledger");
        Harness {
            ledger: Ledger::new(db),
            config,
            _dir: Some(dir),
            schema: None,
        }
    }

    pub async fn postgres() -> Self {
        let schema = unique_schema("clearing_test");
        let config = LedgerDbConfig::Postgres {
            url: pg_url(),
            schema: Some(schema.clone()),
            connections_max: 4,
        };
        let db = match Db::connect(&config).await {
            Ok(db) => db,
            Err(e) => panic!(
                "clearing PostgreSQL tests need PostgreSQL at {} (run ops/setup.sh): {e}",
                pg_url()
            ),
        };
        Harness {
            ledger: Ledger::new(db),
            config,
            _dir: None,
            schema: Some(schema),
        }
    }

    /// Another connection pool on the same ledger (a second process, say).
    pub async fn reopen(&self) -> Ledger {
        Ledger::new(Db::connect(&self.config).await.expect("reopen ledger"))
    }

    pub async fn cleanup(self) {
        self.ledger.db().close().await;
        if let Some(schema) = &self.schema {
            Db::drop_pg_schema(&pg_url(), schema)
                .await
                .expect("drop test schema");
        }
    }
}

pub const TOPIC: &str = "ssc.settlement.v1";

pub fn delivery(offset: i64, event: &SettlementEvent) -> Delivery {
    Delivery {
        topic: TOPIC.into(),
        partition: 0,
        offset,
        payload: event.to_json().expect("json").into_bytes(),
    }
}

pub fn raw(offset: i64, payload: &str) -> Delivery {
    Delivery {
        topic: TOPIC.into(),
        partition: 0,
        offset,
        payload: payload.as_bytes().to_vec(),
    }
}

pub fn purchase(seq: u32) -> SettlementEvent {
    sample::event(EventType::Purchase, ids::HOSPITAL, seq)
}

pub fn split(seq: u32) -> SettlementEvent {
    sample::event(EventType::MedicalBillSplit, ids::HOSPITAL, seq)
}

pub fn hold(seq: u32) -> SettlementEvent {
    sample::event(EventType::AuthorizationHold, ids::HOSPITAL, seq)
}

/// A completion of `hold` capturing `amount_fen` of its single leg.
pub fn completion(hold: &SettlementEvent, amount_fen: i64, seq: u32) -> SettlementEvent {
    let mut e = sample::event(EventType::Completion, ids::HOSPITAL, seq);
    e.legs = hold.legs.clone();
    e.legs[0].amount_fen = schemas::domain::AmountFen::new(amount_fen).expect("fen");
    e.amount_fen = e.legs[0].amount_fen;
    e.references.hold_id = hold.references.hold_id;
    e.references.original_event_id = Some(hold.event_id);
    e
}

pub fn release(hold: &SettlementEvent, seq: u32) -> SettlementEvent {
    let mut e = sample::event(EventType::HoldRelease, ids::HOSPITAL, seq);
    e.legs = hold.legs.clone();
    e.amount_fen = hold.amount_fen;
    e.references.hold_id = hold.references.hold_id;
    e.references.original_event_id = Some(hold.event_id);
    e
}

/// A reversal of `original`: the same legs with payer and payee swapped.
pub fn reversal(original: &SettlementEvent, seq: u32) -> SettlementEvent {
    let mut e = sample::event(EventType::Reversal, ids::HOSPITAL, seq);
    e.legs = original
        .legs
        .iter()
        .map(|l| {
            let mut l = l.clone();
            std::mem::swap(&mut l.debit, &mut l.credit);
            l
        })
        .collect();
    e.amount_fen = original.amount_fen;
    e.references.original_event_id = Some(original.event_id);
    e.references.hold_id = original.references.hold_id;
    e
}

pub fn refund(original: &SettlementEvent, seq: u32) -> SettlementEvent {
    let mut e = sample::event(EventType::Refund, ids::HOSPITAL, seq);
    e.references.original_event_id = Some(original.event_id);
    e
}

pub fn fresh_id() -> Uuid {
    Uuid::now_v7()
}

/// The switch's outbox, created from the switch migrations (schemas::migrations), written the
/// way the switch writes it: the sequence row is bumped inside the committing transaction.
pub enum TestOutbox {
    Sqlite(sqlx::SqlitePool, tempfile::TempDir),
    Postgres(sqlx::PgPool, String),
}

impl TestOutbox {
    pub async fn sqlite() -> Self {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("switch.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("outbox db");
        for m in schemas::migrations::SQLITE {
            sqlx::raw_sql(m.sql)
                .execute(&pool)
                .await
                .expect("switch migration");
        }
        TestOutbox::Sqlite(pool, dir)
    }

    pub async fn postgres() -> Self {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        use std::str::FromStr;
        let schema = unique_schema("clearing_outbox");
        let base = PgConnectOptions::from_str(&pg_url()).expect("pg url");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} (run ops/setup.sh): {e}", pg_url()));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("schema");
        admin.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(base.options([("search_path", schema.as_str())]))
            .await
            .expect("outbox pool");
        for m in schemas::migrations::POSTGRES {
            sqlx::raw_sql(m.sql)
                .execute(&pool)
                .await
                .expect("switch migration");
        }
        TestOutbox::Postgres(pool, schema)
    }

    pub fn sqlite_path(&self) -> std::path::PathBuf {
        match self {
            TestOutbox::Sqlite(_, dir) => dir.path().join("switch.db"),
            TestOutbox::Postgres(..) => panic!("not a SQLite outbox"),
        }
    }

    pub async fn source(&self) -> clearing::relay::SqlOutboxSource {
        match self {
            TestOutbox::Sqlite(..) => clearing::relay::SqlOutboxSource::sqlite(&self.sqlite_path())
                .await
                .expect("outbox source"),
            TestOutbox::Postgres(_, schema) => {
                clearing::relay::SqlOutboxSource::postgres(&pg_url(), Some(schema))
                    .await
                    .expect("outbox source")
            }
        }
    }

    /// Appends events in one transaction, as one group commit of the switch would.
    pub async fn append(&self, events: &[SettlementEvent]) {
        macro_rules! append {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.expect("begin");
                for e in events {
                    let seq: i64 = sqlx::query_scalar(
                        "UPDATE outbox_sequence SET next_seq = next_seq + 1 WHERE id = 1 \
                         RETURNING next_seq - 1",
                    )
                    .fetch_one(&mut *tx)
                    .await
                    .expect("sequence");
                    sqlx::query(
                        "INSERT INTO outbox (outbox_seq, event_id, partition_key, event_type, \
                         schema_version, payload, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(seq)
                    .bind(e.event_id)
                    .bind(e.partition_key().as_str())
                    .bind(e.event_type.as_str())
                    .bind(i64::from(e.schema_version))
                    .bind(e.to_json().expect("json"))
                    .bind(clearing::db::now_us())
                    .execute(&mut *tx)
                    .await
                    .expect("outbox insert");
                }
                tx.commit().await.expect("commit");
            }};
        }
        match self {
            TestOutbox::Sqlite(pool, _) => append!(pool),
            TestOutbox::Postgres(pool, _) => append!(pool),
        }
    }

    pub async fn cleanup(self) {
        match self {
            TestOutbox::Sqlite(pool, _dir) => pool.close().await,
            TestOutbox::Postgres(pool, schema) => {
                pool.close().await;
                Db::drop_pg_schema(&pg_url(), &schema)
                    .await
                    .expect("drop schema");
            }
        }
    }
}

/// `n` distinct purchases and bill splits from a few acquirers.
pub fn mixed_events(n: u32, base: u32) -> Vec<SettlementEvent> {
    const ACQUIRERS: [&str; 3] = [ids::HOSPITAL, "3100002", "3100003"];
    (0..n)
        .map(|i| {
            let t = if i % 4 == 0 {
                EventType::MedicalBillSplit
            } else {
                EventType::Purchase
            };
            sample::event(t, ACQUIRERS[(i % 3) as usize], base + i)
        })
        .collect()
}

mod camt053_schema;
#[allow(unused_imports)] // each test crate uses its share
pub use camt053_schema::{assert_valid_camt053, camt053_xsd};

/// What a test reads back from a camt.053: balances and entries with signed fen (credit +,
/// debit −), the statement period, and the transaction summary's net.
#[derive(Debug, Default)]
pub struct Camt053 {
    /// `Stmt/FrToDt`.
    pub from: String,
    pub to: String,
    /// (`Bal/Tp/CdOrPrtry/Cd`, signed fen).
    pub balances: Vec<(String, i64)>,
    /// (`Ntry/NtryRef`, signed fen, `Ntry/NtryDtls/TxDtls/Refs/EndToEndId`).
    pub entries: Vec<(String, i64, String)>,
    /// `TxsSummry/TtlNtries/NbOfNtries` and `TtlNetNtry`, signed fen.
    pub entry_count: i64,
    pub net_fen: i64,
}

impl Camt053 {
    /// The signed fen of the balance with code `code` (`OPBD`, `CLBD`).
    pub fn balance(&self, code: &str) -> i64 {
        self.balances
            .iter()
            .find(|(c, _)| c == code)
            .unwrap_or_else(|| panic!("no {code} balance in {self:?}"))
            .1
    }
}

fn fen_of(yuan: &str) -> i64 {
    use std::str::FromStr;
    let d = rust_decimal::Decimal::from_str(yuan).expect("decimal amount");
    i64::try_from(d * rust_decimal::Decimal::from(100)).expect("whole fen")
}

/// Reads a camt.053 with an XML reader (not string matching).
pub fn read_camt053(xml: &str) -> Camt053 {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut out = Camt053::default();
    let (mut code, mut amount, mut ntry_ref, mut e2e) =
        (String::new(), 0i64, String::new(), String::new());
    let mut net_amount = 0i64;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                path.push(String::from_utf8(e.name().as_ref().to_vec()).expect("utf-8 name"))
            }
            Event::End(_) => {
                let ended = path.pop().expect("balanced");
                let parent = path.last().map(String::as_str).unwrap_or("");
                match (parent, ended.as_str()) {
                    ("Stmt", "Bal") => out.balances.push((std::mem::take(&mut code), amount)),
                    ("Stmt", "Ntry") => out.entries.push((
                        std::mem::take(&mut ntry_ref),
                        amount,
                        std::mem::take(&mut e2e),
                    )),
                    _ => {}
                }
            }
            Event::Text(t) => {
                let text = t.decode().expect("text").into_owned();
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                match p.as_slice() {
                    [.., "FrToDt", "FrDtTm"] => out.from = text,
                    [.., "FrToDt", "ToDtTm"] => out.to = text,
                    [.., "Bal", "Tp", "CdOrPrtry", "Cd"] => code = text,
                    [.., "Bal" | "Ntry", "Amt"] => amount = fen_of(&text),
                    [.., "Bal" | "Ntry", "CdtDbtInd"] if text == "DBIT" => amount = -amount,
                    [.., "Ntry", "NtryRef"] => ntry_ref = text,
                    [.., "Refs", "EndToEndId"] => e2e = text,
                    [.., "TtlNtries", "NbOfNtries"] => {
                        out.entry_count = text.parse().expect("count")
                    }
                    [.., "TtlNetNtry", "Amt"] => net_amount = fen_of(&text),
                    [.., "TtlNetNtry", "CdtDbtInd"] => {
                        out.net_fen = if text == "DBIT" {
                            -net_amount
                        } else {
                            net_amount
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// A CSV statement read back by a test: the `# totals` header and the rows by column name.
#[derive(Debug)]
pub struct StatementCsv {
    pub totals: Vec<(String, i64)>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl StatementCsv {
    /// A figure of the `# totals` header line.
    pub fn totals(&self, name: &str) -> i64 {
        self.totals
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in the totals header: {:?}", self.totals))
            .1
    }

    fn column(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns))
    }

    /// The sum of an integer column.
    pub fn column_sum(&self, name: &str) -> i64 {
        let i = self.column(name);
        self.rows
            .iter()
            .map(|r| r[i].parse::<i64>().expect("integer column"))
            .sum()
    }

    /// (event id, leg) of each row, in file order.
    pub fn row_keys(&self) -> Vec<(Uuid, i64)> {
        let (e, l) = (self.column("event_id"), self.column("leg_no"));
        self.rows
            .iter()
            .map(|r| {
                (
                    Uuid::parse_str(&r[e]).expect("uuid"),
                    r[l].parse().expect("leg"),
                )
            })
            .collect()
    }
}

pub fn read_statement_csv(csv: &str) -> StatementCsv {
    let totals = csv
        .lines()
        .find_map(|l| l.strip_prefix("# totals "))
        .unwrap_or_else(|| panic!("no totals header in\n{csv}"))
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("name=value");
            (k.to_owned(), v.parse().expect("integer total"))
        })
        .collect();
    let mut lines = csv.lines().filter(|l| !l.starts_with('#'));
    let columns = lines
        .next()
        .expect("column header")
        .split(',')
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let rows = lines
        .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .inspect(|r| assert_eq!(r.len(), columns.len(), "{r:?}"))
        .collect();
    StatementCsv {
        totals,
        columns,
        rows,
    }
}
