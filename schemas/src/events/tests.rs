use super::sample::{self, ids};
use super::*;
use serde_json::{json, Value};

/// A change that makes a valid event invalid.
type Mutation = Box<dyn Fn(&mut Value)>;

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SETTLEMENT_EVENT_SCHEMA_JSON).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn as_json(event: &SettlementEvent) -> Value {
    serde_json::from_str(&event.to_json().unwrap()).unwrap()
}

#[test]
fn every_event_type_validates_against_the_json_schema_and_round_trips() {
    let validator = validator();
    for (i, event_type) in EventType::ALL.into_iter().enumerate() {
        let event = sample::event(event_type, ids::HOSPITAL, i as u32);
        assert_eq!(event.validate(), Ok(()), "{event_type:?}");
        let value = as_json(&event);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{event_type:?}: {errors:?}");
        assert_eq!(value["event_type"], event_type.as_str());
        let back = SettlementEvent::from_json(&event.to_json().unwrap()).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let validator = validator();
    let good = as_json(&sample::event(EventType::Reversal, ids::HOSPITAL, 1));
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "negative amount",
            Box::new(|v| v["legs"][0]["amount_fen"] = json!(-5)),
        ),
        (
            "unknown event type",
            Box::new(|v| v["event_type"] = json!("chargeback")),
        ),
        (
            "future version",
            Box::new(|v| v["schema_version"] = json!(2)),
        ),
        ("other currency", Box::new(|v| v["currency"] = json!("840"))),
        (
            "extra field",
            Box::new(|v| v["pan"] = json!("4111111111111111")),
        ),
        (
            "event id not v7",
            Box::new(|v| v["event_id"] = json!(uuid::Uuid::nil().to_string())),
        ),
        (
            "reversal without original",
            Box::new(|v| {
                v["references"]
                    .as_object_mut()
                    .unwrap()
                    .remove("original_event_id");
            }),
        ),
        (
            "bad stan",
            Box::new(|v| v["references"]["stan"] = json!("12a456")),
        ),
        ("no legs", Box::new(|v| v["legs"] = json!([]))),
        (
            "bad timestamp",
            Box::new(|v| v["occurred_at"] = json!("yesterday")),
        ),
    ];
    assert!(validator.is_valid(&good));
    for (name, mutate) in cases {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(!validator.is_valid(&bad), "schema accepted: {name}");
        assert!(
            SettlementEvent::from_json(&bad.to_string()).is_err(),
            "from_json accepted: {name}"
        );
    }
}

#[test]
fn legs_must_add_up_to_the_event_amount() {
    let mut event = sample::event(EventType::MedicalBillSplit, ids::HOSPITAL, 7);
    event.amount_fen = AmountFen::new(9_999).unwrap();
    assert_eq!(
        event.validate(),
        Err(EventError::Unbalanced {
            legs_fen: 10_000,
            amount_fen: 9_999
        })
    );
}

#[test]
fn legs_whose_sum_overflows_do_not_pass_for_the_largest_amount() {
    // Legs of i64::MAX - 3 and 1 + 4,000 + ... sum past i64::MAX; a saturating sum made them
    // equal to an amount of i64::MAX, and the unbalanced event validated.
    let mut event = sample::event(EventType::MedicalBillSplit, ids::HOSPITAL, 7);
    event.legs[0].amount_fen = AmountFen::new(i64::MAX - 3).unwrap();
    event.amount_fen = AmountFen::new(i64::MAX).unwrap();
    assert!(
        matches!(event.validate(), Err(EventError::Unbalanced { .. })),
        "{:?}",
        event.validate()
    );
}

#[test]
fn legs_must_be_numbered_uniquely_and_move_money_between_different_parties() {
    let mut event = sample::event(EventType::MedicalBillSplit, ids::HOSPITAL, 8);
    event.legs[1].leg_no = 1;
    assert_eq!(event.validate(), Err(EventError::DuplicateLegNo(1)));
    let mut event = sample::event(EventType::Purchase, ids::HOSPITAL, 9);
    event.legs[0].credit = event.legs[0].debit.clone();
    assert_eq!(event.validate(), Err(EventError::SelfTransfer(1)));
}

#[test]
fn holds_and_their_completions_must_name_the_hold() {
    let mut event = sample::event(EventType::Completion, ids::HOSPITAL, 10);
    event.references.hold_id = None;
    assert_eq!(
        event.validate(),
        Err(EventError::MissingHold(EventType::Completion))
    );
    assert!(!validator().is_valid(&as_json(&event)));
}

#[test]
fn the_partition_key_is_the_acquirer() {
    let event = sample::event(EventType::Purchase, ids::HOSPITAL, 11);
    assert_eq!(event.partition_key().as_str(), ids::HOSPITAL);
}
