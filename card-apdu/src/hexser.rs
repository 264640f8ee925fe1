//! Serde helpers: byte strings appear as upper-case hex in JSON output (`kiosk --json`), the form
//! card people read and paste into `scriptor`.

use serde::Serializer;

/// Serialises bytes as upper-case hex.
pub fn bytes<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode_upper(v))
}

/// Serialises optional bytes as upper-case hex or null.
pub fn opt<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&hex::encode_upper(b)),
        None => s.serialize_none(),
    }
}
