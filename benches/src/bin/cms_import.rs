//! `cms_import`: how long the card management system takes to import a bureau's batch of
//! applications, and how much memory it needs. Generates a CSV of `--rows` valid applications
//! (GB 11643-1999 citizen IDs with their check characters, Chinese names, six banks), imports
//! it into a fresh store through `CardManagement::import_applications` (what the CLI and the
//! API call), imports it again (idempotent: nothing created), and prints the times and the
//! process's peak resident memory (VmHWM).
//!
//! ```sh
//! cargo run --release -p benches --bin cms_import -- --rows 100000
//! cargo run --release -p benches --bin cms_import -- --rows 100000 --postgres postgres://postgres@127.0.0.1:5432/test
//! ```

use clap::Parser;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;
use switch::cms::citizen_id::check_character;
use switch::cms::cli::progress_line;
use switch::cms::{Actor, CardManagement, CmsStore};
use switch::store::{
    DataKeyPanProtector, Institution, InstitutionKind, PostgresConfig, PostgresStore, SqliteConfig,
    SqliteStore,
};

#[derive(Parser)]
struct Args {
    /// Applications in the file.
    #[arg(long, default_value_t = 100_000)]
    rows: u32,
    /// Import into PostgreSQL at this URL (a fresh schema) instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
}

const BANKS: [&str; 6] = [
    "01020000", "01030000", "01040000", "01050000", "03010000", "04030000",
];
const REGIONS: [&str; 10] = [
    "410102", "410103", "410104", "410105", "410122", "410181", "410182", "410183", "410184",
    "410185",
];
const SURNAMES: [&str; 10] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"];
const GIVEN: [&str; 10] = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军"];

/// Row `i`: region i mod 10, birth date 1950-01-01 + (i / 10) days, sequence from i.
fn row(i: u32, out: &mut String) {
    let region = REGIONS[(i % 10) as usize];
    let day = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default()
        + chrono::Days::new(u64::from(i / 10 % 20_000));
    let body = format!("{region}{}{:03}", day.format("%Y%m%d"), i / 200_000 % 1000);
    let mut digits = [0u8; 17];
    digits.copy_from_slice(body.as_bytes());
    let scheme = if i.is_multiple_of(2) {
        "城镇职工"
    } else {
        "城乡居民"
    };
    let _ = writeln!(
        out,
        "{body}{},{}{},{scheme},410100,{}",
        check_character(&digits),
        SURNAMES[(i % 10) as usize],
        GIVEN[(i / 10 % 10) as usize],
        BANKS[(i % 6) as usize]
    );
}

fn csv(rows: u32) -> String {
    let mut out = String::from("citizen_id,name,insurance_scheme,region_code,bank_id\n");
    for i in 0..rows {
        row(i, &mut out);
    }
    out
}

/// Peak resident memory of this process in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn bench<S: CmsStore>(store: Arc<S>, file: &str) -> Result<(), String> {
    for id in BANKS {
        store
            .upsert_institution(&Institution {
                institution_id: schemas::domain::InstitutionId::parse(id).map_err(|_| "bank id")?,
                name: "bank".into(),
                kind: InstitutionKind::Bank,
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    let actor = Actor {
        operator: "bench".into(),
        institution: schemas::domain::InstitutionId::parse("4101008").map_err(|_| "id")?,
        source: "bench".into(),
        reason: "benchmark".into(),
    };
    let cms = CardManagement::new(store);
    let draw = |j: &switch::cms::ImportJob| eprint!("\r{}", progress_line(j));
    for pass in ["first import", "same batch again"] {
        let started = Instant::now();
        let job = cms
            .import_applications(&actor, "bench-batch-1", file.as_bytes(), &draw)
            .await
            .map_err(|e| e.to_string())?;
        let s = started.elapsed().as_secs_f64();
        eprintln!();
        println!(
            "{pass}: {} rows in {s:.2} s ({:.0} rows/s): {} created, {} duplicate, {} rejected; \
             peak RSS so far {} MiB",
            job.rows_total,
            f64::from(u32::try_from(job.rows_total).unwrap_or(u32::MAX)) / s,
            job.rows_created,
            job.rows_duplicate,
            job.rows_rejected,
            peak_rss_kib() / 1024
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let file = csv(args.rows);
    println!(
        "file: {} rows, {:.1} MiB; peak RSS before import {} MiB",
        args.rows,
        file.len() as f64 / 1_048_576.0,
        peak_rss_kib() / 1024
    );
    let pan = Arc::new(DataKeyPanProtector::for_tests());
    match args.postgres {
        Some(url) => {
            let schema = format!("cms_bench_{}", std::process::id());
            let mut config = PostgresConfig::new(&url);
            config.schema = Some(schema.clone());
            let store = PostgresStore::connect(&config, pan)
                .await
                .map_err(|e| e.to_string())?;
            let result = bench(Arc::new(store), &file).await;
            PostgresStore::drop_schema(&url, &schema)
                .await
                .map_err(|e| e.to_string())?;
            result
        }
        None => {
            let dir = std::env::temp_dir().join(format!("cms_bench_{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let store = SqliteStore::open(&SqliteConfig::new(dir.join("switch.db")), pan)
                .await
                .map_err(|e| e.to_string())?;
            let result = bench(Arc::new(store), &file).await;
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
    }
}
