//! Fuzz the payShield host-command path: frame splitting, request decoding and command
//! execution on the software HSM must never panic, whatever the bytes.
//! Run: `cd hsm-sim/fuzz && cargo +nightly fuzz run host_command`.
#![no_main]

use std::sync::OnceLock;

use hsm_sim::codec::{split_frame, Request, Response};
use hsm_sim::commands::execute;
use hsm_sim::SoftHsm;
use libfuzzer_sys::fuzz_target;

fn hsm() -> &'static SoftHsm {
    static H: OnceLock<SoftHsm> = OnceLock::new();
    H.get_or_init(SoftHsm::with_test_lmk)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static R: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    R.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = split_frame(data);
    let _ = Response::decode(data, 4);
    if let Ok(req) = Request::decode(data, 4) {
        let _ = runtime().block_on(execute(hsm(), req.command, &req.body));
    }
});
