//! Network management on the bank's side (0800/0810): sign-on, sign-off, echo, and the key
//! exchange, whose ZPK (and TAK) it imports under its ZMK and makes current only when every
//! check value matches.

use std::sync::atomic::Ordering;

use hsm_sim::keys::{KeyScheme, KeyToken, KeyType, Tak, TypedKey, Zpk};
use schemas::iso8583::{Message, OwnedMessage};

use super::respond::reply;
use super::{lock, Shared};
use crate::wire::network::{KeyExchangeField, KeyUnderZmk, NetworkCode};

pub(super) async fn network<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let code = msg.get_str(70).ok().and_then(|c| NetworkCode::parse(&c));
    let c = &shared.counters;
    let rc = match code {
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
    reply(msg, rc)
}

/// Imports a key of a key exchange under the ZMK; its LMK token when the check value matches.
async fn import_key(shared: &Shared, key_type: KeyType, sent: &KeyUnderZmk) -> Option<KeyToken> {
    let key = shared
        .hsm
        .import_key(
            key_type,
            &shared.config.keys.zmk,
            &sent.under_zmk,
            KeyScheme::U,
        )
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
    let Some(zpk) = import_key(shared, KeyType::Zpk, &field.zpk).await else {
        return false;
    };
    let tak = match &field.tak {
        Some(sent) => match import_key(shared, KeyType::Tak, sent).await {
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
