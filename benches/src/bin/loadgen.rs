//! `loadgen`: end-to-end load against a running switch (`switch demo --no-traffic`).
//!
//! It prepares real requests first (virtual cards make real ARQCs, the PIN pad real PIN blocks
//! under the demo TPK) so the timed run spends no CPU on card simulation, then drives N
//! connections, either at a fixed total rate (open loop: latency is measured from the time each
//! request was *due*, so a stalled switch cannot hide its queueing: no coordinated omission) or
//! as fast as the switch answers with a window of requests in flight per connection. Every
//! response is validated (MTI, STAN, field 39; for approved bills, 63.1 + 63.2 + 63.3 = 62.4)
//! and latencies go into an HdrHistogram.
//!
//! ```text
//! switch demo --no-traffic --cards-per-bank 500 &
//! loadgen --cards-per-bank 500 --connections 32 --rate 10000 --duration 30
//! ```

use clap::Parser;

/// The same allocator as the switch, so both sides of the measurement pay the same for memory.
#[global_allocator]
static ALLOCATOR: switch::MiMalloc = switch::MiMalloc;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use schemas::domain::TerminalId;
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoWorld, DEMO_PIN};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_util::codec::Framed;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    about = "End-to-end ISO 8583 load against a switch demo"
)]
struct Args {
    /// The switch's acquirer address.
    #[arg(long, default_value = "127.0.0.1:8583")]
    target: SocketAddr,
    /// Must equal the demo's --cards-per-bank (the same demo world is rebuilt here).
    #[arg(long, default_value_t = 50)]
    cards_per_bank: usize,
    /// Connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Total requests per second; 0 = as fast as answered (closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Requests in flight per connection in closed-loop mode.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Percent of hospital bill payments (split); the rest is split between bank purchases
    /// and balance inquiries by --purchase.
    #[arg(long, default_value_t = 60)]
    bills: u32,
    /// Percent of bank purchases.
    #[arg(long, default_value_t = 25)]
    purchases: u32,
    /// Most requests prepared (the run stops early when they are used up).
    #[arg(long, default_value_t = 400_000)]
    prepare_max: usize,
    /// Also print p50 / p99 / max per second of the run (by the second each request was due,
    /// or sent in the closed loop), to tell a warm-up or a stall from a steady tail.
    #[arg(long)]
    timeline: bool,
}

/// Latencies by the second of the run the request was due in.
type Timeline = Vec<Histogram<u64>>;

fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn record_at(timeline: &mut Timeline, second: usize, micros: u64) {
    if timeline.len() <= second {
        timeline.resize_with(second + 1, latency_histogram);
    }
    let _ = timeline[second].record(micros);
}

/// Most requests written with one flush.
const SEND_BATCH_MAX: usize = 64;

/// One prepared request.
struct Prepared {
    wire: Vec<u8>,
    stan: u64,
    kind: &'static str,
    bill_fen: Option<i64>,
}

/// Gives every prepared request field 7 = now (UTC): preparing can take minutes, and the
/// switch declines a field 7 further than its transmission window (default five minutes) from
/// its clock. A run longer than the window sends its last requests stale (`63`): widen the
/// switch's window for such runs. The MAC covers field 7, so each request is sealed again under
/// its acquirer's TAK (field 32): without that, every request restamped in another second than
/// it was prepared in was declined `A0`.
fn restamp(lists: &mut [Vec<Prepared>]) {
    let Ok(spec) = schemas::iso8583::spec("ssc87") else {
        return;
    };
    let now = switch::wire::network::transmission_now();
    let mut kiosks: HashMap<String, Kiosk> = HashMap::new();
    for p in lists.iter_mut().flatten() {
        let Ok(mut m) = spec.decode(&p.wire).map(|m| m.to_owned_message()) else {
            continue;
        };
        let (Ok(acquirer), Ok(terminal)) = (m.get_str(32), m.get_str(41)) else {
            continue;
        };
        let (acquirer, terminal) = (acquirer.into_owned(), terminal.into_owned());
        if m.set_str(7, &now).is_err() {
            continue;
        }
        let kiosk = match kiosks.entry(acquirer) {
            std::collections::hash_map::Entry::Occupied(k) => k.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let (Ok(id), Ok(tid)) = (
                    schemas::domain::InstitutionId::parse(v.key()),
                    TerminalId::parse(&terminal),
                ) else {
                    continue;
                };
                v.insert(Kiosk::new(tid, id, None, "0"))
            }
        };
        if let Ok(wire) = kiosk.seal(&mut m) {
            p.wire = wire;
        }
    }
}

fn prepare(args: &Args, world: &DemoWorld) -> Vec<Vec<Prepared>> {
    let total = if args.rate > 0 {
        (args.rate * args.duration) as usize + args.connections
    } else {
        args.prepare_max
    }
    .min(args.prepare_max);
    let hospitals = &world.hospitals;
    if world.cards.len() < args.connections * args.window * 2 {
        eprintln!(
            "warning: {} cards for {} connections x window {}: a card may be in flight twice \
             and its later ATC overtake the earlier one (59); use more --cards-per-bank",
            world.cards.len(),
            args.connections,
            args.window
        );
    }
    let threads = 2usize;
    let per_thread = args.connections.div_ceil(threads);
    let chunks: Vec<Vec<Vec<Prepared>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let conns: Vec<usize> =
                        (t * per_thread..((t + 1) * per_thread).min(args.connections)).collect();
                    let mut out: Vec<Vec<Prepared>> = Vec::new();
                    let mut readers: HashMap<usize, card_apdu::channel::memory::MemoryChannel> =
                        HashMap::new();
                    for &c in &conns {
                        let h = &hospitals[c % hospitals.len()];
                        let tid = TerminalId::parse(&format!("LG{c:06}")).expect("terminal id");
                        let mut kiosk = Kiosk::new(
                            tid,
                            h.id.clone(),
                            Some(h.code.clone()),
                            &format!("{}", 5 + c % 5),
                        );
                        let n = total / args.connections;
                        let mut list = Vec::with_capacity(n);
                        for i in 0..n {
                            // Each connection owns the cards c, c + C, c + 2C, ... and takes
                            // them in turn, so a card's cryptograms go out in ATC order and its
                            // next one is sent only after `owned` others: the switch declines a
                            // reused or older ATC (59), as a card cannot pay twice at once.
                            let owned = world
                                .cards
                                .len()
                                .saturating_sub(c)
                                .div_ceil(args.connections)
                                .max(1);
                            let idx = (c + args.connections * (i % owned)) % world.cards.len();
                            let card = &world.cards[idx];
                            let roll = ((i * 37 + c * 11) % 100) as u32;
                            let reader = readers.entry(idx).or_insert_with(|| {
                                card_apdu::channel::memory::MemoryChannel::new(
                                    world.virtual_card(card).expect("virtual card"),
                                )
                            });
                            let p = if roll < args.bills {
                                let bill = 5_000 + ((i as u64 * 7_331) % 300_000);
                                kiosk
                                    .medical_bill(
                                        card,
                                        reader,
                                        bill,
                                        &format!("LG{c}-{i}"),
                                        DEMO_PIN,
                                    )
                                    .map(|p| Prepared {
                                        wire: p.request,
                                        stan: u64::from(p.stan),
                                        kind: "bill",
                                        bill_fen: Some(bill as i64),
                                    })
                            } else if roll < args.bills + args.purchases {
                                let amount = 1_000 + ((i as u64 * 3_331) % 20_000);
                                kiosk.bank_purchase(card, reader, amount).map(|p| Prepared {
                                    wire: p.request,
                                    stan: u64::from(p.stan),
                                    kind: "purchase",
                                    bill_fen: None,
                                })
                            } else {
                                kiosk.personal_balance(card, reader).map(|p| Prepared {
                                    wire: p.request,
                                    stan: u64::from(p.stan),
                                    kind: "balance",
                                    bill_fen: None,
                                })
                            };
                            match p {
                                Ok(p) => list.push(p),
                                Err(e) => eprintln!("prepare: {e}"),
                            }
                        }
                        out.push(list);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("prepare thread"))
            .collect()
    });
    chunks.into_iter().flatten().collect()
}

#[derive(Default)]
struct Tally {
    codes: BTreeMap<(String, String), u64>,
    invalid: u64,
    errors: u64,
}

fn validate(p: &Prepared, answer: &[u8], tally: &mut Tally) {
    let spec = match schemas::iso8583::spec("ssc87") {
        Ok(s) => s,
        Err(_) => return,
    };
    let Ok(a) = spec.decode_unchecked(answer) else {
        tally.invalid += 1;
        return;
    };
    let code = a
        .get_str(39)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| "??".into());
    let ok_mti = a.mti().as_str() == "0210";
    let ok_stan = a.get_u64(11).ok() == Some(p.stan);
    let ok_split = match (p.bill_fen, code.as_str()) {
        (Some(bill), "00") => {
            let leg = |x: &str| {
                a.get_path_str(x)
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(-1)
            };
            leg("63.1") + leg("63.2") + leg("63.3") == bill
        }
        _ => true,
    };
    if !(ok_mti && ok_stan && ok_split) {
        tally.invalid += 1;
    }
    *tally.codes.entry((p.kind.to_owned(), code)).or_default() += 1;
}

async fn drive(
    args: Args,
    list: Vec<Prepared>,
    hist: Arc<Mutex<Histogram<u64>>>,
    timeline: Arc<Mutex<Timeline>>,
    tally: Arc<Mutex<Tally>>,
    start: Instant,
) {
    let Ok(sock) = TcpStream::connect(args.target).await else {
        tally.lock().await.errors += 1;
        return;
    };
    let _ = sock.set_nodelay(true);
    let (mut tx, mut rx) = Framed::new(sock, FrameCodec::new(LengthHeader::Binary2)).split();
    let list = Arc::new(list);
    let in_flight: Arc<std::sync::Mutex<HashMap<u64, (usize, Instant)>>> = Default::default();
    let window = Arc::new(tokio::sync::Semaphore::new(args.window.max(1)));
    let per_conn_interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.connections as f64 / args.rate as f64));
    let end = start + Duration::from_secs(args.duration);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = {
        let (list, in_flight, hist, timeline, tally, window) = (
            Arc::clone(&list),
            Arc::clone(&in_flight),
            Arc::clone(&hist),
            Arc::clone(&timeline),
            Arc::clone(&tally),
            Arc::clone(&window),
        );
        let by_second = args.timeline;
        tokio::spawn(async move {
            let mut local = Tally::default();
            let mut local_hist = latency_histogram();
            let mut local_timeline = Timeline::new();
            loop {
                let frame = tokio::select! {
                    f = rx.next() => f,
                    _ = &mut stop_rx => break,
                };
                let Some(Ok(frame)) = frame else { break };
                let spec = schemas::iso8583::spec("ssc87").expect("spec");
                let stan = spec
                    .decode_unchecked(&frame.message)
                    .ok()
                    .and_then(|m| m.get_u64(11).ok());
                let entry = stan.and_then(|s| in_flight.lock().ok()?.remove(&s));
                match entry {
                    Some((i, due)) => {
                        let micros = due.elapsed().as_micros() as u64;
                        let _ = local_hist.record(micros);
                        if by_second {
                            let second = due.saturating_duration_since(start).as_secs() as usize;
                            record_at(&mut local_timeline, second, micros);
                        }
                        validate(&list[i], &frame.message, &mut local);
                        window.add_permits(1);
                    }
                    None => local.invalid += 1,
                }
            }
            let _ = hist.lock().await.add(&local_hist);
            let mut all = timeline.lock().await;
            for (second, h) in local_timeline.iter().enumerate() {
                if all.len() <= second {
                    all.resize_with(second + 1, latency_histogram);
                }
                let _ = all[second].add(h);
            }
            drop(all);
            let mut t = tally.lock().await;
            for (k, v) in local.codes {
                *t.codes.entry(k).or_default() += v;
            }
            t.invalid += local.invalid;
        })
    };
    // Requests that are ready together (due in the open loop, window room in the closed loop)
    // go out in one write, as a busy kiosk concentrator would send them.
    let mut next = 0usize;
    'send: while next < list.len() {
        let mut batch = 0usize;
        while next < list.len() && batch < SEND_BATCH_MAX {
            let due = match per_conn_interval {
                Some(iv) => {
                    let due = start + iv.mul_f64(next as f64);
                    if batch > 0 && due > Instant::now() {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    due
                }
                None => {
                    if batch == 0 {
                        if let Ok(permit) = window.acquire().await {
                            permit.forget();
                        }
                    } else {
                        match window.try_acquire() {
                            Ok(permit) => permit.forget(),
                            Err(_) => break,
                        }
                    }
                    Instant::now()
                }
            };
            if Instant::now() > end {
                if batch == 0 {
                    break 'send;
                }
                break;
            }
            let p = &list[next];
            if let Ok(mut m) = in_flight.lock() {
                m.insert(p.stan, (next, due));
            }
            let frame = Frame {
                tpdu: None,
                message: p.wire.clone().into(),
            };
            if tx.feed(frame).await.is_err() {
                tally.lock().await.errors += 1;
                break 'send;
            }
            next += 1;
            batch += 1;
        }
        if tx.flush().await.is_err() {
            tally.lock().await.errors += 1;
            break;
        }
        if Instant::now() > end {
            break;
        }
    }
    // Wait for the answers still in flight (bounded).
    let drain_end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain_end && !in_flight.lock().map(|m| m.is_empty()).unwrap_or(true) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lost = in_flight.lock().map(|m| m.len() as u64).unwrap_or(0);
    tally.lock().await.errors += lost;
    drop(tx);
    let _ = stop_tx.send(());
    let _ = reader.await;
}

fn main() {
    let args = Args::parse();
    let world = DemoWorld::new(args.cards_per_bank.max(1)).expect("demo world");
    let t0 = Instant::now();
    let mut lists = prepare(&args, &world);
    restamp(&mut lists);
    let prepared: usize = lists.iter().map(Vec::len).sum();
    eprintln!(
        "prepared {prepared} requests in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let hist = Arc::new(Mutex::new(latency_histogram()));
        let timeline = Arc::new(Mutex::new(Timeline::new()));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let start = Instant::now() + Duration::from_millis(200);
        let tasks: Vec<_> = lists
            .into_iter()
            .map(|l| {
                tokio::spawn(drive(
                    args.clone(),
                    l,
                    Arc::clone(&hist),
                    Arc::clone(&timeline),
                    Arc::clone(&tally),
                    start,
                ))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = start
            .elapsed()
            .as_secs_f64()
            .min(args.duration as f64 + 10.0);
        let h = hist.lock().await;
        let t = tally.lock().await;
        let done: u64 = t.codes.values().sum();
        println!(
            "loadgen: {} connections, {} s, {}",
            args.connections,
            args.duration,
            if args.rate > 0 {
                format!("target {} tps (open loop)", args.rate)
            } else {
                format!("closed loop, window {}", args.window)
            }
        );
        println!(
            "  responses {done}  throughput {:.0} tps  invalid {}  errors/unanswered {}",
            done as f64 / elapsed,
            t.invalid,
            t.errors
        );
        println!(
            "  latency µs: p50 {}  p90 {}  p99 {}  p999 {}  max {}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
        for (second, h) in timeline.lock().await.iter().enumerate() {
            println!(
                "  second {second:>3}: n {:>6}  p50 {:>7}  p99 {:>7}  max {:>7} µs",
                h.len(),
                h.value_at_quantile(0.50),
                h.value_at_quantile(0.99),
                h.max()
            );
        }
        let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ((kind, code), n) in t.codes.iter() {
            by_kind
                .entry(kind.clone())
                .or_default()
                .push(format!("{code}:{n}"));
        }
        for (kind, codes) in by_kind {
            println!("  {kind:<9} {}", codes.join(" "));
        }
        if t.invalid > 0 {
            std::process::exit(2);
        }
    });
}
