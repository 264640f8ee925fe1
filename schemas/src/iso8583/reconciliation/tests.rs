use super::*;
use crate::iso8583::{spec, Mti};

fn fen(v: i64) -> AmountFen {
    AmountFen::new(v).unwrap()
}

fn sample() -> ReconciliationTotals {
    let mut t = ReconciliationTotals::default();
    t.add(TotalsLine::Credits, 2, fen(5_000)).unwrap();
    t.add(TotalsLine::CreditReversals, 1, fen(1_000)).unwrap();
    t.add(TotalsLine::Debits, 3, fen(21_500)).unwrap();
    t.add(TotalsLine::DebitReversals, 1, fen(10_000)).unwrap();
    t
}

#[test]
fn totals_round_trip_through_a_0510() {
    let spec = spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0510").unwrap());
    m.set_str(7, "1123093605").unwrap().set_u64(11, 1).unwrap();
    m.set_str(15, "1123").unwrap().set_str(39, "00").unwrap();
    let totals = sample();
    totals.to_message(&mut m).unwrap();
    SettlementCode::OutOfBalance.to_message(&mut m).unwrap();
    let mut wire = Vec::new();
    spec.encode(&m, &mut wire).unwrap();
    let back = spec.decode(&wire).unwrap();
    assert_eq!(ReconciliationTotals::from_message(&back), Ok(totals));
    assert_eq!(back.get_str(76).unwrap(), "0000000003");
    assert_eq!(back.get_str(88).unwrap(), "0000000000021500");
    // 5000 - 1000 - 21500 + 10000 = -7500: the sender owes.
    assert_eq!(back.get_str(97).unwrap(), "D0000000000007500");
    assert_eq!(NetSettlement::from_message(&back).unwrap().fen(), -7_500);
    assert_eq!(
        SettlementCode::from_message(&back),
        Ok(SettlementCode::OutOfBalance)
    );
}

#[test]
fn the_net_carries_its_sign_c_for_owed_to_the_sender() {
    assert_eq!(
        NetSettlement::new(1_500).unwrap().to_string(),
        "C0000000000001500"
    );
    assert_eq!(
        NetSettlement::new(-7).unwrap().to_string(),
        "D0000000000000007"
    );
    assert_eq!(
        NetSettlement::new(0).unwrap().to_string(),
        "C0000000000000000"
    );
    for s in ["C0000000000001500", "D0000000000000007"] {
        assert_eq!(NetSettlement::parse(s).unwrap().to_string(), s);
    }
}

#[test]
fn a_net_with_another_sign_is_refused() {
    for bad in [
        "X0000000000001500",
        "+0000000000001500",
        "0000000000001500",
        "",
    ] {
        assert_eq!(
            NetSettlement::parse(bad),
            Err(ReconciliationError::BadSign),
            "{bad}"
        );
    }
    for bad in [
        "C",
        "C00000000000015A0",
        "C+000000000001500",
        "C00000000000000001",
    ] {
        assert_eq!(
            NetSettlement::parse(bad),
            Err(ReconciliationError::NotDigits { field: 97 }),
            "{bad}"
        );
    }
}

#[test]
fn totals_that_overflow_are_errors_not_wraps() {
    let mut t = ReconciliationTotals::default();
    t.add(TotalsLine::Debits, COUNT_MAX, fen(AMOUNT_FEN_MAX))
        .unwrap();
    let before = t;
    assert_eq!(
        t.add(TotalsLine::Debits, 1, fen(0)),
        Err(ReconciliationError::Overflow { field: 76 })
    );
    assert_eq!(
        t.add(TotalsLine::Debits, 0, fen(1)),
        Err(ReconciliationError::Overflow { field: 88 })
    );
    assert_eq!(
        t.add(TotalsLine::Debits, 0, fen(i64::MAX)),
        Err(ReconciliationError::Overflow { field: 88 })
    );
    assert_eq!(t, before, "a refused add changes nothing");
    let huge = Tally {
        count: 1,
        amount: fen(i64::MAX),
    };
    let t = ReconciliationTotals {
        credits: huge,
        debit_reversals: huge,
        ..ReconciliationTotals::default()
    };
    assert_eq!(t.net(), Err(ReconciliationError::Overflow { field: 97 }));
    let spec = spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0510").unwrap());
    assert_eq!(
        t.write_lines(&mut m),
        Err(ReconciliationError::Overflow { field: 86 })
    );
}

#[test]
fn a_0500_without_a_total_names_the_missing_field() {
    let spec = spec("ssc87").unwrap();
    let mut m = spec.message(Mti::new("0500").unwrap());
    sample().write_lines(&mut m).unwrap();
    m.remove(87);
    let mut wire = Vec::new();
    spec.encode_unchecked(&m, &mut wire).unwrap();
    let msg = spec.decode_unchecked(&wire).unwrap();
    assert!(matches!(
        ReconciliationTotals::from_message(&msg),
        Err(ReconciliationError::Read { field: 87, .. })
    ));
}

#[test]
fn lines_name_their_fields() {
    let fields: Vec<_> = TotalsLine::ALL
        .iter()
        .map(|l| (l.count_field(), l.amount_field()))
        .collect();
    assert_eq!(fields, [(74, 86), (75, 87), (76, 88), (77, 89)]);
    assert_eq!(
        SettlementCode::from_code(4),
        Err(ReconciliationError::UnknownSettlementCode)
    );
    assert_eq!(SettlementCode::InBalance.as_str(), "1");
}

#[test]
fn differing_fields_name_each_line_that_differs_and_the_net() {
    let ours = sample();
    assert!(ours.differing_fields(&ours).is_empty());
    let mut theirs = ours;
    theirs
        .add(TotalsLine::Debits, 1, AmountFen::new(500).unwrap())
        .unwrap();
    assert_eq!(ours.differing_fields(&theirs), [76, 88, 97]);
    // One transaction moved from debits to credits of the same amount: counts and amounts of
    // both lines differ, and so does the net.
    let mut moved = ReconciliationTotals::default();
    moved
        .add(TotalsLine::Debits, 1, AmountFen::new(7).unwrap())
        .unwrap();
    let mut other = ReconciliationTotals::default();
    other
        .add(TotalsLine::Credits, 1, AmountFen::new(7).unwrap())
        .unwrap();
    assert_eq!(moved.differing_fields(&other), [74, 76, 86, 88, 97]);
}

#[test]
fn differences_come_in_field_order_with_their_iso_names_and_both_figures() {
    let mut ours = ReconciliationTotals::default();
    ours.add(TotalsLine::Debits, 2, fen(300)).unwrap();
    let ours = ReconciliationFigures::of(ours).unwrap();
    // Their totals say nothing, but their 97 states our net: the nets agree.
    let theirs = ReconciliationFigures {
        totals: ReconciliationTotals::default(),
        net: NetSettlement::new(-300).unwrap(),
    };
    let d = ours.differences(&theirs);
    let fields: Vec<_> = d
        .iter()
        .map(|d| (d.field, d.name, d.ours, d.theirs))
        .collect();
    assert_eq!(
        fields,
        [(76, "debits, number", 2, 0), (88, "debits, amount", 300, 0)],
        "the nets agree"
    );
    // A stated net that does not follow from the sender's own totals is a difference.
    let theirs = ReconciliationFigures {
        totals: ours.totals,
        net: NetSettlement::new(300).unwrap(),
    };
    assert_eq!(
        ours.differences(&theirs),
        [FigureDifference {
            field: 97,
            name: NET_SETTLEMENT_NAME,
            ours: -300,
            theirs: 300
        }]
    );
    assert!(ours.differences(&ours).is_empty());
}

#[test]
fn a_net_that_overflows_field_97_differs_from_every_net() {
    let mut big = ReconciliationTotals::default();
    big.add(TotalsLine::Credits, 1, fen(AMOUNT_FEN_MAX))
        .unwrap();
    let other = big;
    big.debit_reversals.amount = fen(AMOUNT_FEN_MAX);
    assert!(big.net().is_err());
    assert_eq!(big.differing_fields(&other), [89, 97]);
    assert_eq!(big.differing_fields(&big), [97]);
}
