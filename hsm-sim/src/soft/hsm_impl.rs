//! The [`Hsm`] trait on [`SoftHsm`]: each method unwraps its keys (cached) and calls the pure
//! computations of [`crate::pin`], [`crate::card_crypto`], [`crate::cvv`] and [`crate::mac`].

use async_trait::async_trait;

use crate::block::ct_eq;
use crate::card_crypto;
use crate::crypto::fill_random;
use crate::cvv::{compute_cvv, CvvKind};
use crate::datakey::DataKey;
use crate::error::HsmError;
use crate::hsm::{
    ArqcOutcome, ArqcRequest, CardKeyDerivation, CardMasterKey, Diagnostics, GeneratedKey, Hsm,
    PinBlockIn, PinVerificationMethod, ScriptContext, SsseCardRef, TranslatedPin, RANDOM_LEN_MAX,
};
use crate::keys::{
    Cvk, DataKeyToken, ImkSmc, ImkSmi, KeyScheme, KeyToken, KeyType, MacKey, PinKey, Pvk,
    SsseExternalAuthKey, SsseInternalAuthKey, SsseLineProtectionKey, SssePinUnblockKey, Tpk, Zek,
    Zmk, Zpk,
};
use crate::mac::{compute_mac, MacAlgorithm, MacPadding};
use crate::pin::{self, PinBlockFormat};

use super::SoftHsm;

#[async_trait]
impl Hsm for SoftHsm {
    async fn translate_pin_tpk_to_zpk(
        &self,
        tpk: &Tpk,
        zpk: &Zpk,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError> {
        let src = self.unwrap_typed(tpk)?;
        self.translate(src, self.unwrap_typed(zpk), pin, out_format)
    }

    async fn translate_pin_zpk_to_zpk(
        &self,
        source: &Zpk,
        destination: &Zpk,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError> {
        let src = self.unwrap_typed(source)?;
        self.translate(src, self.unwrap_typed(destination), pin, out_format)
    }

    async fn verify_pin(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        method: &PinVerificationMethod,
    ) -> Result<bool, HsmError> {
        self.verify_pin_sync(key, pin, method)
    }

    async fn generate_ibm_offset(
        &self,
        key: &PinKey,
        pin_in: &PinBlockIn,
        pvk: &Pvk,
        decimalisation_table: &str,
        validation_data: &str,
    ) -> Result<String, HsmError> {
        let pk = self.unwrap_pin_key(key)?;
        let pv = self.unwrap_typed(pvk).map_err(HsmError::into_destination)?;
        let clear = self.decrypt_pin(&pk, pin_in)?;
        self.ibm_offset(
            &pv,
            &clear,
            &pin_in.pan,
            decimalisation_table,
            validation_data,
        )
    }

    async fn generate_pvv(
        &self,
        key: &PinKey,
        pin_in: &PinBlockIn,
        pvk: &Pvk,
        pvki: u8,
    ) -> Result<String, HsmError> {
        let pk = self.unwrap_pin_key(key)?;
        let pv = self.unwrap_typed(pvk).map_err(HsmError::into_destination)?;
        let clear = self.decrypt_pin(&pk, pin_in)?;
        pin::visa_pvv(
            &pv.cipher,
            &clear,
            &pin::account_number_12(&pin_in.pan)?,
            pvki,
        )
    }

    async fn generate_cvv(
        &self,
        cvk: &Cvk,
        kind: CvvKind,
        pan: &str,
        expiry_yymm: &str,
        service_code: &str,
    ) -> Result<String, HsmError> {
        let k = self.unwrap_typed(cvk)?;
        compute_cvv(
            &k.clear.as_16()?,
            pan,
            expiry_yymm,
            kind.effective_service_code(service_code),
        )
    }

    async fn verify_cvv(
        &self,
        cvk: &Cvk,
        kind: CvvKind,
        pan: &str,
        expiry_yymm: &str,
        service_code: &str,
        cvv: &str,
    ) -> Result<bool, HsmError> {
        let k = self.unwrap_typed(cvk)?;
        let c = compute_cvv(
            &k.clear.as_16()?,
            pan,
            expiry_yymm,
            kind.effective_service_code(service_code),
        )?;
        Ok(ct_eq(c.as_bytes(), cvv.as_bytes()))
    }

    async fn verify_arqc_and_generate_arpc(
        &self,
        req: &ArqcRequest,
    ) -> Result<ArqcOutcome, HsmError> {
        self.arqc_sync(req)
    }

    async fn issuer_script_mac(
        &self,
        imk_smi: &ImkSmi,
        ctx: &ScriptContext,
        header: [u8; 5],
        data: &[u8],
    ) -> Result<[u8; 4], HsmError> {
        let imk = self.unwrap_typed(imk_smi)?;
        let mk = self.icc_key(&imk, ctx.algorithm, &ctx.pan, &ctx.psn)?;
        let sk = card_crypto::derive_sm_session_key(ctx.algorithm, &mk, ctx.atc, ctx.arqc);
        Ok(card_crypto::script_mac(
            ctx.algorithm,
            &sk,
            header,
            ctx.atc,
            &ctx.arqc,
            data,
        ))
    }

    async fn encrypt_pin_change(
        &self,
        imk_smc: &ImkSmc,
        ctx: &ScriptContext,
        key: &PinKey,
        new_pin: &PinBlockIn,
    ) -> Result<Vec<u8>, HsmError> {
        let pk = self.unwrap_pin_key(key)?;
        let imk = self
            .unwrap_typed(imk_smc)
            .map_err(HsmError::into_destination)?;
        let clear = self.decrypt_pin(&pk, new_pin)?;
        let mk = self.icc_key(&imk, ctx.algorithm, &ctx.pan, &ctx.psn)?;
        let sk = card_crypto::derive_sm_session_key(ctx.algorithm, &mk, ctx.atc, ctx.arqc);
        Ok(card_crypto::encrypt_pin_change(
            ctx.algorithm,
            &sk,
            clear.expose(),
        )?)
    }

    async fn verify_ssse_internal_auth(
        &self,
        key: &SsseInternalAuthKey,
        card: &SsseCardRef,
        challenge: &[u8],
        response: &[u8],
    ) -> Result<bool, HsmError> {
        let m = self.unwrap_typed(key)?;
        let k = self.ssse_card_key(&m, card)?;
        card_crypto::ssse_internal_auth_response(card.algorithm, &k, challenge)?;
        Ok(card_crypto::verify_ssse_internal_auth(
            card.algorithm,
            &k,
            challenge,
            response,
        ))
    }

    async fn ssse_external_auth_cryptogram(
        &self,
        key: &SsseExternalAuthKey,
        card: &SsseCardRef,
        card_challenge: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let m = self.unwrap_typed(key)?;
        let k = self.ssse_card_key(&m, card)?;
        Ok(card_crypto::ssse_external_auth_cryptogram(
            card.algorithm,
            &k,
            card_challenge,
        )?)
    }

    async fn ssse_pin_unblock_mac(
        &self,
        key: &SssePinUnblockKey,
        card: &SsseCardRef,
        challenge: &[u8],
        new_pin_bcd: &[u8],
    ) -> Result<[u8; 4], HsmError> {
        let m = self.unwrap_typed(key)?;
        let k = self.ssse_card_key(&m, card)?;
        Ok(card_crypto::ssse_pin_unblock_mac(
            card.algorithm,
            &k,
            challenge,
            new_pin_bcd,
        )?)
    }

    async fn ssse_update_record_mac(
        &self,
        key: &SsseLineProtectionKey,
        card: &SsseCardRef,
        challenge: &[u8],
        p1p2: [u8; 2],
        record: &[u8],
    ) -> Result<[u8; 4], HsmError> {
        let m = self.unwrap_typed(key)?;
        let k = self.ssse_card_key(&m, card)?;
        let [p1, p2] = p1p2;
        Ok(card_crypto::ssse_update_record_mac(
            card.algorithm,
            &k,
            challenge,
            p1,
            p2,
            record,
        )?)
    }

    async fn generate_mac(
        &self,
        key: &MacKey,
        algorithm: MacAlgorithm,
        padding: MacPadding,
        data: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let (kt, tok) = key.parts();
        let k = self.unwrap(kt, tok)?;
        compute_mac(&k.clear, &k.cipher, algorithm, padding, data)
    }

    async fn verify_mac(
        &self,
        key: &MacKey,
        algorithm: MacAlgorithm,
        padding: MacPadding,
        data: &[u8],
        mac: &[u8],
    ) -> Result<bool, HsmError> {
        if !(4..=16).contains(&mac.len()) {
            return Err(HsmError::InvalidInput);
        }
        let full = self.generate_mac(key, algorithm, padding, data).await?;
        Ok(full.len() >= mac.len() && ct_eq(&full[..mac.len()], mac))
    }

    async fn generate_key(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        export_under: Option<&Zmk>,
    ) -> Result<GeneratedKey, HsmError> {
        self.generate_sync(key_type, scheme, export_under)
    }

    async fn import_key(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key_under_zmk: &str,
        lmk_scheme: KeyScheme,
    ) -> Result<GeneratedKey, HsmError> {
        self.import_sync(key_type, zmk, key_under_zmk, lmk_scheme)
    }

    async fn export_key(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key: &KeyToken,
        zmk_scheme: KeyScheme,
    ) -> Result<(String, [u8; 3]), HsmError> {
        self.export_sync(key_type, zmk, key, zmk_scheme)
    }

    async fn form_key_from_components(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        components: &[KeyToken],
    ) -> Result<GeneratedKey, HsmError> {
        self.components_sync(key_type, scheme, components)
    }

    async fn key_check_value(
        &self,
        key_type: KeyType,
        key: &KeyToken,
    ) -> Result<[u8; 3], HsmError> {
        Ok(self.unwrap(key_type, key)?.clear.check_value())
    }

    async fn random_bytes(&self, len: usize) -> Result<Vec<u8>, HsmError> {
        if !(1..=RANDOM_LEN_MAX).contains(&len) {
            return Err(HsmError::DataLength);
        }
        let mut v = vec![0u8; len];
        fill_random(&mut v)?;
        Ok(v)
    }

    async fn generate_data_key(&self) -> Result<(DataKey, DataKeyToken), HsmError> {
        let (clear, token) = self.new_data_key()?;
        Ok((DataKey::from_slice(clear.bytes())?, token))
    }

    async fn unwrap_data_key(&self, token: &DataKeyToken) -> Result<DataKey, HsmError> {
        DataKey::from_slice(self.data_key_clear(token)?.bytes())
    }

    async fn derive_card_key_under_zmk(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        zmk: &Zmk,
    ) -> Result<(String, [u8; 3]), HsmError> {
        let z = self.unwrap_typed(zmk).map_err(HsmError::into_destination)?;
        self.derive_card_key_under(master, derivation, &z.clear)
    }

    async fn derive_card_key_under_zek(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        zek: &Zek,
    ) -> Result<(String, [u8; 3]), HsmError> {
        let z = self.unwrap_typed(zek).map_err(HsmError::into_destination)?;
        self.derive_card_key_under(master, derivation, &z.clear)
    }

    async fn diagnostics(&self) -> Result<Diagnostics, HsmError> {
        Ok(Diagnostics {
            lmk_check_value: hex::encode_upper(self.lmk.check_value()),
            firmware: concat!("hsm-sim-", env!("CARGO_PKG_VERSION")).to_string(),
        })
    }
}

impl SoftHsm {
    /// A per-card key derived from `master` and encrypted under the clear key-encrypting key
    /// `kek` (a ZMK for XQ, a transport ZEK for XT). The derivation must fit the master key:
    /// EMV for IMK-AC/SMI/SMC, SSSE dispersal for the SSSE province keys (error 68 otherwise).
    fn derive_card_key_under(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        kek: &crate::keys::ClearKey,
    ) -> Result<(String, [u8; 3]), HsmError> {
        let (kt, tok) = master.parts();
        let m = self.unwrap(kt, tok)?;
        let is_emv_key = matches!(kt, KeyType::ImkAc | KeyType::ImkSmi | KeyType::ImkSmc);
        let (alg, card_key) = match derivation {
            CardKeyDerivation::Emv {
                algorithm,
                pan,
                psn,
            } if is_emv_key => (*algorithm, self.icc_key(&m, *algorithm, pan, psn)?),
            CardKeyDerivation::Ssse(card) if !is_emv_key => {
                (card.algorithm, self.ssse_card_key(&m, card)?)
            }
            _ => return Err(HsmError::FunctionNotPermitted),
        };
        let scheme = KeyScheme::for_card_algorithm(alg);
        let mut bytes = card_key.expose().to_vec();
        Self::zmk_crypt(kek, scheme, &mut bytes, true)?;
        Ok((
            format!("{}{}", scheme.as_char(), hex::encode_upper(&bytes)),
            card_key.check_value(alg),
        ))
    }
}
