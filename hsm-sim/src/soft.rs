//! The software HSM: the [`Hsm`] trait implemented in-process on an [`LmkSet`].
//!
//! Why this exists: tests, the demo and the `hsm-sim` server need an HSM without hardware. Keys
//! arrive only as LMK tokens; each token is unwrapped at most once and its expanded key schedule
//! is kept in a bounded cache ([`KEY_CACHE_ENTRIES_MAX`]), so a hot ZPK or IMK is not re-expanded
//! per call. Clear keys and PINs live only in zeroizing types inside this module's functions.
//!
//! Beyond the trait, [`SoftHsm`] offers the LMK-PIN functions used by payShield commands JE, JG,
//! DE and DG. Our "PIN under LMK" is 16 hex digits: 3DES-ECB under LMK pair 02-03 of the ISO
//! format 0 block of the PIN and account (payShield's own LMK-PIN encoding is different and
//! undocumented; tokens are only meaningful to this simulator).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use zeroize::Zeroize;

use crate::block::ct_eq;
use crate::card_crypto::{self, CardAlgorithm, CardCipher, CardKey, ClearPin};
use crate::crypto::{fill_random, WorkingCipher};
use crate::cvv::{compute_cvv, CvvKind};
use crate::datakey::DataKey;
use crate::error::HsmError;
use crate::hsm::{
    ArpcMethod, ArqcOutcome, ArqcRequest, CardKeyDerivation, CardMasterKey, Diagnostics,
    GeneratedKey, Hsm, PinBlockIn, PinVerificationMethod, ScriptContext, SsseCardRef,
    TranslatedPin, RANDOM_LEN_MAX,
};
use crate::keys::{
    ClearKey, Cvk, DataKeyToken, ImkSmc, ImkSmi, KeyScheme, KeyToken, KeyType, MacKey, PinKey, Pvk,
    SsseExternalAuthKey, SsseInternalAuthKey, SssePinUnblockKey, Tpk, TypedKey, Zmk, Zpk,
};
use crate::lmk::{LmkSet, PartVariant};
use crate::mac::{compute_mac, MacAlgorithm, MacPadding};
use crate::pin::{self, EncryptedPinBlock, PinBlockFormat};

/// Upper bound on cached unwrapped keys; the cache is emptied when it fills.
pub const KEY_CACHE_ENTRIES_MAX: usize = 10_000;

/// LMK pair 02-03 (index 1) protects PINs under the LMK.
const LMK_PIN_PAIR: usize = 1;

/// An unwrapped key with its expanded schedules.
struct CachedKey {
    clear: ClearKey,
    cipher: WorkingCipher,
    card: Option<(CardAlgorithm, CardCipher)>,
}

/// Unwrapped keys by token, one entry per key type the token was used as.
type KeyCache = HashMap<KeyToken, Vec<(KeyType, Arc<CachedKey>)>>;

/// A PIN encrypted under the LMK (16 hex digits; see the module doc).
#[derive(Clone, PartialEq, Eq)]
pub struct LmkPin(pub String);

impl std::fmt::Debug for LmkPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LmkPin(****)")
    }
}

/// The in-process software HSM.
pub struct SoftHsm {
    lmk: Arc<LmkSet>,
    /// token → unwrapped key per key type (a token is looked up without cloning it).
    cache: RwLock<KeyCache>,
}

impl std::fmt::Debug for SoftHsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftHsm({:?})", self.lmk)
    }
}

fn card_alg_of(scheme: KeyScheme) -> Option<CardAlgorithm> {
    match scheme {
        KeyScheme::U | KeyScheme::X => Some(CardAlgorithm::Tdes),
        KeyScheme::G => Some(CardAlgorithm::Sm4),
        _ => None,
    }
}

impl SoftHsm {
    /// A software HSM on `lmk`.
    pub fn new(lmk: LmkSet) -> SoftHsm {
        SoftHsm {
            lmk: Arc::new(lmk),
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// A software HSM on the published test LMK.
    pub fn with_test_lmk() -> SoftHsm {
        SoftHsm::new(LmkSet::test_lmk())
    }

    /// The LMK set (for wrapping clear keys in tests and at the console).
    pub fn lmk(&self) -> &LmkSet {
        &self.lmk
    }

    /// Wrap a clear key given in hex under the LMK (console/test helper, never over the wire).
    pub fn import_clear_key(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        clear_hex: &str,
    ) -> Result<KeyToken, HsmError> {
        let mut raw = hex::decode(clear_hex).map_err(|_| HsmError::InvalidInput)?;
        let key = ClearKey::new(scheme, raw.clone());
        raw.zeroize();
        let key = key?;
        if scheme.is_des() && !crate::block::has_odd_parity(key.bytes()) {
            return Err(HsmError::SourceKeyParity);
        }
        Ok(key.wrap(&self.lmk, key_type))
    }

    fn unwrap(&self, key_type: KeyType, token: &KeyToken) -> Result<Arc<CachedKey>, HsmError> {
        if let Ok(map) = self.cache.read() {
            if let Some(hit) = map
                .get(token)
                .and_then(|v| v.iter().find(|(kt, _)| *kt == key_type))
            {
                return Ok(Arc::clone(&hit.1));
            }
        }
        let clear = ClearKey::unwrap(&self.lmk, key_type, token)?;
        let cipher = WorkingCipher::new(&clear)?;
        let card = match card_alg_of(clear.scheme()) {
            Some(alg) => Some((alg, CardCipher::new(alg, &clear.as_16()?))),
            None => None,
        };
        let entry = Arc::new(CachedKey {
            clear,
            cipher,
            card,
        });
        if let Ok(mut map) = self.cache.write() {
            if map.len() >= KEY_CACHE_ENTRIES_MAX {
                map.clear();
            }
            map.entry(token.clone())
                .or_default()
                .push((key_type, Arc::clone(&entry)));
        }
        Ok(entry)
    }

    fn unwrap_typed<K: TypedKey>(&self, key: &K) -> Result<Arc<CachedKey>, HsmError> {
        self.unwrap(K::KEY_TYPE, key.token())
    }

    fn unwrap_pin_key(&self, key: &PinKey) -> Result<Arc<CachedKey>, HsmError> {
        let (kt, tok) = key.parts();
        self.unwrap(kt, tok)
    }

    fn decrypt_pin(&self, key: &CachedKey, pin: &PinBlockIn) -> Result<ClearPin, HsmError> {
        pin::decrypt_pin_block(&key.cipher, pin.format, &pin.block, &pin.pan)
    }

    fn translate(
        &self,
        src: Arc<CachedKey>,
        dst: Result<Arc<CachedKey>, HsmError>,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError> {
        let dst = dst.map_err(HsmError::into_destination)?;
        let clear = self.decrypt_pin(&src, pin)?;
        let block = pin::encrypt_pin_block(&dst.cipher, out_format, &clear, &pin.pan)?;
        Ok(TranslatedPin {
            block,
            pin_length: clear.len() as u8,
        })
    }

    fn card_key(key: &CachedKey, alg: CardAlgorithm) -> Result<&CardCipher, HsmError> {
        match &key.card {
            Some((a, c)) if *a == alg => Ok(c),
            _ => Err(HsmError::InvalidKeyScheme),
        }
    }

    fn icc_key(
        &self,
        imk: &CachedKey,
        alg: CardAlgorithm,
        pan: &str,
        psn: &str,
    ) -> Result<CardKey, HsmError> {
        let c = Self::card_key(imk, alg)?;
        let y = card_crypto::pan_psn_y(pan, psn)?;
        Ok(card_crypto::derive_icc_master_key_from_y(c, y))
    }

    fn ssse_card_key(&self, master: &CachedKey, card: &SsseCardRef) -> Result<CardKey, HsmError> {
        let c = Self::card_key(master, card.algorithm)?;
        let city = card_crypto::disperse_with(c, card_crypto::ssse_city_factor(&card.city_code)?);
        Ok(card_crypto::disperse(
            card.algorithm,
            &city,
            card_crypto::ssse_card_factor(&card.card_id)?,
        ))
    }

    fn lmk_pin_encrypt(&self, pin: &ClearPin, pan: &str) -> Result<LmkPin, HsmError> {
        let account = pin::account_number_12(pan)?;
        let mut block = [0u8; 8];
        let clear = pin::encrypt_pin_block_clear_iso0(pin, &account)?;
        block.copy_from_slice(&clear);
        self.lmk
            .encrypt_part(LMK_PIN_PAIR, 0, PartVariant::None, &mut block);
        Ok(LmkPin(hex::encode_upper(block)))
    }

    fn lmk_pin_decrypt(&self, lmk_pin: &LmkPin, pan: &str) -> Result<ClearPin, HsmError> {
        let mut block = [0u8; 8];
        hex::decode_to_slice(&lmk_pin.0, &mut block).map_err(|_| HsmError::InvalidInput)?;
        self.lmk
            .decrypt_part(LMK_PIN_PAIR, 0, PartVariant::None, &mut block);
        let account = pin::account_number_12(pan)?;
        pin::decode_clear_iso0(block, &account).map_err(|_| HsmError::InvalidPinBlock)
    }

    /// PIN block under a ZPK → PIN under the LMK (payShield JE).
    pub fn translate_pin_zpk_to_lmk(
        &self,
        zpk: &Zpk,
        pin: &PinBlockIn,
    ) -> Result<LmkPin, HsmError> {
        let k = self.unwrap_typed(zpk)?;
        let clear = self.decrypt_pin(&k, pin)?;
        self.lmk_pin_encrypt(&clear, &pin.pan)
    }

    /// PIN under the LMK → PIN block under a ZPK (payShield JG).
    pub fn translate_pin_lmk_to_zpk(
        &self,
        zpk: &Zpk,
        lmk_pin: &LmkPin,
        pan: &str,
        format: PinBlockFormat,
    ) -> Result<EncryptedPinBlock, HsmError> {
        let k = self.unwrap_typed(zpk).map_err(HsmError::into_destination)?;
        let clear = self.lmk_pin_decrypt(lmk_pin, pan)?;
        pin::encrypt_pin_block(&k.cipher, format, &clear, pan)
    }

    /// A clear PIN (from the issuance console) encrypted under the LMK.
    pub fn encrypt_clear_pin_under_lmk(
        &self,
        pin_digits: &str,
        pan: &str,
    ) -> Result<LmkPin, HsmError> {
        let pin = ClearPin::new(pin_digits).map_err(|_| HsmError::PinLength)?;
        self.lmk_pin_encrypt(&pin, pan)
    }

    /// IBM 3624 offset from a PIN under the LMK (payShield DE).
    pub fn generate_ibm_offset_lmk(
        &self,
        pvk: &Pvk,
        lmk_pin: &LmkPin,
        pan: &str,
        decimalisation_table: &str,
        validation_data: &str,
    ) -> Result<String, HsmError> {
        let k = self.unwrap_typed(pvk)?;
        let clear = self.lmk_pin_decrypt(lmk_pin, pan)?;
        let account = pin::account_number_12(pan)?;
        let v = pin::ibm3624_validation_block(validation_data, &account)?;
        pin::ibm3624_offset(&k.cipher, &clear, decimalisation_table, v)
    }

    /// Visa PVV from a PIN under the LMK (payShield DG).
    pub fn generate_pvv_lmk(
        &self,
        pvk: &Pvk,
        lmk_pin: &LmkPin,
        pan: &str,
        pvki: u8,
    ) -> Result<String, HsmError> {
        let k = self.unwrap_typed(pvk)?;
        let clear = self.lmk_pin_decrypt(lmk_pin, pan)?;
        pin::visa_pvv(&k.cipher, &clear, &pin::account_number_12(pan)?, pvki)
    }

    fn verify_pin_sync(
        &self,
        key: &PinKey,
        pin_in: &PinBlockIn,
        method: &PinVerificationMethod,
    ) -> Result<bool, HsmError> {
        let pk = self.unwrap_pin_key(key)?;
        let account = pin::account_number_12(&pin_in.pan)?;
        match method {
            PinVerificationMethod::Ibm3624 {
                pvk,
                decimalisation_table,
                validation_data,
                offset,
                check_length,
            } => {
                let pv = self.unwrap_typed(pvk).map_err(HsmError::into_destination)?;
                let clear = self.decrypt_pin(&pk, pin_in)?;
                let v = pin::ibm3624_validation_block(validation_data, &account)?;
                pin::ibm3624_verify(
                    &pv.cipher,
                    &clear,
                    decimalisation_table,
                    v,
                    offset,
                    usize::from(*check_length),
                )
            }
            PinVerificationMethod::VisaPvv { pvk, pvki, pvv } => {
                let pv = self.unwrap_typed(pvk).map_err(HsmError::into_destination)?;
                let clear = self.decrypt_pin(&pk, pin_in)?;
                let computed = pin::visa_pvv(&pv.cipher, &clear, &account, *pvki)?;
                Ok(ct_eq(computed.as_bytes(), pvv.as_bytes()))
            }
        }
    }

    fn arqc_sync(&self, req: &ArqcRequest) -> Result<ArqcOutcome, HsmError> {
        let imk = self.unwrap_typed(&req.imk_ac)?;
        let mk = self.icc_key(&imk, req.algorithm, &req.pan, &req.psn)?;
        let sk = card_crypto::derive_ac_session_key(req.algorithm, &mk, req.atc);
        let sk_cipher = sk.cipher(req.algorithm);
        let verified = card_crypto::verify_ac_with(&sk_cipher, &req.transaction_data, &req.arqc);
        if !verified {
            return Ok(ArqcOutcome {
                verified,
                arpc: None,
            });
        }
        let arpc = match req.arpc {
            ArpcMethod::None => None,
            ArpcMethod::Method1 { arc } => {
                Some(card_crypto::arpc_method_1_with(&sk_cipher, &req.arqc, arc).to_vec())
            }
            ArpcMethod::Method2 {
                csu,
                proprietary_len,
                proprietary,
            } => {
                let n = usize::from(proprietary_len.min(8));
                Some(
                    card_crypto::arpc_method_2(
                        req.algorithm,
                        &sk,
                        &req.arqc,
                        csu,
                        &proprietary[..n],
                    )
                    .to_vec(),
                )
            }
        };
        Ok(ArqcOutcome { verified, arpc })
    }

    fn zmk_part_cipher(zmk: &ClearKey, part: PartVariant) -> Result<WorkingCipher, HsmError> {
        let mut k = zmk.as_16()?;
        k[8] ^= match part {
            PartVariant::None => 0,
            PartVariant::Double(i) => crate::lmk::DOUBLE_LENGTH_VARIANTS[i.min(1)],
            PartVariant::Triple(i) => crate::lmk::TRIPLE_LENGTH_VARIANTS[i.min(2)],
        };
        let c = WorkingCipher::new(&ClearKey::new(KeyScheme::U, k.to_vec())?);
        k.zeroize();
        c
    }

    /// Encrypt/decrypt a key under a ZMK: 8-byte parts in ECB under the ZMK, with the same length
    /// variants as under the LMK for schemes U/T/G/A/B and none for X (X9.17).
    fn zmk_crypt(
        zmk: &ClearKey,
        scheme: KeyScheme,
        data: &mut [u8],
        encrypt: bool,
    ) -> Result<(), HsmError> {
        for (i, part) in data.chunks_mut(8).enumerate() {
            let pv = match scheme {
                KeyScheme::X => PartVariant::None,
                KeyScheme::T => PartVariant::Triple(i),
                KeyScheme::B if i >= 2 => PartVariant::Triple(i - 2),
                _ => PartVariant::Double(i),
            };
            let c = Self::zmk_part_cipher(zmk, pv)?;
            if encrypt {
                c.encrypt_block(part);
            } else {
                c.decrypt_block(part);
            }
        }
        Ok(())
    }

    fn export_sync(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key: &KeyToken,
        zmk_scheme: KeyScheme,
    ) -> Result<(String, [u8; 3]), HsmError> {
        if !key_type.exportable() {
            return Err(HsmError::FunctionNotPermitted);
        }
        let z = self.unwrap_typed(zmk)?;
        let k = self
            .unwrap(key_type, key)
            .map_err(HsmError::into_destination)?;
        let scheme_out = match (zmk_scheme, k.clear.scheme()) {
            (KeyScheme::X, KeyScheme::U) => KeyScheme::X,
            (_, s) => s,
        };
        let mut bytes = k.clear.bytes().to_vec();
        Self::zmk_crypt(&z.clear, scheme_out, &mut bytes, true)?;
        let out = format!("{}{}", scheme_out.as_char(), hex::encode_upper(&bytes));
        Ok((out, k.clear.check_value()))
    }

    fn import_sync(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key_under_zmk: &str,
        lmk_scheme: KeyScheme,
    ) -> Result<GeneratedKey, HsmError> {
        if key_type == KeyType::Zmk || key_type == KeyType::DataKey {
            return Err(HsmError::FunctionNotPermitted);
        }
        let z = self.unwrap_typed(zmk)?;
        let (first, body) = key_under_zmk.split_at(key_under_zmk.len().min(1));
        let zmk_scheme = KeyScheme::from_char(first.chars().next().ok_or(HsmError::InvalidInput)?)?;
        let mut bytes = hex::decode(body).map_err(|_| HsmError::InvalidInput)?;
        if bytes.len() != zmk_scheme.key_len() {
            return Err(HsmError::IncompatibleKeyLength);
        }
        Self::zmk_crypt(&z.clear, zmk_scheme, &mut bytes, false)?;
        let scheme = match (zmk_scheme, lmk_scheme) {
            (KeyScheme::X, KeyScheme::U) | (KeyScheme::U, KeyScheme::U) => KeyScheme::U,
            (a, b) if a == b => b,
            _ => {
                bytes.zeroize();
                return Err(HsmError::InvalidKeyScheme);
            }
        };
        if scheme.is_des() && !crate::block::has_odd_parity(&bytes) {
            bytes.zeroize();
            return Err(HsmError::DestinationKeyParity);
        }
        let clear = ClearKey::new(scheme, bytes)?;
        Ok(GeneratedKey {
            token: clear.wrap(&self.lmk, key_type),
            under_zmk: None,
            check_value: clear.check_value(),
        })
    }

    fn generate_sync(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        export_under: Option<&Zmk>,
    ) -> Result<GeneratedKey, HsmError> {
        if key_type == KeyType::DataKey && scheme != KeyScheme::B {
            return Err(HsmError::InvalidKeyScheme);
        }
        let clear = ClearKey::random(scheme)?;
        let token = clear.wrap(&self.lmk, key_type);
        let under_zmk = match export_under {
            Some(zmk) => {
                if !key_type.exportable() {
                    return Err(HsmError::FunctionNotPermitted);
                }
                let z = self.unwrap_typed(zmk)?;
                let mut bytes = clear.bytes().to_vec();
                Self::zmk_crypt(&z.clear, scheme, &mut bytes, true)?;
                Some(format!("{}{}", scheme.as_char(), hex::encode_upper(&bytes)))
            }
            None => None,
        };
        Ok(GeneratedKey {
            token,
            under_zmk,
            check_value: clear.check_value(),
        })
    }

    fn components_sync(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        components: &[KeyToken],
    ) -> Result<GeneratedKey, HsmError> {
        if !(2..=9).contains(&components.len()) {
            return Err(HsmError::InvalidInput);
        }
        let mut acc = vec![0u8; scheme.key_len()];
        for c in components {
            if c.scheme() != scheme {
                acc.zeroize();
                return Err(HsmError::InvalidKeyScheme);
            }
            let k = ClearKey::unwrap(&self.lmk, key_type, c)?;
            for (a, b) in acc.iter_mut().zip(k.bytes()) {
                *a ^= b;
            }
        }
        if scheme.is_des() {
            // The XOR of an odd number of odd-parity components keeps odd parity; an even
            // number flips it, so payShield re-adjusts parity of the formed key.
            crate::block::adjust_odd_parity(&mut acc);
        }
        let clear = ClearKey::new(scheme, acc)?;
        Ok(GeneratedKey {
            token: clear.wrap(&self.lmk, key_type),
            under_zmk: None,
            check_value: clear.check_value(),
        })
    }
}

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
        let account = pin::account_number_12(&pin_in.pan)?;
        let v = pin::ibm3624_validation_block(validation_data, &account)?;
        pin::ibm3624_offset(&pv.cipher, &clear, decimalisation_table, v)
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
        let clear = ClearKey::random(KeyScheme::B)?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(clear.bytes());
        let key = DataKey::from_bytes(raw);
        raw.zeroize();
        Ok((
            key?,
            DataKeyToken::from_token(clear.wrap(&self.lmk, KeyType::DataKey)),
        ))
    }

    async fn unwrap_data_key(&self, token: &DataKeyToken) -> Result<DataKey, HsmError> {
        if token.token().scheme() != KeyScheme::B {
            return Err(HsmError::InvalidKeyScheme);
        }
        let clear = ClearKey::unwrap(&self.lmk, KeyType::DataKey, token.token())?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(clear.bytes());
        let key = DataKey::from_bytes(raw);
        raw.zeroize();
        key
    }

    async fn derive_card_key_under_zmk(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        zmk: &Zmk,
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
        let z = self.unwrap_typed(zmk).map_err(HsmError::into_destination)?;
        let scheme = KeyScheme::for_card_algorithm(alg);
        let mut bytes = card_key.expose().to_vec();
        Self::zmk_crypt(&z.clear, scheme, &mut bytes, true)?;
        Ok((
            format!("{}{}", scheme.as_char(), hex::encode_upper(&bytes)),
            card_key.check_value(alg),
        ))
    }

    async fn diagnostics(&self) -> Result<Diagnostics, HsmError> {
        Ok(Diagnostics {
            lmk_check_value: hex::encode_upper(self.lmk.check_value()),
            firmware: concat!("hsm-sim-", env!("CARGO_PKG_VERSION")).to_string(),
        })
    }
}

/// XM: a new data key as clear hex (64 characters) and its LMK token.
pub(crate) async fn data_key_parts(hsm: &SoftHsm) -> Result<(Vec<u8>, DataKeyToken), HsmError> {
    let clear = ClearKey::random(KeyScheme::B)?;
    let token = DataKeyToken::from_token(clear.wrap(&hsm.lmk, KeyType::DataKey));
    Ok((hex::encode_upper(clear.bytes()).into_bytes(), token))
}

/// XO: a stored data key as clear hex.
pub(crate) async fn unwrap_data_key_hex(
    hsm: &SoftHsm,
    token: &DataKeyToken,
) -> Result<Vec<u8>, HsmError> {
    if token.token().scheme() != KeyScheme::B {
        return Err(HsmError::InvalidKeyScheme);
    }
    let clear = ClearKey::unwrap(&hsm.lmk, KeyType::DataKey, token.token())?;
    Ok(hex::encode_upper(clear.bytes()).into_bytes())
}
