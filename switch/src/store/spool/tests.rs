//! The spool file's format: what is appended reads back, a torn last record and a record whose
//! checksum does not match are set aside (never a panic), compaction keeps exactly the records
//! still pending, and a second node cannot open a directory in use.

use super::file::{line_of, parse};
use super::*;
use crate::store::{
    CardAtc, CardId, Decision, ReversalId, ReversalReason, ReversalRequest, TransactionId,
    TransactionKind, TransactionRecord,
};
use schemas::domain::{
    AmountFen, InstitutionId, ResponseCode, Rrn, Stan, TerminalId, TransmissionDateTime,
};
use uuid::Uuid;

pub(super) fn sample(stan: u32, amount_fen: i64) -> SpooledReversal {
    let at = TransmissionDateTime::parse("1207104500").unwrap();
    let bank = InstitutionId::parse("01020000").unwrap();
    SpooledReversal {
        transaction: TransactionRecord {
            transaction_id: TransactionId(Uuid::now_v7()),
            kind: TransactionKind::Purchase,
            mti: "0200".into(),
            processing_code: "000000".into(),
            card_id: Some(CardId(7)),
            pan_masked: Some("622848******5678".into()),
            acquirer: InstitutionId::parse("4101001").unwrap(),
            issuer: Some(bank.clone()),
            terminal_id: TerminalId::parse("FT000001").unwrap(),
            stan: Stan::new(stan).unwrap(),
            rrn: Rrn::parse("000000123456").unwrap(),
            transmission_at: at.clone(),
            amount_fen: AmountFen::new(amount_fen).unwrap(),
            response_code: ResponseCode::SystemMalfunction,
            original_transaction_id: None,
            decided_at_us: 1_765_104_300_000_000,
        },
        atc: Some(CardAtc {
            card_id: CardId(7),
            atc: 42,
        }),
        reversal: Some(ReversalRequest {
            reversal_id: ReversalId(Uuid::now_v7()),
            destination: bank,
            reason: ReversalReason::IssuerTimeout,
            amount_fen: AmountFen::new(amount_fen).unwrap(),
            stan: Stan::new(stan + 1).unwrap(),
            transmission_at: at,
            first_attempt_at_us: 1_765_104_300_000_001,
        }),
        compensation: None,
    }
}

fn spool_text(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join(SPOOL_FILE)).unwrap()
}

#[test]
fn appended_records_read_back_in_order_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (sample(1, 100), sample(3, 250));
    {
        let (mut f, loaded) = SpoolFile::open(dir.path()).unwrap();
        assert!(loaded.records.is_empty());
        f.append(&a).unwrap();
        f.append(&b).unwrap();
        assert_eq!(f.records(), 2);
    }
    let (f, loaded) = SpoolFile::open(dir.path()).unwrap();
    assert_eq!(loaded.records, vec![a.clone(), b]);
    assert_eq!((loaded.unreadable, loaded.torn_tail), (0, false));
    assert_eq!(f.records(), 2);
    // The decision replayed is the decline with its 0420, nothing else.
    let d = a.decision();
    assert_eq!(SpooledReversal::of(&d), Some(a));
}

#[test]
fn records_hold_the_masked_pan_only() {
    let line = line_of(&sample(1, 100));
    assert!(line.contains("622848******5678"));
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    // The checksum is 16 hex digits, then a space, then the JSON.
    assert!(line[..16].bytes().all(|b| b.is_ascii_hexdigit()) && &line[16..18] == " {");
}

#[test]
fn a_torn_last_record_is_set_aside_with_the_records_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (sample(1, 100), sample(3, 250));
    {
        let (mut f, _) = SpoolFile::open(dir.path()).unwrap();
        f.append(&a).unwrap();
    }
    // A crash in the middle of the second append: half a line, no newline.
    let torn = line_of(&b);
    let mut text = spool_text(dir.path());
    text.push_str(&torn[..torn.len() / 2]);
    std::fs::write(dir.path().join(SPOOL_FILE), &text).unwrap();

    let (mut f, loaded) = SpoolFile::open(dir.path()).unwrap();
    assert_eq!(loaded.records, vec![a.clone()]);
    assert!(loaded.torn_tail);
    // Set aside for the operator, and cut off the spool so the next append has its own line.
    let aside = std::fs::read_to_string(dir.path().join(UNREADABLE_FILE)).unwrap();
    assert_eq!(aside, format!("{}\n", &torn[..torn.len() / 2]));
    f.append(&b).unwrap();
    drop(f);
    let (_, loaded) = SpoolFile::open(dir.path()).unwrap();
    assert_eq!(loaded.records, vec![a, b]);
    assert!(!loaded.torn_tail);
}

#[test]
fn a_record_whose_checksum_does_not_match_is_set_aside_and_the_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (sample(1, 100), sample(3, 250), sample(5, 370));
    {
        let (mut f, _) = SpoolFile::open(dir.path()).unwrap();
        for r in [&a, &b, &c] {
            f.append(r).unwrap();
        }
    }
    // One byte of the middle record changed: 250 fen becomes 950.
    let text = spool_text(dir.path());
    let lines: Vec<&str> = text.lines().collect();
    let changed = lines[1].replace("\"amount_fen\":250", "\"amount_fen\":950");
    assert_ne!(changed, lines[1]);
    let bad = format!("{}\n{changed}\n{}\n", lines[0], lines[2]);
    std::fs::write(dir.path().join(SPOOL_FILE), bad).unwrap();

    let (_, loaded) = SpoolFile::open(dir.path()).unwrap();
    assert_eq!(loaded.records, vec![a.clone(), c.clone()]);
    assert_eq!((loaded.unreadable, loaded.torn_tail), (1, false));
    let aside = std::fs::read_to_string(dir.path().join(UNREADABLE_FILE)).unwrap();
    assert_eq!(aside, format!("{changed}\n"));
    // The spool itself now holds the readable records only.
    assert_eq!(spool_text(dir.path()), line_of(&a) + &line_of(&c));
}

#[test]
fn garbage_never_panics_the_reader() {
    let record = line_of(&sample(1, 100));
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\n\n\n".to_vec(),
        vec![0xff; 10_000],
        b"0123456789abcdef {\"v\":1}\n".to_vec(),
        b"0123456789abcdef\n".to_vec(),
        record.as_bytes()[..17].to_vec(),
        format!("{record}{record}")
            .replace("\"v\":2", "\"v\":3")
            .into_bytes(),
    ];
    for input in inputs {
        let (records, _, _) = parse(&input);
        assert!(records.is_empty());
    }
}

#[test]
fn compaction_keeps_the_pending_records_and_truncates_an_empty_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (sample(1, 100), sample(3, 250), sample(5, 370));
    let (mut f, _) = SpoolFile::open(dir.path()).unwrap();
    for r in [&a, &b, &c] {
        f.append(r).unwrap();
    }
    f.rewrite(std::slice::from_ref(&b)).unwrap();
    assert_eq!(spool_text(dir.path()), line_of(&b));
    // Appends after a compaction go to the new file.
    f.append(&c).unwrap();
    assert_eq!(f.records(), 2);
    f.rewrite(&[]).unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join(SPOOL_FILE))
            .unwrap()
            .len(),
        0
    );
    f.append(&a).unwrap();
    drop(f);
    let (_, loaded) = SpoolFile::open(dir.path()).unwrap();
    assert_eq!(loaded.records, vec![a]);
}

#[test]
fn a_second_node_cannot_open_a_data_directory_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let first = SpoolFile::open(dir.path()).unwrap();
    assert!(matches!(
        SpoolFile::open(dir.path()),
        Err(SpoolError::InUse(_))
    ));
    drop(first);
    assert!(SpoolFile::open(dir.path()).is_ok());
}

#[test]
fn the_spool_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut f, _) = SpoolFile::open_bounded(dir.path(), 2).unwrap();
    let r = sample(1, 100);
    f.append(&r).unwrap();
    f.append(&r).unwrap();
    assert!(matches!(f.append(&r), Err(SpoolError::Full(2))));
    // Refused whole: the file still holds two records.
    assert_eq!(spool_text(dir.path()).lines().count(), 2);
}

#[test]
fn only_a_decline_with_a_reversal_and_nothing_else_is_spooled() {
    let r = sample(1, 100);
    let mut d = r.decision();
    d.reversal = None;
    assert_eq!(SpooledReversal::of(&d), None);
    let mut d = r.decision();
    d.transaction.response_code = ResponseCode::Approved;
    assert_eq!(SpooledReversal::of(&d), None);
}

#[tokio::test]
async fn the_gauge_counts_what_waits_and_a_reopened_spool_counts_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    {
        let spool = ReversalSpool::open(Some(dir.path()), Arc::clone(&metrics)).unwrap();
        assert!(spool.is_durable() && spool.is_empty());
        assert!(spool.append(sample(1, 100)));
        assert!(spool.append(sample(3, 250)));
        assert_eq!(metrics.reversals_spooled.load(Ordering::Relaxed), 2);
    }
    let metrics = Arc::new(Metrics::default());
    let spool = ReversalSpool::open(Some(dir.path()), Arc::clone(&metrics)).unwrap();
    assert_eq!(spool.len(), 2);
    assert_eq!(metrics.reversals_spooled.load(Ordering::Relaxed), 2);
    let first = spool.lock().pending[0].id();
    spool.forget(&[first], &[]);
    assert_eq!(metrics.reversals_spooled.load(Ordering::Relaxed), 1);
    assert_eq!(spool_text(dir.path()).lines().count(), 1);
}

#[test]
fn a_version_1_record_is_still_read() {
    let r = sample(1, 100);
    let v2 = r.to_json();
    assert!(v2.starts_with("{\"v\":2,"), "{v2}");
    let v1 = v2.replacen("{\"v\":2,", "{\"v\":1,", 1);
    assert_eq!(SpooledReversal::from_json(&v1), Ok(r.clone()));
    // Version 1 always carried its reversal.
    let mut bare = r;
    bare.reversal = None;
    let v1 = bare.to_json().replacen("{\"v\":2,", "{\"v\":1,", 1);
    assert_eq!(
        SpooledReversal::from_json(&v1),
        Err(RecordError::Field("reversal"))
    );
}

/// A seeded SQLite store and its writer.
async fn store_and_writer(
    dir: &std::path::Path,
) -> (
    Arc<crate::store::SqliteStore>,
    crate::sim::testkit::Fixture,
    super::super::writer::WriterHandle,
) {
    use crate::store::{writer, DataKeyPanProtector, SqliteConfig, SqliteStore};
    let store = Arc::new(
        SqliteStore::open(
            &SqliteConfig::new(dir.join("switch.db")),
            Arc::new(DataKeyPanProtector::for_tests()),
        )
        .await
        .unwrap(),
    );
    let fx = crate::sim::testkit::seed(&*store, 10_000, 50_000)
        .await
        .unwrap();
    let (w, _task) = writer::spawn(Arc::clone(&store), writer::config_for::<SqliteStore>());
    (store, fx, w)
}

/// The decline `96` the pipeline records after `approval` failed to commit with its outcome
/// unknown, with the 0420 of the bank leg (STAN 777) and the approval's compensation.
fn decline_after(approval: &Decision) -> SpooledReversal {
    let mut decline = approval.transaction.clone();
    decline.transaction_id = TransactionId(Uuid::now_v7());
    decline.response_code = ResponseCode::SystemMalfunction;
    let leg = ReversalRequest {
        reversal_id: ReversalId(Uuid::now_v7()),
        destination: approval.transaction.issuer.clone().unwrap(),
        reason: ReversalReason::IssuerTimeout,
        amount_fen: approval.transaction.amount_fen,
        stan: Stan::new(777).unwrap(),
        transmission_at: TransmissionDateTime::parse("1207104500").unwrap(),
        first_attempt_at_us: 1,
    };
    let late = ReversalRequest {
        reversal_id: ReversalId(Uuid::now_v7()),
        reason: ReversalReason::LateApproval,
        ..leg.clone()
    };
    SpooledReversal {
        transaction: decline,
        atc: None,
        reversal: Some(leg),
        compensation: Compensation::of(approval, Some(late), 2).unwrap(),
    }
}

#[test]
fn a_compensation_reads_back_as_written() {
    let fx = crate::sim::testkit::Fixture {
        hospital: crate::sim::testkit::inst("4101001"),
        fund: crate::sim::testkit::inst("0909"),
        bank: crate::sim::testkit::inst("01020000"),
        pan: schemas::domain::Pan::parse("6228480012345678").unwrap(),
        card_id: CardId(7),
        personal: crate::store::AccountId(11),
        pooled: crate::store::AccountId(12),
    };
    let approval = crate::sim::testkit::debit(&fx, fx.personal, 5, 250);
    let r = decline_after(&approval);
    let c = r.compensation.as_ref().unwrap();
    assert_eq!(c.approval_id, approval.transaction.transaction_id);
    assert_eq!(
        c.reversal.balance_ops,
        vec![crate::store::BalanceOp::Credit {
            account_id: fx.personal,
            amount_fen: AmountFen::new(250).unwrap()
        }]
    );
    let line = line_of(&r);
    let (records, unreadable, tail) = parse(line.as_bytes());
    assert!(unreadable.is_empty() && tail.is_empty());
    assert_eq!(records, vec![r]);
}

/// The replay of a decline whose approval had committed after all (its connection died during
/// COMMIT): the store answers the decline `Duplicate { existing: approval }`, so the approval is
/// reversed (its account credited back, a reversal event, the 0420 queued under the leg's STAN)
/// instead of the decline being taken as stored. Replayed again, nothing more happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_decline_whose_approval_committed_reverses_the_approval() {
    use crate::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let (store, fx, writer) = store_and_writer(dir.path()).await;
    let opening = store
        .account(fx.personal)
        .await
        .unwrap()
        .unwrap()
        .balance_fen;
    let approval = crate::sim::testkit::debit(&fx, fx.personal, 5, 250);
    writer.submit(approval.clone()).await.unwrap();
    let spool = ReversalSpool::open(None, Arc::new(Metrics::default())).unwrap();

    let record = decline_after(&approval);
    let (done, _) = spool.store_or_keep(record.clone(), &writer).await;
    assert_eq!(done, Replayed::Stored);
    assert!(spool.is_empty());
    let stored = store
        .transactions_by_rrn(&approval.transaction.rrn)
        .await
        .unwrap();
    let reversals: Vec<_> = stored
        .iter()
        .filter(|t| t.record.kind == TransactionKind::Reversal)
        .collect();
    assert_eq!(reversals.len(), 1, "{stored:?}");
    assert!(reversals[0].record.is_approved());
    assert_eq!(
        reversals[0].record.original_transaction_id,
        Some(approval.transaction.transaction_id)
    );
    assert!(
        !stored
            .iter()
            .any(|t| t.record.response_code.as_str() == "96"),
        "the decline's key is the approval's: it is not stored"
    );
    assert_eq!(
        store
            .account(fx.personal)
            .await
            .unwrap()
            .unwrap()
            .balance_fen,
        opening
    );
    let due = store.due_reversals(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].stan, Stan::new(777).unwrap());
    assert_eq!(due[0].reason, ReversalReason::LateApproval);
    let report = store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");

    // Replayed again (a spool compacted after a crash): already done.
    let (again, _) = spool.store_or_keep(record, &writer).await;
    assert_eq!(again, Replayed::Stored);
    assert_eq!(store.due_reversals(i64::MAX, 10).await.unwrap().len(), 1);
    assert_eq!(
        store
            .account(fx.personal)
            .await
            .unwrap()
            .unwrap()
            .balance_fen,
        opening
    );
}

/// The approval did not commit: the decline is stored with its own 0420, nothing is reversed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_decline_whose_approval_did_not_commit_is_stored_with_its_0420() {
    use crate::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let (store, fx, writer) = store_and_writer(dir.path()).await;
    let approval = crate::sim::testkit::debit(&fx, fx.personal, 6, 250);
    let spool = ReversalSpool::open(None, Arc::new(Metrics::default())).unwrap();
    let record = decline_after(&approval);
    let (done, _) = spool.store_or_keep(record.clone(), &writer).await;
    assert_eq!(done, Replayed::Stored);
    let stored = store
        .transactions_by_rrn(&approval.transaction.rrn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].record.response_code.as_str(), "96");
    let due = store.due_reversals(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].reason, ReversalReason::IssuerTimeout);
}

/// A stand-in approval (its 0220 advice queued with it) that committed although answered 96:
/// its compensation's 0420, keyed by the advice's STAN and field 7, reaches the bank only after
/// the advice is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensated_stand_in_sends_its_0420_after_its_0220() {
    use crate::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let (store, fx, writer) = store_and_writer(dir.path()).await;
    let approval = crate::sim::testkit::stand_in(&fx, 8, 300);
    writer.submit(approval.clone()).await.unwrap();
    let advice = approval.advice.clone().unwrap();
    let late = ReversalRequest {
        reversal_id: ReversalId(Uuid::now_v7()),
        destination: advice.destination.clone(),
        reason: ReversalReason::LateApproval,
        amount_fen: advice.amount_fen,
        stan: advice.stan,
        transmission_at: advice.transmission_at.clone(),
        first_attempt_at_us: 1,
    };
    let mut decline = approval.transaction.clone();
    decline.transaction_id = TransactionId(Uuid::now_v7());
    decline.response_code = ResponseCode::SystemMalfunction;
    let record = SpooledReversal {
        transaction: decline,
        atc: None,
        reversal: None,
        compensation: Compensation::of(&approval, Some(late), 2).unwrap(),
    };
    // Through the file too: a decline with no 0420 of its own.
    let (read, _, _) = parse(line_of(&record).as_bytes());
    assert_eq!(read, vec![record.clone()]);
    let spool = ReversalSpool::open(None, Arc::new(Metrics::default())).unwrap();
    assert_eq!(
        spool.store_or_keep(record, &writer).await.0,
        Replayed::Stored
    );

    assert!(
        store.due_reversals(i64::MAX, 10).await.unwrap().is_empty(),
        "held back behind the pending advice"
    );
    let advices = store.due_advices(i64::MAX, 10).await.unwrap();
    assert_eq!(advices.len(), 1);
    store
        .ack_advice(advices[0].advice_id, ResponseCode::Approved, 3)
        .await
        .unwrap();
    let due = store.due_reversals(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].stan, due[0].amount_fen),
        (advice.stan, advice.amount_fen.get())
    );
    let report = store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
}

/// The kiosk's own reversal (0400, STAN `stan`) of `approval`, as the reversal service decides
/// it: the account credited back and a 0420 (STAN `bank_stan`) for the bank.
fn kiosk_reversal(
    fx: &crate::sim::testkit::Fixture,
    approval: &Decision,
    stan: u32,
    bank_stan: u32,
) -> Decision {
    let amount = approval.transaction.amount_fen;
    let mut r = crate::sim::testkit::decline(fx, stan, amount.get(), ResponseCode::Approved);
    r.transaction.kind = TransactionKind::Reversal;
    r.transaction.mti = "0400".into();
    r.transaction.rrn = approval.transaction.rrn.clone();
    r.transaction.original_transaction_id = Some(approval.transaction.transaction_id);
    r.balance_ops = vec![crate::store::BalanceOp::Credit {
        account_id: fx.personal,
        amount_fen: amount,
    }];
    r.reversal = Some(ReversalRequest {
        reversal_id: ReversalId(Uuid::now_v7()),
        destination: fx.bank.clone(),
        reason: ReversalReason::AcquirerRequest,
        amount_fen: amount,
        stan: Stan::new(bank_stan).unwrap(),
        transmission_at: TransmissionDateTime::parse("1207104600").unwrap(),
        first_attempt_at_us: 1,
    });
    r
}

/// An approval answered 96 (its commit outcome unknown) that had committed, and that the kiosk
/// reversed itself (it timed out and sent a 0400): the compensation finds the approval reversed
/// and is done, whether the kiosk's reversal committed first or in the same moment. The money
/// comes back once, and one 0420 goes to the bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_of_an_approval_the_kiosk_reversed_gives_the_money_back_once() {
    use crate::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let (store, fx, writer) = store_and_writer(dir.path()).await;
    let balance = || async {
        let a = store.account(fx.personal).await.unwrap().unwrap();
        a.balance_fen
    };
    let opening = balance().await;
    let spool = ReversalSpool::open(None, Arc::new(Metrics::default())).unwrap();
    let approved_reversals = |rrn: Rrn| {
        let store = Arc::clone(&store);
        async move {
            store
                .transactions_by_rrn(&rrn)
                .await
                .unwrap()
                .iter()
                .filter(|t| t.record.kind == TransactionKind::Reversal && t.record.is_approved())
                .count()
        }
    };

    // The kiosk's reversal first, the spool's replay after.
    let approval = crate::sim::testkit::debit(&fx, fx.personal, 11, 250);
    writer.submit(approval.clone()).await.unwrap();
    writer
        .submit(kiosk_reversal(&fx, &approval, 12, 881))
        .await
        .unwrap();
    let (done, _) = spool.store_or_keep(decline_after(&approval), &writer).await;
    assert_eq!(done, Replayed::Stored, "nothing left to compensate");
    assert!(spool.is_empty());
    assert_eq!(
        approved_reversals(approval.transaction.rrn.clone()).await,
        1
    );
    assert_eq!(balance().await, opening, "250 back once");
    let due = store.due_reversals(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1, "the kiosk's 0420 only: {due:?}");
    assert_eq!(due[0].stan, Stan::new(881).unwrap());

    // Both at once, several times: either wins, the money comes back once.
    for n in 0..5u32 {
        let approval = crate::sim::testkit::debit(&fx, fx.personal, 20 + n * 2, 250);
        writer.submit(approval.clone()).await.unwrap();
        let kiosk = kiosk_reversal(&fx, &approval, 21 + n * 2, 890 + n);
        let (kiosk, (replayed, _)) = tokio::join!(
            writer.submit(kiosk),
            spool.store_or_keep(decline_after(&approval), &writer)
        );
        assert_eq!(replayed, Replayed::Stored, "round {n}");
        // The kiosk's loses only to the compensation (answered 00 by the reversal service).
        if let Err(e) = kiosk {
            assert!(
                matches!(
                    e,
                    crate::store::writer::WriteError::Decision(
                        crate::store::DecisionError::AlreadyReversed { .. }
                    )
                ),
                "round {n}: {e}"
            );
        }
        assert_eq!(
            approved_reversals(approval.transaction.rrn.clone()).await,
            1,
            "round {n}"
        );
        assert_eq!(balance().await, opening, "round {n}: 250 back once");
        assert_eq!(
            store.due_reversals(i64::MAX, 100).await.unwrap().len(),
            2 + n as usize,
            "round {n}: one 0420 per approval"
        );
    }
    let report = store.verify_integrity().await.unwrap();
    assert!(report.is_consistent(), "{report}");
}
