//! Kiosk flows against the virtual card over the in-memory channel: what a kiosk and the back
//! end see, for SSSE (3DES and SM4) and PBOC debit (3DES and SM4).

mod common;

use card_apdu::issuer::ScriptCommand;
use card_apdu::kiosk::pboc::{complete_payment, start_payment, PaymentRequest, Terminal};
use card_apdu::kiosk::ssse::SsseCard;
use card_apdu::kiosk::KioskError;
use hsm_sim::card_crypto::ClearPin;

fn pin(s: &str) -> ClearPin {
    ClearPin::new(s).expect("pin")
}

fn request(amount_fen: u64) -> PaymentRequest {
    PaymentRequest::new(amount_fen, [0x26, 0x11, 0x23], [0x10, 0x30, 0x00])
}

#[test]
fn read_card_basics_decodes_ef05_ef06_with_gbk_name() {
    let (mut ch, _) = common::demo();
    let basics = SsseCard::open(&mut ch)
        .expect("select")
        .read_basics()
        .expect("read");
    assert_eq!(basics.name, "张三");
    assert_eq!(basics.social_security_number, "410102199003071234");
    assert_eq!(
        basics.card_identification_code,
        "410100D15600000530A1B2C3D4E5F601"
    );
    assert_eq!(basics.area_code, "410100");
    assert_eq!(basics.card_number, "A01234567");
    assert_eq!(basics.issue_date, "20240301");
    assert_eq!(basics.expiry_date, "20340301");
    assert_eq!(basics.spec_version, "3.00");
    assert_eq!(basics.birth_date, "19900307");
    let line = basics.to_ireadcardbas("T001", "D001");
    assert!(
        line.starts_with(
            "410100|410102199003071234|A01234567|410100D15600000530A1B2C3D4E5F601|张三|3B8A8001"
        ),
        "{line}"
    );
    assert!(
        line.ends_with("|3.00|20240301|20340301|T001|D001|"),
        "{line}"
    );
}

#[test]
fn wrong_pin_counts_down_then_blocks_and_unblock_resets() {
    let (mut ch, mut issuer) = common::demo();
    let mut card = SsseCard::open(&mut ch).expect("select");
    assert!(matches!(
        card.verify_pin(&pin("000000")),
        Err(KioskError::PinWrong { tries_left: 2 })
    ));
    assert!(matches!(
        card.verify_pin(&pin("000000")),
        Err(KioskError::PinWrong { tries_left: 1 })
    ));
    assert!(matches!(
        card.verify_pin(&pin("000000")),
        Err(KioskError::PinBlocked)
    ));
    // Even the right PIN is refused once blocked.
    assert!(matches!(
        card.verify_pin(&pin("123456")),
        Err(KioskError::PinBlocked)
    ));
    card.unblock_pin(&mut issuer, &pin("654321"))
        .expect("unblock");
    card.verify_pin(&pin("654321")).expect("new PIN verifies");
}

#[test]
fn change_pin_needs_the_old_pin() {
    let (mut ch, _) = common::demo();
    let mut card = SsseCard::open(&mut ch).expect("select");
    assert!(matches!(
        card.change_pin(&pin("111111"), &pin("222222")),
        Err(KioskError::PinWrong { tries_left: 2 })
    ));
    card.change_pin(&pin("123456"), &pin("222222"))
        .expect("change");
    assert!(matches!(
        card.verify_pin(&pin("123456")),
        Err(KioskError::PinWrong { .. })
    ));
    card.verify_pin(&pin("222222")).expect("verify new");
}

#[test]
fn pin_try_counter_survives_power_off_but_verification_does_not() {
    let (mut ch, _) = common::demo();
    {
        let mut card = SsseCard::open(&mut ch).expect("select");
        card.verify_pin(&pin("123456")).expect("verify");
        assert!(matches!(
            card.verify_pin(&pin("999999")),
            Err(KioskError::PinWrong { tries_left: 2 })
        ));
    }
    ch.card_mut().power_off();
    ch.card_mut().power_on();
    let mut card = SsseCard::open(&mut ch).expect("select");
    assert_eq!(card.pin_tries_left().expect("tries"), Some(2));
}

#[test]
fn online_card_authentication_is_mutual_sm4_and_tdes() {
    for (mut ch, mut issuer) in [common::demo(), common::demo_tdes()] {
        let mut card = SsseCard::open(&mut ch).expect("select");
        let r = card.authenticate(&mut issuer, true).expect("authenticate");
        assert!(r.card_authenticated && r.backend_authenticated);
        assert_eq!(
            r.card_identification_code,
            "410100D15600000530A1B2C3D4E5F601"
        );
    }
}

#[test]
fn a_card_from_another_programme_fails_authentication() {
    let (mut ch, _) = common::demo();
    let text = std::fs::read_to_string(common::DEMO_CARD).expect("read");
    let other = text.replace(
        "11111111111111112222222222222222",
        "99999999999999998888888888888888",
    );
    let (_, mut other_issuer) = common::card_from(&other);
    let mut card = SsseCard::open(&mut ch).expect("select");
    assert!(matches!(
        card.authenticate(&mut other_issuer, false),
        Err(KioskError::CardNotAuthentic)
    ));
}

#[test]
fn pboc_payment_sm4_arqc_verifies_and_issuer_approval_gives_tc() {
    let (mut ch, issuer) = common::demo();
    let mut session =
        start_payment(&mut ch, &Terminal::default(), &request(12_345)).expect("start");
    assert_eq!(session.request.algorithm, "SM4");
    assert_eq!(session.request.atc, 1);
    assert_eq!(session.request.pan_masked, "628866******0304");
    let auth = issuer
        .authorise(
            &session.pan,
            &session.request.psn,
            &session.request.field55,
            *b"00",
        )
        .expect("authorise");
    assert!(auth.arqc_valid);
    let outcome = complete_payment(&mut ch, &mut session, &auth.response).expect("complete");
    assert!(outcome.approved);
    assert_eq!(outcome.issuer_authentication, Some(true));
}

#[test]
fn pboc_terminal_without_sm_gets_3des() {
    let (mut ch, issuer) = common::demo();
    let terminal = Terminal {
        supports_sm: false,
        ..Terminal::default()
    };
    let mut session = start_payment(&mut ch, &terminal, &request(100)).expect("start");
    assert_eq!(session.request.algorithm, "3DES");
    let auth = issuer
        .authorise(
            &session.pan,
            &session.request.psn,
            &session.request.field55,
            *b"00",
        )
        .expect("authorise");
    assert!(auth.arqc_valid);
    assert!(
        complete_payment(&mut ch, &mut session, &auth.response)
            .expect("complete")
            .approved
    );
}

#[test]
fn forged_arpc_makes_the_card_decline() {
    let (mut ch, issuer) = common::demo();
    let mut session = start_payment(&mut ch, &Terminal::default(), &request(100)).expect("start");
    let mut auth = issuer
        .authorise(
            &session.pan,
            &session.request.psn,
            &session.request.field55,
            *b"00",
        )
        .expect("authorise");
    if let Some(iad) = auth.response.issuer_authentication_data.as_mut() {
        iad[0] ^= 0xFF;
    }
    let outcome = complete_payment(&mut ch, &mut session, &auth.response).expect("complete");
    assert!(!outcome.approved);
    assert_eq!(outcome.issuer_authentication, Some(false));
    assert_eq!(outcome.tvr[4] & 0x40, 0x40);
}

#[test]
fn tampered_field55_fails_arqc_verification() {
    let (mut ch, issuer) = common::demo();
    let session = start_payment(&mut ch, &Terminal::default(), &request(100)).expect("start");
    let mut f55 = session.request.field55.clone();
    // The amount (9F02) is inside the ARQC input: raise it by one fen.
    let pos = f55
        .windows(3)
        .position(|w| w == [0x9F, 0x02, 0x06])
        .expect("9F02");
    f55[pos + 8] ^= 0x01;
    let auth = issuer
        .authorise(&session.pan, &session.request.psn, &f55, *b"00")
        .expect("authorise");
    assert!(!auth.arqc_valid);
    assert_eq!(&auth.response.arc, b"05");
}

#[test]
fn atc_increases_by_one_per_transaction() {
    let (mut ch, _) = common::demo();
    let a = start_payment(&mut ch, &Terminal::default(), &request(1))
        .expect("first")
        .request
        .atc;
    let b = start_payment(&mut ch, &Terminal::default(), &request(1))
        .expect("second")
        .request
        .atc;
    assert_eq!(b, a + 1);
}

#[test]
fn application_block_script_then_unblock_script() {
    let (mut ch, issuer) = common::demo();
    let mut s = start_payment(&mut ch, &Terminal::default(), &request(100)).expect("start");
    let mut auth = issuer
        .authorise(&s.pan, &s.request.psn, &s.request.field55, *b"00")
        .expect("auth");
    let block = issuer
        .script(
            &s.pan,
            &s.request.psn,
            &s.request.field55,
            0x72,
            [0, 0, 0, 1],
            &ScriptCommand::ApplicationBlock,
        )
        .expect("script");
    auth.response.scripts.push(block);
    let outcome = complete_payment(&mut ch, &mut s, &auth.response).expect("complete");
    assert!(
        outcome.scripts.iter().all(|r| r.ok),
        "{:?}",
        outcome.scripts
    );

    // Blocked: SELECT answers 6283, a kiosk refuses to pay…
    assert!(matches!(
        start_payment(&mut ch, &Terminal::default(), &request(100)),
        Err(KioskError::ApplicationBlocked)
    ));
    // …unless it is running the online unblock: the card gives an AAC, the issuer scripts an unblock.
    let mut req = request(0);
    req.allow_blocked = true;
    let mut s = start_payment(&mut ch, &Terminal::default(), &req).expect("start blocked");
    assert_eq!(s.request.cid, card_apdu::emv::cid::AAC);
    let unblock = issuer
        .script(
            &s.pan,
            &s.request.psn,
            &s.request.field55,
            0x71,
            [0, 0, 0, 2],
            &ScriptCommand::ApplicationUnblock,
        )
        .expect("script");
    let resp = card_apdu::kiosk::pboc::IssuerResponse {
        arc: *b"05",
        issuer_authentication_data: None,
        scripts: vec![unblock],
    };
    let outcome = complete_payment(&mut ch, &mut s, &resp).expect("complete");
    assert!(outcome.scripts[0].ok, "{:?}", outcome.scripts);
    start_payment(&mut ch, &Terminal::default(), &request(100)).expect("unblocked");
}

#[test]
fn script_with_bad_mac_is_refused_with_6988() {
    let (mut ch, issuer) = common::demo();
    let mut s = start_payment(&mut ch, &Terminal::default(), &request(100)).expect("start");
    let mut auth = issuer
        .authorise(&s.pan, &s.request.psn, &s.request.field55, *b"00")
        .expect("auth");
    let mut script = issuer
        .script(
            &s.pan,
            &s.request.psn,
            &s.request.field55,
            0x72,
            [0, 0, 0, 1],
            &ScriptCommand::ApplicationBlock,
        )
        .expect("script");
    let last = script.len() - 1;
    script[last] ^= 0x01;
    auth.response.scripts.push(script);
    let outcome = complete_payment(&mut ch, &mut s, &auth.response).expect("complete");
    assert_eq!(outcome.scripts[0].status, vec!["6988".to_string()]);
    assert_eq!(outcome.tvr[4] & 0x10, 0x10);
    start_payment(&mut ch, &Terminal::default(), &request(100)).expect("still usable");
}

#[test]
fn pin_change_and_unblock_scripts_change_the_offline_pin() {
    use card_apdu::apdu::Command;
    use card_apdu::channel::CardChannel;
    for (mut ch, issuer) in [common::demo(), common::demo_tdes()] {
        let mut s = start_payment(&mut ch, &Terminal::default(), &request(100)).expect("start");
        let mut auth = issuer
            .authorise(&s.pan, &s.request.psn, &s.request.field55, *b"00")
            .expect("auth");
        let change = issuer
            .script(
                &s.pan,
                &s.request.psn,
                &s.request.field55,
                0x72,
                [0, 0, 0, 3],
                &ScriptCommand::PinChange("8642".into()),
            )
            .expect("script");
        auth.response.scripts.push(change);
        let outcome = complete_payment(&mut ch, &mut s, &auth.response).expect("complete");
        assert!(outcome.scripts[0].ok, "{:?}", outcome.scripts);
        // Offline plaintext PIN VERIFY with the new PIN (block 24 8642 FFFFFFFFFF).
        let verify = |pin_block: &str, ch: &mut common_channel::Ch| {
            ch.transmit(
                &Command::new(0, 0x20, 0, 0x80).with_data(hex::decode(pin_block).expect("hex")),
            )
            .expect("verify")
            .sw
        };
        assert_eq!(
            verify("248642FFFFFFFFFF", &mut ch),
            card_apdu::sw::StatusWord::Success
        );
        assert_eq!(
            verify("24123FFFFFFFFFFF", &mut ch),
            card_apdu::sw::StatusWord::IncorrectData
        );
        assert_eq!(
            verify("241234FFFFFFFFFF", &mut ch),
            card_apdu::sw::StatusWord::VerifyFailed { tries_left: 2 }
        );
    }
}

mod common_channel {
    pub type Ch = card_apdu::channel::memory::MemoryChannel;
}

#[test]
fn pboc_mk_ac_matches_the_published_sm4_example() {
    // The demo card's PAN/PSN and SM4 IMK-AC are the PBOC 3.0 example of shared/vectors/README.md.
    let file = common::demo_file();
    let profile = card_apdu::perso::CardProfile::from_perso(&file).expect("profile");
    let keys = profile.pboc.keys_sm4.as_ref().expect("sm4 keys");
    assert_eq!(
        hex::encode_upper(keys.mk_ac.expose()),
        "016F6E76BD8E6FB4A17C28C4B05E03A8"
    );
}

#[test]
fn debug_output_masks_pan_and_hides_secrets() {
    let file = common::demo_file();
    let text = format!("{file:?}");
    assert!(!text.contains("6288660100000304"), "{text}");
    assert!(text.contains("628866******0304"), "{text}");
    assert!(!text.contains("F23BF4AE92B554C116139D4F67322667"), "{text}");
    assert!(
        text.contains("pin: ****") && !text.contains("pin: \""),
        "{text}"
    );
    let profile = card_apdu::perso::CardProfile::from_perso(&file).expect("profile");
    assert!(!format!("{profile:?}").contains("6288660100000304"));
}

#[test]
fn payment_uses_nine_apdus_through_ppse() {
    let (mut ch, issuer) = common::demo();
    let mut s = start_payment(&mut ch, &Terminal::default(), &request(100)).expect("start");
    // SELECT PPSE, SELECT AID, GPO, READ RECORD ×3, GENERATE AC.
    assert_eq!(s.request.apdu_count, 7);
    let before = ch.apdu_count();
    let auth = issuer
        .authorise(&s.pan, &s.request.psn, &s.request.field55, *b"00")
        .expect("auth");
    complete_payment(&mut ch, &mut s, &auth.response).expect("complete");
    assert_eq!(
        ch.apdu_count() - before,
        2,
        "EXTERNAL AUTHENTICATE, GENERATE AC"
    );
}
