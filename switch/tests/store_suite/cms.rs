//! The card management system on every backend: applications and their import, photos, the
//! life-cycle table, compare-and-set, replacement, PIN reset, and issuance end to end (a card
//! issued here, personalised by the bureau from the file, activated, pays a hospital bill at a
//! kiosk through the acquirer port, then reported lost: 41 and APPLICATION BLOCK).

use super::{ApprovingBank, Harness};
use card_apdu::channel::memory::MemoryChannel;
use futures_util::{SinkExt, StreamExt};
use hsm_sim::datakey::DataKey;
use hsm_sim::pin::PinBlockFormat;
use schemas::domain::{InstitutionId, TerminalId};
use schemas::iso8583;
use schemas::iso8583::framing::{Frame, FrameCodec, LengthHeader};
use std::sync::Arc;
use std::time::Duration;
use switch::cms::citizen_id::check_character;
use switch::cms::perso_file::PersoFileContent;
use switch::cms::photo::{sample_jpeg, PhotoSealer};
use switch::cms::{
    Actor, ApplicationId, CardManagement, CardOperation, CmsError, CmsStore, JobState, Lifecycle,
};
use switch::sim::bureau;
use switch::sim::kiosk::Kiosk;
use switch::sim::world::{DemoCard, DemoWorld, DEMO_PIN};
use switch::store::*;

const HEADER: &str = "citizen_id,name,insurance_scheme,region_code,bank_id\n";

/// A valid GB 11643-1999 number for sequence `n` (born 1990-03-07 in 410102).
fn citizen(n: u32) -> String {
    let body = format!("41010219900307{:03}", n % 1000);
    let mut b = [0u8; 17];
    b.copy_from_slice(body.as_bytes());
    format!("{body}{}", check_character(&b))
}

pub(super) fn actor() -> Actor {
    Actor {
        operator: "clerk7".into(),
        institution: InstitutionId::parse("4101008").unwrap(),
        source: "10.1.2.3".into(),
        reason: "counter ticket 42".into(),
    }
}

pub(super) struct Cms<H: Harness> {
    pub(super) h: H,
    pub(super) world: DemoWorld,
    pub(super) cms: CardManagement<H::S>,
}

pub(super) async fn cms<H: Harness>() -> Cms<H>
where
    H::S: CmsStore,
{
    let h = H::new().await;
    let mut world = DemoWorld::new(1).unwrap();
    world.seed(&*h.store()).await.unwrap();
    let photos = PhotoSealer::new(DataKey::from_bytes([7; 32]).unwrap());
    let cms = CardManagement::new(h.store())
        .with_photos(photos)
        .with_issuance(bureau::demo_issuance(&world).unwrap());
    Cms { h, world, cms }
}

fn bank(c: &Cms<impl Harness>) -> String {
    c.world.banks[0].id.to_string()
}

/// Imports one application and returns its id.
pub(super) async fn apply<H: Harness>(c: &Cms<H>, n: u32) -> ApplicationId
where
    H::S: CmsStore,
{
    let csv = format!("{HEADER}{},李四,居民,410100,{}\n", citizen(n), bank(c));
    let job = c
        .cms
        .import_applications(&actor(), &format!("b{n}"), csv.as_bytes(), &|_| {})
        .await
        .unwrap();
    assert_eq!(job.rows_created, 1, "{:?}", job.row_errors);
    c.cms
        .application_in_batch(&format!("b{n}"), &citizen(n))
        .await
        .unwrap()
        .application_id
}

/// Personalises the card of application `n` (PIN 123456 at the counter) into `batch`.
pub(super) async fn personalised<H: Harness>(
    c: &Cms<H>,
    batch: &mut switch::cms::PersoBatch,
    n: u32,
) -> switch::cms::CmsCard
where
    H::S: CmsStore,
{
    let app = apply(c, n).await;
    let pin = bureau::counter_pin(&c.world, DEMO_PIN, PinBlockFormat::Iso1, "").unwrap();
    c.cms.personalise(&actor(), batch, app, &pin).await.unwrap()
}

async fn audit_actions<H: Harness>(h: &H) -> usize
where
    H::S: CmsStore,
{
    usize::try_from(h.store().verify_audit_chain().await.unwrap()).unwrap()
}

pub async fn cms_import_validates_each_row_on_its_own_and_a_repeated_batch_creates_nothing<
    H: Harness,
>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let b = bank(&c);
    let mut csv = String::from(HEADER);
    csv.push_str(&format!("{},张三,城镇职工,410100,{b}\n", citizen(1)));
    csv.push_str("110105194912310021,王五,居民,410100,01020000\n"); // wrong check character
    csv.push_str(&format!("{},赵六,商业保险,410100,{b}\n", citizen(3))); // scheme
    csv.push_str(&format!("{},钱七,居民,990100,{b}\n", citizen(4))); // province
    csv.push_str(&format!("{},孙八,居民\n", citizen(5))); // short row
    csv.push_str(&format!("{},周九,居民,410100,09990000\n", citizen(6))); // unknown bank
    csv.push_str(&format!("{},吴十,resident,410100,{b}\n", citizen(7)));
    csv.push_str(&format!("{},张三,城镇职工,410100,{b}\n", citizen(1))); // twice in the file
    let seen = std::sync::Mutex::new(Vec::new());
    let job = c
        .cms
        .import_applications(&actor(), "2026-12-07.01", csv.as_bytes(), &|j| {
            seen.lock().unwrap().push(j.percent())
        })
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.rows_total, 8);
    assert_eq!(
        (job.rows_created, job.rows_duplicate, job.rows_rejected),
        (2, 1, 5)
    );
    let errs: Vec<(u64, &str)> = job
        .row_errors
        .iter()
        .map(|e| (e.row, e.field.as_str()))
        .collect();
    assert_eq!(
        errs,
        [
            (2, "citizen_id"),
            (3, "insurance_scheme"),
            (4, "region_code"),
            (5, "row"),
            (6, "bank_id")
        ]
    );
    assert_eq!(seen.lock().unwrap().last(), Some(&100));
    // The job is readable by id, as it was stored.
    assert_eq!(c.cms.import_job(job.job_id).await.unwrap(), job);
    // The same batch again: nothing new.
    let again = c
        .cms
        .import_applications(&actor(), "2026-12-07.01", csv.as_bytes(), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        (
            again.rows_created,
            again.rows_duplicate,
            again.rows_rejected
        ),
        (0, 3, 5)
    );
    let a = c
        .cms
        .application_in_batch("2026-12-07.01", &citizen(1))
        .await
        .unwrap();
    assert_eq!((a.name.as_str(), a.sex.as_str()), ("张三", "1"));
    // A repeated row writes nothing, not even a changed name.
    let renamed = format!("{HEADER}{},张叁,城镇职工,410100,{b}\n", citizen(1));
    let third = c
        .cms
        .import_applications(&actor(), "2026-12-07.01", renamed.as_bytes(), &|_| {})
        .await
        .unwrap();
    assert_eq!((third.rows_created, third.rows_duplicate), (0, 1));
    let same = c.cms.application(a.application_id).await.unwrap();
    assert_eq!(same.name, "张三");
    assert_eq!(a.insurance, InsuranceCategory::Employee);
    // A file without a required column fails as a whole, with the job marked failed.
    let bad = c
        .cms
        .import_applications(&actor(), "b2", b"citizen_id,name\n1,2\n", &|_| {})
        .await;
    assert!(matches!(bad, Err(CmsError::Invalid { field: "file", .. })));
    assert!(c.cms.start_import("bad batch id", b"").await.is_err());
    c.h.cleanup().await;
}

pub async fn cms_an_import_stores_its_progress_after_every_chunk<H: Harness>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let b = bank(&c);
    let mut csv = String::from(HEADER);
    for n in 0..1_200u32 {
        // Two birth years, so 1,200 distinct numbers with a 3-digit sequence.
        let body = format!("4101021990030{}{:03}", 7 + n / 1000, n % 1000);
        let mut d = [0u8; 17];
        d.copy_from_slice(body.as_bytes());
        csv.push_str(&format!(
            "{body}{},李四,居民,410100,{b}\n",
            check_character(&d)
        ));
    }
    let job = c
        .cms
        .start_import("progress", csv.as_bytes())
        .await
        .unwrap();
    assert_eq!(job.rows_total, 1_200);
    let stored = c.cms.import_job(job.job_id).await.unwrap();
    assert_eq!(
        (stored.state, stored.rows_done, stored.percent()),
        (JobState::Running, 0, 0)
    );
    let seen = std::sync::Mutex::new(Vec::new());
    let done = c
        .cms
        .finish_import(&actor(), job, csv.as_bytes(), &|j| {
            seen.lock()
                .unwrap()
                .push((j.state, j.rows_done, j.percent()))
        })
        .await
        .unwrap();
    // Each report was stored before it was made: what GET /applications/imports/{id} shows.
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (JobState::Running, 500, 41),
            (JobState::Running, 1_000, 83),
            (JobState::Done, 1_200, 100)
        ]
    );
    assert_eq!(done.rows_created, 1_200);
    assert_eq!(c.cms.import_job(done.job_id).await.unwrap(), done);
    c.h.cleanup().await;
}

pub async fn cms_a_photo_must_be_a_small_jpeg_and_is_stored_sealed<H: Harness>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let app = apply(&c, 11).await;
    let jpeg = sample_jpeg(358, 441);
    c.cms.attach_photo(&actor(), app, &jpeg).await.unwrap();
    assert_eq!(c.cms.photo(app).await.unwrap(), Some(jpeg.clone()));
    assert!(c.cms.application(app).await.unwrap().has_photo);
    let sealed = c.h.store().application_photo(app).await.unwrap().unwrap();
    assert!(!sealed.windows(4).any(|w| w == b"JFIF"), "sealed at rest");
    let png = b"\x89PNG\r\n\x1a\n....";
    let e = c.cms.attach_photo(&actor(), app, png).await.unwrap_err();
    assert_eq!(e.http_status(), 422);
    let big = [&jpeg[..2], &vec![0u8; 70_000], &jpeg[2..]].concat();
    assert!(c.cms.attach_photo(&actor(), app, &big).await.is_err());
    assert!(matches!(
        c.cms
            .attach_photo(&actor(), ApplicationId(9_999), &jpeg)
            .await,
        Err(CmsError::NotFound(_))
    ));
    c.h.cleanup().await;
}

/// What an identity session checks fields 120 and 61 against: the card by its identification
/// code, with its cardholder's citizen ID (the demo's seeded cards are enrolled; a card issued
/// without a cardholder has none; an unknown code finds nothing).
pub async fn cms_a_card_is_found_by_its_identification_code_with_its_cardholder<H: Harness>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let s = c.h.store();
    let card = &c.world.cards[0];
    let cic =
        schemas::domain::CardIdentificationCode::parse(&card.card_identification_code).unwrap();
    let (found, holder) = s.card_by_identification_code(&cic).await.unwrap().unwrap();
    assert_eq!(found.card_identification_code.as_ref(), Some(&cic));
    assert_eq!(holder.as_deref(), Some(card.citizen_id.as_str()));
    assert_eq!(s.card_pan(found.card_id).await.unwrap(), card.pan);
    let unknown =
        schemas::domain::CardIdentificationCode::parse("410100D1560000059999999999999999").unwrap();
    assert!(s
        .card_by_identification_code(&unknown)
        .await
        .unwrap()
        .is_none());
    let loose =
        schemas::domain::CardIdentificationCode::parse("410100D1560000058888888888888888").unwrap();
    s.issue_card(&NewCard {
        pan: schemas::domain::Pan::parse("6288660100009990").unwrap(),
        card_identification_code: Some(loose.clone()),
        issuer: c.world.banks[0].id.clone(),
        expiry_yymm: "3412".into(),
        status: CardStatus::Active,
        issuance: CardIssuance::default(),
    })
    .await
    .unwrap();
    let (_, holder) = s
        .card_by_identification_code(&loose)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder, None, "a card without a cardholder on record");
    c.h.cleanup().await;
}

/// Drives a personalised card to `state` through allowed operations.
pub(super) async fn drive<H: Harness>(c: &Cms<H>, card: CardId, state: Lifecycle)
where
    H::S: CmsStore,
{
    use CardOperation as Op;
    let path: &[Op] = match state {
        Lifecycle::Personalised => &[],
        Lifecycle::Issued => &[Op::HandOver],
        Lifecycle::Active => &[Op::HandOver, Op::Activate],
        Lifecycle::Suspended => &[Op::HandOver, Op::Activate, Op::Suspend],
        Lifecycle::Lost => &[Op::HandOver, Op::Activate, Op::ReportLost],
        Lifecycle::Stolen => &[Op::HandOver, Op::Activate, Op::ReportStolen],
        Lifecycle::Blocked => &[Op::HandOver, Op::Activate, Op::Block],
        Lifecycle::Expired => &[Op::HandOver, Op::Activate, Op::Expire],
        Lifecycle::Closed => &[Op::HandOver, Op::Activate, Op::Close],
        Lifecycle::Applied | Lifecycle::Replaced => unreachable!("not by `apply`"),
    };
    for op in path {
        c.cms.apply(&actor(), card, *op, None).await.unwrap();
    }
    assert_eq!(c.cms.card(card).await.unwrap().lifecycle, state);
}

pub async fn cms_every_transition_not_in_the_table_is_refused_and_changes_nothing<H: Harness>()
where
    H::S: CmsStore,
{
    use switch::cms::lifecycle::next;
    let c = cms::<H>().await;
    let mut batch = c.cms.open_perso_batch().await.unwrap();
    let states = [
        Lifecycle::Personalised,
        Lifecycle::Issued,
        Lifecycle::Active,
        Lifecycle::Suspended,
        Lifecycle::Lost,
        Lifecycle::Stolen,
        Lifecycle::Blocked,
        Lifecycle::Expired,
        Lifecycle::Closed,
        Lifecycle::Replaced,
    ];
    let pin = bureau::counter_pin(&c.world, DEMO_PIN, PinBlockFormat::Iso1, "").unwrap();
    let mut refused = 0;
    for (i, state) in states.into_iter().enumerate() {
        let card = personalised(&c, &mut batch, 100 + i as u32).await;
        if state == Lifecycle::Replaced {
            drive(&c, card.card_id, Lifecycle::Active).await;
            c.cms
                .replace(&actor(), &mut batch, card.card_id, None, &pin)
                .await
                .unwrap();
        } else {
            drive(&c, card.card_id, state).await;
        }
        let before = c.cms.card(card.card_id).await.unwrap();
        assert_eq!(before.lifecycle, state);
        assert_eq!(before.status, state.switch_status());
        for op in CardOperation::ALL {
            if next(op, state).is_ok() {
                continue;
            }
            let audited = audit_actions(&c.h).await;
            let e = match op {
                CardOperation::Personalise => continue, // an application's operation
                CardOperation::Replace => c
                    .cms
                    .replace(&actor(), &mut batch, card.card_id, None, &pin)
                    .await
                    .map(drop),
                CardOperation::ResetPin => c
                    .cms
                    .reset_pin(&actor(), card.card_id, None, &pin)
                    .await
                    .map(drop),
                op => c
                    .cms
                    .apply(&actor(), card.card_id, op, None)
                    .await
                    .map(drop),
            }
            .unwrap_err();
            assert!(
                matches!(e, CmsError::Refused(r) if r.operation == op && r.from == state),
                "{op:?} from {state:?}: {e:?}"
            );
            assert_eq!(e.http_status(), 409);
            assert_eq!(c.cms.card(card.card_id).await.unwrap(), before);
            assert_eq!(
                audit_actions(&c.h).await,
                audited,
                "a refusal is not a change"
            );
            refused += 1;
        }
    }
    assert!(refused > 60, "{refused} refusals checked");
    c.h.cleanup().await;
}

pub async fn cms_a_stale_version_is_refused_and_of_two_concurrent_changes_one_wins<H: Harness>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let mut batch = c.cms.open_perso_batch().await.unwrap();
    let card = personalised(&c, &mut batch, 21).await;
    drive(&c, card.card_id, Lifecycle::Active).await;
    let read = c.cms.card(card.card_id).await.unwrap();
    let after = c
        .cms
        .apply(
            &actor(),
            card.card_id,
            CardOperation::Suspend,
            Some(read.version),
        )
        .await
        .unwrap();
    assert_eq!(after.version, read.version + 1);
    // The same If-Match again: the card moved on.
    let e = c
        .cms
        .apply(
            &actor(),
            card.card_id,
            CardOperation::Lift,
            Some(read.version),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, CmsError::VersionMismatch { current } if current == after.version));
    assert_eq!(e.http_status(), 412);
    // Two operators act on the same version at once: one lifts, one reports lost.
    let cms = Arc::new(c);
    let v = after.version;
    let (a, b) = tokio::join!(
        {
            let c = cms.clone();
            async move {
                c.cms
                    .apply(&actor(), card.card_id, CardOperation::Lift, Some(v))
                    .await
            }
        },
        {
            let c = cms.clone();
            async move {
                c.cms
                    .apply(&actor(), card.card_id, CardOperation::ReportLost, Some(v))
                    .await
            }
        }
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    let loser = if a.is_ok() { b } else { a };
    assert!(matches!(loser, Err(CmsError::VersionMismatch { .. })));
    assert_eq!(cms.cms.card(card.card_id).await.unwrap().version, v + 1);
    match Arc::try_unwrap(cms) {
        Ok(c) => c.h.cleanup().await,
        Err(_) => panic!("test holds the only reference"),
    }
}

pub async fn cms_a_lost_report_reaches_the_hot_list_and_the_audit_log_says_who_and_why<H: Harness>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let mut batch = c.cms.open_perso_batch().await.unwrap();
    let card = personalised(&c, &mut batch, 31).await;
    drive(&c, card.card_id, Lifecycle::Active).await;
    let s = c.h.store();
    assert!(!s
        .hot_list()
        .await
        .unwrap()
        .iter()
        .any(|x| x.card_id == card.card_id));
    let lost = c
        .cms
        .apply(&actor(), card.card_id, CardOperation::ReportLost, None)
        .await
        .unwrap();
    assert_eq!(
        (lost.lifecycle, lost.status),
        (Lifecycle::Lost, CardStatus::Lost)
    );
    let hot = s.hot_list().await.unwrap();
    let listed = hot.iter().find(|x| x.card_id == card.card_id).expect("hot");
    assert_eq!(listed.status, CardStatus::Lost);
    assert_eq!(listed.status_reason.as_deref(), Some("counter ticket 42"));
    // Found again (解挂): off the hot list, active.
    let lifted = c
        .cms
        .apply(&actor(), card.card_id, CardOperation::Lift, None)
        .await
        .unwrap();
    assert_eq!(lifted.status, CardStatus::Active);
    assert!(!s
        .hot_list()
        .await
        .unwrap()
        .iter()
        .any(|x| x.card_id == card.card_id));
    // Every change is in the chain: import, personalise, hand over, activate, lost, lift.
    assert_eq!(audit_actions(&c.h).await, 6);
    // The switch blocking a card itself (wrong PINs) shows in the CMS as blocked.
    s.set_card_status(card.card_id, CardStatus::Blocked, Some("pin tries"), 0)
        .await
        .unwrap();
    let blocked = c.cms.card(card.card_id).await.unwrap();
    assert_eq!(blocked.lifecycle, Lifecycle::Blocked);
    assert_eq!(blocked.version, lifted.version + 1);
    c.h.cleanup().await;
}

pub async fn cms_a_replacement_moves_the_accounts_and_blocks_the_old_card<H: Harness>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let s = c.h.store();
    let mut batch = c.cms.open_perso_batch().await.unwrap();
    let card = personalised(&c, &mut batch, 41).await;
    drive(&c, card.card_id, Lifecycle::Lost).await;
    let fund = InstitutionId::parse(switch::sim::world::INSURANCE_FUND_ID).unwrap();
    let personal = s
        .open_account(
            &NewAccount {
                institution: fund,
                card_id: Some(card.card_id),
                kind: AccountKind::PersonalMedical,
                opening_balance: schemas::domain::AmountFen::new(50_000).unwrap(),
            },
            now_us(),
        )
        .await
        .unwrap();
    let pin = bureau::counter_pin(&c.world, DEMO_PIN, PinBlockFormat::Iso1, "").unwrap();
    let (old, new) = c
        .cms
        .replace(&actor(), &mut batch, card.card_id, None, &pin)
        .await
        .unwrap();
    assert_eq!(old.lifecycle, Lifecycle::Replaced);
    assert_eq!(old.status, CardStatus::Blocked);
    assert_eq!(old.replaced_by, Some(new.card_id));
    assert_eq!(new.lifecycle, Lifecycle::Personalised);
    assert_eq!(new.cardholder_id, old.cardholder_id);
    assert_eq!(new.issuer, old.issuer);
    assert_ne!(new.pan_masked, old.pan_masked);
    let accounts = s.accounts_for_card(new.card_id).await.unwrap();
    assert_eq!(
        accounts.iter().map(|a| a.account_id).collect::<Vec<_>>(),
        [personal]
    );
    assert!(s.accounts_for_card(old.card_id).await.unwrap().is_empty());
    let cards = s
        .cards_of_cardholder(old.cardholder_id.unwrap())
        .await
        .unwrap();
    assert_eq!(cards.len(), 2, "both cards stay with the cardholder");
    assert_eq!(batch.content().records.len(), 2);
    // A replaced card cannot be replaced again.
    assert!(matches!(
        c.cms
            .replace(&actor(), &mut batch, old.card_id, None, &pin)
            .await,
        Err(CmsError::Refused(_))
    ));
    c.h.cleanup().await;
}

pub async fn cms_a_pin_reset_sets_a_new_offset_and_unblocks_a_card_blocked_by_wrong_pins<
    H: Harness,
>()
where
    H::S: CmsStore,
{
    let c = cms::<H>().await;
    let s = c.h.store();
    let mut batch = c.cms.open_perso_batch().await.unwrap();
    let card = personalised(&c, &mut batch, 51).await;
    drive(&c, card.card_id, Lifecycle::Active).await;
    let pan = s.card_pan(card.card_id).await.unwrap();
    let offset_of = |s: Arc<H::S>, pan: schemas::domain::Pan| async move {
        s.card_by_pan(&pan)
            .await
            .unwrap()
            .unwrap()
            .issuance
            .pin_offset
    };
    let first = offset_of(s.clone(), pan.clone()).await;
    for _ in 0..3 {
        s.count_wrong_pin(card.card_id).await.unwrap();
    }
    s.set_card_status(card.card_id, CardStatus::Blocked, Some("pin tries"), 0)
        .await
        .unwrap();
    let pin = bureau::counter_pin(
        &c.world,
        "654321",
        PinBlockFormat::Iso0,
        pan.expose_digits(),
    )
    .unwrap();
    let after = c
        .cms
        .reset_pin(&actor(), card.card_id, None, &pin)
        .await
        .unwrap();
    assert_eq!(
        (after.lifecycle, after.pin_tries_failed),
        (Lifecycle::Active, 0)
    );
    let second = offset_of(s.clone(), pan.clone()).await;
    assert_ne!(first, second, "a new PIN, a new offset");
    assert_eq!(second.as_deref().map(str::len), Some(6));
    // The same PIN arriving under a zone PIN key (the counter system re-encrypted it) gives
    // the same offset: the HSM saw the same PIN.
    let zpk_clear = hsm_sim::keys::ClearKey::new(
        hsm_sim::keys::KeyScheme::U,
        hex::decode(&c.world.banks[0].zpk_clear).unwrap(),
    )
    .unwrap();
    let block = hsm_sim::pin::encrypt_pin_block(
        &hsm_sim::crypto::WorkingCipher::new(&zpk_clear).unwrap(),
        PinBlockFormat::Iso0,
        &hsm_sim::card_crypto::ClearPin::new("654321").unwrap(),
        pan.expose_digits(),
    )
    .unwrap();
    let under_zpk = switch::cms::CounterPin {
        key: hsm_sim::keys::PinKey::Zpk(c.world.bank_keys(0).unwrap().1),
        block,
        format: PinBlockFormat::Iso0,
    };
    c.cms
        .reset_pin(&actor(), card.card_id, None, &under_zpk)
        .await
        .unwrap();
    assert_eq!(offset_of(s.clone(), pan.clone()).await, second);
    // Unblock alone (the cardholder remembered the PIN): blocked → active, tries cleared.
    s.count_wrong_pin(card.card_id).await.unwrap();
    c.cms
        .apply(&actor(), card.card_id, CardOperation::Block, None)
        .await
        .unwrap();
    let unblocked = c
        .cms
        .apply(&actor(), card.card_id, CardOperation::Unblock, None)
        .await
        .unwrap();
    assert_eq!(
        (unblocked.status, unblocked.pin_tries_failed),
        (CardStatus::Active, 0)
    );
    c.h.cleanup().await;
}

type Conn = tokio_util::codec::Framed<tokio::net::TcpStream, FrameCodec>;

async fn exchange(conn: &mut Conn, request: &[u8]) -> Vec<u8> {
    conn.send(Frame {
        tpdu: None,
        message: request.to_vec().into(),
    })
    .await
    .unwrap();
    let f = tokio::time::timeout(Duration::from_secs(10), conn.next())
        .await
        .expect("answer in time")
        .expect("connection open")
        .expect("well-framed answer");
    f.message.to_vec()
}

pub async fn cms_a_card_issued_here_and_made_by_the_bureau_pays_a_hospital_bill_then_is_reported_lost<
    H: Harness,
>()
where
    H::S: CmsStore,
{
    use switch::acquirer::{self, AcquirerListener};
    use switch::metrics::Metrics;
    use switch::pipeline::Pipeline;
    let c = cms::<H>().await;
    let s = c.h.store();
    // 1. Issue: application, personalisation (PAN, keys under the transport ZEK, PIN offset).
    let mut batch = c.cms.open_perso_batch().await.unwrap();
    let app = apply(&c, 61).await;
    c.cms
        .attach_photo(&actor(), app, &sample_jpeg(358, 441))
        .await
        .unwrap();
    let pin = bureau::counter_pin(&c.world, DEMO_PIN, PinBlockFormat::Iso1, "").unwrap();
    let card = c
        .cms
        .personalise(&actor(), &mut batch, app, &pin)
        .await
        .unwrap();
    let file = batch.content().to_json_lines();
    // No clear PIN: an ISO 9564-1 format 1 block in clear would read "16123456...".
    assert!(
        !file.contains(&format!("16{DEMO_PIN}")),
        "no clear PIN block in the file"
    );
    assert!(!file.contains("\"pin\""), "no PIN field");
    // 2. The bureau reads the file and makes the card.
    let read = PersoFileContent::parse(&file).unwrap();
    assert_eq!(read.records.len(), 1);
    let record = &read.records[0];
    assert_eq!(record.card_id, card.card_id.0);
    assert!(record
        .photo_jpeg_hex
        .as_deref()
        .unwrap()
        .starts_with("FFD8"));
    let vcard = bureau::load_record(&read.header, record).unwrap();
    let mut reader = MemoryChannel::new(vcard);
    // The insurance fund opens the cardholder's accounts (as its own system does).
    let fund = InstitutionId::parse(switch::sim::world::INSURANCE_FUND_ID).unwrap();
    for (kind, fen) in [
        (AccountKind::PersonalMedical, 50_000),
        (AccountKind::PooledFund, 10_000_000),
    ] {
        s.open_account(
            &NewAccount {
                institution: fund.clone(),
                card_id: Some(card.card_id),
                kind,
                opening_balance: schemas::domain::AmountFen::new(fen).unwrap(),
            },
            now_us(),
        )
        .await
        .unwrap();
    }
    // 3. The switch runs: writer, pipeline, acquirer port.
    let banks = Arc::new(ApprovingBank::of(&c.world));
    let (w, _task) = writer::spawn(s.clone(), writer::WriterConfig::default());
    let pipeline = Pipeline::new(
        s.clone(),
        w,
        c.world.hsm.clone(),
        banks,
        c.world.keys.clone(),
        c.world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .unwrap();
    let cfg = AcquirerListener::ssc87("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = acquirer::bind(&cfg).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(acquirer::serve(listener, cfg, Arc::clone(&pipeline), rx));
    let mut conn = tokio_util::codec::Framed::new(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        FrameCodec::new(LengthHeader::Binary2),
    );
    let h = &c.world.hospitals[0];
    let mut kiosk = Kiosk::new(
        TerminalId::parse("HK000009").unwrap(),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    );
    let pan = s.card_pan(card.card_id).await.unwrap();
    let demo_card = DemoCard {
        pan: pan.clone(),
        bank: 0,
        algorithm: IccAlgorithm::Sm4,
        insurance: Some(InsuranceCategory::Resident),
        personal_fen: 50_000,
        bank_balance_fen: 0,
        card_identification_code: record.ssse.card_identification_code.clone(),
        citizen_id: record.ssse.social_security_number.clone(),
        pin_offset: String::new(),
        expiry_yymm: card.expiry_yymm.clone(),
    };
    let code = |wire: &[u8]| {
        let m = iso8583::spec("ssc87").unwrap().decode(wire).unwrap();
        m.get_str(39).unwrap().into_owned()
    };
    // Not yet activated: 62.
    c.cms
        .apply(&actor(), card.card_id, CardOperation::HandOver, None)
        .await
        .unwrap();
    let p = kiosk
        .medical_bill(&demo_card, &mut reader, 10_000, "MZ-C0", DEMO_PIN)
        .unwrap();
    assert_eq!(code(&exchange(&mut conn, &p.request).await), "62");
    // 4. Activated at the counter: the bill is paid, the chip accepts the ARPC.
    c.cms
        .apply(&actor(), card.card_id, CardOperation::Activate, None)
        .await
        .unwrap();
    let p = kiosk
        .medical_bill(&demo_card, &mut reader, 30_000, "MZ-C1", DEMO_PIN)
        .unwrap();
    let answer = exchange(&mut conn, &p.request).await;
    let a = iso8583::spec("ssc87").unwrap().decode(&answer).unwrap();
    assert_eq!(a.get_str(39).unwrap(), "00");
    let outcome = p.complete(&mut reader, &a).unwrap();
    assert!(outcome.approved);
    assert_eq!(
        outcome.issuer_authentication,
        Some(true),
        "ARPC from the MK-AC"
    );
    // 5. Reported lost: the next transaction is declined 41 with APPLICATION BLOCK.
    c.cms
        .apply(&actor(), card.card_id, CardOperation::ReportLost, None)
        .await
        .unwrap();
    pipeline.cards().refresh_hot_list(&*s).await.unwrap();
    let p = kiosk
        .medical_bill(&demo_card, &mut reader, 10_000, "MZ-C2", DEMO_PIN)
        .unwrap();
    let answer = exchange(&mut conn, &p.request).await;
    let a = iso8583::spec("ssc87").unwrap().decode(&answer).unwrap();
    assert_eq!(a.get_str(39).unwrap(), "41");
    let outcome = p.complete(&mut reader, &a).unwrap();
    assert!(!outcome.approved);
    assert!(
        outcome.scripts.iter().any(|s| s.ok),
        "the chip ran the APPLICATION BLOCK script: {:?}",
        outcome.scripts
    );
    assert!(kiosk
        .medical_bill(&demo_card, &mut reader, 10_000, "MZ-C3", DEMO_PIN)
        .is_err());
    c.h.cleanup().await;
}

/// An HTTP answer (status, headers with lower-case names, body).
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a new connection, with an API key.
async fn http(
    addr: std::net::SocketAddr,
    key: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Http {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n\
         Authorization: Bearer {key}\r\n"
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let bytes = body.map_or(&[][..], |(_, b)| b);
    if let Some((content_type, b)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    } else if method != "GET" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Http {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Issue 25's end-to-end test through the operator API: an issuance operator of the bureau
/// uploads a CSV batch (one good row, one bad), follows the job, attaches the photo, issues the
/// card with the PIN block from the counter's PIN pad, closes and downloads the bureau's file;
/// the bureau makes the card from it; a counter clerk finds the card, hands it over and
/// activates it (If-Match: missing 428, stale 412); it pays a hospital bill through the acquirer
/// port; the clerk reports it lost and the next bill is declined 41. Every action is in the
/// audit log with the operator, the source address and the reason.
pub async fn cms_api_a_card_issued_through_the_api_pays_a_hospital_bill_then_is_reported_lost<
    H: Harness,
>()
where
    H::S: CmsStore,
{
    use switch::acquirer::{self, AcquirerListener};
    use switch::http::HttpState;
    use switch::metrics::Metrics;
    use switch::operator::routes::cms::CmsFace;
    use switch::pipeline::Pipeline;
    use switch::sim::operator_kit;
    let c = cms::<H>().await;
    let s = c.h.store();
    s.install_audit_mac_key(Arc::new(switch::operator::keys::audit_key_for_tests()));
    switch::operator::provision::ensure_builtin_roles(&*s)
        .await
        .unwrap();
    let bureau_id = c.world.cfg.social_security_fund.to_string();
    let issuer_key = operator_kit::api_key(&*s, &bureau_id, "issuance_operator")
        .await
        .unwrap();
    let clerk_key = operator_kit::api_key(&*s, &bureau_id, "counter_clerk")
        .await
        .unwrap();
    let auditor_key = operator_kit::api_key(&*s, c.world.cfg.switch_id.as_str(), "auditor")
        .await
        .unwrap();
    // The HTTP face with the CMS, as `switch demo` builds it.
    let parts = bureau::demo_cms(&c.world).unwrap();
    let mut service = CardManagement::new(s.clone()).with_issuance(parts.issuance);
    if let Some(p) = parts.photos {
        service = service.with_photos(p);
    }
    let face = Arc::new(CmsFace::new(service, parts.bureaus, parts.counter_tpk));
    let (w, _task) = writer::spawn(s.clone(), writer::WriterConfig::default());
    let state = Arc::new(HttpState {
        store: s.clone(),
        writer: w.clone(),
        metrics: Arc::new(Metrics::default()),
        links: None,
        operator: Arc::new(switch::operator::OperatorContext::for_tests()),
        cms: Some(face),
        clearing: None,
        cutover: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            switch::http::router(state)
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });

    // 1. The batch: one good row, one with a wrong check character; 202 and a job.
    let good = citizen(71);
    let mut bad = citizen(72);
    let last = if bad.ends_with('0') { "1" } else { "0" };
    bad.replace_range(17.., last);
    let csv = format!(
        "{HEADER}{good},李四,居民,410100,{b}\n{bad},王五,居民,410100,{b}\n",
        b = bank(&c)
    );
    let upload = |k: &'static str| {
        let csv = csv.clone();
        let key = issuer_key.clone();
        async move {
            http(
                api,
                &key,
                "POST",
                "/application-batches?batch_id=e2e-1",
                &[("Idempotency-Key", k)],
                Some(("text/csv", csv.as_bytes())),
            )
            .await
        }
    };
    let r = upload("batch-e2e-1").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let job_id = r.json()["job_id"].as_str().unwrap().to_owned();
    let again = upload("batch-e2e-1").await;
    assert_eq!(again.status, 202);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["job_id"], job_id.as_str(), "the same job");
    let mut job = serde_json::Value::Null;
    for _ in 0..200 {
        job = http(
            api,
            &issuer_key,
            "GET",
            &format!("/import-jobs/{job_id}"),
            &[],
            None,
        )
        .await
        .json();
        if job["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["percent"], 100);
    assert_eq!(
        (job["rows_created"].as_u64(), job["rows_rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(job["row_errors"][0]["row"], 2, "{job}");
    assert_eq!(job["row_errors"][0]["field"], "citizen_id", "{job}");
    let report = http(
        api,
        &issuer_key,
        "GET",
        &format!("/import-jobs/{job_id}/errors"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        report.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert!(
        report.text().starts_with("row,field,reason\n2,citizen_id,"),
        "{}",
        report.text()
    );
    // 2. The application of the good row, its photo, and its card issued at the counter.
    let found = http(
        api,
        &issuer_key,
        "GET",
        &format!("/applications?batch_id=e2e-1&citizen_id={good}"),
        &[],
        None,
    )
    .await
    .json();
    let app_id = found["items"][0]["application_id"]
        .as_i64()
        .expect("the application");
    assert_eq!(found["items"][0]["status"], "applied");
    assert!(
        !found.to_string().contains(&good),
        "the citizen ID is shown masked"
    );
    let photo = sample_jpeg(358, 441);
    let r = http(
        api,
        &issuer_key,
        "PUT",
        &format!("/applications/{app_id}/photo"),
        &[],
        Some(("image/jpeg", &photo)),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let pin = bureau::counter_pin(&c.world, DEMO_PIN, PinBlockFormat::Iso1, "").unwrap();
    let issue_body =
        serde_json::json!({"pin_block": pin.block.to_hex(), "pin_block_format": "iso1"})
            .to_string();
    let r = http(
        api,
        &issuer_key,
        "POST",
        &format!("/applications/{app_id}/issue"),
        &[("Idempotency-Key", "issue-e2e-1")],
        Some(("application/json", issue_body.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let issued = r.json();
    let card_id = issued["card_id"].as_i64().unwrap();
    assert_eq!(issued["lifecycle"], "personalised");
    // 3. The bureau's file: close it, download it, make the card.
    let r = http(
        api,
        &issuer_key,
        "POST",
        "/perso-files",
        &[("Idempotency-Key", "close-e2e-1")],
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["records"], 1);
    let file_id = r.json()["file_id"].as_str().unwrap().to_owned();
    assert_eq!(file_id, issued["perso_file_id"].as_str().unwrap());
    let r = http(
        api,
        &issuer_key,
        "GET",
        &format!("/perso-files/{file_id}"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/jsonl"));
    let file = r.text();
    assert!(
        !file.contains(&format!("16{DEMO_PIN}")),
        "no clear PIN block in the file"
    );
    let read = PersoFileContent::parse(&file).unwrap();
    let record = &read.records[0];
    assert_eq!(record.card_id, card_id);
    assert!(record
        .photo_jpeg_hex
        .as_deref()
        .unwrap()
        .starts_with("FFD8"));
    let vcard = bureau::load_record(&read.header, record).unwrap();
    let mut reader = MemoryChannel::new(vcard);
    let fund = InstitutionId::parse(switch::sim::world::INSURANCE_FUND_ID).unwrap();
    for (kind, fen) in [
        (AccountKind::PersonalMedical, 50_000),
        (AccountKind::PooledFund, 10_000_000),
    ] {
        s.open_account(
            &NewAccount {
                institution: fund.clone(),
                card_id: Some(CardId(card_id)),
                kind,
                opening_balance: schemas::domain::AmountFen::new(fen).unwrap(),
            },
            now_us(),
        )
        .await
        .unwrap();
    }
    // 4. The switch: pipeline and acquirer port.
    let banks = Arc::new(ApprovingBank::of(&c.world));
    let pipeline = Pipeline::new(
        s.clone(),
        w,
        c.world.hsm.clone(),
        banks,
        c.world.keys.clone(),
        c.world.cfg.clone(),
        Arc::new(Metrics::default()),
    )
    .await
    .unwrap();
    let cfg = AcquirerListener::ssc87("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = acquirer::bind(&cfg).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(acquirer::serve(listener, cfg, Arc::clone(&pipeline), rx));
    let mut conn = tokio_util::codec::Framed::new(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        FrameCodec::new(LengthHeader::Binary2),
    );
    let h = &c.world.hospitals[0];
    let mut kiosk = Kiosk::new(
        TerminalId::parse("HK000019").unwrap(),
        h.id.clone(),
        Some(h.code.clone()),
        "1",
    );
    let pan = s.card_pan(CardId(card_id)).await.unwrap();
    let demo_card = DemoCard {
        pan: pan.clone(),
        bank: 0,
        algorithm: IccAlgorithm::Sm4,
        insurance: Some(InsuranceCategory::Resident),
        personal_fen: 50_000,
        bank_balance_fen: 0,
        card_identification_code: record.ssse.card_identification_code.clone(),
        citizen_id: record.ssse.social_security_number.clone(),
        pin_offset: String::new(),
        expiry_yymm: issued["expiry_yymm"].as_str().unwrap().to_owned(),
    };
    // 5. The counter clerk finds the card by the PAN's last four digits, hands it over and
    //    activates it: without If-Match 428, with a stale one 412.
    let last4 = &pan.expose_digits()[pan.expose_digits().len() - 4..];
    let list = http(
        api,
        &clerk_key,
        "GET",
        &format!("/cards?pan_last4={last4}"),
        &[],
        None,
    )
    .await
    .json();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["card_id"] == card_id),
        "{list}"
    );
    let etag = |r: &Http| r.header("etag").expect("an ETag").to_owned();
    let r = http(
        api,
        &clerk_key,
        "GET",
        &format!("/cards/{card_id}"),
        &[],
        None,
    )
    .await;
    let first = etag(&r);
    let reason = |why: &str| serde_json::json!({ "reason": why }).to_string();
    let op = |name: &'static str, if_match: Option<String>, why: &'static str| {
        let key = clerk_key.clone();
        async move {
            let mut headers = Vec::new();
            if let Some(m) = &if_match {
                headers.push(("If-Match", m.as_str()));
            }
            let body = reason(why);
            http(
                api,
                &key,
                "POST",
                &format!("/cards/{card_id}/{name}"),
                &headers,
                Some(("application/json", body.as_bytes())),
            )
            .await
        }
    };
    let r = op(
        "hand-over",
        Some(first.clone()),
        "card handed over at counter 3",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["lifecycle"], "issued");
    let p = kiosk
        .medical_bill(&demo_card, &mut reader, 10_000, "MZ-A0", DEMO_PIN)
        .unwrap();
    assert_eq!(
        iso8583::spec("ssc87")
            .unwrap()
            .decode(&exchange(&mut conn, &p.request).await)
            .unwrap()
            .get_str(39)
            .unwrap(),
        "62",
        "not yet active"
    );
    let r = op("activate", None, "activated at counter 3").await;
    assert_eq!(r.status, 428, "{}", r.text());
    let r = op("activate", Some(first), "activated at counter 3").await;
    assert_eq!(r.status, 412, "{}", r.text());
    let now = etag(
        &http(
            api,
            &clerk_key,
            "GET",
            &format!("/cards/{card_id}"),
            &[],
            None,
        )
        .await,
    );
    let r = op("activate", Some(now), "activated at counter 3").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["lifecycle"], "active");
    let after_activation = etag(&r);
    assert_eq!(
        after_activation,
        format!("\"{}\"", r.json()["version"]),
        "the answer's ETag is the new version"
    );
    // 6. The hospital bill is paid; the chip accepts the ARPC.
    let p = kiosk
        .medical_bill(&demo_card, &mut reader, 30_000, "MZ-A1", DEMO_PIN)
        .unwrap();
    let answer = exchange(&mut conn, &p.request).await;
    let a = iso8583::spec("ssc87").unwrap().decode(&answer).unwrap();
    assert_eq!(a.get_str(39).unwrap(), "00");
    let outcome = p.complete(&mut reader, &a).unwrap();
    assert!(outcome.approved);
    assert_eq!(outcome.issuer_authentication, Some(true));
    // 7. Reported lost through the API (with the ETag of the activation's answer): the next
    //    bill is declined 41.
    let r = op(
        "report-lost",
        Some(after_activation),
        "cardholder called at 02:10, ticket 4711",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["lifecycle"], "lost");
    pipeline.cards().refresh_hot_list(&*s).await.unwrap();
    let p = kiosk
        .medical_bill(&demo_card, &mut reader, 10_000, "MZ-A2", DEMO_PIN)
        .unwrap();
    let answer = exchange(&mut conn, &p.request).await;
    let a = iso8583::spec("ssc87").unwrap().decode(&answer).unwrap();
    assert_eq!(a.get_str(39).unwrap(), "41");
    // 8. The audit log: who, what, from where, why.
    let audit = http(api, &auditor_key, "GET", "/audit?limit=200", &[], None)
        .await
        .json();
    let entries = audit["items"].as_array().unwrap();
    let lost = entries
        .iter()
        .find(|e| e["action"] == "card.report_lost")
        .expect("the loss report is audited");
    assert_eq!(lost["source"], "127.0.0.1");
    assert_eq!(lost["reason"], "cardholder called at 02:10, ticket 4711");
    assert!(
        lost["actor"].as_str().unwrap().starts_with("api_key:"),
        "{lost}"
    );
    assert_eq!(lost["subject"], format!("card:{card_id}"));
    for action in [
        "applications.import",
        "application.photo",
        "card.personalise",
        "card.hand_over",
        "card.activate",
    ] {
        let e = entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("{action} audited: {audit}"));
        assert_eq!(e["source"], "127.0.0.1", "{action}");
        assert!(
            e["actor"]
                .as_str()
                .unwrap()
                .ends_with(&format!("@{bureau_id}")),
            "{e}"
        );
    }
    c.h.cleanup().await;
}
