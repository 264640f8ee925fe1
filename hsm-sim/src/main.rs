//! `hsm-sim`: the software payment HSM served over the payShield host-command protocol.
//!
//! ```text
//! hsm-sim [--listen 127.0.0.1:1500] [--header-len 4] [--connections-max 256]
//!         (--lmk-component FILE --lmk-component FILE ... | --insecure-test-lmk)
//!         [--decimalisation-table TABLE ... | --insecure-any-decimalisation-table]
//!         [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
//!         [--audit-log FILE]
//!         [--latency-ms N] [--rtt-ms N] [--error-ppm N] [--error-code CC] [--drop-ppm N] [--seed N]
//! ```
//! The LMK comes from two or more component files (dual control; weak results are refused, see
//! [`hsm_sim::lmk::LmkSource`]), or from the published test LMK only with `--insecure-test-lmk`
//! (development only); without either the server does not start. PIN commands accept only the
//! decimalisation tables given with `--decimalisation-table` (default: `0123456789012345`), or
//! any table with `--insecure-any-decimalisation-table`. With `--tls-cert` and `--tls-key` the
//! link is TLS; with `--tls-client-ca` too, mutual TLS (clients need a certificate from that CA).
//! Stops on Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use hsm_sim::audit::AuditLog;
use hsm_sim::lmk::{LmkSet, LmkSource};
use hsm_sim::server::{FaultConfig, Server, ServerConfig, LISTEN_DEFAULT};
use hsm_sim::soft::{DecimalisationTables, SecuritySettings};
use hsm_sim::tls::TlsServer;
use hsm_sim::SoftHsm;

struct Args {
    listen: String,
    config: ServerConfig,
    lmk: LmkSource,
    settings: SecuritySettings,
    audit: Option<PathBuf>,
}

/// The allowed decimalisation tables from the options (the default list when none is given).
fn decimalisation_tables(tables: &[String], any: bool) -> Result<DecimalisationTables, String> {
    match (tables.is_empty(), any) {
        (true, false) => Ok(DecimalisationTables::default()),
        (true, true) => Ok(DecimalisationTables::InsecureAny),
        (false, true) => Err(
            "--decimalisation-table and --insecure-any-decimalisation-table are exclusive".into(),
        ),
        (false, false) => DecimalisationTables::only(tables)
            .map_err(|_| "--decimalisation-table takes 16 decimal digits".into()),
    }
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = LISTEN_DEFAULT.to_string();
    let mut config = ServerConfig::default();
    let mut components = Vec::new();
    let mut insecure_test_lmk = false;
    let mut tables = Vec::new();
    let mut any_table = false;
    let mut audit = None;
    let (mut tls_cert, mut tls_key, mut tls_client_ca) = (None, None, None);
    let mut faults = FaultConfig::default();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--header-len" => config.header_len = num(value()?)? as usize,
            "--connections-max" => config.connections_max = num(value()?)? as usize,
            "--lmk-component" => components.push(PathBuf::from(value()?)),
            "--insecure-test-lmk" => insecure_test_lmk = true,
            "--decimalisation-table" => tables.push(value()?),
            "--insecure-any-decimalisation-table" => any_table = true,
            "--audit-log" => audit = Some(PathBuf::from(value()?)),
            "--tls-cert" => tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value()?)),
            "--tls-client-ca" => tls_client_ca = Some(PathBuf::from(value()?)),
            "--latency-ms" => faults.latency_ms = num(value()?)?,
            "--rtt-ms" => faults.rtt_ms = num(value()?)?,
            "--error-ppm" => faults.error_per_million = num(value()?)?.min(1_000_000) as u32,
            "--error-code" => faults.error_code = value()?,
            "--drop-ppm" => faults.drop_per_million = num(value()?)?.min(1_000_000) as u32,
            "--seed" => faults.seed = num(value()?)?,
            "--help" | "-h" => return Err("usage: see the crate documentation of hsm-sim".into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if config.header_len > 32 {
        return Err("--header-len must be at most 32".into());
    }
    config.faults = faults;
    config.tls = match (tls_cert, tls_key, tls_client_ca) {
        (None, None, None) => None,
        (Some(cert), Some(key), ca) => {
            Some(TlsServer::from_pem_files(&cert, &key, ca.as_deref()).map_err(|e| e.to_string())?)
        }
        _ => {
            return Err(
                "--tls-cert and --tls-key go together (and --tls-client-ca needs them)".into(),
            )
        }
    };
    Ok(Args {
        listen,
        config,
        lmk: LmkSource::from_options(components, insecure_test_lmk).map_err(|e| e.to_string())?,
        settings: SecuritySettings {
            decimalisation_tables: decimalisation_tables(&tables, any_table)?,
        },
        audit,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hsm-sim: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if args.lmk == LmkSource::InsecureTestLmk {
        tracing::warn!("--insecure-test-lmk: every key is readable by anyone (development only)");
    }
    let lmk = match LmkSet::load(&args.lmk) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hsm-sim: LMK refused: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!(lmk_kcv = %hex::encode_upper(lmk.check_value()), "LMK loaded");
    let audit = match args.audit {
        Some(p) => match AuditLog::open(p).await {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("hsm-sim: audit log: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => None,
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hsm-sim: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(1);
        }
    };
    tracing::info!(addr = %args.listen, tls = args.config.tls.is_some(), "hsm-sim listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    if args.settings.decimalisation_tables == DecimalisationTables::InsecureAny {
        tracing::warn!(
            "--insecure-any-decimalisation-table: PINs can be recovered by anyone who may verify them"
        );
    }
    let hsm = SoftHsm::new(lmk).with_settings(args.settings);
    let server = Server::new(Arc::new(hsm), args.config, audit);
    match server.serve(listener, stop_rx).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hsm-sim: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn the_lmk_and_the_decimalisation_tables_are_chosen_explicitly() {
        assert!(parse(&[]).is_err_and(|e| e.contains("--insecure-test-lmk")));
        let a = parse(&["--insecure-test-lmk"]).expect("args");
        assert_eq!(a.lmk, LmkSource::InsecureTestLmk);
        assert_eq!(
            a.settings.decimalisation_tables,
            DecimalisationTables::default()
        );
        let a = parse(&[
            "--insecure-test-lmk",
            "--decimalisation-table",
            "1234567890123456",
        ])
        .expect("args");
        assert_eq!(
            a.settings.decimalisation_tables,
            DecimalisationTables::Only(vec!["1234567890123456".into()])
        );
        let any = parse(&["--insecure-test-lmk", "--insecure-any-decimalisation-table"]);
        assert_eq!(
            any.expect("args").settings.decimalisation_tables,
            DecimalisationTables::InsecureAny
        );
        for bad in [
            &["--insecure-test-lmk", "--decimalisation-table", "12AB"][..],
            &[
                "--insecure-test-lmk",
                "--decimalisation-table",
                "1234567890123456",
                "--insecure-any-decimalisation-table",
            ][..],
            &["--insecure-test-lmk", "--lmk-component", "a"][..],
            &["--insecure-test-lmk", "--tls-client-ca", "ca.pem"][..],
            &[
                "--insecure-test-lmk",
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "k",
            ][..],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
