//! Host commands: parse a request body, run it on the software HSM, format the response body.
//!
//! Why this exists: this is the payShield-compatible surface of `hsm-sim`. Field layouts follow
//! the payShield host command reference as described machine-readably in
//! `shared/vectors/payshield/messages.json`; where we simplify or extend, it says so below.
//! Every command parses with [`Fields`] (bounds-checked) and answers with a documented error code.
//!
//! Conventions: keys are tokens (scheme letter + hex). "account" is the 12-digit account number
//! (rightmost 12 PAN digits without the check digit). PIN blocks are 16 hex characters (32 for
//! format 48, ISO format 4). Binary fields of KQ are raw bytes as in payShield.
//!
//! | code | function | request body | response body |
//! |---|---|---|---|
//! | NC | diagnostics | — | LMK KCV (16, zero-filled) + firmware |
//! | B2 | echo | length(4 hex) data | data |
//! | A0 | generate key | mode(1: 0/1) type(3) scheme(1) [ZMK token, ZMK scheme(1) if mode 1] | token [under ZMK] KCV(6) |
//! | A4 | form key from components | n(1) type(3) scheme(1) n × component token | token KCV(6) |
//! | A6 | import under ZMK | type(3) ZMK key-under-ZMK scheme(1) | token KCV(6) |
//! | A8 | export under ZMK | type(3) ZMK token scheme(1) | key-under-ZMK KCV(6) |
//! | BU | key check value | `FF` length-flag(1) token `;` type(3) | KCV(6) |
//! | CA | PIN TPK→ZPK | TPK ZPK max-len(2) block src-fmt(2) dst-fmt(2) account(12) [`;` LL PAN] | PIN length(2) block dst-fmt(2) |
//! | CC | PIN ZPK→ZPK | ZPK ZPK max-len(2) block src-fmt(2) dst-fmt(2) account(12) [`;` LL PAN] | as CA |
//! | JE | PIN ZPK→LMK | ZPK block(16) fmt(2) account(12) | LMK PIN(16) |
//! | JG | PIN LMK→ZPK | ZPK fmt(2) account(12) LMK PIN(16) | block(16) |
//! | DA/EA | verify PIN, IBM offset (TPK/ZPK) | key PVK max-len(2) block(16) fmt(2) check-len(2) account(12) dec-table(16) validation(12) offset(12) | — (01 = mismatch) |
//! | DC/EC | verify PIN, Visa PVV (TPK/ZPK) | key PVK block(16) fmt(2) account(12) PVKI(1) PVV(4) | — (01 = mismatch) |
//! | BK | IBM offset from PIN block | type(3: 001/70D) key PVK block(16) fmt(2) check-len(2) account(12) dec-table(16) validation(12) | offset(12, F-filled) |
//! | FW | PVV from PIN block | type(3) key PVK block(16) fmt(2) account(12) PVKI(1) | PVV(4) |
//! | DE | IBM offset from LMK PIN | PVK LMK PIN(16) check-len(2) account(12) dec-table(16) validation(12) | offset(12) |
//! | DG | PVV from LMK PIN | PVK LMK PIN(16) account(12) PVKI(1) | PVV(4) |
//! | CW | generate CVV | CVK PAN `;` expiry(4) service code(3) | CVV(3) |
//! | CY | verify CVV | CVK CVV(3) PAN `;` expiry(4) service code(3) | — (01 = mismatch) |
//! | KQ | ARQC verify / ARPC (method 1) | mode(1: 0/1/2) scheme(1: `1` EMV CSK 3DES, `S` PBOC SM4) MK-AC Y(8B) ATC(2B) UN(4B) len(2 hex) data `;` ARQC(8B) [ARC(2B)] | [ARPC(8B)] |
//! | M6 | generate MAC | mode(1:0) input(1: 0 binary/1 hex) size(1: 0=8 hex/1=16 hex/2=32 hex) algorithm(1: 1/3/5) padding(1: 1/2) type(3: 003/008) key len(4 hex) data | MAC (hex) |
//! | M8 | verify MAC | as M6, then MAC (hex, per size) | — (01 = mismatch) |
//!
//! Project commands (not payShield):
//!
//! | code | function | request body | response body |
//! |---|---|---|---|
//! | XA | ARQC verify + ARPC, 3DES or SM4, method 0/1/2 | alg(1: T/S) method(1: 0/1/2) MK-AC PAN-len(2) PAN PSN(2) ATC(4h) data-len(4h, bytes) data(hex) ARQC(16h) [ARC(4h) \| CSU(8h) prop-len(1) prop(hex)] | ARPC (hex; empty for method 0) |
//! | XC | issuer-script MAC | alg(1) MK-SMI PAN-len(2) PAN PSN(2) ATC(4h) ARQC(16h) header(10h) data-len(4h) data(hex) | MAC(8h) |
//! | XE | PIN change/unblock data | alg(1) MK-SMC type(3: 001/70D) key block(16) fmt(2) PAN-len(2) PAN PSN(2) ATC(4h) ARQC(16h) | enciphered PIN data (hex) |
//! | XG | SSSE internal auth verify | alg(1) key city(6) card-id(32) len(2h) challenge(hex) response(hex, one block) | — (01 = mismatch) |
//! | XI | SSSE external auth | alg(1) key city(6) card-id(32) len(2h) challenge(hex) | cryptogram (hex) |
//! | XU | SSSE PIN UNBLOCK MAC ([`crate::card_crypto::ssse_pin_unblock_mac`]) | alg(1) key city(6) card-id(32) len(2h) challenge(hex) PIN-len(2h) BCD PIN field(hex) | MAC(8h) |
//! | XQ | derive card key, export under ZMK (personalisation) | type(3) master token derivation(1: E/S) alg(1) [E: PAN-len(2) PAN PSN(2) \| S: city(6) card-id(32)] ZMK | key under ZMK (U/G + 32h) KCV(6) |
//! | XK | random bytes | length(3) | hex |
//! | XM | new data key | — | clear key(64h) token(B + 64h) |
//! | XO | unwrap data key | token | clear key(64h) |
//! | XS | new data key for transport ([`crate::transport_key`]) | caller X25519 public key(64h) | HSM public key(64h) sealed key(120h) token(B + 64h) |
//! | XW | stored data key for transport | token caller public key(64h) | HSM public key(64h) sealed key(120h) |
//!
//! XM/XO return a clear data key: the server answers them only on a loopback or TLS link
//! (error 17 elsewhere, see [`returns_clear_key`]).

use zeroize::Zeroize;

use crate::card_crypto::CardAlgorithm;
use crate::codec::{f_padded_12, Fields};
use crate::cvv::CvvKind;
use crate::error::HsmError;
use crate::hsm::{
    ArpcMethod, ArqcRequest, CardKeyDerivation, CardMasterKey, Hsm, PinBlockIn,
    PinVerificationMethod, ScriptContext, SsseCardRef,
};
use crate::keys::{
    Cvk, DataKeyToken, ImkAc, ImkSmc, ImkSmi, KeyScheme, KeyType, MacKey, PinKey, Pvk,
    SsseExternalAuthKey, SsseInternalAuthKey, SssePinUnblockKey, Tak, Tpk, TypedKey, Zak, Zmk, Zpk,
};
use crate::mac::{MacAlgorithm, MacPadding};
use crate::pin::{EncryptedPinBlock, PinBlockFormat};
use crate::soft::{LmkPin, SoftHsm};
use crate::transport_key::{seal_for, PUBLIC_KEY_LEN};

/// True for commands whose outcome goes to the audit log (key management and data keys).
pub fn is_key_operation(command: [u8; 2]) -> bool {
    matches!(
        &command,
        b"A0" | b"A4" | b"A6" | b"A8" | b"BU" | b"XM" | b"XO" | b"XS" | b"XW"
    )
}

/// True for commands whose answer carries a clear key (XM, XO): served only on a link that
/// cannot be read on the way (loopback or TLS; see [`crate::server`]).
pub fn returns_clear_key(command: [u8; 2]) -> bool {
    matches!(&command, b"XM" | b"XO")
}

/// A PAN whose 12-digit account number is `account` (a placeholder check digit appended).
pub fn pan_from_account(account: &str) -> Result<String, HsmError> {
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HsmError::InvalidAccount);
    }
    Ok(format!("{account}0"))
}

fn typed<K: TypedKey>(f: &mut Fields<'_>) -> Result<K, HsmError> {
    Ok(K::from_token(f.token()?))
}

fn alg(f: &mut Fields<'_>) -> Result<CardAlgorithm, HsmError> {
    match f.take(1)? {
        b"T" => Ok(CardAlgorithm::Tdes),
        b"S" => Ok(CardAlgorithm::Sm4),
        _ => Err(HsmError::InvalidInput),
    }
}

fn scheme(f: &mut Fields<'_>) -> Result<KeyScheme, HsmError> {
    let c = f.take(1)?[0];
    KeyScheme::from_char(char::from(c))
}

fn key_type(f: &mut Fields<'_>) -> Result<KeyType, HsmError> {
    KeyType::from_code(f.text(3)?)
}

fn format(f: &mut Fields<'_>) -> Result<PinBlockFormat, HsmError> {
    PinBlockFormat::from_code(f.text(2)?)
}

fn block16(f: &mut Fields<'_>) -> Result<EncryptedPinBlock, HsmError> {
    EncryptedPinBlock::from_hex(f.text(16)?)
}

fn pin_key(f: &mut Fields<'_>) -> Result<PinKey, HsmError> {
    match key_type(f)? {
        KeyType::Zpk => Ok(PinKey::Zpk(typed(f)?)),
        KeyType::Tpk => Ok(PinKey::Tpk(typed(f)?)),
        _ => Err(HsmError::InvalidKeyType),
    }
}

fn pan_psn(f: &mut Fields<'_>) -> Result<(String, String), HsmError> {
    let n = f.number(2)?;
    let pan = f.text(n)?.to_string();
    let psn = f.text(2)?.to_string();
    Ok((pan, psn))
}

fn kcv_hex(kcv: [u8; 3]) -> String {
    hex::encode_upper(kcv)
}

fn verified(ok: bool) -> Result<Vec<u8>, HsmError> {
    if ok {
        Ok(Vec::new())
    } else {
        Err(HsmError::VerificationFailed)
    }
}

fn offset12(offset: &str) -> Vec<u8> {
    f_padded_12(offset).into_bytes()
}

/// Run one command. Unknown codes are error 68.
pub async fn execute(hsm: &SoftHsm, command: [u8; 2], body: &[u8]) -> Result<Vec<u8>, HsmError> {
    let mut f = Fields::new(body);
    let out = match &command {
        b"NC" => nc(hsm).await,
        b"B2" => {
            let n = f.hex_number(4)?;
            Ok(f.take(n)?.to_vec())
        }
        b"A0" => a0(hsm, &mut f).await,
        b"A4" => a4(hsm, &mut f).await,
        b"A6" => a6(hsm, &mut f).await,
        b"A8" => a8(hsm, &mut f).await,
        b"BU" => bu(hsm, &mut f).await,
        b"CA" | b"CC" => translate(hsm, command, &mut f).await,
        b"JE" => je(hsm, &mut f),
        b"JG" => jg(hsm, &mut f),
        b"DA" | b"EA" => verify_ibm(hsm, command, &mut f).await,
        b"DC" | b"EC" => verify_pvv(hsm, command, &mut f).await,
        b"BK" => bk(hsm, &mut f).await,
        b"FW" => fw(hsm, &mut f).await,
        b"DE" => de(hsm, &mut f),
        b"DG" => dg(hsm, &mut f),
        b"CW" | b"CY" => cvv(hsm, command, &mut f).await,
        b"KQ" => kq(hsm, &mut f).await,
        b"M6" | b"M8" => mac(hsm, command, &mut f).await,
        b"XA" => xa(hsm, &mut f).await,
        b"XC" => xc(hsm, &mut f).await,
        b"XE" => xe(hsm, &mut f).await,
        b"XG" | b"XI" | b"XU" => ssse(hsm, command, &mut f).await,
        b"XQ" => xq(hsm, &mut f).await,
        b"XK" => {
            let n = f.number(3)?;
            Ok(hex::encode_upper(hsm.random_bytes(n).await?).into_bytes())
        }
        b"XM" => {
            let (clear, token) = hsm.new_data_key()?;
            let mut out = hex::encode_upper(clear.bytes()).into_bytes();
            out.extend_from_slice(token.to_string().as_bytes());
            Ok(out)
        }
        b"XO" => {
            let token: DataKeyToken = typed(&mut f)?;
            Ok(hex::encode_upper(hsm.data_key_clear(&token)?.bytes()).into_bytes())
        }
        b"XS" => xs(hsm, &mut f),
        b"XW" => xw(hsm, &mut f),
        _ => return Err(HsmError::UnknownCommand),
    }?;
    f.finish()?;
    Ok(out)
}

async fn nc(hsm: &SoftHsm) -> Result<Vec<u8>, HsmError> {
    let d = hsm.diagnostics().await?;
    let mut out = format!("{:0<16}", d.lmk_check_value);
    out.push_str(&d.firmware);
    Ok(out.into_bytes())
}

async fn a0(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

async fn a4(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

async fn a6(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let kt = key_type(f)?;
    let zmk: Zmk = typed(f)?;
    let (_, used) = crate::keys::KeyToken::parse_prefix(f.rest_peek())?;
    let under_text = f.text(used)?.to_string();
    let sch = scheme(f)?;
    let g = hsm.import_key(kt, &zmk, &under_text, sch).await?;
    Ok(format!("{}{}", g.token, kcv_hex(g.check_value)).into_bytes())
}

async fn a8(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let kt = key_type(f)?;
    let zmk: Zmk = typed(f)?;
    let key = f.token()?;
    let sch = scheme(f)?;
    let (under, kcv) = hsm.export_key(kt, &zmk, &key, sch).await?;
    Ok(format!("{under}{}", kcv_hex(kcv)).into_bytes())
}

async fn bu(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

async fn translate(
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

fn je(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

fn jg(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let zpk: Zpk = typed(f)?;
    let fmt = format(f)?;
    let pan = pan_from_account(f.text(12)?)?;
    let lmk = LmkPin(f.text(16)?.to_string());
    Ok(hsm
        .translate_pin_lmk_to_zpk(&zpk, &lmk, &pan, fmt)?
        .to_hex()
        .into_bytes())
}

fn pin_key_for(command: [u8; 2], f: &mut Fields<'_>) -> Result<PinKey, HsmError> {
    let t = f.token()?;
    Ok(if command[0] == b'D' {
        PinKey::Tpk(Tpk::from_token(t))
    } else {
        PinKey::Zpk(Zpk::from_token(t))
    })
}

async fn verify_ibm(
    hsm: &SoftHsm,
    command: [u8; 2],
    f: &mut Fields<'_>,
) -> Result<Vec<u8>, HsmError> {
    let key = pin_key_for(command, f)?;
    let pvk: Pvk = typed(f)?;
    let _max_len = f.number(2)?;
    let block = block16(f)?;
    let fmt = format(f)?;
    let check_len = f.number(2)?;
    let pan = pan_from_account(f.text(12)?)?;
    let method = PinVerificationMethod::Ibm3624 {
        pvk,
        decimalisation_table: f.text(16)?.to_string(),
        validation_data: f.text(12)?.to_string(),
        offset: f.text(12)?.to_string(),
        check_length: u8::try_from(check_len).map_err(|_| HsmError::PinLength)?,
    };
    verified(
        hsm.verify_pin(
            &key,
            &PinBlockIn {
                block,
                format: fmt,
                pan,
            },
            &method,
        )
        .await?,
    )
}

async fn verify_pvv(
    hsm: &SoftHsm,
    command: [u8; 2],
    f: &mut Fields<'_>,
) -> Result<Vec<u8>, HsmError> {
    let key = pin_key_for(command, f)?;
    let pvk: Pvk = typed(f)?;
    let block = block16(f)?;
    let fmt = format(f)?;
    let pan = pan_from_account(f.text(12)?)?;
    let pvki = f.number(1)? as u8;
    let pvv = f.text(4)?.to_string();
    let method = PinVerificationMethod::VisaPvv { pvk, pvki, pvv };
    verified(
        hsm.verify_pin(
            &key,
            &PinBlockIn {
                block,
                format: fmt,
                pan,
            },
            &method,
        )
        .await?,
    )
}

async fn bk(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

async fn fw(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

fn de(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

fn dg(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let pvk: Pvk = typed(f)?;
    let lmk = LmkPin(f.text(16)?.to_string());
    let pan = pan_from_account(f.text(12)?)?;
    let pvki = f.number(1)? as u8;
    Ok(hsm.generate_pvv_lmk(&pvk, &lmk, &pan, pvki)?.into_bytes())
}

async fn cvv(hsm: &SoftHsm, command: [u8; 2], f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

async fn kq(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

async fn mac(hsm: &SoftHsm, command: [u8; 2], f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

async fn xa(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

fn script_ctx(algorithm: CardAlgorithm, f: &mut Fields<'_>) -> Result<ScriptContext, HsmError> {
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

async fn xc(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
    let algorithm = alg(f)?;
    let smi: ImkSmi = typed(f)?;
    let ctx = script_ctx(algorithm, f)?;
    let header = f.hex_array::<5>()?;
    let len = f.hex_number(4)?;
    let data = f.hex_bytes(len)?;
    Ok(hex::encode_upper(hsm.issuer_script_mac(&smi, &ctx, header, &data).await?).into_bytes())
}

async fn xe(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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

async fn ssse(hsm: &SoftHsm, command: [u8; 2], f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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
    if &command == b"XU" {
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

async fn xq(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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
    let zmk: Zmk = typed(f)?;
    let (under, kcv) = hsm
        .derive_card_key_under_zmk(&master, &derivation, &zmk)
        .await?;
    Ok(format!("{under}{}", kcv_hex(kcv)).into_bytes())
}

/// XS: a new data key sealed for the caller's transport key, and its LMK token (the token text
/// is the seal's associated data).
fn xs(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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
fn xw(hsm: &SoftHsm, f: &mut Fields<'_>) -> Result<Vec<u8>, HsmError> {
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
