//! Writes the fuzz seeds of every fuzz crate from real traffic, so the corpora start from
//! messages the system really exchanges: the demo world's kiosk requests of every service and
//! the switch's answers, what the banks and the switch say on the issuer links, the payShield
//! commands the switch sends its network HSM, the cards' field 55, settlement events of every
//! type, and the codec's published vectors. Recorded through byte-level proxies between the
//! switch and its banks and HSM.
//!
//! Not part of the suite (ignored); regenerate with
//! `cargo test -p switch-fuzz --test seeds -- --ignored` and commit the `corpus/` folders.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use card_apdu::channel::memory::MemoryChannel;
use hsm_sim::server::{Server, ServerConfig};
use hsm_sim::{ClientConfig, HsmClient, SoftHsm};
use schemas::domain::TerminalId;
use schemas::events::{sample, EventType};
use schemas::iso8583::{self, framing::LengthHeader};
use switch::issuer::{IssuerLinks, LinkState, LinksOptions};
use switch::metrics::Metrics;
use switch::pipeline::{LinkContext, Pipeline, Reply};
use switch::sim::demo::start_bank;
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoWorld, DEMO_PIN};
use switch::store::{writer, DataKeyPanProtector, SqliteConfig, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Tape = Arc<Mutex<Vec<u8>>>;

/// A proxy to `upstream` recording what flows each way: (address, client→server, server→client).
async fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, Tape, Tape) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (up, down): (Tape, Tape) = Default::default();
    let (u, d) = (Arc::clone(&up), Arc::clone(&down));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, Arc::clone(&u)));
            tokio::spawn(pump(sr, cw, Arc::clone(&d)));
        }
    });
    (addr, up, down)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    tape: Tape,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        tape.lock().expect("tape").extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The payloads of a stream of 2-byte-length-prefixed frames.
fn frames(tape: &Tape) -> Vec<Vec<u8>> {
    let bytes = tape.lock().expect("tape").clone();
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while let [hi, lo, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo]));
        if n > tail.len() {
            break;
        }
        out.push(tail[..n].to_vec());
        rest = &tail[n..];
    }
    out
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace")
}

/// Writes `inputs` to `<crate>/fuzz/corpus/<target>/`, named by content, deduplicated.
fn write(krate: &str, target: &str, inputs: &[Vec<u8>]) {
    let dir = root().join(krate).join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for data in inputs {
        let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        std::fs::write(dir.join(format!("seed-{h:016x}")), data).expect("write seed");
    }
    eprintln!("{krate}/{target}: {} seeds", inputs.len());
}

fn with_header(header: LengthHeader, m: &[u8]) -> Vec<u8> {
    let n = m.len();
    let mut out = match header {
        LengthHeader::Binary2 => u16::try_from(n).expect("short").to_be_bytes().to_vec(),
        LengthHeader::Ascii4 => format!("{n:04}").into_bytes(),
        LengthHeader::Bcd2 => {
            let d = format!("{n:04}").into_bytes();
            vec![
                (d[0] - b'0') << 4 | (d[1] - b'0'),
                (d[2] - b'0') << 4 | (d[3] - b'0'),
            ]
        }
    };
    out.extend_from_slice(m);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fuzz seeds; run by hand"]
async fn write_the_fuzz_seeds_from_real_traffic() {
    let dir = tempfile_dir();
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store"),
    );
    let mut world = DemoWorld::new(2).expect("world");
    world.seed(&*store).await.expect("seed");

    // The switch's HSM over the network, behind a recording proxy.
    let hsm_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hsm_addr = hsm_listener.local_addr().expect("addr");
    let (_stop_hsm, rx) = tokio::sync::watch::channel(false);
    let server = Server::new(
        Arc::new(SoftHsm::with_test_lmk()),
        ServerConfig::default(),
        None,
    );
    tokio::spawn(server.serve(hsm_listener, rx));
    let (hsm_proxy, hsm_up, hsm_down) = recording_proxy(hsm_addr).await;
    let hsm: Arc<dyn hsm_sim::Hsm> = Arc::new(HsmClient::new(ClientConfig::new(hsm_proxy)));

    // Bank 0 behind a recording proxy, the others direct.
    let mut sims = Vec::new();
    let mut configs = Vec::new();
    let mut bank_tapes = None;
    for i in 0..world.banks.len() {
        let (sim, mut config) = start_bank(&world, i, "127.0.0.1:0").await.expect("bank");
        if i == 0 {
            let (proxy, up, down) = recording_proxy(sim.addr()).await;
            config.address = proxy.to_string();
            bank_tapes = Some((up, down));
        }
        sims.push(sim);
        configs.push(config);
    }
    let (bank_up, bank_down) = bank_tapes.expect("bank 0");
    let links = Arc::new(
        IssuerLinks::start(
            configs,
            Arc::clone(&hsm),
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
        hsm,
        links.clone(),
        world.keys.clone(),
        world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .expect("pipeline");

    // Every service from a hospital kiosk, with cards of bank 0.
    let h = &world.hospitals[0];
    let mut kiosk = Kiosk::new(
        TerminalId::parse("HK000001").expect("terminal"),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    );
    let spec = iso8583::spec("ssc87").expect("spec");
    let context = LinkContext::shared(spec);
    let mut requests = Vec::new();
    let mut answers = Vec::new();
    let cards: Vec<_> = world
        .cards
        .iter()
        .filter(|c| c.bank == 0)
        .cloned()
        .collect();
    for card in &cards {
        let mut channel = MemoryChannel::new(world.virtual_card(card).expect("card"));
        let mut batch = Vec::new();
        if card.insurance.is_some() {
            let bill = kiosk
                .medical_bill(card, &mut channel, 12_345, "B0001", DEMO_PIN)
                .expect("bill");
            batch.push(bill.request);
            batch.push(
                kiosk
                    .personal_balance(card, &mut channel)
                    .expect("balance")
                    .request,
            );
            let pre = kiosk
                .preauthorization(card, &mut channel, 5_000)
                .expect("pre-authorization")
                .request;
            batch.push(pre.clone());
            batch.push(kiosk.completion_of(&pre, 4_000).expect("completion"));
        }
        let purchase = kiosk
            .bank_purchase(card, &mut channel, 2_500)
            .expect("purchase")
            .request;
        batch.push(purchase.clone());
        batch.push(kiosk.reversal_of(&purchase).expect("reversal").0);
        batch.push(
            kiosk
                .bank_balance(card, &mut channel)
                .expect("balance")
                .request,
        );
        batch.push(kiosk.benefit_credit(card, 10_000).expect("benefit").0);
        for request in batch {
            if let Reply::Send(answer) = pipeline.process(&request, &context).await {
                answers.push(answer.to_vec());
            }
            requests.push(request);
        }
    }
    // Let the link's echo and late answers settle.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let to_bank = frames(&bank_up);
    let from_bank = frames(&bank_down);
    let mut hsm_commands = frames(&hsm_up);
    hsm_commands.extend(frames(&hsm_down));
    let mut link_messages = from_bank.clone();
    link_messages.extend(to_bank.iter().cloned());

    write("switch", "switch_request", &requests);
    write("switch", "issuer_answer", &link_messages);
    let mut ssc87 = requests.clone();
    ssc87.extend(answers.iter().cloned());
    ssc87.extend(link_messages.iter().cloned());
    write("schemas", "decode_ssc87", &ssc87);
    for (target, header) in [
        ("frame_binary2", LengthHeader::Binary2),
        ("frame_ascii4", LengthHeader::Ascii4),
        ("frame_bcd2", LengthHeader::Bcd2),
    ] {
        // The framer's maximum is 4 × the first byte: a few frames, and a couple back to back.
        let mut framed: Vec<Vec<u8>> = ssc87
            .iter()
            .take(12)
            .map(|m| with_header(header, m))
            .collect();
        let two: Vec<u8> = ssc87
            .iter()
            .take(2)
            .flat_map(|m| with_header(header, m))
            .collect();
        framed.push(two);
        write("schemas", target, &framed);
    }
    let icc: Vec<Vec<u8>> = requests
        .iter()
        .filter_map(|r| spec.decode(r).ok())
        .filter_map(|m| m.get_bytes(55).ok().map(|b| b.into_owned()))
        .collect();
    write("schemas", "tlv", &icc);
    write("hsm-sim", "host_command", &hsm_commands);

    // The codec's published vectors, each to its decoder.
    let testdata = root().join("schemas/testdata");
    let read = |name: &str| std::fs::read(testdata.join(name)).expect("vector");
    write(
        "schemas",
        "decode_iso87ascii",
        &[read("ISO87APackager.bin")],
    );
    write(
        "schemas",
        "decode_iso87binary",
        &[read("ISO87BPackager.bin")],
    );
    write(
        "schemas",
        "decode_iso93ascii",
        &[read("ISO93APackager.bin")],
    );
    write(
        "schemas",
        "decode_iso93binary",
        &[read("ISO93BPackager.bin")],
    );
    write("schemas", "decode_post", &[read("post.bin")]);
    let moov: Vec<Vec<u8>> = std::fs::read_dir(testdata.join("moov"))
        .expect("moov")
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .collect();
    write("schemas", "decode_moov87", &moov);

    // Settlement events of every type, alone and as one batch in order.
    let types = [
        EventType::MedicalBillSplit,
        EventType::Purchase,
        EventType::Refund,
        EventType::BenefitCredit,
        EventType::AuthorizationHold,
        EventType::Completion,
        EventType::HoldRelease,
        EventType::Reversal,
    ];
    let events: Vec<Vec<u8>> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            sample::event(*t, sample::ids::HOSPITAL, i as u32 + 1)
                .to_json()
                .expect("json")
                .into_bytes()
        })
        .collect();
    write("schemas", "settlement_event", &events);
    let mut batches = events.clone();
    batches.push(events.join(&b'\n'));
    write("clearing", "settlement_batch", &batches);

    // The cards: field 55 and the cards' answers for the host-side parsers; APDU sequences
    // (2-byte lengths after a first byte choosing the application) for the card OS.
    let card = cards.first().expect("a card");
    let mut vcard = world.virtual_card(card).expect("card");
    vcard.power_on();
    let apdus: [&[u8]; 6] = [
        b"\x00\xA4\x04\x00\x08\xA0\x00\x00\x03\x33\x01\x01\x01\x00",
        b"\x80\xA8\x00\x00\x02\x83\x00\x00",
        b"\x00\xB2\x01\x0C\x00",
        b"\x80\xCA\x9F\x36\x00",
        b"\x80\xCA\x9F\x13\x00",
        b"\x00\xC0\x00\x00\x00",
    ];
    let mut card_answers: Vec<Vec<u8>> = apdus.iter().map(|a| vcard.process(a)).collect();
    card_answers.extend(icc.iter().cloned());
    card_answers.extend(apdus.iter().map(|a| a.to_vec()));
    write("card-apdu", "apdu_tlv", &card_answers);
    let sequence = |first: u8, list: &[&[u8]]| {
        let mut out = vec![first];
        for a in list {
            out.extend_from_slice(&u16::try_from(a.len()).expect("short").to_be_bytes());
            out.extend_from_slice(a);
        }
        out
    };
    write(
        "card-apdu",
        "virtual_card",
        &[
            sequence(1, &apdus[1..]),
            sequence(0, &[b"\x00\xB0\x95\x00\x00", b"\x00\x20\x00\x00\x03\x12\x34\x56"]),
            sequence(1, &[apdus[1], b"\x80\xAE\x80\x00\x1D\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x01\x56\x00\x00\x00\x00\x00\x01\x56\x26\x12\x07\x00\x12\x34\x56\x78"]),
        ],
    );
    for s in &sims {
        s.stop().await;
    }
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
