//! The codec's API contract as the switch relies on it: masking, errors without values,
//! responses that do not echo card secrets, tertiary bitmaps, EBCDIC cp1047, and framing over
//! a real tokio stream.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader, Tpdu};
use schemas::iso8583::{self, Content, Error, FieldRef, Mti, Spec};
use tokio_util::codec::Framed;

const PAN: &str = "6214830012345678";
const TRACK2: &str = "6214830012345678=29122010000012300000";
const PIN_BLOCK: [u8; 8] = [0x3A, 0x1F, 0x88, 0x02, 0x9C, 0x44, 0x71, 0xE0];

fn ssc87_request() -> Vec<u8> {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0200").unwrap());
    m.set_str(2, PAN).unwrap();
    m.set_str(3, "190000").unwrap();
    m.set_u64(4, 12345).unwrap();
    m.set_str(7, "0611191024").unwrap();
    m.set_u64(11, 42).unwrap();
    m.set_str(14, "2912").unwrap();
    m.set_str(35, TRACK2).unwrap();
    m.set_str(41, "KIOSK001").unwrap();
    m.set_str(49, "156").unwrap();
    m.set_bytes(52, &PIN_BLOCK).unwrap();
    m.set_path("55.9F26", &[0xAB; 8]).unwrap();
    m.set_str(61, "11010519491231002X").unwrap();
    let mut wire = Vec::new();
    spec.encode(&m, &mut wire).unwrap();
    wire
}

#[test]
fn debug_and_display_mask_pan_track_pin_icc_and_expiry() {
    let spec = iso8583::spec("ssc87").unwrap();
    let wire = ssc87_request();
    let msg = spec.decode(&wire).unwrap();
    let owned = msg.to_owned_message();
    for shown in [
        format!("{msg:?}"),
        format!("{msg}"),
        format!("{owned:?}"),
        format!("{owned}"),
    ] {
        assert!(shown.contains("621483******5678"), "{shown}");
        assert!(!shown.contains(PAN), "PAN shown: {shown}");
        assert!(!shown.contains("29122010000012300000"), "track shown");
        assert!(!shown.contains("3A1F8802"), "PIN block shown");
        assert!(!shown.contains("ABABABAB"), "ICC data shown");
        assert!(!shown.contains("2912"), "expiry shown");
        assert!(
            shown.contains("110105********002X"),
            "SSN not masked as first 6 + last 4"
        );
    }
}

#[test]
fn response_echoes_keys_but_not_card_secrets() {
    let spec = iso8583::spec("ssc87").unwrap();
    let wire = ssc87_request();
    let msg = spec.decode(&wire).unwrap();
    let mut resp = msg.to_response().unwrap();
    resp.set_str(39, "00").unwrap();
    assert_eq!(resp.mti().as_str(), "0210");
    for echoed in [2, 3, 4, 7, 11, 41, 49, 61] {
        assert!(resp.has(echoed), "field {echoed} not echoed");
    }
    for dropped in [14, 35, 52, 55] {
        assert!(!resp.has(dropped), "field {dropped} echoed");
    }
    let mut out = Vec::new();
    spec.encode(&resp, &mut out).unwrap();
    assert_eq!(spec.decode(&out).unwrap().get_str(39).unwrap(), "00");
}

#[test]
fn errors_name_the_field_and_never_carry_the_value() {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0200").unwrap());
    let err = m.set_str(2, "62148300123X5678").unwrap_err();
    assert_eq!(
        err,
        Error::InvalidContent {
            at: FieldRef::field(2),
            content: Content::Numeric,
            position: 11
        }
    );
    let text = err.to_string();
    assert!(text.contains("field 2") && !text.contains("6214"), "{text}");

    let mut wire = ssc87_request();
    let at = wire.len() - 10; // inside field 61 (the last field), the social security number
    wire[at] = b'#';
    let err = spec.decode(&wire).unwrap_err();
    assert!(matches!(err, Error::InvalidContent { at, .. } if at == FieldRef::field(61)));
    assert!(!err.to_string().contains("110105"), "{err}");
    assert!(!format!("{err:?}").contains("110105"), "{err:?}");
}

#[test]
fn setters_pad_fixed_fields_and_enforce_lengths_and_dates() {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0800").unwrap());
    m.set_u64(11, 7).unwrap();
    assert_eq!(m.get(11).unwrap(), b"000007");
    m.set_str(41, "T1").unwrap();
    assert_eq!(m.get(41).unwrap(), b"T1      ");
    assert!(matches!(
        m.set_str(2, &"1".repeat(20)),
        Err(Error::TooLong {
            len: 20,
            max: 19,
            ..
        })
    ));
    assert!(matches!(
        m.set_bytes(52, &[1, 2, 3]),
        Err(Error::WrongLength { .. })
    ));
    assert!(matches!(
        m.set_str(7, "1332000000"),
        Err(Error::InvalidDate { .. })
    ));
    m.set_str(5, "1").unwrap();
    assert_eq!(m.get(5).unwrap(), b"000000000001");
    assert!(matches!(
        m.set_str(9, "1"),
        Err(Error::UndefinedField { .. })
    ));
}

#[test]
fn missing_mandatory_field_is_refused_on_encode_too() {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0800").unwrap());
    m.set_u64(11, 1).unwrap().set_str(70, "301").unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        spec.encode(&m, &mut out),
        Err(Error::MissingField { at, .. }) if at == FieldRef::field(7)
    ));
}

#[test]
fn a_request_missing_a_mandatory_field_can_still_be_read_to_answer_it_with_30() {
    let spec = iso8583::spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0200").unwrap());
    m.set_u64(11, 77).unwrap().set_str(41, "KIOSK009").unwrap();
    let mut wire = Vec::new();
    spec.encode_unchecked(&m, &mut wire).unwrap();
    assert!(matches!(
        spec.decode(&wire),
        Err(Error::MissingField { .. })
    ));
    let lenient = spec.decode_unchecked(&wire).unwrap();
    assert_eq!(lenient.get_u64(11).unwrap(), 77);
    assert_eq!(spec.peek_mti(&wire), Some(Mti::new("0200").unwrap()));
    let mut answer = lenient.to_response().unwrap();
    answer.set_str(39, "30").unwrap();
    let mut out = Vec::new();
    assert!(
        spec.encode(&answer, &mut out).is_err(),
        "0210 rules need 3, 4, 7 ..."
    );
    spec.encode_unchecked(&answer, &mut out).unwrap();
    let back = spec.decode_unchecked(&out).unwrap();
    assert_eq!(back.mti().as_str(), "0210");
    assert_eq!(back.get_str(39).unwrap(), "30");
    // Garbage: no MTI to read, and a malformed field stays an error even without rules.
    assert_eq!(spec.peek_mti(b"02x0"), None);
    assert!(spec.decode_unchecked(&wire[..wire.len() - 3]).is_err());
}

#[test]
fn tertiary_bitmap_carries_fields_129_to_192() {
    let spec = Spec::from_toml_str(
        r#"
        name = "tertiary"
        [bitmap]
        encoding = "hex"
        tertiary = true
        [fields]
        3 = { f = "n 6" }
        70 = { f = "n 3" }
        130 = { f = "ans..20" }
        192 = { f = "b 2" }
        "#,
    )
    .unwrap();
    let mut m = spec.message(Mti::new("1800").unwrap());
    m.set_str(3, "000000").unwrap();
    m.set_str(130, "third bitmap").unwrap();
    m.set_bytes(192, &[0xBE, 0xEF]).unwrap();
    let mut wire = Vec::new();
    spec.encode(&m, &mut wire).unwrap();
    // MTI, primary (bit 1), secondary (bit 65 = tertiary follows, no 65-128 data), tertiary.
    assert_eq!(&wire[4..20], b"A000000000000000");
    assert_eq!(&wire[20..36], b"8000000000000000");
    assert_eq!(&wire[36..52], b"4000000000000001");
    let d = spec.decode(&wire).unwrap();
    assert_eq!(d.fields().collect::<Vec<_>>(), vec![3, 130, 192]);
    assert_eq!(d.get_str(130).unwrap(), "third bitmap");
    assert_eq!(&*d.get(192).unwrap(), &[0xBE, 0xEF]);
}

#[test]
fn ebcdic_cp1047_text_and_ebcdic_length_prefixes() {
    let spec = Spec::from_toml_str(
        r#"
        name = "mainframe"
        [encoding]
        mti = "cp1047"
        text = "cp1047"
        numeric = "cp1047"
        prefix = "ebcdic"
        [fields]
        43 = { f = "ans..40" }
        "#,
    )
    .unwrap();
    let mut m = spec.message(Mti::new("0800").unwrap());
    m.set_str(43, "[A]").unwrap();
    let mut wire = Vec::new();
    spec.encode(&m, &mut wire).unwrap();
    assert_eq!(&wire[..4], &[0xF0, 0xF8, 0xF0, 0xF0]);
    // LL = F0 F3, then cp1047 '[' = AD, 'A' = C1, ']' = BD (cp037 would be BA C1 BB).
    assert_eq!(&wire[12..], &[0xF0, 0xF3, 0xAD, 0xC1, 0xBD]);
    assert_eq!(spec.decode(&wire).unwrap().get_str(43).unwrap(), "[A]");
}

#[test]
fn a_spec_file_on_disk_can_extend_an_embedded_spec() {
    let dir = std::env::temp_dir().join(format!("iso8583-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ssc87_hex.toml");
    std::fs::write(
        &path,
        "name = \"ssc87_hex\"\nextends = \"ssc87\"\n[bitmap]\nencoding = \"hex\"\n",
    )
    .unwrap();
    let spec = Spec::from_file(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let mut m = spec.message(Mti::new("0800").unwrap());
    m.set_str(7, "0611191024")
        .unwrap()
        .set_u64(11, 1)
        .unwrap()
        .set_str(70, "001")
        .unwrap();
    let mut wire = Vec::new();
    spec.encode(&m, &mut wire).unwrap();
    // bit 1 (secondary bitmap: field 70), 7, 11
    assert_eq!(&wire[4..20], b"8220000000000000");
    assert!(Spec::from_file("/nonexistent/x.toml").is_err());
}

#[tokio::test]
async fn frames_flow_over_a_tokio_stream_with_tpdu() {
    let spec = iso8583::spec("ssc87").unwrap();
    let (client, server) = tokio::io::duplex(4096);
    let codec = FrameCodec::new(LengthHeader::Binary2).with_tpdu();
    let mut client = Framed::new(client, codec.clone());
    let mut server = Framed::new(server, codec);
    let tpdu = Tpdu([0x60, 0x00, 0x03, 0x00, 0x00]);
    client
        .send(Frame {
            tpdu: Some(tpdu),
            message: Bytes::from(ssc87_request()),
        })
        .await
        .unwrap();
    let frame = server.next().await.unwrap().unwrap();
    assert_eq!(frame.tpdu, Some(tpdu));
    let msg = spec.decode(&frame.message).unwrap();
    assert_eq!(msg.get_u64(11).unwrap(), 42);
    let mut resp = msg.to_response().unwrap();
    resp.set_str(39, "00").unwrap();
    let mut out = bytes::BytesMut::new();
    spec.encode(&resp, &mut out).unwrap();
    server
        .send(Frame {
            tpdu: Some(tpdu.reply()),
            message: out.freeze(),
        })
        .await
        .unwrap();
    let back = client.next().await.unwrap().unwrap();
    assert_eq!(back.tpdu, Some(Tpdu([0x60, 0x00, 0x00, 0x00, 0x03])));
    assert_eq!(spec.decode(&back.message).unwrap().mti().as_str(), "0210");
}

#[tokio::test]
async fn an_oversized_frame_ends_the_stream_with_an_error() {
    let (mut client, server) = tokio::io::duplex(4096);
    let mut server = Framed::new(
        server,
        FrameCodec::new(LengthHeader::Ascii4).with_frame_len_max(512),
    );
    tokio::io::AsyncWriteExt::write_all(&mut client, b"9999")
        .await
        .unwrap();
    assert!(server.next().await.unwrap().is_err());
}
