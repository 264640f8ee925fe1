//! Application batches, their import jobs, applications, photos and issuance: what an issuance
//! operator does before a card exists.

use super::*;

/// `POST /application-batches?batch_id=…[&reason=…]`: a CSV batch (UTF-8); 202 with the job,
/// which runs on (`GET /import-jobs/{id}`).
pub async fn import_batch<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ImportApplications) {
        return p.into_response();
    }
    let path = format!("/application-batches?{}", query.as_deref().unwrap_or(""));
    let who = caller.actor();
    idempotency::run(&*st.store, &who, &headers, &path, &body, || {
        import_inner(&st, &caller, query.as_deref(), body.clone())
    })
    .await
}

async fn import_inner<S: CmsStore>(
    st: &HttpState<S>,
    caller: &Caller,
    query: Option<&str>,
    body: Bytes,
) -> Result<Outcome, Problem> {
    let f = face(st)?;
    let (mut batch_id, mut reason) = (None, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "batch_id" if batch_id.is_none() => batch_id = Some(v.into_owned()),
            "reason" if reason.is_none() => reason = Some(v.into_owned()),
            _ => return Err(Problem::invalid("the parameters are batch_id and reason")),
        }
    }
    let batch_id = batch_id.ok_or_else(|| Problem::invalid("batch_id is required"))?;
    if body.len() > BATCH_LEN_MAX_BYTES {
        return Err(Problem::invalid(format!(
            "a batch is at most {BATCH_LEN_MAX_BYTES} bytes here; larger ones: switch applications import"
        )));
    }
    let reason = reason_of(reason, false)?;
    let reason = if reason.is_empty() {
        format!("batch {batch_id} uploaded")
    } else {
        reason
    };
    let job = f
        .service
        .start_import_by(Some(&caller.institution.institution_id), &batch_id, &body)
        .await
        .map_err(cms_problem)?;
    let answer = job_json(&job);
    let face = Arc::clone(f);
    let who = actor(caller, reason);
    tokio::spawn(async move {
        if let Err(e) = face.service.finish_import(&who, job, &body, &|_| {}).await {
            tracing::warn!(error = %e, "application batch import failed");
        }
    });
    Ok(Outcome::new(StatusCode::ACCEPTED, answer))
}

async fn seen_job<S: CmsStore>(
    st: &HttpState<S>,
    caller: &Caller,
    id: &str,
) -> Result<ImportJob, Problem> {
    caller.require(Permission::ViewCards)?;
    let f = face(st)?;
    let job_id = Uuid::parse_str(id).map_err(|_| Problem::not_found("import job"))?;
    let job = f.service.import_job(job_id).await.map_err(cms_problem)?;
    let seen = card_scope(f, caller) == CardScope::All
        || job.started_by.as_ref() == Some(&caller.institution.institution_id);
    if seen {
        Ok(job)
    } else {
        Err(Problem::not_found("import job"))
    }
}

/// `GET /import-jobs/{id}`: progress and per-row errors.
pub async fn import_job<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    match seen_job(&st, &caller, &id).await {
        Ok(job) => json(StatusCode::OK, &job_json(&job)),
        Err(p) => p.into_response(),
    }
}

/// `GET /import-jobs/{id}/errors`: the per-row error report as CSV (row, field, reason).
pub async fn import_errors<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let job = match seen_job(&st, &caller, &id).await {
        Ok(job) => job,
        Err(p) => return p.into_response(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut ok = w.write_record(["row", "field", "reason"]).is_ok();
    for e in &job.row_errors {
        ok &= w
            .write_record([e.row.to_string().as_str(), &e.field, &e.reason])
            .is_ok();
    }
    match (ok, w.into_inner()) {
        (true, Ok(bytes)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            bytes,
        )
            .into_response(),
        _ => Problem::unavailable().into_response(),
    }
}

/// `GET /applications/{id}`.
pub async fn application<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Response {
    let run = async {
        caller.require(Permission::ViewCards)?;
        let f = face(&st)?;
        let app = seen_application(f, &caller, id).await?;
        Ok::<_, Problem>(json(StatusCode::OK, &application_json(&app)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /applications[?batch_id=…][&citizen_id=…][&cursor=&limit=]`: the applications the
/// caller's institution sees (what became of a batch's rows, a person's applications).
pub async fn applications<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let run = async {
        caller.require(Permission::ViewCards)?;
        let f = face(&st)?;
        let q = list_query(query.as_deref(), &["batch_id", "citizen_id"])?;
        let scope = card_scope(f, &caller);
        let (bank, region) = match scope_filter(&scope) {
            Some(filter) => filter,
            None => return Ok(empty_page()),
        };
        let found = f
            .service
            .store()
            .search_applications(&ApplicationSearch {
                batch_id: q.get("batch_id"),
                citizen_id: q.get("citizen_id"),
                bank,
                region_prefix: region,
                after: q.after,
                limit: q.limit,
            })
            .await
            .map_err(|e| cms_problem(e.into()))?;
        let next = (found.len() == q.limit as usize)
            .then(|| found.last().map(|a| a.application_id.0.to_string()))
            .flatten();
        let items: Vec<Value> = found.iter().map(application_json).collect();
        Ok::<_, Problem>(json(
            StatusCode::OK,
            &json!({"items": items, "next_cursor": next}),
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `PUT /applications/{id}/photo`: the cardholder's JPEG (204).
pub async fn put_photo<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let run = async {
        caller.require(Permission::IssueCards)?;
        let f = face(&st)?;
        let app = seen_application(f, &caller, id).await?;
        f.service
            .attach_photo(
                &actor(&caller, "cardholder photo".into()),
                app.application_id,
                &body,
            )
            .await
            .map_err(cms_problem)?;
        Ok::<_, Problem>(StatusCode::NO_CONTENT.into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /applications/{id}/issue`: personalises the card into the open personalisation file
/// (one is opened when none is); 201 with the card.
pub async fn issue<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::IssueCards) {
        return p.into_response();
    }
    let path = format!("/applications/{id}/issue");
    let who = caller.actor();
    idempotency::run(&*st.store, &who, &headers, &path, &body, || async {
        let f = face(&st)?;
        let pin_body: PinBody = json_body(&body)?;
        let pin = pin_body.counter_pin(&caller_tpk(&st, f, &caller).await?)?;
        let reason = reason_of(pin_body.reason.clone(), false)?;
        let reason = if reason.is_empty() {
            "issuance".to_owned()
        } else {
            reason
        };
        let app = seen_application(f, &caller, id).await?;
        let mut open = f.batch.lock().await;
        if open.is_none() {
            *open = Some(f.service.open_perso_batch().await.map_err(cms_problem)?);
        }
        let Some(batch) = open.as_mut() else {
            return Err(Problem::unavailable());
        };
        let card = f
            .service
            .personalise(&actor(&caller, reason), batch, app.application_id, &pin)
            .await
            .map_err(cms_problem)?;
        let mut body = card_json(&card);
        body["perso_file_id"] = batch.content().header.file_id.clone().into();
        Ok(Outcome::new(StatusCode::CREATED, body))
    })
    .await
}
