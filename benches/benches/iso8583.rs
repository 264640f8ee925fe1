//! ISO 8583 codec speed, one core. Targets (issue 2): a typical ssc87 0200 with a 150-byte
//! field 55 decodes in ≤ 500 ns and encodes in ≤ 500 ns; jPOS's 772-byte ISO87APackager
//! message decodes and encodes in ≤ 1.5 µs each.
//! Run: `cargo bench -p benches --bench iso8583 -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use benches::samples;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use schemas::iso8583;

fn iso87ascii(c: &mut Criterion) {
    let spec = iso8583::spec("iso87ascii").expect("spec");
    let wire = samples::ISO87A_PACKAGER;
    let owned = spec.decode(wire).expect("vector").to_owned_message();
    let mut g = c.benchmark_group("iso87ascii_ISO87APackager");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| spec.decode(black_box(wire)).map(|m| m.fields().count()))
    });
    let mut out = Vec::with_capacity(1024);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            spec.encode(black_box(&owned), &mut out).map(|()| out.len())
        })
    });
    g.finish();
}

fn ssc87(c: &mut Criterion) {
    let spec = iso8583::spec("ssc87").expect("spec");
    let owned = samples::ssc87_0200(spec).expect("sample");
    let mut wire = Vec::new();
    spec.encode(&owned, &mut wire).expect("encode");
    let mut g = c.benchmark_group("ssc87_0200_icc150");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| spec.decode(black_box(&wire)).map(|m| m.fields().count()))
    });
    let mut out = Vec::with_capacity(1024);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            spec.encode(black_box(&owned), &mut out).map(|()| out.len())
        })
    });
    // What the switch does per request before business logic: decode, read the keys,
    // build the response, encode it.
    g.bench_function("decode_respond_encode", |b| {
        b.iter(|| {
            let m = spec.decode(black_box(&wire)).expect("decode");
            let stan = m.get_u64(11).expect("stan");
            let mut r = m.to_response().expect("response");
            r.set_str(39, "00").expect("39");
            out.clear();
            spec.encode(&r, &mut out).expect("encode");
            stan + out.len() as u64
        })
    });
    g.finish();
}

criterion_group!(benches, iso87ascii, ssc87);
criterion_main!(benches);
