//! The software HSM: the [`Hsm`](crate::Hsm) trait implemented in-process on an [`LmkSet`].
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

use zeroize::Zeroize;

use crate::block::ct_eq;
use crate::card_crypto::{self, CardAlgorithm, CardCipher, CardKey, ClearPin};
use crate::crypto::WorkingCipher;
use crate::error::HsmError;
use crate::hsm::{
    ArpcMethod, ArqcOutcome, ArqcRequest, PinBlockIn, PinVerificationMethod, SsseCardRef,
    TranslatedPin,
};
use crate::keys::{ClearKey, KeyScheme, KeyToken, KeyType, PinKey, TypedKey};
use crate::lmk::LmkSet;
use crate::pin::{self, PinBlockFormat};

mod hsm_impl;
mod key_management;
mod lmk_pin;
mod policy;

pub use lmk_pin::LmkPin;
pub use policy::{DecimalisationTables, SecuritySettings, STANDARD_DECIMALISATION_TABLE};

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

/// The in-process software HSM.
pub struct SoftHsm {
    lmk: Arc<LmkSet>,
    /// token → unwrapped key per key type (a token is looked up without cloning it).
    cache: RwLock<KeyCache>,
    settings: SecuritySettings,
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
            settings: SecuritySettings::default(),
        }
    }

    /// The same HSM with these security settings (the default accepts only the standard
    /// decimalisation table).
    pub fn with_settings(mut self, settings: SecuritySettings) -> SoftHsm {
        self.settings = settings;
        self
    }

    /// The security settings in force.
    pub fn settings(&self) -> &SecuritySettings {
        &self.settings
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

    /// IBM 3624 offset of a clear PIN under a PVK (BK and DE).
    fn ibm_offset(
        &self,
        pvk: &CachedKey,
        clear: &ClearPin,
        pan: &str,
        decimalisation_table: &str,
        validation_data: &str,
    ) -> Result<String, HsmError> {
        self.settings
            .decimalisation_tables
            .check(decimalisation_table)?;
        let account = pin::account_number_12(pan)?;
        let v = pin::ibm3624_validation_block(validation_data, &account)?;
        pin::ibm3624_offset(&pvk.cipher, clear, decimalisation_table, v)
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
                self.settings
                    .decimalisation_tables
                    .check(decimalisation_table)?;
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
}
