//! Network management on the bank's side (0800/0810): sign-on, sign-off, echo, and the key
//! exchange, whose ZPK (and TAK) it imports under its ZMK and makes current only when every
//! check value matches.
//!
//! A bank with MACs holds the switch to its own MAC algorithm: a sign-on or key exchange whose
//! field 48 says another (`MAL`, absent meaning `x9.19`) is answered 63 (security violation),
//! counted and logged, and the 0810 of a sign-on or key exchange always says the bank's own, so
//! the switch learns why ([`crate::wire::network`]).

use std::sync::atomic::Ordering;

use hsm_sim::keys::{KeyScheme, KeyToken, KeyType, Tak, TypedKey, Zpk};
use schemas::iso8583::{Message, OwnedMessage};

use super::respond::reply;
use super::{lock, Shared};
use crate::wire::mac::LinkMacAlgorithm;
use crate::wire::network::{
    mac_algorithm_field, mac_algorithm_of, KeyExchangeField, KeyUnderZmk, NetworkCode,
};

/// The answer to a sign-on or key exchange that names another MAC algorithm than the bank's.
const MAC_ALGORITHM_REFUSED: &str = "63";

pub(super) async fn network<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let code = msg.get_str(70).ok().and_then(|c| NetworkCode::parse(&c));
    let c = &shared.counters;
    let rc = match code {
        Some(NetworkCode::SignOn) if !agrees_on_mac_algorithm(shared, msg) => MAC_ALGORITHM_REFUSED,
        Some(NetworkCode::SignOn) => {
            c.sign_ons.fetch_add(1, Ordering::Relaxed);
            "00"
        }
        Some(NetworkCode::SignOff) => {
            c.sign_offs.fetch_add(1, Ordering::Relaxed);
            "00"
        }
        Some(NetworkCode::Echo) => {
            c.echoes.fetch_add(1, Ordering::Relaxed);
            "00"
        }
        Some(NetworkCode::KeyExchange) if !agrees_on_mac_algorithm(shared, msg) => {
            MAC_ALGORITHM_REFUSED
        }
        Some(NetworkCode::KeyExchange) => {
            if import_keys(shared, msg).await {
                c.key_exchanges.fetch_add(1, Ordering::Relaxed);
                "00"
            } else {
                "30"
            }
        }
        None => "12",
    };
    let mut answer = reply(msg, rc)?;
    if shared.config.mac && matches!(code, Some(NetworkCode::SignOn | NetworkCode::KeyExchange)) {
        answer
            .set_str(48, &mac_algorithm_field(shared.config.mac_algorithm))
            .ok()?;
    }
    Some(answer)
}

/// Whether the MAC algorithm field 48 says (absent: `x9.19`) is the bank's; always true for a
/// bank without MACs. A disagreement is counted and logged.
fn agrees_on_mac_algorithm(shared: &Shared, msg: &Message<'_>) -> bool {
    if !shared.config.mac {
        return true;
    }
    let ours = shared.config.mac_algorithm;
    let theirs = match msg.get_str(48) {
        Ok(f) => mac_algorithm_of(&f),
        Err(_) => Ok(None),
    };
    match theirs {
        Ok(t) if t.unwrap_or(LinkMacAlgorithm::X919) == ours => true,
        said => {
            shared
                .counters
                .mac_algorithm_mismatches
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(bank = %shared.config.institution, bank_mac_algorithm = %ours,
                switch_says = ?said, "MAC algorithm mismatch: sign-on or key exchange refused");
            false
        }
    }
}

/// Imports a key of a key exchange under the ZMK as a key of `scheme` (a key of another
/// scheme is refused by the HSM); its LMK token when the check value matches.
async fn import_key(
    shared: &Shared,
    key_type: KeyType,
    scheme: KeyScheme,
    sent: &KeyUnderZmk,
) -> Option<KeyToken> {
    let key = shared
        .hsm
        .import_key(key_type, &shared.config.keys.zmk, &sent.under_zmk, scheme)
        .await
        .ok()?;
    let kcv: String = key.check_value.iter().map(|b| format!("{b:02X}")).collect();
    kcv.eq_ignore_ascii_case(&sent.kcv).then_some(key.token)
}

/// Imports the ZPK (and the TAK, when sent) of a key exchange and makes them current when
/// every check value matches; otherwise nothing changes.
async fn import_keys(shared: &Shared, msg: &Message<'_>) -> bool {
    let Some(field) = msg
        .get_str(48)
        .ok()
        .and_then(|f| KeyExchangeField::decode(&f).ok())
    else {
        return false;
    };
    let Some(zpk) = import_key(shared, KeyType::Zpk, KeyScheme::U, &field.zpk).await else {
        return false;
    };
    let tak_scheme = shared.config.mac_algorithm.key_scheme();
    let tak = match &field.tak {
        Some(sent) => match import_key(shared, KeyType::Tak, tak_scheme, sent).await {
            Some(t) => Some(t),
            None => return false,
        },
        None => None,
    };
    let mut keys = lock(&shared.keys);
    keys.zpk.rotate(Zpk::from_token(zpk));
    if let Some(t) = tak {
        keys.tak.rotate(Tak::from_token(t));
    }
    true
}
