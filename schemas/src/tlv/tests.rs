use super::*;

// An FCI as returned by a PBOC debit application (EMV Book 1 §11.3.4), with padding.
const FCI: &str = "6F2E8408A000000333010101A522500A50424F43204445424954870101\
9F38069F02069F3704BF0C059F4D020B0A00000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn reads_multi_byte_tags_long_lengths_and_padding() {
    let mut buf = vec![0x9F, 0x26, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x00];
    buf.extend_from_slice(&[0x82, 0x02, 0x7C, 0x00]);
    buf.extend_from_slice(&[0xFF, 0xDF, 0x81, 0x01, 0x81, 0x01, 0xAA]);
    let all: Vec<_> = objects(&buf).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].tag, 0x9F26);
    assert_eq!(all[1].value, &[0x7C, 0x00]);
    assert_eq!(all[2].tag, 0xDF8101);
    assert_eq!(all[2].value, &[0xAA]);
}

#[test]
fn padding_between_objects_is_skipped_in_the_tree() {
    let bytes = hex(FCI);
    let tlvs = parse_all(&bytes).expect("parses");
    assert_eq!(tlvs.len(), 1);
    assert_eq!(find_value(&tlvs, 0x84), Some(&hex("A000000333010101")[..]));
    assert_eq!(find_value(&tlvs, 0x9F4D), Some(&[0x0B, 0x0A][..]));
    assert_eq!(find_value(&tlvs, 0x9F38), Some(&hex("9F02069F3704")[..]));
    assert!(find(&tlvs, 0xBF0C).is_some());
    assert!(validate(&bytes).is_ok());
}

#[test]
fn constructed_objects_nest() {
    let mut inner = Vec::new();
    write(0x5A, &[0x62, 0x14], &mut inner);
    let mut outer = Vec::new();
    write(0x70, &inner, &mut outer);
    let t = objects(&outer).next().unwrap().unwrap();
    assert!(t.is_constructed());
    assert_eq!(
        find_top_level(t.value, 0x5A).unwrap(),
        Some(&[0x62, 0x14][..])
    );
    assert!(validate(&outer).is_ok());
    let tree = parse_one(&outer).unwrap();
    assert_eq!(flatten(children(&tree)), vec![(0x5A, &[0x62, 0x14][..])]);
}

#[test]
fn lengths_are_minimal_on_write_and_up_to_four_bytes_on_read() {
    let value = vec![7u8; 300];
    let bytes = encode_constructed(0x70, &[encode(0x9F4E, &value), encode(0x57, &[1, 2])]);
    assert_eq!(&bytes[..4], &[0x70, 0x82, 0x01, 0x35]);
    let tlvs = parse_all(&bytes).expect("parses");
    assert_eq!(tlvs[0].to_vec(), bytes);
    assert_eq!(find_value(&tlvs, 0x9F4E).map(<[u8]>::len), Some(300));
    let mut out = Vec::new();
    encode_len(0x80, &mut out);
    encode_len(0x1_0000, &mut out);
    assert_eq!(out, [0x81, 0x80, 0x83, 0x01, 0x00, 0x00]);
    let long = [0x9F, 0x10, 0x84, 0x00, 0x00, 0x00, 0x01, 0xAB];
    assert_eq!(find_top_level(&long, 0x9F10).unwrap(), Some(&[0xAB][..]));
    assert_eq!(parse_all(&long).unwrap().len(), 1);
}

#[test]
fn truncated_input_is_an_error_at_the_offset_where_it_ends() {
    assert_eq!(
        parse_all(&[0x5A, 0x08, 0x62, 0x12]),
        Err(TlvError::Truncated { offset: 2 })
    );
    assert_eq!(parse_all(&[0x9F]), Err(TlvError::Truncated { offset: 0 }));
    assert_eq!(
        parse_all(&[0x5A, 0x82, 0x01]),
        Err(TlvError::Truncated { offset: 1 })
    );
    assert_eq!(
        parse_all(&[0x70, 0x03, 0x5A, 0x05, 0x01]),
        Err(TlvError::Truncated { offset: 4 }),
        "offsets inside a template count from the outer buffer"
    );
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    for bad in [
        &[0x9F][..],
        &[0x9F, 0x26],
        &[0x9F, 0x26, 0x05, 1],
        &[0x5A, 0x85, 0, 0, 0, 0, 1],
        &[0x5A, 0x80],
        &[0x9F, 0xFF, 0xFF, 0x01, 0x00],
    ] {
        assert!(objects(bad).any(|r| r.is_err()), "{bad:02X?}");
        assert!(parse_all(bad).is_err(), "{bad:02X?}");
        assert!(validate(bad).is_err(), "{bad:02X?}");
    }
    assert_eq!(
        parse_all(&[0x9F, 0xFF, 0xFF, 0x01, 0x00]),
        Err(TlvError::BadTag { offset: 0 })
    );
}

#[test]
fn an_error_ends_the_iteration() {
    let mut it = objects(&[0x5A, 0x85, 0x5A, 0x01, 0x00]);
    assert!(matches!(
        it.next(),
        Some(Err(TlvError::BadLength { offset: 1 }))
    ));
    assert!(it.next().is_none());
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let mut bytes = encode(0x5A, &[1]);
    for _ in 0..20 {
        bytes = encode(0x70, &bytes);
    }
    assert_eq!(parse_all(&bytes), Err(TlvError::TooDeep));
    assert_eq!(validate(&bytes), Err(TlvError::TooDeep));
}

#[test]
fn tags_in_hex_must_be_well_formed_tag_fields() {
    assert_eq!(parse_tag("9F26"), Some(0x9F26));
    assert_eq!(parse_tag("5A"), Some(0x5A));
    assert_eq!(parse_tag("DF8101"), Some(0xDF8101));
    for bad in [
        "", "9", "9F2", "1F", "9F80", "5A01", "0001", "FF01", "9F818101", "zz",
    ] {
        assert_eq!(parse_tag(bad), None, "{bad}");
    }
}

#[test]
fn a_tags_first_byte_says_whether_it_is_constructed() {
    assert!(is_constructed(0x70));
    assert!(is_constructed(0xBF0C));
    assert!(!is_constructed(0x9F26));
    assert!(!is_constructed(0x5A));
}

#[test]
fn a_tree_that_parses_reencodes_to_bytes_that_parse_to_it() {
    // Found by libFuzzer (schemas/fuzz, target tlv): a template whose first child is a
    // primitive of 127 bytes (length `7F`), padded children after it. iso7816-tlv's own
    // `to_vec` wrote `81 7F` for that length but counted one byte for it in the template's.
    let input = hex(
        "268189817f848181000000009b00818108003a19001829042c00e60001000029042c0029042c0000\
         01000029042c03000000000000002c00080000000800000029042c00e60001000029042c00080000\
         0029042c000001000029042c00080000000029042c00080000000029042c000800000029042c0000\
         01000029042c00080000000029042c0008000000",
    );
    let tree = parse_all(&input).expect("parses");
    let again: Vec<u8> = tree.iter().flat_map(to_bytes).collect();
    assert_eq!(parse_all(&again), Ok(tree));
    // Tag 26, length 135 (81 87); the child: tag 81, length 127 in one byte (7F).
    assert_eq!(
        &again[..5],
        &[0x26, 0x81, 0x87, 0x81, 0x7F],
        "minimal lengths"
    );
}
