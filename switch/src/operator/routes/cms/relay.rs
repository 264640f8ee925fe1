//! The card relay on the operator API: an operator at a job centre has the switch unblock a
//! card's SSSE PIN, or rewrite one of its EF06 (cardholder) records, on the card in a kiosk's
//! reader ([`crate::cms::card_relay`]).
//!
//! The kiosk is named by its terminal id and must be configured (`[[cms.kiosk]]`): its relay
//! address and its institution (whose TAK keys the relay) come from the configuration, never
//! from the request. The card must be one the caller's institution sees (else 404).
//!
//! These routes take no `Idempotency-Key`: each request drives the card once, and the PIN
//! unblock's body carries the new PIN, which the switch keeps nowhere (no stored answer, no
//! hash of the body). The PIN is in the request in clear because the SSSE PIN UNBLOCK of the
//! card (`84 2C`, [`hsm_sim::card_crypto::ssse_pin_unblock_mac`]) carries it in clear: whoever
//! builds the command sees it. It is held in a [`ClearPin`] (wiped on drop), never logged nor
//! audited.

use super::*;
use crate::cms::card_relay::{CardRelayError, RelayAction, RelayDone};
use hsm_sim::card_crypto::ClearPin;

/// `POST /cards/{id}/ssse-pin-unblock`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinUnblockBody {
    /// The kiosk's terminal id.
    terminal: String,
    /// The new PIN, 4 to 12 digits.
    new_pin: String,
    /// Why.
    reason: Option<String>,
}

/// `POST /cards/{id}/records/ef06`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ef06Body {
    /// The kiosk's terminal id.
    terminal: String,
    /// The record's identifier, two hexadecimal digits (`08`–`0D`).
    record: String,
    /// Its new value, hexadecimal (the record's whole fixed-length value).
    value_hex: String,
    /// Why.
    reason: Option<String>,
}

/// EF06's records (`card_apdu::tags::ssse`): social security number, name, sex, ethnicity,
/// birthplace, birth date.
const EF06_RECORDS: std::ops::RangeInclusive<u8> = 0x08..=0x0D;

/// `POST /cards/{id}/ssse-pin-unblock` with `{"terminal", "new_pin", "reason"}`.
pub async fn ssse_pin_unblock<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let run = async {
        caller.require(Permission::DriveCardAtKiosk)?;
        let mut b: PinUnblockBody = json_body(&body)?;
        let pin = ClearPin::new(&b.new_pin);
        zeroize::Zeroize::zeroize(&mut b.new_pin);
        let pin = pin.map_err(|_| Problem::invalid("new_pin is 4 to 12 digits"))?;
        let reason = reason_of(b.reason.take(), true)?;
        relay(
            &st,
            &caller,
            id,
            &b.terminal,
            reason,
            RelayAction::PinUnblock(pin),
        )
        .await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /cards/{id}/records/ef06` with `{"terminal", "record", "value_hex", "reason"}`.
pub async fn ef06_record<S: CmsStore>(
    State(st): State<Arc<HttpState<S>>>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let run = async {
        caller.require(Permission::DriveCardAtKiosk)?;
        let b: Ef06Body = json_body(&body)?;
        let record = u8::from_str_radix(&b.record, 16)
            .ok()
            .filter(|r| b.record.len() == 2 && EF06_RECORDS.contains(r))
            .ok_or_else(|| Problem::invalid("record is an EF06 record identifier, 08 to 0D"))?;
        let value = hex::decode(&b.value_hex)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Problem::invalid("value_hex is the record's value in hexadecimal"))?;
        let reason = reason_of(b.reason, true)?;
        let action = RelayAction::UpdateEf06 { record, value };
        relay(&st, &caller, id, &b.terminal, reason, action).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn relay<S: CmsStore>(
    st: &HttpState<S>,
    caller: &Caller,
    id: i64,
    terminal: &str,
    reason: String,
    action: RelayAction,
) -> Result<Response, Problem> {
    let f = face(st)?;
    let card = seen_card(f, caller, id).await?;
    let relay = f.card_relay.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "card-relay-not-configured",
            "Card relay not configured",
            "this node drives no card at a kiosk (no [[cms.kiosk]])",
        )
    })?;
    let done = relay
        .run(
            &**f.service.store(),
            &actor(caller, reason),
            card.card_id,
            terminal,
            action,
        )
        .await
        .map_err(relay_problem)?;
    let body = match done {
        RelayDone::PinUnblocked { tries_left } => {
            json!({"card_id": card.card_id.0, "pin_unblocked": true, "pin_tries_left": tries_left})
        }
        RelayDone::RecordUpdated { record } => {
            json!({"card_id": card.card_id.0, "record": format!("{record:02X}"), "updated": true})
        }
    };
    Ok(json(StatusCode::OK, &body))
}

/// A card relay error as a problem: its HTTP status and a stable type per kind.
fn relay_problem(e: CardRelayError) -> Problem {
    let (kind, title) = match &e {
        CardRelayError::UnknownKiosk(_) | CardRelayError::Invalid(_) => {
            return Problem::invalid(e.to_string())
        }
        CardRelayError::NoCard => return Problem::not_found("card"),
        CardRelayError::CardNotUsable(_) => ("card-not-usable", "Card may not be used"),
        CardRelayError::CardIncomplete(_) => ("card-incomplete", "Card record incomplete"),
        CardRelayError::NotTheCard => ("not-the-card", "Another card is in the reader"),
        CardRelayError::Relay(_) => ("kiosk-relay-failed", "Kiosk relay failed"),
        CardRelayError::CardRefused { .. } | CardRelayError::Card(_) => {
            ("card-refused", "The card refused")
        }
        CardRelayError::NoRelayKey | CardRelayError::NoCardKey(_) => {
            ("card-relay-key-missing", "Key not configured")
        }
        CardRelayError::Hsm(_) => ("hsm-unavailable", "HSM unavailable"),
        CardRelayError::Store(_) => return Problem::unavailable(),
        CardRelayError::Timeout(_) => ("kiosk-relay-timeout", "Kiosk relay timed out"),
    };
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Problem::new(status, kind, title, e.to_string())
}
