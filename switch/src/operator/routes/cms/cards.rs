//! Cards: search, detail with its ETag, the lifecycle operations (If-Match, reason),
//! replacement and the counter's PIN reset.

use super::*;

/// `GET /cards?citizen_id=…|pan_last4=…[&cursor=&limit=]`.
pub async fn cards<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    cards_inner(&st, &caller, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn cards_inner<S: CmsStore>(
    st: &HttpState<S>,
    caller: &Caller,
    query: Option<&str>,
) -> Result<Response, Problem> {
    caller.require(Permission::ViewCards)?;
    let f = face(st)?;
    let q = list_query(query, &["citizen_id", "pan_last4"])?;
    if let Some(c) = q.get("citizen_id") {
        if c.len() != 18 || !c.bytes().all(|b| b.is_ascii_digit() || b == b'X') {
            return Err(Problem::invalid("citizen_id is 18 characters (GB 11643)"));
        }
    }
    if let Some(d) = q.get("pan_last4") {
        if d.len() != 4 || !d.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Problem::invalid("pan_last4 is four digits"));
        }
    }
    let scope = card_scope(f, caller);
    let Some((bank, region)) = scope_filter(&scope) else {
        return Ok(empty_page());
    };
    let found = f
        .service
        .store()
        .search_cards(&CardSearch {
            citizen_id: q.get("citizen_id"),
            pan_last4: q.get("pan_last4"),
            bank,
            region_prefix: region,
            after: q.after,
            limit: q.limit,
        })
        .await
        .map_err(|e| cms_problem(e.into()))?;
    let next = (found.len() == q.limit as usize)
        .then(|| found.last().map(|(c, _)| c.card_id.0.to_string()))
        .flatten();
    let items: Vec<Value> = found.iter().map(|(c, _)| card_json(c)).collect();
    Ok(json(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": next}),
    ))
}

/// `GET /cards/{id}` with `ETag: "<version>"`.
pub async fn card<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Response {
    let run = async {
        caller.require(Permission::ViewCards)?;
        let f = face(&st)?;
        let card = seen_card(f, &caller, id).await?;
        Ok::<_, Problem>(with_etag(
            json(StatusCode::OK, &card_json(&card)),
            card.version,
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// The operation of `POST /cards/{id}/{operation}` and the permission it needs.
pub fn operation(name: &str) -> Option<(CardOperation, Permission)> {
    Some(match name {
        "hand-over" => (CardOperation::HandOver, Permission::ActivateCard),
        "activate" => (CardOperation::Activate, Permission::ActivateCard),
        "suspend" => (CardOperation::Suspend, Permission::SuspendCard),
        "lift-suspension" => (CardOperation::Lift, Permission::SuspendCard),
        "block" => (CardOperation::Block, Permission::SuspendCard),
        "report-lost" => (CardOperation::ReportLost, Permission::ReportCardLost),
        "report-stolen" => (CardOperation::ReportStolen, Permission::ReportCardLost),
        "unblock" => (CardOperation::Unblock, Permission::UnblockCard),
        "close" => (CardOperation::Close, Permission::CloseCard),
        _ => return None,
    })
}

/// `POST /cards/{id}/{operation}` with `If-Match` and `{"reason": …}`.
pub async fn card_operation<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path((id, name)): Path<(i64, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((op, permission)) = operation(&name) else {
        return Problem::not_found("card operation").into_response();
    };
    if let Err(p) = caller.require(permission) {
        return p.into_response();
    }
    let path = format!("/cards/{id}/{name}");
    let who = caller.actor();
    let changed = Mutex::new(None);
    let r = idempotency::run(&*st.store, &who, &headers, &path, &body, || async {
        let f = face(&st)?;
        let card = seen_card(f, &caller, id).await?;
        let version = if_match(&headers)?;
        let reason = reason_of(json_body::<ReasonBody>(&body)?.reason, true)?;
        let card = f
            .service
            .apply(&actor(&caller, reason), card.card_id, op, Some(version))
            .await
            .map_err(cms_problem)?;
        if let Ok(mut v) = changed.lock() {
            *v = Some(card.version);
        }
        Ok(Outcome::new(StatusCode::OK, card_json(&card)))
    })
    .await;
    etag_of_change(r, &changed)
}

/// The new version as the answer's ETag, when this request made the change (a replayed answer
/// carries none: read the card again).
fn etag_of_change(r: Response, changed: &Mutex<Option<i64>>) -> Response {
    match changed.lock().ok().and_then(|v| *v) {
        Some(version) if r.status().is_success() => with_etag(r, version),
        _ => r,
    }
}

/// `POST /cards/{id}/replace` with `If-Match`, a reason and the new card's PIN block: the new
/// card goes into the open personalisation file; 201 with both cards.
pub async fn replace<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ReplaceCard) {
        return p.into_response();
    }
    let path = format!("/cards/{id}/replace");
    let who = caller.actor();
    idempotency::run(&*st.store, &who, &headers, &path, &body, || async {
        let f = face(&st)?;
        let card = seen_card(f, &caller, id).await?;
        let version = if_match(&headers)?;
        let pin_body: PinBody = json_body(&body)?;
        let pin = pin_body.counter_pin(&caller_tpk(&st, f, &caller).await?)?;
        let reason = reason_of(pin_body.reason.clone(), true)?;
        let mut open = f.batch.lock().await;
        if open.is_none() {
            *open = Some(f.service.open_perso_batch().await.map_err(cms_problem)?);
        }
        let Some(batch) = open.as_mut() else {
            return Err(Problem::unavailable());
        };
        let (old, new) = f
            .service
            .replace(
                &actor(&caller, reason),
                batch,
                card.card_id,
                Some(version),
                &pin,
            )
            .await
            .map_err(cms_problem)?;
        Ok(Outcome::new(
            StatusCode::CREATED,
            json!({"old": card_json(&old), "new": card_json(&new),
                   "perso_file_id": batch.content().header.file_id}),
        ))
    })
    .await
}

/// `POST /cards/{id}/pin-reset` with `If-Match`, a reason and the PIN block from the
/// counter's PIN pad.
pub async fn pin_reset<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = caller.require(Permission::ResetPin) {
        return p.into_response();
    }
    let path = format!("/cards/{id}/pin-reset");
    let who = caller.actor();
    let changed = Mutex::new(None);
    let r = idempotency::run(&*st.store, &who, &headers, &path, &body, || async {
        let f = face(&st)?;
        let card = seen_card(f, &caller, id).await?;
        let version = if_match(&headers)?;
        let pin_body: PinBody = json_body(&body)?;
        let pin = pin_body.counter_pin(&caller_tpk(&st, f, &caller).await?)?;
        let reason = reason_of(pin_body.reason.clone(), true)?;
        let card = f
            .service
            .reset_pin(&actor(&caller, reason), card.card_id, Some(version), &pin)
            .await
            .map_err(cms_problem)?;
        if let Ok(mut v) = changed.lock() {
            *v = Some(card.version);
        }
        Ok(Outcome::new(StatusCode::OK, card_json(&card)))
    })
    .await;
    etag_of_change(r, &changed)
}
