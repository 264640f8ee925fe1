use super::*;
use uuid::Uuid;

/// Validates a statement against the ISO 20022 schema in the repository with xmllint (Debian's
/// libxml2-utils, installed by ops/setup.sh); panics when xmllint is missing.
fn assert_valid(xml: &str) {
    let dir = std::env::temp_dir().join(format!("clearing-camt053-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("statement.xml");
    std::fs::write(&file, xml).unwrap();
    let xsd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/iso20022/camt.053.001.08.xsd"
    );
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema", xsd])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("xmllint (apt-get install libxml2-utils, ops/setup.sh): {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn posting(event: u128, debit_account: &str, amount_fen: i64) -> PostingRecord {
    PostingRecord {
        event_id: Uuid::from_u128(event),
        leg_no: 1,
        event_type: "medical_bill".into(),
        leg_kind: "fund".into(),
        debit_institution: "FUND".into(),
        debit_account: debit_account.into(),
        credit_institution: "HOSP".into(),
        credit_account: "merchant".into(),
        amount_fen,
        posted_at_us: 1_796_000_000_000_000,
    }
}

fn closed() -> WindowSummary {
    WindowSummary {
        window_id: 1,
        opened_at_us: 1_795_000_000_000_000,
        closed_at_us: Some(1_797_000_000_000_000),
        closed: true,
        digest: Some([7; 32]),
        posting_count: 0,
        posted_total_fen: 0,
        net_positions: Vec::new(),
        instructions: Vec::new(),
    }
}

fn open() -> WindowSummary {
    WindowSummary {
        closed_at_us: None,
        closed: false,
        digest: None,
        ..closed()
    }
}

#[test]
fn report_totals_that_overflow_are_errors_not_wraps() {
    let postings = [
        posting(1, "pooled_fund", i64::MAX),
        posting(2, "pooled_fund", 1),
    ];
    assert!(matches!(
        medical_reconciliation("FUND", 1, &postings),
        Err(ClearingError::Overflow("pooled fund"))
    ));
    assert!(matches!(
        statement_csv("HOSP", &closed(), &postings),
        Err(ClearingError::Overflow("statement credits"))
    ));
    assert!(matches!(
        statement_camt053("HOSP", &closed(), &postings),
        Err(ClearingError::Overflow("statement credits"))
    ));
    let fine = [
        posting(1, "pooled_fund", 700),
        posting(1, "bank_settlement", 300),
    ];
    let view = medical_reconciliation("FUND", 1, &fine).unwrap();
    assert_eq!(view.totals.total_fen().unwrap(), 1_000);
}

#[test]
fn statements_of_an_open_window_are_refused() {
    let postings = [posting(1, "pooled_fund", 700)];
    assert!(matches!(
        statement_csv("HOSP", &open(), &postings),
        Err(ClearingError::WindowOpen(1))
    ));
    assert!(matches!(
        statement_camt053("HOSP", &open(), &postings),
        Err(ClearingError::WindowOpen(1))
    ));
}

#[test]
fn csv_rows_are_in_canonical_order_whatever_order_the_postings_come_in() {
    let mut a = posting(2, "pooled_fund", 100);
    a.leg_no = 2;
    let b = posting(2, "pooled_fund", 200);
    let c = posting(1, "personal_accounts", 300);
    let one = statement_csv("HOSP", &closed(), &[a.clone(), b.clone(), c.clone()]).unwrap();
    let two = statement_csv("HOSP", &closed(), &[c, a, b]).unwrap();
    assert_eq!(one, two);
    let rows: Vec<&str> = one
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .collect();
    assert!(rows[0].starts_with(&format!("{},1,", Uuid::from_u128(1))));
    assert!(rows[1].starts_with(&format!("{},1,", Uuid::from_u128(2))));
    assert!(rows[2].starts_with(&format!("{},2,", Uuid::from_u128(2))));
    assert!(one.contains("# totals postings=3 debits_fen=0 credits_fen=600 net_fen=600\n"));
}

#[test]
fn a_transfer_between_own_accounts_is_on_both_sides_and_nets_to_zero() {
    let mut own = posting(1, "pooled_fund", 500);
    own.credit_institution = "FUND".into();
    own.credit_account = "personal_accounts".into();
    let csv = statement_csv("FUND", &closed(), std::slice::from_ref(&own)).unwrap();
    assert!(csv.contains(",BOTH,0,5.00,"), "{csv}");
    assert!(csv.contains("debits_fen=500 credits_fen=500 net_fen=0"));
    let xml = statement_camt053("FUND", &closed(), &[own]).unwrap();
    assert_valid(&xml);
    let refs: Vec<&str> = xml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<NtryRef>"))
        .collect();
    assert_eq!(refs.len(), 2);
    assert_ne!(refs[0], refs[1]);
    assert!(refs.iter().all(|r| r.len() == "</NtryRef>".len() + 35));
}

#[test]
fn postings_of_other_institutions_stay_out_of_a_statement() {
    let mut other = posting(9, "bank_settlement", 900);
    other.debit_institution = "BANK".into();
    other.credit_institution = "PHARM".into();
    let mine = posting(1, "pooled_fund", 100);
    let csv = statement_csv("HOSP", &closed(), &[other.clone(), mine.clone()]).unwrap();
    assert_eq!(
        csv,
        statement_csv("HOSP", &closed(), std::slice::from_ref(&mine)).unwrap()
    );
    let xml = statement_camt053("HOSP", &closed(), &[other, mine.clone()]).unwrap();
    assert_valid(&xml);
    assert_eq!(xml, statement_camt053("HOSP", &closed(), &[mine]).unwrap());
}

#[test]
fn camt053_refuses_values_its_schema_would_reject() {
    let p = [posting(1, "pooled_fund", 100)];
    let long_id = "1".repeat(35);
    let mut foreign = p[0].clone();
    foreign.credit_institution = long_id.clone();
    assert!(matches!(
        statement_camt053(&long_id, &closed(), &[foreign]),
        Err(ClearingError::Report(_))
    ));
    let huge = [posting(1, "pooled_fund", 1_000_000_000_000_000_000)];
    assert!(matches!(
        statement_camt053("HOSP", &closed(), &huge),
        Err(ClearingError::Report(_))
    ));
    let mut leg = p[0].clone();
    leg.leg_no = 256;
    assert!(matches!(
        statement_camt053("HOSP", &closed(), &[leg]),
        Err(ClearingError::Report(_))
    ));
    let mut control = p[0].clone();
    control.event_type = "bill\u{1}".into();
    assert!(matches!(
        statement_camt053("HOSP", &closed(), &[control]),
        Err(ClearingError::Report(_))
    ));
}

#[test]
fn csv_refuses_a_field_that_would_change_the_canonical_form() {
    for bad in ["a,b", "a|b", "a\"b", "a\nb", ""] {
        let mut p = posting(1, "pooled_fund", 100);
        p.event_type = bad.into();
        assert!(
            matches!(
                statement_csv("HOSP", &closed(), &[p]),
                Err(ClearingError::Report(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn camt053_escapes_markup_in_text() {
    let mut p = posting(1, "pooled_fund", 100);
    p.leg_kind = "a<b&c".into();
    let xml = statement_camt053("HOSP", &closed(), &[p]).unwrap();
    assert_valid(&xml);
    assert!(xml.contains("a&lt;b&amp;c pooled_fund/merchant"), "{xml}");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
}

#[test]
fn the_largest_amount_of_the_schema_is_written_and_one_fen_more_is_refused() {
    let max = camt053::AMOUNT_FEN_MAX;
    let xml = statement_camt053("HOSP", &closed(), &[posting(1, "pooled_fund", max)]).unwrap();
    assert!(xml.contains("<Amt Ccy=\"CNY\">9999999999999999.99</Amt>"));
    assert_valid(&xml);
    assert!(matches!(
        statement_camt053("HOSP", &closed(), &[posting(1, "pooled_fund", max + 1)]),
        Err(ClearingError::Report(_))
    ));
}

#[test]
fn a_statement_without_postings_is_valid_and_balances_at_zero() {
    let xml = statement_camt053("3100002", &closed(), &[]).unwrap();
    assert_valid(&xml);
    assert!(!xml.contains("<Ntry>"));
    let csv = statement_csv("3100002", &closed(), &[]).unwrap();
    assert!(csv.contains("# totals postings=0 debits_fen=0 credits_fen=0 net_fen=0\n"));
}
