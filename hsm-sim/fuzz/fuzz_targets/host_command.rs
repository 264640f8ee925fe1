//! Fuzz the payShield host-command path: frame splitting, request decoding and command
//! execution on the software HSM must never panic, whatever the bytes.
//! Run: `cd hsm-sim/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run host_command` (libFuzzer), or
//! `cargo run -p hsm-sim-fuzz --bin host_command -- --campaign 60` (stable, see `fuzz-replay`).
#![cfg_attr(fuzzing, no_main)]

use std::sync::OnceLock;

use hsm_sim::codec::{split_frame, Request, Response};
use hsm_sim::commands::execute;
use hsm_sim::SoftHsm;

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

fuzz_replay::fuzz_target!(|data| {
    let _ = split_frame(data);
    let _ = Response::decode(data, 4);
    if let Ok(req) = Request::decode(data, 4) {
        let _ = runtime().block_on(execute(hsm(), req.command, &req.body));
    }
});
