//! The job-centre identity session through the acquirer port (`schemas/iso8583/ssc87.md`,
//! "Identity session"): a kiosk with a virtual card sends the 0100 the `kiosk` binary sends,
//! the switch checks the card, the cardholder on record and the card's cryptogram through the
//! HSM, and the card checks the switch's. Each decline is answered with its documented code and
//! audited.

#[path = "support/acquirer_node.rs"]
mod acquirer_node;

use acquirer_node::{connect, exchange, start_node};
use card_apdu::channel::memory::MemoryChannel;
use card_apdu::kiosk::identity::{external_auth_of_field48, CardEvidence};
use schemas::domain::{InstitutionId, TerminalId};
use schemas::iso8583::{self, OwnedMessage};
use std::sync::Arc;
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld, JOB_CENTRE_ID};
use switch::store::{
    CardStatus, DataKeyPanProtector, OperatorStore, SqliteConfig, SqliteStore, Store,
};

struct Net {
    _dir: tempfile::TempDir,
    world: DemoWorld,
    store: Arc<SqliteStore>,
    conn: acquirer_node::Conn,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn net() -> Net {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .unwrap(),
    );
    store.install_audit_mac_key(Arc::new(switch::operator::keys::audit_key_for_tests()));
    let mut world = DemoWorld::new(1).unwrap();
    world.seed(&*store).await.unwrap();
    let (addr, stop) = start_node(&store, &world).await;
    let conn = connect(addr).await;
    Net {
        _dir: dir,
        world,
        store,
        conn,
        _stop: stop,
    }
}

fn job_centre_kiosk() -> Kiosk {
    Kiosk::new(
        TerminalId::parse("JC000001").unwrap(),
        InstitutionId::parse(JOB_CENTRE_ID).unwrap(),
        None,
        "9",
    )
}

fn card(world: &DemoWorld, algorithm: switch::store::IccAlgorithm) -> DemoCard {
    world
        .cards
        .iter()
        .find(|c| c.algorithm == algorithm)
        .unwrap()
        .clone()
}

fn field(answer: &[u8], id: u16) -> Option<String> {
    let m = iso8583::spec("ssc87").unwrap().decode(answer).unwrap();
    m.has(id).then(|| m.get_str(id).unwrap().into_owned())
}

/// The identity-session entries of the audit log: (subject, response code, reason).
async fn audited(store: &SqliteStore) -> Vec<(String, String, String)> {
    let page = store.audit_page(0, 1_000).await.unwrap();
    page.into_iter()
        .filter(|r| r.entry.action == "identity.session")
        .map(|r| {
            let d: serde_json::Value = serde_json::from_str(&r.entry.detail).unwrap();
            (
                r.entry.subject,
                d["response_code"].as_str().unwrap().to_owned(),
                d["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Re-encodes `request` with `change` applied and a fresh MAC under the kiosk's TAK.
fn tampered(
    kiosk: &Kiosk,
    request: &[u8],
    change: impl FnOnce(&mut OwnedMessage<'static>),
) -> Vec<u8> {
    let leaked: &'static [u8] = Box::leak(request.to_vec().into_boxed_slice());
    let mut m = iso8583::spec("ssc87")
        .unwrap()
        .decode(leaked)
        .unwrap()
        .to_owned_message();
    change(&mut m);
    kiosk.seal(&mut m).unwrap()
}

#[tokio::test]
async fn a_genuine_card_of_its_cardholder_opens_a_session_and_the_card_accepts_the_switch() {
    let mut n = net().await;
    let mut kiosk = job_centre_kiosk();
    for algorithm in [
        switch::store::IccAlgorithm::Sm4,
        switch::store::IccAlgorithm::Tdes,
    ] {
        let c = card(&n.world, algorithm);
        let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
        let pending = kiosk.identity_session(&mut reader).unwrap();
        let answer = exchange(&mut n.conn, &pending.request).await;
        assert_eq!(field(&answer, 39).as_deref(), Some("00"), "{algorithm:?}");
        let outcome = kiosk
            .finish_identity_session(&mut reader, &pending, &answer)
            .unwrap();
        assert!(outcome.card_authenticated && outcome.backend_authenticated);
        assert_eq!(outcome.card_identification_code, c.card_identification_code);
    }
    let audit = audited(&n.store).await;
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|(_, code, _)| code == "00"));
}

#[tokio::test]
async fn a_card_identification_code_the_switch_does_not_know_is_declined_14_and_audited() {
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Sm4);
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = job_centre_kiosk();
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let unknown = "410100D1560000059999999999999999";
    let request = tampered(&kiosk, &pending.request, |m| {
        m.set_str(120, unknown).unwrap();
    });
    let answer = exchange(&mut n.conn, &request).await;
    assert_eq!(field(&answer, 39).as_deref(), Some("14"));
    assert_eq!(
        field(&answer, 48),
        None,
        "no cryptogram for a declined session"
    );
    let audit = audited(&n.store).await;
    assert_eq!(
        audit,
        vec![(
            format!("card_identification_code:{unknown}"),
            "14".to_owned(),
            "no card with this card identification code".to_owned()
        )]
    );
}

#[tokio::test]
async fn the_card_identification_code_of_another_card_than_field_2_is_declined_14() {
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Sm4);
    let other = n
        .world
        .cards
        .iter()
        .find(|o| o.pan != c.pan)
        .unwrap()
        .clone();
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = job_centre_kiosk();
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let request = tampered(&kiosk, &pending.request, |m| {
        m.set_str(2, other.pan.expose_digits()).unwrap();
    });
    let answer = exchange(&mut n.conn, &request).await;
    assert_eq!(field(&answer, 39).as_deref(), Some("14"));
}

#[tokio::test]
async fn a_social_security_number_not_the_cardholders_is_declined_56() {
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Sm4);
    let other = n
        .world
        .cards
        .iter()
        .find(|o| o.citizen_id != c.citizen_id)
        .unwrap()
        .clone();
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = job_centre_kiosk();
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let request = tampered(&kiosk, &pending.request, |m| {
        m.set_str(61, &other.citizen_id).unwrap();
    });
    let answer = exchange(&mut n.conn, &request).await;
    assert_eq!(field(&answer, 39).as_deref(), Some("56"));
    let audit = audited(&n.store).await;
    assert_eq!(audit[0].2, "field 61 is not the card's cardholder");
}

#[tokio::test]
async fn a_card_reported_lost_is_declined_41_and_audited() {
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Sm4);
    let record = n.store.card_by_pan(&c.pan).await.unwrap().unwrap();
    n.store
        .set_card_status(record.card_id, CardStatus::Lost, Some("reported lost"), 1)
        .await
        .unwrap();
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = job_centre_kiosk();
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let answer = exchange(&mut n.conn, &pending.request).await;
    assert_eq!(field(&answer, 39).as_deref(), Some("41"));
    assert_eq!(field(&answer, 48), None);
    let outcome = kiosk
        .finish_identity_session(&mut reader, &pending, &answer)
        .unwrap();
    assert!(!outcome.card_authenticated && !outcome.backend_authenticated);
    let audit = audited(&n.store).await;
    assert_eq!(
        audit,
        vec![(
            format!("card:{}", record.card_id.0),
            "41".to_owned(),
            "card status".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_card_cryptogram_that_does_not_verify_is_declined_05_and_audited() {
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Sm4);
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = job_centre_kiosk();
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let request = tampered(&kiosk, &pending.request, |m| {
        let f48 = m.get_str(48).unwrap().into_owned();
        let mut e = CardEvidence::from_field48(&f48).unwrap();
        e.internal_auth_response[0] ^= 0x01;
        m.set_str(48, &e.to_field48()).unwrap();
    });
    let answer = exchange(&mut n.conn, &request).await;
    assert_eq!(field(&answer, 39).as_deref(), Some("05"));
    assert_eq!(field(&answer, 48), None);
    let audit = audited(&n.store).await;
    assert_eq!(audit[0].1, "05");
    assert_eq!(
        audit[0].2,
        "card cryptogram (INTERNAL AUTHENTICATE) does not verify"
    );
}

#[tokio::test]
async fn a_card_answer_to_another_requests_challenge_is_declined_05() {
    // The answer is good, but to the challenge of a request with another STAN: replayed
    // card data is worth nothing in a new request.
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Tdes);
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = job_centre_kiosk();
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let request = tampered(&kiosk, &pending.request, |m| {
        m.set_u64(11, 424_242).unwrap();
    });
    let answer = exchange(&mut n.conn, &request).await;
    assert_eq!(field(&answer, 39).as_deref(), Some("05"));
}

#[tokio::test]
async fn the_same_session_request_sent_again_gets_no_second_cryptogram() {
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Sm4);
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = job_centre_kiosk();
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let first = exchange(&mut n.conn, &pending.request).await;
    assert_eq!(field(&first, 39).as_deref(), Some("00"));
    assert!(external_auth_of_field48(&field(&first, 48).unwrap()).is_ok());
    let again = exchange(&mut n.conn, &pending.request).await;
    assert_eq!(field(&again, 39).as_deref(), Some("94"));
    assert_eq!(field(&again, 48), None);
}

#[tokio::test]
async fn a_hospital_cannot_open_identity_sessions_58() {
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Sm4);
    let h = n.world.hospitals[0].clone();
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = Kiosk::new(
        TerminalId::parse("HK000001").unwrap(),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    );
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let answer = exchange(&mut n.conn, &pending.request).await;
    assert_eq!(field(&answer, 39).as_deref(), Some("58"));
}

#[tokio::test]
async fn a_session_request_without_a_valid_mac_is_refused_a0() {
    let mut n = net().await;
    let c = card(&n.world, switch::store::IccAlgorithm::Sm4);
    let mut reader = MemoryChannel::new(n.world.virtual_card(&c).unwrap());
    let mut kiosk = job_centre_kiosk().with_tak(Some([0x5A; 16]));
    let pending = kiosk.identity_session(&mut reader).unwrap();
    let answer = exchange(&mut n.conn, &pending.request).await;
    assert_eq!(field(&answer, 39).as_deref(), Some("A0"));
}
