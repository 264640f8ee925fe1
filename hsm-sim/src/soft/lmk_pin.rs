//! PINs under the LMK (payShield JE, JG, DE, DG): the issuance side of the software HSM.
//!
//! Why this exists apart: these functions are not part of the [`crate::Hsm`] trait; the bank
//! simulator and the issuance console use them to hold PINs encrypted under the LMK.

use crate::card_crypto::ClearPin;
use crate::error::HsmError;
use crate::hsm::PinBlockIn;
use crate::keys::{Pvk, Zpk};
use crate::lmk::PartVariant;
use crate::pin::{self, EncryptedPinBlock, PinBlockFormat};

use super::{SoftHsm, LMK_PIN_PAIR};

/// A PIN encrypted under the LMK (16 hex digits; see the module doc).
#[derive(Clone, PartialEq, Eq)]
pub struct LmkPin(pub String);

impl std::fmt::Debug for LmkPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LmkPin(****)")
    }
}

impl SoftHsm {
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
        self.ibm_offset(&k, &clear, pan, decimalisation_table, validation_data)
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
}
