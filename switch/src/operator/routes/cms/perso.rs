//! Personalisation files: the open one cards are issued into, closing it, and downloading a
//! closed one for the card bureau.

use super::*;
use crate::cms::store::PersoFileInfo;
use crate::operator::audit::{self, action, Event};
use crate::operator::problem::store_failed;

fn perso_access<S>(st: &HttpState<S>, caller: &Caller) -> Result<Arc<CmsFace<S>>, Problem>
where
    S: crate::store::Store,
{
    caller.require(Permission::IssueCards)?;
    let f = face(st)?;
    if card_scope(f, caller).sees_perso_files() {
        Ok(Arc::clone(f))
    } else {
        Err(Problem::not_found("personalisation file"))
    }
}

/// `GET /perso-files`: the open file (records so far) and the latest closed ones.
pub async fn perso_files<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
) -> Response {
    let f = match perso_access(&st, &caller) {
        Ok(f) => f,
        Err(p) => return p.into_response(),
    };
    let open = f.batch.lock().await.as_ref().map(
        |b| json!({"file_id": b.content().header.file_id, "records": b.content().records.len()}),
    );
    let closed = match st.store.perso_files(PERSO_FILES_LISTED_MAX).await {
        Ok(files) => files,
        Err(e) => return store_failed(e).into_response(),
    };
    let closed: Vec<Value> = closed
        .iter()
        .map(
            |c| json!({"file_id": c.file_id, "records": c.records, "closed_at_us": c.closed_at_us}),
        )
        .collect();
    json(StatusCode::OK, &json!({"open": open, "closed": closed}))
}

/// `POST /perso-files`: closes the open file (201, download it from `GET /perso-files/{id}`);
/// the file and its audit entry are stored in one transaction.
pub async fn close_perso_file<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = match perso_access(&st, &caller) {
        Ok(f) => f,
        Err(p) => return p.into_response(),
    };
    let who = caller.actor();
    idempotency::run(
        &*st.store,
        &who,
        &headers,
        "/perso-files",
        &body,
        || async {
            let mut open = f.batch.lock().await;
            let Some(batch) = open.as_ref() else {
                return Err(Problem::conflict("no personalisation file is open"));
            };
            let info = PersoFileInfo {
                file_id: batch.content().header.file_id.clone(),
                records: u64::try_from(batch.content().records.len()).unwrap_or(u64::MAX),
                closed_at_us: now_us(),
                closed_by: who.clone(),
            };
            let e = Event::by(
                &caller,
                action::PERSO_FILE_CLOSE,
                format!("perso_file:{}", info.file_id),
            )
            .with("records", info.records.into());
            st.store
                .put_perso_file(&info, &batch.content().to_json_lines(), &audit::entry(e))
                .await
                .map_err(store_failed)?;
            // Closed only once kept: a failed store leaves the file open, to close again.
            *open = None;
            let answer = json!({"file_id": info.file_id, "records": info.records,
                            "closed_at_us": info.closed_at_us});
            Ok(Outcome::new(StatusCode::CREATED, answer))
        },
    )
    .await
}

/// `GET /perso-files/{id}`: a closed file, JSON Lines (header, then one record per card).
pub async fn perso_file<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    if let Err(p) = perso_access(&st, &caller) {
        return p.into_response();
    }
    match st.store.perso_file(&id).await {
        Ok(Some((_, json_lines))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/jsonl")],
            json_lines,
        )
            .into_response(),
        Ok(None) => Problem::not_found("personalisation file").into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}
