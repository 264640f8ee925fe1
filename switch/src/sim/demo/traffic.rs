//! The demo's traffic: simulated hospital and job-centre kiosks, each on its own connection
//! to the acquirer listener, with the demo's cards passed from reader to reader.

use crate::sim::kiosk::Kiosk;
use crate::sim::world::{DemoCard, DemoWorld, DEMO_PIN, JOB_CENTRE_ID};
use crate::store::Store;
use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use schemas::domain::TerminalId;
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use schemas::iso8583::AdditionalAmounts;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::codec::Framed;

use super::DemoRunError;

/// Starts `kiosks` simulated kiosks against the acquirer listener at `addr`; they stop when
/// `shutdown` turns true (a kiosk that fails says why, unless the demo is stopping).
pub(super) async fn start<S: Store>(
    world: &Arc<DemoWorld>,
    store: &S,
    kiosks: usize,
    addr: SocketAddr,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), DemoRunError> {
    let cards = Arc::new(DemoCards::new(world, store).await?);
    for k in 0..kiosks {
        let (world, cards, shutdown) = (Arc::clone(world), Arc::clone(&cards), shutdown.clone());
        tokio::spawn(async move {
            let stopping = shutdown.clone();
            if let Err(e) = kiosk_loop(k, world, cards, addr, shutdown).await {
                if !*stopping.borrow() {
                    eprintln!("kiosk {k} stopped: {e}");
                }
            }
        });
    }
    Ok(())
}

/// The demo's cards in the cardholders' hands: one virtual card per demo card, shared by every
/// kiosk and in one reader at a time, so each card's ATC only moves forward (EMV Book 3
/// Annex A) — the switch declines a cryptogram whose ATC it has already seen.
struct DemoCards {
    /// Per card: `None` until first used or while in a reader.
    readers: Mutex<Vec<Option<MemoryChannel>>>,
    /// Per card: in use by a kiosk (or lost with a kiosk that stopped).
    taken: Mutex<Vec<bool>>,
    /// Per card: the highest ATC the store has seen (a resumed demo), where new virtual cards
    /// continue from.
    atc_start: Vec<u16>,
}

impl DemoCards {
    async fn new<S: Store>(world: &DemoWorld, store: &S) -> Result<Self, DemoRunError> {
        let mut atc_start = Vec::with_capacity(world.cards.len());
        for c in &world.cards {
            let stored = store.card_by_pan(&c.pan).await?;
            atc_start.push(stored.and_then(|s| s.atc_max).unwrap_or(0));
        }
        Ok(Self {
            readers: Mutex::new((0..world.cards.len()).map(|_| None).collect()),
            taken: Mutex::new(vec![false; world.cards.len()]),
            atc_start,
        })
    }

    /// Card `idx` in a reader, or `None` while another kiosk holds it.
    fn take(&self, world: &DemoWorld, idx: usize) -> Result<Option<MemoryChannel>, DemoRunError> {
        {
            let Ok(mut taken) = self.taken.lock() else {
                return Ok(None);
            };
            match taken.get_mut(idx) {
                Some(t) if !*t => *t = true,
                _ => return Ok(None),
            }
        }
        let kept = self
            .readers
            .lock()
            .ok()
            .and_then(|mut r| r.get_mut(idx).and_then(Option::take));
        match kept {
            Some(r) => Ok(Some(r)),
            None => {
                let atc = self.atc_start.get(idx).copied().unwrap_or(0);
                Ok(Some(MemoryChannel::new(
                    world.virtual_card_after(&world.cards[idx], atc)?,
                )))
            }
        }
    }

    /// Gives card `idx` back.
    fn give_back(&self, idx: usize, reader: MemoryChannel) {
        if let Ok(mut r) = self.readers.lock() {
            if let Some(slot) = r.get_mut(idx) {
                *slot = Some(reader);
            }
        }
        if let Ok(mut t) = self.taken.lock() {
            if let Some(slot) = t.get_mut(idx) {
                *slot = false;
            }
        }
    }
}

/// The bank balance a job-centre kiosk's benefit credit brings a card back to (50,000 CNY).
const BENEFIT_TARGET_FEN: i64 = 5_000_000;

/// Below this, a top-up is not worth a credit (100 CNY).
const BENEFIT_MIN_FEN: i64 = 10_000;

/// The kiosk's connection to the switch.
type KioskConn = Framed<TcpStream, FrameCodec>;

/// Sends one request and waits for its answer (the kiosk has one request outstanding).
async fn exchange(conn: &mut KioskConn, request: Vec<u8>) -> Result<Vec<u8>, DemoRunError> {
    conn.send(Frame {
        tpdu: None,
        message: request.into(),
    })
    .await
    .map_err(|e| DemoRunError::Other(e.to_string()))?;
    match conn.next().await {
        Some(Ok(f)) => Ok(f.message.to_vec()),
        _ => Err(DemoRunError::Other("switch closed the connection".into())),
    }
}

/// Sends a card-present request and gives the answer (its ARPC) to the card; the answer,
/// when it decodes.
async fn card_answered(
    conn: &mut KioskConn,
    p: crate::sim::kiosk::PendingPayment,
    reader: &mut MemoryChannel,
) -> Result<Option<Vec<u8>>, DemoRunError> {
    let answer = exchange(conn, p.request.clone()).await?;
    let spec = schemas::iso8583::spec("ssc87").map_err(|e| DemoRunError::Other(e.to_string()))?;
    let Ok(a) = spec.decode(&answer) else {
        return Ok(None);
    };
    let _ = p.complete(reader, &a);
    Ok(Some(answer))
}

/// One simulated kiosk, with a cardholder and a card at it on every round.
///
/// Hospital kiosks pay bills (3% first typed with a wrong PIN, then again with the right one,
/// as a cardholder would; 3% of approved bills reversed) and answer a few personal-account
/// balance inquiries of insured cardholders. At the job-centre kiosk (every sixth) the
/// cardholders come in turn, card after card: each opens an identity session, then asks the
/// bank balance (or sometimes the
/// personal account's) and receives a benefit credit that brings the bank balance back to
/// 50,000 CNY. That credit stands in for the money that reaches cardholders' accounts in real
/// life (wages, pensions, unemployment benefits): the demo puts a city's bills on a few hundred
/// cards, and without it they drain the cards within minutes and the demo shows mostly 51.
async fn kiosk_loop(
    k: usize,
    world: Arc<DemoWorld>,
    cards: Arc<DemoCards>,
    addr: SocketAddr,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), DemoRunError> {
    let hospital = &world.hospitals[k % world.hospitals.len()];
    let job_centre = k % 6 == 5;
    let acquirer = if job_centre {
        schemas::domain::InstitutionId::parse(JOB_CENTRE_ID)
            .map_err(|_| DemoRunError::Other("id".into()))?
    } else {
        hospital.id.clone()
    };
    let tid = TerminalId::parse(&format!("KSK{k:05}"))
        .map_err(|_| DemoRunError::Other("terminal".into()))?;
    let mut kiosk = Kiosk::new(
        tid,
        acquirer,
        (!job_centre).then(|| hospital.code.clone()),
        &format!("{}", k % 10),
    );
    let mut conn = Framed::new(
        TcpStream::connect(addr).await?,
        FrameCodec::new(LengthHeader::Binary2),
    );
    let mut n: u64 = 0;
    while !*shutdown.borrow() {
        n += 1;
        let (idx, roll, bill) = {
            let mut rng = rand::thread_rng();
            let idx = if job_centre {
                (k + n as usize) % world.cards.len()
            } else {
                rng.gen_range(0..world.cards.len())
            };
            (
                idx,
                rng.gen_range(0..100u32),
                rng.gen_range(2_000..400_000u64),
            )
        };
        let card = &world.cards[idx];
        let Some(mut reader) = cards.take(&world, idx)? else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue; // in another kiosk's reader
        };
        let round = if job_centre {
            job_centre_round(&mut kiosk, &mut conn, card, &mut reader, roll).await
        } else {
            let bill_no = format!("MZ{k}-{n}");
            hospital_round(
                &mut kiosk,
                &mut conn,
                card,
                &mut reader,
                (roll, bill, &bill_no),
            )
            .await
        };
        cards.give_back(idx, reader);
        round?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A cardholder at a job-centre kiosk: first the identity session (the card and its holder
/// proven to the switch, the switch to the card; `schemas/iso8583/ssc87.md`), and only in an
/// open session a balance inquiry, and after a bank balance inquiry a benefit credit up to
/// [`BENEFIT_TARGET_FEN`].
async fn job_centre_round(
    kiosk: &mut Kiosk,
    conn: &mut KioskConn,
    card: &DemoCard,
    reader: &mut MemoryChannel,
    roll: u32,
) -> Result<(), DemoRunError> {
    let session = kiosk.identity_session(reader)?;
    let answer = exchange(conn, session.request.clone()).await?;
    match kiosk.finish_identity_session(reader, &session, &answer) {
        Ok(outcome) if outcome.backend_authenticated => {}
        // No session: the cardholder is sent to the counter.
        _ => return Ok(()),
    }
    if roll < 30 && card.insurance.is_some() {
        let p = kiosk.personal_balance(card, reader)?;
        card_answered(conn, p, reader).await?;
        return Ok(());
    }
    let p = kiosk.bank_balance(card, reader)?;
    let Some(answer) = card_answered(conn, p, reader).await? else {
        return Ok(());
    };
    let spec = schemas::iso8583::spec("ssc87").map_err(|e| DemoRunError::Other(e.to_string()))?;
    let Ok(a) = spec.decode(&answer) else {
        return Ok(());
    };
    if a.get_str(39).map(|c| c == "00").unwrap_or(false) {
        if let Some(balance) = a
            .get_str(54)
            .ok()
            .and_then(|f| AdditionalAmounts::parse(&f).ok()?.balance_minor())
        {
            let top_up = BENEFIT_TARGET_FEN - balance;
            if top_up >= BENEFIT_MIN_FEN {
                exchange(conn, kiosk.benefit_credit(card, top_up as u64)?.0).await?;
            }
        }
    }
    Ok(())
}

/// A cardholder at a hospital kiosk: a bill (retyping a wrong PIN once), sometimes reversed,
/// or a personal-account balance inquiry. `plan` is (roll 0..100, bill in fen, bill number).
async fn hospital_round(
    kiosk: &mut Kiosk,
    conn: &mut KioskConn,
    card: &DemoCard,
    reader: &mut MemoryChannel,
    plan: (u32, u64, &str),
) -> Result<(), DemoRunError> {
    let (roll, bill, bill_no) = plan;
    let spec = schemas::iso8583::spec("ssc87").map_err(|e| DemoRunError::Other(e.to_string()))?;
    if roll < 10 && card.insurance.is_some() {
        let p = kiosk.personal_balance(card, reader)?;
        card_answered(conn, p, reader).await?;
        return Ok(());
    }
    let mut pin = if roll < 13 { "000000" } else { DEMO_PIN };
    loop {
        let p = kiosk.medical_bill(card, reader, bill, bill_no, pin)?;
        let request = p.request.clone();
        let answer = exchange(conn, request.clone()).await?;
        let Ok(a) = spec.decode(&answer) else {
            return Ok(());
        };
        let code = a.get_str(39).map(|c| c.into_owned()).unwrap_or_default();
        let _ = p.complete(reader, &a);
        if code == "55" && pin != DEMO_PIN {
            pin = DEMO_PIN; // the cardholder types it again, correctly
            continue;
        }
        if code == "00" && roll >= 97 {
            exchange(conn, kiosk.reversal_of(&request)?.0).await?;
        }
        return Ok(());
    }
}
