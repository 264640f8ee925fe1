//! Key-management commands: generate, form, import, export and check keys (A0, A4, A6, A8,
//! BU), derive card keys for personalisation (XQ), and data keys sealed for transport (XS, XW).

use super::{alg, kcv_hex, key_type, pan_psn, scheme, typed};
use crate::codec::Fields;
use crate::error::HsmError;
use crate::hsm::{CardKeyDerivation, CardMasterKey, Hsm, SsseCardRef};
use crate::keys::{
    DataKeyToken, ImkAc, ImkSmc, ImkSmi, KeyScheme, KeyType, SsseExternalAuthKey,
    SsseInternalAuthKey, SssePinUnblockKey, TypedKey, Zek, Zmk,
};
use crate::soft::SoftHsm;
use crate::transport_key::{seal_for, PUBLIC_KEY_LEN};

pub(super) async fn a0(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let mode = f.take(1)?;
    let kt = key_type(f)?;
    let sch = scheme(f)?;
    let zmk: Option<Zmk> = match mode {
        b"0" => None,
        b"1" => {
            let z = typed(f)?;
            let _zmk_scheme = scheme(f)?;
            Some(z)
        }
        _ => return Err(HsmError::InvalidInput),
    };
    let g = hsm.generate_key(kt, sch, zmk.as_ref()).await?;
    let mut out = g.token.to_string();
    if let Some(u) = g.under_zmk {
        out.push_str(&u);
    }
    out.push_str(&kcv_hex(g.check_value));
    Ok(out.into_bytes())
}

pub(super) async fn a4(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let n = f.number(1)?;
    let kt = key_type(f)?;
    let sch = scheme(f)?;
    let mut comps = Vec::with_capacity(n);
    for _ in 0..n {
        comps.push(f.token()?);
    }
    let g = hsm.form_key_from_components(kt, sch, &comps).await?;
    Ok(format!("{}{}", g.token, kcv_hex(g.check_value)).into_bytes())
}

pub(super) async fn a6(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let kt = key_type(f)?;
    let zmk: Zmk = typed(f)?;
    // A key under a ZMK has no LMK tag, so its length follows from its scheme alone (an SM4
    // or AES key is as long as a 3DES one: `G`/`A` + 32 hex digits).
    let first = *f.rest_peek().first().ok_or(HsmError::InvalidInput)?;
    let used = KeyScheme::from_char(char::from(first))?.under_zmk_text_len();
    let under_text = f.text(used)?.to_string();
    let sch = scheme(f)?;
    let g = hsm.import_key(kt, &zmk, &under_text, sch).await?;
    Ok(format!("{}{}", g.token, kcv_hex(g.check_value)).into_bytes())
}

pub(super) async fn a8(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let kt = key_type(f)?;
    let zmk: Zmk = typed(f)?;
    let key = f.token()?;
    let sch = scheme(f)?;
    let (under, kcv) = hsm.export_key(kt, &zmk, &key, sch).await?;
    Ok(format!("{under}{}", kcv_hex(kcv)).into_bytes())
}

pub(super) async fn bu(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    if f.take(2)? != b"FF" {
        return Err(HsmError::InvalidKeyTypeCode);
    }
    let flag = f.take(1)?;
    if !matches!(flag, b"1" | b"2") {
        return Err(HsmError::InvalidKeyLengthFlag);
    }
    let key = f.token()?;
    if !f.eat(b';') {
        return Err(HsmError::InvalidInput);
    }
    let kt = key_type(f)?;
    Ok(kcv_hex(hsm.key_check_value(kt, &key).await?).into_bytes())
}

/// XQ (`under_zek` false: the key under a ZMK) and XT (true: under a transport ZEK).
pub(super) async fn xq(
    hsm: &SoftHsm,
    f: &mut Fields<'_>,
    under_zek: bool,
) -> Result<Vec<u8>, HsmError> {
    let kt = key_type(f)?;
    let t = f.token()?;
    let master = match kt {
        KeyType::ImkAc => CardMasterKey::ImkAc(ImkAc::from_token(t)),
        KeyType::ImkSmi => CardMasterKey::ImkSmi(ImkSmi::from_token(t)),
        KeyType::ImkSmc => CardMasterKey::ImkSmc(ImkSmc::from_token(t)),
        KeyType::SsseInternalAuth => {
            CardMasterKey::SsseInternalAuth(SsseInternalAuthKey::from_token(t))
        }
        KeyType::SsseExternalAuth => {
            CardMasterKey::SsseExternalAuth(SsseExternalAuthKey::from_token(t))
        }
        KeyType::SssePinUnblock => CardMasterKey::SssePinUnblock(SssePinUnblockKey::from_token(t)),
        KeyType::SsseLineProtection => {
            CardMasterKey::SsseLineProtection(crate::keys::SsseLineProtectionKey::from_token(t))
        }
        _ => return Err(HsmError::InvalidKeyType),
    };
    let kind = f.take(1)?[0];
    let algorithm = alg(f)?;
    let derivation = match kind {
        b'E' => {
            let (pan, psn) = pan_psn(f)?;
            CardKeyDerivation::Emv {
                algorithm,
                pan,
                psn,
            }
        }
        b'S' => CardKeyDerivation::Ssse(SsseCardRef {
            algorithm,
            city_code: f.text(6)?.to_string(),
            card_id: f.text(32)?.to_string(),
        }),
        _ => return Err(HsmError::InvalidInput),
    };
    let (under, kcv) = if under_zek {
        let zek: Zek = typed(f)?;
        hsm.derive_card_key_under_zek(&master, &derivation, &zek)
            .await?
    } else {
        let zmk: Zmk = typed(f)?;
        hsm.derive_card_key_under_zmk(&master, &derivation, &zmk)
            .await?
    };
    Ok(format!("{under}{}", kcv_hex(kcv)).into_bytes())
}

/// XS: a new data key sealed for the caller's transport key, and its LMK token (the token text
/// is the seal's associated data).
pub(super) fn xs(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let caller = f.hex_array::<PUBLIC_KEY_LEN>()?;
    let (clear, token) = hsm.new_data_key()?;
    let token_text = token.to_string();
    let (hsm_public, sealed) = seal_for(&caller, clear.bytes(), token_text.as_bytes())?;
    Ok(format!(
        "{}{}{token_text}",
        hex::encode_upper(hsm_public),
        hex::encode_upper(sealed)
    )
    .into_bytes())
}

/// XW: a stored data key sealed for the caller's transport key.
pub(super) fn xw(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let token: DataKeyToken = typed(f)?;
    let caller = f.hex_array::<PUBLIC_KEY_LEN>()?;
    let clear = hsm.data_key_clear(&token)?;
    let (hsm_public, sealed) = seal_for(&caller, clear.bytes(), token.to_string().as_bytes())?;
    Ok(format!(
        "{}{}",
        hex::encode_upper(hsm_public),
        hex::encode_upper(sealed)
    )
    .into_bytes())
}
