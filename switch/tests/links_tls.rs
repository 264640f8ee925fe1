//! Mutual TLS on a bank link (issue 24, finding 3): a link over mutual TLS signs on and
//! carries a transaction; a bank whose certificate comes from another CA is refused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hsm_sim::keys::{KeyScheme, KeyType, Pvk, TypedKey, Zmk, Zpk};
use hsm_sim::{Hsm, SoftHsm};
use schemas::domain::InstitutionId;
use schemas::iso8583::{spec, Mti};
use switch::acquirer::TlsSettings;
use switch::issuer::{BankTls, IssuerConfig, IssuerLinks, LinkState, LinksOptions};
use switch::sim::banksim::{AccountSeed, BankKeys, BankSim, BankSimConfig};
use switch::wire::transport::Framing;

// Test clear keys (odd parity), never used outside tests.
const ZMK_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";
const ZPK_HEX: &str = "1032547698BADCFEEFCDAB8967452301";
const PVK_HEX: &str = "FEDCBA98765432100123456789ABCDEF";
const PAN: &str = "6228480012345678";
const BANK_NAME: &str = "issuer.bank.test";

fn bank_id() -> InstitutionId {
    InstitutionId::parse("01020000").unwrap()
}

#[path = "support/test_pki.rs"]
mod test_pki;

use test_pki::Ca;

/// A leaf of `ca` for `name`, written as `<file>.crt` and `<file>.key` under `dir`; returns
/// their paths.
fn leaf_files(ca: &Ca, dir: &Path, file: &str, name: &str) -> (String, String) {
    let (cert, key) = ca.leaf_pem(name);
    (
        write(dir, &format!("{file}.crt"), &cert),
        write(dir, &format!("{file}.key"), &key),
    )
}

/// `ca`'s certificate written as `file` under `dir`; returns its path.
fn ca_file(ca: &Ca, dir: &Path, file: &str) -> String {
    write(dir, file, &ca.pem())
}

fn write(dir: &Path, file: &str, text: &str) -> String {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

/// A bank host over mutual TLS: its certificate from `bank_ca`, clients from `switch_ca`.
async fn start_bank(dir: &Path, bank_ca: &Ca, switch_ca: &Ca) -> BankSim {
    let hsm = SoftHsm::with_test_lmk();
    let import = |t, h| hsm.import_clear_key(t, KeyScheme::U, h).unwrap();
    let (cert, key) = leaf_files(bank_ca, dir, "bank", BANK_NAME);
    let client_ca = ca_file(switch_ca, dir, "switch-ca.crt");
    let config = BankSimConfig {
        institution: bank_id(),
        listen: "127.0.0.1:0".into(),
        spec_name: "ssc87".into(),
        framing: Framing::default(),
        keys: BankKeys {
            zmk: Zmk::from_token(import(KeyType::Zmk, ZMK_HEX)),
            zpk: Some(Zpk::from_token(import(KeyType::Zpk, ZPK_HEX))),
            tak: None,
            pvk: Pvk::from_token(import(KeyType::Pvk, PVK_HEX)),
        },
        decimalisation_table: "0123456789012345".into(),
        pin_check_length: 4,
        accounts: vec![AccountSeed {
            pan: PAN.into(),
            balance_fen: 1_000_000,
            pin_offset: "0000".into(),
        }],
        connections_max: 8,
        mac: false,
        mac_algorithm: Default::default(),
        tls: Some(TlsSettings::from_pem_files(&cert, &key, Some(&client_ca)).unwrap()),
    };
    BankSim::start(config, Arc::new(hsm)).await.unwrap()
}

/// The switch's links to `bank`, over mutual TLS: its certificate from `switch_ca`, the
/// bank's expected from `trusted_bank_ca`.
fn start_links(dir: &Path, bank: &BankSim, switch_ca: &Ca, trusted_bank_ca: &Ca) -> IssuerLinks {
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let import = |t, h| hsm.import_clear_key(t, KeyScheme::U, h).unwrap();
    let mut c = IssuerConfig::new(
        bank_id(),
        bank.addr().to_string(),
        Zmk::from_token(import(KeyType::Zmk, ZMK_HEX)),
    );
    c.zpk = Some(Zpk::from_token(import(KeyType::Zpk, ZPK_HEX)));
    c.reconnect_backoff_min = Duration::from_millis(20);
    c.reconnect_backoff_max = Duration::from_millis(200);
    let (cert, key) = leaf_files(switch_ca, dir, "switch", "switch.test");
    let ca = ca_file(trusted_bank_ca, dir, "bank-ca.crt");
    c.tls = Some(BankTls::from_pem_files(&ca, &cert, &key, BANK_NAME).unwrap());
    IssuerLinks::start(
        vec![c],
        hsm as Arc<dyn Hsm>,
        LinksOptions::new(InstitutionId::parse("9999").unwrap()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_link_over_mutual_tls_signs_on_and_carries_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (bank_ca, switch_ca) = (Ca::new("bank CA"), Ca::new("switch CA"));
    let bank = start_bank(dir.path(), &bank_ca, &switch_ca).await;
    let links = start_links(dir.path(), &bank, &switch_ca, &bank_ca);
    let mut state = links.watch_state(&bank_id()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| *s == LinkState::SignedOn),
    )
    .await
    .expect("signed on over mutual TLS")
    .unwrap();
    assert_eq!(bank.stats().sign_ons, 1);

    // A refund (20xxxx, no PIN) to the card's account, answered 00.
    let s = spec("ssc87").unwrap();
    let mut m = s.message(Mti::new("0200").unwrap());
    m.set_str(2, PAN)
        .and_then(|m| m.set_str(3, "200000"))
        .and_then(|m| m.set_u64(4, 100))
        .and_then(|m| m.set_str(7, "1123093605"))
        .and_then(|m| m.set_u64(11, u64::from(links.next_stan(&bank_id()).value())))
        .and_then(|m| m.set_str(37, "000000000001"))
        .and_then(|m| m.set_str(41, "KIOSK001"))
        .and_then(|m| m.set_str(49, "156"))
        .unwrap();
    let answer = links
        .request(&bank_id(), m, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(answer.get_str(39).unwrap(), "00");
    links.shutdown().await;
    bank.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_presenting_a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (bank_ca, switch_ca, rogue_ca) = (
        Ca::new("bank CA"),
        Ca::new("switch CA"),
        Ca::new("rogue CA"),
    );
    // The host at the bank's address shows a certificate of the rogue CA.
    let bank = start_bank(dir.path(), &rogue_ca, &switch_ca).await;
    let links = start_links(dir.path(), &bank, &switch_ca, &bank_ca);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!links.is_up(&bank_id()), "the link must not sign on");
    assert_eq!(bank.stats().sign_ons, 0, "no message reached the host");
    assert!(bank.stats().connections >= 1, "the switch did try");
    links.shutdown().await;
    bank.stop().await;
}
