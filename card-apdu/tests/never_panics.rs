//! Property tests: parsers of wire data (APDUs, BER-TLV, DOLs, field 55, relay frames, vpcd
//! messages) and the card OS return errors or status words on any input, never panic; encoders
//! and parsers agree.

mod common;

use card_apdu::apdu::{Command, Response};
use card_apdu::{dol, emv, tlv};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn apdu_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Command::parse(&bytes);
        let _ = Response::from_bytes(&bytes);
    }

    #[test]
    fn encoded_commands_parse_back(
        header in any::<[u8; 4]>(),
        data in proptest::collection::vec(any::<u8>(), 0..400),
        ne in proptest::option::of(1usize..=65_536),
    ) {
        let cmd = Command { cla: header[0], ins: header[1], p1: header[2], p2: header[3], data, ne };
        let bytes = cmd.to_bytes().expect("encodable");
        let (parsed, case) = Command::parse(&bytes).expect("parses");
        prop_assert_eq!(case, cmd.case());
        prop_assert_eq!(parsed, cmd);
    }

    #[test]
    fn tlv_and_dol_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(tlvs) = tlv::parse_all(&bytes) {
            // Whatever parsed re-encodes to something that parses to the same tree.
            let again: Vec<u8> = tlvs.iter().flat_map(|t| t.to_vec()).collect();
            prop_assert_eq!(tlv::parse_all(&again).expect("re-parses"), tlvs);
        }
        if let Ok(entries) = dol::parse(&bytes) {
            let _ = dol::split(&entries, &bytes);
        }
        let _ = emv::ac_input_from_field55(&bytes);
    }

    #[test]
    fn relay_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut cursor = std::io::Cursor::new(bytes);
        while let Ok(Some(_)) = card_apdu::channel::relay::read_frame(&mut cursor) {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn card_answers_any_bytes_with_a_status_word(
        prefix in prop_oneof![
            Just(String::new()),
            Just("00A404000F7378312E73682EC9E7BBE1B1A3D5CF00".to_string()),
            Just("00A4040008A00000033301010100".to_string()),
        ],
        apdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..8),
    ) {
        let (mut ch, _) = common::demo();
        if !prefix.is_empty() {
            common::raw(&mut ch, &prefix);
        }
        for a in apdus {
            let r = ch.card_mut().process(&a);
            prop_assert!(r.len() >= 2);
        }
    }

    #[test]
    fn vpcd_stream_of_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        struct Io(std::io::Cursor<Vec<u8>>);
        impl std::io::Read for Io {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> { self.0.read(b) }
        }
        impl std::io::Write for Io {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { Ok(b.len()) }
            fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
        }
        let (ch, _) = common::demo();
        let mut card = ch.into_card();
        let _ = card_apdu::vpcd::serve(&mut Io(std::io::Cursor::new(bytes)), &mut card);
    }
}
