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
//! | A6 | import under ZMK | type(3) ZMK key-under-ZMK (scheme letter + 2 × key length hex, no LMK tag) scheme(1) | token KCV(6) |
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
//! | M6 | generate MAC | mode(1:0) input(1: 0 binary/1 hex) size(1: 0=8 hex/1=16 hex/2=32 hex) algorithm(1: 1/3/5/9) padding(1: 1/2) type(3: 003/008) key len(4 hex) data | MAC (hex) |
//! | M8 | verify MAC | as M6, then MAC (hex, per size) | — (01 = mismatch) |
//!
//! M6/M8 algorithm `9` is a project extension: the SM4 CBC-MAC (GB/T 15852.1-2008 MAC
//! algorithm 1 with SM4, [`crate::mac::sm4_cbc_mac`]) under an SM4 TAK/ZAK (scheme `G`); its
//! full MAC is 16 bytes (size `2`), as AES-CMAC's (`5`, scheme `A`).
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
//! | XR | SSSE UPDATE RECORD MAC, secure messaging ([`crate::card_crypto::ssse_update_record_mac`]) | alg(1) key city(6) card-id(32) len(2h) challenge(hex) P1P2(4h) record-len(2h) record(hex) | MAC(8h) |
//! | XQ | derive card key, export under ZMK (personalisation) | type(3) master token derivation(1: E/S) alg(1) [E: PAN-len(2) PAN PSN(2) \| S: city(6) card-id(32)] ZMK | key under ZMK (U/G + 32h) KCV(6) |
//! | XT | derive card key, export under a transport ZEK (card bureau) | as XQ with a ZEK token instead of the ZMK | key under ZEK (U/G + 32h) KCV(6) |
//! | XK | random bytes | length(3) | hex |
//! | XM | new data key | — | clear key(64h) token(B + 64h) |
//! | XO | unwrap data key | token | clear key(64h) |
//! | XS | new data key for transport ([`crate::transport_key`]) | caller X25519 public key(64h) | HSM public key(64h) sealed key(120h) token(B + 64h) |
//! | XW | stored data key for transport | token caller public key(64h) | HSM public key(64h) sealed key(120h) |
//!
//! XM/XO return a clear data key: the server answers them only on a loopback or TLS link
//! (error 17 elsewhere, see [`returns_clear_key`]).

use crate::card_crypto::CardAlgorithm;
use crate::codec::{f_padded_12, Fields};
use crate::error::HsmError;
use crate::hsm::Hsm;
use crate::keys::{DataKeyToken, KeyScheme, KeyType, PinKey, TypedKey};
use crate::pin::{EncryptedPinBlock, PinBlockFormat};
use crate::soft::SoftHsm;

mod card;
mod keys;
mod pin;

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
        b"A0" => keys::a0(hsm, &mut f).await,
        b"A4" => keys::a4(hsm, &mut f).await,
        b"A6" => keys::a6(hsm, &mut f).await,
        b"A8" => keys::a8(hsm, &mut f).await,
        b"BU" => keys::bu(hsm, &mut f).await,
        b"CA" | b"CC" => pin::translate(hsm, command, &mut f).await,
        b"JE" => pin::je(hsm, &mut f),
        b"JG" => pin::jg(hsm, &mut f),
        b"DA" | b"EA" | b"DC" | b"EC" => pin::verify_pin(hsm, command, &mut f).await,
        b"BK" => pin::bk(hsm, &mut f).await,
        b"FW" => pin::fw(hsm, &mut f).await,
        b"DE" => pin::de(hsm, &mut f),
        b"DG" => pin::dg(hsm, &mut f),
        b"CW" | b"CY" => card::cvv(hsm, command, &mut f).await,
        b"KQ" => card::kq(hsm, &mut f).await,
        b"M6" | b"M8" => card::mac(hsm, command, &mut f).await,
        b"XA" => card::xa(hsm, &mut f).await,
        b"XC" => card::xc(hsm, &mut f).await,
        b"XE" => card::xe(hsm, &mut f).await,
        b"XG" | b"XI" | b"XU" | b"XR" => card::ssse(hsm, command, &mut f).await,
        b"XQ" => keys::xq(hsm, &mut f, false).await,
        b"XT" => keys::xq(hsm, &mut f, true).await,
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
        b"XS" => keys::xs(hsm, &mut f),
        b"XW" => keys::xw(hsm, &mut f),
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
