//! Operator API state kept in the store (migration 0017), so a restart or another node sees it:
//! closed personalisation files (sealed at rest), the institution that started an import job,
//! and an API key's last use with the key list of an institution.

use super::Harness;
use switch::cms::model::{ImportJob, JobState};
use switch::cms::store::PersoFileInfo;
use switch::cms::CmsStore;
use switch::sim::operator_kit::{self, OTHER_HOSPITAL, SWITCH};
use switch::sim::testkit::inst;
use switch::store::operator::ApiKeyRecord;
use switch::store::{now_us, AuditEntry, OperatorStore, Store, StoreError};

fn entry(action: &str, subject: &str) -> AuditEntry {
    AuditEntry {
        actor: "api_key:test".into(),
        action: action.into(),
        subject: subject.into(),
        detail: "{}".into(),
        at_us: now_us(),
    }
}

pub async fn closed_perso_files_and_job_starters_survive_a_restart<H: Harness>()
where
    H::S: CmsStore,
{
    let mut h = H::new().await;
    let s = h.store();
    let lines = "{\"file_id\":\"f-1\"}\n{\"pan\":\"6227009900000017\",\"name\":\"李四\"}\n";
    let file = |id: &str, at: i64| PersoFileInfo {
        file_id: id.into(),
        records: 1,
        closed_at_us: at,
        closed_by: "api_key:test".into(),
    };
    s.put_perso_file(
        &file("f-1", 10),
        lines,
        &entry("perso_file.close", "perso_file:f-1"),
    )
    .await
    .unwrap();
    s.put_perso_file(
        &file("f-2", 20),
        "{}\n",
        &entry("perso_file.close", "perso_file:f-2"),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.put_perso_file(&file("f-1", 30), "{}\n", &entry("perso_file.close", "x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.verify_audit_chain().await.unwrap(),
        2,
        "each close audited once"
    );
    let bureau = inst(operator_kit::SWITCH);
    let mut job = switch::cms::import::new_job("b-1", b"citizen_id\n1\n");
    job.started_by = Some(bureau.clone());
    s.put_import_job(&job).await.unwrap();
    // A later update of the job keeps its starter.
    let done = ImportJob {
        state: JobState::Done,
        rows_done: 1,
        finished_at_us: Some(now_us()),
        ..job.clone()
    };
    s.put_import_job(&done).await.unwrap();

    h.reopen().await;
    let s = h.store();
    let listed = s.perso_files(1).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].file_id, "f-2", "newest first");
    let (info, text) = s.perso_file("f-1").await.unwrap().expect("kept");
    assert_eq!((info.records, info.closed_at_us), (1, 10));
    assert_eq!(text, lines);
    assert!(s.perso_file("f-9").await.unwrap().is_none());
    // Sealed at rest: the PAN is not in the table.
    let holds = |text: &str| {
        format!(
            "UPDATE perso_file SET records = records WHERE {}",
            H::BLOB_HOLDS_TEXT
                .replace("COL", "content_sealed")
                .replace("TEXT", text)
        )
    };
    let found = h.raw_execute(&holds("6227009900000017")).await.unwrap();
    assert_eq!(found, 0, "the PAN is not stored in clear");
    // The same condition finds bytes that are there (the sealed form's version byte, 0x01,
    // is not text: look for nothing, which every blob holds).
    assert_eq!(h.raw_execute(&holds("")).await.unwrap(), 2);
    let back = s.import_job(job.job_id).await.unwrap().expect("job");
    assert_eq!(back.started_by, Some(bureau));
    assert_eq!(back.state, JobState::Done);
    super::finish(h).await;
}

pub async fn the_key_list_is_per_institution_and_shows_the_last_use<H: Harness>() {
    let h = H::new().await;
    let s = h.store();
    operator_kit::seed_tenants(&*s).await.unwrap();
    let key = |n: u8, institution: &str| ApiKeyRecord {
        key_hash: [n; 32],
        key_id: format!("key-{n}"),
        institution: inst(institution),
        role_id: "auditor".into(),
        name: format!("client {n}"),
        created_at_us: now_us(),
        revoked_at_us: None,
        last_used_at_us: None,
        counter_id: None,
    };
    for (n, i) in [(1, SWITCH), (2, OTHER_HOSPITAL), (3, SWITCH)] {
        s.put_api_key(&key(n, i), None).await.unwrap();
    }
    let own = s
        .api_keys_page(Some(&inst(OTHER_HOSPITAL)), None, 10)
        .await
        .unwrap();
    assert_eq!(
        own.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(),
        ["key-2"]
    );
    let page = s.api_keys_page(None, Some("key-1"), 1).await.unwrap();
    assert_eq!(page[0].key_id, "key-2");
    s.touch_api_key(&[3; 32], 500).await.unwrap();
    s.touch_api_key(&[3; 32], 400).await.unwrap(); // an older use does not go back
    let k = s.api_key_by_id("key-3").await.unwrap().unwrap();
    assert_eq!(k.last_used_at_us, Some(500));
    assert_eq!(
        s.api_key_by_id("key-1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at_us,
        None
    );
    h.cleanup().await;
}
