//! The demo's six bank issuer hosts: one simulated bank per bank of the world, each with its
//! own HSM (same test LMK), and the switch's link configuration to each: mutual TLS with the
//! certificates made at the demo's start (`pki.rs`), and MACs.

use super::pki::DemoPki;
use super::DemoRunError;
use crate::issuer::IssuerConfig;
use crate::sim::banksim::{AccountSeed, BankSim, BankSimData};
use crate::sim::world::{clear_keys, DemoWorld, DECIMALISATION_TABLE, DEMO_MAC_ALGORITHM};
use crate::wire::mac::LinkMacAlgorithm;
use std::sync::Arc;
use std::time::Duration;

/// How often the demo's links send an echo test when idle.
const ECHO_INTERVAL: Duration = Duration::from_secs(10);

/// Worker threads of the simulated banks' own runtime: test equipment, kept to one thread so
/// that it cannot crowd the switch's workers off a small machine.
const BANK_THREADS: usize = 1;

/// The simulated banks' own tokio runtime (threads named `bank-sim`). The demo's banks share
/// the switch's process; on a runtime of their own, `benches/scripts/run.sh` can read their CPU
/// per request apart from the switch's (issue 27: "report the switch's own CPU separately").
pub(super) struct BankRuntime(Option<tokio::runtime::Runtime>);

impl BankRuntime {
    fn new() -> Result<BankRuntime, DemoRunError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(BANK_THREADS)
            .thread_name("bank-sim")
            .enable_all()
            .build()
            .map(|rt| BankRuntime(Some(rt)))
            .map_err(|e| DemoRunError::Other(format!("bank simulators' runtime: {e}")))
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle().clone())
    }
}

impl Drop for BankRuntime {
    /// A runtime cannot be dropped from inside another one's task (which is where the demo
    /// ends); its threads are told to stop instead, without waiting for them.
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Starts a bank host for every bank of the world, on consecutive ports from `port_base` (0:
/// any free port), on a runtime of their own, and returns them with the switch's links to them.
pub(super) async fn start_all(
    world: &DemoWorld,
    port_base: u16,
) -> Result<(BankRuntime, Vec<BankSim>, Vec<IssuerConfig>), DemoRunError> {
    let pki = DemoPki::new().map_err(|e| DemoRunError::Other(e.to_string()))?;
    let runtime = BankRuntime::new()?;
    let mut sims = Vec::new();
    let mut links = Vec::new();
    for i in 0..world.banks.len() {
        let port = match port_base {
            0 => 0,
            base => base.saturating_add(i as u16),
        };
        let listen = format!("127.0.0.1:{port}");
        let (sim, mut link) = start_bank_on(
            world,
            i,
            &listen,
            DEMO_MAC_ALGORITHM,
            DEMO_MAC_ALGORITHM,
            Some(&pki),
            runtime.handle(),
        )
        .await?;
        link.echo_interval = ECHO_INTERVAL;
        links.push(link);
        sims.push(sim);
    }
    Ok((runtime, sims, links))
}

/// Starts the simulated issuer host of the world's bank `i` on `listen` (its own HSM, same
/// test LMK) and returns it with the switch's link configuration to it: keys exchanged at each
/// sign-on, and MACs on by the demo's algorithm, SM4 ([`DEMO_MAC_ALGORITHM`]; a TAK travels
/// with every ZPK; see [`crate::wire::mac`]).
pub async fn start_bank(
    world: &DemoWorld,
    i: usize,
    listen: &str,
) -> Result<(BankSim, IssuerConfig), DemoRunError> {
    start_bank_with(world, i, listen, DEMO_MAC_ALGORITHM, DEMO_MAC_ALGORITHM).await
}

/// As [`start_bank`], with the bank MACing by `bank_mac` and the switch's link configured with
/// `link_mac` (tests of each algorithm, and of a link whose two ends disagree).
pub async fn start_bank_with(
    world: &DemoWorld,
    i: usize,
    listen: &str,
    bank_mac: LinkMacAlgorithm,
    link_mac: LinkMacAlgorithm,
) -> Result<(BankSim, IssuerConfig), DemoRunError> {
    start_bank_on(world, i, listen, bank_mac, link_mac, None, None).await
}

/// The bank host and the switch's link to it, over mutual TLS with `pki`'s certificates when
/// given, on `runtime` when given (else the caller's).
async fn start_bank_on(
    world: &DemoWorld,
    i: usize,
    listen: &str,
    bank_mac: LinkMacAlgorithm,
    link_mac: LinkMacAlgorithm,
    pki: Option<&DemoPki>,
    runtime: Option<tokio::runtime::Handle>,
) -> Result<(BankSim, IssuerConfig), DemoRunError> {
    let other = |e: &dyn std::fmt::Display| DemoRunError::Other(e.to_string());
    let bank = world.banks.get(i).ok_or_else(|| other(&"no such bank"))?;
    let accounts = world
        .cards
        .iter()
        .filter(|c| c.bank == i)
        .map(|c| AccountSeed {
            pan: c.pan.expose_digits().to_owned(),
            balance_fen: c.bank_balance_fen,
            pin_offset: c.pin_offset.clone(),
        })
        .collect();
    let data = BankSimData {
        institution: bank.id.as_str().to_owned(),
        listen: listen.to_owned(),
        zmk_clear_hex: bank.zmk_clear.clone(),
        zpk_clear_hex: Some(bank.zpk_clear.clone()),
        tak_clear_hex: None,
        mac: true,
        mac_algorithm: bank_mac,
        pvk_clear_hex: clear_keys::PVK.to_owned(),
        decimalisation_table: DECIMALISATION_TABLE.to_owned(),
        accounts,
    };
    let bank_hsm = Arc::new(hsm_sim::SoftHsm::with_test_lmk());
    let mut cfg = data.into_config(&bank_hsm).map_err(|e| other(&e))?;
    if let Some(pki) = pki {
        cfg.tls = Some(pki.bank_host().map_err(|e| other(&e))?);
    }
    let runtime = runtime.unwrap_or_else(tokio::runtime::Handle::current);
    let sim = BankSim::start_on(cfg, bank_hsm, runtime)
        .await
        .map_err(|e| other(&e))?;
    let (zmk, zpk) = world.bank_keys(i)?;
    let mut lc = IssuerConfig::new(bank.id.clone(), sim.addr().to_string(), zmk);
    lc.zpk = Some(zpk);
    lc.mac = true;
    lc.mac_algorithm = link_mac;
    lc.key_exchange_on_sign_on = true;
    if let Some(pki) = pki {
        lc.tls = Some(pki.switch_link().map_err(|e| other(&e))?);
    }
    Ok((sim, lc))
}
