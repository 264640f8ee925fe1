use super::*;
use schemas::events::sample::{self, ids};

#[test]
fn a_future_schema_version_is_reported_as_such_not_as_malformed() {
    let mut v = serde_json::to_value(sample::event(EventType::Purchase, ids::HOSPITAL, 1)).unwrap();
    v["schema_version"] = serde_json::json!(9);
    v["added_in_v9"] = serde_json::json!(true);
    let err = parse(v.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.1, PoisonReason::UnsupportedVersion(9));
    assert_eq!(err.1.code(), "unsupported_version");
}

#[test]
fn an_invalid_event_keeps_its_id_for_the_dead_letter_row() {
    let mut e = sample::event(EventType::Purchase, ids::HOSPITAL, 1);
    e.legs.clear();
    let (event, reason) = *parse(serde_json::to_string(&e).unwrap().as_bytes()).unwrap_err();
    assert_eq!(event.map(|e| e.event_id), Some(e.event_id));
    assert_eq!(reason.code(), "invalid");
}

#[test]
fn pair_deltas_mirror_institution_deltas() {
    let e = sample::event(EventType::MedicalBillSplit, ids::HOSPITAL, 1);
    let payload = serde_json::to_vec(&e).unwrap();
    let parsed = parse(&payload);
    let input = Input {
        topic: "t",
        partition: 0,
        offset: 0,
        payload: &payload,
        parsed: &parsed,
    };
    let plan = plan(vec![input], &HashMap::new(), &mut Known::default());
    let mut by_inst: HashMap<String, i64> = HashMap::new();
    for ((inst, _), d) in &plan.accounts {
        *by_inst.entry(inst.to_string()).or_default() += d.credits_posted_fen - d.debits_posted_fen;
    }
    for (inst, net) in &by_inst {
        let from_pairs: i64 = plan
            .pairs
            .iter()
            .map(|((a, b), v)| {
                if *a == inst.as_str() {
                    *v
                } else if *b == inst.as_str() {
                    -v
                } else {
                    0
                }
            })
            .sum();
        assert_eq!(from_pairs, *net, "{inst}");
    }
    assert_eq!(by_inst.values().sum::<i64>(), 0);
}

/// Plans purchases delivered at `offsets` of partition 0 of topic "t".
fn plan_offsets(offsets: &[i64], stored: Option<i64>) -> (ApplyReport, Vec<Range<i64>>) {
    let payloads: Vec<Vec<u8>> = offsets
        .iter()
        .map(|o| {
            let seq = u32::try_from(*o).unwrap();
            serde_json::to_vec(&sample::event(EventType::Purchase, ids::HOSPITAL, seq)).unwrap()
        })
        .collect();
    let parsed: Vec<Parsed> = payloads.iter().map(|p| parse(p)).collect();
    let inputs = offsets
        .iter()
        .zip(&payloads)
        .zip(&parsed)
        .map(|((offset, payload), parsed)| Input {
            topic: "t",
            partition: 0,
            offset: *offset,
            payload,
            parsed,
        });
    let stored: HashMap<(String, i32), i64> = stored
        .map(|s| (("t".to_owned(), 0), s))
        .into_iter()
        .collect();
    let plan = plan(inputs, &stored, &mut Known::default());
    let gaps = plan.gaps.iter().map(|g| g.missing.clone()).collect();
    (plan.report, gaps)
}

#[test]
fn every_jump_past_the_next_offset_is_a_gap_with_its_range() {
    let (report, gaps) = plan_offsets(&[12, 13, 20, 21], Some(10));
    assert_eq!(gaps, [10..12, 14..20]);
    assert_eq!((report.offset_gaps, report.offsets_missing), (2, 8));
    assert_eq!(report.applied, 4);
}

#[test]
fn offsets_below_or_at_the_next_one_leave_no_gap() {
    let (report, gaps) = plan_offsets(&[8, 9, 10, 11], Some(10));
    assert!(gaps.is_empty());
    assert_eq!((report.already_consumed, report.applied), (2, 2));
}

#[test]
fn a_partition_never_consumed_has_no_next_offset_to_jump_past() {
    let (report, gaps) = plan_offsets(&[7, 8], None);
    assert!(gaps.is_empty());
    assert_eq!((report.offset_gaps, report.applied), (0, 2));
}
