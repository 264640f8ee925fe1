//! Bodies of the switch's fuzz targets: the parsers of bytes the switch does not control on
//! each side. `switch_request`: an acquirer's ISO 8583 request as the pipeline reads it
//! (`switch::pipeline::request`); `issuer_answer`: what a bank sends on its link
//! (`switch::issuer::answer`, the MUX, the key-exchange field). Each must answer every input
//! with a value or an error, never a panic. Run: `cargo run -p switch-fuzz --bin <target>`
//! (replay) or `-- --campaign SECS`; with libFuzzer `RUSTC_BOOTSTRAP=1 cargo fuzz run <target>`
//! from `switch/`.

use schemas::domain::{AmountFen, InstitutionId};
use schemas::iso8583;
use switch::issuer::answer;
use switch::issuer::mux::{Delivery, Mux, MuxConfig, UnmatchedResponses};
use switch::pipeline::request::{Request, Service};
use switch::wire::network::{mac_algorithm_of, mac_algorithm_said, KeyExchangeField};

/// An acquirer's request: decoded as `ssc87`, then read by the pipeline with and without a
/// link-fixed acquirer. What it accepts keeps the rules it states.
pub fn switch_request(data: &[u8]) {
    let spec = iso8583::spec("ssc87").expect("embedded spec");
    let Ok(m) = spec.decode(data) else {
        return;
    };
    let hospital = InstitutionId::parse("3100001").expect("valid id");
    for default in [None, Some(&hospital)] {
        let Ok(r) = Request::parse(&m, default) else {
            continue;
        };
        let _ = format!("{r:?}");
        let moves_money = !matches!(
            r.service,
            Service::PersonalBalance | Service::BankBalance | Service::Reversal
        );
        assert!(
            !moves_money || r.amount_fen > AmountFen::ZERO,
            "zero amount accepted"
        );
        if r.service == Service::MedicalBill {
            let bill = r.bill.as_ref().expect("a bill payment has its bill");
            assert_eq!(
                bill.total_fen, r.amount_fen,
                "bill total differs from amount"
            );
        }
        if r.service == Service::Reversal {
            assert!(r.original.is_some(), "reversal without field 90");
        }
        if !matches!(r.service, Service::Reversal | Service::Completion) {
            assert!(r.pan.is_some(), "no PAN");
        }
    }
}

/// A bank's message on its link: decoded; a bank-originated request answered; an answer keyed,
/// copied, delivered to the request waiting under its key, and read as a bank leg's answer;
/// field 48 read as the key-exchange field and MAC algorithm.
pub fn issuer_answer(data: &[u8]) {
    let spec = answer::link_spec().expect("embedded spec");
    let Ok(msg) = answer::decode(spec, data) else {
        return;
    };
    if let Ok(f48) = msg.get_str(48) {
        let _ = mac_algorithm_said(&f48);
        let _ = mac_algorithm_of(&f48);
        let _ = KeyExchangeField::decode(&f48);
    }
    if msg.mti().is_request() {
        let _ = answer::reply_to_bank_request(spec, &msg);
        return;
    }
    let Ok((key, owned)) = answer::answer_of(spec, &msg) else {
        return;
    };
    let (tx, _unmatched) = UnmatchedResponses::channel(4);
    let bank = InstitutionId::parse("01020000").expect("valid id");
    let mux = Mux::new(bank, MuxConfig::default(), tx);
    let _waiting = mux.register(key).expect("an empty MUX registers a key");
    assert_eq!(mux.deliver(key, owned.clone()), Delivery::Matched);
    let _ = answer::leg_answer(&owned);
}
