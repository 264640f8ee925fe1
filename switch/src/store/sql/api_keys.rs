//! [`OperatorStore`](crate::store::OperatorStore)'s API keys for every [`Backend`]: machine
//! clients' keys stored as hashes (migration 0011), their institution, role and counter (0017),
//! issued and revoked with their audit entry in the same transaction.

use super::driver::{Backend, Columns, Run, WriteTx};
use super::operator::{commit_audited, institution, page};
use super::rows::hash32;
use crate::store::operator::ApiKeyRecord;
use crate::store::{AuditEntry, StoreError};
use schemas::domain::InstitutionId;

const INSERT_API_KEY: &str = "INSERT INTO operator_api_key (key_hash, key_id, institution_id, \
     role_id, name, created_at_us, revoked_at_us, counter_id) \
     VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)";
/// Columns read by [`api_key_row`].
macro_rules! key_columns {
    () => {
        "key_hash, key_id, institution_id, role_id, name, created_at_us, revoked_at_us, \
         last_used_at_us, counter_id"
    };
}
const API_KEY: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM operator_api_key WHERE key_hash = $1"
);
const API_KEY_BY_ID: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM operator_api_key WHERE key_id = $1"
);
const API_KEYS_OF: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM operator_api_key WHERE institution_id = $1 AND key_id > $2 ORDER BY key_id LIMIT $3"
);
const API_KEYS_ALL: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM operator_api_key WHERE key_id > $1 ORDER BY key_id LIMIT $2"
);
const TOUCH_API_KEY: &str = "UPDATE operator_api_key SET last_used_at_us = $2 \
     WHERE key_hash = $1 AND (last_used_at_us IS NULL OR last_used_at_us < $2)";
const REVOKE_API_KEY: &str = "UPDATE operator_api_key SET revoked_at_us = $2 \
     WHERE key_id = $1 AND revoked_at_us IS NULL";

fn api_key_row(row: &impl Columns) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        key_hash: hash32("operator_api_key.key_hash", row.get("key_hash")?)?,
        key_id: row.get("key_id")?,
        institution: institution(row, "operator_api_key.institution_id")?,
        role_id: row.get("role_id")?,
        name: row.get("name")?,
        created_at_us: row.get("created_at_us")?,
        revoked_at_us: row.get("revoked_at_us")?,
        last_used_at_us: row.get("last_used_at_us")?,
        counter_id: row.get("counter_id")?,
    })
}

pub(super) async fn put_api_key<B: Backend>(
    b: &B,
    k: &ApiKeyRecord,
    audit: Option<&AuditEntry>,
) -> Result<(), StoreError> {
    let params = [
        k.key_hash.as_slice().into(),
        k.key_id.as_str().into(),
        k.institution.as_str().into(),
        k.role_id.as_str().into(),
        k.name.as_str().into(),
        k.created_at_us.into(),
        k.counter_id.as_deref().into(),
    ];
    let _gate = b.write_gate().await;
    let mut tx = b.begin_write().await?;
    tx.run().execute(INSERT_API_KEY, &params).await?;
    commit_audited(b, tx, audit).await
}

pub(super) async fn api_key_by_id<B: Backend>(
    b: &B,
    key_id: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let params = [key_id.into()];
    let row = b.reader().fetch_optional(API_KEY_BY_ID, &params).await?;
    row.as_ref().map(api_key_row).transpose()
}

pub(super) async fn revoke_api_key<B: Backend>(
    b: &B,
    key_id: &str,
    at_us: i64,
    audit: Option<&AuditEntry>,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let params = [key_id.into(), at_us.into()];
    {
        let _gate = b.write_gate().await;
        let mut tx = b.begin_write().await?;
        let revoked = tx.run().execute(REVOKE_API_KEY, &params).await? == 1;
        commit_audited(b, tx, audit.filter(|_| revoked)).await?;
    }
    let params = [key_id.into()];
    let row = b.writer().fetch_optional(API_KEY_BY_ID, &params).await?;
    row.as_ref().map(api_key_row).transpose()
}

pub(super) async fn api_keys_page<B: Backend>(
    b: &B,
    institution: Option<&InstitutionId>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let after = after.unwrap_or("");
    let rows = match institution {
        Some(i) => {
            let params = [i.as_str().into(), after.into(), page(limit).into()];
            b.reader().fetch_all(API_KEYS_OF, &params).await?
        }
        None => {
            let params = [after.into(), page(limit).into()];
            b.reader().fetch_all(API_KEYS_ALL, &params).await?
        }
    };
    rows.iter().map(api_key_row).collect()
}

pub(super) async fn touch_api_key<B: Backend>(
    b: &B,
    key_hash: &[u8; 32],
    at_us: i64,
) -> Result<(), StoreError> {
    let params = [key_hash.as_slice().into(), at_us.into()];
    let _gate = b.write_gate().await;
    b.writer().execute(TOUCH_API_KEY, &params).await?;
    Ok(())
}

pub(super) async fn api_key<B: Backend>(
    b: &B,
    key_hash: &[u8; 32],
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let params = [key_hash.as_slice().into()];
    let row = b.reader().fetch_optional(API_KEY, &params).await?;
    row.as_ref().map(api_key_row).transpose()
}
