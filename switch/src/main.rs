//! The `switch` binary: `switch serve --config FILE` runs a production node from a
//! configuration file (see ops/); `switch demo` runs the whole network on one machine, in a
//! build with the `demo` feature (`cargo run --release -p switch --features demo -- demo`);
//! `switch applications import --config FILE ...` imports a batch of card applications.

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: a request allocates and frees many small
/// buffers across threads (decoded fields, futures, answers), and glibc's malloc/free with its
/// consolidation spent about a fifth of the switch's CPU under load (perf, see the issue note).
#[global_allocator]
static ALLOCATOR: switch::MiMalloc = switch::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "switch", about = "Social-security card transaction switch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole network on this machine: SQLite, software HSM, six simulated banks,
    /// simulated kiosks with virtual cards, and a live summary.
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
    /// Not in this build: the demo needs `--features demo`.
    #[cfg(not(feature = "demo"))]
    #[command(disable_help_flag = true)]
    Demo {
        /// Whatever was given (ignored).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Run a switch node from a configuration file.
    Serve {
        /// TOML configuration (see ops/switch.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Check the store of a configuration: balances against their journals, legs and
    /// movements against their transactions and accounts, the outbox gap-free with an event
    /// for every approval, the queues against their originals, and the audit chain. Exits
    /// non-zero when anything is broken.
    Verify {
        /// TOML configuration (see ops/switch.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Copy the SQLite store of a configuration to a new file while the node runs: a
    /// consistent copy as of one commit (SQLite's VACUUM INTO), fsynced.
    Backup {
        /// TOML configuration (see ops/switch.example.toml).
        #[arg(long)]
        config: PathBuf,
        /// The copy (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Put a backup in place of the configuration's SQLite store (which must not exist: move
    /// it away first), then check it as `verify` does.
    Restore {
        /// TOML configuration (see ops/switch.example.toml).
        #[arg(long)]
        config: PathBuf,
        /// The backup.
        #[arg(long)]
        from: PathBuf,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Operator users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Card applications from the social-security bureau (the card management system).
    #[command(subcommand)]
    Applications(ApplicationsCommand),
}

#[derive(Subcommand)]
enum ApplicationsCommand {
    /// Import a CSV batch (UTF-8, header citizen_id,name,insurance_scheme,region_code,bank_id),
    /// with a progress bar; importing the same batch again creates nothing twice.
    Import {
        /// TOML configuration of a node (its database and HSM).
        #[arg(long)]
        config: PathBuf,
        /// Batch id (1-64 characters of A-Z a-z 0-9 . _ -).
        #[arg(long)]
        batch: String,
        /// The operator's institution id (for the audit log).
        #[arg(long)]
        institution: String,
        /// Why (a ticket number; for the audit log).
        #[arg(long)]
        reason: String,
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain and, with the configuration's [operator] audit_mac_key,
    /// every entry's MAC; prints the count, or the first broken entry (and fails).
    Verify {
        /// TOML configuration (see ops/switch.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create the first administrator of a node that has no user yet; prints a one-time
    /// password and the TOTP secret, once.
    BootstrapAdmin {
        /// TOML configuration (see ops/switch.example.toml).
        #[arg(long)]
        config: PathBuf,
        /// Login name (a-z, 0-9, '.', '_', '-', '@').
        #[arg(long)]
        username: String,
        /// The administrator's institution (usually the switch's own).
        #[arg(long)]
        institution: String,
    },
}

/// What `switch demo` says in a build without the simulators.
#[cfg(not(feature = "demo"))]
const NO_DEMO: &str = "this build has no demo (the simulators are behind the `demo` feature); \
build it with `--features demo`, e.g. `cargo run --release -p switch --features demo -- demo`";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            #[cfg(feature = "demo")]
            Command::Demo(args) => demo::run(args).await,
            #[cfg(not(feature = "demo"))]
            Command::Demo { .. } => Err(NO_DEMO.to_owned()),
            Command::Serve { config } => switch::config::serve(&config)
                .await
                .map_err(|e| e.to_string()),
            Command::Verify { config } => match switch::config::verify(&config).await {
                Ok((report, audit_entries)) => {
                    println!("{report}");
                    println!("audit chain: {audit_entries} entries verify");
                    if report.is_consistent() {
                        Ok(())
                    } else {
                        Err("the store is inconsistent".to_owned())
                    }
                }
                Err(e) => Err(e.to_string()),
            },
            Command::Backup { config, to } => switch::config::backup(&config, &to)
                .map(|bytes| println!("backup {}: {bytes} bytes", to.display()))
                .map_err(|e| e.to_string()),
            Command::Restore { config, from } => {
                match switch::config::restore(&config, &from).await {
                    Ok((report, audit_entries)) => {
                        println!("restored {}", from.display());
                        println!("{report}");
                        println!("audit chain: {audit_entries} entries verify");
                        if report.is_consistent() {
                            Ok(())
                        } else {
                            Err("the restored store is inconsistent".to_owned())
                        }
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Command::Audit {
                command: AuditCommand::Verify { config },
            } => switch::config::admin::audit_verify(&config)
                .await
                .map(|s| println!("{s}"))
                .map_err(|e| e.to_string()),
            Command::Users {
                command:
                    UsersCommand::BootstrapAdmin {
                        config,
                        username,
                        institution,
                    },
            } => switch::config::admin::bootstrap_admin(&config, &username, &institution)
                .await
                .map(|s| print!("{s}"))
                .map_err(|e| e.to_string()),
            Command::Applications(ApplicationsCommand::Import {
                config,
                batch,
                institution,
                reason,
                file,
            }) => import_applications(&config, &batch, &institution, &reason, &file).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switch: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `switch applications import`: prints the job's outcome and its first row errors.
async fn import_applications(
    config: &std::path::Path,
    batch_id: &str,
    institution: &str,
    reason: &str,
    file: &std::path::Path,
) -> Result<(), String> {
    let job = switch::cms::cli::import(switch::cms::cli::ImportArgs {
        config,
        batch_id,
        institution,
        reason,
        file,
    })
    .await?;
    println!(
        "job {} {:?}: {} rows, {} created, {} duplicate, {} rejected",
        job.job_id,
        job.state,
        job.rows_total,
        job.rows_created,
        job.rows_duplicate,
        job.rows_rejected
    );
    for e in job.row_errors.iter().take(20) {
        println!("row {}: {}: {}", e.row, e.field, e.reason);
    }
    Ok(())
}

/// `switch demo`'s arguments, in a build with the simulators.
#[cfg(feature = "demo")]
mod demo {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;
    use switch::sim::demo::{self, DemoOptions};

    // `switch demo [OPTIONS]` (its help is the doc comment of `Command::Demo`).
    #[derive(clap::Args)]
    pub(super) struct DemoArgs {
        /// Data folder (the demo database in it is replaced at start).
        #[arg(long, default_value = "demo-data")]
        data_dir: PathBuf,
        /// Acquirer listener (ISO 8583 ssc87, 2-byte length header).
        #[arg(long, default_value = "127.0.0.1:8583")]
        listen: SocketAddr,
        /// HTTP listener (/health, /ready, /metrics, /transactions/{rrn}, /saf, and the operator
        /// API: /session, /session/password, /me, /users, /users/{id}/roles,
        /// /role-changes, /role-changes/{id}/approve, /role-changes/{id}/reject, /roles, /audit,
        /// /api-keys, /api-keys/{id}; card
        /// management: /application-batches, /import-jobs/{id}, /import-jobs/{id}/errors, /applications, /applications/{id},
        /// /applications/{id}/photo, /applications/{id}/issue, /perso-files, /perso-files/{id},
        /// /cards, /cards/{id}, /cards/{id}/{operation}, /cards/{id}/replace,
        /// /cards/{id}/pin-reset, /cards/{id}/ssse-pin-unblock, /cards/{id}/records/ef06; bank
        /// cut-over: /reconciliations, /reconciliations/{id}/resolve,
        /// /cutover; settlement: /clearing/windows, /clearing/windows/{id},
        /// /clearing/windows/close, /clearing/windows/{id}/reports/{institution},
        /// /clearing/positions).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// First port of the six simulated bank hosts.
        #[arg(long, default_value_t = 9101)]
        bank_port_base: u16,
        /// Cards per bank.
        #[arg(long, default_value_t = 50)]
        cards_per_bank: usize,
        /// Simulated kiosks.
        #[arg(long, default_value_t = 6)]
        kiosks: usize,
        /// Serve without simulated kiosks, for outside ISO 8583 clients.
        #[arg(long)]
        no_traffic: bool,
        /// Print the demo cards, keys and link addresses, then exit.
        #[arg(long)]
        describe: bool,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration_secs: Option<u64>,
        /// Keep the databases of an earlier run (restart after a crash).
        #[arg(long)]
        keep_data: bool,
        /// Run without the in-process clearing (for measuring the switch alone).
        #[arg(long)]
        no_clearing: bool,
        /// Run on PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/test) instead of SQLite.
        #[arg(long)]
        postgres: Option<String>,
        /// The PostgreSQL schema of the demo's store (recreated unless `--keep-data`).
        #[arg(long, default_value = "switch_demo")]
        postgres_schema: String,
        /// Use a network HSM at this address (payShield host commands, e.g. `hsm-sim` with the
        /// test LMK) instead of the in-process software HSM.
        #[arg(long)]
        hsm: Option<std::net::SocketAddr>,
        /// Group commits under way at once (default: 1 on SQLite, 2 on PostgreSQL).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        group_commits: Option<u16>,
    }

    /// Runs the demo (or, with `--describe`, prints what it serves).
    pub(super) async fn run(args: DemoArgs) -> Result<(), String> {
        let describe = args.describe;
        let opts = DemoOptions {
            data_dir: args.data_dir,
            listen: args.listen,
            http: args.http,
            bank_port_base: args.bank_port_base,
            cards_per_bank: args.cards_per_bank.max(1),
            traffic: !args.no_traffic,
            kiosks: args.kiosks,
            duration: args.duration_secs.map(Duration::from_secs),
            keep_data: args.keep_data,
            postgres_url: args.postgres,
            postgres_schema: args.postgres_schema,
            no_clearing: args.no_clearing,
            hsm: args.hsm,
            group_commits: args.group_commits.map(usize::from),
        };
        if describe {
            demo::describe(&opts)
                .map(|s| print!("{s}"))
                .map_err(|e| e.to_string())
        } else {
            demo::run(opts).await.map(|_| ()).map_err(|e| e.to_string())
        }
    }
}
