//! A card's transactions are chained (migration 0024): the card row holds its newest
//! transaction, each transaction the card's previous one, kept by the group commit whatever the
//! decision (approved or declined) and however many commits run at once; the card's history is
//! read along the chain, with the search's filters, order and paging; and `switch verify`
//! reports a chain that is not whole.

use super::*;
use switch::store::operator::{TransactionSearch, OPERATOR_PAGE_MAX};

/// A second card of the fixture's bank, with no accounts.
async fn another_card<S: Store>(s: &S) -> CardId {
    s.issue_card(&NewCard {
        pan: Pan::parse("6228480098765432").unwrap(),
        card_identification_code: None,
        issuer: inst(ids::BANK),
        expiry_yymm: "3012".into(),
        status: CardStatus::Active,
        issuance: CardIssuance {
            pan_sequence_number: "01".into(),
            icc_algorithm: None,
            pin_offset: None,
            insurance_category: None,
        },
    })
    .await
    .unwrap()
}

/// Every transaction of `card` matching `search`, page by page (`limit` each) along the
/// keyset cursor, as the API's clients read it.
async fn history<S: Store>(s: &S, card: CardId, search: TransactionSearch) -> Vec<TransactionId> {
    let mut q = TransactionSearch {
        card_id: Some(card.0),
        ..search
    };
    let mut ids = Vec::new();
    loop {
        let page = s.search_transactions(&q).await.unwrap();
        assert!(page.len() <= q.limit as usize);
        let Some(last) = page.last() else {
            return ids;
        };
        q.before = Some((last.record.decided_at_us, last.record.transaction_id.0));
        ids.extend(page.iter().map(|t| t.record.transaction_id));
    }
}

/// Newest first: by decision time, then id (the search's order).
fn newest_first(decisions: &[&Decision]) -> Vec<TransactionId> {
    let mut keys: Vec<(i64, TransactionId)> = decisions
        .iter()
        .map(|d| (d.transaction.decided_at_us, d.transaction.transaction_id))
        .collect();
    keys.sort();
    keys.reverse();
    keys.into_iter().map(|(_, id)| id).collect()
}

pub async fn a_cards_history_walks_its_chain_newest_first_page_by_page<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000_000).await;
    let s = h.store();
    let other = another_card(&*s).await;
    let base = now_us();
    let mut mine = Vec::new();
    // Approvals and declines of the card, with another card's and card-less decisions between
    // them; one batch commits decisions decided in reverse order, and a later batch one decided
    // before all of them (a decision replayed from the spool): commit order is not decision
    // order, and the history follows decision order.
    let mut seq = 0u32;
    let mut next = |decided_at_us: i64, approved: bool| {
        seq += 1;
        let mut d = if approved {
            testkit::debit(&fx, fx.personal, seq, 10)
        } else {
            testkit::decline(&fx, seq, 10, ResponseCode::InsufficientFunds)
        };
        d.transaction.decided_at_us = decided_at_us;
        d
    };
    for round in 0..4i64 {
        let a = next(base + 100 * round + 2, true);
        let b = next(base + 100 * round + 1, false);
        let mut noise = next(base + 100 * round, false);
        noise.transaction.card_id = Some(other);
        let mut cardless = next(base + 100 * round, false);
        cardless.transaction.card_id = None;
        let out = s
            .commit_decisions(vec![a.clone(), noise, b.clone(), cardless], now_us())
            .await;
        assert!(out.results.iter().all(|r| r.is_ok()), "{:?}", out.results);
        mine.extend([a, b]);
    }
    let replayed = next(base - 1_000, true);
    commit_one(&*s, replayed.clone()).await.unwrap();
    mine.push(replayed.clone());
    // Two decided in the same microsecond: the id breaks the tie, as the search orders.
    let (t1, t2) = (next(base + 10_000, false), next(base + 10_000, true));
    let out = s
        .commit_decisions(vec![t1.clone(), t2.clone()], now_us())
        .await;
    assert!(out.results.iter().all(|r| r.is_ok()), "{:?}", out.results);
    mine.extend([t1, t2]);

    let all: Vec<&Decision> = mine.iter().collect();
    let page = |limit| TransactionSearch {
        limit,
        ..TransactionSearch::default()
    };
    for limit in [1, 2, 3, 50] {
        assert_eq!(
            history(&*s, fx.card_id, page(limit)).await,
            newest_first(&all),
            "pages of {limit}"
        );
    }
    assert_eq!(history(&*s, other, page(3)).await.len(), 4);

    // The search's filters apply to the walk: approvals only, a window, a terminal.
    let approvals: Vec<&Decision> = mine
        .iter()
        .filter(|d| d.transaction.is_approved())
        .collect();
    let approved = TransactionSearch {
        response_code: Some("00".into()),
        ..page(2)
    };
    assert_eq!(
        history(&*s, fx.card_id, approved).await,
        newest_first(&approvals)
    );
    let window: Vec<&Decision> = mine
        .iter()
        .filter(|d| (base + 100..base + 300).contains(&d.transaction.decided_at_us))
        .collect();
    let windowed = TransactionSearch {
        from_us: Some(base + 100),
        to_us: Some(base + 300),
        ..page(3)
    };
    assert_eq!(window.len(), 4);
    assert_eq!(
        history(&*s, fx.card_id, windowed).await,
        newest_first(&window)
    );
    let elsewhere = TransactionSearch {
        terminal_id: Some("KIOSK999".into()),
        ..page(3)
    };
    assert!(history(&*s, fx.card_id, elsewhere).await.is_empty());
    finish(h).await;
}

pub async fn two_group_commits_in_flight_on_one_card_keep_one_chain<H: Harness>() {
    let (h, fx) = seeded::<H>(10_000_000).await;
    let s = h.store();
    let mut committed = 0usize;
    for round in 0..20u32 {
        // Two commits at once (PostgreSQL runs two; two nodes share one database), each
        // extending the same card's chain. Declines (every third round approvals too): a
        // decline moves no money, so no account lock orders the two commits, only the card's.
        let batch = |base: u32| -> Vec<Decision> {
            (0..4)
                .map(|i| match (round % 3, i) {
                    (0, 0) => testkit::debit(&fx, fx.personal, base + i, 1),
                    _ => testkit::decline(&fx, base + i, 1, ResponseCode::InsufficientFunds),
                })
                .collect()
        };
        let (a, b) = tokio::join!(
            s.commit_decisions(batch(round * 100), now_us()),
            s.commit_decisions(batch(round * 100 + 50), now_us()),
        );
        for r in a.results.iter().chain(&b.results) {
            assert!(r.is_ok(), "{r:?}");
            committed += 1;
        }
    }
    let all = TransactionSearch {
        card_id: Some(fx.card_id.0),
        limit: OPERATOR_PAGE_MAX,
        ..TransactionSearch::default()
    };
    assert!(committed <= OPERATOR_PAGE_MAX as usize);
    assert_eq!(s.search_transactions(&all).await.unwrap().len(), committed);
    let report = s.verify_integrity().await.unwrap();
    assert!(!report.breaks(Invariant::CardChainWhole), "{report}");
    finish(h).await;
}

/// What a row of `txn` is called in the corruptions below: by its STAN.
fn by_stan(stan: u32) -> String {
    format!("(SELECT transaction_id FROM txn WHERE stan = '{stan:06}')")
}

pub async fn the_integrity_check_reports_a_card_chain_that_is_not_whole<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    for seq in 1..=3 {
        commit_one(&*s, testkit::debit(&fx, fx.personal, seq, 10))
            .await
            .unwrap();
    }
    assert!(s.verify_integrity().await.unwrap().is_consistent());
    let card = fx.card_id.0;
    let chain_broken = |r: &IntegrityReport| {
        r.violations
            .iter()
            .find(|v| v.invariant == Invariant::CardChainWhole)
            .map(|v| (v.rows, v.first.clone()))
    };

    // A fork: 3 links to 1 as 2 does, and 2 falls off the chain.
    let link = |from: u32, to: &str| {
        format!("UPDATE txn SET prev_card_txn_id = {to} WHERE stan = '{from:06}'",)
    };
    h.raw_execute(&link(3, &by_stan(1))).await.unwrap();
    let r = s.verify_integrity().await.unwrap();
    let (rows, first) = chain_broken(&r).expect("a fork is reported");
    assert_eq!(rows, 2, "the fork and the transaction it lost: {r}");
    assert!(first.starts_with(&format!("card {card}: ")), "{first}");
    h.raw_execute(&link(3, &by_stan(2))).await.unwrap();
    assert!(s.verify_integrity().await.unwrap().is_consistent());

    // A head that is not the newest.
    h.raw_execute(&format!(
        "UPDATE card SET last_txn_id = {} WHERE card_id = {card}",
        by_stan(2)
    ))
    .await
    .unwrap();
    let r = s.verify_integrity().await.unwrap();
    assert_eq!(
        chain_broken(&r),
        Some((2, format!("card {card}: a wrong head"))),
        "the head and the transaction above it: {r}"
    );
    h.raw_execute(&format!(
        "UPDATE card SET last_txn_id = {} WHERE card_id = {card}",
        by_stan(3)
    ))
    .await
    .unwrap();
    assert!(s.verify_integrity().await.unwrap().is_consistent());

    // A lost link: the oldest is no longer reached.
    h.raw_execute(&link(2, "NULL")).await.unwrap();
    let r = s.verify_integrity().await.unwrap();
    assert_eq!(
        chain_broken(&r),
        Some((1, format!("card {card}: rrn {:012} not on the chain", 1))),
        "{r}"
    );
    assert!(r.to_string().contains("BROKEN card-chain-whole"), "{r}");

    // A link to another card's transaction.
    let mut elsewhere = testkit::decline(&fx, 4, 10, ResponseCode::InsufficientFunds);
    elsewhere.transaction.card_id = Some(another_card(&*s).await);
    commit_one(&*s, elsewhere).await.unwrap();
    h.raw_execute(&link(2, &by_stan(4))).await.unwrap();
    let r = s.verify_integrity().await.unwrap();
    let (_, first) = chain_broken(&r).expect("a link out of the card is reported");
    assert_eq!(first, format!("card {card}: a link leaves the card"), "{r}");
    h.raw_execute(&link(2, &by_stan(1))).await.unwrap();
    assert!(s.verify_integrity().await.unwrap().is_consistent());
    finish(h).await;
}

/// Migration 0024's backfill (the same statements on both backends) chains the transactions
/// a store held before it: each card's in decision order, the card's head its newest.
pub async fn the_migration_chains_the_transactions_stored_before_it<H: Harness>() {
    let (h, fx) = seeded::<H>(1_000).await;
    let s = h.store();
    let other = another_card(&*s).await;
    let mut decisions = Vec::new();
    for seq in 1..=6u32 {
        let mut d = testkit::decline(&fx, seq, 10, ResponseCode::InsufficientFunds);
        // Decided out of their commit order, two in the same microsecond.
        d.transaction.decided_at_us = 1_000 + i64::from((seq * 7) % 4);
        if seq % 3 == 0 {
            d.transaction.card_id = Some(other);
        }
        commit_one(&*s, d.clone()).await.unwrap();
        decisions.push(d);
    }
    h.raw_execute("UPDATE txn SET prev_card_txn_id = NULL")
        .await
        .unwrap();
    h.raw_execute("UPDATE card SET last_txn_id = NULL")
        .await
        .unwrap();
    assert!(s
        .verify_integrity()
        .await
        .unwrap()
        .breaks(Invariant::CardChainWhole));

    let migration = schemas::migrations::SQLITE
        .iter()
        .find(|m| m.version == 24)
        .expect("migration 0024");
    let code: String = migration
        .sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let backfill: Vec<&str> = code
        .split(';')
        .map(str::trim)
        .filter(|st| st.starts_with("UPDATE"))
        .collect();
    assert_eq!(backfill.len(), 2, "{code}");
    for statement in backfill {
        h.raw_execute(statement).await.unwrap();
    }
    assert!(s.verify_integrity().await.unwrap().is_consistent());
    let everything = TransactionSearch {
        limit: 50,
        ..TransactionSearch::default()
    };
    let of = |card: CardId| -> Vec<&Decision> {
        decisions
            .iter()
            .filter(|d| d.transaction.card_id == Some(card))
            .collect()
    };
    assert_eq!(
        history(&*s, fx.card_id, everything.clone()).await,
        newest_first(&of(fx.card_id))
    );
    assert_eq!(
        history(&*s, other, everything).await,
        newest_first(&of(other))
    );
    finish(h).await;
}
