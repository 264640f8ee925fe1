//! The `clearing` command: consume settlement events from Kafka into the ledger, relay the
//! switch's outbox to Kafka, the settlement API the switch's operator routes call (`api`,
//! mutual TLS), and the clearing staff's commands (positions, close a window, reports).

use clap::{Parser, Subcommand};
use clearing::bus::{EventFamily, KafkaBus, KafkaConfig, KafkaTls};
use clearing::consumer::{self, ConsumerConfig, ConsumerStats};
use clearing::db::{Db, LedgerDbConfig};
use clearing::ledger::Ledger;
use clearing::relay::{Relay, RelayConfig, RelayStats, SqlOutboxSource};
use clearing::report::{self, ReportFormat};
use clearing::{window, ClearingError};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

#[derive(Parser)]
#[command(
    name = "clearing",
    about = "Settlement bus, double-entry ledger and settlement windows"
)]
struct Cli {
    /// The ledger: a SQLite path (`sqlite:clearing.db`) or a `postgres://` URL.
    #[arg(long, global = true, default_value = "sqlite:clearing.db")]
    ledger: String,
    /// PostgreSQL schema of the ledger (created if missing).
    #[arg(long, global = true)]
    ledger_schema: Option<String>,
    /// Mutual TLS to the brokers: the CA (PEM) that signed their certificates. With
    /// `--kafka-cert` and `--kafka-key`; absent, plaintext (a broker on this machine).
    #[arg(long, global = true, requires_all = ["kafka_cert", "kafka_key"])]
    kafka_ca: Option<std::path::PathBuf>,
    /// This node's client certificate (PEM) for the brokers.
    #[arg(long, global = true, requires = "kafka_ca")]
    kafka_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, global = true, requires = "kafka_ca")]
    kafka_key: Option<std::path::PathBuf>,
    /// Replicas of each partition of a topic `run` or `relay` creates (default: as many
    /// brokers as the cluster has, up to 3).
    #[arg(long, global = true, value_parser = clap::value_parser!(i32).range(1..))]
    replication: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume settlement events from Kafka and apply them to the ledger until SIGTERM/Ctrl-C.
    Run {
        /// Kafka bootstrap servers.
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Consumer group.
        #[arg(long, default_value = "clearing")]
        group: String,
        /// Topic prefix (`<prefix>.settlement.v1`).
        #[arg(long, default_value = "ssc")]
        topic_prefix: String,
        /// Partitions of the topic when it has to be created.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// Deliveries per ledger transaction.
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
    },
    /// Relay the switch's outbox to Kafka until SIGTERM/Ctrl-C.
    Relay {
        /// The switch database: a SQLite path or a `postgres://` URL.
        #[arg(long)]
        outbox: String,
        /// PostgreSQL schema of the switch database.
        #[arg(long)]
        outbox_schema: Option<String>,
        /// Kafka bootstrap servers.
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Topic prefix.
        #[arg(long, default_value = "ssc")]
        topic_prefix: String,
        /// Partitions of the topic when it has to be created.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// This relay's name in the lease (defaults to host and process id).
        #[arg(long)]
        holder: Option<String>,
    },
    /// Serve the settlement API to the switch nodes (mutual TLS) until SIGTERM/Ctrl-C.
    Api {
        /// Listen address.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// This service's certificate chain (PEM).
        #[arg(long)]
        tls_cert: std::path::PathBuf,
        /// Its private key (PEM).
        #[arg(long)]
        tls_key: std::path::PathBuf,
        /// The CA (PEM) of the switch nodes' client certificates: a client without a
        /// certificate it signed is refused at the handshake.
        #[arg(long)]
        client_ca: std::path::PathBuf,
        /// Only client certificates whose SubjectPublicKeyInfo has this SHA-256 (64 hex
        /// digits; repeat for each switch node). Absent: every certificate of the CA.
        #[arg(long = "client-spki-sha256")]
        client_spki_sha256: Vec<String>,
    },
    /// Copy the SQLite ledger, online, into the new file `--to`: consistent as of one ledger
    /// transaction, offsets included, so a restored ledger resumes where the copy stopped.
    Backup {
        /// The copy (must not exist).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Put the backup `--from` in place as the SQLite ledger `--ledger` names (which must
    /// not exist), after checking it is a sound database.
    Restore {
        /// The backup.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Live net positions per institution and per pair.
    Positions,
    /// Close the open settlement window: freeze, net settlement, digest.
    CloseWindow,
    /// A settlement file of one institution for one window.
    Report {
        /// Institution id.
        #[arg(long)]
        institution: String,
        /// Window id.
        #[arg(long)]
        window: i64,
        /// csv, camt053 or medical.
        #[arg(long, default_value = "csv")]
        format: ReportFormat,
    },
}

fn ledger_config(cli: &Cli) -> LedgerDbConfig {
    match (LedgerDbConfig::parse(&cli.ledger), &cli.ledger_schema) {
        (
            LedgerDbConfig::Postgres {
                url,
                connections_max,
                ..
            },
            Some(schema),
        ) => LedgerDbConfig::Postgres {
            url,
            schema: Some(schema.clone()),
            connections_max,
        },
        (config, _) => config,
    }
}

async fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        let _ = tx.send(true);
    });
    rx
}

/// Mutual TLS to the brokers when `--kafka-ca` is given (clap makes the three go together).
fn kafka_tls(cli: &Cli) -> Option<KafkaTls> {
    match (&cli.kafka_ca, &cli.kafka_cert, &cli.kafka_key) {
        (Some(ca), Some(cert), Some(key)) => Some(KafkaTls {
            ca_pem: ca.clone(),
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        }),
        _ => None,
    }
}

async fn run(cli: Cli) -> Result<(), ClearingError> {
    // Before connecting, which would create the ledger a restore must not find.
    if let Command::Restore { from } = &cli.command {
        let LedgerDbConfig::Sqlite { path, .. } = ledger_config(&cli) else {
            return Err(ClearingError::Config(
                "a PostgreSQL ledger is restored with pg_basebackup (ops/pg-pitr.sh)".into(),
            ));
        };
        clearing::backup::restore_sqlite(from, &path).await?;
        let ledger = Ledger::new(Db::connect(&ledger_config(&cli)).await?);
        let counts = ledger.counts().await?;
        println!(
            "restored {}: {} events applied, positions sum {}",
            path.display(),
            counts.events_applied,
            ledger.positions().await?.sum_fen()
        );
        ledger.db().close().await;
        return Ok(());
    }
    let ledger = Ledger::new(Db::connect(&ledger_config(&cli)).await?);
    let tls = kafka_tls(&cli);
    let replication = cli.replication;
    let kafka_config = |brokers: String| KafkaConfig {
        tls: tls.clone(),
        replication,
        ..KafkaConfig::new(brokers)
    };
    match cli.command {
        Command::Run {
            brokers,
            group,
            topic_prefix,
            partitions,
            batch,
        } => {
            let bus = KafkaBus::new(kafka_config(brokers))?;
            let topic = EventFamily::SettlementV1.topic(&topic_prefix);
            bus.ensure_topic(&topic, partitions).await?;
            let mut subscriber = bus.subscribe(&group, &[&topic])?;
            let mut config = ConsumerConfig::new(group);
            config.batch_size_max = batch;
            let stats = ConsumerStats::default();
            let shutdown = shutdown_signal().await;
            tracing::info!(%topic, "consuming");
            consumer::run(&ledger, &mut subscriber, &config, &stats, shutdown).await?;
            println!(
                "applied={} duplicates={} dead_lettered={} offset_gaps={} offsets_missing={}",
                stats.events_applied.load(Ordering::Relaxed),
                stats.duplicates.load(Ordering::Relaxed),
                stats.dead_lettered.load(Ordering::Relaxed),
                stats.offset_gaps.load(Ordering::Relaxed),
                stats.offsets_missing.load(Ordering::Relaxed)
            );
        }
        Command::Relay {
            outbox,
            outbox_schema,
            brokers,
            topic_prefix,
            partitions,
            holder,
        } => {
            let source = if outbox.starts_with("postgres://") || outbox.starts_with("postgresql://")
            {
                SqlOutboxSource::postgres(&outbox, outbox_schema.as_deref()).await?
            } else {
                SqlOutboxSource::sqlite(std::path::Path::new(
                    outbox.strip_prefix("sqlite:").unwrap_or(&outbox),
                ))
                .await?
            };
            let bus = KafkaBus::new(kafka_config(brokers))?;
            // A fresh broker has no topic yet: publishing to it would time out forever.
            let topic = EventFamily::SettlementV1.topic(&topic_prefix);
            bus.ensure_topic(&topic, partitions).await?;
            let holder = holder.unwrap_or_else(|| format!("relay-{}", std::process::id()));
            let mut config = RelayConfig::new("switch-outbox", holder);
            config.topic_prefix = topic_prefix;
            let relay = Relay::new(ledger.db(), &source, &bus, config);
            let stats = RelayStats::default();
            relay.run(&stats, shutdown_signal().await).await?;
            relay.release().await?;
            println!("published={}", stats.published.load(Ordering::Relaxed));
        }
        Command::Api {
            listen,
            tls_cert,
            tls_key,
            client_ca,
            client_spki_sha256,
        } => {
            let pins = clearing::api::tls::parse_spki_pins(&client_spki_sha256)?;
            let tls = clearing::api::tls::server_config_from_files(
                &tls_cert, &tls_key, &client_ca, &pins,
            )?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| ClearingError::Config(format!("listen {listen}: {e}")))?;
            clearing::api::tls::serve(
                listener,
                tls,
                ledger.clone(),
                clearing::api::tls::ApiLimits::default(),
                shutdown_signal().await,
            )
            .await?;
        }
        Command::Backup { to } => {
            let bytes = clearing::backup::backup_sqlite(ledger.db(), &to).await?;
            println!("backup {}: {bytes} bytes", to.display());
        }
        Command::Restore { .. } => {} // done above
        Command::Positions => print_positions(&ledger.positions().await?),
        Command::CloseWindow => print_closed_window(&window::close_window(&ledger).await?),
        Command::Report {
            institution,
            window,
            format,
        } => {
            print!(
                "{}",
                report::render(&ledger, &institution, window, format).await?
            );
        }
    }
    ledger.db().close().await;
    Ok(())
}

/// Prints the live net positions, per institution and per pair.
fn print_positions(p: &clearing::ledger::Positions) {
    println!(
        "{:<12} {:>18} {:>18} {:>18}",
        "institution", "debits", "credits", "net (CNY)"
    );
    for i in &p.institutions {
        println!(
            "{:<12} {:>18} {:>18} {:>18}",
            i.institution_id,
            rust_decimal::Decimal::new(i.debits_fen, 2),
            rust_decimal::Decimal::new(i.credits_fen, 2),
            i.net_yuan()
        );
    }
    println!("\n{:<12} {:<12} {:>18}", "creditor", "debtor", "owed (CNY)");
    for pair in &p.pairs {
        let (creditor, debtor, fen) = if pair.net_fen >= 0 {
            (&pair.institution_a, &pair.institution_b, pair.net_fen)
        } else {
            (&pair.institution_b, &pair.institution_a, -pair.net_fen)
        };
        println!(
            "{creditor:<12} {debtor:<12} {:>18}",
            rust_decimal::Decimal::new(fen, 2)
        );
    }
    println!("\nsum of net positions (fen): {}", p.sum_fen());
}

/// Prints a closed window: totals, digests, net positions and settlement instructions.
fn print_closed_window(w: &window::WindowSummary) {
    println!(
        "window {} closed: {} postings, {} fen, digest sha256={}",
        w.window_id,
        w.posting_count,
        w.posted_total_fen,
        w.digest.map(hex::encode).unwrap_or_default()
    );
    for n in &w.net_positions {
        println!(
            "net {} {} fen (digest {})",
            n.institution_id,
            n.net_fen,
            hex::encode(n.digest)
        );
    }
    for i in &w.instructions {
        println!(
            "instruction {}: {} pays {} {} fen",
            i.instruction_no, i.payer_id, i.payee_id, i.amount_fen
        );
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clearing: {e}");
            ExitCode::FAILURE
        }
    }
}
