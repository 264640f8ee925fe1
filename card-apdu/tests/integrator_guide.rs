//! The worked examples of `docs/integrator-guide.md`, recomputed from the guide's own inputs with
//! the code the HSM, the switch and the virtual card run (EMV Book 2 Annex A1.3/A1.4 and §8.1-8.2;
//! PBOC 3.0 for SM4). Each ```` ```guide-example <name> ```` block gives `imk_ac`, `pan`, `psn` and
//! the kiosk's `field55`; every other line must equal what the code derives, so the guide cannot
//! drift from the code. On a mismatch the test prints the whole block as the code computes it.

use card_apdu::emv::{self, ac_input_from_field55, Iad};
use card_apdu::tags;
use card_apdu::tlv;
use hsm_sim::card_crypto::{
    arpc_method_1, derive_ac_session_key, derive_icc_master_key, generate_ac, pan_psn_y,
    CardAlgorithm, CardKey,
};
use std::collections::BTreeMap;

const GUIDE: &str = include_str!("../../docs/integrator-guide.md");

/// The `name: value` lines of each `guide-example` block, by the block's name.
fn examples() -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for line in GUIDE.lines() {
        if let Some(name) = line.strip_prefix("```guide-example ") {
            current = Some((name.trim().to_owned(), Vec::new()));
        } else if line.starts_with("```") {
            if let Some((name, lines)) = current.take() {
                out.insert(name, lines);
            }
        } else if let Some((_, lines)) = current.as_mut() {
            let (k, v) = line.split_once(':').expect("a `name: value` line");
            lines.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn hex_up(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// Every line of one example as the code computes it, in the guide's order.
fn compute(given: &BTreeMap<&str, &str>) -> Vec<(&'static str, String)> {
    let imk = CardKey::from_hex(given["imk_ac"]).expect("imk_ac");
    let pan = given["pan"];
    let psn = given["psn"];
    let arc: [u8; 2] = hex::decode(given["arc"])
        .expect("arc hex")
        .try_into()
        .expect("arc is 2 bytes");
    let sent = hex::decode(given["field55"]).expect("field55 hex");
    let data = ac_input_from_field55(&sent).expect("field 55 the switch can read");
    let alg = data.iad.algorithm;
    let y = pan_psn_y(pan, psn).expect("pan and psn");
    let mk = derive_icc_master_key(alg, &imk, pan, psn).expect("mk");
    let sk = derive_ac_session_key(alg, &mk, data.atc);
    let arqc = generate_ac(alg, &sk, &data.input);
    let arpc = arpc_method_1(alg, &sk, &arqc, arc);
    let mut issuer_auth = arpc.to_vec();
    issuer_auth.extend_from_slice(&arc);
    // The kiosk's field 55 with the cryptogram the card computes (9F26 is the first element).
    let mut field55 = tlv::encode(tags::APPLICATION_CRYPTOGRAM, &arqc);
    for object in tlv::objects(&sent) {
        let object = object.expect("tlv");
        if object.tag != tags::APPLICATION_CRYPTOGRAM {
            field55.extend_from_slice(&tlv::encode(object.tag, object.value));
        }
    }
    vec![
        ("imk_ac", given["imk_ac"].to_owned()),
        ("pan", pan.to_owned()),
        ("psn", psn.to_owned()),
        ("field55", hex_up(&field55)),
        ("y", hex_up(&y)),
        ("mk_ac", hex_up(mk.expose())),
        ("sk_ac", hex_up(sk.expose())),
        ("ac_input", hex_up(&data.input)),
        ("arqc", hex_up(&arqc)),
        ("arc", hex_up(&arc)),
        ("arpc", hex_up(&arpc)),
        (
            "answer_field55",
            hex_up(&tlv::encode(tags::ISSUER_AUTHENTICATION_DATA, &issuer_auth)),
        ),
    ]
}

fn check(name: &str, alg: CardAlgorithm) {
    let all = examples();
    let lines = all
        .get(name)
        .unwrap_or_else(|| panic!("no guide-example {name} in the guide"));
    let given: BTreeMap<&str, &str> = lines
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sent = hex::decode(given["field55"]).expect("field55 hex");
    let data = ac_input_from_field55(&sent).expect("field 55");
    assert_eq!(data.iad.algorithm, alg, "the 9F10 algorithm byte of {name}");
    assert_eq!(data.cid, emv::cid::ARQC, "9F27 of {name}");
    let computed = compute(&given);
    let as_guide: Vec<(String, String)> = computed
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let printed: String = computed
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    assert_eq!(
        lines, &as_guide,
        "docs/integrator-guide.md, example {name}, as the code computes it:\n{printed}"
    );
}

#[test]
fn the_3des_worked_example_is_what_the_code_computes() {
    check("tdes", CardAlgorithm::Tdes);
}

#[test]
fn the_sm4_worked_example_is_what_the_code_computes() {
    check("sm4", CardAlgorithm::Sm4);
}

/// The guide's covered-data rule, said once more independently of `emv::ac_input`: the terminal
/// elements in the order of the guide, then 82, 9F36 and bytes 4-7 of 9F10.
#[test]
fn the_covered_data_follow_the_order_the_guide_gives() {
    for (name, lines) in examples() {
        let given: BTreeMap<&str, &str> = lines
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let sent = hex::decode(given["field55"]).expect("hex");
        let tlvs = tlv::parse_all(&sent).expect("tlv");
        let value = |tag| tlv::find_value(&tlvs, tag).expect("tag present").to_vec();
        let mut expected = Vec::new();
        for tag in [
            0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37, 0x82, 0x9F36,
        ] {
            expected.extend(value(tag));
        }
        let iad = Iad::parse(&value(0x9F10)).expect("9F10");
        expected.extend_from_slice(&iad.cvr);
        assert_eq!(expected.len(), 37, "{name}");
        assert_eq!(hex_up(&expected), given["ac_input"], "{name}");
    }
}
