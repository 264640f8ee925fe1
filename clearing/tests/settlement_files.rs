//! The settlement files as a bank or fund receives them: the schema copy, the documented
//! layouts, when the first window starts, and a property over random event streams (every
//! institution's statements sum to its position, all positions sum to zero, every camt.053
//! validates against the ISO 20022 schema).

mod common;

use clearing::ledger::Ledger;
use clearing::report::{render, ReportFormat};
use clearing::window;
use common::*;
use proptest::prelude::*;
use schemas::domain::{AmountFen, InstitutionId};
use schemas::events::sample::{self, ids};
use schemas::events::{EventType, LedgerAccount, Leg, LegKind, Party, SettlementEvent};
use std::collections::BTreeMap;

#[test]
fn the_schema_in_the_repository_is_the_published_camt053_001_08() {
    use sha2::{Digest, Sha256};
    let xsd = std::fs::read(camt053_xsd()).expect("schemas/iso20022/camt.053.001.08.xsd");
    assert_eq!(
        hex::encode(Sha256::digest(&xsd)),
        "8542c22f6a615c2ee274235fbe16eed1f53f600208356614e9e56c838b90b76b"
    );
}

#[tokio::test]
async fn the_documented_column_layouts_are_the_ones_written() {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/settlement-files.md"),
    )
    .expect("docs/settlement-files.md");
    let h = Harness::sqlite().await;
    h.ledger
        .apply_batch("g", &[delivery(0, &purchase(1)), delivery(1, &split(2))])
        .await
        .unwrap();
    window::close_window(&h.ledger).await.unwrap();
    let csv = render(&h.ledger, ids::HOSPITAL, 1, ReportFormat::Csv)
        .await
        .unwrap();
    let medical = render(&h.ledger, ids::INSURANCE_FUND, 1, ReportFormat::Medical)
        .await
        .unwrap();
    let headers: Vec<&str> = csv
        .lines()
        .chain(medical.lines())
        .filter(|l| l.starts_with("event_id,") || l.starts_with("section,"))
        .collect();
    assert_eq!(headers.len(), 3, "{csv}\n{medical}");
    for header in headers {
        assert!(
            docs.lines().any(|l| l == header),
            "docs/settlement-files.md does not show the header\n{header}"
        );
        for column in header.split(',') {
            assert!(
                docs.contains(&format!("| `{column}` |")),
                "docs/settlement-files.md does not describe column {column}"
            );
        }
    }
    for line in csv.lines().filter(|l| l.starts_with('#')) {
        let kind = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .split('=')
            .next()
            .unwrap();
        assert!(
            docs.contains(&format!("# {kind}")),
            "header line {line} not documented"
        );
    }
    h.cleanup().await;
}

#[tokio::test]
async fn the_first_window_starts_when_the_ledger_is_created() {
    let before = clearing::db::now_us();
    let h = Harness::sqlite().await;
    let after = clearing::db::now_us();
    let first = window::window_summary(&h.ledger, 1).await.unwrap();
    assert!(
        (before..=after).contains(&first.opened_at_us),
        "{before} <= {} <= {after}",
        first.opened_at_us
    );
    // Connecting again does not move it.
    let again = h.reopen().await;
    assert_eq!(
        window::window_summary(&again, 1)
            .await
            .unwrap()
            .opened_at_us,
        first.opened_at_us
    );
    again.db().close().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_ledger_from_before_starts_its_first_window_at_its_first_posting() {
    let h = Harness::sqlite().await;
    h.ledger
        .apply_batch("g", &[delivery(0, &purchase(1)), delivery(1, &purchase(2))])
        .await
        .unwrap();
    let clearing::db::Db::Sqlite(pool) = h.ledger.db() else {
        unreachable!("a SQLite harness")
    };
    // What every ledger created before the rule holds.
    sqlx::query("UPDATE settlement_window SET opened_at_us = 0 WHERE window_id = 1")
        .execute(pool)
        .await
        .unwrap();
    let first_posting = window::window_postings(&h.ledger, 1, None)
        .await
        .unwrap()
        .iter()
        .map(|p| p.posted_at_us)
        .min()
        .unwrap();
    let reopened = h.reopen().await;
    assert_eq!(
        window::window_summary(&reopened, 1)
            .await
            .unwrap()
            .opened_at_us,
        first_posting
    );
    reopened.db().close().await;
    h.cleanup().await;
}

// ---- the property -------------------------------------------------------------------------

const ACQUIRERS: [&str; 3] = [ids::HOSPITAL, "3100002", "3100003"];
const BANKS: [&str; 2] = [ids::BANK, "01030000"];
/// Everyone who can appear in a window (a statement of someone without postings is empty).
const EVERYONE: [&str; 7] = [
    ids::HOSPITAL,
    "3100002",
    "3100003",
    ids::BANK,
    "01030000",
    ids::INSURANCE_FUND,
    ids::SOCIAL_SECURITY_FUND,
];

/// One step of a random day.
#[derive(Debug, Clone)]
enum Op {
    Purchase {
        acquirer: usize,
        bank: usize,
        fen: i64,
    },
    Split {
        acquirer: usize,
        bank: usize,
        pooled: i64,
        personal: i64,
        own: i64,
    },
    Benefit {
        bank: usize,
        fen: i64,
    },
    /// Pooled fund to personal accounts of the same fund: the fund is on both sides.
    FundTransfer {
        fen: i64,
    },
    Hold {
        acquirer: usize,
        bank: usize,
        fen: i64,
    },
    /// Completes a hold (by index, modulo) with this per mille of its amount.
    Complete {
        which: usize,
        per_mille: i64,
    },
    Release {
        which: usize,
    },
    /// Reverses an earlier event (by index, modulo): a second reversal is a dead letter.
    Reverse {
        which: usize,
    },
    Refund {
        which: usize,
        fen: i64,
    },
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let fen = 1i64..2_000_000;
    prop_oneof![
        4 => (0..3usize, 0..2usize, fen.clone())
            .prop_map(|(acquirer, bank, fen)| Op::Purchase { acquirer, bank, fen }),
        3 => (0..3usize, 0..2usize, fen.clone(), fen.clone(), 0i64..50_000)
            .prop_map(|(acquirer, bank, pooled, personal, own)| Op::Split {
                acquirer, bank, pooled, personal, own
            }),
        1 => (0..2usize, fen.clone()).prop_map(|(bank, fen)| Op::Benefit { bank, fen }),
        1 => fen.clone().prop_map(|fen| Op::FundTransfer { fen }),
        2 => (0..3usize, 0..2usize, fen.clone())
            .prop_map(|(acquirer, bank, fen)| Op::Hold { acquirer, bank, fen }),
        2 => (any::<usize>(), 1i64..=1_000)
            .prop_map(|(which, per_mille)| Op::Complete { which, per_mille }),
        1 => any::<usize>().prop_map(|which| Op::Release { which }),
        2 => any::<usize>().prop_map(|which| Op::Reverse { which }),
        1 => (any::<usize>(), fen).prop_map(|(which, fen)| Op::Refund { which, fen }),
        1 => Just(Op::Close),
    ]
}

fn party(institution: &str, account: LedgerAccount) -> Party {
    Party {
        institution: InstitutionId::parse(institution).expect("institution id"),
        account,
    }
}

fn leg(leg_no: u8, kind: LegKind, debit: Party, credit: Party, fen: i64) -> Leg {
    Leg {
        leg_no,
        kind,
        debit,
        credit,
        amount_fen: AmountFen::new(fen).expect("fen"),
    }
}

/// An event of `event_type` with these legs (zero-amount legs dropped).
fn event(event_type: EventType, acquirer: &str, seq: u32, legs: Vec<Leg>) -> SettlementEvent {
    let mut e = sample::event(event_type, acquirer, seq);
    e.legs = legs
        .into_iter()
        .filter(|l| l.amount_fen.get() > 0)
        .enumerate()
        .map(|(i, mut l)| {
            l.leg_no = u8::try_from(i + 1).expect("few legs");
            l
        })
        .collect();
    e.amount_fen = AmountFen::new(e.legs.iter().map(|l| l.amount_fen.get()).sum()).expect("fen");
    e
}

/// Turns the ops into events (and cut-overs), applying them to `ledger` in order.
async fn run_day(ledger: &Ledger, ops: &[Op]) {
    use LedgerAccount as A;
    let mut history: Vec<SettlementEvent> = Vec::new();
    let mut holds: Vec<SettlementEvent> = Vec::new();
    let mut offset = 0i64;
    for (seq, op) in ops.iter().enumerate() {
        let seq = u32::try_from(seq).expect("few ops");
        let e = match op {
            Op::Close => {
                window::close_window(ledger).await.expect("close window");
                continue;
            }
            Op::Purchase {
                acquirer,
                bank,
                fen,
            } => event(
                EventType::Purchase,
                ACQUIRERS[*acquirer],
                seq,
                vec![leg(
                    1,
                    LegKind::Bank,
                    party(BANKS[*bank], A::BankSettlement),
                    party(ACQUIRERS[*acquirer], A::Merchant),
                    *fen,
                )],
            ),
            Op::Split {
                acquirer,
                bank,
                pooled,
                personal,
                own,
            } => {
                let merchant = party(ACQUIRERS[*acquirer], A::Merchant);
                event(
                    EventType::MedicalBillSplit,
                    ACQUIRERS[*acquirer],
                    seq,
                    vec![
                        leg(
                            1,
                            LegKind::PooledFund,
                            party(ids::INSURANCE_FUND, A::PooledFund),
                            merchant.clone(),
                            *pooled,
                        ),
                        leg(
                            2,
                            LegKind::PersonalAccount,
                            party(ids::INSURANCE_FUND, A::PersonalAccounts),
                            merchant.clone(),
                            *personal,
                        ),
                        leg(
                            3,
                            LegKind::Bank,
                            party(BANKS[*bank], A::BankSettlement),
                            merchant,
                            *own,
                        ),
                    ],
                )
            }
            Op::Benefit { bank, fen } => event(
                EventType::BenefitCredit,
                ids::HOSPITAL,
                seq,
                vec![leg(
                    1,
                    LegKind::SocialSecurityFund,
                    party(ids::SOCIAL_SECURITY_FUND, A::SocialSecurityFund),
                    party(BANKS[*bank], A::BankSettlement),
                    *fen,
                )],
            ),
            Op::FundTransfer { fen } => event(
                EventType::Purchase,
                ids::INSURANCE_FUND,
                seq,
                vec![leg(
                    1,
                    LegKind::Fee,
                    party(ids::INSURANCE_FUND, A::PooledFund),
                    party(ids::INSURANCE_FUND, A::PersonalAccounts),
                    *fen,
                )],
            ),
            Op::Hold {
                acquirer,
                bank,
                fen,
            } => {
                let h = event(
                    EventType::AuthorizationHold,
                    ACQUIRERS[*acquirer],
                    seq,
                    vec![leg(
                        1,
                        LegKind::Bank,
                        party(BANKS[*bank], A::BankSettlement),
                        party(ACQUIRERS[*acquirer], A::Merchant),
                        *fen,
                    )],
                );
                holds.push(h.clone());
                h
            }
            Op::Complete { which, per_mille } => {
                let Some(h) = pick(&holds, *which) else {
                    continue;
                };
                let held = h.legs[0].amount_fen.get();
                let fen = (held * per_mille / 1_000).max(1);
                completion(h, fen, seq)
            }
            Op::Release { which } => {
                let Some(h) = pick(&holds, *which) else {
                    continue;
                };
                release(h, seq)
            }
            Op::Reverse { which } => {
                let Some(original) = pick(&history, *which) else {
                    continue;
                };
                reversal(original, seq)
            }
            Op::Refund { which, fen } => {
                let Some(original) = pick(&history, *which) else {
                    continue;
                };
                let mut r = event(
                    EventType::Refund,
                    original.institutions.acquirer.as_str(),
                    seq,
                    vec![leg(
                        1,
                        LegKind::Bank,
                        party(original.institutions.acquirer.as_str(), A::Merchant),
                        party(BANKS[0], A::BankSettlement),
                        *fen,
                    )],
                );
                r.references.original_event_id = Some(original.event_id);
                r
            }
        };
        // Events that break a ledger rule (a second reversal, completing a released hold)
        // are dead-lettered: they must leave the reports and positions alone.
        ledger
            .apply_batch("g", &[delivery(offset, &e)])
            .await
            .expect("apply");
        offset += 1;
        history.push(e);
    }
    window::close_window(ledger)
        .await
        .expect("close the last window");
}

fn pick(events: &[SettlementEvent], which: usize) -> Option<&SettlementEvent> {
    (!events.is_empty()).then(|| &events[which % events.len()])
}

/// Renders every institution's statements of every closed window and checks them against the
/// window's settlement; returns each institution's sum over windows and the camt.053 files.
async fn statements(ledger: &Ledger) -> (BTreeMap<String, i64>, Vec<String>) {
    let open = window::current_window(ledger).await.unwrap();
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    let mut documents = Vec::new();
    for w in 1..open {
        let summary = window::window_summary(ledger, w).await.unwrap();
        let window_net: i64 = summary.net_positions.iter().map(|n| n.net_fen).sum();
        assert_eq!(window_net, 0, "window {w}");
        for inst in EVERYONE {
            let csv = render(ledger, inst, w, ReportFormat::Csv).await.unwrap();
            let xml = render(ledger, inst, w, ReportFormat::Camt053)
                .await
                .unwrap();
            let statement = read_statement_csv(&csv);
            let camt = read_camt053(&xml);
            let settled = summary
                .net_positions
                .iter()
                .find(|n| n.institution_id == inst)
                .map_or(0, |n| n.net_fen);
            let net = statement.totals("net_fen");
            assert_eq!(net, settled, "{inst} window {w}:\n{csv}");
            assert_eq!(statement.column_sum("net_effect_fen"), net);
            assert_eq!(camt.balance("OPBD"), 0);
            assert_eq!(camt.balance("CLBD"), net, "{xml}");
            assert_eq!(camt.net_fen, net);
            assert_eq!(camt.entries.iter().map(|e| e.1).sum::<i64>(), net);
            assert_eq!(camt.entry_count, camt.entries.len() as i64);
            let (digest, claimed) = clearing::report::verify_statement_csv(&csv).unwrap();
            assert_eq!(hex::encode(digest), claimed);
            *sums.entry(inst.to_owned()).or_default() += net;
            documents.push(xml);
        }
    }
    (sums, documents)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_institutions_statements_sum_to_its_position_and_positions_to_zero(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let h = Harness::sqlite().await;
            run_day(&h.ledger, &ops).await;
            let (sums, documents) = statements(&h.ledger).await;
            // The stream is well formed: only ledger rules (a second reversal, completing a
            // released hold) dead-letter an event, and a purchase always posts.
            for d in h.ledger.dead_letters(1_000).await.unwrap() {
                assert!(
                    !["malformed", "unsupported_version", "invalid"].contains(&d.reason_code.as_str()),
                    "{d:?}"
                );
            }
            if ops.iter().any(|o| matches!(o, Op::Purchase { .. })) {
                assert!(h.ledger.counts().await.unwrap().postings > 0);
            }
            let positions = h.ledger.positions().await.unwrap();
            assert_eq!(positions.sum_fen(), 0);
            for inst in EVERYONE {
                assert_eq!(sums[inst], positions.net_fen(inst), "{inst}");
            }
            for p in &positions.institutions {
                assert!(EVERYONE.contains(&p.institution_id.as_str()), "{p:?}");
            }
            let refs: Vec<&str> = documents.iter().map(String::as_str).collect();
            assert_valid_camt053(&refs);
            h.cleanup().await;
        });
    }
}
