//! The [`Hsm`] trait over host commands: each method writes its command body, sends it with
//! [`HsmClient::call`] and reads the reply.

use async_trait::async_trait;

use super::fields::{
    alg_char, key_and_kcv, pan_field, parse_kcv, pin_key_fields, script_fields, sealed_key_reply,
    split_token_kcv,
};
use super::HsmClient;
use crate::codec::f_padded_12;
use crate::cvv::CvvKind;
use crate::datakey::DataKey;
use crate::error::HsmError;
use crate::hsm::{
    ArpcMethod, ArqcOutcome, ArqcRequest, CardKeyDerivation, CardMasterKey, Diagnostics,
    GeneratedKey, Hsm, PinBlockIn, PinVerificationMethod, ScriptContext, SsseCardRef,
    TranslatedPin,
};
use crate::keys::{
    Cvk, DataKeyToken, ImkSmc, ImkSmi, KeyScheme, KeyToken, KeyType, MacKey, PinKey, Pvk,
    SsseExternalAuthKey, SsseInternalAuthKey, SsseLineProtectionKey, SssePinUnblockKey, Tpk,
    TypedKey, Zek, Zmk, Zpk,
};
use crate::mac::{MacAlgorithm, MacPadding};
use crate::pin::{account_number_12, EncryptedPinBlock, PinBlockFormat};
use crate::transport_key::TransportKeyPair;

#[async_trait]
impl Hsm for HsmClient {
    async fn translate_pin_tpk_to_zpk(
        &self,
        tpk: &Tpk,
        zpk: &Zpk,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError> {
        translate(self, b"CA", tpk.token(), zpk, pin, out_format).await
    }

    async fn translate_pin_zpk_to_zpk(
        &self,
        source: &Zpk,
        destination: &Zpk,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError> {
        translate(self, b"CC", source.token(), destination, pin, out_format).await
    }

    async fn verify_pin(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        method: &PinVerificationMethod,
    ) -> Result<bool, HsmError> {
        let account = account_number_12(&pin.pan)?;
        let (tpk, tok) = match key {
            PinKey::Tpk(k) => (true, k.token()),
            PinKey::Zpk(k) => (false, k.token()),
        };
        match method {
            PinVerificationMethod::Ibm3624 {
                pvk,
                decimalisation_table,
                validation_data,
                offset,
                check_length,
            } => {
                let v = f_padded_12(validation_data);
                let o = f_padded_12(offset);
                let body = format!(
                    "{tok}{}12{}{}{:02}{account}{decimalisation_table}{v}{o}",
                    pvk.token(),
                    pin.block.to_hex(),
                    pin.format.code(),
                    check_length
                );
                self.verify(if tpk { b"DA" } else { b"EA" }, body.into_bytes())
                    .await
            }
            PinVerificationMethod::VisaPvv { pvk, pvki, pvv } => {
                let body = format!(
                    "{tok}{}{}{}{account}{pvki}{pvv}",
                    pvk.token(),
                    pin.block.to_hex(),
                    pin.format.code()
                );
                self.verify(if tpk { b"DC" } else { b"EC" }, body.into_bytes())
                    .await
            }
        }
    }

    async fn generate_ibm_offset(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        pvk: &Pvk,
        decimalisation_table: &str,
        validation_data: &str,
    ) -> Result<String, HsmError> {
        let v = f_padded_12(validation_data);
        let body = format!(
            "{}{}{}{}04{}{decimalisation_table}{v}",
            pin_key_fields(key),
            pvk.token(),
            pin.block.to_hex(),
            pin.format.code(),
            account_number_12(&pin.pan)?
        );
        let out = self.text(b"BK", body).await?;
        Ok(out.trim_end_matches('F').to_string())
    }

    async fn generate_pvv(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        pvk: &Pvk,
        pvki: u8,
    ) -> Result<String, HsmError> {
        let body = format!(
            "{}{}{}{}{}{pvki}",
            pin_key_fields(key),
            pvk.token(),
            pin.block.to_hex(),
            pin.format.code(),
            account_number_12(&pin.pan)?
        );
        self.text(b"FW", body).await
    }

    async fn generate_cvv(
        &self,
        cvk: &Cvk,
        kind: CvvKind,
        pan: &str,
        expiry_yymm: &str,
        service_code: &str,
    ) -> Result<String, HsmError> {
        let sc = kind.effective_service_code(service_code);
        self.text(b"CW", format!("{}{pan};{expiry_yymm}{sc}", cvk.token()))
            .await
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
        if cvv.len() != 3 {
            return Err(HsmError::InvalidInput);
        }
        let sc = kind.effective_service_code(service_code);
        self.verify(
            b"CY",
            format!("{}{cvv}{pan};{expiry_yymm}{sc}", cvk.token()).into_bytes(),
        )
        .await
    }

    async fn verify_arqc_and_generate_arpc(
        &self,
        req: &ArqcRequest,
    ) -> Result<ArqcOutcome, HsmError> {
        let (method, tail) = match req.arpc {
            ArpcMethod::None => ('0', String::new()),
            ArpcMethod::Method1 { arc } => ('1', hex::encode_upper(arc)),
            ArpcMethod::Method2 {
                csu,
                proprietary_len,
                proprietary,
            } => {
                let n = usize::from(proprietary_len.min(8));
                (
                    '2',
                    format!(
                        "{}{n}{}",
                        hex::encode_upper(csu),
                        hex::encode_upper(&proprietary[..n])
                    ),
                )
            }
        };
        let body = format!(
            "{}{method}{}{}{}{:04X}{}{}{tail}",
            alg_char(req.algorithm),
            req.imk_ac.token(),
            pan_field(&req.pan, &req.psn)?,
            hex::encode_upper(req.atc),
            req.transaction_data.len(),
            hex::encode_upper(&req.transaction_data),
            hex::encode_upper(req.arqc)
        );
        match self.text(b"XA", body).await {
            Ok(arpc_hex) => {
                let arpc = hex::decode(&arpc_hex).map_err(|_| HsmError::InvalidInput)?;
                Ok(ArqcOutcome {
                    verified: true,
                    arpc: if arpc.is_empty() { None } else { Some(arpc) },
                })
            }
            Err(HsmError::VerificationFailed) => Ok(ArqcOutcome {
                verified: false,
                arpc: None,
            }),
            Err(e) => Err(e),
        }
    }

    async fn issuer_script_mac(
        &self,
        imk_smi: &ImkSmi,
        ctx: &ScriptContext,
        header: [u8; 5],
        data: &[u8],
    ) -> Result<[u8; 4], HsmError> {
        let body = format!(
            "{}{}{}{}{:04X}{}",
            alg_char(ctx.algorithm),
            imk_smi.token(),
            script_fields(ctx)?,
            hex::encode_upper(header),
            data.len(),
            hex::encode_upper(data)
        );
        let out = self.text(b"XC", body).await?;
        let mut m = [0u8; 4];
        hex::decode_to_slice(out, &mut m).map_err(|_| HsmError::InvalidInput)?;
        Ok(m)
    }

    async fn encrypt_pin_change(
        &self,
        imk_smc: &ImkSmc,
        ctx: &ScriptContext,
        key: &PinKey,
        new_pin: &PinBlockIn,
    ) -> Result<Vec<u8>, HsmError> {
        let body = format!(
            "{}{}{}{}{}{}",
            alg_char(ctx.algorithm),
            imk_smc.token(),
            pin_key_fields(key),
            new_pin.block.to_hex(),
            new_pin.format.code(),
            script_fields(ctx)?
        );
        hex::decode(self.text(b"XE", body).await?).map_err(|_| HsmError::InvalidInput)
    }

    async fn verify_ssse_internal_auth(
        &self,
        key: &SsseInternalAuthKey,
        card: &SsseCardRef,
        challenge: &[u8],
        response: &[u8],
    ) -> Result<bool, HsmError> {
        if response.len() != card.algorithm.block_len() {
            return Ok(false);
        }
        let body = format!(
            "{}{}{}{}{:02X}{}{}",
            alg_char(card.algorithm),
            key.token(),
            card.city_code,
            card.card_id,
            challenge.len(),
            hex::encode_upper(challenge),
            hex::encode_upper(response)
        );
        self.verify(b"XG", body.into_bytes()).await
    }

    async fn ssse_external_auth_cryptogram(
        &self,
        key: &SsseExternalAuthKey,
        card: &SsseCardRef,
        card_challenge: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let body = format!(
            "{}{}{}{}{:02X}{}",
            alg_char(card.algorithm),
            key.token(),
            card.city_code,
            card.card_id,
            card_challenge.len(),
            hex::encode_upper(card_challenge)
        );
        hex::decode(self.text(b"XI", body).await?).map_err(|_| HsmError::InvalidInput)
    }

    async fn ssse_pin_unblock_mac(
        &self,
        key: &SssePinUnblockKey,
        card: &SsseCardRef,
        challenge: &[u8],
        new_pin_bcd: &[u8],
    ) -> Result<[u8; 4], HsmError> {
        if challenge.len() > 0xFF || new_pin_bcd.len() > 0xFF {
            return Err(HsmError::InvalidInput);
        }
        let mut body = format!(
            "{}{}{}{}{:02X}{}{:02X}{}",
            alg_char(card.algorithm),
            key.token(),
            card.city_code,
            card.card_id,
            challenge.len(),
            hex::encode_upper(challenge),
            new_pin_bcd.len(),
            hex::encode_upper(new_pin_bcd)
        );
        // The body carries the new PIN: wipe it once sent.
        let out = self.call(b"XU", body.as_bytes()).await;
        zeroize::Zeroize::zeroize(&mut body);
        let mut mac = [0u8; 4];
        hex::decode_to_slice(out?, &mut mac).map_err(|_| HsmError::InvalidInput)?;
        Ok(mac)
    }

    async fn ssse_update_record_mac(
        &self,
        key: &SsseLineProtectionKey,
        card: &SsseCardRef,
        challenge: &[u8],
        p1p2: [u8; 2],
        record: &[u8],
    ) -> Result<[u8; 4], HsmError> {
        if challenge.len() > 0xFF || record.len() > 0xFF {
            return Err(HsmError::InvalidInput);
        }
        let body = format!(
            "{}{}{}{}{:02X}{}{}{:02X}{}",
            alg_char(card.algorithm),
            key.token(),
            card.city_code,
            card.card_id,
            challenge.len(),
            hex::encode_upper(challenge),
            hex::encode_upper(p1p2),
            record.len(),
            hex::encode_upper(record)
        );
        let out = self.text(b"XR", body).await?;
        let mut mac = [0u8; 4];
        hex::decode_to_slice(out, &mut mac).map_err(|_| HsmError::InvalidInput)?;
        Ok(mac)
    }

    async fn generate_mac(
        &self,
        key: &MacKey,
        algorithm: MacAlgorithm,
        padding: MacPadding,
        data: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        // The full MAC: 16 bytes for SM4 and AES-CMAC, 8 for 3DES.
        let size = if algorithm.mac_len() == 16 { '2' } else { '1' };
        let body = mac_body(key, algorithm, padding, size, data, None)?;
        hex::decode(self.call(b"M6", &body).await?).map_err(|_| HsmError::InvalidInput)
    }

    async fn verify_mac(
        &self,
        key: &MacKey,
        algorithm: MacAlgorithm,
        padding: MacPadding,
        data: &[u8],
        mac: &[u8],
    ) -> Result<bool, HsmError> {
        let size = match mac.len() {
            4 => '0',
            8 => '1',
            16 => '2',
            _ => return Err(HsmError::InvalidInput),
        };
        let body = mac_body(key, algorithm, padding, size, data, Some(mac))?;
        self.verify(b"M8", body).await
    }

    async fn generate_key(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        export_under: Option<&Zmk>,
    ) -> Result<GeneratedKey, HsmError> {
        let body = match export_under {
            None => format!("0{}{}", key_type.code(), scheme.as_char()),
            Some(z) => format!(
                "1{}{}{}{}",
                key_type.code(),
                scheme.as_char(),
                z.token(),
                scheme.as_char()
            ),
        };
        let out = self.text(b"A0", body).await?;
        let (token, under_zmk, check_value) = split_token_kcv(&out)?;
        Ok(GeneratedKey {
            token,
            under_zmk,
            check_value,
        })
    }

    async fn import_key(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key_under_zmk: &str,
        lmk_scheme: KeyScheme,
    ) -> Result<GeneratedKey, HsmError> {
        let out = self
            .text(
                b"A6",
                format!(
                    "{}{}{key_under_zmk}{}",
                    key_type.code(),
                    zmk.token(),
                    lmk_scheme.as_char()
                ),
            )
            .await?;
        let (token, _, check_value) = split_token_kcv(&out)?;
        Ok(GeneratedKey {
            token,
            under_zmk: None,
            check_value,
        })
    }

    async fn export_key(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key: &KeyToken,
        zmk_scheme: KeyScheme,
    ) -> Result<(String, [u8; 3]), HsmError> {
        let out = self
            .text(
                b"A8",
                format!(
                    "{}{}{key}{}",
                    key_type.code(),
                    zmk.token(),
                    zmk_scheme.as_char()
                ),
            )
            .await?;
        let (under_zmk, kcv) = key_and_kcv(&out)?;
        Ok((under_zmk.to_string(), kcv))
    }

    async fn form_key_from_components(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        components: &[KeyToken],
    ) -> Result<GeneratedKey, HsmError> {
        if !(2..=9).contains(&components.len()) {
            return Err(HsmError::InvalidInput);
        }
        let mut body = format!(
            "{}{}{}",
            components.len(),
            key_type.code(),
            scheme.as_char()
        );
        for c in components {
            body.push_str(&c.to_string());
        }
        let out = self.text(b"A4", body).await?;
        let (token, _, check_value) = split_token_kcv(&out)?;
        Ok(GeneratedKey {
            token,
            under_zmk: None,
            check_value,
        })
    }

    async fn key_check_value(
        &self,
        key_type: KeyType,
        key: &KeyToken,
    ) -> Result<[u8; 3], HsmError> {
        let flag = if key.scheme() == KeyScheme::T {
            '2'
        } else {
            '1'
        };
        parse_kcv(
            &self
                .text(b"BU", format!("FF{flag}{key};{}", key_type.code()))
                .await?,
        )
    }

    async fn random_bytes(&self, len: usize) -> Result<Vec<u8>, HsmError> {
        if len > 999 {
            return Err(HsmError::DataLength);
        }
        hex::decode(self.text(b"XK", format!("{len:03}")).await?)
            .map_err(|_| HsmError::InvalidInput)
    }

    async fn generate_data_key(&self) -> Result<(DataKey, DataKeyToken), HsmError> {
        let pair = TransportKeyPair::generate()?;
        let out = self
            .text(b"XS", hex::encode_upper(pair.public_key()))
            .await?;
        let (hsm_public, sealed, token_text) = sealed_key_reply(&out)?;
        let token: DataKeyToken = token_text.parse()?;
        let key = pair.open(&hsm_public, &sealed, token_text.as_bytes())?;
        Ok((key, token))
    }

    async fn unwrap_data_key(&self, token: &DataKeyToken) -> Result<DataKey, HsmError> {
        let pair = TransportKeyPair::generate()?;
        let token_text = token.to_string();
        let body = format!("{token_text}{}", hex::encode_upper(pair.public_key()));
        let out = self.text(b"XW", body).await?;
        let (hsm_public, sealed, rest) = sealed_key_reply(&out)?;
        if !rest.is_empty() {
            return Err(HsmError::InvalidInput);
        }
        pair.open(&hsm_public, &sealed, token_text.as_bytes())
    }

    async fn derive_card_key_under_zmk(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        zmk: &Zmk,
    ) -> Result<(String, [u8; 3]), HsmError> {
        let body = format!("{}{}", derivation_fields(master, derivation)?, zmk.token());
        let out = self.text(b"XQ", body).await?;
        let (under_zmk, kcv) = key_and_kcv(&out)?;
        Ok((under_zmk.to_string(), kcv))
    }

    async fn derive_card_key_under_zek(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        zek: &Zek,
    ) -> Result<(String, [u8; 3]), HsmError> {
        let body = format!("{}{}", derivation_fields(master, derivation)?, zek.token());
        let out = self.text(b"XT", body).await?;
        let (under_zek, kcv) = key_and_kcv(&out)?;
        Ok((under_zek.to_string(), kcv))
    }

    async fn diagnostics(&self) -> Result<Diagnostics, HsmError> {
        let out = self.text(b"NC", String::new()).await?;
        let (lmk, fw) = out.split_at_checked(16).ok_or(HsmError::InvalidInput)?;
        Ok(Diagnostics {
            lmk_check_value: lmk.chars().take(6).collect(),
            firmware: fw.to_string(),
        })
    }
}

async fn translate(
    client: &HsmClient,
    command: &[u8; 2],
    src: &KeyToken,
    dst: &Zpk,
    pin: &PinBlockIn,
    out_format: PinBlockFormat,
) -> Result<TranslatedPin, HsmError> {
    let account = account_number_12(&pin.pan)?;
    let mut body = format!(
        "{src}{dst}12{}{}{}{account}",
        pin.block.to_hex(),
        pin.format.code(),
        out_format.code()
    );
    if pin.format == PinBlockFormat::Iso4 || out_format == PinBlockFormat::Iso4 {
        body.push_str(&format!(";{:02}{}", pin.pan.len(), pin.pan));
    }
    let out = client.text(command, body).await?;
    let len: u8 = out
        .get(..2)
        .and_then(|s| s.parse().ok())
        .ok_or(HsmError::InvalidInput)?;
    let block_hex = out
        .get(2..out.len().saturating_sub(2))
        .ok_or(HsmError::InvalidInput)?;
    Ok(TranslatedPin {
        block: EncryptedPinBlock::from_hex(block_hex)?,
        pin_length: len,
    })
}

fn mac_body(
    key: &MacKey,
    algorithm: MacAlgorithm,
    padding: MacPadding,
    size: char,
    data: &[u8],
    mac: Option<&[u8]>,
) -> Result<Vec<u8>, HsmError> {
    if data.len() > 0xFFFF {
        return Err(HsmError::DataLength);
    }
    let (kt, tok) = key.parts();
    let mut body = format!(
        "00{size}{}{}{}{tok}{:04X}",
        char::from(algorithm.code()),
        char::from(padding.code()),
        kt.code(),
        data.len()
    )
    .into_bytes();
    body.extend_from_slice(data);
    if let Some(m) = mac {
        body.extend_from_slice(hex::encode_upper(m).as_bytes());
    }
    Ok(body)
}

/// The fields XQ and XT share: master key type and token, then how the card key is derived.
fn derivation_fields(
    master: &CardMasterKey,
    derivation: &CardKeyDerivation,
) -> Result<String, HsmError> {
    let (kt, tok) = master.parts();
    let how = match derivation {
        CardKeyDerivation::Emv {
            algorithm,
            pan,
            psn,
        } => format!("E{}{}", alg_char(*algorithm), pan_field(pan, psn)?),
        CardKeyDerivation::Ssse(card) => format!(
            "S{}{}{}",
            alg_char(card.algorithm),
            card.city_code,
            card.card_id
        ),
    };
    Ok(format!("{}{tok}{how}", kt.code()))
}
