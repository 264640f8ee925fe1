//! The software HSM against published vectors and the payShield error codes for bad input.

use hsm_sim::card_crypto::{self, CardAlgorithm, CardKey};
use hsm_sim::cvv::CvvKind;
use hsm_sim::hsm::{
    ArpcMethod, ArqcRequest, PinBlockIn, PinVerificationMethod, ScriptContext, SsseCardRef,
};
use hsm_sim::keys::*;
use hsm_sim::mac::{MacAlgorithm, MacPadding};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use hsm_sim::soft::{DecimalisationTables, SecuritySettings};
use hsm_sim::{Hsm, HsmError, SoftHsm};

const IMK: &str = "0123456789ABCDEFFEDCBA9876543210";
const SM4_MDK: &str = "F23BF4AE92B554C116139D4F67322667";
const PAN: &str = "6228480402564890018";

fn hsm() -> SoftHsm {
    SoftHsm::with_test_lmk()
}

/// The decimalisation table of the published IBM 3624 examples: not the HSM's default, so the
/// tests that check those examples configure it (as a payShield operator would).
const PUBLISHED_TABLE: &str = "1234567890123456";

fn hsm_with_published_table() -> SoftHsm {
    hsm().with_settings(SecuritySettings {
        decimalisation_tables: DecimalisationTables::only(&[PUBLISHED_TABLE]).expect("table"),
    })
}
fn tok<K: TypedKey>(h: &SoftHsm, scheme: KeyScheme, clear: &str) -> K {
    K::from_token(
        h.import_clear_key(K::KEY_TYPE, scheme, clear)
            .expect("clear key"),
    )
}
fn clear_block(key: &str, block_hex: &str) -> EncryptedPinBlock {
    // Encrypt a clear 8-byte PIN block under a clear 3DES key (the terminal's side).
    use hsm_sim::crypto::WorkingCipher;
    let k = ClearKey::new(KeyScheme::U, hex::decode(key).expect("hex")).expect("key");
    let c = WorkingCipher::new(&k).expect("c");
    let mut b = hex::decode(block_hex).expect("hex");
    c.encrypt_block(&mut b);
    EncryptedPinBlock::from_bytes(b).expect("block")
}

const TPK_CLEAR: &str = "0123456789ABCDEFFEDCBA9876543210";
const ZPK_CLEAR: &str = "1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A";

#[tokio::test]
async fn tpk_to_zpk_translation_reencrypts_the_same_pin_and_converts_formats() {
    let h = hsm();
    let tpk: Tpk = tok(&h, KeyScheme::U, TPK_CLEAR);
    let zpk: Zpk = tok(&h, KeyScheme::U, ZPK_CLEAR);
    // Published format 0 block: PIN 1234, PAN 5555555551234567 → 041261AAAAEDCBA9.
    let pin = PinBlockIn {
        block: clear_block(TPK_CLEAR, "041261AAAAEDCBA9"),
        format: PinBlockFormat::Iso0,
        pan: "5555555551234567".into(),
    };
    let out = h
        .translate_pin_tpk_to_zpk(&tpk, &zpk, &pin, PinBlockFormat::Iso0)
        .await
        .expect("translate")
        .block;
    assert_eq!(out, clear_block(ZPK_CLEAR, "041261AAAAEDCBA9"));
    // ZPK→ZPK with a format change 0 → 3 and back to 0 gives the original block.
    let zpk2: Zpk = tok(&h, KeyScheme::U, "4040404040404040E0E0E0E0E0E0E0E0");
    let f3 = h
        .translate_pin_zpk_to_zpk(
            &zpk,
            &zpk2,
            &PinBlockIn {
                block: out,
                format: PinBlockFormat::Iso0,
                pan: pin.pan.clone(),
            },
            PinBlockFormat::Iso3,
        )
        .await
        .expect("to format 3")
        .block;
    let back = h
        .translate_pin_zpk_to_zpk(
            &zpk2,
            &zpk,
            &PinBlockIn {
                block: f3,
                format: PinBlockFormat::Iso3,
                pan: pin.pan.clone(),
            },
            PinBlockFormat::Iso0,
        )
        .await
        .expect("back")
        .block;
    assert_eq!(back, clear_block(ZPK_CLEAR, "041261AAAAEDCBA9"));
}

#[tokio::test]
async fn wrong_key_type_bad_block_and_bad_format_get_payshield_codes() {
    let h = hsm();
    let tpk: Tpk = tok(&h, KeyScheme::U, TPK_CLEAR);
    let zpk: Zpk = tok(&h, KeyScheme::U, ZPK_CLEAR);
    let pin = PinBlockIn {
        block: clear_block(TPK_CLEAR, "041261AAAAEDCBA9"),
        format: PinBlockFormat::Iso0,
        pan: "5555555551234567".into(),
    };
    // A TPK token presented as a ZPK unwraps under the wrong LMK variant: parity error 10.
    let tpk_as_zpk = Zpk::from_token(tpk.token().clone());
    let e = h
        .translate_pin_zpk_to_zpk(&tpk_as_zpk, &zpk, &pin, PinBlockFormat::Iso0)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "10");
    // … and as the destination: 11.
    let zpk_bad_dest = Zpk::from_token(tpk.token().clone());
    let e = h
        .translate_pin_tpk_to_zpk(&tpk, &zpk_bad_dest, &pin, PinBlockFormat::Iso0)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "11");
    // A block that decrypts to garbage: 20.
    let garbage = PinBlockIn {
        block: clear_block(TPK_CLEAR, "F41261AAAAEDCBA9"),
        ..pin.clone()
    };
    assert_eq!(
        h.translate_pin_tpk_to_zpk(&tpk, &zpk, &garbage, PinBlockFormat::Iso0)
            .await
            .unwrap_err(),
        HsmError::InvalidPinBlock
    );
    // Format 4 needs an AES ZPK: 27.
    assert_eq!(
        h.translate_pin_tpk_to_zpk(&tpk, &zpk, &pin, PinBlockFormat::Iso4)
            .await
            .unwrap_err()
            .code(),
        "27"
    );
    // Bad PAN: 22.
    let bad_pan = PinBlockIn {
        pan: "55A5".into(),
        ..pin
    };
    assert_eq!(
        h.translate_pin_tpk_to_zpk(&tpk, &zpk, &bad_pan, PinBlockFormat::Iso0)
            .await
            .unwrap_err()
            .code(),
        "22"
    );
}

#[tokio::test]
async fn format_4_translation_with_an_aes_zpk() {
    let h = hsm();
    let tpk: Tpk = tok(&h, KeyScheme::U, TPK_CLEAR);
    let aes_zpk: Zpk = tok(&h, KeyScheme::A, "000102030405060708090A0B0C0D0E0F");
    let zpk: Zpk = tok(&h, KeyScheme::U, ZPK_CLEAR);
    let pin = PinBlockIn {
        block: clear_block(TPK_CLEAR, "041261AAAAEDCBA9"),
        format: PinBlockFormat::Iso0,
        pan: "5555555551234567".into(),
    };
    let f4 = h
        .translate_pin_tpk_to_zpk(&tpk, &aes_zpk, &pin, PinBlockFormat::Iso4)
        .await
        .expect("f4")
        .block;
    assert_eq!(f4.as_bytes().len(), 16);
    let back = h
        .translate_pin_zpk_to_zpk(
            &aes_zpk,
            &zpk,
            &PinBlockIn {
                block: f4,
                format: PinBlockFormat::Iso4,
                pan: pin.pan.clone(),
            },
            PinBlockFormat::Iso0,
        )
        .await
        .expect("back")
        .block;
    assert_eq!(back, clear_block(ZPK_CLEAR, "041261AAAAEDCBA9"));
}

#[tokio::test]
async fn pin_verification_by_ibm_offset_and_pvv_with_published_values() {
    let h = hsm_with_published_table();
    let tpk: Tpk = tok(&h, KeyScheme::U, TPK_CLEAR);
    let pvk: Pvk = tok(&h, KeyScheme::U, "0123456789ABCDEFFEDCBA9876543210");
    // PAN 1122334455667788 → account 233445566778; PIN 4524 → PVV 8523 (PVKI 1).
    let pan = "1122334455667788";
    let mut clear = String::from("044524FFFFFFFFFF");
    let acc = hex::decode("0000233445566778").expect("hex");
    let mut b = hex::decode(&clear).expect("hex");
    b.iter_mut().zip(acc).for_each(|(x, y)| *x ^= y);
    clear = hex::encode_upper(b);
    let pin = PinBlockIn {
        block: clear_block(TPK_CLEAR, &clear),
        format: PinBlockFormat::Iso0,
        pan: pan.into(),
    };
    let key = PinKey::Tpk(tpk);
    let pvv = PinVerificationMethod::VisaPvv {
        pvk: pvk.clone(),
        pvki: 1,
        pvv: "8523".into(),
    };
    assert!(h.verify_pin(&key, &pin, &pvv).await.expect("pvv"));
    let wrong = PinVerificationMethod::VisaPvv {
        pvk: pvk.clone(),
        pvki: 1,
        pvv: "8524".into(),
    };
    assert!(!h.verify_pin(&key, &pin, &wrong).await.expect("pvv"));
    assert_eq!(
        h.generate_pvv(&key, &pin, &pvk, 1).await.expect("gen"),
        "8523"
    );
    // IBM 3624: validation data 1122334455667788, table 1234567890123456: PIN 4524 ↔ 0000.
    let ibm = PinVerificationMethod::Ibm3624 {
        pvk: pvk.clone(),
        decimalisation_table: "1234567890123456".into(),
        validation_data: "1122334455667788".into(),
        offset: "0000FFFFFFFF".into(),
        check_length: 4,
    };
    assert!(h.verify_pin(&key, &pin, &ibm).await.expect("ibm"));
    let off = h
        .generate_ibm_offset(&key, &pin, &pvk, "1234567890123456", "1122334455667788")
        .await
        .expect("off");
    assert_eq!(off, "0000");
}

#[tokio::test]
async fn cvv_generation_and_verification_with_the_published_example() {
    let h = hsm();
    let cvk: Cvk = tok(&h, KeyScheme::U, "98989898989898988989898989898989");
    let c = h
        .generate_cvv(&cvk, CvvKind::Cvv, "2222222222222222", "3333", "111")
        .await
        .expect("cvv");
    assert_eq!(c.len(), 3);
    assert!(h
        .verify_cvv(&cvk, CvvKind::Cvv, "2222222222222222", "3333", "111", &c)
        .await
        .expect("v"));
    let cvv2 = h
        .generate_cvv(&cvk, CvvKind::Cvv2, "2222222222222222", "3333", "111")
        .await
        .expect("cvv2");
    let direct = hsm_sim::cvv::compute_cvv(
        &hex::decode("98989898989898988989898989898989")
            .expect("h")
            .try_into()
            .expect("16"),
        "2222222222222222",
        "3333",
        "000",
    )
    .expect("c");
    assert_eq!(cvv2, direct);
    // A CVK token used as a PVK is rejected (different LMK variant).
    let as_pvk = Pvk::from_token(cvk.token().clone());
    let tpk: Tpk = tok(&h, KeyScheme::U, TPK_CLEAR);
    let pin = PinBlockIn {
        block: clear_block(TPK_CLEAR, "041261AAAAEDCBA9"),
        format: PinBlockFormat::Iso0,
        pan: "5555555551234567".into(),
    };
    assert_eq!(
        h.generate_pvv(&PinKey::Tpk(tpk), &pin, &as_pvk, 1)
            .await
            .unwrap_err()
            .code(),
        "11"
    );
}

fn arqc_request(
    alg: CardAlgorithm,
    imk: ImkAc,
    imk_clear: &str,
    arpc: ArpcMethod,
) -> (ArqcRequest, CardKey) {
    let card_mk = card_crypto::derive_icc_master_key(
        alg,
        &CardKey::from_hex(imk_clear).expect("k"),
        PAN,
        "01",
    )
    .expect("mk");
    let atc = [0x00, 0x2A];
    let sk = card_crypto::derive_ac_session_key(alg, &card_mk, atc);
    let data =
        hex::decode("0000000100000000000000000156000000000001562411230012345678580000002A03A4A002")
            .expect("hex");
    let arqc = card_crypto::generate_ac(alg, &sk, &data);
    (
        ArqcRequest {
            algorithm: alg,
            imk_ac: imk,
            pan: PAN.into(),
            psn: "01".into(),
            atc,
            transaction_data: data,
            arqc,
            arpc,
        },
        sk,
    )
}

#[tokio::test]
async fn arqc_verification_and_arpc_for_3des_and_sm4_match_the_card() {
    let h = hsm();
    for (alg, scheme, clear) in [
        (CardAlgorithm::Tdes, KeyScheme::U, IMK),
        (CardAlgorithm::Sm4, KeyScheme::G, SM4_MDK),
    ] {
        let imk: ImkAc = tok(&h, scheme, clear);
        let (req, sk) = arqc_request(alg, imk.clone(), clear, ArpcMethod::Method1 { arc: *b"00" });
        let out = h.verify_arqc_and_generate_arpc(&req).await.expect("arqc");
        assert!(out.verified);
        assert_eq!(
            out.arpc.expect("arpc"),
            card_crypto::arpc_method_1(alg, &sk, &req.arqc, *b"00").to_vec()
        );
        let (req2, sk2) = arqc_request(
            alg,
            imk.clone(),
            clear,
            ArpcMethod::Method2 {
                csu: [0, 0, 0, 1],
                proprietary_len: 2,
                proprietary: [0xAB, 0xCD, 0, 0, 0, 0, 0, 0],
            },
        );
        let out2 = h.verify_arqc_and_generate_arpc(&req2).await.expect("arqc");
        assert_eq!(
            out2.arpc.expect("arpc"),
            card_crypto::arpc_method_2(alg, &sk2, &req2.arqc, [0, 0, 0, 1], &[0xAB, 0xCD]).to_vec()
        );
        let mut bad = req.clone();
        bad.arqc[7] ^= 1;
        let out = h.verify_arqc_and_generate_arpc(&bad).await.expect("arqc");
        assert!(!out.verified && out.arpc.is_none());
        // The algorithm must match the key: a 3DES IMK with SM4 requested is error 26.
        let mut mismatch = req.clone();
        mismatch.algorithm = if alg == CardAlgorithm::Tdes {
            CardAlgorithm::Sm4
        } else {
            CardAlgorithm::Tdes
        };
        assert_eq!(
            h.verify_arqc_and_generate_arpc(&mismatch)
                .await
                .unwrap_err()
                .code(),
            "26"
        );
    }
}

#[tokio::test]
async fn issuer_script_mac_and_pin_change_match_the_card_side() {
    let h = hsm();
    let smi: ImkSmi = tok(&h, KeyScheme::U, IMK);
    // 1111…2222 of the published vector with parity adjusted (DES ignores parity bits).
    let smc: ImkSmc = tok(&h, KeyScheme::U, "10101010101010102323232323232323");
    let ctx = ScriptContext {
        algorithm: CardAlgorithm::Tdes,
        pan: "1234567890123456".into(),
        psn: "01".into(),
        atc: [0, 1],
        arqc: [0xAB, 0xCD, 0xEF, 0x12, 0x34, 0x56, 0x78, 0x90],
    };
    let mac = h
        .issuer_script_mac(&smi, &ctx, [0x84, 0x18, 0, 0, 4], &[])
        .await
        .expect("mac");
    let mk = card_crypto::derive_icc_master_key(
        CardAlgorithm::Tdes,
        &CardKey::from_hex(IMK).expect("k"),
        "1234567890123456",
        "01",
    )
    .expect("mk");
    let sk = card_crypto::derive_sm_session_key(CardAlgorithm::Tdes, &mk, ctx.atc, ctx.arqc);
    assert_eq!(
        mac,
        card_crypto::script_mac(
            CardAlgorithm::Tdes,
            &sk,
            [0x84, 0x18, 0, 0, 4],
            ctx.atc,
            &ctx.arqc,
            &[]
        )
    );
    // New PIN 9999 arrives under a TPK, leaves under SK-SMC: the EMV CCD vector of card_crypto.
    let tpk: Tpk = tok(&h, KeyScheme::U, TPK_CLEAR);
    let pan = "1234567890123456";
    let mut b = hex::decode("049999FFFFFFFFFF").expect("h");
    let acc = hex::decode("0000456789012345").expect("h");
    b.iter_mut().zip(acc).for_each(|(x, y)| *x ^= y);
    let pin = PinBlockIn {
        block: clear_block(TPK_CLEAR, &hex::encode_upper(b)),
        format: PinBlockFormat::Iso0,
        pan: pan.into(),
    };
    let enc = h
        .encrypt_pin_change(&smc, &ctx, &PinKey::Tpk(tpk), &pin)
        .await
        .expect("enc");
    assert_eq!(hex::encode_upper(enc), "28367E05DE3381C29D30A6055A8DEB86");
}

#[tokio::test]
async fn ssse_authentication_through_the_hsm_matches_the_card() {
    let h = hsm();
    for (alg, scheme) in [
        (CardAlgorithm::Tdes, KeyScheme::U),
        (CardAlgorithm::Sm4, KeyScheme::G),
    ] {
        let province = IMK;
        let ia: SsseInternalAuthKey = tok(&h, scheme, province);
        let ea: SsseExternalAuthKey = tok(&h, scheme, province);
        let card = SsseCardRef {
            algorithm: alg,
            city_code: "410100".into(),
            card_id: "410100D15600000500B1C2D3E4F50617".into(),
        };
        let card_key = card_crypto::derive_ssse_card_key_from_province(
            alg,
            &CardKey::from_hex(province).expect("k"),
            "410100",
            &card.card_id,
        )
        .expect("k");
        let challenge = vec![0x11u8; alg.block_len()];
        let resp = card_crypto::ssse_internal_auth_response(alg, &card_key, &challenge).expect("r");
        assert!(h
            .verify_ssse_internal_auth(&ia, &card, &challenge, &resp)
            .await
            .expect("v"));
        let mut bad = resp.clone();
        bad[0] ^= 0x80;
        assert!(!h
            .verify_ssse_internal_auth(&ia, &card, &challenge, &bad)
            .await
            .expect("v"));
        let crypt = h
            .ssse_external_auth_cryptogram(&ea, &card, &challenge)
            .await
            .expect("c");
        assert!(card_crypto::verify_ssse_external_auth(
            alg, &card_key, &challenge, &crypt
        ));
        // PIN UNBLOCK MAC under the card's dispersed PIN-unblock key, as the card checks it.
        let pu: SssePinUnblockKey = tok(&h, scheme, province);
        let pin = [0x12, 0x34, 0x56];
        let mac = h
            .ssse_pin_unblock_mac(&pu, &card, &challenge, &pin)
            .await
            .expect("mac");
        assert_eq!(
            mac,
            card_crypto::ssse_pin_unblock_mac(alg, &card_key, &challenge, &pin).expect("m")
        );
        let other_card = SsseCardRef {
            card_id: "410100D15600000500B1C2D3E4F50618".into(),
            ..card.clone()
        };
        assert_ne!(
            mac,
            h.ssse_pin_unblock_mac(&pu, &other_card, &challenge, &pin)
                .await
                .expect("mac")
        );
        assert_eq!(
            h.ssse_pin_unblock_mac(&pu, &card, &challenge, &[0x12])
                .await
                .unwrap_err()
                .code(),
            HsmError::DataLength.code()
        );
        // EF06 UPDATE RECORD MAC under the card's dispersed line-protection key.
        let lp: SsseLineProtectionKey = tok(&h, scheme, province);
        let record = [0x08, 0x03, 0xD5, 0xC5, 0x00];
        let mac = h
            .ssse_update_record_mac(&lp, &card, &challenge, [0x08, 0x00], &record)
            .await
            .expect("mac");
        assert_eq!(
            mac,
            card_crypto::ssse_update_record_mac(alg, &card_key, &challenge, 0x08, 0, &record)
                .expect("m")
        );
        assert_ne!(
            mac,
            h.ssse_update_record_mac(&lp, &other_card, &challenge, [0x08, 0x00], &record)
                .await
                .expect("mac")
        );
        // A key of another type is refused: the PIN-unblock key does not MAC record updates.
        let wrong = SsseLineProtectionKey::from_token(pu.token().clone());
        assert!(h
            .ssse_update_record_mac(&wrong, &card, &challenge, [0x08, 0x00], &record)
            .await
            .is_err());
        let bad_city = SsseCardRef {
            city_code: "41A100".into(),
            ..card
        };
        assert_eq!(
            h.ssse_external_auth_cryptogram(&ea, &bad_city, &challenge)
                .await
                .unwrap_err()
                .code(),
            "15"
        );
    }
}

#[tokio::test]
async fn macs_generate_and_verify_with_truncation() {
    let h = hsm();
    let tak: Tak = tok(&h, KeyScheme::U, "0123456789ABCDEF0123456789ABCDEF");
    let key = MacKey::Tak(tak);
    let m = h
        .generate_mac(
            &key,
            MacAlgorithm::Iso9797Alg3,
            MacPadding::Method1,
            b"7654321 Now is the time for ",
        )
        .await
        .expect("mac");
    assert_eq!(hex::encode_upper(&m), "F1D30F6849312CA4");
    assert!(h
        .verify_mac(
            &key,
            MacAlgorithm::Iso9797Alg3,
            MacPadding::Method1,
            b"7654321 Now is the time for ",
            &m[..4]
        )
        .await
        .expect("v"));
    assert!(!h
        .verify_mac(
            &key,
            MacAlgorithm::Iso9797Alg3,
            MacPadding::Method1,
            b"7654321 Now is the time for!",
            &m[..4]
        )
        .await
        .expect("v"));
    let zak: Zak = tok(&h, KeyScheme::A, "2B7E151628AED2A6ABF7158809CF4F3C");
    let cm = h
        .generate_mac(
            &MacKey::Zak(zak),
            MacAlgorithm::AesCmac,
            MacPadding::Method1,
            b"",
        )
        .await
        .expect("cmac");
    assert_eq!(hex::encode(cm), "bb1d6929e95937287fa37d129b756746");
}

#[tokio::test]
async fn key_generation_exchange_under_zmk_and_components() {
    let h = hsm();
    let zmk: Zmk = tok(&h, KeyScheme::U, "0123456789ABCDEFFEDCBA9876543210");
    assert_eq!(
        hex::encode_upper(
            h.key_check_value(KeyType::Zmk, zmk.token())
                .await
                .expect("kcv")
        ),
        "08D7B4"
    );
    let g = h
        .generate_key(KeyType::Zpk, KeyScheme::U, Some(&zmk))
        .await
        .expect("gen");
    let under = g.under_zmk.clone().expect("under zmk");
    // The partner imports what we exported: same KCV.
    let imported = h
        .import_key(KeyType::Zpk, &zmk, &under, KeyScheme::U)
        .await
        .expect("import");
    assert_eq!(imported.check_value, g.check_value);
    let (exported, kcv) = h
        .export_key(KeyType::Zpk, &zmk, &g.token, KeyScheme::X)
        .await
        .expect("export");
    assert!(exported.starts_with('X'));
    assert_eq!(kcv, g.check_value);
    let re = h
        .import_key(KeyType::Zpk, &zmk, &exported, KeyScheme::U)
        .await
        .expect("re-import");
    assert_eq!(re.check_value, g.check_value);
    // X9.17 export is plain 3DES-ECB of each half under the ZMK: check one half independently.
    let clear_zpk = ClearKey::unwrap(h.lmk(), KeyType::Zpk, &g.token).expect("unwrap");
    let zc = hsm_sim::crypto::WorkingCipher::new(
        &ClearKey::new(KeyScheme::U, hex::decode(IMK).expect("h")).expect("k"),
    )
    .expect("c");
    let mut left = clear_zpk.bytes()[..8].to_vec();
    zc.encrypt_block(&mut left);
    assert_eq!(&exported[1..17], hex::encode_upper(left));
    // Policy: a PVK may not leave under a ZMK (29); unknown token scheme (26); bad length (27).
    let pvk = h
        .generate_key(KeyType::Pvk, KeyScheme::U, None)
        .await
        .expect("pvk");
    assert_eq!(
        h.export_key(KeyType::Pvk, &zmk, &pvk.token, KeyScheme::U)
            .await
            .unwrap_err()
            .code(),
        "29"
    );
    assert_eq!(
        h.import_key(KeyType::Zpk, &zmk, "Q0123", KeyScheme::U)
            .await
            .unwrap_err()
            .code(),
        "26"
    );
    assert_eq!(
        h.import_key(KeyType::Zpk, &zmk, "U0123", KeyScheme::U)
            .await
            .unwrap_err()
            .code(),
        "27"
    );
    // Components: K = C1 ⊕ C2 ⊕ C3 (odd count keeps parity).
    let c1 = h
        .import_clear_key(
            KeyType::Zmk,
            KeyScheme::U,
            "0101010101010101FEFEFEFEFEFEFEFE",
        )
        .expect("c1");
    let c2 = h
        .import_clear_key(
            KeyType::Zmk,
            KeyScheme::U,
            "0123456789ABCDEFFEDCBA9876543210",
        )
        .expect("c2");
    let c3 = h
        .import_clear_key(
            KeyType::Zmk,
            KeyScheme::U,
            "0101010101010101FEFEFEFEFEFEFEFE",
        )
        .expect("c3");
    let formed = h
        .form_key_from_components(KeyType::Zmk, KeyScheme::U, &[c1.clone(), c2, c3])
        .await
        .expect("form");
    assert_eq!(hex::encode_upper(formed.check_value), "08D7B4");
    assert_eq!(
        h.form_key_from_components(KeyType::Zmk, KeyScheme::U, &[c1])
            .await
            .unwrap_err()
            .code(),
        "15"
    );
    // Parity errors in clear components are refused.
    assert_eq!(
        h.import_clear_key(
            KeyType::Zmk,
            KeyScheme::U,
            "0001010101010101FEFEFEFEFEFEFEFE"
        )
        .unwrap_err()
        .code(),
        "10"
    );
}

#[tokio::test]
async fn data_keys_wrap_and_unwrap_and_random_is_bounded() {
    let h = hsm();
    let (dk, token) = h.generate_data_key().await.expect("dk");
    let sealed = dk.seal(PAN.as_bytes(), b"card.pan").expect("seal");
    let again = h.unwrap_data_key(&token).await.expect("unwrap");
    assert_eq!(
        again.open(&sealed, b"card.pan").expect("open"),
        PAN.as_bytes()
    );
    assert_eq!(h.random_bytes(16).await.expect("rnd").len(), 16);
    assert_eq!(h.random_bytes(0).await.unwrap_err().code(), "80");
    assert_eq!(h.random_bytes(4096).await.unwrap_err().code(), "80");
    let d = h.diagnostics().await.expect("nc");
    assert_eq!(d.lmk_check_value.len(), 6);
}

#[tokio::test]
async fn pins_under_the_lmk_round_trip_through_je_and_jg_paths() {
    let h = hsm_with_published_table();
    let zpk: Zpk = tok(&h, KeyScheme::U, ZPK_CLEAR);
    let pvk: Pvk = tok(&h, KeyScheme::U, "0123456789ABCDEFFEDCBA9876543210");
    let lmk_pin = h
        .encrypt_clear_pin_under_lmk("4524", "1122334455667788")
        .expect("lmk pin");
    let blk = h
        .translate_pin_lmk_to_zpk(&zpk, &lmk_pin, "1122334455667788", PinBlockFormat::Iso0)
        .expect("jg");
    let pin = PinBlockIn {
        block: blk,
        format: PinBlockFormat::Iso0,
        pan: "1122334455667788".into(),
    };
    assert_eq!(h.translate_pin_zpk_to_lmk(&zpk, &pin).expect("je"), lmk_pin);
    assert_eq!(
        h.generate_pvv_lmk(&pvk, &lmk_pin, "1122334455667788", 1)
            .expect("dg"),
        "8523"
    );
    assert_eq!(
        h.generate_ibm_offset_lmk(
            &pvk,
            &lmk_pin,
            "1122334455667788",
            "1234567890123456",
            "1122334455667788"
        )
        .expect("de"),
        "0000"
    );
}

#[test]
fn the_hsm_trait_is_object_safe() {
    let h: std::sync::Arc<dyn Hsm> = std::sync::Arc::new(hsm());
    drop(h);
}

#[tokio::test]
async fn sm4_and_aes_tokens_of_another_key_type_are_refused_by_their_lmk_tag() {
    let h = hsm();
    let imk_ac: ImkAc = tok(&h, KeyScheme::G, SM4_MDK);
    let as_smi = ImkSmi::from_token(imk_ac.token().clone());
    let ctx = ScriptContext {
        algorithm: CardAlgorithm::Sm4,
        pan: PAN.into(),
        psn: "01".into(),
        atc: [0, 1],
        arqc: [0; 8],
    };
    let e = h
        .issuer_script_mac(&as_smi, &ctx, [0x84, 0x1E, 0, 0, 4], &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), "10");
    let zak: Zak = tok(&h, KeyScheme::A, "2B7E151628AED2A6ABF7158809CF4F3C");
    let as_tak = MacKey::Tak(Tak::from_token(zak.token().clone()));
    assert_eq!(
        h.generate_mac(&as_tak, MacAlgorithm::AesCmac, MacPadding::Method1, b"")
            .await
            .unwrap_err()
            .code(),
        "10"
    );
}
