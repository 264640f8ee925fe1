//! Property tests: no byte string can make the codec or a command panic, and well-formed
//! frames round-trip.

use hsm_sim::codec::{frame, split_frame, Request, Response};
use hsm_sim::commands::execute;
use hsm_sim::SoftHsm;
use proptest::prelude::*;

const COMMANDS: [&[u8; 2]; 39] = [
    b"NC", b"B2", b"A0", b"A4", b"A6", b"A8", b"BU", b"CA", b"CC", b"JE", b"JG", b"DA", b"DC",
    b"EA", b"EC", b"BK", b"FW", b"DE", b"DG", b"CW", b"CY", b"KQ", b"M6", b"M8", b"XA", b"XC",
    b"XE", b"XG", b"XI", b"XK", b"XM", b"XO", b"XQ", b"XR", b"XS", b"XU", b"XW", b"ZZ", b"QQ",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn frame_splitting_and_decoding_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = split_frame(&bytes);
        let _ = Request::decode(&bytes, 4);
        let _ = Response::decode(&bytes, 4);
        let _ = Request::header_of(&bytes, 4);
    }

    #[test]
    fn well_formed_frames_round_trip(header in "[0-9]{4}", cmd in "[A-Z]{2}", body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let req = Request { header: header.into_bytes(), command: [cmd.as_bytes()[0], cmd.as_bytes()[1]], body };
        let f = frame(&req.encode()).expect("frame");
        let (payload, used) = split_frame(&f).expect("ok").expect("complete");
        prop_assert_eq!(used, f.len());
        prop_assert_eq!(Request::decode(payload, 4).expect("decode"), req);
    }

    #[test]
    fn every_command_survives_arbitrary_bodies(
        idx in 0usize..COMMANDS.len(),
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let hsm = SoftHsm::with_test_lmk();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        let r = rt.block_on(execute(&hsm, *COMMANDS[idx], &body));
        if let Err(e) = r {
            prop_assert_eq!(e.code().len(), 2);
        }
    }

    #[test]
    fn commands_survive_plausible_bodies(
        idx in 0usize..COMMANDS.len(),
        body in "(U[0-9A-F]{32}|[0-9]{1,12}|[0-9A-F]{16}|;|01|48|00|FF|T|S|G)*",
    ) {
        let hsm = SoftHsm::with_test_lmk();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        let _ = rt.block_on(execute(&hsm, *COMMANDS[idx], body.as_bytes()));
    }
}
