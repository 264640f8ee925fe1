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
