//! The operator API's store, on every backend: lockouts that survive a restart, four-eyes role
//! changes, sessions and keys kept as hashes, idempotent answers, and audit entries keyed with
//! a MAC that a writer without the key cannot forge.

use super::{commit_one, seeded, Harness};
use std::sync::Arc;
use switch::operator::keys::{audit_key_for_tests, SecretKey};
use switch::sim::operator_kit::{self, SWITCH};
use switch::sim::testkit::{self, inst};
use switch::store::operator::{
    IdempotentAnswer, OperatorSession, OutboxLag, RoleChange, TransactionSearch,
};
use switch::store::*;
use uuid::Uuid;

pub async fn a_login_lockout_is_counted_in_the_store_and_survives_a_restart<H: Harness>() {
    let (mut h, _fx) = seeded::<H>(100).await;
    let s = h.store();
    operator_kit::seed_tenants(&*s).await.unwrap();
    let secrets = SecretKey::for_tests();
    let (user, _) = operator_kit::user(&*s, &secrets, "clerk", SWITCH, &[], "a long password")
        .await
        .unwrap();
    let until = now_us() + 900_000_000;
    for n in 1..=4 {
        assert_eq!(
            s.record_login_failure(user.user_id, 5, until)
                .await
                .unwrap(),
            n
        );
    }
    let u = s.user(user.user_id).await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until_us), (4, None), "not yet");
    assert_eq!(
        s.record_login_failure(user.user_id, 5, until)
            .await
            .unwrap(),
        5
    );
    h.reopen().await;
    let s = h.store();
    let u = s.user_by_username("clerk").await.unwrap().unwrap();
    assert_eq!(
        (u.failed_logins, u.locked_until_us),
        (5, Some(until)),
        "locked after a restart"
    );
    s.record_login_success(user.user_id).await.unwrap();
    let u = s.user(user.user_id).await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until_us), (0, None));
    h.cleanup().await;
}

/// RFC 6238 §5.2: the last accepted time step per user, in the store: a step is accepted once,
/// an earlier one never, another user's steps are its own, and a restart forgets nothing.
pub async fn a_totp_step_is_accepted_once_per_user_and_survives_a_restart<H: Harness>() {
    let (mut h, _fx) = seeded::<H>(100).await;
    let s = h.store();
    operator_kit::seed_tenants(&*s).await.unwrap();
    let secrets = SecretKey::for_tests();
    let (a, _) = operator_kit::user(&*s, &secrets, "a", SWITCH, &[], "a long password")
        .await
        .unwrap();
    let (b, _) = operator_kit::user(&*s, &secrets, "b", SWITCH, &[], "a long password")
        .await
        .unwrap();
    let step = 59_000_000;
    assert!(s.accept_totp_step(a.user_id, step).await.unwrap());
    assert!(!s.accept_totp_step(a.user_id, step).await.unwrap(), "once");
    assert!(
        !s.accept_totp_step(a.user_id, step - 1).await.unwrap(),
        "never earlier"
    );
    assert!(
        s.accept_totp_step(b.user_id, step).await.unwrap(),
        "per user"
    );
    h.reopen().await;
    let s = h.store();
    assert!(
        !s.accept_totp_step(a.user_id, step).await.unwrap(),
        "after a restart"
    );
    assert!(s.accept_totp_step(a.user_id, step + 1).await.unwrap());
    h.cleanup().await;
}

pub async fn a_role_change_is_applied_only_when_another_administrator_approves_it<H: Harness>() {
    let (h, _fx) = seeded::<H>(100).await;
    let s = h.store();
    operator_kit::seed_tenants(&*s).await.unwrap();
    let secrets = SecretKey::for_tests();
    let mk = |name: &'static str| {
        let s = Arc::clone(&s);
        let secrets = &secrets;
        async move {
            operator_kit::user(
                &*s,
                secrets,
                name,
                SWITCH,
                &["administrator"],
                "a long password",
            )
            .await
            .unwrap()
            .0
        }
    };
    let (alice, bob, carol) = (mk("alice").await, mk("bob").await, mk("carol").await);
    let change = RoleChange {
        change_id: Uuid::now_v7(),
        user_id: carol.user_id,
        role_ids: vec!["auditor".into(), "bank_operator".into()],
        reason: "moves to the audit team".into(),
        proposed_by: alice.user_id,
        proposed_at_us: now_us(),
        approved_by: None,
        approved_at_us: None,
    };
    s.propose_role_change(&change, None).await.unwrap();
    assert_eq!(
        s.role_change(change.change_id).await.unwrap(),
        Some(change.clone())
    );
    for refused in [alice.user_id, carol.user_id] {
        assert!(matches!(
            s.approve_role_change(change.change_id, refused, now_us(), None)
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
    let roles = |id| {
        let s = Arc::clone(&s);
        async move {
            s.user_roles(id)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.role_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(roles(carol.user_id).await, ["administrator"], "unchanged");
    let approved = s
        .approve_role_change(change.change_id, bob.user_id, now_us(), None)
        .await
        .unwrap();
    assert_eq!(approved.approved_by, Some(bob.user_id));
    assert_eq!(roles(carol.user_id).await, ["auditor", "bank_operator"]);
    assert!(matches!(
        s.approve_role_change(change.change_id, bob.user_id, now_us(), None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.approve_role_change(Uuid::now_v7(), bob.user_id, now_us(), None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    h.cleanup().await;
}

pub async fn sessions_keys_and_idempotent_answers_are_kept_by_hash<H: Harness>() {
    let (h, _fx) = seeded::<H>(100).await;
    let s = h.store();
    operator_kit::seed_tenants(&*s).await.unwrap();
    let (user, _) = operator_kit::user(
        &*s,
        &SecretKey::for_tests(),
        "dora",
        SWITCH,
        &[],
        "a long password",
    )
    .await
    .unwrap();
    let session = OperatorSession {
        token_hash: [7; 32],
        user_id: user.user_id,
        csrf_hash: [8; 32],
        created_at_us: 10,
        last_seen_at_us: 10,
        ended_at_us: None,
    };
    s.create_session(&session).await.unwrap();
    s.touch_session(&[7; 32], 20).await.unwrap();
    assert_eq!(
        s.session(&[7; 32]).await.unwrap().unwrap().last_seen_at_us,
        20
    );
    assert_eq!(s.end_sessions_of(user.user_id, 30).await.unwrap(), 1);
    assert_eq!(
        s.session(&[7; 32]).await.unwrap().unwrap().ended_at_us,
        Some(30)
    );
    assert!(s.session(&[9; 32]).await.unwrap().is_none());

    let key = operator_kit::api_key(&*s, ids_bank(), "bank_operator")
        .await
        .unwrap();
    let found = s
        .api_key(&switch::operator::token::hash_presented(&key))
        .await
        .unwrap()
        .expect("found by the key's hash");
    assert_eq!(
        (found.institution, found.role_id.as_str()),
        (inst(ids_bank()), "bank_operator")
    );

    let first = IdempotentAnswer {
        request_hash: [1; 32],
        status: 201,
        body: "{}".into(),
    };
    assert!(s
        .put_idempotent_answer("user:x", "k1", &first, 1)
        .await
        .unwrap());
    let second = IdempotentAnswer {
        status: 200,
        ..first.clone()
    };
    assert!(!s
        .put_idempotent_answer("user:x", "k1", &second, 2)
        .await
        .unwrap());
    assert_eq!(
        s.idempotent_answer("user:x", "k1").await.unwrap(),
        Some(first)
    );
    assert_eq!(
        s.idempotent_answer("user:y", "k1").await.unwrap(),
        None,
        "per caller"
    );
    h.cleanup().await;
}

fn ids_bank() -> &'static str {
    schemas::events::sample::ids::BANK
}

fn entry(i: i64) -> AuditEntry {
    AuditEntry {
        actor: "user:alice".into(),
        action: "role_change.approve".into(),
        subject: format!("user:{i}"),
        detail: r#"{"source":"10.0.0.1","reason":"audit team"}"#.into(),
        at_us: now_us(),
    }
}

pub async fn audit_entries_carry_a_mac_that_a_writer_without_the_key_cannot_forge<H: Harness>() {
    let mut h = H::new().await;
    let s = h.store();
    // Entries from before a key was configured carry none and still verify.
    s.append_audit(&entry(0)).await.unwrap();
    assert!(s.install_audit_mac_key(Arc::new(audit_key_for_tests())));
    assert!(
        !s.install_audit_mac_key(Arc::new(audit_key_for_tests())),
        "the key is never replaced"
    );
    for i in 1..=3 {
        s.append_audit(&entry(i)).await.unwrap();
    }
    assert_eq!(s.verify_audit_chain().await.unwrap(), 4);
    let page = s.audit_page(0, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.keyed).collect::<Vec<_>>(),
        [false, true, true, true]
    );

    // A wrong MAC on one row.
    h.raw_execute(H::DISABLE_AUDIT_TRIGGERS).await.unwrap();
    h.raw_execute(H::DISABLE_AUDIT_DELETE_TRIGGER)
        .await
        .unwrap();
    h.raw_execute("UPDATE audit_log SET mac = entry_hash WHERE audit_seq = 3")
        .await
        .unwrap();
    assert!(matches!(
        s.verify_audit_chain().await,
        Err(StoreError::AuditMacMismatch { audit_seq: 3 })
    ));
    // A MAC removed after keyed entries.
    h.raw_execute("UPDATE audit_log SET mac = NULL WHERE audit_seq = 3")
        .await
        .unwrap();
    assert!(matches!(
        s.verify_audit_chain().await,
        Err(StoreError::AuditMacMismatch { audit_seq: 3 })
    ));
    // An entry's field changed: the chain breaks first.
    h.raw_execute("UPDATE audit_log SET actor = 'user:mallory' WHERE audit_seq = 2")
        .await
        .unwrap();
    assert!(matches!(
        s.verify_audit_chain().await,
        Err(StoreError::AuditChainBroken { audit_seq: 2 })
    ));
    h.raw_execute("DELETE FROM audit_log WHERE audit_seq >= 2")
        .await
        .unwrap();
    h.raw_execute("UPDATE audit_head SET last_seq = 1, last_hash = (SELECT entry_hash FROM audit_log WHERE audit_seq = 1)")
        .await
        .unwrap();

    // Whoever appends through a store without the key (a consistent chain, no MAC) is caught
    // once the key's holder verifies.
    s.append_audit(&entry(4)).await.unwrap();
    h.reopen().await;
    let unkeyed = h.store();
    unkeyed.append_audit(&entry(5)).await.unwrap();
    assert_eq!(
        unkeyed.verify_audit_chain().await.unwrap(),
        3,
        "the chain holds"
    );
    assert!(unkeyed.install_audit_mac_key(Arc::new(audit_key_for_tests())));
    assert!(matches!(
        unkeyed.verify_audit_chain().await,
        Err(StoreError::AuditMacMismatch { audit_seq: 3 })
    ));
    h.cleanup().await;
}

/// The console's reads and writes (migration 0016): open proposals and their rejection (four
/// eyes), a card's history by subject and by card, institution names in Chinese, and the
/// settlement events still waiting for the relay.
pub async fn the_consoles_proposals_history_names_and_lag_are_read_by_key<H: Harness>() {
    let (h, fx) = seeded::<H>(100_000).await;
    let s = h.store();
    operator_kit::seed_tenants(&*s).await.unwrap();
    let secrets = SecretKey::for_tests();
    let mut admins = Vec::new();
    for name in ["erin", "frank", "gina"] {
        let (u, _) = operator_kit::user(
            &*s,
            &secrets,
            name,
            SWITCH,
            &["administrator"],
            "a long password",
        )
        .await
        .unwrap();
        admins.push(u.user_id);
    }
    let (erin, frank, gina) = (admins[0], admins[1], admins[2]);
    let propose = |user_id, reason: &str, at| RoleChange {
        change_id: Uuid::now_v7(),
        user_id,
        role_ids: vec!["auditor".into()],
        reason: reason.into(),
        proposed_by: erin,
        proposed_at_us: at,
        approved_by: None,
        approved_at_us: None,
    };
    let (first, second) = (propose(gina, "first", 1), propose(frank, "second", 2));
    s.propose_role_change(&first, None).await.unwrap();
    s.propose_role_change(&second, None).await.unwrap();
    let open = s.open_role_changes(50).await.unwrap();
    assert_eq!(open, [first.clone(), second.clone()], "oldest first");
    // Neither the proposer nor the user changed rejects it.
    for refused in [erin, gina] {
        assert!(matches!(
            s.reject_role_change(first.change_id, refused, "no", now_us(), None)
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
    s.reject_role_change(first.change_id, frank, "not needed", now_us(), None)
        .await
        .unwrap();
    assert_eq!(
        s.open_role_changes(50).await.unwrap(),
        std::slice::from_ref(&second)
    );
    assert!(
        matches!(
            s.approve_role_change(first.change_id, frank, now_us(), None)
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a rejected change is not approved later"
    );
    assert!(matches!(
        s.reject_role_change(Uuid::now_v7(), frank, "no", now_us(), None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    s.approve_role_change(second.change_id, gina, now_us(), None)
        .await
        .unwrap();
    assert!(s.open_role_changes(50).await.unwrap().is_empty());

    // A card's life-cycle events by subject, newest first, no other subject's.
    for (n, subject) in [(1, "card:7"), (2, "card:70"), (3, "card:7")] {
        s.append_audit(&AuditEntry {
            actor: "switch".into(),
            action: format!("card.step{n}"),
            subject: subject.into(),
            detail: "{}".into(),
            at_us: now_us(),
        })
        .await
        .unwrap();
    }
    let history = s.audit_of_subject("card:7", 10).await.unwrap();
    let actions: Vec<_> = history.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["card.step3", "card.step1"]);
    assert_eq!(s.audit_of_subject("card:7", 1).await.unwrap().len(), 1);

    // A card's transactions by card.
    commit_one(&*s, testkit::debit(&fx, fx.personal, 1, 100))
        .await
        .unwrap();
    let by_card = |card_id| TransactionSearch {
        card_id: Some(card_id),
        limit: 10,
        ..TransactionSearch::default()
    };
    let found = s.search_transactions(&by_card(fx.card_id.0)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(s
        .search_transactions(&by_card(fx.card_id.0 + 1000))
        .await
        .unwrap()
        .is_empty());

    // The debit's settlement event waits until it is marked relayed, or until clearing has
    // applied its sequence.
    let waiting = s.unrelayed_outbox(1_000).await.unwrap();
    let lag = s.outbox_lag(None).await.unwrap();
    assert_eq!(lag.waiting, waiting.len() as u64);
    assert!(lag.waiting >= 1);
    let oldest = waiting.iter().map(|r| r.created_at_us).min();
    assert_eq!(lag.oldest_created_at_us, oldest);
    let seqs: Vec<i64> = waiting.iter().map(|r| r.outbox_seq).collect();
    let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
    assert_eq!(s.outbox_lag(Some(first - 1)).await.unwrap(), lag);
    assert_eq!(
        s.outbox_lag(Some(last)).await.unwrap(),
        OutboxLag::default()
    );
    s.mark_outbox_relayed(&seqs, now_us()).await.unwrap();
    assert_eq!(s.outbox_lag(None).await.unwrap(), OutboxLag::default());

    // Names: the Chinese one beside the name, kept when the institution is renamed.
    assert!(s
        .set_institution_name_zh(&fx.hospital, Some("第一医院"))
        .await
        .unwrap());
    assert!(!s
        .set_institution_name_zh(&inst("9999999"), Some("无"))
        .await
        .unwrap());
    s.upsert_institution(&Institution {
        institution_id: fx.hospital.clone(),
        name: "First Hospital (renamed)".into(),
        kind: InstitutionKind::Hospital,
    })
    .await
    .unwrap();
    let names = s.institution_names().await.unwrap();
    let hospital = names
        .iter()
        .find(|n| n.institution_id == fx.hospital)
        .expect("the hospital");
    assert_eq!(hospital.name, "First Hospital (renamed)");
    assert_eq!(hospital.name_zh.as_deref(), Some("第一医院"));
    h.cleanup().await;
}
