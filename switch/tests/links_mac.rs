//! MACs on the issuer links (field 64/128 of ISO 8583:1987 under the link's TAK, by the link's
//! algorithm: ANSI X9.19, SM4 CBC-MAC or AES-CMAC; `switch::wire::mac`): the demo world's bank
//! hosts with MACs on (SM4, the demo's algorithm), the switch's issuer links to them, and the
//! authorization pipeline in front; a link per algorithm, and a link whose two ends disagree.

use std::sync::Arc;
use std::time::Duration;

use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use hsm_sim::keys::{KeyType, Tak, TypedKey};
use hsm_sim::Hsm;
use schemas::domain::{InstitutionId, TerminalId};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use schemas::iso8583::{self, Mti, OwnedMessage};
use switch::issuer::{IssuerLinks, LinkError, LinkState, LinksOptions};
use switch::metrics::Metrics;
use switch::pipeline::{LinkContext, Pipeline, Reply};
use switch::sim::banksim::BankSim;
use switch::sim::demo::{start_bank, start_bank_with};
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld};
use switch::store::{writer, DataKeyPanProtector, SqliteConfig, SqliteStore, Store};
use switch::wire::mac::LinkMacAlgorithm;

/// The world's banks (MACs on), the links to them and a pipeline, all signed on.
struct Net {
    _dir: tempfile::TempDir,
    world: DemoWorld,
    store: Arc<SqliteStore>,
    banks: Vec<BankSim>,
    links: Arc<IssuerLinks>,
    pipeline: Arc<Pipeline<SqliteStore>>,
    /// One hospital kiosk (its STANs move on from request to request).
    kiosk: std::sync::Mutex<Kiosk>,
}

async fn network(bank_timeout: Duration) -> Net {
    network_with_hsm(bank_timeout, None).await
}

/// As [`network`], with the switch's HSM reached over the network (payShield host commands)
/// when `switch_hsm` is given; the demo keys are under the test LMK, which it must hold.
async fn network_with_hsm(bank_timeout: Duration, switch_hsm: Option<Arc<dyn Hsm>>) -> Net {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store"),
    );
    let mut world = DemoWorld::new(1).expect("world");
    world.seed(&*store).await.expect("seed");
    world.cfg.bank_timeout = bank_timeout;
    let mut banks = Vec::new();
    let mut configs = Vec::new();
    for i in 0..world.banks.len() {
        let (sim, config) = start_bank(&world, i, "127.0.0.1:0").await.expect("bank");
        banks.push(sim);
        configs.push(config);
    }
    let switch_hsm: Arc<dyn Hsm> = switch_hsm.unwrap_or_else(|| world.hsm.clone());
    let links = Arc::new(
        IssuerLinks::start(
            configs,
            Arc::clone(&switch_hsm),
            LinksOptions::new(world.cfg.switch_id.clone()),
        )
        .expect("links"),
    );
    for b in &world.banks {
        let mut rx = links.watch_state(&b.id).expect("bank");
        tokio::time::timeout(
            Duration::from_secs(20),
            rx.wait_for(|s| *s == LinkState::SignedOn),
        )
        .await
        .expect("signed on in time")
        .expect("state");
    }
    let (w, _task) = writer::spawn(Arc::clone(&store), writer::WriterConfig::default());
    let pipeline = Pipeline::new(
        Arc::clone(&store),
        w,
        switch_hsm,
        links.clone(),
        world.keys.clone(),
        world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .expect("pipeline");
    let h = &world.hospitals[0];
    let kiosk = std::sync::Mutex::new(Kiosk::new(
        TerminalId::parse("HK000001").expect("terminal"),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    ));
    Net {
        _dir: dir,
        kiosk,
        world,
        store,
        banks,
        links,
        pipeline,
    }
}

impl Net {
    /// A card of bank 0 (no insurance: the whole amount is the bank's).
    fn card(&self) -> DemoCard {
        self.world
            .cards
            .iter()
            .find(|c| c.bank == 0 && c.insurance.is_none())
            .or_else(|| self.world.cards.iter().find(|c| c.bank == 0))
            .expect("a card of bank 0")
            .clone()
    }

    fn bank_id(&self) -> InstitutionId {
        self.world.banks[0].id.clone()
    }

    /// A purchase on the card's bank application from a hospital kiosk, through the
    /// pipeline; the answer's field 39.
    async fn bank_purchase(&self, card: &DemoCard, amount_fen: u64) -> String {
        let mut reader = MemoryChannel::new(self.world.virtual_card(card).expect("card"));
        let pending = self
            .kiosk
            .lock()
            .expect("kiosk")
            .bank_purchase(card, &mut reader, amount_fen)
            .expect("request");
        self.answer_code(&pending.request).await.0
    }

    /// The pipeline's answer to `request` on a shared listener (field 32 proven by the MAC):
    /// its field 39 and the encoded answer.
    async fn answer_code(&self, request: &[u8]) -> (String, Vec<u8>) {
        let spec = iso8583::spec("ssc87").expect("spec");
        let context = LinkContext::shared(spec);
        let Reply::Send(answer) = self.pipeline.process(request, &context).await else {
            panic!("the pipeline answers a purchase");
        };
        let code = spec.decode_unchecked(&answer).expect("answer").get_str(39);
        (code.expect("39").into_owned(), answer.to_vec())
    }

    /// A refund (no PIN) to bank 0 through the link, with the switch's STAN for it.
    fn refund(&self, pan: &str, rrn: u64) -> OwnedMessage<'static> {
        refund_to(&self.links, &self.bank_id(), pan, rrn)
    }

    fn bank_balance(&self, card: &DemoCard) -> i64 {
        self.banks[0]
            .balance_fen(card.pan.expose_digits())
            .expect("account")
    }

    fn switch_mac_failures(&self) -> u64 {
        self.links
            .stats(&self.bank_id())
            .expect("stats")
            .mac_failures
    }
}

/// A refund of 1.00 CNY (no PIN) to `bank`'s card `pan` through its link, with the switch's
/// STAN for it.
fn refund_to(
    links: &IssuerLinks,
    bank: &InstitutionId,
    pan: &str,
    rrn: u64,
) -> OwnedMessage<'static> {
    let spec = iso8583::spec("ssc87").expect("spec");
    let mut m = OwnedMessage::new(spec, Mti::new("0200").expect("mti"));
    let stan = links.next_stan(bank).value();
    m.set_str(2, pan)
        .and_then(|m| m.set_str(3, "200000"))
        .and_then(|m| m.set_u64(4, 100))
        .and_then(|m| m.set_str(7, "1123093605"))
        .and_then(|m| m.set_u64(11, u64::from(stan)))
        .and_then(|m| m.set_str(37, &format!("{rrn:012}")))
        .and_then(|m| m.set_str(41, "KIOSK001"))
        .and_then(|m| m.set_str(49, "156"))
        .expect("fields");
    m
}

/// The world's bank 0 alone, its host MACing by `bank_mac` and the switch's link to it
/// configured with `link_mac` (reconnecting quickly, so a refused sign-on is retried often).
async fn one_link(
    bank_mac: LinkMacAlgorithm,
    link_mac: LinkMacAlgorithm,
) -> (DemoWorld, BankSim, IssuerLinks) {
    let world = DemoWorld::new(1).expect("world");
    let (bank, mut config) = start_bank_with(&world, 0, "127.0.0.1:0", bank_mac, link_mac)
        .await
        .expect("bank");
    config.reconnect_backoff_min = Duration::from_millis(20);
    config.reconnect_backoff_max = Duration::from_millis(100);
    let links = IssuerLinks::start(
        vec![config],
        world.hsm.clone(),
        LinksOptions::new(world.cfg.switch_id.clone()),
    )
    .expect("links");
    (world, bank, links)
}

async fn kcv(hsm: &dyn Hsm, tak: &hsm_sim::keys::Tak) -> [u8; 3] {
    hsm.key_check_value(KeyType::Tak, tak.token())
        .await
        .expect("kcv")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tak_is_exchanged_at_sign_on_and_a_purchase_is_maced_both_ways() {
    let n = network(Duration::from_secs(5)).await;
    let taks = n.links.taks(&n.bank_id()).expect("link");
    let switch_tak = taks.current.expect("a TAK after sign-on");
    let bank_tak = n.banks[0].current_tak().expect("the bank imported it");
    // Same key on both sides (the demo banks share the test LMK, so the switch's HSM can
    // compute the check value of the bank's token too).
    assert_eq!(
        kcv(&*n.world.hsm, &switch_tak).await,
        kcv(&*n.world.hsm, &bank_tak).await
    );
    assert!(n.banks[0].stats().key_exchanges >= 1);

    let card = n.card();
    let before = n.bank_balance(&card);
    assert_eq!(n.bank_purchase(&card, 1_234).await, "00");
    assert_eq!(n.bank_balance(&card), before - 1_234);
    // The bank verified the switch's MAC (else A0) and the switch the bank's (else dropped).
    assert_eq!(n.banks[0].stats().mac_failures, 0);
    assert_eq!(n.switch_mac_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_mac_on_the_banks_answer_gets_91_and_a_queued_reversal() {
    let n = network(Duration::from_millis(500)).await;
    let card = n.card();
    let before = n.bank_balance(&card);
    n.banks[0].faults().set_corrupt_mac(true);
    assert_eq!(n.bank_purchase(&card, 2_000).await, "91");
    assert_eq!(n.switch_mac_failures(), 1);
    // ... and an operator sees it in /metrics, with the request that timed out.
    let mut metrics = String::new();
    switch::http::render_links(&mut metrics, &n.links);
    let bank = n.bank_id();
    for line in [
        format!(
            "switch_bank_link_mac_failures_total{{bank=\"{}\"}} 1",
            bank.as_str()
        ),
        format!(
            "switch_bank_link_timeouts_total{{bank=\"{}\"}} 1",
            bank.as_str()
        ),
        format!("switch_bank_link_up{{bank=\"{}\"}} 1", bank.as_str()),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing in\n{metrics}"
        );
    }
    // The bank did debit: only the reversal puts it right.
    assert_eq!(n.bank_balance(&card), before - 2_000);
    let due = n.store.due_reversals(i64::MAX, 10).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].amount_fen, 2_000);
    assert_eq!(due[0].destination, n.bank_id());

    // With the fault gone, answers are accepted again.
    n.banks[0].faults().set_corrupt_mac(false);
    let refund = n.refund(card.pan.expose_digits(), 500);
    let bank = n.bank_id();
    let answer = n.links.request(&bank, refund, Duration::from_secs(10));
    assert_eq!(answer.await.expect("answer").get_str(39).expect("39"), "00");
    assert_eq!(n.switch_mac_failures(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_in_the_middle_of_traffic_loses_no_answer() {
    let n = Arc::new(network(Duration::from_secs(5)).await);
    let pan = n.card().pan.expose_digits().to_owned();
    let before = n.links.taks(&n.bank_id()).expect("link").current;
    // Answers (the 0810 too) leave the bank 300 ms late, so requests MACed under the old TAK
    // are still in flight on both sides of the key change.
    n.banks[0]
        .faults()
        .set_response_delay(Duration::from_millis(300));
    let send = |rrn: u64| {
        let n = Arc::clone(&n);
        let pan = pan.clone();
        tokio::spawn(async move {
            let m = n.refund(&pan, rrn);
            n.links
                .request(&n.bank_id(), m, Duration::from_secs(10))
                .await
                .map(|a| a.get_str(39).expect("39").into_owned())
        })
    };
    let mut in_flight: Vec<_> = (0..20).map(|i| send(100 + i)).collect();
    let exchange = {
        let n = Arc::clone(&n);
        tokio::spawn(async move { n.links.exchange_keys(&n.bank_id()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Sent after the bank took the new TAK, MACed under the old one (the switch changes only
    // on the 0810): the bank accepts its previous TAK and answers under it.
    in_flight.extend((0..20).map(|i| send(200 + i)));
    exchange.await.expect("task").expect("key exchange");
    let after = n.links.taks(&n.bank_id()).expect("link");
    assert_ne!(after.current, before);
    assert_eq!(after.previous, before);
    // And traffic under the new TAK.
    in_flight.extend((0..5).map(|i| send(300 + i)));
    for t in in_flight {
        assert_eq!(t.await.expect("task").expect("answered"), "00");
    }
    assert_eq!(n.switch_mac_failures(), 0);
    assert_eq!(n.banks[0].stats().mac_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_good_mac_gets_a0_from_the_bank_and_changes_nothing() {
    let n = network(Duration::from_secs(5)).await;
    let card = n.card();
    let before = n.bank_balance(&card);
    let stream = tokio::net::TcpStream::connect(n.banks[0].addr())
        .await
        .expect("connect");
    let mut conn = tokio_util::codec::Framed::new(stream, FrameCodec::new(LengthHeader::Binary2));
    let spec = iso8583::spec("ssc87").expect("spec");
    let mut forged = n.refund(card.pan.expose_digits(), 900);
    forged.set_bytes(64, &[0x5A; 8]).expect("64");
    let unmaced = n.refund(card.pan.expose_digits(), 901);
    for m in [forged, unmaced] {
        let mut wire = Vec::new();
        spec.encode(&m, &mut wire).expect("encode");
        conn.send(Frame {
            tpdu: None,
            message: wire.into(),
        })
        .await
        .expect("send");
        let answer = tokio::time::timeout(Duration::from_secs(10), conn.next())
            .await
            .expect("answer in time")
            .expect("open")
            .expect("framed");
        let a = spec.decode(&answer.message).expect("decode");
        assert_eq!(a.get_str(39).expect("39"), "A0");
    }
    assert_eq!(n.banks[0].stats().mac_failures, 2);
    assert_eq!(n.bank_balance(&card), before);
}

/// An `hsm-sim` server (test LMK) that answers each command `latency` late, one command at a
/// time per connection, as a busy or distant HSM does; and a client with `connections` of them.
async fn slow_network_hsm(latency: Duration, connections: usize) -> Arc<dyn Hsm> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = hsm_sim::server::ServerConfig::default();
    config.faults.latency_ms = u64::try_from(latency.as_millis()).expect("ms");
    let server =
        hsm_sim::server::Server::new(Arc::new(hsm_sim::SoftHsm::with_test_lmk()), config, None);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _stop = stop; // the server runs for the whole test
        let _ = server.serve(listener, stopped).await;
    });
    let mut client = hsm_sim::ClientConfig::new(addr);
    client.connections = connections;
    client.timeout_ms = 10_000;
    Arc::new(hsm_sim::HsmClient::new(client))
}

/// Answers on one link are checked at once, not one after the other: with a network HSM that
/// takes 150 ms a command, 24 answers checked in turn would take 3.6 s, past every request's
/// 3 s timeout for the last of them; checked together (16 HSM connections) all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_on_one_link_are_mac_checked_at_once_so_a_slow_hsm_does_not_queue_them() {
    const REQUESTS: u64 = 24;
    let hsm = slow_network_hsm(Duration::from_millis(150), 16).await;
    let n = Arc::new(network_with_hsm(Duration::from_secs(5), Some(hsm)).await);
    let pan = n.card().pan.expose_digits().to_owned();
    let before = n.banks[0].balance_fen(&pan).expect("account");
    let mut requests = Vec::new();
    for i in 0..REQUESTS {
        let n = Arc::clone(&n);
        let pan = pan.clone();
        requests.push(tokio::spawn(async move {
            let refund = n.refund(&pan, 700 + i);
            let bank = n.bank_id();
            let answer = n.links.request(&bank, refund, Duration::from_secs(3));
            answer
                .await
                .map(|a| a.get_str(39).expect("39").into_owned())
        }));
    }
    for r in requests {
        let code = r.await.expect("task").expect("answered within its timeout");
        assert_eq!(code, "00");
    }
    assert_eq!(
        n.banks[0].balance_fen(&pan).expect("account"),
        before + 100 * REQUESTS as i64
    );
    assert_eq!(n.switch_mac_failures(), 0);
    let stats = n.links.stats(&n.bank_id()).expect("stats");
    assert_eq!(stats.mux.timeouts, 0);
}

/// Each MAC algorithm on a bank link: the sign-on agrees on it, the key exchange brings a TAK
/// of its scheme to both ends (same check value), and a refund MACed by it is verified by the
/// bank (else A0) and its answer by the switch (else dropped and timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_link_of_each_mac_algorithm_signs_on_and_carries_a_maced_refund() {
    for algorithm in LinkMacAlgorithm::ALL {
        let (world, bank, links) = one_link(algorithm, algorithm).await;
        let id = world.banks[0].id.clone();
        let mut state = links.watch_state(&id).expect("bank");
        tokio::time::timeout(
            Duration::from_secs(20),
            state.wait_for(|s| *s == LinkState::SignedOn),
        )
        .await
        .expect("signed on in time")
        .expect("state");
        let tak: Tak = links.taks(&id).expect("link").current.expect("a TAK");
        assert_eq!(tak.token().scheme(), algorithm.key_scheme(), "{algorithm}");
        let bank_tak = bank.current_tak().expect("the bank imported it");
        assert_eq!(bank_tak.token().scheme(), algorithm.key_scheme());
        assert_eq!(
            kcv(&*world.hsm, &tak).await,
            kcv(&*world.hsm, &bank_tak).await
        );
        let card = world.cards.iter().find(|c| c.bank == 0).expect("a card");
        let pan = card.pan.expose_digits();
        let before = bank.balance_fen(pan).expect("account");
        let answer = links
            .request(
                &id,
                refund_to(&links, &id, pan, 42),
                Duration::from_secs(10),
            )
            .await
            .expect("answered");
        assert_eq!(answer.get_str(39).expect("39"), "00", "{algorithm}");
        assert_eq!(bank.balance_fen(pan).expect("account"), before + 100);
        assert_eq!(bank.stats().mac_failures, 0, "{algorithm}");
        let stats = links.stats(&id).expect("stats");
        assert_eq!(stats.mac_failures, 0, "{algorithm}");
        assert_eq!(stats.mac_algorithm_mismatches, 0);
        assert_eq!(bank.stats().mac_algorithm_mismatches, 0);
        links.shutdown().await;
        bank.stop().await;
    }
}

/// A link whose two ends name different MAC algorithms never signs on, whichever end says
/// what: the bank refuses the sign-on (63, saying its own algorithm), the switch reads the
/// bank's algorithm, logs an error and counts it, and the link stays down (retrying) with no
/// key exchanged; a bank leg on it is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_whose_ends_disagree_on_the_mac_algorithm_fails_at_sign_on() {
    for (bank_mac, link_mac) in [
        (LinkMacAlgorithm::Sm4, LinkMacAlgorithm::X919),
        (LinkMacAlgorithm::X919, LinkMacAlgorithm::AesCmac),
    ] {
        let (world, bank, links) = one_link(bank_mac, link_mac).await;
        let id = world.banks[0].id.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while links.stats(&id).expect("stats").mac_algorithm_mismatches < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "three refused sign-ons in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stats = links.stats(&id).expect("stats");
        assert_ne!(stats.state, LinkState::SignedOn);
        assert_eq!(stats.key_exchanges, 0);
        assert!(links.taks(&id).expect("link").current.is_none());
        let b = bank.stats();
        assert!(b.mac_algorithm_mismatches >= 3, "the bank refused them");
        assert_eq!((b.sign_ons, b.key_exchanges), (0, 0));
        let pan = world.cards[0].pan.expose_digits().to_owned();
        let refused = links
            .request(&id, refund_to(&links, &id, &pan, 7), Duration::from_secs(1))
            .await;
        assert!(
            matches!(refused, Err(LinkError::Down | LinkError::NotSignedOn)),
            "{refused:?}"
        );
        let mut metrics = String::new();
        switch::http::render_links(&mut metrics, &links);
        let up = format!("switch_bank_link_up{{bank=\"{}\"}} 0", id.as_str());
        assert!(
            metrics.lines().any(|l| l == up),
            "{up} missing in\n{metrics}"
        );
        let prefix = format!(
            "switch_bank_link_mac_algorithm_mismatches_total{{bank=\"{}\"}} ",
            id.as_str()
        );
        let counted = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse::<u64>().ok())
            .expect("the mismatch counter");
        assert!(counted >= 3, "{counted}");
        links.shutdown().await;
        bank.stop().await;
    }
}

/// The demo's kiosks MAC with SM4 under their acquirer's SM4 TAK: a purchase so MACed is
/// accepted and its answer carries an SM4 MAC the kiosk's acquirer can verify; the same
/// purchase MACed under a wrong key, or by X9.19 under the right key's bytes, is declined A0
/// and moves no money.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_request_maced_with_sm4_is_accepted_and_a_wrong_mac_declined() {
    let n = network(Duration::from_secs(5)).await;
    let hospital = n.world.hospitals[0].clone();
    let tak = n.world.keys.acquirers[&hospital.id]
        .tak
        .clone()
        .expect("the hospital's TAK");
    assert_eq!(
        LinkMacAlgorithm::of_tak(&tak).expect("alg"),
        LinkMacAlgorithm::Sm4
    );
    let card = n.card();
    let before = n.bank_balance(&card);
    let mut reader = MemoryChannel::new(n.world.virtual_card(&card).expect("card"));
    let good = n
        .kiosk
        .lock()
        .expect("kiosk")
        .bank_purchase(&card, &mut reader, 700)
        .expect("request");
    let (code, answer) = n.answer_code(&good.request).await;
    assert_eq!(code, "00");
    assert_eq!(n.bank_balance(&card), before - 700);
    let spec = iso8583::spec("ssc87").expect("spec");
    let decoded = spec.decode(&answer).expect("answer");
    switch::wire::mac::verify(&*n.world.hsm, std::slice::from_ref(&tak), &answer, &decoded)
        .await
        .expect("the answer is SM4-MACed under the hospital's TAK");

    let kiosk = |terminal: &str| {
        Kiosk::new(
            TerminalId::parse(terminal).expect("terminal"),
            hospital.id.clone(),
            Some(hospital.code.clone()),
            "2",
        )
    };
    let right_bytes = switch::sim::world::clear_keys::acquirer_tak(&hospital.id);
    for (what, mut forger) in [
        (
            "a wrong SM4 key",
            kiosk("HK000002").with_tak(Some([0x5A; 16])),
        ),
        (
            "X9.19 under the right key's bytes",
            kiosk("HK000003")
                .with_tak(Some(right_bytes))
                .with_mac_algorithm(LinkMacAlgorithm::X919),
        ),
    ] {
        let mut reader = MemoryChannel::new(n.world.virtual_card(&card).expect("card"));
        let p = forger
            .bank_purchase(&card, &mut reader, 700)
            .expect("request");
        assert_eq!(n.answer_code(&p.request).await.0, "A0", "{what}");
    }
    assert_eq!(n.bank_balance(&card), before - 700);
}
