//! Round trips through the `hsm-sim` server and the `HsmClient`, raw protocol bad-input tests,
//! pipelining, fault injection and the audit chain.

use std::net::SocketAddr;
use std::sync::Arc;

use hsm_sim::card_crypto::{self, CardAlgorithm, CardKey};
use hsm_sim::codec::{frame, split_frame, Response};
use hsm_sim::cvv::CvvKind;
use hsm_sim::hsm::{
    ArpcMethod, ArqcRequest, PinBlockIn, PinVerificationMethod, ScriptContext, SsseCardRef,
};
use hsm_sim::keys::*;
use hsm_sim::mac::{MacAlgorithm, MacPadding};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use hsm_sim::server::{FaultConfig, Server, ServerConfig};
use hsm_sim::soft::{DecimalisationTables, SecuritySettings};
use hsm_sim::{ClientConfig, Hsm, HsmClient, HsmError, SoftHsm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IMK: &str = "0123456789ABCDEFFEDCBA9876543210";
const TPK_CLEAR: &str = "0123456789ABCDEFFEDCBA9876543210";
const ZPK_CLEAR: &str = "1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A";

async fn start(
    config: ServerConfig,
    audit: Option<hsm_sim::audit::AuditLog>,
) -> (SocketAddr, Arc<SoftHsm>, tokio::sync::watch::Sender<bool>) {
    // The published IBM 3624 examples use table 1234567890123456: configured beside the default.
    let tables = DecimalisationTables::only(&["0123456789012345", "1234567890123456"]).expect("t");
    let hsm = Arc::new(SoftHsm::with_test_lmk().with_settings(SecuritySettings {
        decimalisation_tables: tables,
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let server = Server::new(Arc::clone(&hsm), config, audit);
    tokio::spawn(server.serve(listener, rx));
    (addr, hsm, tx)
}

/// A server with these faults injected and no audit log.
async fn start_with_faults(
    faults: FaultConfig,
) -> (SocketAddr, Arc<SoftHsm>, tokio::sync::watch::Sender<bool>) {
    start(
        ServerConfig {
            faults,
            ..ServerConfig::default()
        },
        None,
    )
    .await
}

fn tok<K: TypedKey>(h: &SoftHsm, scheme: KeyScheme, clear: &str) -> K {
    K::from_token(
        h.import_clear_key(K::KEY_TYPE, scheme, clear)
            .expect("clear key"),
    )
}

fn clear_block(key: &str, block_hex: &str) -> EncryptedPinBlock {
    let k = ClearKey::new(KeyScheme::U, hex::decode(key).expect("hex")).expect("key");
    let c = hsm_sim::crypto::WorkingCipher::new(&k).expect("c");
    let mut b = hex::decode(block_hex).expect("hex");
    c.encrypt_block(&mut b);
    EncryptedPinBlock::from_bytes(b).expect("block")
}

async fn raw(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(&frame(payload).expect("frame"))
        .await
        .expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some((p, _))) = split_frame(&buf) {
            return p.to_vec();
        }
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed without answering");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn client_and_soft_hsm_agree_on_every_function() {
    let (addr, soft, _stop) = start(ServerConfig::default(), None).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    let remote: &dyn Hsm = &client;
    let local: &dyn Hsm = soft.as_ref();

    // Diagnostics.
    assert_eq!(
        remote.diagnostics().await.expect("nc").lmk_check_value,
        local.diagnostics().await.expect("nc").lmk_check_value
    );

    // PIN translation TPK→ZPK (published format 0 block) and ZPK→ZPK with format change.
    let tpk: Tpk = tok(&soft, KeyScheme::U, TPK_CLEAR);
    let zpk: Zpk = tok(&soft, KeyScheme::U, ZPK_CLEAR);
    let pin = PinBlockIn {
        block: clear_block(TPK_CLEAR, "041261AAAAEDCBA9"),
        format: PinBlockFormat::Iso0,
        pan: "5555555551234567".into(),
    };
    let t = remote
        .translate_pin_tpk_to_zpk(&tpk, &zpk, &pin, PinBlockFormat::Iso0)
        .await
        .expect("CA");
    assert_eq!(t.block, clear_block(ZPK_CLEAR, "041261AAAAEDCBA9"));
    assert_eq!(t.pin_length, 4);
    let aes_zpk: Zpk = tok(&soft, KeyScheme::A, "000102030405060708090A0B0C0D0E0F");
    let f4 = remote
        .translate_pin_zpk_to_zpk(
            &zpk,
            &aes_zpk,
            &PinBlockIn {
                block: t.block.clone(),
                ..pin.clone()
            },
            PinBlockFormat::Iso4,
        )
        .await
        .expect("CC to 48");
    let back = remote
        .translate_pin_zpk_to_zpk(
            &aes_zpk,
            &zpk,
            &PinBlockIn {
                block: f4.block,
                format: PinBlockFormat::Iso4,
                pan: pin.pan.clone(),
            },
            PinBlockFormat::Iso0,
        )
        .await
        .expect("CC from 48");
    assert_eq!(back.block, t.block);

    // PIN verification (PVV and IBM offset) over DC/EC/DA/EA and generation over FW/BK.
    let pvk: Pvk = tok(&soft, KeyScheme::U, IMK);
    let mut b = hex::decode("044524FFFFFFFFFF").expect("h");
    b.iter_mut()
        .zip(hex::decode("0000233445566778").expect("h"))
        .for_each(|(x, y)| *x ^= y);
    let p4524 = PinBlockIn {
        block: clear_block(TPK_CLEAR, &hex::encode_upper(b)),
        format: PinBlockFormat::Iso0,
        pan: "1122334455667788".into(),
    };
    let key = PinKey::Tpk(tpk.clone());
    for (pvv, expect) in [("8523", true), ("8524", false)] {
        let m = PinVerificationMethod::VisaPvv {
            pvk: pvk.clone(),
            pvki: 1,
            pvv: pvv.into(),
        };
        assert_eq!(
            remote.verify_pin(&key, &p4524, &m).await.expect("DC"),
            expect
        );
    }
    for (offset, expect) in [("0000", true), ("0001", false)] {
        let m = PinVerificationMethod::Ibm3624 {
            pvk: pvk.clone(),
            decimalisation_table: "1234567890123456".into(),
            validation_data: "112233445566".into(),
            offset: offset.into(),
            check_length: 4,
        };
        let l = local.verify_pin(&key, &p4524, &m).await.expect("local");
        assert_eq!(remote.verify_pin(&key, &p4524, &m).await.expect("DA"), l);
        if expect {
            let off = local
                .generate_ibm_offset(&key, &p4524, &pvk, "1234567890123456", "112233445566")
                .await
                .expect("o");
            assert_eq!(
                remote
                    .generate_ibm_offset(&key, &p4524, &pvk, "1234567890123456", "112233445566")
                    .await
                    .expect("BK"),
                off
            );
        }
    }
    assert_eq!(
        remote
            .generate_pvv(&key, &p4524, &pvk, 1)
            .await
            .expect("FW"),
        "8523"
    );
    let zkey = PinKey::Zpk(zpk.clone());
    let zpin = PinBlockIn {
        block: remote
            .translate_pin_tpk_to_zpk(&tpk, &zpk, &p4524, PinBlockFormat::Iso0)
            .await
            .expect("CA")
            .block,
        ..p4524.clone()
    };
    let m = PinVerificationMethod::VisaPvv {
        pvk: pvk.clone(),
        pvki: 1,
        pvv: "8523".into(),
    };
    assert!(remote.verify_pin(&zkey, &zpin, &m).await.expect("EC"));

    // CVV / CVV2.
    let cvk: Cvk = tok(&soft, KeyScheme::U, "98989898989898988989898989898989");
    for kind in [CvvKind::Cvv, CvvKind::Cvv2, CvvKind::Icvv] {
        let c = remote
            .generate_cvv(&cvk, kind, "6228480402564890018", "2912", "220")
            .await
            .expect("CW");
        assert_eq!(
            c,
            local
                .generate_cvv(&cvk, kind, "6228480402564890018", "2912", "220")
                .await
                .expect("l")
        );
        assert!(remote
            .verify_cvv(&cvk, kind, "6228480402564890018", "2912", "220", &c)
            .await
            .expect("CY"));
        let wrong = format!("{}", (c.parse::<u16>().expect("n") + 1) % 1000);
        assert!(!remote
            .verify_cvv(
                &cvk,
                kind,
                "6228480402564890018",
                "2912",
                "220",
                &format!("{wrong:0>3}")
            )
            .await
            .expect("CY"));
    }

    // ARQC/ARPC, 3DES and SM4, methods 1 and 2.
    for (alg, scheme, clear) in [
        (CardAlgorithm::Tdes, KeyScheme::U, IMK),
        (
            CardAlgorithm::Sm4,
            KeyScheme::G,
            "F23BF4AE92B554C116139D4F67322667",
        ),
    ] {
        let imk: ImkAc = tok(&soft, scheme, clear);
        let mk = card_crypto::derive_icc_master_key(
            alg,
            &CardKey::from_hex(clear).expect("k"),
            "6228480402564890018",
            "01",
        )
        .expect("mk");
        let sk = card_crypto::derive_ac_session_key(alg, &mk, [0, 7]);
        let data =
            hex::decode("00000000100000000000000001560000000000015624112300A1B2C3D45800000007")
                .expect("h");
        let arqc = card_crypto::generate_ac(alg, &sk, &data);
        for arpc in [
            ArpcMethod::None,
            ArpcMethod::Method1 { arc: *b"00" },
            ArpcMethod::Method2 {
                csu: [0x00, 0x80, 0, 0],
                proprietary_len: 0,
                proprietary: [0; 8],
            },
        ] {
            let req = ArqcRequest {
                algorithm: alg,
                imk_ac: imk.clone(),
                pan: "6228480402564890018".into(),
                psn: "01".into(),
                atc: [0, 7],
                transaction_data: data.clone(),
                arqc,
                arpc,
            };
            assert_eq!(
                remote
                    .verify_arqc_and_generate_arpc(&req)
                    .await
                    .expect("XA"),
                local.verify_arqc_and_generate_arpc(&req).await.expect("l")
            );
            let mut bad = req.clone();
            bad.arqc[0] ^= 1;
            assert!(
                !remote
                    .verify_arqc_and_generate_arpc(&bad)
                    .await
                    .expect("XA")
                    .verified
            );
        }
    }

    // Issuer scripts.
    let smi: ImkSmi = tok(&soft, KeyScheme::U, IMK);
    let smc: ImkSmc = tok(&soft, KeyScheme::U, "10101010101010102323232323232323");
    let ctx = ScriptContext {
        algorithm: CardAlgorithm::Tdes,
        pan: "6228480402564890018".into(),
        psn: "01".into(),
        atc: [0, 9],
        arqc: [1, 2, 3, 4, 5, 6, 7, 8],
    };
    assert_eq!(
        remote
            .issuer_script_mac(&smi, &ctx, [0x84, 0x1E, 0, 0, 4], &[])
            .await
            .expect("XC"),
        local
            .issuer_script_mac(&smi, &ctx, [0x84, 0x1E, 0, 0, 4], &[])
            .await
            .expect("l")
    );
    let new_pin = PinBlockIn {
        pan: "6228480402564890018".into(),
        ..p4524.clone()
    };
    let enc = remote.encrypt_pin_change(&smc, &ctx, &key, &new_pin).await;
    // p4524's block is bound to PAN 1122334455667788: under another PAN it is a bad PIN block.
    assert_eq!(enc.unwrap_err().code(), "20");

    // SSSE.
    let ia: SsseInternalAuthKey = tok(&soft, KeyScheme::G, IMK);
    let ea: SsseExternalAuthKey = tok(&soft, KeyScheme::G, IMK);
    let card = SsseCardRef {
        algorithm: CardAlgorithm::Sm4,
        city_code: "410100".into(),
        card_id: "410100D15600000500B1C2D3E4F50617".into(),
    };
    let ck = card_crypto::derive_ssse_card_key_from_province(
        CardAlgorithm::Sm4,
        &CardKey::from_hex(IMK).expect("k"),
        "410100",
        &card.card_id,
    )
    .expect("ck");
    let challenge = [9u8; 8];
    let resp =
        card_crypto::ssse_internal_auth_response(CardAlgorithm::Sm4, &ck, &challenge).expect("r");
    assert!(remote
        .verify_ssse_internal_auth(&ia, &card, &challenge, &resp)
        .await
        .expect("XG"));
    assert!(!remote
        .verify_ssse_internal_auth(&ia, &card, &[8u8; 8], &resp)
        .await
        .expect("XG"));
    let crypt = remote
        .ssse_external_auth_cryptogram(&ea, &card, &challenge)
        .await
        .expect("XI");
    assert!(card_crypto::verify_ssse_external_auth(
        CardAlgorithm::Sm4,
        &ck,
        &challenge,
        &crypt
    ));
    let pu: SssePinUnblockKey = tok(&soft, KeyScheme::G, IMK);
    let pin = [0x12, 0x34, 0x56, 0x7F];
    let mac = remote
        .ssse_pin_unblock_mac(&pu, &card, &challenge, &pin)
        .await
        .expect("XU");
    assert_eq!(
        mac,
        card_crypto::ssse_pin_unblock_mac(CardAlgorithm::Sm4, &ck, &challenge, &pin).expect("m")
    );
    assert_eq!(
        remote
            .ssse_pin_unblock_mac(&pu, &card, &challenge, &[0x11; 7])
            .await
            .unwrap_err()
            .code(),
        HsmError::DataLength.code()
    );
    let lp: SsseLineProtectionKey = tok(&soft, KeyScheme::G, IMK);
    let record = [0x08, 0x03, 0xD5, 0xC5, 0x00];
    let mac = remote
        .ssse_update_record_mac(&lp, &card, &challenge, [0x08, 0x00], &record)
        .await
        .expect("XR");
    assert_eq!(
        mac,
        card_crypto::ssse_update_record_mac(CardAlgorithm::Sm4, &ck, &challenge, 0x08, 0, &record)
            .expect("m")
    );
    assert_eq!(
        remote
            .ssse_update_record_mac(&lp, &card, &challenge, [0x08, 0x00], &[])
            .await
            .unwrap_err()
            .code(),
        HsmError::DataLength.code()
    );

    // MACs.
    let tak: Tak = tok(&soft, KeyScheme::U, "0123456789ABCDEF0123456789ABCDEF");
    let mk = MacKey::Tak(tak);
    let m = remote
        .generate_mac(
            &mk,
            MacAlgorithm::Iso9797Alg1,
            MacPadding::Method1,
            b"7654321 Now is the time for ",
        )
        .await
        .expect("M6");
    assert_eq!(hex::encode_upper(&m), "F1D30F6849312CA4");
    assert!(remote
        .verify_mac(
            &mk,
            MacAlgorithm::Iso9797Alg1,
            MacPadding::Method1,
            b"7654321 Now is the time for ",
            &m[..4]
        )
        .await
        .expect("M8"));
    assert!(!remote
        .verify_mac(
            &mk,
            MacAlgorithm::Iso9797Alg1,
            MacPadding::Method1,
            b"7654321 Now is the time fo!",
            &m
        )
        .await
        .expect("M8"));
    let zak: Zak = tok(&soft, KeyScheme::A, "2B7E151628AED2A6ABF7158809CF4F3C");
    let cm = remote
        .generate_mac(
            &MacKey::Zak(zak),
            MacAlgorithm::AesCmac,
            MacPadding::Method1,
            b"",
        )
        .await
        .expect("M6 cmac");
    assert_eq!(hex::encode(cm), "bb1d6929e95937287fa37d129b756746");

    // Key management.
    let zmk: Zmk = tok(&soft, KeyScheme::U, IMK);
    assert_eq!(
        hex::encode_upper(
            remote
                .key_check_value(KeyType::Zmk, zmk.token())
                .await
                .expect("BU")
        ),
        "08D7B4"
    );
    let g = remote
        .generate_key(KeyType::Zpk, KeyScheme::U, Some(&zmk))
        .await
        .expect("A0");
    let imp = remote
        .import_key(
            KeyType::Zpk,
            &zmk,
            g.under_zmk.as_deref().expect("under"),
            KeyScheme::U,
        )
        .await
        .expect("A6");
    assert_eq!(imp.check_value, g.check_value);
    let (under, kcv) = remote
        .export_key(KeyType::Zpk, &zmk, &g.token, KeyScheme::X)
        .await
        .expect("A8");
    assert_eq!(kcv, g.check_value);
    assert!(under.starts_with('X'));
    let c1 = soft
        .import_clear_key(
            KeyType::Zmk,
            KeyScheme::U,
            "0101010101010101FEFEFEFEFEFEFEFE",
        )
        .expect("c");
    let c2 = soft
        .import_clear_key(KeyType::Zmk, KeyScheme::U, IMK)
        .expect("c");
    let formed = remote
        .form_key_from_components(KeyType::Zmk, KeyScheme::U, &[c1.clone(), c2, c1])
        .await
        .expect("A4");
    assert_eq!(hex::encode_upper(formed.check_value), "08D7B4");

    // Random and data keys.
    assert_eq!(remote.random_bytes(32).await.expect("XK").len(), 32);
    let (dk, token) = remote.generate_data_key().await.expect("XM");
    let sealed = dk.seal(b"6228480402564890018", b"pan").expect("seal");
    let again = remote.unwrap_data_key(&token).await.expect("XO");
    assert_eq!(
        again.open(&sealed, b"pan").expect("open"),
        b"6228480402564890018"
    );
    let local_again = local.unwrap_data_key(&token).await.expect("local");
    assert_eq!(
        local_again.open(&sealed, b"pan").expect("open"),
        b"6228480402564890018"
    );
}

/// A link's TAK of each MAC algorithm travels as in a key exchange, all by host commands:
/// generated with its copy under the ZMK (A0), imported under the ZMK at the other end (A6,
/// where an SM4 or AES key under a ZMK carries no LMK tag), and a message MACed at one end
/// (M6) verifies at the other (M8) and nowhere else.
#[tokio::test]
async fn taks_of_every_link_algorithm_are_exchanged_under_a_zmk_and_mac_over_the_network() {
    let (addr, soft, _stop) = start(ServerConfig::default(), None).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    let remote: &dyn Hsm = &client;
    let zmk: Zmk = tok(&soft, KeyScheme::U, IMK);
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
    for (scheme, alg, pad) in [
        (KeyScheme::G, MacAlgorithm::Sm4CbcMac, MacPadding::Method2),
        (KeyScheme::A, MacAlgorithm::AesCmac, MacPadding::Method1),
        (KeyScheme::U, MacAlgorithm::Iso9797Alg3, MacPadding::Method1),
    ] {
        let sent = remote
            .generate_key(KeyType::Tak, scheme, Some(&zmk))
            .await
            .expect("A0");
        assert_eq!(sent.token.scheme(), scheme);
        let under = sent.under_zmk.clone().expect("a copy under the ZMK");
        assert_eq!(under.len(), scheme.under_zmk_text_len());
        let got = remote
            .import_key(KeyType::Tak, &zmk, &under, scheme)
            .await
            .expect("A6");
        assert_eq!(got.check_value, sent.check_value, "{scheme:?}");
        let ours = MacKey::Tak(Tak::from_token(sent.token));
        let theirs = MacKey::Tak(Tak::from_token(got.token));
        let mac = remote
            .generate_mac(&ours, alg, pad, &data)
            .await
            .expect("M6");
        assert_eq!(mac.len(), alg.mac_len());
        assert_eq!(
            soft.generate_mac(&ours, alg, pad, &data)
                .await
                .expect("soft"),
            mac
        );
        assert!(remote
            .verify_mac(&theirs, alg, pad, &data, &mac[..8])
            .await
            .expect("M8"));
        let mut altered = data.clone();
        altered[299] ^= 0x01;
        assert!(!remote
            .verify_mac(&theirs, alg, pad, &altered, &mac[..8])
            .await
            .expect("M8"));
    }
    // The GB/T 32907-2016 appendix A vector through M6 with algorithm 9: key = data =
    // 0123456789ABCDEFFEDCBA9876543210, one aligned block, padding method 1.
    let sm4: Tak = tok(&soft, KeyScheme::G, IMK);
    let m = remote
        .generate_mac(
            &MacKey::Tak(sm4),
            MacAlgorithm::Sm4CbcMac,
            MacPadding::Method1,
            &hex::decode(IMK).expect("hex"),
        )
        .await
        .expect("M6");
    assert_eq!(hex::encode(m), "681edf34d206965e86b3e94f536e4246");
}

#[tokio::test]
async fn raw_protocol_bad_input_gets_documented_codes_and_no_panic() {
    let (addr, soft, _stop) = start(ServerConfig::default(), None).await;
    let decode = |p: Vec<u8>| Response::decode(&p, 4).expect("response");
    // Echo.
    let r = decode(raw(addr, b"0001B20005hello").await);
    assert_eq!(
        (&r.header[..], &r.code, &r.error, &r.body[..]),
        (&b"0001"[..], b"B3", b"00", &b"hello"[..])
    );
    // Unknown command: 68.
    let r = decode(raw(addr, b"0002QQ").await);
    assert_eq!((&r.code, &r.error), (b"QR", b"68"));
    // Short message (no command): 15 with command ZZ.
    let r = decode(raw(addr, b"0003N").await);
    assert_eq!((&r.code, &r.error), (b"Z[", b"15"));
    // Truncated body: 15.
    let r = decode(raw(addr, b"0004CAU1234").await);
    assert_eq!(r.error, *b"15");
    // Wrong key type for the MAC function (ZPK code 001 in M6): 28.
    let zpk = soft
        .import_clear_key(KeyType::Zpk, KeyScheme::U, ZPK_CLEAR)
        .expect("zpk");
    let r = decode(raw(addr, format!("0005M600111001{zpk}0004abcd").as_bytes()).await);
    assert_eq!(r.error, *b"28");
    // A ZPK token given as TAK (003): its LMK variant is wrong → parity error 10.
    let r = decode(raw(addr, format!("0006M600111003{zpk}0004abcd").as_bytes()).await);
    assert_eq!(r.error, *b"10");
    // Unknown key type code: 04.
    let r = decode(raw(addr, b"0008A00ZZZU").await);
    assert_eq!(r.error, *b"04");
    // Export of a PVK is not permitted: 29.
    let zmk = soft
        .import_clear_key(KeyType::Zmk, KeyScheme::U, IMK)
        .expect("zmk");
    let pvk = soft
        .import_clear_key(KeyType::Pvk, KeyScheme::U, IMK)
        .expect("pvk");
    let r = decode(raw(addr, format!("0009A8002{zmk}{pvk}U").as_bytes()).await);
    assert_eq!(r.error, *b"29");
    // Bad PIN block format code: 23; bad PIN block content: 20.
    let tpk = soft
        .import_clear_key(KeyType::Tpk, KeyScheme::U, TPK_CLEAR)
        .expect("tpk");
    let good = clear_block(TPK_CLEAR, "041261AAAAEDCBA9").to_hex();
    let r = decode(
        raw(
            addr,
            format!("0010CA{tpk}{zpk}12{good}9901555555123456").as_bytes(),
        )
        .await,
    );
    assert_eq!(r.error, *b"23");
    let bad = clear_block(TPK_CLEAR, "F41261AAAAEDCBA9").to_hex();
    let r = decode(
        raw(
            addr,
            format!("0011CA{tpk}{zpk}12{bad}0101555555123456").as_bytes(),
        )
        .await,
    );
    assert_eq!(r.error, *b"20");
    let r = decode(
        raw(
            addr,
            format!("0012CA{tpk}{zpk}12{good}0101555555123456").as_bytes(),
        )
        .await,
    );
    assert_eq!((&r.error, &r.body[..2]), (b"00", &b"04"[..]));
    // Max PIN length 03 < 4 digits: 24.
    let r = decode(
        raw(
            addr,
            format!("0013CA{tpk}{zpk}03{good}0101555555123456").as_bytes(),
        )
        .await,
    );
    assert_eq!(r.error, *b"24");
    // Trailing garbage after a complete body: 15.
    let r = decode(raw(addr, b"0014B20001xy").await);
    assert_eq!(r.error, *b"15");
    // KQ with the payShield layout: mode 1, scheme 1, Y, ATC, UN, data, ';', ARQC, ARC.
    let imk = soft
        .import_clear_key(KeyType::ImkAc, KeyScheme::U, IMK)
        .expect("imk");
    let mk = card_crypto::derive_icc_master_key(
        CardAlgorithm::Tdes,
        &CardKey::from_hex(IMK).expect("k"),
        "6228480402564890018",
        "01",
    )
    .expect("mk");
    let sk = card_crypto::derive_ac_session_key(CardAlgorithm::Tdes, &mk, [0, 3]);
    let data = b"0123456789ABCDEF";
    let arqc = card_crypto::generate_ac(CardAlgorithm::Tdes, &sk, data);
    let mut kq = format!("0015KQ11{imk}").into_bytes();
    kq.extend_from_slice(&card_crypto::pan_psn_y("6228480402564890018", "01").expect("y"));
    kq.extend_from_slice(&[0, 3, 1, 2, 3, 4]);
    kq.extend_from_slice(b"10");
    kq.extend_from_slice(data);
    kq.push(b';');
    kq.extend_from_slice(&arqc);
    kq.extend_from_slice(b"00");
    let r = decode(raw(addr, &kq).await);
    assert_eq!(r.error, *b"00");
    assert_eq!(
        r.body,
        card_crypto::arpc_method_1(CardAlgorithm::Tdes, &sk, &arqc, *b"00").to_vec()
    );
    let last = kq.len() - 3;
    kq[last] ^= 1;
    assert_eq!(decode(raw(addr, &kq).await).error, *b"01");
    // After all of that the server still answers.
    assert_eq!(decode(raw(addr, b"0016NC").await).error, *b"00");
}

#[tokio::test]
async fn a_malformed_frame_closes_only_that_connection() {
    let (addr, _soft, _stop) = start(ServerConfig::default(), None).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(&[0, 0]).await.expect("write");
    let mut b = [0u8; 8];
    assert_eq!(s.read(&mut b).await.expect("read"), 0);
    let client = HsmClient::new(ClientConfig::new(addr));
    assert!(client.diagnostics().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_on_few_connections_are_matched_by_header() {
    let (addr, soft, _stop) = start(ServerConfig::default(), None).await;
    let mut cfg = ClientConfig::new(addr);
    cfg.connections = 2;
    let client = Arc::new(HsmClient::new(cfg));
    let cvk: Cvk = tok(&soft, KeyScheme::U, "98989898989898988989898989898989");
    let mut tasks = Vec::new();
    for i in 0..400u32 {
        let c = Arc::clone(&client);
        let k = cvk.clone();
        let s = Arc::clone(&soft);
        tasks.push(tokio::spawn(async move {
            let pan = format!("62284804025{:08}", i);
            let got = c
                .generate_cvv(&k, CvvKind::Cvv2, &pan, "2912", "220")
                .await
                .expect("cvv");
            let want = s
                .generate_cvv(&k, CvvKind::Cvv2, &pan, "2912", "220")
                .await
                .expect("cvv");
            assert_eq!(got, want, "response matched to the wrong request");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

#[tokio::test]
async fn injected_errors_drops_and_latency_reach_the_client_as_errors() {
    let faults = FaultConfig {
        error_per_million: 1_000_000,
        error_code: "42".into(),
        ..FaultConfig::default()
    };
    let (addr, _s, _stop) = start_with_faults(faults).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    assert_eq!(
        client.diagnostics().await.unwrap_err(),
        HsmError::Other("42".into())
    );

    let faults = FaultConfig {
        drop_per_million: 1_000_000,
        ..FaultConfig::default()
    };
    let (addr, _s, _stop2) = start_with_faults(faults).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    assert!(matches!(
        client.diagnostics().await,
        Err(HsmError::Unavailable(_))
    ));

    let faults = FaultConfig {
        latency_ms: 300,
        ..FaultConfig::default()
    };
    let (addr, _s, _stop3) = start_with_faults(faults).await;
    let mut cfg = ClientConfig::new(addr);
    cfg.timeout_ms = 50;
    let client = HsmClient::new(cfg);
    assert_eq!(
        client.diagnostics().await.unwrap_err(),
        HsmError::Unavailable("timeout".into())
    );
    let mut cfg = ClientConfig::new(addr);
    cfg.timeout_ms = 2_000;
    assert!(HsmClient::new(cfg).diagnostics().await.is_ok());
}

#[tokio::test]
async fn the_client_reports_an_unreachable_hsm() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = HsmClient::new(ClientConfig::new(addr));
    assert!(matches!(
        client.random_bytes(8).await,
        Err(HsmError::Unavailable(_))
    ));
}

#[tokio::test]
async fn key_operations_are_written_to_a_verifiable_hash_chain() {
    let dir = std::env::temp_dir().join(format!("hsm-tcp-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("audit.log");
    let _ = std::fs::remove_file(&path);
    let audit = hsm_sim::audit::AuditLog::open(path.clone())
        .await
        .expect("audit");
    let (addr, _soft, _stop) = start(ServerConfig::default(), Some(audit)).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    let g = client
        .generate_key(KeyType::Zpk, KeyScheme::U, None)
        .await
        .expect("A0");
    client
        .key_check_value(KeyType::Zpk, &g.token)
        .await
        .expect("BU");
    client.random_bytes(8).await.expect("not audited");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(hsm_sim::audit::verify_audit_log(&path), Ok(2));
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(&hex::encode_upper(g.check_value)));
    assert!(
        !text.contains(&g.token.to_string()[1..]),
        "tokens are not logged"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn personalisation_exports_the_same_card_keys_the_card_computes() {
    use hsm_sim::hsm::{CardKeyDerivation, CardMasterKey};
    let (addr, soft, _stop) = start(ServerConfig::default(), None).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    let zmk: Zmk = tok(&soft, KeyScheme::U, "4040404040404040E0E0E0E0E0E0E0E0");
    let zmk_clear = CardKey::from_hex("4040404040404040E0E0E0E0E0E0E0E0").expect("zmk");
    // Decrypt an exported key the way the personalisation bureau does (scheme U/G parts under the
    // ZMK with the A6/5A variants on the ZMK's right half).
    let open = |under: &str| -> Vec<u8> {
        let mut out = hex::decode(&under[1..]).expect("hex");
        for (i, part) in out.chunks_mut(8).enumerate() {
            let mut k = *zmk_clear.expose();
            k[8] ^= [0xA6, 0x5A][i];
            let c = hsm_sim::crypto::WorkingCipher::new(
                &ClearKey::new(KeyScheme::U, k.to_vec()).expect("k"),
            )
            .expect("c");
            c.decrypt_block(part);
        }
        out
    };
    for (alg, scheme, clear) in [
        (CardAlgorithm::Tdes, KeyScheme::U, IMK),
        (
            CardAlgorithm::Sm4,
            KeyScheme::G,
            "F23BF4AE92B554C116139D4F67322667",
        ),
    ] {
        let imk: ImkAc = tok(&soft, scheme, clear);
        let how = CardKeyDerivation::Emv {
            algorithm: alg,
            pan: "6228480402564890018".into(),
            psn: "01".into(),
        };
        let (under, kcv) = client
            .derive_card_key_under_zmk(&CardMasterKey::ImkAc(imk.clone()), &how, &zmk)
            .await
            .expect("XQ");
        let expect = card_crypto::derive_icc_master_key(
            alg,
            &CardKey::from_hex(clear).expect("k"),
            "6228480402564890018",
            "01",
        )
        .expect("mk");
        assert_eq!(open(&under), expect.expose().to_vec());
        assert_eq!(kcv, expect.check_value(alg));
        // An IMK cannot be dispersed the SSSE way: 29.
        let card = SsseCardRef {
            algorithm: alg,
            city_code: "410100".into(),
            card_id: "410100D15600000500B1C2D3E4F50617".into(),
        };
        let e = client
            .derive_card_key_under_zmk(
                &CardMasterKey::ImkAc(imk),
                &CardKeyDerivation::Ssse(card.clone()),
                &zmk,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "29");
        let ia: SsseInternalAuthKey = tok(&soft, scheme, clear);
        let (under, _) = client
            .derive_card_key_under_zmk(
                &CardMasterKey::SsseInternalAuth(ia),
                &CardKeyDerivation::Ssse(card.clone()),
                &zmk,
            )
            .await
            .expect("XQ ssse");
        let expect = card_crypto::derive_ssse_card_key_from_province(
            alg,
            &CardKey::from_hex(clear).expect("k"),
            "410100",
            &card.card_id,
        )
        .expect("ck");
        assert_eq!(open(&under), expect.expose().to_vec());
    }
}

#[tokio::test]
async fn card_keys_travel_to_the_bureau_under_a_transport_zek_it_imports_under_its_zmk() {
    use hsm_sim::hsm::{CardKeyDerivation, CardMasterKey};
    let (addr, soft, _stop) = start(ServerConfig::default(), None).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    let zmk: Zmk = tok(&soft, KeyScheme::U, "4040404040404040E0E0E0E0E0E0E0E0");
    let zmk_clear = ClearKey::new(
        KeyScheme::U,
        hex::decode("4040404040404040E0E0E0E0E0E0E0E0").expect("hex"),
    )
    .expect("zmk");
    // A0 mode 1: the transport key, under the LMK for the issuer and under the ZMK for the bureau.
    let transport = client
        .generate_key(KeyType::Zek, KeyScheme::U, Some(&zmk))
        .await
        .expect("A0");
    let zek = Zek::from_token(transport.token.clone());
    let zek_clear =
        SoftHsm::open_key_under_clear_kek(&zmk_clear, transport.under_zmk.as_deref().expect("u"))
            .expect("zek");
    assert_eq!(zek_clear.check_value(), transport.check_value);
    for (alg, scheme, clear) in [
        (CardAlgorithm::Tdes, KeyScheme::U, IMK),
        (
            CardAlgorithm::Sm4,
            KeyScheme::G,
            "F23BF4AE92B554C116139D4F67322667",
        ),
    ] {
        let imk: ImkAc = tok(&soft, scheme, clear);
        let how = CardKeyDerivation::Emv {
            algorithm: alg,
            pan: "6228480402564890018".into(),
            psn: "01".into(),
        };
        let (under, kcv) = client
            .derive_card_key_under_zek(&CardMasterKey::ImkAc(imk.clone()), &how, &zek)
            .await
            .expect("XT");
        let expect = card_crypto::derive_icc_master_key(
            alg,
            &CardKey::from_hex(clear).expect("k"),
            "6228480402564890018",
            "01",
        )
        .expect("mk");
        let opened = SoftHsm::open_key_under_clear_kek(&zek_clear, &under).expect("open");
        assert_eq!(opened.bytes(), expect.expose());
        assert_eq!(kcv, expect.check_value(alg));
        // A ZMK token where the ZEK belongs is refused (the key type is part of the LMK pair).
        let wrong = Zek::from_token(zmk.token().clone());
        assert!(client
            .derive_card_key_under_zek(&CardMasterKey::ImkAc(imk), &how, &wrong)
            .await
            .is_err());
    }
}

/// What a fake HSM's first connection does with the commands it reads.
#[derive(Clone, Copy, PartialEq)]
enum FirstConnection {
    /// Reads them and never answers.
    Silent,
    /// Reads the first one and closes the connection without answering.
    HangsUp,
}

/// A fake HSM whose first connection misbehaves as `first` says; later ones answer B2 (echo)
/// with B3 00 and the data.
async fn fake_echo_hsm(first: FirstConnection) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let misbehaves = (n == 1).then_some(first);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let Ok(k) = s.read(&mut chunk).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    while let Ok(Some((p, used))) = split_frame(&buf) {
                        let p = p.to_vec();
                        buf.drain(..used);
                        match misbehaves {
                            Some(FirstConnection::Silent) => continue,
                            Some(FirstConnection::HangsUp) => return,
                            None => {}
                        }
                        let mut resp = p[..4].to_vec();
                        resp.extend_from_slice(b"B300");
                        resp.extend_from_slice(&p[10..]);
                        let _ = s.write_all(&frame(&resp).expect("frame")).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_connection_that_timed_out_is_retired() {
    let addr = fake_echo_hsm(FirstConnection::Silent).await;
    let mut cfg = ClientConfig::new(addr);
    cfg.connections = 1;
    cfg.timeout_ms = 100;
    let client = HsmClient::new(cfg);
    assert_eq!(
        client.call(b"B2", b"0003abc").await,
        Err(HsmError::Unavailable("timeout".into()))
    );
    assert_eq!(
        client
            .call(b"B2", b"0003xyz")
            .await
            .expect("second connection"),
        b"xyz"
    );
}

#[tokio::test]
async fn a_command_whose_connection_died_unanswered_is_sent_again_on_a_fresh_one() {
    // Issue 28: an HSM restarted (or a balancer dropping the link) with a command on the wire;
    // the command is a computation the HSM keeps nothing of, so the client sends it once more.
    let addr = fake_echo_hsm(FirstConnection::HangsUp).await;
    let mut cfg = ClientConfig::new(addr);
    cfg.connections = 1;
    cfg.timeout_ms = 2_000;
    let client = HsmClient::new(cfg);
    assert_eq!(
        client
            .call(b"B2", b"0003abc")
            .await
            .expect("answered on the second connection"),
        b"abc"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_the_rest_keep_working() {
    let (addr, _soft, _stop) = start(
        ServerConfig {
            connections_max: 1,
            ..ServerConfig::default()
        },
        None,
    )
    .await;
    let first = HsmClient::new(ClientConfig {
        connections: 1,
        ..ClientConfig::new(addr)
    });
    assert!(first.diagnostics().await.is_ok());
    let second = HsmClient::new(ClientConfig {
        connections: 1,
        ..ClientConfig::new(addr)
    });
    assert!(matches!(
        second.diagnostics().await,
        Err(HsmError::Unavailable(_))
    ));
    assert!(first.diagnostics().await.is_ok());
}

/// Eight commands sent at once on a single connection, answered; how long that took.
async fn eight_pipelined_diagnostics(faults: FaultConfig) -> std::time::Duration {
    let (addr, _s, _stop) = start_with_faults(faults).await;
    let mut cfg = ClientConfig::new(addr);
    cfg.connections = 1;
    cfg.timeout_ms = 10_000;
    let client = Arc::new(HsmClient::new(cfg));
    let began = std::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = Arc::clone(&client);
        calls.spawn(async move { client.diagnostics().await });
    }
    while let Some(answer) = calls.join_next().await {
        answer.expect("task").expect("NC answered");
    }
    began.elapsed()
}

#[tokio::test]
async fn a_round_trip_delays_each_answer_without_queueing_the_commands_behind_it() {
    // --rtt-ms: a remote HSM; the eight commands overlap, each answer is held ~100 ms.
    let rtt = eight_pipelined_diagnostics(FaultConfig {
        rtt_ms: 100,
        ..FaultConfig::default()
    })
    .await;
    assert!(rtt >= std::time::Duration::from_millis(100), "{rtt:?}");
    assert!(rtt < std::time::Duration::from_millis(600), "{rtt:?}");
    // --latency-ms: a service time; the same eight commands queue on the one connection.
    let service = eight_pipelined_diagnostics(FaultConfig {
        latency_ms: 100,
        ..FaultConfig::default()
    })
    .await;
    assert!(
        service >= std::time::Duration::from_millis(800),
        "{service:?}"
    );
}
