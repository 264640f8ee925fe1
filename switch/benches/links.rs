//! Throughput of one issuer link to the simulated bank host, with pipelining: each iteration
//! sends a burst of requests concurrently over the one connection and waits for every answer
//! (MUX matching, framing, encode/decode on both sides, the bank's ledger; with PIN, also the
//! bank's PIN verification through its software HSM).
//!
//! `cargo bench -p switch --bench links`; throughput is reported in requests per second.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hsm_sim::keys::{KeyScheme, KeyType, Pvk, TypedKey, Zmk, Zpk};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use hsm_sim::{Hsm, SoftHsm};
use schemas::domain::InstitutionId;
use schemas::iso8583::{spec, Mti, OwnedMessage};
use switch::issuer::{IssuerConfig, IssuerLinks, LinkState, LinksOptions};
use switch::sim::banksim::{pin_offset_for, AccountSeed, BankKeys, BankSim, BankSimConfig};
use switch::wire::transport::Framing;

const ZMK_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";
const ZPK_HEX: &str = "1032547698BADCFEEFCDAB8967452301";
const PVK_HEX: &str = "FEDCBA98765432100123456789ABCDEF";
const DECIMALISATION: &str = "0123456789012345";
const PAN: &str = "6228480012345678";
const BURSTS: [u64; 3] = [1, 100, 1000];

fn bank() -> InstitutionId {
    InstitutionId::parse("01020000").unwrap_or_else(|_| unreachable!())
}

struct Setup {
    _bank: BankSim,
    links: Arc<IssuerLinks>,
    pin_block: EncryptedPinBlock,
}

async fn setup() -> Setup {
    let hsm = SoftHsm::with_test_lmk();
    let key = |t, h| hsm.import_clear_key(t, KeyScheme::U, h).expect("key");
    let zmk = Zmk::from_token(key(KeyType::Zmk, ZMK_HEX));
    let zpk = Zpk::from_token(key(KeyType::Zpk, ZPK_HEX));
    let pvk = Pvk::from_token(key(KeyType::Pvk, PVK_HEX));
    let offset = pin_offset_for(&hsm, &pvk, PAN, "1234", DECIMALISATION).expect("offset");
    let lmk_pin = hsm.encrypt_clear_pin_under_lmk("1234", PAN).expect("pin");
    let pin_block = hsm
        .translate_pin_lmk_to_zpk(&zpk, &lmk_pin, PAN, PinBlockFormat::Iso0)
        .expect("block");
    let hsm: Arc<SoftHsm> = Arc::new(hsm);
    let config = BankSimConfig {
        institution: bank(),
        listen: "127.0.0.1:0".into(),
        spec_name: "ssc87".into(),
        framing: Framing::default(),
        keys: BankKeys {
            zmk: zmk.clone(),
            zpk: Some(zpk.clone()),
            tak: None,
            pvk,
        },
        decimalisation_table: DECIMALISATION.into(),
        pin_check_length: 4,
        accounts: vec![AccountSeed {
            pan: PAN.into(),
            balance_fen: i64::MAX / 4,
            pin_offset: offset,
        }],
        connections_max: 4,
        mac: false,
        mac_algorithm: Default::default(),
        tls: None,
    };
    let bank_sim = BankSim::start(config, hsm.clone() as Arc<dyn Hsm>)
        .await
        .expect("bank");
    let mut c = IssuerConfig::new(bank(), bank_sim.addr().to_string(), zmk);
    c.zpk = Some(zpk);
    c.in_flight_max = 4096;
    let links = Arc::new(
        IssuerLinks::start(
            vec![c],
            hsm as Arc<dyn Hsm>,
            LinksOptions::new(InstitutionId::parse("9999").unwrap_or_else(|_| unreachable!())),
        )
        .expect("links"),
    );
    let mut state = links.watch_state(&bank()).expect("bank");
    state
        .wait_for(|s| *s == LinkState::SignedOn)
        .await
        .expect("signed on");
    Setup {
        _bank: bank_sim,
        links,
        pin_block,
    }
}

fn request(links: &IssuerLinks, n: u64, pin: Option<&EncryptedPinBlock>) -> OwnedMessage<'static> {
    let s = spec("ssc87").expect("spec");
    let mut m = s.message(Mti::new("0200").expect("mti"));
    let stan = u64::from(links.next_stan(&bank()).value());
    let built = m
        .set_str(2, PAN)
        .and_then(|m| m.set_str(3, if pin.is_some() { "000000" } else { "210000" }))
        .and_then(|m| m.set_u64(4, 1))
        .and_then(|m| m.set_str(7, "1123093605"))
        .and_then(|m| m.set_u64(11, stan))
        .and_then(|m| m.set_str(37, &format!("{:012}", n % 1_000_000_000_000)))
        .and_then(|m| m.set_str(41, "KIOSK001"))
        .and_then(|m| m.set_str(49, "156"))
        .map(|_| ());
    built.expect("fields");
    if let Some(b) = pin {
        m.set_bytes(52, b.as_bytes()).expect("52");
    }
    m
}

async fn burst(s: &Setup, size: u64, with_pin: bool, seq: &mut u64) {
    let mut tasks = Vec::with_capacity(size as usize);
    for _ in 0..size {
        *seq += 1;
        let links = Arc::clone(&s.links);
        let req = request(&links, *seq, with_pin.then_some(&s.pin_block));
        tasks.push(tokio::spawn(async move {
            let r = links
                .request(&bank(), req, Duration::from_secs(30))
                .await
                .expect("answer");
            assert_eq!(r.get_str(39).expect("39"), "00");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

fn bench_link(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(setup());
    let mut seq = 0u64;
    for (name, with_pin) in [("credit", false), ("purchase_with_pin", true)] {
        let mut g = c.benchmark_group(format!("issuer_link/{name}"));
        for size in BURSTS {
            g.throughput(Throughput::Elements(size));
            g.bench_function(format!("burst_{size}"), |b| {
                b.iter(|| rt.block_on(burst(&s, size, with_pin, &mut seq)))
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench_link
}
criterion_main!(benches);
