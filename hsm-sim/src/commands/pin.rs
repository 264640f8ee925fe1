//! PIN commands: translation between keys (CA, CC), PINs under the LMK (JE, JG) and PIN
//! verification and generation by IBM 3624 offset or Visa PVV (DA, EA, DC, EC, BK, FW, DE, DG).

use super::{block16, format, offset12, pan_from_account, pin_key, typed, verified};
use crate::codec::Fields;
use crate::error::HsmError;
use crate::hsm::{Hsm, PinBlockIn, PinVerificationMethod};
use crate::keys::{PinKey, Pvk, Tpk, TypedKey, Zpk};
use crate::pin::EncryptedPinBlock;
use crate::soft::{LmkPin, SoftHsm};

pub(super) async fn translate(
    hsm: &SoftHsm,
    command: [u8; 2],
    f: &mut Fields<'_>,
) -> Result<Vec<u8>, HsmError> {
    let src = f.token()?;
    let dst: Zpk = typed(f)?;
    let max_len = f.number(2)?;
    // Block length: 32 hex for format 48 else 16; the fixed tail is fmt(2) fmt(2) account(12).
    let rest_len = f
        .rest_peek()
        .iter()
        .position(|&b| b == b';')
        .unwrap_or(f.rest_peek().len());
    let block_hex_len = rest_len.checked_sub(16).ok_or(HsmError::InvalidInput)?;
    if block_hex_len != 16 && block_hex_len != 32 {
        return Err(HsmError::InvalidInput);
    }
    let block = EncryptedPinBlock::from_hex(f.text(block_hex_len)?)?;
    let src_fmt = format(f)?;
    let dst_fmt = format(f)?;
    let account = f.text(12)?;
    let pan = if f.eat(b';') {
        let n = f.number(2)?;
        f.text(n)?.to_string()
    } else {
        pan_from_account(account)?
    };
    let pin = PinBlockIn {
        block,
        format: src_fmt,
        pan,
    };
    let out = if &command == b"CA" {
        hsm.translate_pin_tpk_to_zpk(&Tpk::from_token(src), &dst, &pin, dst_fmt)
            .await?
    } else {
        hsm.translate_pin_zpk_to_zpk(&Zpk::from_token(src), &dst, &pin, dst_fmt)
            .await?
    };
    if usize::from(out.pin_length) > max_len {
        return Err(HsmError::PinLength);
    }
    Ok(format!(
        "{:02}{}{}",
        out.pin_length,
        out.block.to_hex(),
        dst_fmt.code()
    )
    .into_bytes())
}

pub(super) fn je(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let zpk: Zpk = typed(f)?;
    let block = block16(f)?;
    let fmt = format(f)?;
    let pan = pan_from_account(f.text(12)?)?;
    let lmk = hsm.translate_pin_zpk_to_lmk(
        &zpk,
        &PinBlockIn {
            block,
            format: fmt,
            pan,
        },
    )?;
    Ok(lmk.0.into_bytes())
}

pub(super) fn jg(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let zpk: Zpk = typed(f)?;
    let fmt = format(f)?;
    let pan = pan_from_account(f.text(12)?)?;
    let lmk = LmkPin(f.text(16)?.to_string());
    Ok(hsm
        .translate_pin_lmk_to_zpk(&zpk, &lmk, &pan, fmt)?
        .to_hex()
        .into_bytes())
}

pub(super) fn pin_key_for(command: [u8; 2], f: &mut Fields<'_>) -> Result<PinKey, HsmError> {
    let t = f.token()?;
    Ok(if command[0] == b'D' {
        PinKey::Tpk(Tpk::from_token(t))
    } else {
        PinKey::Zpk(Zpk::from_token(t))
    })
}

/// DA/EA (IBM 3624 offset) and DC/EC (Visa PVV), the PIN under a TPK (`D…`) or a ZPK (`E…`).
pub(super) async fn verify_pin(
    hsm: &SoftHsm,
    command: [u8; 2],
    f: &mut Fields<'_>,
) -> Result<Vec<u8>, HsmError> {
    let ibm = command[1] == b'A';
    let key = pin_key_for(command, f)?;
    let pvk: Pvk = typed(f)?;
    if ibm {
        let _max_len = f.number(2)?;
    }
    let block = block16(f)?;
    let format = format(f)?;
    let check_len = if ibm { Some(f.number(2)?) } else { None };
    let pan = pan_from_account(f.text(12)?)?;
    let method = match check_len {
        Some(n) => PinVerificationMethod::Ibm3624 {
            pvk,
            decimalisation_table: f.text(16)?.to_string(),
            validation_data: f.text(12)?.to_string(),
            offset: f.text(12)?.to_string(),
            check_length: u8::try_from(n).map_err(|_| HsmError::PinLength)?,
        },
        None => PinVerificationMethod::VisaPvv {
            pvk,
            pvki: f.number(1)? as u8,
            pvv: f.text(4)?.to_string(),
        },
    };
    let pin = PinBlockIn { block, format, pan };
    verified(hsm.verify_pin(&key, &pin, &method).await?)
}

pub(super) async fn bk(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let key = pin_key(f)?;
    let pvk: Pvk = typed(f)?;
    let block = block16(f)?;
    let fmt = format(f)?;
    let _check_len = f.number(2)?;
    let pan = pan_from_account(f.text(12)?)?;
    let table = f.text(16)?;
    let validation = f.text(12)?;
    let off = hsm
        .generate_ibm_offset(
            &key,
            &PinBlockIn {
                block,
                format: fmt,
                pan,
            },
            &pvk,
            table,
            validation,
        )
        .await?;
    Ok(offset12(&off))
}

pub(super) async fn fw(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let key = pin_key(f)?;
    let pvk: Pvk = typed(f)?;
    let block = block16(f)?;
    let fmt = format(f)?;
    let pan = pan_from_account(f.text(12)?)?;
    let pvki = f.number(1)? as u8;
    Ok(hsm
        .generate_pvv(
            &key,
            &PinBlockIn {
                block,
                format: fmt,
                pan,
            },
            &pvk,
            pvki,
        )
        .await?
        .into_bytes())
}

pub(super) fn de(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let pvk: Pvk = typed(f)?;
    let lmk = LmkPin(f.text(16)?.to_string());
    let _check_len = f.number(2)?;
    let pan = pan_from_account(f.text(12)?)?;
    let table = f.text(16)?;
    let validation = f.text(12)?;
    Ok(offset12(&hsm.generate_ibm_offset_lmk(
        &pvk, &lmk, &pan, table, validation,
    )?))
}

pub(super) fn dg(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let pvk: Pvk = typed(f)?;
    let lmk = LmkPin(f.text(16)?.to_string());
    let pan = pan_from_account(f.text(12)?)?;
    let pvki = f.number(1)? as u8;
    Ok(hsm.generate_pvv_lmk(&pvk, &lmk, &pan, pvki)?.into_bytes())
}
