//! Criterion benchmarks of the hot HSM functions, in process and over loopback TCP.
//!
//! Run briefly: `cargo bench -p hsm-sim --bench hsm -- --warm-up-time 1 --measurement-time 3`.
//! The link MACs alone (issue 27, decision 3): `cargo bench -p hsm-sim --bench hsm -- link_mac`.
//! Targets (per core): ≥ 200,000 ARQC verifications + ARPC/s, ≥ 100,000 PIN translations/s;
//! over TCP with pipelining ≥ 50,000 commands/s.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hsm_sim::card_crypto::{self, CardAlgorithm, CardKey};
use hsm_sim::cvv::CvvKind;
use hsm_sim::hsm::{ArpcMethod, ArqcRequest, PinBlockIn};
use hsm_sim::keys::*;
use hsm_sim::mac::{MacAlgorithm, MacPadding};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use hsm_sim::server::{Server, ServerConfig};
use hsm_sim::{ClientConfig, Hsm, HsmClient, SoftHsm};

/// Drive a future that never waits (the software HSM's) without a runtime.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

const IMK: &str = "0123456789ABCDEFFEDCBA9876543210";
const SM4_IMK: &str = "F23BF4AE92B554C116139D4F67322667";

fn arqc_req(h: &SoftHsm, alg: CardAlgorithm) -> ArqcRequest {
    let (scheme, clear) = match alg {
        CardAlgorithm::Tdes => (KeyScheme::U, IMK),
        CardAlgorithm::Sm4 => (KeyScheme::G, SM4_IMK),
    };
    let imk = ImkAc::from_token(
        h.import_clear_key(KeyType::ImkAc, scheme, clear)
            .expect("imk"),
    );
    let mk = card_crypto::derive_icc_master_key(
        alg,
        &CardKey::from_hex(clear).expect("k"),
        "6228480402564890018",
        "01",
    )
    .expect("mk");
    let sk = card_crypto::derive_ac_session_key(alg, &mk, [0, 7]);
    // A typical CDOL1 + AIP + ATC + IAD input: 43 bytes.
    let data = hex::decode(
        "000000001000000000000000015600000000000156241123009A8B7C6D5C00000007030390000000000000",
    )
    .expect("h");
    let arqc = card_crypto::generate_ac(alg, &sk, &data);
    ArqcRequest {
        algorithm: alg,
        imk_ac: imk,
        pan: "6228480402564890018".into(),
        psn: "01".into(),
        atc: [0, 7],
        transaction_data: data,
        arqc,
        arpc: ArpcMethod::Method1 { arc: *b"00" },
    }
}

fn pin_setup(h: &SoftHsm) -> (Tpk, Zpk, PinBlockIn) {
    let tpk = Tpk::from_token(
        h.import_clear_key(KeyType::Tpk, KeyScheme::U, IMK)
            .expect("tpk"),
    );
    let zpk = Zpk::from_token(
        h.import_clear_key(
            KeyType::Zpk,
            KeyScheme::U,
            "1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A",
        )
        .expect("zpk"),
    );
    let k = ClearKey::new(KeyScheme::U, hex::decode(IMK).expect("h")).expect("k");
    let c = hsm_sim::crypto::WorkingCipher::new(&k).expect("c");
    let mut b = hex::decode("041261AAAAEDCBA9").expect("h");
    c.encrypt_block(&mut b);
    let pin = PinBlockIn {
        block: EncryptedPinBlock::from_bytes(b).expect("b"),
        format: PinBlockFormat::Iso0,
        pan: "5555555551234567".into(),
    };
    (tpk, zpk, pin)
}

fn primitives(c: &mut Criterion) {
    let mut g = c.benchmark_group("primitives");
    g.throughput(Throughput::Elements(1));
    let k = CardKey::from_hex(IMK).expect("k");
    for alg in [CardAlgorithm::Tdes, CardAlgorithm::Sm4] {
        let cipher = k.cipher(alg);
        let mut block = [0u8; 16];
        let n = alg.block_len();
        g.bench_function(format!("block_encrypt_{alg:?}"), |b| {
            b.iter(|| cipher.encrypt_block(std::hint::black_box(&mut block[..n])))
        });
        g.bench_function(format!("key_schedule_{alg:?}"), |b| {
            b.iter(|| std::hint::black_box(&k).cipher(alg))
        });
    }
    g.finish();
}

fn in_process(c: &mut Criterion) {
    let h = SoftHsm::with_test_lmk();
    let mut g = c.benchmark_group("in_process");
    g.throughput(Throughput::Elements(1));
    for alg in [CardAlgorithm::Tdes, CardAlgorithm::Sm4] {
        let req = arqc_req(&h, alg);
        assert!(
            now(h.verify_arqc_and_generate_arpc(&req))
                .expect("arqc")
                .verified
        );
        g.bench_function(format!("arqc_verify_arpc_{alg:?}"), |b| {
            b.iter(|| now(h.verify_arqc_and_generate_arpc(&req)).expect("arqc"))
        });
    }
    let (tpk, zpk, pin) = pin_setup(&h);
    g.bench_function("pin_translate_tpk_zpk_iso0", |b| {
        b.iter(|| {
            now(h.translate_pin_tpk_to_zpk(&tpk, &zpk, &pin, PinBlockFormat::Iso0)).expect("t")
        })
    });
    let cvk = Cvk::from_token(
        h.import_clear_key(
            KeyType::Cvk,
            KeyScheme::U,
            "98989898989898988989898989898989",
        )
        .expect("cvk"),
    );
    let cvv = now(h.generate_cvv(&cvk, CvvKind::Cvv2, "6228480402564890018", "2912", "220"))
        .expect("cvv");
    g.bench_function("cvv2_verify", |b| {
        b.iter(|| {
            now(h.verify_cvv(
                &cvk,
                CvvKind::Cvv2,
                "6228480402564890018",
                "2912",
                "220",
                &cvv,
            ))
            .expect("v")
        })
    });
    g.finish();
}

fn tcp_pipelined(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let h = Arc::new(SoftHsm::with_test_lmk());
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx);
        tokio::spawn(
            Server::new(Arc::clone(&h), ServerConfig::default(), None).serve(listener, rx),
        );
        addr
    });
    let mut cfg = ClientConfig::new(addr);
    cfg.connections = 4;
    cfg.in_flight_max = 1024;
    let client = Arc::new(HsmClient::new(cfg));
    let cvk = Cvk::from_token(
        h.import_clear_key(
            KeyType::Cvk,
            KeyScheme::U,
            "98989898989898988989898989898989",
        )
        .expect("cvk"),
    );
    let cvv = now(h.generate_cvv(&cvk, CvvKind::Cvv2, "6228480402564890018", "2912", "220"))
        .expect("cvv");
    const BATCH: u64 = 4096;
    let mut g = c.benchmark_group("tcp_loopback");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.bench_function("cvv2_verify_pipelined_4conn", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                rt.block_on(async {
                    let mut tasks = Vec::with_capacity(BATCH as usize);
                    for _ in 0..BATCH {
                        let c = Arc::clone(&client);
                        let k = cvk.clone();
                        let v = cvv.clone();
                        tasks.push(tokio::spawn(async move {
                            c.verify_cvv(
                                &k,
                                CvvKind::Cvv2,
                                "6228480402564890018",
                                "2912",
                                "220",
                                &v,
                            )
                            .await
                        }));
                    }
                    for t in tasks {
                        assert!(t.await.expect("join").expect("cvv"));
                    }
                });
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// One link MAC check as the switch makes it (software HSM, the TAK's expanded key cached,
/// the first 8 bytes compared) over a typical 300-byte 0200, for each link algorithm: ANSI
/// X9.19 (38 single-DES blocks and a 3DES output transformation), SM4 CBC-MAC (19 SM4 blocks,
/// padding method 2) and AES-CMAC (19 AES blocks).
fn link_mac(c: &mut Criterion) {
    let h = SoftHsm::with_test_lmk();
    let mut g = c.benchmark_group("link_mac");
    g.throughput(Throughput::Bytes(300));
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
    for (name, scheme, clear, alg, pad) in [
        (
            "x9_19",
            KeyScheme::U,
            IMK,
            MacAlgorithm::Iso9797Alg3,
            MacPadding::Method1,
        ),
        (
            "sm4",
            KeyScheme::G,
            IMK,
            MacAlgorithm::Sm4CbcMac,
            MacPadding::Method2,
        ),
        (
            "aes_cmac",
            KeyScheme::A,
            SM4_IMK,
            MacAlgorithm::AesCmac,
            MacPadding::Method1,
        ),
    ] {
        let tak = MacKey::Tak(Tak::from_token(
            h.import_clear_key(KeyType::Tak, scheme, clear)
                .expect("tak"),
        ));
        let mac = now(h.generate_mac(&tak, alg, pad, &data)).expect("mac");
        assert!(now(h.verify_mac(&tak, alg, pad, &data, &mac[..8])).expect("verify"));
        g.bench_function(format!("verify_300B_{name}"), |b| {
            b.iter(|| now(h.verify_mac(&tak, alg, pad, std::hint::black_box(&data), &mac[..8])))
        });
    }
    g.finish();
}

criterion_group!(benches, primitives, in_process, link_mac, tcp_pipelined);
criterion_main!(benches);
