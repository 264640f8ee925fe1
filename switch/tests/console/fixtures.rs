//! What the journeys need beside the browser: a demo node started by the test (the same node
//! `switch demo` runs: bank hosts, CMS, demo operators, HTTP on a free port), payments through
//! its acquirer port from a hospital kiosk, and a card issued by the CMS and made by the
//! "bureau" into a virtual card (so a counter clerk has a real card to report lost).

#![allow(dead_code)]

use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use hsm_sim::pin::PinBlockFormat;
use schemas::domain::{AmountFen, InstitutionId, TerminalId};
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use schemas::iso8583::{self};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switch::cms::{CardManagement, CardOperation};
use switch::sim::bureau;
use switch::sim::demo::{self, DemoOptions, RunningDemo};
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld, DEMO_PIN, INSURANCE_FUND_ID};
use switch::store::{AccountKind, IccAlgorithm, InsuranceCategory, NewAccount, SqliteStore, Store};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A demo node for one journey, its data in a temporary folder.
pub struct Demo {
    /// The node.
    pub demo: RunningDemo<SqliteStore>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    _dir: tempfile::TempDir,
}

/// Starts the demo node on free ports, without kiosks and without clearing.
pub async fn start() -> Demo {
    start_with(true).await
}

/// Starts the demo node on free ports, without kiosks; with its in-process clearing unless
/// `no_clearing`.
pub async fn start_with(no_clearing: bool) -> Demo {
    let dir = tempfile::tempdir().expect("temp dir");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let opts = DemoOptions {
        data_dir: dir.path().to_path_buf(),
        listen: any,
        http: any,
        bank_port_base: 0,
        cards_per_bank: 2,
        traffic: false,
        kiosks: 0,
        duration: None,
        keep_data: false,
        no_clearing,
        postgres_url: None,
        postgres_schema: "switch_demo".into(),
        hsm: None,
        group_commits: None,
    };
    let demo = demo::start(&opts).await.expect("the demo node starts");
    let base = format!("http://{}", demo.http().expect("http"));
    println!("console of this journey: {base}/console/");
    Demo {
        demo,
        base,
        _dir: dir,
    }
}

/// A connection to the acquirer port (2-byte length header).
pub type Conn = Framed<TcpStream, FrameCodec>;

/// Connects a kiosk.
pub async fn connect(d: &Demo) -> Conn {
    Framed::new(
        TcpStream::connect(d.demo.acquirer().expect("acquirer"))
            .await
            .expect("connect"),
        FrameCodec::new(LengthHeader::Binary2),
    )
}

/// Sends `request`, returns the answer (within 20 s).
pub async fn exchange(conn: &mut Conn, request: &[u8]) -> Vec<u8> {
    conn.send(Frame {
        tpdu: None,
        message: request.to_vec().into(),
    })
    .await
    .expect("send");
    tokio::time::timeout(Duration::from_secs(20), conn.next())
        .await
        .expect("answer in time")
        .expect("connection open")
        .expect("frame")
        .message
        .to_vec()
}

/// Field `n` of an ssc87 message.
pub fn field(wire: &[u8], n: u16) -> String {
    let m = iso8583::spec("ssc87")
        .expect("spec")
        .decode(wire)
        .expect("decodes");
    m.get_str(n).map(|s| s.into_owned()).unwrap_or_default()
}

/// A kiosk of the world's hospital `h`.
pub fn hospital_kiosk(world: &DemoWorld, h: usize, terminal: &str, rrn_prefix: &str) -> Kiosk {
    let hospital = &world.hospitals[h];
    Kiosk::new(
        TerminalId::parse(terminal).expect("terminal"),
        hospital.id.clone(),
        Some(hospital.code.clone()),
        rrn_prefix,
    )
}

/// A paid bill: its RRN and response code.
pub struct Paid {
    /// Field 37.
    pub rrn: String,
    /// Field 39.
    pub code: String,
}

/// A hospital bill of `fen` with `card` in `reader`, through the acquirer port.
pub async fn pay(
    conn: &mut Conn,
    kiosk: &mut Kiosk,
    card: &DemoCard,
    reader: &mut MemoryChannel,
    fen: u64,
    bill_no: &str,
) -> Paid {
    let p = kiosk
        .medical_bill(card, reader, fen, bill_no, DEMO_PIN)
        .expect("a bill");
    let rrn = field(&p.request, 37);
    let answer = exchange(conn, &p.request).await;
    Paid {
        rrn,
        code: field(&answer, 39),
    }
}

/// An insured SM4 card of the world (one whose bills the demo approves).
pub fn insured_card(world: &DemoWorld, skip: usize) -> DemoCard {
    world
        .cards
        .iter()
        .filter(|c| c.insurance.is_some() && c.algorithm == IccAlgorithm::Sm4)
        .nth(skip)
        .or_else(|| world.cards.iter().find(|c| c.insurance.is_some()))
        .expect("an insured demo card")
        .clone()
}

/// A card of the CMS, issued for a cardholder of region 410102, handed over and activated,
/// with its accounts at the insurance fund, and the virtual card the bureau made of its
/// personalisation record: (card id, the card as a kiosk sees it, the chip).
pub async fn cms_card(d: &Demo, citizen: &str) -> (i64, DemoCard, MemoryChannel) {
    let world = &d.demo.world;
    let store = Arc::clone(&d.demo.store);
    let service = CardManagement::new(Arc::clone(&store))
        .with_issuance(bureau::demo_issuance(world).expect("issuance"));
    let actor = switch::cms::Actor {
        operator: "fixture".into(),
        institution: world.cfg.social_security_fund.clone(),
        source: "fixture".into(),
        reason: "test fixture".into(),
    };
    let bank = world.banks[0].id.as_str();
    let csv = format!(
        "citizen_id,name,insurance_scheme,region_code,bank_id\n{citizen},王五,居民,410102,{bank}\n"
    );
    let job = service
        .import_applications(&actor, "fixture-b", csv.as_bytes(), &|_| {})
        .await
        .expect("import");
    assert_eq!(job.rows_created, 1, "{:?}", job.row_errors);
    let app = service
        .application_in_batch("fixture-b", citizen)
        .await
        .expect("application");
    let pin = bureau::counter_pin(world, DEMO_PIN, PinBlockFormat::Iso1, "").expect("pin");
    let mut batch = service.open_perso_batch().await.expect("perso batch");
    let card = service
        .personalise(&actor, &mut batch, app.application_id, &pin)
        .await
        .expect("personalise");
    for op in [CardOperation::HandOver, CardOperation::Activate] {
        service
            .apply(&actor, card.card_id, op, None)
            .await
            .expect("hand over and activate");
    }
    let record = batch
        .content()
        .records
        .iter()
        .find(|r| r.card_id == card.card_id.0)
        .expect("the card's record")
        .clone();
    let chip = bureau::load_record(&batch.content().header, &record).expect("the bureau's card");
    let fund = InstitutionId::parse(INSURANCE_FUND_ID).expect("fund");
    for (kind, fen) in [
        (AccountKind::PersonalMedical, 50_000),
        (AccountKind::PooledFund, 10_000_000),
    ] {
        store
            .open_account(
                &NewAccount {
                    institution: fund.clone(),
                    card_id: Some(card.card_id),
                    kind,
                    opening_balance: AmountFen::new(fen).expect("fen"),
                },
                switch::store::now_us(),
            )
            .await
            .expect("account");
    }
    let pan = store.card_pan(card.card_id).await.expect("pan");
    let demo_card = DemoCard {
        pan,
        bank: 0,
        algorithm: if record.algorithm == "sm4" {
            IccAlgorithm::Sm4
        } else {
            IccAlgorithm::Tdes
        },
        insurance: Some(InsuranceCategory::Resident),
        personal_fen: 50_000,
        bank_balance_fen: 0,
        card_identification_code: record.ssse.card_identification_code.clone(),
        citizen_id: citizen.to_owned(),
        pin_offset: String::new(),
        expiry_yymm: card.expiry_yymm.clone(),
    };
    (card.card_id.0, demo_card, MemoryChannel::new(chip))
}

/// A valid GB 11643-1999 citizen ID for sequence `n` (born 1990-03-07 in 410102).
pub fn citizen(n: u32) -> String {
    let body = format!("41010219900307{:03}", n % 1000);
    let mut b = [0u8; 17];
    b.copy_from_slice(body.as_bytes());
    format!("{body}{}", switch::cms::citizen_id::check_character(&b))
}

/// The counter's PIN pad's block of the demo PIN (ISO 9564-1 format 1), hex.
pub fn counter_pin_block(world: &DemoWorld) -> String {
    bureau::counter_pin(world, DEMO_PIN, PinBlockFormat::Iso1, "")
        .expect("pin block")
        .block
        .to_hex()
}
