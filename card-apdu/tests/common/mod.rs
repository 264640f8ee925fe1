//! Shared test helpers: the demo card from testdata/ and its issuer.
#![allow(dead_code)]

use card_apdu::channel::memory::MemoryChannel;
use card_apdu::issuer::IssuerSim;
use card_apdu::perso::{CardProfile, PersoFile};
use card_apdu::vcard::VirtualCard;

pub const DEMO_CARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/demo-card.toml");

pub fn demo_file() -> PersoFile {
    PersoFile::load(std::path::Path::new(DEMO_CARD)).expect("demo card file")
}

/// The demo card with its SSSE algorithm and PBOC key sets adjusted by `edit` (TOML text).
pub fn card_from(text: &str) -> (MemoryChannel, IssuerSim) {
    let file = PersoFile::from_toml(text).expect("perso");
    let issuer = IssuerSim::from_perso(&file).expect("issuer");
    let card = VirtualCard::new(CardProfile::from_perso(&file).expect("profile"));
    (MemoryChannel::new(card), issuer)
}

pub fn demo() -> (MemoryChannel, IssuerSim) {
    card_from(&std::fs::read_to_string(DEMO_CARD).expect("read demo"))
}

/// The demo card as 3DES-only (SSSE 3DES, no SM4 PBOC keys).
pub fn demo_tdes() -> (MemoryChannel, IssuerSim) {
    let text = std::fs::read_to_string(DEMO_CARD).expect("read demo");
    let text = text.replace("algorithm = \"sm4\"", "algorithm = \"tdes\"");
    let start = text.find("[pboc.imk_sm4]").expect("sm4 section");
    let end = text.find("[pboc.imk_tdes]").expect("tdes section");
    let text = format!("{}{}", &text[..start], &text[end..]);
    card_from(&text)
}

/// Sends hex, returns hex of the response (data and SW).
pub fn raw(ch: &mut MemoryChannel, apdu: &str) -> String {
    use card_apdu::channel::CardChannel;
    let bytes = hex::decode(apdu.replace(' ', "")).expect("hex");
    hex::encode_upper(ch.transmit_raw(&bytes).expect("transmit"))
}
