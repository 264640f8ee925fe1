//! The virtual card answers bad or out-of-sequence commands with the status word a real card
//! gives (ISO/IEC 7816-4 §5.6, EMV Book 3 §6.3.5), byte for byte.

mod common;

use common::raw;

const SELECT_SSSE: &str = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00";
const SELECT_PBOC: &str = "00A4040008A00000033301010100";

#[test]
fn malformed_lengths_answer_6700() {
    let (mut ch, _) = common::demo();
    assert_eq!(raw(&mut ch, "00A4"), "6700", "shorter than a header");
    assert_eq!(
        raw(&mut ch, "00A40400051234"),
        "6700",
        "Lc 5 with 2 data bytes"
    );
    assert_eq!(
        raw(&mut ch, "00A404000212345600"),
        "6700",
        "Lc 2 with 3 data bytes and Le"
    );
    assert_eq!(
        raw(&mut ch, "00B200000001"),
        "6700",
        "extended marker with 1 byte"
    );
    assert_eq!(
        raw(&mut ch, "00B2000000000001"),
        "6700",
        "extended Lc 0000 with data"
    );
}

#[test]
fn unknown_class_instruction_and_channel() {
    let (mut ch, _) = common::demo();
    assert_eq!(raw(&mut ch, "A0A4000002 3F00"), "6E00");
    assert_eq!(raw(&mut ch, "FF00000000"), "6E00");
    assert_eq!(
        raw(&mut ch, "01A4040008A000000333010101"),
        "6881",
        "logical channel 1"
    );
    raw(&mut ch, SELECT_SSSE);
    assert_eq!(raw(&mut ch, "00FE000000"), "6D00");
    assert_eq!(
        raw(&mut ch, "80B2070000"),
        "6E00",
        "READ RECORD with proprietary class"
    );
}

#[test]
fn selection_errors() {
    let (mut ch, _) = common::demo();
    assert_eq!(raw(&mut ch, "00A4040005A00000099900"), "6A82");
    assert_eq!(raw(&mut ch, "00A4040200"), "6700", "empty DF name");
    assert_eq!(raw(&mut ch, "00A4047008A000000333010101"), "6A86", "bad P2");
    assert_eq!(
        raw(&mut ch, "00A4040208A000000333010101"),
        "6A82",
        "no next occurrence"
    );
    raw(&mut ch, SELECT_SSSE);
    assert_eq!(raw(&mut ch, "00A4020C02EF99"), "6A82");
    assert_eq!(raw(&mut ch, "00A4020C01EF"), "6700");
    assert_eq!(raw(&mut ch, "00A4090C02EF05"), "6A86");
}

#[test]
fn records_by_identifier_number_and_sfi() {
    let (mut ch, _) = common::demo();
    raw(&mut ch, SELECT_SSSE);
    assert_eq!(raw(&mut ch, "00B2070000"), "6986", "no current EF yet");
    assert_eq!(
        raw(&mut ch, "00B2072800"),
        "0709413031323334353637 9000".replace(' ', ""),
        "SFI 05 in P2"
    );
    raw(&mut ch, "00A4020C02EF05");
    assert_eq!(raw(&mut ch, "00B2070000"), "07094130313233343536379000");
    assert_eq!(
        raw(&mut ch, "00B2070400"),
        "07094130313233343536379000",
        "record number 7"
    );
    assert_eq!(raw(&mut ch, "00B2000400"), "6A86", "record number 0");
    assert_eq!(raw(&mut ch, "00B2080400"), "6A83");
    assert_eq!(
        raw(&mut ch, "00B2080000"),
        "6A83",
        "identifier 08 is in EF06"
    );
    assert_eq!(
        raw(&mut ch, "00B2070100"),
        "6A86",
        "unsupported reference mode"
    );
    assert_eq!(raw(&mut ch, "00B2077800"), "6A82", "unknown SFI");
    assert_eq!(
        raw(&mut ch, "00B2070005"),
        "6C0B",
        "Le too short: exact length in 6Cxx"
    );
}

#[test]
fn get_response_delivers_held_data_in_pieces() {
    let (mut ch, _) = common::demo();
    let first = raw(&mut ch, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF");
    assert_eq!(first, "611A");
    let part = raw(&mut ch, "00C0000010");
    assert_eq!(part.len(), 2 * 16 + 4);
    assert!(part.starts_with("6F18840F7378"), "{part}");
    assert!(part.ends_with("610A"), "{part}");
    let rest = raw(&mut ch, "00C0000000");
    assert!(rest.ends_with("9000") && rest.len() == 2 * 10 + 4, "{rest}");
    assert_eq!(raw(&mut ch, "00C0000000"), "6985", "nothing left");
}

#[test]
fn command_chaining_accumulates_and_checks_the_chain() {
    let (mut ch, _) = common::demo();
    // SELECT by name split in two: 7378312E7368 then 2EC9E7BBE1B1A3D5CF.
    assert_eq!(raw(&mut ch, "10A40400067378312E7368"), "9000");
    let r = raw(&mut ch, "00A40400092EC9E7BBE1B1A3D5CF00");
    assert!(r.starts_with("6F18") && r.ends_with("9000"), "{r}");
    assert_eq!(raw(&mut ch, "10A40400067378312E7368"), "9000");
    assert_eq!(
        raw(&mut ch, "00B2070000"),
        "6883",
        "a different command ends the chain"
    );
}

#[test]
fn pin_errors() {
    let (mut ch, _) = common::demo();
    raw(&mut ch, SELECT_SSSE);
    assert_eq!(
        raw(&mut ch, "0020000000"),
        "63C3",
        "VERIFY without data reports tries"
    );
    assert_eq!(raw(&mut ch, "002000000112"), "6700", "PIN field of 1 byte");
    assert_eq!(
        raw(&mut ch, "00200000031234AB"),
        "6A80",
        "non-digit nibbles"
    );
    assert_eq!(raw(&mut ch, "0020000103123456"), "6A86");
    assert_eq!(raw(&mut ch, "0020000003654321"), "63C2");
    assert_eq!(raw(&mut ch, "0020000003654321"), "63C1");
    assert_eq!(raw(&mut ch, "0020000003654321"), "6983");
    assert_eq!(
        raw(&mut ch, "0020000003123456"),
        "6983",
        "blocked even for the right PIN"
    );
    assert_eq!(
        raw(&mut ch, "805E010007123456FF654321"),
        "6983",
        "CHANGE PIN refused when blocked"
    );
}

#[test]
fn authentication_sequence_errors() {
    let (mut ch, _) = common::demo();
    raw(&mut ch, SELECT_SSSE);
    assert_eq!(
        raw(&mut ch, "008200001000112233445566778899AABBCCDDEEFF"),
        "6984",
        "no challenge"
    );
    assert!(raw(&mut ch, "0084000008").ends_with("9000"));
    assert_eq!(
        raw(&mut ch, "008200001000112233445566778899AABBCCDDEEFF"),
        "6300",
        "wrong cryptogram"
    );
    assert_eq!(
        raw(&mut ch, "008200001000112233445566778899AABBCCDDEEFF"),
        "6984",
        "challenge used once"
    );
    assert_eq!(raw(&mut ch, "0084000007"), "6700");
    assert_eq!(
        raw(&mut ch, "00880000051122334455"),
        "6700",
        "SM4 challenge of 5 bytes"
    );
    assert!(raw(&mut ch, "0088000008112233445566778800").ends_with("9000"));
    assert_eq!(
        raw(&mut ch, "842C00000712345601020304"),
        "6984",
        "unblock without challenge"
    );
}

#[test]
fn update_record_needs_external_authentication() {
    let (mut ch, _) = common::demo();
    raw(&mut ch, SELECT_SSSE);
    raw(&mut ch, "00A4010C02DF01");
    raw(&mut ch, "00A4020C02EF15");
    assert_eq!(
        raw(&mut ch, "00DC0104120110000102030405060708090A0B0C0D0E0F"),
        "6982"
    );
    assert_eq!(
        raw(&mut ch, "00B2010400"),
        "6982",
        "DF records need the PIN"
    );
}

#[test]
fn pboc_sequence_errors() {
    let (mut ch, _) = common::demo();
    raw(&mut ch, SELECT_PBOC);
    let cdol1 = "00".repeat(52);
    assert_eq!(
        raw(&mut ch, &format!("80AE800034{cdol1}00")),
        "6985",
        "GENERATE AC before GPO"
    );
    assert_eq!(
        raw(&mut ch, "0082000A0A00112233445566773030"),
        "6985",
        "EXTERNAL AUTHENTICATE before GAC"
    );
    assert_eq!(
        raw(&mut ch, "80A8000002830000"),
        "6700",
        "PDOL data of wrong length"
    );
    assert_eq!(
        raw(&mut ch, "80A800000D830A010000000001000156015600"),
        "6700",
        "83 length disagrees with Lc"
    );
    assert_eq!(raw(&mut ch, "80A80100"), "6A86");
    assert!(raw(&mut ch, "80A800000D830B010000000001000156015600").ends_with("9000"));
    assert_eq!(
        raw(&mut ch, &format!("80AEC00034{cdol1}00")),
        "6A86",
        "RFU cryptogram type"
    );
    assert_eq!(
        raw(&mut ch, "80AE800005000000000000"),
        "6700",
        "CDOL1 data too short"
    );
    assert!(raw(&mut ch, &format!("80AE800034{cdol1}00")).ends_with("9000"));
    assert_eq!(
        raw(&mut ch, "841E000004AABBCCDD"),
        "6988",
        "script with a bad MAC"
    );
    assert_eq!(
        raw(&mut ch, "841E000000"),
        "6987",
        "script command without its MAC"
    );
    assert_eq!(raw(&mut ch, "80CA9F7F00"), "6A88", "unknown GET DATA tag");
    assert_eq!(raw(&mut ch, "80CA9F3600"), "9F360200019000");
    assert_eq!(raw(&mut ch, "00B2011C00"), "6A82", "SFI 3 does not exist");
    assert_eq!(raw(&mut ch, "00B2031400"), "6A83");
}

#[test]
fn unpowered_card_and_power_cycle() {
    let (mut ch, _) = common::demo();
    ch.card_mut().power_off();
    assert_eq!(raw(&mut ch, SELECT_SSSE), "6F00");
    ch.card_mut().power_on();
    assert!(raw(&mut ch, SELECT_SSSE).ends_with("9000"));
}

#[test]
fn contact_pse_lists_the_debit_application() {
    let (mut ch, _) = common::demo();
    let fci = raw(&mut ch, "00A404000E315041592E5359532E444446303100");
    assert!(
        fci.contains("880101") && fci.ends_with("9000"),
        "FCI names SFI 1: {fci}"
    );
    let rec = raw(&mut ch, "00B2010C00");
    assert!(
        rec.starts_with("70") && rec.contains("4F08A000000333010101"),
        "{rec}"
    );
    assert_eq!(raw(&mut ch, "00B2020C00"), "6A83");
}

/// EF06 UPDATE RECORD with secure messaging (`04 DC`): a fresh challenge for each, the MAC of
/// `hsm_sim::card_crypto::ssse_update_record_mac` under the line-protection key, EF06 only.
#[test]
fn ef06_update_under_line_protection_status_words() {
    use card_apdu::issuer::IssuerSim;
    use card_apdu::kiosk::ssse::SsseBackend;
    let (mut ch, mut issuer): (_, IssuerSim) = common::demo();
    raw(&mut ch, SELECT_SSSE);
    let cic = {
        raw(&mut ch, "00A4020C02EF05");
        let r = raw(&mut ch, "00B2010000");
        r[4..36].to_owned()
    };
    raw(&mut ch, "00A4020C02EF06");
    // Record 0A (sex) = "2": 0A 01 32.
    assert_eq!(
        raw(&mut ch, "04DC0A00070A013200000000"),
        "6984",
        "no challenge"
    );
    let challenge = raw(&mut ch, "0084000008");
    let challenge = hex::decode(&challenge[..16]).expect("hex");
    let mac = issuer
        .update_record_mac(&cic, &challenge, [0x0A, 0x00], &[0x0A, 0x01, 0x32])
        .expect("mac");
    let mut bad = mac;
    bad[0] ^= 0x01;
    let apdu = |m: [u8; 4]| format!("04DC0A00070A0132{}", hex::encode_upper(m));
    assert_eq!(
        raw(&mut ch, &apdu(bad)),
        "6988",
        "a MAC that does not verify"
    );
    assert_eq!(raw(&mut ch, "00B20A0000"), "0A01319000", "unchanged");
    assert_eq!(raw(&mut ch, &apdu(mac)), "6984", "the challenge was used");
    let challenge = raw(&mut ch, "0084000008");
    let challenge = hex::decode(&challenge[..16]).expect("hex");
    let mac = issuer
        .update_record_mac(&cic, &challenge, [0x0A, 0x00], &[0x0A, 0x01, 0x32])
        .expect("mac");
    assert_eq!(raw(&mut ch, &apdu(mac)), "9000");
    assert_eq!(raw(&mut ch, "00B20A0000"), "0A01329000", "written");
    assert_eq!(raw(&mut ch, &apdu(mac)), "6984", "no replay");
    // EF05 (card data) is never written this way.
    raw(&mut ch, "00A4020C02EF05");
    raw(&mut ch, "0084000008");
    assert_eq!(raw(&mut ch, "04DC01000701013200000000"), "6982");
}
