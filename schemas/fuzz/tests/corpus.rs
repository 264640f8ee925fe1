//! Every fuzz target of this crate builds on stable and replays its corpus
//! (`corpus/<target>/`) without a panic: the targets cannot rot (`fuzz-replay`).

fuzz_replay::replays!(
    decode_ssc87,
    decode_iso87ascii,
    decode_iso87binary,
    decode_iso93ascii,
    decode_iso93binary,
    decode_post,
    decode_moov87,
    frame_binary2,
    frame_ascii4,
    frame_bcd2,
    tlv,
    settlement_event
);
