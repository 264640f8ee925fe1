//! Card and message commands: CVV (CW, CY), ARQC/ARPC (KQ, XA), issuer scripts (XC, XE), SSSE
//! card authentication (XG, XI, XU, XR) and MACs (M6, M8).

use zeroize::Zeroize;

use super::{alg, block16, format, key_type, pan_psn, pin_key, typed, verified};
use crate::card_crypto::CardAlgorithm;
use crate::codec::Fields;
use crate::cvv::CvvKind;
use crate::error::HsmError;
use crate::hsm::{ArpcMethod, ArqcRequest, Hsm, PinBlockIn, ScriptContext, SsseCardRef};
use crate::keys::{
    Cvk, ImkAc, ImkSmc, ImkSmi, KeyType, MacKey, SsseExternalAuthKey, SsseInternalAuthKey,
    SsseLineProtectionKey, SssePinUnblockKey, Tak, TypedKey, Zak,
};
use crate::mac::{MacAlgorithm, MacPadding};
use crate::soft::SoftHsm;

pub(super) async fn cvv(
    hsm: &SoftHsm,
    command: [u8; 2],
    f: &mut Fields<'_>,
) -> Result<Vec<u8>, HsmError> {
    let cvk: Cvk = typed(f)?;
    let given = if &command == b"CY" {
        Some(f.text(3)?.to_string())
    } else {
        None
    };
    let pan = f.until(b';')?.to_string();
    let expiry = f.text(4)?.to_string();
    let sc = f.text(3)?.to_string();
    match given {
        Some(c) => verified(
            hsm.verify_cvv(&cvk, CvvKind::Cvv, &pan, &expiry, &sc, &c)
                .await?,
        ),
        None => Ok(hsm
            .generate_cvv(&cvk, CvvKind::Cvv, &pan, &expiry, &sc)
            .await?
            .into_bytes()),
    }
}

pub(super) async fn kq(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let mode = f.take(1)?[0];
    let algorithm = match f.take(1)? {
        b"1" => CardAlgorithm::Tdes,
        b"S" => CardAlgorithm::Sm4,
        _ => return Err(HsmError::Other("05".into())),
    };
    let imk: ImkAc = typed(f)?;
    let y = f.take(8)?;
    let y_digits = hex::encode_upper(y);
    if !y_digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HsmError::InvalidAccount);
    }
    let atc: [u8; 2] = f.take(2)?.try_into().map_err(|_| HsmError::InvalidInput)?;
    let _un = f.take(4)?;
    let len = f.hex_number(2)?;
    if len == 0 {
        return Err(HsmError::Other("81".into()));
    }
    let data = f.take(len)?.to_vec();
    if !f.eat(b';') {
        return Err(HsmError::InvalidInput);
    }
    let arqc: [u8; 8] = f.take(8)?.try_into().map_err(|_| HsmError::InvalidInput)?;
    let arpc = match mode {
        b'0' => ArpcMethod::None,
        b'1' | b'2' => {
            let arc: [u8; 2] = f.take(2)?.try_into().map_err(|_| HsmError::InvalidInput)?;
            ArpcMethod::Method1 { arc }
        }
        _ => return Err(HsmError::Other("04".into())),
    };
    let req = ArqcRequest {
        algorithm,
        imk_ac: imk,
        pan: y_digits[..14].to_string(),
        psn: y_digits[14..].to_string(),
        atc,
        transaction_data: data,
        arqc,
        arpc,
    };
    let out = hsm.verify_arqc_and_generate_arpc(&req).await?;
    if !out.verified && mode != b'2' {
        return Err(HsmError::VerificationFailed);
    }
    Ok(out.arpc.unwrap_or_default())
}

pub(super) async fn mac(
    hsm: &SoftHsm,
    command: [u8; 2],
    f: &mut Fields<'_>,
) -> Result<Vec<u8>, HsmError> {
    if f.take(1)? != b"0" {
        return Err(HsmError::Other("02".into()));
    }
    let hex_input = match f.take(1)? {
        b"0" => false,
        b"1" => true,
        _ => return Err(HsmError::Other("03".into())),
    };
    let size = match f.take(1)? {
        b"0" => 4,
        b"1" => 8,
        b"2" => 16,
        _ => return Err(HsmError::InvalidInput),
    };
    let algorithm =
        MacAlgorithm::from_code(f.take(1)?[0]).map_err(|_| HsmError::Other("04".into()))?;
    let padding = MacPadding::from_code(f.take(1)?[0]).map_err(|_| HsmError::Other("09".into()))?;
    let key = match key_type(f)? {
        KeyType::Tak => MacKey::Tak(Tak::from_token(f.token()?)),
        KeyType::Zak => MacKey::Zak(Zak::from_token(f.token()?)),
        _ => return Err(HsmError::InvalidKeyType),
    };
    let len = f.hex_number(4)?;
    let data = if hex_input {
        f.hex_bytes(len / 2)?
    } else {
        f.take(len)?.to_vec()
    };
    if &command == b"M6" {
        let m = hsm.generate_mac(&key, algorithm, padding, &data).await?;
        let m = m.get(..size).ok_or(HsmError::InvalidInput)?;
        Ok(hex::encode_upper(m).into_bytes())
    } else {
        let given = f.hex_bytes(size)?;
        verified(
            hsm.verify_mac(&key, algorithm, padding, &data, &given)
                .await?,
        )
    }
}

pub(super) async fn xa(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let algorithm = alg(f)?;
    let method = f.take(1)?[0];
    let imk: ImkAc = typed(f)?;
    let (pan, psn) = pan_psn(f)?;
    let atc = f.hex_array::<2>()?;
    let len = f.hex_number(4)?;
    let data = f.hex_bytes(len)?;
    let arqc = f.hex_array::<8>()?;
    let arpc = match method {
        b'0' => ArpcMethod::None,
        b'1' => ArpcMethod::Method1 {
            arc: f.hex_array::<2>()?,
        },
        b'2' => {
            let csu = f.hex_array::<4>()?;
            let n = f.number(1)?;
            if n > 8 {
                return Err(HsmError::InvalidInput);
            }
            let mut proprietary = [0u8; 8];
            proprietary[..n].copy_from_slice(&f.hex_bytes(n)?);
            ArpcMethod::Method2 {
                csu,
                proprietary_len: n as u8,
                proprietary,
            }
        }
        _ => return Err(HsmError::InvalidInput),
    };
    let req = ArqcRequest {
        algorithm,
        imk_ac: imk,
        pan,
        psn,
        atc,
        transaction_data: data,
        arqc,
        arpc,
    };
    let out = hsm.verify_arqc_and_generate_arpc(&req).await?;
    if !out.verified {
        return Err(HsmError::VerificationFailed);
    }
    Ok(hex::encode_upper(out.arpc.unwrap_or_default()).into_bytes())
}

pub(super) fn script_ctx(
    algorithm: CardAlgorithm,
    f: &mut Fields<'_>,
) -> Result<ScriptContext, HsmError> {
    let (pan, psn) = pan_psn(f)?;
    let atc = f.hex_array::<2>()?;
    let arqc = f.hex_array::<8>()?;
    Ok(ScriptContext {
        algorithm,
        pan,
        psn,
        atc,
        arqc,
    })
}

pub(super) async fn xc(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let algorithm = alg(f)?;
    let smi: ImkSmi = typed(f)?;
    let ctx = script_ctx(algorithm, f)?;
    let header = f.hex_array::<5>()?;
    let len = f.hex_number(4)?;
    let data = f.hex_bytes(len)?;
    Ok(hex::encode_upper(hsm.issuer_script_mac(&smi, &ctx, header, &data).await?).into_bytes())
}

pub(super) async fn xe(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let algorithm = alg(f)?;
    let smc: ImkSmc = typed(f)?;
    let key = pin_key(f)?;
    let block = block16(f)?;
    let fmt = format(f)?;
    let ctx = script_ctx(algorithm, f)?;
    let pin = PinBlockIn {
        block,
        format: fmt,
        pan: ctx.pan.clone(),
    };
    let mut enc = hsm.encrypt_pin_change(&smc, &ctx, &key, &pin).await?;
    let out = hex::encode_upper(&enc).into_bytes();
    enc.zeroize();
    Ok(out)
}

pub(super) async fn ssse(
    hsm: &SoftHsm,
    command: [u8; 2],
    f: &mut Fields<'_>,
) -> Result<Vec<u8>, HsmError> {
    let algorithm = alg(f)?;
    let token = f.token()?;
    let city_code = f.text(6)?.to_string();
    let card_id = f.text(32)?.to_string();
    let card = SsseCardRef {
        algorithm,
        city_code,
        card_id,
    };
    let n = f.hex_number(2)?;
    let challenge = f.hex_bytes(n)?;
    if &command == b"XR" {
        let p1p2 = f.hex_array::<2>()?;
        let n = f.hex_number(2)?;
        let record = f.hex_bytes(n)?;
        let key = SsseLineProtectionKey::from_token(token);
        let mac = hsm
            .ssse_update_record_mac(&key, &card, &challenge, p1p2, &record)
            .await?;
        Ok(hex::encode_upper(mac).into_bytes())
    } else if &command == b"XU" {
        let n = f.hex_number(2)?;
        let mut pin = f.hex_bytes(n)?;
        let key = SssePinUnblockKey::from_token(token);
        let mac = hsm
            .ssse_pin_unblock_mac(&key, &card, &challenge, &pin)
            .await;
        pin.zeroize();
        Ok(hex::encode_upper(mac?).into_bytes())
    } else if &command == b"XG" {
        let response = f.hex_bytes(algorithm.block_len())?;
        let key = SsseInternalAuthKey::from_token(token);
        verified(
            hsm.verify_ssse_internal_auth(&key, &card, &challenge, &response)
                .await?,
        )
    } else {
        let key = SsseExternalAuthKey::from_token(token);
        Ok(hex::encode_upper(
            hsm.ssse_external_auth_cryptogram(&key, &card, &challenge)
                .await?,
        )
        .into_bytes())
    }
}
