//! The client against a hostile or confused HSM: whatever bytes a reply carries, every `Hsm`
//! method returns a value or an error and never panics (issue 24, finding 8: a non-ASCII reply
//! used to panic a bank link's supervisor task), and a reply whose response code does not answer
//! the request's command code is refused.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hsm_sim::card_crypto::CardAlgorithm;
use hsm_sim::codec::{frame, response_code, split_frame, Request};
use hsm_sim::cvv::CvvKind;
use hsm_sim::hsm::{
    ArpcMethod, ArqcRequest, CardKeyDerivation, CardMasterKey, PinBlockIn, PinVerificationMethod,
    ScriptContext, SsseCardRef,
};
use hsm_sim::keys::*;
use hsm_sim::mac::{MacAlgorithm, MacPadding};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use hsm_sim::{ClientConfig, Hsm, HsmClient, HsmError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the fake HSM answers: a response code (`None`: the right one) and a body after `00`.
#[derive(Clone, Default)]
struct Script {
    code: Option<[u8; 2]>,
    body: Vec<u8>,
}

/// A fake HSM answering every request with the request's header and the scripted reply.
async fn fake_hsm(script: Arc<Mutex<Script>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let script = Arc::clone(&script);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Ok(Some((payload, used))) = split_frame(&buf) {
                        let req = Request::decode(payload, 4).expect("request");
                        let reply = script.lock().expect("script").clone();
                        let mut out = req.header.clone();
                        out.extend_from_slice(&reply.code.unwrap_or(response_code(req.command)));
                        out.extend_from_slice(b"00");
                        out.extend_from_slice(&reply.body);
                        buf.drain(..used);
                        if s.write_all(&frame(&out).expect("frame")).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

fn token(scheme: char) -> KeyToken {
    let scheme = KeyScheme::from_char(scheme).expect("scheme");
    let text = format!(
        "{}{}",
        scheme.as_char(),
        "1".repeat(KeyToken::text_len(scheme) - 1)
    );
    text.parse().expect("token")
}

fn typed<K: TypedKey>() -> K {
    K::from_token(token('U'))
}

fn pin() -> PinBlockIn {
    PinBlockIn {
        block: EncryptedPinBlock::from_hex("0123456789ABCDEF").expect("block"),
        format: PinBlockFormat::Iso0,
        pan: "6288660100000304".into(),
    }
}

fn card() -> SsseCardRef {
    SsseCardRef {
        algorithm: CardAlgorithm::Tdes,
        city_code: "410100".into(),
        card_id: "0".repeat(32),
    }
}

fn script_ctx() -> ScriptContext {
    ScriptContext {
        algorithm: CardAlgorithm::Tdes,
        pan: "6288660100000304".into(),
        psn: "01".into(),
        atc: [0, 1],
        arqc: [0; 8],
    }
}

/// Call every method of the trait once; results are ignored, a panic fails the caller.
async fn call_every_method(h: &dyn Hsm) -> Vec<Result<(), HsmError>> {
    let zpk: Zpk = typed();
    let tpk: Tpk = typed();
    let pvk: Pvk = typed();
    let cvk: Cvk = typed();
    let zmk: Zmk = typed();
    let ibm = PinVerificationMethod::Ibm3624 {
        pvk: pvk.clone(),
        decimalisation_table: "0123456789012345".into(),
        validation_data: "N".into(),
        offset: "1234".into(),
        check_length: 4,
    };
    let arqc = ArqcRequest {
        algorithm: CardAlgorithm::Tdes,
        imk_ac: typed(),
        pan: "6288660100000304".into(),
        psn: "01".into(),
        atc: [0, 1],
        transaction_data: vec![0; 8],
        arqc: [0; 8],
        arpc: ArpcMethod::Method1 { arc: *b"00" },
    };
    let tak = MacKey::Tak(typed());
    let emv = CardKeyDerivation::Emv {
        algorithm: CardAlgorithm::Tdes,
        pan: "6288660100000304".into(),
        psn: "01".into(),
    };
    let f4 = PinBlockFormat::Iso0;
    let pk = PinKey::Tpk(tpk.clone());
    vec![
        h.translate_pin_tpk_to_zpk(&tpk, &zpk, &pin(), f4)
            .await
            .map(drop),
        h.translate_pin_zpk_to_zpk(&zpk, &zpk, &pin(), f4)
            .await
            .map(drop),
        h.verify_pin(&pk, &pin(), &ibm).await.map(drop),
        h.generate_ibm_offset(&pk, &pin(), &pvk, "0123456789012345", "N")
            .await
            .map(drop),
        h.generate_pvv(&pk, &pin(), &pvk, 1).await.map(drop),
        h.generate_cvv(&cvk, CvvKind::Cvv, "6288660100000304", "2912", "101")
            .await
            .map(drop),
        h.verify_cvv(&cvk, CvvKind::Cvv, "6288660100000304", "2912", "101", "123")
            .await
            .map(drop),
        h.verify_arqc_and_generate_arpc(&arqc).await.map(drop),
        h.issuer_script_mac(&typed(), &script_ctx(), [0x84, 0x24, 0, 0, 8], &[0; 4])
            .await
            .map(drop),
        h.encrypt_pin_change(&typed(), &script_ctx(), &pk, &pin())
            .await
            .map(drop),
        h.verify_ssse_internal_auth(&typed(), &card(), &[0; 8], &[0; 8])
            .await
            .map(drop),
        h.ssse_external_auth_cryptogram(&typed(), &card(), &[0; 8])
            .await
            .map(drop),
        h.ssse_pin_unblock_mac(&typed(), &card(), &[0; 8], &[0x12, 0x34])
            .await
            .map(drop),
        h.ssse_update_record_mac(&typed(), &card(), &[0; 8], [0x08, 0x00], &[0x08, 1, 0])
            .await
            .map(drop),
        h.generate_mac(
            &tak,
            MacAlgorithm::Iso9797Alg3,
            MacPadding::Method1,
            b"data",
        )
        .await
        .map(drop),
        h.verify_mac(
            &tak,
            MacAlgorithm::Iso9797Alg3,
            MacPadding::Method1,
            b"data",
            &[0; 8],
        )
        .await
        .map(drop),
        h.generate_key(KeyType::Zpk, KeyScheme::U, Some(&zmk))
            .await
            .map(drop),
        h.import_key(KeyType::Zpk, &zmk, &token('U').to_string(), KeyScheme::U)
            .await
            .map(drop),
        h.export_key(KeyType::Zpk, &zmk, &token('U'), KeyScheme::U)
            .await
            .map(drop),
        h.form_key_from_components(KeyType::Zmk, KeyScheme::U, &[token('U'), token('U')])
            .await
            .map(drop),
        h.key_check_value(KeyType::Zpk, &token('U')).await.map(drop),
        h.random_bytes(8).await.map(drop),
        h.generate_data_key().await.map(drop),
        h.unwrap_data_key(&DataKeyToken::from_token(token('B')))
            .await
            .map(drop),
        h.derive_card_key_under_zmk(&CardMasterKey::ImkAc(typed()), &emv, &zmk)
            .await
            .map(drop),
        h.derive_card_key_under_zek(&CardMasterKey::ImkAc(typed()), &emv, &typed())
            .await
            .map(drop),
        h.diagnostics().await.map(drop),
    ]
}

/// Reply bodies near the real ones: hex, token letters, separators, and multi-byte characters
/// placed where the client cuts replies by offset.
fn near_valid_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        "[0-9A-FUXTGB;é€\u{1F600}]{0,120}".prop_map(String::into_bytes),
        ("[0-9A-F]{0,70}", "[é€]{1,3}", "[0-9A-F]{0,8}")
            .prop_map(|(a, b, c)| format!("U{a}{b}{c}").into_bytes()),
    ]
}

#[test]
fn arbitrary_reply_bodies_give_errors_never_panics() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let script = Arc::new(Mutex::new(Script::default()));
    let addr = rt.block_on(fake_hsm(Arc::clone(&script)));
    let client = HsmClient::new(ClientConfig::new(addr));
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    runner
        .run(&near_valid_body(), |body| {
            script.lock().expect("script").body = body;
            rt.block_on(call_every_method(&client));
            Ok(())
        })
        .expect("no reply panics the client");
}

#[tokio::test]
async fn a_non_ascii_reply_is_an_error_not_a_panic() {
    let script = Arc::new(Mutex::new(Script::default()));
    let addr = fake_hsm(Arc::clone(&script)).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    // A8 answer: key under ZMK then a 6-character KCV; the `é` straddles the cut.
    script.lock().expect("script").body = "Ué12345".as_bytes().to_vec();
    let zmk: Zmk = typed();
    assert_eq!(
        client
            .export_key(KeyType::Zpk, &zmk, &token('U'), KeyScheme::U)
            .await,
        Err(HsmError::InvalidInput)
    );
    // A0 answer with the same trap after a well-formed token.
    let mut body = format!("U{}", "1".repeat(32)).into_bytes();
    body.extend_from_slice("é12345".as_bytes());
    script.lock().expect("script").body = body;
    assert_eq!(
        client
            .generate_key(KeyType::Zpk, KeyScheme::U, Some(&zmk))
            .await
            .map(drop),
        Err(HsmError::InvalidInput)
    );
}

#[tokio::test]
async fn a_reply_to_another_command_is_refused() {
    let script = Arc::new(Mutex::new(Script {
        code: Some(*b"ZZ"),
        body: b"ABCDEF0000000000hsm-sim".to_vec(),
    }));
    let addr = fake_hsm(Arc::clone(&script)).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    let answer = client.diagnostics().await;
    assert!(
        matches!(answer, Err(HsmError::UnexpectedReply { .. })),
        "{answer:?}"
    );
    // The right code (ND for NC) is accepted.
    script.lock().expect("script").code = None;
    assert_eq!(
        client.diagnostics().await.expect("NC").lmk_check_value,
        "ABCDEF"
    );
}
