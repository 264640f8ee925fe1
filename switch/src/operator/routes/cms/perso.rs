//! Personalisation files: the open one cards are issued into, closing it, and downloading a
//! closed one for the card bureau.

use super::*;

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

/// `GET /perso-files`: the open file (records so far) and the closed ones kept.
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
    let closed: Vec<Value> = f
        .files
        .lock()
        .map(|files| {
            files
                .iter()
                .map(|c| {
                    json!({"file_id": c.file_id, "records": c.records,
                           "closed_at_us": c.closed_at_us})
                })
                .collect()
        })
        .unwrap_or_default();
    json(StatusCode::OK, &json!({"open": open, "closed": closed}))
}

/// `POST /perso-files`: closes the open file (201, download it from `GET /perso-files/{id}`).
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
            let Some(batch) = f.batch.lock().await.take() else {
                return Err(Problem::conflict("no personalisation file is open"));
            };
            let closed = ClosedFile {
                file_id: batch.content().header.file_id.clone(),
                records: batch.content().records.len(),
                closed_at_us: now_us(),
                json_lines: batch.content().to_json_lines(),
            };
            let answer = json!({"file_id": closed.file_id, "records": closed.records,
                            "closed_at_us": closed.closed_at_us});
            if let Ok(mut files) = f.files.lock() {
                if files.len() >= PERSO_FILES_KEPT_MAX {
                    files.pop_front();
                }
                files.push_back(closed);
            }
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
    let f = match perso_access(&st, &caller) {
        Ok(f) => f,
        Err(p) => return p.into_response(),
    };
    let file = f
        .files
        .lock()
        .ok()
        .and_then(|files| files.iter().find(|c| c.file_id == id).cloned());
    match file {
        Some(c) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/jsonl")],
            c.json_lines,
        )
            .into_response(),
        None => Problem::not_found("personalisation file").into_response(),
    }
}
