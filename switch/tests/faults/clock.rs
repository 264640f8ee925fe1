//! Clock jumps. The switch's wall clock (`switch::clock::Clock`, which the transmission window
//! of field 7 and the purge of old duplicate keys read) jumps while the kiosks keep the true
//! time; SQLite store. Injected, with every card of banks 0, 1 and 2 paying at once between the
//! jumps: forward 10 minutes (past the 5-minute transmission window); forward 49 hours (past
//! the duplicate keys' 48-hour retention) with housekeeping's purge run there; back to the true
//! time; back 10 minutes behind it; back to the true time. A purchase approved before the jumps
//! (card of bank 3) is replayed once the clock is back, to this node and to a node started
//! afterwards on the same store (whose memory of recent requests is empty).
//!
//! Asserted: while the clock is off by more than the window every request is declined `63`
//! before anything moves (no bank leg, no approval); back on time, `00` again; the replay
//! after the purge forgot its duplicate key is not approved again on either node (`94` here,
//! from its memory of recent requests; `59` on the new node: the card's ATC never repeats),
//! and the card's bank holds the purchase once; and the books balance (every approval stored,
//! each bank exactly the approved purchases, `verify_integrity` finds nothing).

use super::harness::{self, codes, field, Answered, Options};
use chrono::TimeDelta;
use std::sync::Arc;
use std::time::Instant;
use switch::clock::Clock;
use switch::metrics::Metrics;
use switch::pipeline::{LinkContext, Pipeline, Reply};
use switch::sim::kiosk::Kiosk;
use switch::store::{writer, DataKeyPanProtector, SqliteConfig, SqliteStore, Store};

const LOADED: [usize; 3] = [0, 1, 2];

async fn send<S: Store>(pipeline: &Pipeline<S>, request: &[u8]) -> String {
    let spec = schemas::iso8583::spec("ssc87").expect("spec");
    match pipeline.process(request, &LinkContext::shared(spec)).await {
        Reply::Send(answer) => field(&answer, 39),
        other => panic!("a purchase is answered: {}", matches!(other, Reply::Close)),
    }
}

fn all_are(answers: &[Answered], code: &str) -> bool {
    !answers.is_empty() && answers.iter().all(|a| a.code == code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_jumps_decline_63_while_off_and_a_replay_after_the_keys_purge_is_not_approved_twice()
{
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.path().join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .expect("store"),
    );
    let clock = Clock::adjustable();
    let net = harness::start(
        store,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    let mut all = net.purchases(&LOADED, 2).await;
    assert!(all_are(&all, "00"), "on time: {:?}", codes(&all));

    // The purchase replayed later: a card of bank 3 (not under load) at a kiosk of its own.
    let card = net
        .world
        .cards
        .iter()
        .find(|c| c.bank == 3)
        .expect("a card of bank 3")
        .clone();
    let pan = card.pan.expose_digits().to_owned();
    let h = &net.world.hospitals[0];
    let mut kiosk = Kiosk::new(
        schemas::domain::TerminalId::parse("FC000001").expect("terminal"),
        h.id.clone(),
        Some(h.code.clone()),
        "901",
    );
    let mut reader = card_apdu::channel::memory::MemoryChannel::new(
        net.world.virtual_card(&card).expect("card"),
    );
    let amount_fen = 4_321u64;
    let original = kiosk
        .bank_purchase(&card, &mut reader, amount_fen)
        .expect("request")
        .request;
    assert_eq!(send(&net.pipeline, &original).await, "00", "the original");
    all.push(Answered {
        bank: card.bank,
        pan: pan.clone(),
        rrn: field(&original, 37),
        amount_fen,
        code: "00".into(),
    });

    // Forward 10 minutes: outside the window, declined before any leg.
    let legs_before = net.banks[0].stats().messages;
    clock.jump_to_offset(TimeDelta::minutes(10));
    let ahead = net.purchases(&LOADED, 2).await;
    assert!(all_are(&ahead, "63"), "10 min ahead: {:?}", codes(&ahead));
    assert_eq!(
        net.banks[0].stats().messages,
        legs_before,
        "no bank leg sent for a stale request"
    );
    all.extend(ahead);

    // Forward 49 hours: housekeeping's hourly purge forgets every duplicate key.
    clock.jump_to_offset(TimeDelta::hours(49));
    switch::node::housekeeping::purge_old_duplicate_keys(&net.pipeline).await;
    let far = net.purchases(&LOADED, 1).await;
    assert!(all_are(&far, "63"), "49 h ahead: {:?}", codes(&far));
    all.extend(far);

    // Back on time: approvals again; the replay of the original is fresh by field 7 and its
    // duplicate key is gone.
    clock.jump_to_offset(TimeDelta::zero());
    let back = net.purchases(&LOADED, 2).await;
    assert!(all_are(&back, "00"), "back on time: {:?}", codes(&back));
    all.extend(back);
    let replay_here = send(&net.pipeline, &original).await;

    // A node started now on the same store: nothing in memory about the original.
    let (w, _writer_task) = writer::spawn(Arc::clone(&net.store), writer::WriterConfig::default());
    let restarted = Pipeline::new(
        Arc::clone(&net.store),
        w,
        net.world.hsm.clone(),
        net.links.clone(),
        net.world.keys.clone(),
        net.world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .expect("second node");
    let replay_restarted = send(&restarted, &original).await;
    eprintln!("replay answered {replay_here} by this node, {replay_restarted} by a new node");
    // This node remembers the request in memory and finds no answer in the store: its key
    // was purged (with the key there, the original's `00` would come back, moving nothing).
    assert_eq!(replay_here, "94", "replay on this node");
    assert_eq!(
        replay_restarted, "59",
        "replay on a new node: the ATC repeats"
    );
    let rrn = schemas::domain::Rrn::parse(&field(&original, 37)).expect("rrn");
    let approved = net
        .store
        .transactions_by_rrn(&rrn)
        .await
        .expect("store")
        .iter()
        .filter(|t| t.record.original_transaction_id.is_none() && t.record.is_approved())
        .count();
    assert_eq!(approved, 1, "the original approved once");
    assert_eq!(
        net.banks[card.bank].balance_fen(&pan),
        Some(net.opening[&pan] - amount_fen as i64),
        "the card's bank booked the purchase once"
    );

    // Back 10 minutes: the kiosks' field 7 is now ahead of the switch; declined.
    clock.jump_to_offset(TimeDelta::minutes(-10));
    let behind = net.purchases(&LOADED, 2).await;
    assert!(
        all_are(&behind, "63"),
        "10 min behind: {:?}",
        codes(&behind)
    );
    all.extend(behind);
    clock.jump_to_offset(TimeDelta::zero());
    let last = net.purchases(&LOADED, 1).await;
    assert!(all_are(&last, "00"), "on time again: {:?}", codes(&last));
    all.extend(last);

    net.drain_store_and_forward().await;
    net.assert_books(&all).await;
    eprintln!("clock jumps: {:?}", started.elapsed());
    net.stop().await;
}
