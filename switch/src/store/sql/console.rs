//! The operator console's reads and writes (issue 26) for every [`Backend`], kept apart from
//! [`super::operator`] so each file reads in one sitting: institution names in both languages,
//! a card's history by subject (`audit_log_by_subject`, migration 0016), open role-change
//! proposals and their rejection (four eyes), and the settlement events clearing has not taken
//! yet (the dashboard's clearing lag).

use super::driver::{Backend, Columns, Run, WriteTx};
use super::operator::{audit_row, page, role_change, CHANGE, OPEN_CHANGES};
use super::rows::{institution_id, parse};
use crate::store::operator::{
    AuditRow, InstitutionName, OutboxLag, RoleChange, OUTBOX_LAG_COUNT_MAX,
};
use crate::store::{AuditEntry, StoreError};
use schemas::domain::InstitutionId;
use uuid::Uuid;

const INSTITUTION_NAMES: &str =
    "SELECT institution_id, name, name_zh FROM institution ORDER BY institution_id";
const SET_NAME_ZH: &str = "UPDATE institution SET name_zh = $2 WHERE institution_id = $1";
const AUDIT_OF_SUBJECT: &str = "SELECT audit_seq, at_us, actor, action, subject, detail, mac \
     FROM audit_log WHERE subject = $1 ORDER BY audit_seq DESC LIMIT $2";
const REJECT_CHANGE: &str = "UPDATE operator_role_change SET state = 'rejected', \
     rejected_by = $2, rejected_at_us = $3, rejection_reason = $4 WHERE change_id = $1 \
     AND state = 'proposed' AND proposed_by <> $2 AND user_id <> $2";
// Counted up to a bound ($1, [`OUTBOX_LAG_COUNT_MAX`] + 1) so a node whose relay has stopped
// does not count a growing table once a second per viewer; the oldest is the first by
// sequence (an index walk, `outbox_unrelayed` or the primary key).
const OUTBOX_UNRELAYED: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS waiting FROM (SELECT 1 AS one \
     FROM outbox WHERE relayed_at_us IS NULL LIMIT $1) AS w";
const OUTBOX_UNRELAYED_OLDEST: &str = "SELECT created_at_us FROM outbox \
     WHERE relayed_at_us IS NULL ORDER BY outbox_seq LIMIT 1";
const OUTBOX_AFTER: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS waiting FROM (SELECT 1 AS one \
     FROM outbox WHERE outbox_seq > $2 LIMIT $1) AS w";
const OUTBOX_AFTER_OLDEST: &str = "SELECT created_at_us FROM outbox WHERE outbox_seq > $1 \
     ORDER BY outbox_seq LIMIT 1";

pub async fn institution_names<B: Backend>(b: &B) -> Result<Vec<InstitutionName>, StoreError> {
    let rows = b.reader().fetch_all(INSTITUTION_NAMES, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(InstitutionName {
                institution_id: institution_id(
                    row,
                    "institution_id",
                    "institution.institution_id",
                )?,
                name: row.get("name")?,
                name_zh: row.get("name_zh")?,
            })
        })
        .collect()
}

pub async fn set_institution_name_zh<B: Backend>(
    b: &B,
    institution: &InstitutionId,
    name_zh: Option<&str>,
) -> Result<bool, StoreError> {
    let params = [institution.as_str().into(), name_zh.into()];
    let _gate = b.write_gate().await;
    Ok(b.writer().execute(SET_NAME_ZH, &params).await? == 1)
}

pub async fn audit_of_subject<B: Backend>(
    b: &B,
    subject: &str,
    limit: u32,
) -> Result<Vec<AuditRow>, StoreError> {
    let params = [subject.into(), page(limit).into()];
    let rows = b.reader().fetch_all(AUDIT_OF_SUBJECT, &params).await?;
    rows.iter().map(audit_row).collect()
}

pub async fn open_role_changes<B: Backend>(
    b: &B,
    limit: u32,
) -> Result<Vec<RoleChange>, StoreError> {
    let params = [page(limit).into()];
    let rows = b.reader().fetch_all(OPEN_CHANGES, &params).await?;
    rows.iter().map(role_change).collect()
}

pub async fn reject_role_change<B: Backend>(
    b: &B,
    change_id: Uuid,
    rejecter: Uuid,
    reason: &str,
    at_us: i64,
    audit: Option<&AuditEntry>,
) -> Result<RoleChange, StoreError> {
    let (id, by) = (change_id.to_string(), rejecter.to_string());
    let _gate = b.write_gate().await;
    let mut tx = b.begin_write().await?;
    let params = [id.as_str().into()];
    let Some(row) = tx.run().fetch_optional(CHANGE, &params).await? else {
        return Err(StoreError::NotFound("role change"));
    };
    let change = role_change(&row)?;
    if change.proposed_by == rejecter || change.user_id == rejecter {
        return Err(StoreError::Conflict(
            "four eyes: a role change is rejected by another administrator than its proposer \
             and its subject",
        ));
    }
    let params = [
        id.as_str().into(),
        by.as_str().into(),
        at_us.into(),
        reason.into(),
    ];
    if tx.run().execute(REJECT_CHANGE, &params).await? != 1 {
        return Err(StoreError::Conflict(
            "the role change is no longer proposed",
        ));
    }
    super::operator::commit_audited(b, tx, audit).await?;
    Ok(change)
}

pub async fn outbox_lag<B: Backend>(
    b: &B,
    applied_through: Option<i64>,
) -> Result<OutboxLag, StoreError> {
    let bound = i64::try_from(OUTBOX_LAG_COUNT_MAX + 1).unwrap_or(i64::MAX);
    let (count, oldest) = match applied_through {
        Some(seq) => (
            b.reader()
                .fetch_one(OUTBOX_AFTER, &[bound.into(), seq.into()])
                .await?,
            b.reader()
                .fetch_optional(OUTBOX_AFTER_OLDEST, &[seq.into()])
                .await?,
        ),
        None => (
            b.reader()
                .fetch_one(OUTBOX_UNRELAYED, &[bound.into()])
                .await?,
            b.reader()
                .fetch_optional(OUTBOX_UNRELAYED_OLDEST, &[])
                .await?,
        ),
    };
    let waiting: i64 = count.get("waiting")?;
    let waiting = parse("outbox.count", u64::try_from(waiting))?;
    Ok(OutboxLag {
        waiting: waiting.min(OUTBOX_LAG_COUNT_MAX),
        more: waiting > OUTBOX_LAG_COUNT_MAX,
        oldest_created_at_us: oldest.map(|r| r.get::<i64>("created_at_us")).transpose()?,
    })
}
