//! The cryptographic steps of the pipeline, each done by the `Hsm` and never in the switch:
//!
//! - **MAC** of a message from an acquirer that has a terminal authentication key, by the
//!   algorithm of its TAK (ANSI X9.19, SM4 CBC-MAC or AES-CMAC: `crate::wire::mac`, which
//!   decides for every link): computed over the message bytes before field 64/128;
//! - **PIN**: verification against the card's IBM 3624 offset (the switch verifies for the
//!   insurance legs) or translation TPK → ZPK for the card's bank (ISO 9564-1 format 0);
//! - **ARQC** verification and **ARPC** method 1 (EMV Book 2 §8.1–8.2; PBOC 3.0 for SM4): the
//!   transaction data is rebuilt from field 55 exactly as the card MACed it
//!   (`card_apdu::emv::ac_input_from_field55`), and the ARPC answered in tag 91 with its ARC;
//! - **issuer scripts** (EMV Book 2 §9.2 secure messaging, Book 3 §6.5 and §10.10; the same
//!   commands and MAC in JR/T 0025.5 for PBOC): an APPLICATION BLOCK or PIN UNBLOCK command in
//!   an Issuer Script Template 2 (tag 72, run by the card after the second GENERATE AC), MACed
//!   under the card's SK-SMI by the HSM's issuer-script MAC command (XC).

use crate::store::IccAlgorithm;
use card_apdu::{emv, tags, tlv};
use hsm_sim::card_crypto::CardAlgorithm;
use hsm_sim::hsm::{ArpcMethod, ArqcRequest, PinBlockIn, PinVerificationMethod, ScriptContext};
use hsm_sim::keys::{ImkAc, ImkSmi, PinKey, Pvk, Tak, Tpk, Zpk};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use hsm_sim::Hsm;
use schemas::domain::{Pan, ResponseCode};

/// Keys of one acquirer (a hospital, a job centre, a bank acquiring at its devices).
#[derive(Clone, Debug)]
pub struct AcquirerKeys {
    /// The key its terminals encrypt PIN blocks under.
    pub tpk: Tpk,
    /// The key its messages are MACed with; `None`: no MAC expected.
    pub tak: Option<Tak>,
}

/// The issuer-side keys the switch verifies cards with (LMK tokens).
#[derive(Clone, Debug)]
pub struct IssuerKeys {
    /// Issuer master key for AC of 3DES cards.
    pub imk_ac_tdes: Option<ImkAc>,
    /// Issuer master key for AC of SM4 cards.
    pub imk_ac_sm4: Option<ImkAc>,
    /// Issuer master key for script integrity (MAC) of 3DES cards; `None`: no scripts.
    pub imk_smi_tdes: Option<ImkSmi>,
    /// Issuer master key for script integrity (MAC) of SM4 cards; `None`: no scripts.
    pub imk_smi_sm4: Option<ImkSmi>,
    /// PIN verification key of the IBM 3624 offsets.
    pub pvk: Pvk,
    /// Decimalisation table (16 digits).
    pub decimalisation_table: String,
    /// Digits compared (the shortest PIN allowed), 4..=12.
    pub pin_check_length: u8,
}

/// IBM 3624 validation data for a PAN: its 12-digit account number (ISO 9564-1 format 0 uses
/// the same digits), so an offset is bound to its card.
pub fn pin_validation_data(pan: &Pan) -> Result<String, ResponseCode> {
    hsm_sim::pin::account_number_12(pan.expose_digits()).map_err(|_| ResponseCode::FormatError)
}

fn pin_in(pan: &Pan, block: &[u8; 8]) -> Result<PinBlockIn, ResponseCode> {
    Ok(PinBlockIn {
        block: EncryptedPinBlock::from_bytes(block.to_vec())
            .map_err(|_| ResponseCode::FormatError)?,
        format: PinBlockFormat::Iso0,
        pan: pan.expose_digits().to_owned(),
    })
}

/// Verifies a PIN block under the acquirer's TPK against the card's offset: `Ok(())`, 55 when
/// the PIN is wrong, 96 when the HSM fails.
pub async fn verify_pin(
    hsm: &dyn Hsm,
    keys: &IssuerKeys,
    tpk: &Tpk,
    pan: &Pan,
    block: &[u8; 8],
    offset: &str,
) -> Result<(), ResponseCode> {
    let method = PinVerificationMethod::Ibm3624 {
        pvk: keys.pvk.clone(),
        decimalisation_table: keys.decimalisation_table.clone(),
        validation_data: pin_validation_data(pan)?,
        offset: offset.to_owned(),
        check_length: keys.pin_check_length,
    };
    match hsm
        .verify_pin(&PinKey::Tpk(tpk.clone()), &pin_in(pan, block)?, &method)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(ResponseCode::IncorrectPin),
        Err(e) => {
            tracing::warn!(hsm_error = e.code(), "PIN verification failed in the HSM");
            // A PIN block that does not decrypt to a valid format 0 block is a wrong PIN.
            if e.code() == "20" || e.code() == "24" {
                Err(ResponseCode::IncorrectPin)
            } else {
                Err(ResponseCode::SystemMalfunction)
            }
        }
    }
}

/// Re-encrypts a PIN block from the acquirer's TPK to the bank's ZPK.
pub async fn translate_pin(
    hsm: &dyn Hsm,
    tpk: &Tpk,
    zpk: &Zpk,
    pan: &Pan,
    block: &[u8; 8],
) -> Result<[u8; 8], ResponseCode> {
    let out = hsm
        .translate_pin_tpk_to_zpk(tpk, zpk, &pin_in(pan, block)?, PinBlockFormat::Iso0)
        .await
        .map_err(|e| {
            tracing::warn!(hsm_error = e.code(), "PIN translation failed in the HSM");
            if e.code() == "20" || e.code() == "24" {
                ResponseCode::IncorrectPin
            } else {
                ResponseCode::SystemMalfunction
            }
        })?;
    out.block
        .as_bytes()
        .try_into()
        .map_err(|_| ResponseCode::SystemMalfunction)
}

/// A verified ARQC, kept to answer with an ARPC.
#[derive(Debug, Clone)]
pub struct VerifiedArqc {
    /// ARPC for ARC `00`, computed with the verification (the common case costs one call).
    pub arpc_approved: Vec<u8>,
    /// The card reported its offline PIN try limit exceeded (CVR in 9F10, see
    /// `card_apdu::emv::Iad::pin_try_limit_exceeded`), under the cryptogram just verified.
    pub pin_try_limit_exceeded: bool,
    request: ArqcRequest,
}

pub(crate) fn card_algorithm(a: IccAlgorithm) -> CardAlgorithm {
    match a {
        IccAlgorithm::Tdes => CardAlgorithm::Tdes,
        IccAlgorithm::Sm4 => CardAlgorithm::Sm4,
    }
}

/// Verifies the ARQC of field 55 for `pan`: the card's algorithm must match its issuance
/// data, the cryptogram type must be ARQC, and the amount the card signed (9F02) must be
/// field 4. Declines with 05 when it does not verify, 30 when field 55 is malformed.
pub async fn verify_arqc(
    hsm: &dyn Hsm,
    keys: &IssuerKeys,
    pan: &Pan,
    psn: &str,
    algorithm: IccAlgorithm,
    field55: &[u8],
    amount_fen: i64,
) -> Result<VerifiedArqc, ResponseCode> {
    let data = emv::ac_input_from_field55(field55).map_err(|_| ResponseCode::FormatError)?;
    let alg = card_algorithm(algorithm);
    if data.iad.algorithm != alg || data.cid != emv::cid::ARQC {
        return Err(ResponseCode::DoNotHonour);
    }
    let tlvs = tlv::parse_all(field55).map_err(|_| ResponseCode::FormatError)?;
    let signed_amount = tlv::find_value(&tlvs, tags::AMOUNT_AUTHORISED)
        .map(bcd_to_u64)
        .ok_or(ResponseCode::FormatError)?;
    if signed_amount != Some(amount_fen.unsigned_abs()) {
        return Err(ResponseCode::DoNotHonour);
    }
    let imk = match alg {
        CardAlgorithm::Tdes => keys.imk_ac_tdes.clone(),
        CardAlgorithm::Sm4 => keys.imk_ac_sm4.clone(),
    }
    .ok_or(ResponseCode::DoNotHonour)?;
    let request = ArqcRequest {
        algorithm: alg,
        imk_ac: imk,
        pan: pan.expose_digits().to_owned(),
        psn: psn.to_owned(),
        atc: data.atc,
        transaction_data: data.input,
        arqc: data.ac,
        arpc: ArpcMethod::Method1 { arc: *b"00" },
    };
    let outcome = hsm
        .verify_arqc_and_generate_arpc(&request)
        .await
        .map_err(|e| {
            tracing::warn!(hsm_error = e.code(), "ARQC verification failed in the HSM");
            ResponseCode::SystemMalfunction
        })?;
    match (outcome.verified, outcome.arpc) {
        (true, Some(arpc)) => Ok(VerifiedArqc {
            arpc_approved: arpc,
            pin_try_limit_exceeded: data.iad.pin_try_limit_exceeded(),
            request,
        }),
        _ => Err(ResponseCode::DoNotHonour),
    }
}

/// The ATC (tag 9F36, EMV Book 3 Annex A: 2 bytes, binary) a chip card put in field 55, read
/// before any cryptography so a replay costs no HSM call. `None` when absent or malformed.
pub fn field55_atc(field55: &[u8]) -> Option<u16> {
    let tlvs = tlv::parse_all(field55).ok()?;
    let v: [u8; 2] = tlv::find_value(&tlvs, tags::ATC)?.try_into().ok()?;
    Some(u16::from_be_bytes(v))
}

/// An issuer script command the switch sends (EMV Book 3 §6.5; JR/T 0025.5 uses the same
/// CLA 84 commands). Neither has command data: the body is only the 4-byte MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptCommand {
    /// APPLICATION BLOCK `84 1E 00 00` (EMV Book 3 §6.5.1): the card invalidates the debit
    /// application (SELECT then answers 6283, GENERATE AC only AAC).
    ApplicationBlock,
    /// PIN UNBLOCK `84 24 00 00` (EMV Book 3 §6.5.10): the card resets its PIN try counter.
    PinUnblock,
}

impl ScriptCommand {
    /// CLA INS P1 P2 Lc, with Lc counting the MAC (EMV Book 2 §9.2.1: secure messaging
    /// format 2, the MAC is the last 4 bytes of the command data).
    pub fn header(self) -> [u8; 5] {
        match self {
            ScriptCommand::ApplicationBlock => [0x84, 0x1E, 0x00, 0x00, 0x04],
            ScriptCommand::PinUnblock => [0x84, 0x24, 0x00, 0x00, 0x04],
        }
    }

    /// Its name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptCommand::ApplicationBlock => "application_block",
            ScriptCommand::PinUnblock => "pin_unblock",
        }
    }
}

fn bcd_to_u64(b: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for byte in b {
        for nibble in [byte >> 4, byte & 0x0F] {
            if nibble > 9 {
                return None;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(nibble))?;
        }
    }
    Some(v)
}

impl VerifiedArqc {
    /// The ATC the cryptogram covers.
    pub fn atc(&self) -> u16 {
        u16::from_be_bytes(self.request.atc)
    }

    /// Issuer Script Template 2 (tag 72, EMV Book 3 §10.10: processed after the second
    /// GENERATE AC) with one script id (9F18) and one command (86) per entry of `commands`,
    /// each MACed by the HSM (XC) under the card's script session key derived from `imk_smi`
    /// with this cryptogram's ATC and ARQC (EMV Book 2 §9.2.3, A1.3). `None` when no key fits
    /// the card's algorithm or the HSM refuses; the decision stands without the script.
    pub async fn script_template(
        &self,
        hsm: &dyn Hsm,
        keys: &IssuerKeys,
        script_id: [u8; 4],
        commands: &[ScriptCommand],
    ) -> Option<Vec<u8>> {
        let imk_smi = match self.request.algorithm {
            CardAlgorithm::Tdes => keys.imk_smi_tdes.as_ref(),
            CardAlgorithm::Sm4 => keys.imk_smi_sm4.as_ref(),
        }?;
        let ctx = ScriptContext {
            algorithm: self.request.algorithm,
            pan: self.request.pan.clone(),
            psn: self.request.psn.clone(),
            atc: self.request.atc,
            arqc: self.request.arqc,
        };
        let mut parts = vec![tlv::encode(tags::ISSUER_SCRIPT_ID, &script_id)];
        for command in commands {
            let header = command.header();
            let mac = match hsm.issuer_script_mac(imk_smi, &ctx, header, &[]).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(hsm_error = e.code(), "issuer script MAC refused by the HSM");
                    return None;
                }
            };
            let mut apdu = header.to_vec();
            apdu.extend_from_slice(&mac);
            parts.push(tlv::encode(tags::ISSUER_SCRIPT_COMMAND, &apdu));
        }
        Some(tlv::encode_constructed(tags::ISSUER_SCRIPT_72, &parts))
    }

    /// Field 55 of the response: tag 91 = ARPC ‖ ARC (method 1) for the final response code.
    pub async fn response_field55(&self, hsm: &dyn Hsm, code: ResponseCode) -> Option<Vec<u8>> {
        let arc: [u8; 2] = code.as_str().as_bytes().try_into().ok()?;
        let arpc = if &arc == b"00" {
            self.arpc_approved.clone()
        } else {
            let mut req = self.request.clone();
            req.arpc = ArpcMethod::Method1 { arc };
            hsm.verify_arqc_and_generate_arpc(&req).await.ok()?.arpc?
        };
        let mut iad = arpc;
        iad.extend_from_slice(&arc);
        Some(tlv::encode(tags::ISSUER_AUTHENTICATION_DATA, &iad))
    }
}

/// Verifies the MAC of a message from an acquirer with a TAK: field 64 (or 128) is the last
/// 8 bytes of the message, and the MAC covers everything before it.
pub async fn verify_mac(
    hsm: &dyn Hsm,
    tak: &Tak,
    message: &[u8],
    mac: Option<[u8; 8]>,
) -> Result<(), ResponseCode> {
    let mac = mac.ok_or(ResponseCode::MacFailure)?;
    let covered = message
        .len()
        .checked_sub(8)
        .and_then(|n| message.get(..n))
        .ok_or(ResponseCode::MacFailure)?;
    match crate::wire::mac::verify_under(hsm, tak, covered, &mac).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ResponseCode::MacFailure),
        Err(e) => {
            tracing::warn!(error = %e, "MAC verification failed in the HSM");
            Err(ResponseCode::MacFailure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bcd_to_u64;

    #[test]
    fn amount_authorised_is_read_as_bcd_and_bad_nibbles_are_refused() {
        assert_eq!(
            bcd_to_u64(&[0x00, 0x00, 0x00, 0x01, 0x23, 0x45]),
            Some(12_345)
        );
        assert_eq!(bcd_to_u64(&[0x1A]), None);
    }
}
