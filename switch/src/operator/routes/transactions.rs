//! `GET /transactions`: transaction search for operators and help desks, by RRN, terminal,
//! decision time window, response code, the PAN's last four digits (the PAN itself is never
//! a search key: it is stored only hashed and sealed) and the card's id (a card's history,
//! read by walking the card's chain of transactions, `store::sql::card_history`). Newest first, a page at a time (the
//! cursor is the last item's decision time and id). Only the transactions the caller's
//! institution took part in are found ([`crate::operator::Scope`]), filtered in the query.

use super::{json, PAGE_DEFAULT, PAGE_MAX};
use crate::http::{transaction_json, HttpState};
use crate::operator::problem::{store_failed, Problem};
use crate::operator::{Caller, Permission};
use crate::store::operator::TransactionSearch;
use crate::store::Store;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemas::domain::{ResponseCode, Rrn, TerminalId};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

/// `GET /transactions`.
pub async fn search<S: Store>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    search_inner(&st, &caller, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn search_inner<S: Store>(
    st: &HttpState<S>,
    caller: &Caller,
    query: Option<&str>,
) -> Result<Response, Problem> {
    caller.require(Permission::ViewTransactions)?;
    let mut q = parse(query)?;
    q.visible_to = caller.scope().only().cloned();
    let found = st
        .store
        .search_transactions(&q)
        .await
        .map_err(store_failed)?;
    let next = (found.len() == q.limit as usize)
        .then(|| {
            found
                .last()
                .map(|t| format!("{}_{}", t.record.decided_at_us, t.record.transaction_id.0))
        })
        .flatten();
    Ok(json(
        StatusCode::OK,
        &json!({
            "items": found.iter().map(transaction_json).collect::<Vec<_>>(),
            "next_cursor": next,
        }),
    ))
}

/// The search's query: each parameter at most once, each value checked.
pub fn parse(query: Option<&str>) -> Result<TransactionSearch, Problem> {
    let mut q = TransactionSearch {
        limit: PAGE_DEFAULT,
        ..TransactionSearch::default()
    };
    let mut seen = BTreeSet::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !seen.insert(name.to_string()) {
            return Err(Problem::invalid(format!("{name} comes at most once")));
        }
        let bad = |what: &str| Problem::invalid(format!("{name}: {what}"));
        match &*name {
            "rrn" => {
                Rrn::parse(&value).map_err(|_| bad("12 alphanumeric characters"))?;
                q.rrn = Some(value.into_owned());
            }
            "terminal" => {
                TerminalId::parse(&value).map_err(|_| bad("a terminal id (field 41)"))?;
                q.terminal_id = Some(value.into_owned());
            }
            "from_us" => q.from_us = Some(value.parse().map_err(|_| bad("microseconds"))?),
            "to_us" => q.to_us = Some(value.parse().map_err(|_| bad("microseconds"))?),
            "response_code" => {
                ResponseCode::parse(&value).map_err(|_| bad("two characters (field 39)"))?;
                q.response_code = Some(value.into_owned());
            }
            "pan_last4" => {
                if value.len() != 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("four digits"));
                }
                q.pan_last4 = Some(value.into_owned());
            }
            "card_id" => {
                q.card_id = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n: &i64| *n > 0)
                        .ok_or_else(|| bad("a card's id"))?,
                );
            }
            "cursor" => {
                let (us, id) = value
                    .split_once('_')
                    .and_then(|(us, id)| Some((us.parse().ok()?, Uuid::parse_str(id).ok()?)))
                    .ok_or_else(|| bad("the next_cursor of a previous page"))?;
                q.before = Some((us, id));
            }
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=PAGE_MAX).contains(n))
                    .ok_or_else(|| bad(&format!("a whole number from 1 to {PAGE_MAX}")))?;
            }
            _ => {
                return Err(Problem::invalid(
                    "the parameters are rrn, terminal, from_us, to_us, response_code, \
                     pan_last4, card_id, cursor and limit",
                ))
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_query_is_strict() {
        let q = parse(Some("rrn=000000000041&pan_last4=5678&limit=5")).unwrap();
        assert_eq!(parse(Some("card_id=42")).unwrap().card_id, Some(42));
        assert_eq!(q.rrn.as_deref(), Some("000000000041"));
        assert_eq!((q.pan_last4.as_deref(), q.limit), (Some("5678"), 5));
        for bad in [
            "rrn=1",
            "pan_last4=567",
            "pan_last4=622848001234",
            "limit=0",
            "limit=201",
            "from_us=x",
            "cursor=12",
            "response_code=123",
            "rrn=000000000041&rrn=000000000042",
            "pan=6228480012345678",
            "card_id=0",
            "card_id=x",
        ] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
