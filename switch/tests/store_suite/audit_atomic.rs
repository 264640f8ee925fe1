//! An operator action and its audit entry commit together or not at all (issue 25; GB/T
//! 22239-2019 level 3, 8.1.4.3 security audit: an action done without its record is a finding).
//! The audit log is made to refuse appends (a trigger, as a full disk or a broken chain head
//! would); every card operation then fails and changes nothing, and once the log takes appends
//! again the chain verifies with no gap.

use super::cms::{actor, apply, cms, drive, personalised};
use super::Harness;
use hsm_sim::pin::PinBlockFormat;
use switch::cms::model::ApplicationStatus;
use switch::cms::{CardOperation, CmsStore, Lifecycle};
use switch::sim::bureau;
use switch::sim::world::DEMO_PIN;
use switch::store::Store;

/// Makes every audit append fail until [`heal`].
pub async fn break_audit_log<H: Harness>(h: &H) {
    for sql in H::FAIL_AUDIT_APPENDS {
        h.raw_execute(sql).await.expect("audit failure installed");
    }
}

/// Lets the audit log take appends again.
pub async fn heal<H: Harness>(h: &H) {
    for sql in H::HEAL_AUDIT_APPENDS {
        h.raw_execute(sql).await.expect("audit failure removed");
    }
}

pub async fn a_card_operation_whose_audit_entry_cannot_be_appended_is_not_done<H: Harness>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let s = c.h.store();
    let mut batch = c.cms.open_perso_batch().await.unwrap();
    let card = personalised(&c, &mut batch, 41).await;
    drive(&c, card.card_id, Lifecycle::Active).await;
    let waiting = apply(&c, 42).await;
    let before = c.cms.card(card.card_id).await.unwrap();
    let audited = s.verify_audit_chain().await.unwrap();
    let pin = bureau::counter_pin(&c.world, DEMO_PIN, PinBlockFormat::Iso1, "").unwrap();

    break_audit_log(&c.h).await;
    let lost = c
        .cms
        .apply(&actor(), card.card_id, CardOperation::ReportLost, None)
        .await;
    assert!(
        lost.is_err(),
        "a loss report without its audit entry: {lost:?}"
    );
    let now = c.cms.card(card.card_id).await.unwrap();
    assert_eq!(
        (now.lifecycle, now.version),
        (before.lifecycle, before.version)
    );
    assert!(!s
        .hot_list()
        .await
        .unwrap()
        .iter()
        .any(|x| x.card_id == card.card_id));
    let reset = c.cms.reset_pin(&actor(), card.card_id, None, &pin).await;
    assert!(reset.is_err(), "{reset:?}");
    assert_eq!(
        c.cms.card(card.card_id).await.unwrap().version,
        before.version
    );
    let replaced = c
        .cms
        .replace(&actor(), &mut batch, card.card_id, None, &pin)
        .await;
    assert!(replaced.is_err(), "{replaced:?}");
    let holder = before.cardholder_id.expect("a cardholder");
    assert_eq!(s.cards_of_cardholder(holder).await.unwrap().len(), 1);
    let records = batch.content().records.len();
    let issued = c.cms.personalise(&actor(), &mut batch, waiting, &pin).await;
    assert!(issued.is_err(), "{issued:?}");
    let app = c.cms.application(waiting).await.unwrap();
    assert_eq!(
        (app.status, app.card_id),
        (ApplicationStatus::Applied, None)
    );
    assert_eq!(
        batch.content().records.len(),
        records,
        "no record of a card not issued"
    );

    heal(&c.h).await;
    assert_eq!(
        s.verify_audit_chain().await.unwrap(),
        audited,
        "nothing half-written"
    );
    c.cms
        .apply(&actor(), card.card_id, CardOperation::ReportLost, None)
        .await
        .unwrap();
    assert_eq!(s.verify_audit_chain().await.unwrap(), audited + 1);
    super::finish(c.h).await;
}

/// Actions appending their entries inside their own transactions and entries appended on their
/// own, all at once, still make one unbroken chain (the head row is taken in each transaction).
pub async fn concurrent_actions_and_appends_keep_the_audit_chain_unbroken<H: Harness>() {
    use switch::store::operator::ApiKeyRecord;
    use switch::store::{now_us, AuditEntry, OperatorStore};
    let h = H::new().await;
    let s = h.store();
    switch::sim::operator_kit::seed_tenants(&*s).await.unwrap();
    let entry = |n: usize| AuditEntry {
        actor: format!("op{n}"),
        action: "api_key.issue".into(),
        subject: format!("api_key:k{n}"),
        detail: "{}".into(),
        at_us: now_us(),
    };
    let mut tasks = Vec::new();
    for n in 0..24 {
        let s = s.clone();
        let e = entry(n);
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                let key = ApiKeyRecord {
                    key_hash: [u8::try_from(n).unwrap(); 32],
                    key_id: format!("k{n}"),
                    institution: switch::sim::testkit::inst(switch::sim::operator_kit::SWITCH),
                    role_id: "auditor".into(),
                    name: format!("client {n}"),
                    created_at_us: now_us(),
                    revoked_at_us: None,
                    last_used_at_us: None,
                    counter_id: None,
                };
                s.put_api_key(&key, Some(&e)).await.unwrap();
            } else {
                s.append_audit(&e).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.verify_audit_chain().await.unwrap(), 24);
    h.cleanup().await;
}
