//! The ledger rules, written once and run against SQLite and PostgreSQL (`ledger_suite!`).

use super::common::*;
use clearing::ledger::Ledger;
use schemas::events::sample::ids::{BANK, HOSPITAL, INSURANCE_FUND};

async fn apply(
    ledger: &Ledger,
    batch: &[clearing::bus::Delivery],
) -> clearing::ledger::ApplyReport {
    ledger.apply_batch("g", batch).await.expect("apply")
}

pub async fn every_leg_posts_balanced_and_positions_sum_to_zero(ledger: &Ledger) {
    let r = apply(ledger, &[delivery(0, &purchase(1)), delivery(1, &split(2))]).await;
    assert_eq!((r.applied, r.postings), (2, 4));
    let p = ledger.positions().await.unwrap();
    assert_eq!(p.sum_fen(), 0);
    assert_eq!(p.net_fen(HOSPITAL), 10_000 + 10_000);
    assert_eq!(p.net_fen(BANK), -(10_000 + 1_500));
    assert_eq!(p.net_fen(INSURANCE_FUND), -8_500);
    for i in &p.institutions {
        assert_eq!(p.net_from_pairs_fen(&i.institution_id), i.net_fen);
    }
    assert_eq!(ledger.posted_total_fen().await.unwrap(), 20_000);
}

pub async fn an_event_delivered_twice_is_applied_once(ledger: &Ledger) {
    let e = purchase(1);
    let r = apply(ledger, &[delivery(0, &e), delivery(1, &e)]).await;
    assert_eq!((r.applied, r.duplicates), (1, 1));
    // Republished later at a new offset: still once.
    let r = apply(ledger, &[delivery(2, &e)]).await;
    assert_eq!((r.applied, r.duplicates), (0, 1));
    // Redelivered at an offset already consumed: skipped by offset.
    let r = apply(ledger, &[delivery(0, &e), delivery(1, &e)]).await;
    assert_eq!(r.already_consumed, 2);
    assert_eq!(ledger.posted_total_fen().await.unwrap(), 10_000);
    assert_eq!(ledger.stored_offset("g", TOPIC, 0).await.unwrap(), Some(3));
}

pub async fn offsets_are_kept_per_consumer_group(ledger: &Ledger) {
    apply(ledger, &[delivery(0, &purchase(1))]).await;
    assert_eq!(ledger.stored_offset("g", TOPIC, 0).await.unwrap(), Some(1));
    assert_eq!(ledger.stored_offset("other", TOPIC, 0).await.unwrap(), None);
}

pub async fn a_hold_is_pending_until_completed_and_only_the_capture_posts(ledger: &Ledger) {
    let h = hold(1);
    let r = apply(ledger, &[delivery(0, &h)]).await;
    assert_eq!((r.applied, r.postings), (1, 0));
    let bank = balance(ledger, BANK, "bank_settlement").await;
    assert_eq!(
        (bank.debits_pending_fen, bank.debits_posted_fen),
        (10_000, 0)
    );
    assert_eq!(ledger.positions().await.unwrap().net_fen(HOSPITAL), 0);
    assert_eq!(ledger.counts().await.unwrap().holds_pending, 1);

    let c = completion(&h, 7_000, 2);
    let r = apply(ledger, &[delivery(1, &c)]).await;
    assert_eq!((r.applied, r.postings), (1, 1));
    let bank = balance(ledger, BANK, "bank_settlement").await;
    // TigerBeetle post_pending with a smaller amount: the rest of the reservation is released.
    assert_eq!(
        (bank.debits_pending_fen, bank.debits_posted_fen),
        (0, 7_000)
    );
    let p = ledger.positions().await.unwrap();
    assert_eq!((p.net_fen(HOSPITAL), p.sum_fen()), (7_000, 0));
    assert_eq!(ledger.counts().await.unwrap().holds_pending, 0);
}

pub async fn a_released_hold_cannot_be_completed(ledger: &Ledger) {
    let h = hold(1);
    let r = apply(
        ledger,
        &[
            delivery(0, &h),
            delivery(1, &release(&h, 2)),
            delivery(2, &completion(&h, 100, 3)),
        ],
    )
    .await;
    assert_eq!((r.applied, r.dead_lettered), (2, 1));
    let dl = ledger.dead_letters(10).await.unwrap();
    assert_eq!(dl[0].reason_code, "hold_not_pending");
    assert_eq!(dl[0].offset, 2);
    let bank = balance(ledger, BANK, "bank_settlement").await;
    assert_eq!((bank.debits_pending_fen, bank.debits_posted_fen), (0, 0));
}

pub async fn a_completion_beyond_the_hold_is_dead_lettered(ledger: &Ledger) {
    let h = hold(1);
    apply(ledger, &[delivery(0, &h)]).await;
    let r = apply(ledger, &[delivery(1, &completion(&h, 10_001, 2))]).await;
    assert_eq!(r.dead_lettered, 1);
    assert_eq!(
        ledger.dead_letters(10).await.unwrap()[0].reason_code,
        "hold_mismatch"
    );
    assert_eq!(ledger.counts().await.unwrap().holds_pending, 1);
}

pub async fn poison_goes_to_the_dead_letter_table_and_the_stream_goes_on(ledger: &Ledger) {
    let mut unbalanced = purchase(3);
    unbalanced.amount_fen = schemas::domain::AmountFen::new(1).unwrap();
    let mut future = serde_json::to_value(purchase(4)).unwrap();
    future["schema_version"] = serde_json::json!(2);
    future["new_field"] = serde_json::json!("x");
    let orphan = completion(&hold(5), 10, 6);
    let batch = [
        raw(0, "{not json"),
        delivery(1, &purchase(1)),
        raw(2, &future.to_string()),
        delivery(3, &unbalanced),
        delivery(4, &orphan),
        raw(5, "\u{0}\u{1}"),
        delivery(6, &purchase(2)),
    ];
    let r = apply(ledger, &batch).await;
    assert_eq!((r.applied, r.dead_lettered), (2, 5));
    let codes: Vec<String> = ledger
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.reason_code)
        .collect();
    assert_eq!(
        codes,
        [
            "malformed",
            "unsupported_version",
            "invalid",
            "hold_unknown",
            "malformed"
        ]
    );
    assert_eq!(ledger.stored_offset("g", TOPIC, 0).await.unwrap(), Some(7));
    assert_eq!(ledger.posted_total_fen().await.unwrap(), 20_000);
    // The same poison redelivered under a new offset is not dead-lettered twice.
    let r = apply(ledger, &[delivery(7, &orphan)]).await;
    assert_eq!((r.dead_lettered, r.duplicates), (0, 1));
}

/// A batch whose first delivery is past the stored offset (the bus lost 2..5) is applied, and the
/// missing range is recorded once, in its transaction, as an `offset_gap` dead letter; replaying
/// the batch (decoded ahead, as the consumer does) records nothing again.
pub async fn a_jump_past_the_stored_offset_is_recorded_once_as_an_offset_gap(ledger: &Ledger) {
    apply(
        ledger,
        &[delivery(0, &purchase(1)), delivery(1, &purchase(2))],
    )
    .await;
    let jumped = vec![
        delivery(5, &purchase(6)),
        delivery(6, &purchase(7)),
        // A second hole in the same batch.
        delivery(9, &purchase(10)),
    ];
    let batch = Ledger::decode(jumped.clone()).unwrap();
    let r = ledger.apply_decoded("g", &batch).await.unwrap();
    assert_eq!(
        (r.applied, r.dead_lettered, r.offset_gaps, r.offsets_missing),
        (3, 0, 2, 5)
    );
    assert_eq!(ledger.stored_offset("g", TOPIC, 0).await.unwrap(), Some(10));
    let gaps: Vec<_> = ledger
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            assert_eq!((d.reason_code.as_str(), d.event_id), ("offset_gap", None));
            let record = d.offset_gap().expect("gap record");
            assert_eq!(record.first_missing_offset, d.offset);
            (
                record.missing(),
                record.missing_offsets,
                record.delivered_offset,
            )
        })
        .collect();
    assert_eq!(gaps, [(2..5, 3, 5), (7..9, 2, 9)]);
    let counts = ledger.counts().await.unwrap();
    assert_eq!(
        (
            counts.events_applied,
            counts.dead_letters,
            counts.offset_gaps
        ),
        (5, 0, 2)
    );

    for _ in 0..2 {
        let r = ledger.apply_decoded("g", &batch).await.unwrap();
        assert_eq!((r.already_consumed, r.offset_gaps), (3, 0));
        let r = apply(ledger, &jumped).await;
        assert_eq!((r.already_consumed, r.offset_gaps), (3, 0));
    }
    assert_eq!(ledger.counts().await.unwrap().offset_gaps, 2);
    // A group that never consumed this partition has no stored offset to have jumped past.
    let r = ledger.apply_batch("fresh", &jumped[2..]).await.unwrap();
    assert_eq!((r.duplicates, r.offset_gaps), (1, 0));
}

pub async fn a_reversal_undoes_its_original_once(ledger: &Ledger) {
    let p = purchase(1);
    let rev = reversal(&p, 2);
    let r = apply(ledger, &[delivery(0, &p), delivery(1, &rev)]).await;
    assert_eq!(r.applied, 2);
    let pos = ledger.positions().await.unwrap();
    assert_eq!((pos.net_fen(HOSPITAL), pos.net_fen(BANK)), (0, 0));
    let again = reversal(&p, 3);
    let unknown = reversal(&purchase(4), 5);
    let r = apply(ledger, &[delivery(2, &again), delivery(3, &unknown)]).await;
    assert_eq!(r.dead_lettered, 2);
    let codes: Vec<String> = ledger
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.reason_code)
        .collect();
    assert_eq!(codes, ["already_reversed", "original_unknown"]);
}

pub async fn reversing_a_preauthorization_voids_its_hold(ledger: &Ledger) {
    let h = hold(1);
    apply(ledger, &[delivery(0, &h), delivery(1, &reversal(&h, 2))]).await;
    let bank = balance(ledger, BANK, "bank_settlement").await;
    assert_eq!((bank.debits_pending_fen, bank.debits_posted_fen), (0, 0));
    assert_eq!(ledger.counts().await.unwrap().holds_pending, 0);
    assert_eq!(ledger.counts().await.unwrap().postings, 0);
}

pub async fn a_refund_needs_a_known_original(ledger: &Ledger) {
    let p = purchase(1);
    let r = apply(
        ledger,
        &[
            delivery(0, &p),
            delivery(1, &refund(&p, 2)),
            delivery(2, &refund(&purchase(3), 4)),
        ],
    )
    .await;
    assert_eq!((r.applied, r.dead_lettered), (2, 1));
    assert_eq!(ledger.positions().await.unwrap().net_fen(HOSPITAL), 0);
}

pub async fn many_events_in_many_batches_equal_the_sum_of_their_legs(ledger: &Ledger) {
    let mut expected_hospital = 0i64;
    let mut offset = 0;
    for b in 0..5 {
        let mut batch = Vec::new();
        for i in 0..400u32 {
            let e = if i % 2 == 0 {
                purchase(b * 1000 + i)
            } else {
                split(b * 1000 + i)
            };
            expected_hospital += e.amount_fen.get();
            batch.push(delivery(offset, &e));
            offset += 1;
        }
        apply(ledger, &batch).await;
    }
    let p = ledger.positions().await.unwrap();
    assert_eq!(p.net_fen(HOSPITAL), expected_hospital);
    assert_eq!(p.sum_fen(), 0);
    assert_eq!(ledger.counts().await.unwrap().events_applied, 2_000);
}

pub async fn an_oversized_batch_is_refused(ledger: &Ledger) {
    let e = purchase(1);
    let batch: Vec<_> = (0..=clearing::ledger::BATCH_DELIVERIES_MAX as i64)
        .map(|o| delivery(o, &e))
        .collect();
    assert!(ledger.apply_batch("g", &batch).await.is_err());
}

pub async fn closing_a_window_freezes_it_and_settles_every_net(ledger: &Ledger) {
    use clearing::window;
    let batch: Vec<_> = (0..20u32)
        .map(|i| if i % 3 == 0 { split(i) } else { purchase(i) })
        .enumerate()
        .map(|(o, e)| delivery(o as i64, &e))
        .collect();
    apply(ledger, &batch).await;
    assert_eq!(window::current_window(ledger).await.unwrap(), 1);
    let closed = window::close_window(ledger).await.unwrap();
    assert!(closed.closed);
    assert_eq!(closed.window_id, 1);
    assert_eq!(window::current_window(ledger).await.unwrap(), 2);
    let postings = window::window_postings(ledger, 1, None).await.unwrap();
    assert_eq!(closed.posting_count, postings.len() as i64);
    assert_eq!(closed.digest, Some(window::digest_of(&postings)));
    assert_eq!(
        closed.net_positions.iter().map(|n| n.net_fen).sum::<i64>(),
        0
    );
    // The instructions move every net to zero.
    let mut nets: std::collections::BTreeMap<String, i64> = closed
        .net_positions
        .iter()
        .map(|n| (n.institution_id.clone(), n.net_fen))
        .collect();
    for i in &closed.instructions {
        *nets.get_mut(&i.payer_id).unwrap() += i.amount_fen;
        *nets.get_mut(&i.payee_id).unwrap() -= i.amount_fen;
    }
    assert!(nets.values().all(|v| *v == 0));
    // Later postings go to window 2; window 1 stays as closed.
    apply(ledger, &[delivery(20, &purchase(99))]).await;
    assert_eq!(
        window::window_postings(ledger, 2, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(window::window_summary(ledger, 1).await.unwrap(), closed);
    // Each institution recomputes its digest from its own CSV statement.
    for n in &closed.net_positions {
        let csv = clearing::report::render(
            ledger,
            &n.institution_id,
            1,
            clearing::report::ReportFormat::Csv,
        )
        .await
        .unwrap();
        let (recomputed, claimed) = clearing::report::verify_statement_csv(&csv).unwrap();
        assert_eq!(hex::encode(recomputed), claimed);
        assert_eq!(recomputed, n.digest);
    }
    let xml =
        clearing::report::render(ledger, HOSPITAL, 1, clearing::report::ReportFormat::Camt053)
            .await
            .unwrap();
    assert_valid_camt053(&[&xml]);
    let entries = window::window_postings(ledger, 1, Some(HOSPITAL))
        .await
        .unwrap()
        .len();
    let camt = read_camt053(&xml);
    assert_eq!(camt.entries.len(), entries);
    assert_eq!(
        camt.balance("CLBD"),
        closed
            .net_positions
            .iter()
            .find(|n| n.institution_id == HOSPITAL)
            .unwrap()
            .net_fen
    );
    assert!(matches!(
        window::window_summary(ledger, 9).await,
        Err(clearing::ClearingError::WindowNotFound(9))
    ));
}

pub async fn the_medical_view_splits_totals_by_funding_source(ledger: &Ledger) {
    let s = split(1);
    apply(
        ledger,
        &[
            delivery(0, &s),
            delivery(1, &split(2)),
            delivery(2, &purchase(3)),
            delivery(3, &reversal(&s, 4)),
        ],
    )
    .await;
    let postings = clearing::window::window_postings(ledger, 1, None)
        .await
        .unwrap();
    let view = clearing::report::medical_reconciliation(INSURANCE_FUND, 1, &postings).unwrap();
    assert_eq!(view.totals.events, 3);
    assert_eq!(view.totals.pooled_fund_fen, 6_000);
    assert_eq!(view.totals.personal_account_fen, 2_500);
    assert_eq!(view.totals.bank_fen, 1_500);
    assert_eq!(view.per_hospital[HOSPITAL].total_fen().unwrap(), 10_000);
    assert_eq!(view.detail.len(), 3);
    assert!(view
        .to_csv()
        .unwrap()
        .contains("totals,ALL,3,6000,2500,1500,10000"));
}

pub async fn a_0500_is_answered_in_or_out_of_balance(ledger: &Ledger) {
    use clearing::recon;
    use schemas::iso8583::{spec, Mti, OwnedMessage};
    let p = purchase(1);
    apply(
        ledger,
        &[
            delivery(0, &p),
            delivery(1, &split(2)),
            delivery(2, &reversal(&p, 3)),
            delivery(3, &purchase(4)),
        ],
    )
    .await;
    let spec = spec("ssc87").unwrap();
    let build = |debits_fen: u64, net: &str, with_88: bool| {
        let mut m = OwnedMessage::new(spec, Mti::new("0500").unwrap());
        m.set_str(7, "1123093605")
            .unwrap()
            .set_u64(11, 1)
            .unwrap()
            .set_str(15, "1123")
            .unwrap();
        for (f, v) in [
            (74, 0u64),
            (75, 0),
            (76, 3),
            (77, 1),
            (86, 0),
            (87, 0),
            (89, 10_000),
        ] {
            m.set_u64(f, v).unwrap();
        }
        if with_88 {
            m.set_u64(88, debits_fen).unwrap();
        }
        m.set_str(97, net).unwrap().set_str(99, BANK).unwrap();
        let mut wire = Vec::new();
        spec.encode(&m, &mut wire).map(|_| wire)
    };
    // The bank paid 10000 + 1500 + 10000 and had 10000 reversed: it owes 11500.
    let wire = build(21_500, "D0000000000011500", true).unwrap();
    let msg = spec.decode(&wire).unwrap();
    let (answer, report) = recon::reconcile_0500(ledger, &msg, 1).await.unwrap();
    assert_eq!(report.mismatches, vec![], "{report:?}");
    assert_eq!(
        (
            answer.mti().as_str(),
            answer.get_str(66).unwrap().as_ref(),
            answer.get_str(39).unwrap().as_ref()
        ),
        ("0510", "1", "00")
    );

    let wire = build(21_000, "D0000000000011500", true).unwrap();
    let msg = spec.decode(&wire).unwrap();
    let (answer, report) = recon::reconcile_0500(ledger, &msg, 1).await.unwrap();
    assert_eq!(answer.get_str(66).unwrap().as_ref(), "2");
    assert_eq!(report.mismatches.len(), 1);
    assert_eq!(
        (
            report.mismatches[0].field,
            report.mismatches[0].theirs,
            report.mismatches[0].ours
        ),
        (88, 21_000, 21_500)
    );
    // Field 88 is mandatory in a 0500: the codec refuses to build one without it.
    assert!(build(0, "C0000000000000000", false).is_err());
}

pub async fn no_posting_lands_in_a_window_after_it_closed(ledger: &Ledger) {
    use clearing::window;
    let applier = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            for b in 0..20u32 {
                let batch: Vec<_> = (0..100u32)
                    .map(|i| delivery(i64::from(b * 100 + i), &purchase(b * 100 + i)))
                    .collect();
                ledger.apply_batch("g", &batch).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut closed = Vec::new();
    for _ in 0..5 {
        closed.push(window::close_window(ledger).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    applier.await.unwrap();
    let mut total = 0;
    for w in &closed {
        // What was digested at close is exactly what the window holds now.
        let postings = window::window_postings(ledger, w.window_id, None)
            .await
            .unwrap();
        assert_eq!(
            w.posting_count,
            postings.len() as i64,
            "window {}",
            w.window_id
        );
        assert_eq!(w.digest, Some(window::digest_of(&postings)));
        total += postings.len();
    }
    let open = window::current_window(ledger).await.unwrap();
    total += window::window_postings(ledger, open, None)
        .await
        .unwrap()
        .len();
    assert_eq!(total, 2_000);
}

/// Every kind of traffic the switch sends: purchases, bill splits, a reversal, a refund, a
/// pre-authorization and its completion, a benefit credit.
async fn real_traffic(ledger: &Ledger) {
    let p = purchase(1);
    let q = purchase(4);
    let h = hold(5);
    let benefit =
        schemas::events::sample::event(schemas::events::EventType::BenefitCredit, HOSPITAL, 7);
    apply(
        ledger,
        &[
            delivery(0, &p),
            delivery(1, &split(2)),
            delivery(2, &reversal(&p, 3)),
            delivery(3, &q),
            delivery(4, &h),
            delivery(5, &completion(&h, 6_000, 6)),
            delivery(6, &benefit),
            delivery(7, &refund(&q, 8)),
        ],
    )
    .await;
}

pub async fn a_window_with_real_traffic_validates_against_the_camt053_schema(ledger: &Ledger) {
    use clearing::report::{render, ReportFormat};
    real_traffic(ledger).await;
    let closed = clearing::window::close_window(ledger).await.unwrap();
    assert!(closed.net_positions.len() >= 4, "{closed:?}");
    let mut documents = Vec::new();
    for n in &closed.net_positions {
        let xml = render(ledger, &n.institution_id, 1, ReportFormat::Camt053)
            .await
            .unwrap();
        let camt = read_camt053(&xml);
        assert_eq!(camt.balance("CLBD"), n.net_fen, "{xml}");
        assert_eq!(camt.net_fen, n.net_fen);
        assert!(camt
            .entries
            .iter()
            .all(|(r, _, e)| r.len() <= 35 && e.len() <= 35));
        documents.push(xml);
    }
    let refs: Vec<&str> = documents.iter().map(String::as_str).collect();
    assert_valid_camt053(&refs);
}

pub async fn a_report_of_an_open_window_is_refused(ledger: &Ledger) {
    use clearing::report::{render, ReportFormat};
    real_traffic(ledger).await;
    for format in [
        ReportFormat::Csv,
        ReportFormat::Camt053,
        ReportFormat::Medical,
    ] {
        let r = render(ledger, HOSPITAL, 1, format).await;
        assert!(
            matches!(r, Err(clearing::ClearingError::WindowOpen(1))),
            "{format:?}: {r:?}"
        );
    }
    let closed = clearing::window::close_window(ledger).await.unwrap();
    assert_eq!(closed.window_id, 1);
    let xml = render(ledger, HOSPITAL, 1, ReportFormat::Camt053)
        .await
        .unwrap();
    assert_valid_camt053(&[&xml]);
    // The window that opened at the cut-over is now the open one.
    assert!(matches!(
        render(ledger, HOSPITAL, 2, ReportFormat::Csv).await,
        Err(clearing::ClearingError::WindowOpen(2))
    ));
}

pub async fn the_first_window_starts_at_the_ledger_start_not_1970(ledger: &Ledger) {
    use clearing::window;
    let first = window::window_summary(ledger, 1).await.unwrap();
    // 2020-01-01T00:00:00Z: any ledger of this network starts later.
    assert!(first.opened_at_us > 1_577_836_800_000_000, "{first:?}");
    apply(ledger, &[delivery(0, &purchase(1))]).await;
    let postings = window::window_postings(ledger, 1, None).await.unwrap();
    assert!(first.opened_at_us <= postings[0].posted_at_us);
    window::close_window(ledger).await.unwrap();
    let xml =
        clearing::report::render(ledger, HOSPITAL, 1, clearing::report::ReportFormat::Camt053)
            .await
            .unwrap();
    assert_valid_camt053(&[&xml]);
    let camt = read_camt053(&xml);
    assert!(!camt.from.starts_with("1970"), "{}", camt.from);
    assert!(camt.from <= camt.to, "{} > {}", camt.from, camt.to);
}

pub async fn csv_and_medical_totals_recompute_from_the_ledger_postings(ledger: &Ledger) {
    use clearing::report::{render, ReportFormat};
    use clearing::window;
    real_traffic(ledger).await;
    let closed = window::close_window(ledger).await.unwrap();
    let all = window::window_postings(ledger, 1, None).await.unwrap();
    for n in &closed.net_positions {
        let inst = n.institution_id.as_str();
        let csv = render(ledger, inst, 1, ReportFormat::Csv).await.unwrap();
        let statement = read_statement_csv(&csv);
        // Recomputed from the ledger's postings, not from the report.
        let ours: Vec<_> = all.iter().filter(|p| p.involves(inst)).collect();
        let debits: i64 = ours
            .iter()
            .filter(|p| p.debit_institution == inst)
            .map(|p| p.amount_fen)
            .sum();
        let credits: i64 = ours
            .iter()
            .filter(|p| p.credit_institution == inst)
            .map(|p| p.amount_fen)
            .sum();
        assert_eq!(statement.totals("postings"), ours.len() as i64, "{csv}");
        assert_eq!(statement.totals("debits_fen"), debits);
        assert_eq!(statement.totals("credits_fen"), credits);
        assert_eq!(statement.totals("net_fen"), credits - debits);
        assert_eq!(
            (n.debits_fen, n.credits_fen, n.net_fen),
            (debits, credits, credits - debits)
        );
        // The rows: one per posting, in canonical order, their effects summing to the net.
        let keys: Vec<(uuid::Uuid, i64)> = ours.iter().map(|p| (p.event_id, p.leg_no)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(statement.row_keys(), sorted);
        assert_eq!(statement.column_sum("net_effect_fen"), credits - debits);
    }

    let csv = render(ledger, INSURANCE_FUND, 1, ReportFormat::Medical)
        .await
        .unwrap();
    let (mut pooled, mut personal, mut bank) = (0i64, 0i64, 0i64);
    let mut events = std::collections::BTreeSet::new();
    let fund_events: std::collections::BTreeSet<uuid::Uuid> = all
        .iter()
        .filter(|p| p.involves(INSURANCE_FUND))
        .map(|p| p.event_id)
        .collect();
    for p in all.iter().filter(|p| fund_events.contains(&p.event_id)) {
        let (sign, source) = match (p.debit_account.as_str(), p.credit_account.as_str()) {
            (source, "merchant") => (1, source),
            ("merchant", source) => (-1, source),
            _ => continue,
        };
        events.insert(p.event_id);
        match source {
            "pooled_fund" => pooled += sign * p.amount_fen,
            "personal_accounts" => personal += sign * p.amount_fen,
            "bank_settlement" => bank += sign * p.amount_fen,
            _ => {}
        }
    }
    let all_row = format!(
        "totals,ALL,{},{pooled},{personal},{bank},{}",
        events.len(),
        pooled + personal + bank
    );
    assert!(csv.lines().any(|l| l == all_row), "{all_row} not in\n{csv}");
    let detail_ids: Vec<&str> = csv
        .lines()
        .filter_map(|l| l.strip_prefix("detail,"))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut sorted = detail_ids.clone();
    sorted.sort();
    assert_eq!(detail_ids, sorted);
    assert_eq!(detail_ids.len(), events.len());
}

/// The `posting` view (clearing migration 0006) shows an auditor with SQL access every leg the
/// ledger's own reader unpacks from the packed journal: the same rows in the same order, with
/// the same names and amounts.
pub async fn the_posting_view_shows_every_leg_as_the_ledger_reads_it(ledger: &Ledger) {
    use clearing::db::Db;
    use clearing::window::{self, PostingRecord};
    real_traffic(ledger).await;
    let open = window::current_window(ledger).await.unwrap();
    let ours = window::window_postings(ledger, open, None).await.unwrap();
    assert!(ours.len() >= 8, "real traffic posts legs: {}", ours.len());
    const VIEW: &str = "SELECT event_id, leg_no, event_type, leg_kind, debit_institution, \
        debit_account, credit_institution, credit_account, amount_fen, posted_at_us \
        FROM posting WHERE window_id = $1 ORDER BY event_id, leg_no";
    macro_rules! read_view {
        ($pool:expr) => {{
            use sqlx::Row;
            let rows = sqlx::query(VIEW).bind(open).fetch_all($pool).await.unwrap();
            rows.iter()
                .map(|r| PostingRecord {
                    event_id: r.get(0),
                    leg_no: r.get(1),
                    event_type: r.get(2),
                    leg_kind: r.get(3),
                    debit_institution: r.get(4),
                    debit_account: r.get(5),
                    credit_institution: r.get(6),
                    credit_account: r.get(7),
                    amount_fen: r.get(8),
                    posted_at_us: r.get(9),
                })
                .collect::<Vec<_>>()
        }};
    }
    let view = match ledger.db() {
        Db::Sqlite(pool) => read_view!(pool),
        Db::Postgres(pool) => read_view!(pool),
    };
    assert_eq!(view, ours);
}

async fn balance(ledger: &Ledger, inst: &str, kind: &str) -> clearing::ledger::AccountBalance {
    ledger
        .account_balances()
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.institution_id == inst && b.account_kind == kind)
        .expect("account exists")
}

/// One `#[tokio::test]` per rule above, on the harness `$open`.
#[macro_export]
macro_rules! ledger_suite {
    ($open:path) => {
        ledger_suite!(@tests $open;
            every_leg_posts_balanced_and_positions_sum_to_zero,
            an_event_delivered_twice_is_applied_once,
            offsets_are_kept_per_consumer_group,
            a_hold_is_pending_until_completed_and_only_the_capture_posts,
            a_released_hold_cannot_be_completed,
            a_completion_beyond_the_hold_is_dead_lettered,
            poison_goes_to_the_dead_letter_table_and_the_stream_goes_on,
            a_jump_past_the_stored_offset_is_recorded_once_as_an_offset_gap,
            a_reversal_undoes_its_original_once,
            reversing_a_preauthorization_voids_its_hold,
            a_refund_needs_a_known_original,
            many_events_in_many_batches_equal_the_sum_of_their_legs,
            an_oversized_batch_is_refused,
            closing_a_window_freezes_it_and_settles_every_net,
            the_medical_view_splits_totals_by_funding_source,
            a_0500_is_answered_in_or_out_of_balance,
            no_posting_lands_in_a_window_after_it_closed,
            a_window_with_real_traffic_validates_against_the_camt053_schema,
            a_report_of_an_open_window_is_refused,
            the_first_window_starts_at_the_ledger_start_not_1970,
            csv_and_medical_totals_recompute_from_the_ledger_postings,
            the_posting_view_shows_every_leg_as_the_ledger_reads_it
        );
    };
    (@tests $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let h = $open().await;
                ledger_suite::$name(&h.ledger).await;
                h.cleanup().await;
            }
        )*
    };
}
