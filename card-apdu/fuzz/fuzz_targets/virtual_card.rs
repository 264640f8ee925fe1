//! The card OS: a sequence of APDUs (2-byte length-prefixed, as vpcd frames them) after SELECT
//! of either application must always produce a status word.
#![cfg_attr(fuzzing, no_main)]

use std::sync::OnceLock;

use card_apdu::perso::{CardProfile, PersoFile};
use card_apdu::vcard::VirtualCard;

static PERSO: OnceLock<String> = OnceLock::new();

fuzz_replay::fuzz_target!(|data| {
    let text = PERSO.get_or_init(|| include_str!("../../testdata/demo-card.toml").to_owned());
    let file = PersoFile::from_toml(text).expect("demo card");
    let mut card = VirtualCard::new(CardProfile::from_perso(&file).expect("profile"));
    card.power_on();
    let select = if data.first().is_some_and(|b| b & 1 == 0) {
        &b"\x00\xA4\x04\x00\x0Fsx1.sh.\xC9\xE7\xBB\xE1\xB1\xA3\xD5\xCF\x00"[..]
    } else {
        &b"\x00\xA4\x04\x00\x08\xA0\x00\x00\x03\x33\x01\x01\x01\x00"[..]
    };
    assert!(card.process(select).len() >= 2);
    let mut rest = data.get(1..).unwrap_or(&[]);
    while let [hi, lo, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (apdu, next) = tail.split_at(n);
        assert!(card.process(apdu).len() >= 2);
        rest = next;
    }
});
