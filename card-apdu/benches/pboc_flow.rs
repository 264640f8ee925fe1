//! Throughput of the in-memory channel: a full PBOC debit flow (PPSE, SELECT, GPO, READ
//! RECORDs, GENERATE AC 1, issuer ARQC check + ARPC, EXTERNAL AUTHENTICATE, GENERATE AC 2) and
//! the SSSE card-basics read, reported as APDUs per second (criterion "elements").
//!
//! `cargo bench -p card-apdu --bench pboc_flow -- --warm-up-time 1 --measurement-time 3`

use std::path::Path;

use card_apdu::channel::memory::MemoryChannel;
use card_apdu::issuer::IssuerSim;
use card_apdu::kiosk::pboc::{complete_payment, start_payment, PaymentRequest, Terminal};
use card_apdu::kiosk::ssse::SsseCard;
use card_apdu::perso::{CardProfile, PersoFile};
use card_apdu::vcard::VirtualCard;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn setup(sm: bool) -> (MemoryChannel, IssuerSim, Terminal) {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/demo-card.toml"
    ));
    let file = PersoFile::load(path).expect("demo card");
    let issuer = IssuerSim::from_perso(&file).expect("issuer");
    let ch = MemoryChannel::new(VirtualCard::new(
        CardProfile::from_perso(&file).expect("profile"),
    ));
    (
        ch,
        issuer,
        Terminal {
            supports_sm: sm,
            ..Terminal::default()
        },
    )
}

fn pay(ch: &mut MemoryChannel, issuer: &IssuerSim, terminal: &Terminal) {
    // The ATC is 2 bytes: a card is used up after 65 535 transactions, like a real one.
    if ch.card_mut().pboc_atc() > 65_000 {
        *ch = setup(terminal.supports_sm).0;
    }
    let mut s = start_payment(
        ch,
        terminal,
        &PaymentRequest::new(12_345, [0x26, 0x11, 0x23], [0x12, 0, 0]),
    )
    .expect("start");
    let a = issuer
        .authorise(&s.pan, &s.request.psn, &s.request.field55, *b"00")
        .expect("authorise");
    let outcome = complete_payment(ch, &mut s, &a.response).expect("complete");
    assert!(outcome.approved);
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory_channel");
    for (name, sm) in [("pboc_full_flow_sm4", true), ("pboc_full_flow_3des", false)] {
        let (mut ch, issuer, terminal) = setup(sm);
        let before = ch.apdu_count();
        pay(&mut ch, &issuer, &terminal);
        let apdus = ch.apdu_count() - before;
        g.throughput(Throughput::Elements(apdus));
        g.bench_function(name, |b| b.iter(|| pay(&mut ch, &issuer, &terminal)));
    }
    let (mut ch, _, _) = setup(true);
    let before = ch.apdu_count();
    SsseCard::open(&mut ch)
        .expect("select")
        .read_basics()
        .expect("read");
    g.throughput(Throughput::Elements(ch.apdu_count() - before));
    g.bench_function("ssse_read_card_basics", |b| {
        b.iter(|| {
            SsseCard::open(&mut ch)
                .expect("select")
                .read_basics()
                .expect("read")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
