//! Key management on the software HSM: keys under a ZMK (import, export, generation with
//! export, personalisation), keys formed from components, and AES data keys.
//!
//! Why this exists apart: these are the functions that move keys across the LMK boundary, the
//! ones an auditor reads first.

use zeroize::Zeroize;

use crate::crypto::WorkingCipher;
use crate::error::HsmError;
use crate::hsm::GeneratedKey;
use crate::keys::{ClearKey, DataKeyToken, KeyScheme, KeyToken, KeyType, TypedKey, Zmk};
use crate::lmk::PartVariant;

use super::SoftHsm;

impl SoftHsm {
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
    pub(super) fn zmk_crypt(
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

    pub(super) fn export_sync(
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

    pub(super) fn import_sync(
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

    pub(super) fn generate_sync(
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

    pub(super) fn components_sync(
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

impl SoftHsm {
    /// A new AES-256 data key in clear (it stays inside the HSM's process unless a caller sends
    /// it on) and its LMK token.
    pub(crate) fn new_data_key(&self) -> Result<(ClearKey, DataKeyToken), HsmError> {
        let clear = ClearKey::random(KeyScheme::B)?;
        let token = DataKeyToken::from_token(clear.wrap(&self.lmk, KeyType::DataKey));
        Ok((clear, token))
    }

    /// The clear data key of a stored token (scheme `B` only).
    pub(crate) fn data_key_clear(&self, token: &DataKeyToken) -> Result<ClearKey, HsmError> {
        if token.token().scheme() != KeyScheme::B {
            return Err(HsmError::InvalidKeyScheme);
        }
        ClearKey::unwrap(&self.lmk, KeyType::DataKey, token.token())
    }
}

impl SoftHsm {
    /// Decrypts a key given as scheme letter + hex under a clear key-encrypting key (the
    /// inverse of the wrapping of A8/XQ/XT). For a test card bureau's personalisation machine,
    /// which holds its transport key in clear; a production bureau does this inside its own HSM.
    pub fn open_key_under_clear_kek(kek: &ClearKey, under: &str) -> Result<ClearKey, HsmError> {
        let (first, body) = under.split_at(under.len().min(1));
        let scheme = KeyScheme::from_char(first.chars().next().ok_or(HsmError::InvalidInput)?)?;
        let mut bytes = hex::decode(body).map_err(|_| HsmError::InvalidInput)?;
        if bytes.len() != scheme.key_len() {
            bytes.zeroize();
            return Err(HsmError::IncompatibleKeyLength);
        }
        Self::zmk_crypt(kek, scheme, &mut bytes, false)?;
        ClearKey::new(scheme, bytes)
    }
}
