//! The HSM's refusals that protect keys and PINs from a caller on the network (issue 24,
//! finding 4): clear data keys only on a loopback (or TLS) link, and only the configured
//! decimalisation tables (the PIN-extraction attack of Bond and Zieliński, 2003).

mod common;

use common::non_loopback_ip;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hsm_sim::crypto::WorkingCipher;
use hsm_sim::hsm::{PinBlockIn, PinVerificationMethod};
use hsm_sim::keys::*;
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use hsm_sim::server::{Server, ServerConfig};
use hsm_sim::{ClientConfig, Hsm, HsmClient, HsmError, SoftHsm};

const TPK_CLEAR: &str = "0123456789ABCDEFFEDCBA9876543210";
const PVK_CLEAR: &str = "0123456789ABCDEFFEDCBA9876543210";

async fn serve_on(ip: IpAddr, hsm: Arc<SoftHsm>) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(Server::new(hsm, ServerConfig::default(), None).serve(listener, rx));
    (addr, tx)
}

fn tok<K: TypedKey>(h: &SoftHsm, clear: &str) -> K {
    K::from_token(
        h.import_clear_key(K::KEY_TYPE, KeyScheme::U, clear)
            .expect("clear key"),
    )
}

/// PIN 4524 for PAN 1122334455667788 in format 0 under the TPK.
fn pin_4524() -> PinBlockIn {
    let mut b = hex::decode("044524FFFFFFFFFF").expect("hex");
    b.iter_mut()
        .zip(hex::decode("0000233445566778").expect("hex"))
        .for_each(|(x, y)| *x ^= y);
    let k = ClearKey::new(KeyScheme::U, hex::decode(TPK_CLEAR).expect("hex")).expect("key");
    WorkingCipher::new(&k)
        .expect("cipher")
        .encrypt_block(&mut b);
    PinBlockIn {
        block: EncryptedPinBlock::from_bytes(b).expect("block"),
        format: PinBlockFormat::Iso0,
        pan: "1122334455667788".into(),
    }
}

fn ibm(pvk: &Pvk, table: &str) -> PinVerificationMethod {
    PinVerificationMethod::Ibm3624 {
        pvk: pvk.clone(),
        decimalisation_table: table.into(),
        validation_data: "1122334455667788".into(),
        offset: "0000".into(),
        check_length: 4,
    }
}

#[tokio::test]
async fn clear_data_keys_are_not_served_on_a_network_listener() {
    let Some(ip) = non_loopback_ip() else {
        panic!("this test needs a non-loopback IPv4 address on the machine");
    };
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let (_, token) = hsm.generate_data_key().await.expect("XM in process");
    let (addr, _stop) = serve_on(ip, Arc::clone(&hsm)).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    for (command, body) in [(b"XM", String::new()), (b"XO", token.to_string())] {
        assert_eq!(
            client.call(command, body.as_bytes()).await,
            Err(HsmError::NotAuthorised),
            "{}",
            String::from_utf8_lossy(command)
        );
    }
    // Other commands are served on the same listener.
    assert!(client.diagnostics().await.is_ok());
}

#[tokio::test]
async fn clear_data_keys_are_served_on_loopback() {
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let (_, token) = hsm.generate_data_key().await.expect("XM in process");
    let (addr, _stop) = serve_on(IpAddr::from([127, 0, 0, 1]), Arc::clone(&hsm)).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    assert!(client.call(b"XM", b"").await.is_ok());
    assert!(client
        .call(b"XO", token.to_string().as_bytes())
        .await
        .is_ok());
}

#[tokio::test]
async fn a_caller_supplied_decimalisation_table_is_refused_by_default() {
    let h = SoftHsm::with_test_lmk();
    let tpk = PinKey::Tpk(tok(&h, TPK_CLEAR));
    let pvk: Pvk = tok(&h, PVK_CLEAR);
    let pin = pin_4524();
    // The attack: a table mapping every hex digit to 0 tells whether the PIN has a given digit.
    for table in ["0000000000000000", "1234567890123456", "0123456789012346"] {
        assert_eq!(
            h.verify_pin(&tpk, &pin, &ibm(&pvk, table)).await,
            Err(HsmError::DecimalisationTable),
            "{table}"
        );
        assert_eq!(
            h.generate_ibm_offset(&tpk, &pin, &pvk, table, "1122334455667788")
                .await,
            Err(HsmError::DecimalisationTable),
            "{table}"
        );
    }
    // The configured (default) table is accepted.
    assert!(h
        .verify_pin(&tpk, &pin, &ibm(&pvk, "0123456789012345"))
        .await
        .is_ok());
}

#[tokio::test]
async fn the_decimalisation_check_holds_over_the_network_and_for_lmk_pins() {
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let tpk = PinKey::Tpk(tok(&hsm, TPK_CLEAR));
    let pvk: Pvk = tok(&hsm, PVK_CLEAR);
    let (addr, _stop) = serve_on(IpAddr::from([127, 0, 0, 1]), Arc::clone(&hsm)).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    assert_eq!(
        client
            .verify_pin(&tpk, &pin_4524(), &ibm(&pvk, "0000000000000000"))
            .await,
        Err(HsmError::DecimalisationTable)
    );
    let lmk_pin = hsm
        .encrypt_clear_pin_under_lmk("4524", "1122334455667788")
        .expect("LMK PIN");
    assert_eq!(
        hsm.generate_ibm_offset_lmk(
            &pvk,
            &lmk_pin,
            "1122334455667788",
            "0000000000000000",
            "1122334455667788"
        ),
        Err(HsmError::DecimalisationTable)
    );
}

/// Copy `from` to `to`, appending every byte to `log`.
async fn pipe<R, W>(mut from: R, mut to: W, log: Arc<std::sync::Mutex<Vec<u8>>>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
        log.lock().expect("log").extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP relay from a loopback port to `upstream` that records every byte in both directions:
/// what an eavesdropper on the HSM link would see.
async fn recording_relay(upstream: SocketAddr) -> (SocketAddr, Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, Arc::clone(&log)));
            tokio::spawn(pipe(sr, cw, Arc::clone(&log)));
        }
    });
    (addr, seen)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn data_keys_never_cross_the_hsm_link_in_clear() {
    const CLEAR: &str = "00112233445566778899AABBCCDDEEFF0123456789ABCDEFFEDCBA9876543210";
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let token = DataKeyToken::from_token(
        hsm.import_clear_key(KeyType::DataKey, KeyScheme::B, CLEAR)
            .expect("data key"),
    );
    let (upstream, _stop) = serve_on(IpAddr::from([127, 0, 0, 1]), Arc::clone(&hsm)).await;
    let (relay, seen) = recording_relay(upstream).await;
    let client = HsmClient::new(ClientConfig::new(relay));

    // The key the client unwraps works like the HSM's own copy.
    let remote = client.unwrap_data_key(&token).await.expect("unwrap");
    let local = hsm.unwrap_data_key(&token).await.expect("local unwrap");
    let sealed = remote.seal(b"6288660100000304", b"card.pan").expect("seal");
    assert_eq!(
        local.open(&sealed, b"card.pan").expect("open"),
        b"6288660100000304"
    );
    assert_eq!(remote.keyed_hash(b"x"), local.keyed_hash(b"x"));
    // A new key and its token agree too.
    let (fresh, fresh_token) = client.generate_data_key().await.expect("generate");
    let again = hsm.unwrap_data_key(&fresh_token).await.expect("local");
    assert_eq!(fresh.keyed_hash(b"x"), again.keyed_hash(b"x"));

    let wire = seen.lock().expect("log").clone();
    assert!(!wire.is_empty());
    assert!(
        !contains(&wire, CLEAR.as_bytes()) && !contains(&wire, &hex::decode(CLEAR).expect("hex")),
        "the clear data key crossed the link"
    );
}

#[tokio::test]
async fn the_client_unwraps_data_keys_from_a_network_listener() {
    let ip = non_loopback_ip().expect("this test needs a non-loopback IPv4 address");
    let hsm = Arc::new(SoftHsm::with_test_lmk());
    let (_, token) = hsm.generate_data_key().await.expect("XM in process");
    let (addr, _stop) = serve_on(ip, Arc::clone(&hsm)).await;
    let client = HsmClient::new(ClientConfig::new(addr));
    let remote = client.unwrap_data_key(&token).await.expect("unwrap");
    let local = hsm.unwrap_data_key(&token).await.expect("local");
    assert_eq!(remote.keyed_hash(b"pan"), local.keyed_hash(b"pan"));
    assert!(client.generate_data_key().await.is_ok());
}
