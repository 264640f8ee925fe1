//! Properties of the codec over random input:
//! - every spec round-trips random valid messages byte for byte (encode → decode → encode),
//!   and decoding gives back every value that was set;
//! - arbitrary bytes, and vectors with random bytes changed, never panic the decoder, the
//!   sub-field readers, the JSON/explain renderers or the framing codecs.

use bytes::BytesMut;
use proptest::prelude::*;
use schemas::iso8583::framing::{FrameCodec, LengthHeader};
use schemas::iso8583::{self, json, Content, FieldSpec, Length, Mti, Spec};
use tokio_util::codec::Decoder;

/// A small deterministic generator: proptest picks the seed, the seed picks the message.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick(&mut self, chars: &[u8]) -> u8 {
        chars[self.below(chars.len())]
    }
}

const DIGITS: &[u8] = b"0123456789";
const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ";
const SPECIAL: &[u8] = b" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const TRACK: &[u8] = b"0123456789=";

fn two(rng: &mut Rng, lo: u32, hi: u32) -> String {
    format!("{:02}", lo + rng.below((hi - lo + 1) as usize) as u32)
}

fn date(rng: &mut Rng, layout: &str) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while i + 1 < layout.len() {
        s += &match &layout[i..i + 2] {
            "MM" => two(rng, 1, 12),
            "DD" => two(rng, 1, 28),
            "hh" => two(rng, 0, 23),
            "mm" | "ss" => two(rng, 0, 59),
            _ => two(rng, 0, 99),
        };
        i += 2;
    }
    s.into_bytes()
}

fn value(rng: &mut Rng, f: &FieldSpec) -> Vec<u8> {
    if let Some(fmt) = f.format {
        return date(rng, fmt.layout());
    }
    let len = match f.length {
        Length::Fixed(n) => n,
        Length::Variable { max, .. } => rng.below(max.min(48) + 1),
    };
    let class: Vec<u8> = match f.content {
        Content::Numeric | Content::SignedAmount => DIGITS.to_vec(),
        Content::Alpha => ALPHA.to_vec(),
        Content::AlphaNumeric => ALNUM.to_vec(),
        Content::AlphaNumericSpecial => [ALNUM, SPECIAL].concat(),
        Content::AlphaSpecial => [ALPHA, SPECIAL].concat(),
        Content::NumericSpecial => [DIGITS, SPECIAL].concat(),
        Content::Special => SPECIAL.to_vec(),
        Content::Track => TRACK.to_vec(),
        Content::Binary => (0..=255).collect(),
    };
    let mut v: Vec<u8> = (0..len).map(|_| rng.pick(&class)).collect();
    if f.content == Content::SignedAmount && !v.is_empty() {
        v[0] = rng.pick(b"CD");
    }
    v
}

/// A random valid message of `spec`: an MTI (one with presence rules, or an unruled one),
/// its mandatory fields, and a random subset of the fields it allows.
fn random_message(spec: &'static Spec, seed: u64) -> (Mti, Vec<(u16, Vec<u8>)>) {
    let mut rng = Rng(seed | 1);
    let mut mtis: Vec<[u8; 4]> = spec.ruled_mtis().collect();
    mtis.push(*b"0600");
    let mti = mtis[rng.below(mtis.len())];
    let rule = spec.rule(mti);
    let mut fields = Vec::new();
    for f in spec.fields() {
        let mandatory = rule.is_some_and(|r| r.mandatory.contains(f.id));
        let allowed = rule
            .and_then(|r| r.allowed)
            .is_none_or(|a| a.contains(f.id));
        if mandatory || (allowed && rng.below(3) == 0) {
            fields.push((f.id, value(&mut rng, f)));
        }
    }
    (Mti::from_bytes(mti).unwrap(), fields)
}

fn round_trip(name: &str, seed: u64) -> Result<(), TestCaseError> {
    let spec = iso8583::spec(name).unwrap();
    let (mti, fields) = random_message(spec, seed);
    let mut msg = spec.message(mti);
    for (id, v) in &fields {
        msg.set(*id, v)
            .map_err(|e| TestCaseError::fail(format!("{name} set {id}: {e}")))?;
    }
    let mut wire = Vec::new();
    spec.encode(&msg, &mut wire)
        .map_err(|e| TestCaseError::fail(format!("{name} encode: {e}")))?;
    let decoded = spec
        .decode(&wire)
        .map_err(|e| TestCaseError::fail(format!("{name} decode: {e}")))?;
    prop_assert_eq!(decoded.mti(), mti);
    prop_assert_eq!(
        decoded.fields().collect::<Vec<_>>(),
        fields.iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    for (id, v) in &fields {
        prop_assert_eq!(
            &*decoded.get(*id).unwrap(),
            v.as_slice(),
            "{} field {}",
            name,
            id
        );
    }
    let mut again = Vec::new();
    spec.encode(&decoded.to_owned_message(), &mut again)
        .unwrap();
    prop_assert_eq!(again, wire);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_spec_round_trips_random_valid_messages(seed in any::<u64>()) {
        for name in iso8583::spec_names() {
            round_trip(name, seed)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        for name in iso8583::spec_names() {
            exercise(iso8583::spec(name).unwrap(), &bytes);
        }
    }

    #[test]
    fn corrupted_vectors_never_panic_the_decoder(
        which in 0usize..6,
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let (name, file) = VECTORS[which];
        let mut bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/").to_owned() + file).unwrap();
        for (pos, b) in edits {
            let i = pos % bytes.len();
            bytes[i] = b;
        }
        bytes.truncate(bytes.len() - cut % 4);
        exercise(iso8583::spec(name).unwrap(), &bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_framers(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12),
        max in 0usize..300,
    ) {
        for header in [LengthHeader::Binary2, LengthHeader::Ascii4, LengthHeader::Bcd2] {
            for tpdu in [false, true] {
                let mut codec = FrameCodec::new(header).with_frame_len_max(max);
                if tpdu {
                    codec = codec.with_tpdu();
                }
                let mut buf = BytesMut::new();
                'feed: for c in &chunks {
                    buf.extend_from_slice(c);
                    loop {
                        match codec.decode(&mut buf) {
                            Ok(Some(frame)) => prop_assert!(frame.message.len() <= max),
                            Ok(None) => break,
                            Err(_) => break 'feed,
                        }
                    }
                }
            }
        }
    }
}

const VECTORS: [(&str, &str); 6] = [
    ("iso87ascii", "ISO87APackager.bin"),
    ("iso87binary", "ISO87BPackager.bin"),
    ("iso93ascii", "ISO93APackager.bin"),
    ("iso93binary", "ISO93BPackager.bin"),
    ("post", "post.bin"),
    ("moov87", "moov/iso_reversal_message.dat"),
];

/// Decodes and, on success, reads every field and sub-field every way a caller could.
fn exercise(spec: &Spec, bytes: &[u8]) {
    let Ok(msg) = spec.decode(bytes) else {
        return;
    };
    let _ = format!("{msg:?} {msg}");
    let _ = json::to_json(&msg);
    let _ = json::explain(&msg);
    for id in msg.fields().collect::<Vec<_>>() {
        let _ = msg.get_str(id);
        let _ = msg.get_u64(id);
        let _ = msg.get_amount(id, 2);
        for sub in ["1", "2", "3", "25", "9F26", "70.57"] {
            let _ = msg.get_path(&format!("{id}.{sub}"));
        }
    }
    let _ = msg.to_response();
    let mut out = Vec::new();
    let _ = spec.encode(&msg.to_owned_message(), &mut out);
}

#[test]
fn ssc87_private_fields_round_trip_by_path() {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0200").unwrap());
    m.set_str(3, "000000").unwrap();
    m.set_u64(4, 12345).unwrap();
    m.set_str(7, "1231235959").unwrap();
    m.set_u64(11, 7).unwrap();
    m.set_str(41, "KIOSK001").unwrap();
    m.set_str(49, "156").unwrap();
    m.set_path("62.1", b"11").unwrap();
    m.set_path("62.2", b"H11010800001").unwrap();
    m.set_path("62.3", b"MZ20240611-0001").unwrap();
    m.set_path("62.4", b"12345").unwrap();
    m.set_path("62.5", b"3").unwrap();
    m.set_path("55.9F26", &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    m.set_path("55.9F36", &[0, 1]).unwrap();
    m.set_path("55.9F26", &[8, 7, 6, 5, 4, 3, 2, 1]).unwrap();
    let mut wire = Vec::new();
    spec.encode(&m, &mut wire).unwrap();
    let d = spec.decode(&wire).unwrap();
    // category, hospital, LL bill number, total (fen, zero-filled), items count
    assert_eq!(
        d.get_str(62).unwrap(),
        "11H11010800001".to_owned() + "15MZ20240611-0001" + "000000012345" + "0003"
    );
    assert_eq!(d.get_path_str("62.4").unwrap(), "000000012345");
    assert_eq!(d.get_path_str("62.3").unwrap(), "MZ20240611-0001");
    assert_eq!(&*d.get_path("55.9F26").unwrap(), &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&*d.get_path("55.9F36").unwrap(), &[0, 1]);
    assert_eq!(d.get_u64(4).unwrap(), 12345);
}
