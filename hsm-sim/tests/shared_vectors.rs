//! Cross-checks against the published vectors in `shared/vectors/` (beside the checkout in CI).

use hsm_sim::card_crypto::{derive_icc_master_key_from_y, CardAlgorithm, CardKey};
use hsm_sim::codec::response_code;
use hsm_sim::HsmError;

fn shared(path: &str) -> String {
    let p = format!("{}/../../shared/vectors/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("shared vector {p} is required: {e}"))
}

#[test]
fn test_lmk_matches_the_published_list() {
    let readme = shared("README.md");
    let start = readme
        .find("01010101010101017902CD1FD36EF8BA")
        .expect("LMK list in README");
    let pairs: Vec<String> = readme[start..]
        .split([',', '.', '\n', ' '])
        .map(str::trim)
        .filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .take(20)
        .map(str::to_string)
        .collect();
    assert_eq!(pairs.len(), 20);
    assert_eq!(
        pairs,
        hsm_sim::lmk::TEST_LMK_HEX.map(str::to_string).to_vec()
    );
}

#[test]
fn readme_kcv_and_sm4_derivation_examples_hold() {
    let readme = shared("README.md");
    assert!(readme.contains("0123456789ABCDEF FEDCBA9876543210 is 08D7B4"));
    let k = CardKey::from_hex("0123456789ABCDEFFEDCBA9876543210").expect("key");
    assert_eq!(
        hex::encode_upper(k.check_value(CardAlgorithm::Tdes)),
        "08D7B4"
    );
    for v in [
        "F23BF4AE92B554C116139D4F67322667",
        "8866010000030400",
        "016F6E76BD8E6FB4A17C28C4B05E03A8",
    ] {
        assert!(readme.contains(v), "{v} in README");
    }
    let mdk = CardKey::from_hex("F23BF4AE92B554C116139D4F67322667").expect("mdk");
    let mk = derive_icc_master_key_from_y(
        &mdk.cipher(CardAlgorithm::Sm4),
        [0x88, 0x66, 0x01, 0x00, 0x00, 0x03, 0x04, 0x00],
    );
    assert_eq!(
        hex::encode_upper(mk.expose()),
        "016F6E76BD8E6FB4A17C28C4B05E03A8"
    );
}

#[test]
fn every_error_code_we_send_is_a_documented_payshield_code() {
    let errors = shared("payshield/errors.json");
    for e in [
        HsmError::VerificationFailed,
        HsmError::InvalidKeyTypeCode,
        HsmError::InvalidKeyLengthFlag,
        HsmError::SourceKeyParity,
        HsmError::DestinationKeyParity,
        HsmError::InvalidInput,
        HsmError::InvalidPinBlock,
        HsmError::InvalidAccount,
        HsmError::InvalidPinBlockFormat,
        HsmError::PinLength,
        HsmError::DecimalisationTable,
        HsmError::InvalidKeyScheme,
        HsmError::IncompatibleKeyLength,
        HsmError::InvalidKeyType,
        HsmError::FunctionNotPermitted,
        HsmError::Internal,
        HsmError::InvalidHeader,
        HsmError::UnknownCommand,
        HsmError::DataLength,
    ] {
        assert!(
            errors.contains(&format!("\"{}\":", e.code())),
            "{} not in errors.json",
            e.code()
        );
    }
}

#[test]
fn response_codes_match_the_published_message_table() {
    let messages = shared("payshield/messages.json");
    let mut checked = 0;
    for part in messages.split("\"requestCode\": \"").skip(1) {
        let req = &part[..2];
        let Some(resp_at) = part.find("\"responseCode\": \"") else {
            continue;
        };
        let resp = &part[resp_at + 17..resp_at + 19];
        let expect = response_code([req.as_bytes()[0], req.as_bytes()[1]]);
        assert_eq!(resp.as_bytes(), &expect, "{req}");
        checked += 1;
    }
    assert!(checked >= 40, "parsed {checked} commands");
}
