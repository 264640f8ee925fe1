//! Shared bodies of the fuzz targets (see `../README.md`).

use bytes::BytesMut;
use schemas::events::SettlementEvent;
use schemas::iso8583::framing::{FrameCodec, LengthHeader};
use schemas::iso8583::{self, json};
use schemas::tlv;
use tokio_util::codec::Decoder;

/// Decodes with spec `name`; on success reads everything and checks re-encoding.
pub fn decode(name: &str, data: &[u8]) {
    let spec = iso8583::spec(name).expect("embedded spec");
    let Ok(msg) = spec.decode(data) else {
        return;
    };
    let _ = format!("{msg:?}");
    let _ = json::explain(&msg);
    let _ = json::to_json(&msg);
    for id in msg.fields().collect::<Vec<_>>() {
        let _ = msg.get_str(id);
        let _ = msg.get_u64(id);
        let _ = msg.get_amount(id, 2);
        for sub in ["1", "2", "25", "9F26"] {
            let _ = msg.get_path(&format!("{id}.{sub}"));
        }
    }
    let mut out = Vec::new();
    spec.encode(&msg.to_owned_message(), &mut out)
        .expect("a decoded message re-encodes");
    let again = spec.decode(&out).expect("re-encoded bytes decode");
    assert_eq!(again.mti(), msg.mti());
    for id in msg.fields() {
        assert_eq!(again.get(id).ok(), msg.get(id).ok(), "field {id}");
    }
}

/// Feeds `data` to a framer in two chunks, with and without TPDU.
pub fn frame(header: LengthHeader, data: &[u8]) {
    let max = usize::from(data.first().copied().unwrap_or(0)) * 4;
    for tpdu in [false, true] {
        let mut codec = FrameCodec::new(header).with_frame_len_max(max);
        if tpdu {
            codec = codec.with_tpdu();
        }
        let split = data.len() / 2;
        let mut buf = BytesMut::new();
        'feed: for chunk in [&data[..split], &data[split..]] {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => assert!(f.message.len() <= max),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
}

/// Parses TLV; whatever parses re-serialises to an equal object list and an equal tree.
pub fn tlv(data: &[u8]) {
    let _ = tlv::validate(data);
    if let Ok(tree) = tlv::parse_all(data) {
        let again: Vec<u8> = tree.iter().flat_map(tlv::to_bytes).collect();
        assert_eq!(tlv::parse_all(&again).expect("re-parse tree"), tree);
    }
    let Ok(objects) = tlv::objects(data).collect::<Result<Vec<_>, _>>() else {
        return;
    };
    let mut out = Vec::new();
    for t in &objects {
        tlv::write(t.tag, t.value, &mut out);
    }
    let again: Vec<_> = tlv::objects(&out)
        .collect::<Result<_, _>>()
        .expect("re-parse");
    assert_eq!(again, objects);
}

/// Parses a settlement event's JSON; what parses and validates re-serialises to JSON that parses
/// to the same event.
pub fn settlement_event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = SettlementEvent::from_json(text) else {
        return;
    };
    let _ = event.partition_key();
    let json = event.to_json().expect("a valid event serialises");
    let again = SettlementEvent::from_json(&json).expect("its own JSON parses and validates");
    assert_eq!(again, event);
}
