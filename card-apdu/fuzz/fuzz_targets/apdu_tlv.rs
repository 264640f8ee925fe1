//! Host-side parsers of card data: APDUs, BER-TLV, DOLs, field 55, relay frames.
#![cfg_attr(fuzzing, no_main)]

fuzz_replay::fuzz_target!(|data| {
    let _ = card_apdu::apdu::Command::parse(data);
    let _ = card_apdu::apdu::Response::from_bytes(data);
    if let Ok(tlvs) = card_apdu::tlv::parse_all(data) {
        let again: Vec<u8> = tlvs.iter().flat_map(card_apdu::tlv::to_bytes).collect();
        assert!(card_apdu::tlv::parse_all(&again).is_ok());
    }
    if let Ok(entries) = card_apdu::dol::parse(data) {
        let _ = card_apdu::dol::split(&entries, data);
    }
    let _ = card_apdu::emv::ac_input_from_field55(data);
    let mut cursor = std::io::Cursor::new(data);
    while let Ok(Some(_)) = card_apdu::channel::relay::read_frame(&mut cursor) {}
});
