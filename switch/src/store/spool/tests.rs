//! The spool file's format: what is appended reads back, a torn last record and a record whose
//! checksum does not match are set aside (never a panic), compaction keeps exactly the records
//! still pending, and a second node cannot open a directory in use.

use super::file::{line_of, parse};
use super::*;
use crate::store::{
    CardAtc, CardId, ReversalId, ReversalReason, ReversalRequest, TransactionId, TransactionKind,
    TransactionRecord,
};
use schemas::domain::{
    AmountFen, InstitutionId, ResponseCode, Rrn, Stan, TerminalId, TransmissionDateTime,
};
use uuid::Uuid;

fn sample(stan: u32, amount_fen: i64) -> SpooledReversal {
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
        reversal: ReversalRequest {
            reversal_id: ReversalId(Uuid::now_v7()),
            destination: bank,
            reason: ReversalReason::IssuerTimeout,
            amount_fen: AmountFen::new(amount_fen).unwrap(),
            stan: Stan::new(stan + 1).unwrap(),
            transmission_at: at,
            first_attempt_at_us: 1_765_104_300_000_001,
        },
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
            .replace("\"v\":1", "\"v\":2")
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
