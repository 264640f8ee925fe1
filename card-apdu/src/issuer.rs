//! A simulated issuer and social-security back end holding clear master keys: what the switch
//! will do through the HSM, done here with the same hsm-sim `card_crypto` functions so tests,
//! the benchmark and the `kiosk` demo can run complete flows before the switch exists. It is
//! also the executable reference for the switch: verify the ARQC from field 55
//! ([`crate::emv::ac_input_from_field55`]), answer with ARPC method 1 in tag 91, and build issuer
//! scripts (EMV Book 2 §9.2–9.3: MAC over header ‖ ATC ‖ ARQC ‖ data under the SMI session key).

use hsm_sim::card_crypto::{self as cc, CardAlgorithm, CardKey};

use crate::emv::{self, CryptogramData};
use crate::kiosk::pboc::IssuerResponse;
use crate::kiosk::ssse::SsseBackend;
use crate::kiosk::KioskError;
use crate::perso::{PersoError, PersoFile};
use crate::tags as t;
use crate::tlv;

struct ImkSet {
    ac: CardKey,
    smi: CardKey,
    smc: CardKey,
}

/// Issuer master keys and SSSE province keys of one card programme.
pub struct IssuerSim {
    ssse_alg: CardAlgorithm,
    province_internal: CardKey,
    province_external: CardKey,
    province_pin_unblock: CardKey,
    province_line_protection: CardKey,
    imk_tdes: Option<ImkSet>,
    imk_sm4: Option<ImkSet>,
}

/// An issuer script command to send to the card. `Debug` hides the new PIN.
#[derive(Clone)]
pub enum ScriptCommand {
    ApplicationBlock,
    ApplicationUnblock,
    /// Reset the offline PIN try counter.
    PinUnblock,
    /// Set a new offline PIN (enciphered under the SMC session key) and reset the counter.
    PinChange(String),
}

impl std::fmt::Debug for ScriptCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApplicationBlock => f.write_str("ApplicationBlock"),
            Self::ApplicationUnblock => f.write_str("ApplicationUnblock"),
            Self::PinUnblock => f.write_str("PinUnblock"),
            Self::PinChange(_) => f.write_str("PinChange(\"****\")"),
        }
    }
}

/// The issuer's verdict on an authorisation request.
#[derive(Debug)]
pub struct Authorisation {
    pub arqc_valid: bool,
    pub response: IssuerResponse,
}

impl IssuerSim {
    /// Takes the master keys of a personalisation file.
    pub fn from_perso(file: &PersoFile) -> Result<Self, PersoError> {
        let set = |i: &Option<crate::perso::ImkPerso>| -> Result<Option<ImkSet>, PersoError> {
            i.as_ref()
                .map(|k| {
                    Ok(ImkSet {
                        ac: k.ac.key("imk.ac")?,
                        smi: k.smi.key("imk.smi")?,
                        smc: k.smc.key("imk.smc")?,
                    })
                })
                .transpose()
        };
        let p = &file.ssse.province_keys;
        Ok(Self {
            ssse_alg: file.ssse.algorithm.into(),
            province_internal: p.internal_auth.key("internal_auth")?,
            province_external: p.external_auth.key("external_auth")?,
            province_pin_unblock: p.pin_unblock.key("pin_unblock")?,
            province_line_protection: p.line_protection.key("line_protection")?,
            imk_tdes: set(&file.pboc.imk_tdes)?,
            imk_sm4: set(&file.pboc.imk_sm4)?,
        })
    }

    fn imks(&self, alg: CardAlgorithm) -> Option<&ImkSet> {
        match alg {
            CardAlgorithm::Tdes => self.imk_tdes.as_ref(),
            CardAlgorithm::Sm4 => self.imk_sm4.as_ref(),
        }
    }

    fn card_mk(
        &self,
        alg: CardAlgorithm,
        pick: impl Fn(&ImkSet) -> &CardKey,
        pan: &str,
        psn: &str,
    ) -> Result<CardKey, KioskError> {
        let imk = self
            .imks(alg)
            .ok_or_else(|| KioskError::Backend("no issuer master key for the algorithm".into()))?;
        cc::derive_icc_master_key(alg, pick(imk), pan, psn)
            .map_err(|e| KioskError::Backend(e.to_string()))
    }

    /// Verifies the ARQC in `field55`; approves with `arc` if valid (else answers `05`), and
    /// returns ARPC method 1 ‖ ARC as tag 91.
    pub fn authorise(
        &self,
        pan: &str,
        psn: &str,
        field55: &[u8],
        arc: [u8; 2],
    ) -> Result<Authorisation, KioskError> {
        let data =
            emv::ac_input_from_field55(field55).map_err(|e| KioskError::Backend(e.to_string()))?;
        let alg = data.iad.algorithm;
        let mk = self.card_mk(alg, |s| &s.ac, pan, psn)?;
        let sk = cc::derive_ac_session_key(alg, &mk, data.atc);
        let arqc_valid =
            data.cid == emv::cid::ARQC && cc::verify_ac(alg, &sk, &data.input, &data.ac);
        let arc = if arqc_valid { arc } else { *b"05" };
        let arpc = cc::arpc_method_1(alg, &sk, &data.ac, arc);
        let mut iad = arpc.to_vec();
        iad.extend_from_slice(&arc);
        Ok(Authorisation {
            arqc_valid,
            response: IssuerResponse {
                arc,
                issuer_authentication_data: Some(iad),
                scripts: Vec::new(),
            },
        })
    }

    /// Builds one issuer script template (71 or 72) holding `cmd`, MACed for the cryptogram in
    /// `field55` (ARQC or AAC).
    pub fn script(
        &self,
        pan: &str,
        psn: &str,
        field55: &[u8],
        template: u8,
        script_id: [u8; 4],
        cmd: &ScriptCommand,
    ) -> Result<Vec<u8>, KioskError> {
        let d: CryptogramData =
            emv::ac_input_from_field55(field55).map_err(|e| KioskError::Backend(e.to_string()))?;
        let alg = d.iad.algorithm;
        let (ins, p2, body) = match cmd {
            ScriptCommand::ApplicationBlock => (0x1E, 0x00, Vec::new()),
            ScriptCommand::ApplicationUnblock => (0x18, 0x00, Vec::new()),
            ScriptCommand::PinUnblock => (0x24, 0x00, Vec::new()),
            ScriptCommand::PinChange(pin) => {
                let mk_smc = self.card_mk(alg, |s| &s.smc, pan, psn)?;
                let sk_smc = cc::derive_sm_session_key(alg, &mk_smc, d.atc, d.ac);
                (
                    0x24,
                    0x02,
                    cc::encrypt_pin_change(alg, &sk_smc, pin)
                        .map_err(|e| KioskError::Backend(e.to_string()))?,
                )
            }
        };
        let mk_smi = self.card_mk(alg, |s| &s.smi, pan, psn)?;
        let sk_smi = cc::derive_sm_session_key(alg, &mk_smi, d.atc, d.ac);
        let lc = (body.len() + 4) as u8;
        let header = [0x84, ins, 0x00, p2, lc];
        let mac = cc::script_mac(alg, &sk_smi, header, d.atc, &d.ac, &body);
        let mut apdu = header.to_vec();
        apdu.extend_from_slice(&body);
        apdu.extend_from_slice(&mac);
        Ok(tlv::encode_constructed(
            u32::from(template),
            &[
                tlv::encode(t::ISSUER_SCRIPT_ID, &script_id),
                tlv::encode(t::ISSUER_SCRIPT_COMMAND, &apdu),
            ],
        ))
    }

    fn ssse_key(&self, province: &CardKey, card_id: &str) -> Result<CardKey, KioskError> {
        let city = card_id
            .get(..6)
            .ok_or_else(|| KioskError::Backend("card identification code too short".into()))?;
        cc::derive_ssse_card_key_from_province(self.ssse_alg, province, city, card_id)
            .map_err(|e| KioskError::Backend(e.to_string()))
    }
}

impl SsseBackend for IssuerSim {
    fn verify_internal_auth(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        response: &[u8],
    ) -> Result<bool, KioskError> {
        let k = self.ssse_key(&self.province_internal, card_id)?;
        Ok(cc::verify_ssse_internal_auth(
            self.ssse_alg,
            &k,
            challenge,
            response,
        ))
    }

    fn external_auth_cryptogram(
        &mut self,
        card_id: &str,
        card_challenge: &[u8],
    ) -> Result<Vec<u8>, KioskError> {
        let k = self.ssse_key(&self.province_external, card_id)?;
        cc::ssse_external_auth_cryptogram(self.ssse_alg, &k, card_challenge)
            .map_err(|e| KioskError::Backend(e.to_string()))
    }

    fn pin_unblock_mac(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        new_pin_bcd: &[u8],
    ) -> Result<[u8; 4], KioskError> {
        let k = self.ssse_key(&self.province_pin_unblock, card_id)?;
        cc::ssse_pin_unblock_mac(self.ssse_alg, &k, challenge, new_pin_bcd)
            .map_err(|e| KioskError::Backend(e.to_string()))
    }

    fn update_record_mac(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        p1p2: [u8; 2],
        record: &[u8],
    ) -> Result<[u8; 4], KioskError> {
        let k = self.ssse_key(&self.province_line_protection, card_id)?;
        let [p1, p2] = p1p2;
        cc::ssse_update_record_mac(self.ssse_alg, &k, challenge, p1, p2, record)
            .map_err(|e| KioskError::Backend(e.to_string()))
    }
}
