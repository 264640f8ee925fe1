//! Published ISO 8583 vectors: jPOS packager test messages (ISO87/ISO93 ASCII and binary,
//! Postilion) and moov-io's 1987 messages, decoded with our specs and re-encoded byte for byte.
//! The vectors are copied into `schemas/testdata/` (provenance in its README); a test checks
//! the copies against `../shared/vectors` so they cannot drift.

use schemas::iso8583::{self, Content, Error, FieldRef, Message, Spec};

fn testdata(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/").to_owned() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `(id, value bytes)` of each `<field>` of a jPOS XML message (binary fields hex-decoded).
/// Only top-level fields: nested `<isomsg id=...>` blocks are returned separately by id.
type Fields = Vec<(u16, Vec<u8>)>;

fn xml_fields(xml: &str) -> (Fields, Vec<(u16, Fields)>) {
    let mut top = Vec::new();
    let mut nested: Vec<(u16, Fields)> = Vec::new();
    let mut depth = 0;
    for line in xml.lines() {
        let line = line.trim();
        if line.starts_with("<isomsg") {
            depth += 1;
            if let Some(id) = attr(line, "id") {
                nested.push((id.parse().unwrap(), Vec::new()));
            }
            continue;
        }
        if line.starts_with("</isomsg") {
            depth -= 1;
            continue;
        }
        if !line.starts_with("<field") {
            continue;
        }
        let id: u16 = attr(line, "id").unwrap().parse().unwrap();
        let value = attr(line, "value").unwrap();
        let bytes = if attr(line, "type").as_deref() == Some("binary") {
            hex(&value)
        } else {
            value.into_bytes()
        };
        if depth > 1 {
            nested.last_mut().unwrap().1.push((id, bytes));
        } else {
            top.push((id, bytes));
        }
    }
    (top, nested)
}

fn attr(line: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = line.find(&key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Decodes, compares with the XML values, and re-encodes to identical bytes.
fn check_jpos(spec_name: &str, bin: &str, xml: &str, exceptions: &[(u16, &[u8])]) {
    let spec = iso8583::spec(spec_name).unwrap();
    let wire = testdata(bin);
    let msg = spec.decode(&wire).unwrap_or_else(|e| panic!("{bin}: {e}"));
    let (fields, _) = xml_fields(&String::from_utf8(testdata(xml)).unwrap());
    let mut expected_ids = Vec::new();
    for (id, value) in fields {
        if id == 0 {
            assert_eq!(msg.mti().as_str().as_bytes(), value.as_slice(), "{bin} MTI");
            continue;
        }
        expected_ids.push(id);
        let got = msg.get(id).unwrap_or_else(|e| panic!("{bin}: {e}"));
        let want = exceptions
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(value.as_slice(), |(_, v)| v);
        assert_eq!(&*got, want, "{bin} field {id}");
    }
    assert_eq!(
        msg.fields().collect::<Vec<_>>(),
        expected_ids,
        "{bin} field set"
    );
    let mut out = Vec::new();
    spec.encode(&msg.to_owned_message(), &mut out).unwrap();
    assert_eq!(out, wire, "{bin} re-encoded");
}

#[test]
fn jpos_iso87_ascii_packager_vector_decodes_to_iso87_xml_and_reencodes() {
    check_jpos("iso87ascii", "ISO87APackager.bin", "ISO87.xml", &[]);
}

#[test]
fn jpos_iso87_binary_packager_vector_decodes_to_iso87_xml_and_reencodes() {
    check_jpos("iso87binary", "ISO87BPackager.bin", "ISO87.xml", &[]);
}

#[test]
fn jpos_iso93_ascii_packager_vector_decodes_to_iso93_xml_and_reencodes() {
    check_jpos("iso93ascii", "ISO93APackager.bin", "ISO93.xml", &[]);
}

#[test]
fn jpos_iso93_binary_packager_vector_decodes_to_iso93_xml_and_reencodes() {
    // ISO93.xml puts "EFGH" in field 56 (n..35). jPOS's BCD packer turns each letter into
    // (c - '0') nibbles, so the bytes on the wire are 56 78 and no decoder can give the
    // letters back: the field decodes to the digits actually sent.
    check_jpos(
        "iso93binary",
        "ISO93BPackager.bin",
        "ISO93.xml",
        &[(56, b"5678")],
    );
}

#[test]
fn postilion_0620_decodes_field_127_sub_fields_and_reencodes() {
    let spec = iso8583::spec("post").unwrap();
    let wire = testdata("post.bin");
    let msg = spec.decode(&wire).unwrap();
    let (fields, nested) = xml_fields(&String::from_utf8(testdata("post.xml")).unwrap());
    for (id, value) in fields {
        if id == 0 {
            assert_eq!(msg.mti().as_str().as_bytes(), value.as_slice());
        } else {
            assert_eq!(&*msg.get(id).unwrap(), value.as_slice(), "field {id}");
        }
    }
    let (parent, subs) = &nested[0];
    assert_eq!(*parent, 127);
    for (sub, value) in subs {
        let path = format!("127.{sub}");
        assert_eq!(&*msg.get_path(&path).unwrap(), value.as_slice(), "{path}");
    }
    assert_eq!(msg.get_path_str("127.2").unwrap(), "SWITCH_KEY");
    let inner = msg.sub_message(127).unwrap();
    assert_eq!(inner.fields().collect::<Vec<_>>(), vec![2, 25]);
    let mut out = Vec::new();
    spec.encode(&msg.to_owned_message(), &mut out).unwrap();
    assert_eq!(out, wire);
}

// ---------------------------------------------------------------------------------------------
// moov-io/iso8583 (2020 "Describe" spec), translated to `moov87` and its encoding variants.

fn moov(spec_name: &str, file: &str) -> (&'static Spec, Vec<u8>) {
    (
        iso8583::spec(spec_name).unwrap(),
        testdata(&format!("moov/{file}")),
    )
}

fn assert_reencodes(spec: &Spec, wire: &[u8], file: &str) -> Vec<u16> {
    let msg: Message<'_> = spec.decode(wire).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = Vec::new();
    spec.encode(&msg.to_owned_message(), &mut out)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(out, wire, "{file} re-encoded");
    msg.fields().collect()
}

#[test]
fn moov_valid_messages_decode_and_reencode_with_the_default_encoding() {
    for file in [
        "financial_transaction_message.dat",
        "financial_transaction_message_response.dat",
        "iso_reversal_message.dat",
        "iso_reversal_message_response.dat",
        "iso_reversal_repeat_message.dat",
        "iso_reversal_repeat_message_response.dat",
        "iso_reversal_message_advice.dat",
        "network_management_message.dat",
        "network_management_message_response.dat",
        "network_management_message_with_track.dat",
    ] {
        let (spec, wire) = moov("moov87", file);
        assert_reencodes(spec, &wire, file);
    }
}

#[test]
fn moov_reversal_matches_its_json_rendering() {
    let (spec, wire) = moov("moov87", "iso_reversal_message.dat");
    let msg = spec.decode(&wire).unwrap();
    assert_eq!(msg.mti().as_str(), "0400");
    assert_eq!(msg.get_str(2).unwrap(), "1111111110000000000");
    assert_eq!(msg.get_str(32).unwrap(), "");
    assert_eq!(msg.get_str(42).unwrap(), "00003430003948 ");
    assert_eq!(
        msg.get_str(90).unwrap(),
        "020000331609080645190000000020000000000000"
    );
    assert_eq!(msg.get_path_str("90.2").unwrap(), "003316");
    assert_eq!(msg.get_u64(63).ok(), None, "field 63 is ans, not n");
    assert_eq!(msg.get_str(63).unwrap(), "132");
}

#[test]
fn moov_encoding_variants_decode_and_reencode() {
    for (spec, file, field) in [
        ("moov87_hexlen", "message_with_hex_length.dat", 32),
        ("moov87_bcdlen", "message_with_hex_bcd.dat", 48),
        ("moov87_rbcdlen", "message_with_hex_rbcd.dat", 48),
        ("moov87_rbcdlen", "message_with_indicate_numeric.dat", 28),
        ("moov87_numbcd", "message_with_number_bcd_encoding.dat", 12),
        ("moov87_numrbcd", "message_with_number_bcd_encoding.dat", 12),
        (
            "moov87_ebcdic",
            "message_with_character_ebcdic_encoding.dat",
            42,
        ),
    ] {
        let (spec, wire) = moov(spec, file);
        let present = assert_reencodes(spec, &wire, file);
        assert!(present.contains(&field), "{file}: field {field}");
    }
    let (spec, wire) = moov(
        "moov87_ebcdic",
        "message_with_character_ebcdic_encoding.dat",
    );
    assert_eq!(
        spec.decode(&wire).unwrap().get_str(42).unwrap(),
        "ABCDEFGHIJKLMNO"
    );
    let (spec, wire) = moov("moov87_rbcdlen", "message_with_indicate_numeric.dat");
    assert_eq!(spec.decode(&wire).unwrap().get_str(28).unwrap(), "C0000000");
}

#[test]
fn moov_advice_without_field_32_is_rejected_as_missing_field() {
    let (spec, wire) = moov("moov87", "iso_reversal_message_advice_missing_field.dat");
    assert!(matches!(
        spec.decode(&wire),
        Err(Error::MissingField { at, .. }) if at == FieldRef::field(32)
    ));
}

#[test]
fn moov_advice_with_expiry_date_is_rejected_as_unexpected_field() {
    let (spec, wire) = moov("moov87", "iso_reversal_message_advice_unexpected_field.dat");
    assert!(matches!(
        spec.decode(&wire),
        Err(Error::UnexpectedField { at, .. }) if at == FieldRef::field(14)
    ));
}

#[test]
fn moov_reversal_with_impossible_date_is_rejected_as_bad_date() {
    let (spec, wire) = moov("moov87", "iso_reversal_message_error_date.dat");
    // Field 13 (local transaction date, MMDD) reads 9099.
    assert_eq!(
        spec.decode(&wire).unwrap_err(),
        Error::InvalidDate {
            at: FieldRef::field(13),
            format: "MMDD"
        }
    );
}

#[test]
fn moov_error_message_is_a_truncated_reversal() {
    let (spec, wire) = moov("moov87", "error_message.dat");
    assert!(matches!(
        spec.decode(&wire),
        Err(Error::Truncated { at, .. }) if at == FieldRef::field(55)
    ));
}

#[test]
fn moov_amount_with_sign_f_is_rejected_as_bad_numeric() {
    let (spec, wire) = moov("moov87_rbcdlen", "message_with_error_indicate_numeric.dat");
    assert_eq!(
        spec.decode(&wire).unwrap_err(),
        Error::InvalidContent {
            at: FieldRef::field(28),
            content: Content::SignedAmount,
            position: 0
        }
    );
}

#[test]
fn moov_track_with_letters_outside_the_track_set_is_rejected_as_bad_track() {
    let (spec, wire) = moov("moov87", "network_management_message_with_error_track.dat");
    assert!(matches!(
        spec.decode(&wire),
        Err(Error::InvalidContent { at, content: Content::Track, .. }) if at == FieldRef::field(35)
    ));
}

#[test]
fn testdata_copies_match_the_shared_vectors() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/iso8583/");
    for (copy, original) in [
        ("ISO87APackager.bin", "jpos/ISO87APackager.bin"),
        ("ISO87BPackager.bin", "jpos/ISO87BPackager.bin"),
        ("ISO93APackager.bin", "jpos/ISO93APackager.bin"),
        ("ISO93BPackager.bin", "jpos/ISO93BPackager.bin"),
        ("ISO87.xml", "jpos/ISO87.xml"),
        ("ISO93.xml", "jpos/ISO93.xml"),
        ("post.bin", "jpos/post.bin"),
        ("post.xml", "jpos/post.xml"),
        (
            "moov/iso_reversal_message.dat",
            "moov/iso_reversal_message.dat",
        ),
        (
            "moov/message_with_hex_bcd.dat",
            "moov/message_with_hex_bcd.dat",
        ),
    ] {
        let shared = std::fs::read(format!("{root}{original}")).unwrap_or_else(|e| {
            panic!("shared vectors must sit beside the checkout: {original}: {e}")
        });
        assert_eq!(testdata(copy), shared, "{copy}");
    }
}
