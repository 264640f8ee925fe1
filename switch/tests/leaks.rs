//! No clear card data in `Debug` output or the demo's description (issue 24, finding 8): a
//! PAN shows its first six and last four digits, a PIN not at all.

use card_apdu::issuer::ScriptCommand;
use hsm_sim::card_crypto::CardAlgorithm;
use hsm_sim::hsm::{ArpcMethod, ArqcRequest, PinBlockIn};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use switch::sim::world::DemoWorld;

const PAN: &str = "6288660200000017";
const MASKED: &str = "628866******0017";

#[test]
fn debug_of_a_pin_block_in_masks_the_pan() {
    let p = PinBlockIn {
        block: EncryptedPinBlock::from_hex("0123456789ABCDEF").unwrap(),
        format: PinBlockFormat::Iso0,
        pan: PAN.to_owned(),
    };
    let shown = format!("{p:?}");
    assert!(!shown.contains(PAN), "{shown}");
    assert!(shown.contains(MASKED), "{shown}");
}

#[test]
fn debug_of_an_arqc_request_masks_the_pan() {
    let world = DemoWorld::new(1).unwrap();
    let r = ArqcRequest {
        algorithm: CardAlgorithm::Tdes,
        imk_ac: world.keys.issuer.imk_ac_tdes.clone().unwrap(),
        pan: PAN.to_owned(),
        psn: "00".to_owned(),
        atc: [0, 1],
        transaction_data: vec![0; 8],
        arqc: [0; 8],
        arpc: ArpcMethod::Method1 { arc: *b"00" },
    };
    let shown = format!("{r:?}");
    assert!(!shown.contains(PAN), "{shown}");
    assert!(shown.contains(MASKED), "{shown}");
}

#[test]
fn debug_of_a_pin_change_script_hides_the_pin() {
    let shown = format!("{:?}", ScriptCommand::PinChange("8642".to_owned()));
    assert!(!shown.contains("8642"), "{shown}");
    assert!(shown.starts_with("PinChange"), "{shown}");
}

#[test]
fn the_demo_description_names_insurance_plainly() {
    let text = switch::sim::demo::describe(&switch::sim::demo::DemoOptions::default()).unwrap();
    assert!(!text.contains("Some("), "{text}");
    assert!(!text.contains("None"), "{text}");
    assert!(text.contains("insurance employee") || text.contains("insurance resident"));
}
