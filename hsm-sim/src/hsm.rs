//! The `Hsm` trait: everything the switch, the issuance system and the kiosks ask of an HSM.
//!
//! Why this exists: callers hold an `Arc<dyn Hsm>` and do not care whether the HSM is the
//! in-process [`crate::soft::SoftHsm`], our `hsm-sim` server reached through
//! [`crate::client::HsmClient`], or a real payShield speaking the same host commands. Inputs are
//! typed keys (a [`Zpk`] is not a [`Tpk`]) and small request structs; results are values or an
//! [`HsmError`] carrying the payShield error code. A verification that simply does not match is
//! `Ok(false)`, not an error.

use async_trait::async_trait;

use crate::card_crypto::CardAlgorithm;
use crate::cvv::CvvKind;
use crate::datakey::DataKey;
use crate::error::HsmError;
use crate::keys::{
    Cvk, DataKeyToken, ImkAc, ImkSmc, ImkSmi, KeyScheme, KeyToken, KeyType, MacKey, PinKey, Pvk,
    SsseExternalAuthKey, SsseInternalAuthKey, SsseLineProtectionKey, SssePinUnblockKey, Tpk, Zek,
    Zmk, Zpk,
};
use crate::mac::{MacAlgorithm, MacPadding};
use crate::pin::{EncryptedPinBlock, PinBlockFormat};

/// A PIN block in flight: the encrypted block, its format and the card's PAN (full PAN; the HSM
/// takes the 12-digit account number from it for formats 0 and 3). `Debug` masks the PAN.
#[derive(Clone, PartialEq, Eq)]
pub struct PinBlockIn {
    /// Encrypted PIN block.
    pub block: EncryptedPinBlock,
    /// Its ISO 9564 format.
    pub format: PinBlockFormat,
    /// Primary account number (digits only).
    pub pan: String,
}

impl std::fmt::Debug for PinBlockIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinBlockIn")
            .field("block", &self.block)
            .field("format", &self.format)
            .field("pan", &masked_pan(&self.pan))
            .finish()
    }
}

/// A PAN for `Debug` output: first six and last four digits (PCI DSS 3.4); anything shorter
/// than 11 characters, or not ASCII, fully hidden.
fn masked_pan(pan: &str) -> String {
    if pan.len() < 11 || !pan.is_ascii() {
        return "*".repeat(pan.chars().count());
    }
    let (head, tail) = (&pan[..6], &pan[pan.len() - 4..]);
    format!("{head}{}{tail}", "*".repeat(pan.len() - 10))
}

/// A translated PIN block and the PIN length the HSM saw (payShield returns it too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslatedPin {
    /// The PIN block under the destination key.
    pub block: EncryptedPinBlock,
    /// Number of PIN digits (4..=12).
    pub pin_length: u8,
}

/// How to verify a PIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinVerificationMethod {
    /// IBM 3624 with an offset.
    Ibm3624 {
        /// PIN verification key.
        pvk: Pvk,
        /// 16-digit decimalisation table.
        decimalisation_table: String,
        /// Validation data (up to 16 hex characters, `N` = next of the last 5 account digits).
        validation_data: String,
        /// Stored offset (digits, right-padded with `F` to 12).
        offset: String,
        /// Number of digits compared (minimum PIN length), 4..=12.
        check_length: u8,
    },
    /// Visa PVV.
    VisaPvv {
        /// PIN verification key (double length).
        pvk: Pvk,
        /// PIN verification key index 0..=9.
        pvki: u8,
        /// Stored 4-digit PVV.
        pvv: String,
    },
}

/// ARPC method and its inputs (EMV Book 2 §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpcMethod {
    /// Do not produce an ARPC (verify only; payShield KQ mode 0).
    None,
    /// Method 1: ARPC = E(SK, ARQC ⊕ ARC).
    Method1 {
        /// Authorisation response code (2 bytes, e.g. `b"00"`).
        arc: [u8; 2],
    },
    /// Method 2: ARPC = MAC(SK, ARQC || CSU || proprietary authentication data).
    Method2 {
        /// Card status update.
        csu: [u8; 4],
        /// Proprietary authentication data length (0..=8), bytes in `proprietary`.
        proprietary_len: u8,
        /// Proprietary authentication data (first `proprietary_len` bytes used).
        proprietary: [u8; 8],
    },
}

/// ARQC verification request. `Debug` masks the PAN.
#[derive(Clone, PartialEq, Eq)]
pub struct ArqcRequest {
    /// 3DES (EMV option A + CSK) or SM4 (PBOC 3.0).
    pub algorithm: CardAlgorithm,
    /// Issuer master key for AC (scheme U for 3DES, G for SM4).
    pub imk_ac: ImkAc,
    /// PAN digits.
    pub pan: String,
    /// PAN sequence number digits (`""` when absent).
    pub psn: String,
    /// Application transaction counter (tag 9F36).
    pub atc: [u8; 2],
    /// The data the card MACed (CDOL1 values || AIP || ATC || IAD part, as the card defines).
    pub transaction_data: Vec<u8>,
    /// The cryptogram received (tag 9F26).
    pub arqc: [u8; 8],
    /// ARPC to produce when the ARQC verifies.
    pub arpc: ArpcMethod,
}

impl std::fmt::Debug for ArqcRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArqcRequest")
            .field("algorithm", &self.algorithm)
            .field("imk_ac", &self.imk_ac)
            .field("pan", &masked_pan(&self.pan))
            .field("psn", &self.psn)
            .field("atc", &self.atc)
            .field("transaction_data", &self.transaction_data)
            .field("arqc", &self.arqc)
            .field("arpc", &self.arpc)
            .finish()
    }
}

/// Result of ARQC verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArqcOutcome {
    /// True when the ARQC matched.
    pub verified: bool,
    /// ARPC (8 bytes for method 1, 4 for method 2), present only when verified.
    pub arpc: Option<Vec<u8>>,
}

/// Issuer-script request: the card keys come from MK-SMI (MAC) / MK-SMC (PIN encipherment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptContext {
    /// 3DES or SM4.
    pub algorithm: CardAlgorithm,
    /// PAN digits.
    pub pan: String,
    /// PAN sequence number digits.
    pub psn: String,
    /// ATC of the transaction carrying the script.
    pub atc: [u8; 2],
    /// ARQC of that transaction (R for the 3DES CSK session key).
    pub arqc: [u8; 8],
}

/// SSSE card authentication request (province master key → city → card).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsseCardRef {
    /// 3DES or SM4 card.
    pub algorithm: CardAlgorithm,
    /// Six-digit city (administrative division) code.
    pub city_code: String,
    /// Card identification code (卡识别码), 32 hex characters.
    pub card_id: String,
}

/// A card master key held by the issuer (the parent of per-card keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardMasterKey {
    /// EMV/PBOC issuer master key for AC.
    ImkAc(crate::keys::ImkAc),
    /// EMV/PBOC issuer master key for script integrity.
    ImkSmi(ImkSmi),
    /// EMV/PBOC issuer master key for script confidentiality.
    ImkSmc(ImkSmc),
    /// SSSE province key for internal authentication.
    SsseInternalAuth(SsseInternalAuthKey),
    /// SSSE province key for external authentication.
    SsseExternalAuth(SsseExternalAuthKey),
    /// SSSE province key for PIN unblock/reload.
    SssePinUnblock(crate::keys::SssePinUnblockKey),
    /// SSSE province key for line protection.
    SsseLineProtection(crate::keys::SsseLineProtectionKey),
}

impl CardMasterKey {
    /// Key type and token.
    pub fn parts(&self) -> (KeyType, &KeyToken) {
        use crate::keys::TypedKey;
        match self {
            CardMasterKey::ImkAc(k) => (KeyType::ImkAc, k.token()),
            CardMasterKey::ImkSmi(k) => (KeyType::ImkSmi, k.token()),
            CardMasterKey::ImkSmc(k) => (KeyType::ImkSmc, k.token()),
            CardMasterKey::SsseInternalAuth(k) => (KeyType::SsseInternalAuth, k.token()),
            CardMasterKey::SsseExternalAuth(k) => (KeyType::SsseExternalAuth, k.token()),
            CardMasterKey::SssePinUnblock(k) => (KeyType::SssePinUnblock, k.token()),
            CardMasterKey::SsseLineProtection(k) => (KeyType::SsseLineProtection, k.token()),
        }
    }
}

/// How a per-card key is derived from its master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardKeyDerivation {
    /// EMV option A (3DES) / PBOC SM4 from PAN and PSN (only for IMK-AC/SMI/SMC).
    Emv {
        /// Algorithm of the card application.
        algorithm: CardAlgorithm,
        /// PAN digits.
        pan: String,
        /// PAN sequence number digits.
        psn: String,
    },
    /// SSSE three-level dispersal (only for SSSE province keys).
    Ssse(SsseCardRef),
}

/// A new key: its LMK token, optionally the same key under a ZMK, and its check value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedKey {
    /// Token under the LMK.
    pub token: KeyToken,
    /// The key encrypted under the ZMK, when asked for (scheme letter + hex).
    pub under_zmk: Option<String>,
    /// Key check value (3 bytes).
    pub check_value: [u8; 3],
}

/// HSM status (payShield NC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    /// LMK check value (16 hex digits in payShield; we report the 3-byte KCV of pair 00-01).
    pub lmk_check_value: String,
    /// Firmware / implementation identifier.
    pub firmware: String,
}

/// The HSM abstraction (object safe: use `Arc<dyn Hsm>`).
#[async_trait]
pub trait Hsm: Send + Sync {
    /// PIN from a terminal (TPK) re-encrypted under a ZPK for the issuer (payShield CA).
    async fn translate_pin_tpk_to_zpk(
        &self,
        tpk: &Tpk,
        zpk: &Zpk,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError>;

    /// PIN from one zone key to another, possibly changing format (payShield CC).
    async fn translate_pin_zpk_to_zpk(
        &self,
        source: &Zpk,
        destination: &Zpk,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError>;

    /// Verify a PIN by IBM 3624 offset or Visa PVV (payShield DA/DC/EA/EC).
    async fn verify_pin(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        method: &PinVerificationMethod,
    ) -> Result<bool, HsmError>;

    /// IBM 3624 offset for a PIN block (issuance; the PIN never leaves the HSM in clear).
    async fn generate_ibm_offset(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        pvk: &Pvk,
        decimalisation_table: &str,
        validation_data: &str,
    ) -> Result<String, HsmError>;

    /// Visa PVV for a PIN block (issuance).
    async fn generate_pvv(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        pvk: &Pvk,
        pvki: u8,
    ) -> Result<String, HsmError>;

    /// CVV/CVV2/iCVV generation (payShield CW).
    async fn generate_cvv(
        &self,
        cvk: &Cvk,
        kind: CvvKind,
        pan: &str,
        expiry_yymm: &str,
        service_code: &str,
    ) -> Result<String, HsmError>;

    /// CVV/CVV2/iCVV verification (payShield CY).
    async fn verify_cvv(
        &self,
        cvk: &Cvk,
        kind: CvvKind,
        pan: &str,
        expiry_yymm: &str,
        service_code: &str,
        cvv: &str,
    ) -> Result<bool, HsmError>;

    /// Verify an ARQC (3DES or SM4) and produce the ARPC (payShield KQ; project XA).
    async fn verify_arqc_and_generate_arpc(
        &self,
        req: &ArqcRequest,
    ) -> Result<ArqcOutcome, HsmError>;

    /// Issuer-script MAC (4 bytes) over `header` (CLA INS P1 P2 Lc) || ATC || ARQC || `data`.
    async fn issuer_script_mac(
        &self,
        imk_smi: &ImkSmi,
        ctx: &ScriptContext,
        header: [u8; 5],
        data: &[u8],
    ) -> Result<[u8; 4], HsmError>;

    /// Enciphered PIN data for a PIN CHANGE/UNBLOCK script: the new PIN arrives as a PIN block
    /// under a ZPK/TPK and leaves encrypted under the card's SK-SMC.
    async fn encrypt_pin_change(
        &self,
        imk_smc: &ImkSmc,
        ctx: &ScriptContext,
        key: &PinKey,
        new_pin: &PinBlockIn,
    ) -> Result<Vec<u8>, HsmError>;

    /// Check an SSSE INTERNAL AUTHENTICATE response of a card.
    async fn verify_ssse_internal_auth(
        &self,
        key: &SsseInternalAuthKey,
        card: &SsseCardRef,
        challenge: &[u8],
        response: &[u8],
    ) -> Result<bool, HsmError>;

    /// The cryptogram for an SSSE EXTERNAL AUTHENTICATE of the terminal to the card.
    async fn ssse_external_auth_cryptogram(
        &self,
        key: &SsseExternalAuthKey,
        card: &SsseCardRef,
        card_challenge: &[u8],
    ) -> Result<Vec<u8>, HsmError>;

    /// The 4-byte MAC of an SSSE PIN UNBLOCK command carrying `new_pin_bcd` (the BCD PIN field,
    /// 2–6 bytes), after the card's GET CHALLENGE answer `challenge`, under the card's
    /// PIN-unblock key dispersed from `key`. See [`crate::card_crypto::ssse_pin_unblock_mac`].
    async fn ssse_pin_unblock_mac(
        &self,
        key: &SssePinUnblockKey,
        card: &SsseCardRef,
        challenge: &[u8],
        new_pin_bcd: &[u8],
    ) -> Result<[u8; 4], HsmError>;

    /// The 4-byte MAC of an SSSE UPDATE RECORD with secure messaging (`04 DC P1 P2`) carrying
    /// `record` (SIMPLE-TLV), after the card's GET CHALLENGE answer `challenge`, under the
    /// card's line-protection key dispersed from `key` (project command XR). See
    /// [`crate::card_crypto::ssse_update_record_mac`].
    async fn ssse_update_record_mac(
        &self,
        key: &SsseLineProtectionKey,
        card: &SsseCardRef,
        challenge: &[u8],
        p1p2: [u8; 2],
        record: &[u8],
    ) -> Result<[u8; 4], HsmError>;

    /// Generate a MAC (payShield M6).
    async fn generate_mac(
        &self,
        key: &MacKey,
        algorithm: MacAlgorithm,
        padding: MacPadding,
        data: &[u8],
    ) -> Result<Vec<u8>, HsmError>;

    /// Verify a MAC (payShield M8); `mac` may be truncated to 4..=16 bytes.
    async fn verify_mac(
        &self,
        key: &MacKey,
        algorithm: MacAlgorithm,
        padding: MacPadding,
        data: &[u8],
        mac: &[u8],
    ) -> Result<bool, HsmError>;

    /// Generate a key of `key_type`, optionally also returned under a ZMK (payShield A0).
    async fn generate_key(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        export_under: Option<&Zmk>,
    ) -> Result<GeneratedKey, HsmError>;

    /// Import a key received under a ZMK (payShield A6).
    async fn import_key(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key_under_zmk: &str,
        lmk_scheme: KeyScheme,
    ) -> Result<GeneratedKey, HsmError>;

    /// Export a key under a ZMK (payShield A8); returns scheme letter + hex and the KCV.
    async fn export_key(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key: &KeyToken,
        zmk_scheme: KeyScheme,
    ) -> Result<(String, [u8; 3]), HsmError>;

    /// Form a key from 2..=9 components, each encrypted under the LMK (payShield A4).
    async fn form_key_from_components(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        components: &[KeyToken],
    ) -> Result<GeneratedKey, HsmError>;

    /// Key check value of a token (payShield BU).
    async fn key_check_value(&self, key_type: KeyType, key: &KeyToken)
        -> Result<[u8; 3], HsmError>;

    /// Random bytes (1..=256).
    async fn random_bytes(&self, len: usize) -> Result<Vec<u8>, HsmError>;

    /// A new AES-256 data key: clear (for the caller's memory) and wrapped under the LMK.
    async fn generate_data_key(&self) -> Result<(DataKey, DataKeyToken), HsmError>;

    /// Unwrap a stored data key.
    async fn unwrap_data_key(&self, token: &DataKeyToken) -> Result<DataKey, HsmError>;

    /// Personalisation: derive a per-card key from its master key and return it under a ZMK
    /// (scheme `U` for 3DES, `G` for SM4) with its check value (project command XQ).
    async fn derive_card_key_under_zmk(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        zmk: &Zmk,
    ) -> Result<(String, [u8; 3]), HsmError>;

    /// Personalisation through a card bureau: derive a per-card key from its master key and
    /// return it under a transport key, a ZEK the HSM generated and exported under the
    /// bureau's ZMK (A0 mode 1), so one file's keys travel under one key the bureau imports
    /// once (project command XT; wrapping as XQ).
    async fn derive_card_key_under_zek(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        zek: &Zek,
    ) -> Result<(String, [u8; 3]), HsmError>;

    /// Status: LMK check value and firmware (payShield NC).
    async fn diagnostics(&self) -> Result<Diagnostics, HsmError>;
}

/// Upper bound on `random_bytes` per call.
pub const RANDOM_LEN_MAX: usize = 256;
