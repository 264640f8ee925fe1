//! Request fields the client writes and reply fields it reads, in the layouts of
//! [`crate::commands`].

use crate::card_crypto::CardAlgorithm;
use crate::error::HsmError;
use crate::hsm::ScriptContext;
use crate::keys::{KeyToken, PinKey};
use crate::transport_key::{PublicKey, PUBLIC_KEY_LEN, SEALED_KEY_LEN};

pub(super) fn alg_char(a: CardAlgorithm) -> char {
    match a {
        CardAlgorithm::Tdes => 'T',
        CardAlgorithm::Sm4 => 'S',
    }
}

pub(super) fn pan_field(pan: &str, psn: &str) -> Result<String, HsmError> {
    if pan.is_empty() || pan.len() > 19 {
        return Err(HsmError::InvalidAccount);
    }
    let psn2 = match psn.len() {
        0 => "00".to_string(),
        1 => format!("0{psn}"),
        n => psn.get(n - 2..).ok_or(HsmError::InvalidInput)?.to_string(),
    };
    Ok(format!("{:02}{pan}{psn2}", pan.len()))
}

pub(super) fn script_fields(ctx: &ScriptContext) -> Result<String, HsmError> {
    Ok(format!(
        "{}{}{}",
        pan_field(&ctx.pan, &ctx.psn)?,
        hex::encode_upper(ctx.atc),
        hex::encode_upper(ctx.arqc)
    ))
}

pub(super) fn pin_key_fields(key: &PinKey) -> String {
    let (kt, tok) = key.parts();
    format!("{}{}", kt.code(), tok)
}

pub(super) fn parse_kcv(s: &str) -> Result<[u8; 3], HsmError> {
    let mut k = [0u8; 3];
    hex::decode_to_slice(s, &mut k).map_err(|_| HsmError::InvalidInput)?;
    Ok(k)
}

pub(super) fn split_token_kcv(s: &str) -> Result<(KeyToken, Option<String>, [u8; 3]), HsmError> {
    let (tok, used) = KeyToken::parse_prefix(s.as_bytes())?;
    let rest = s.get(used..).ok_or(HsmError::InvalidInput)?;
    let (under, kcv) = key_and_kcv(rest)?;
    Ok((tok, (!under.is_empty()).then(|| under.to_string()), kcv))
}

/// A reply ending in a 6-character KCV: what precedes it (a key under a ZMK, possibly empty)
/// and the KCV. Cut with checked splits: a reply of any bytes gives an error, never a panic.
pub(super) fn key_and_kcv(s: &str) -> Result<(&str, [u8; 3]), HsmError> {
    let at = s.len().checked_sub(6).ok_or(HsmError::InvalidInput)?;
    let (key, kcv) = s.split_at_checked(at).ok_or(HsmError::InvalidInput)?;
    Ok((key, parse_kcv(kcv)?))
}

/// An XS/XW reply: the HSM's public key, the sealed data key and what follows (the token for
/// XS, nothing for XW).
pub(super) fn sealed_key_reply(s: &str) -> Result<(PublicKey, Vec<u8>, &str), HsmError> {
    let (public_hex, rest) = s
        .split_at_checked(2 * PUBLIC_KEY_LEN)
        .ok_or(HsmError::InvalidInput)?;
    let (sealed_hex, rest) = rest
        .split_at_checked(2 * SEALED_KEY_LEN)
        .ok_or(HsmError::InvalidInput)?;
    let mut public = [0u8; PUBLIC_KEY_LEN];
    hex::decode_to_slice(public_hex, &mut public).map_err(|_| HsmError::InvalidInput)?;
    let sealed = hex::decode(sealed_hex).map_err(|_| HsmError::InvalidInput)?;
    Ok((public, sealed, rest))
}
