//! Card personalisation: the data file a card bureau feeds the virtual card, and the per-card
//! keys derived from issuer master keys with hsm-sim's rules so the back end (HSM) can verify
//! what the card produces.
//!
//! # File format (TOML, or JSON with the same structure; `testdata/demo-card.toml` is complete)
//! ```toml
//! [ssse]                                  # social-security application (社会保障(个人)卡规范)
//! algorithm = "sm4"                       # "sm4" or "tdes": cipher of this card's SSSE keys
//! city_code = "410100"                    # GB/T 2260 code of the issuing city (key dispersal)
//! card_identification_code = "410100D156000005..."  # 卡识别码, 32 hex = 16 bytes
//! card_type = "3"  spec_version = "3.00"  init_org = "410100000001"
//! issue_date = "20240301"  expiry_date = "20340301"  card_number = "A01234567"
//! social_security_number = "410102199003071234"  name = "张三"  sex = "1"
//! ethnicity = "01"  birthplace = "410102"  birth_date = "19900307"
//! pin = "123456"  pin_tries_max = 3
//! [ssse.province_keys]                    # province master keys; card keys = province → city → card
//! internal_auth = "…32 hex…"  external_auth = "…"  pin_unblock = "…"  line_protection = "…"
//! [pboc]                                  # PBOC 3.0 debit application
//! pan = "6217…"  psn = "01"  expiry_date = "341231"  effective_date = "240301"
//! cardholder_name = "ZHANG/SAN"  pin = "123456"  pin_tries_max = 3  atc = 0
//! [pboc.imk_sm4]                          # issuer master keys; omit a set to drop that algorithm
//! ac = "…"  smi = "…"  smc = "…"
//! [pboc.imk_tdes]
//! ac = "…"  smi = "…"  smc = "…"
//! ```
//! Clear issuer master keys in a file are a development convenience of this test bureau; a
//! production bureau derives card keys inside the HSM and never sees them in clear.

use std::fmt;
use std::path::Path;

use hsm_sim::card_crypto::{self as cc, CardAlgorithm, CardKey, ClearPin};
use serde::Deserialize;
use zeroize::Zeroize;

use crate::tags::ssse as id;

/// Why a personalisation file cannot make a card. Messages never include key or PIN values.
#[derive(Debug, thiserror::Error)]
pub enum PersoError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing personalisation data: {0}")]
    Syntax(String),
    #[error("field {field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("key derivation: {0}")]
    Crypto(#[from] cc::CardCryptoError),
}

fn bad(field: &'static str, reason: impl Into<String>) -> PersoError {
    PersoError::Field {
        field,
        reason: reason.into(),
    }
}

/// A secret string from the file (key hex or PIN): never printed, zeroised on drop.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    pub(crate) fn key(&self, field: &'static str) -> Result<CardKey, PersoError> {
        CardKey::from_hex(&self.0).map_err(|_| bad(field, "expected 32 hex characters"))
    }
    fn pin(&self, field: &'static str) -> Result<ClearPin, PersoError> {
        ClearPin::new(&self.0).map_err(|_| bad(field, "PIN must be 4 to 12 digits"))
    }
}

/// Cipher name in the file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlgorithmName {
    Tdes,
    Sm4,
}

impl From<AlgorithmName> for CardAlgorithm {
    fn from(a: AlgorithmName) -> Self {
        match a {
            AlgorithmName::Tdes => CardAlgorithm::Tdes,
            AlgorithmName::Sm4 => CardAlgorithm::Sm4,
        }
    }
}

/// The whole personalisation file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersoFile {
    pub ssse: SssePerso,
    pub pboc: PbocPerso,
}

/// SSSE section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SssePerso {
    pub algorithm: AlgorithmName,
    pub city_code: String,
    pub card_identification_code: String,
    #[serde(default = "default_card_type")]
    pub card_type: String,
    #[serde(default = "default_spec_version")]
    pub spec_version: String,
    pub init_org: String,
    pub issue_date: String,
    pub expiry_date: String,
    pub card_number: String,
    pub social_security_number: String,
    pub name: String,
    pub sex: String,
    pub ethnicity: String,
    pub birthplace: String,
    pub birth_date: String,
    pub pin: Secret,
    #[serde(default = "default_tries")]
    pub pin_tries_max: u8,
    pub province_keys: SsseKeysPerso,
}

/// SSSE province master keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsseKeysPerso {
    pub internal_auth: Secret,
    pub external_auth: Secret,
    pub pin_unblock: Secret,
    /// Line protection (线路保护): the MAC of an EF06 UPDATE RECORD with secure messaging.
    pub line_protection: Secret,
}

/// PBOC section. `Debug` masks the PAN (first 6, last 4) and never shows keys or the PIN.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbocPerso {
    pub pan: String,
    #[serde(default = "default_psn")]
    pub psn: String,
    pub expiry_date: String,
    pub effective_date: String,
    pub cardholder_name: String,
    #[serde(default = "default_country")]
    pub issuer_country: String,
    #[serde(default = "default_country")]
    pub currency: String,
    #[serde(default = "default_service_code")]
    pub service_code: String,
    #[serde(default = "default_label")]
    pub label: String,
    pub pin: Secret,
    #[serde(default = "default_tries")]
    pub pin_tries_max: u8,
    #[serde(default)]
    pub atc: u16,
    pub imk_tdes: Option<ImkPerso>,
    pub imk_sm4: Option<ImkPerso>,
}

impl fmt::Debug for PbocPerso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PbocPerso")
            .field("pan", &crate::mask_pan(&self.pan))
            .field("psn", &self.psn)
            .field("atc", &self.atc)
            .field("tdes", &self.imk_tdes.is_some())
            .field("sm4", &self.imk_sm4.is_some())
            .finish_non_exhaustive()
    }
}

/// One algorithm's issuer master keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImkPerso {
    pub ac: Secret,
    pub smi: Secret,
    pub smc: Secret,
}

fn default_card_type() -> String {
    "3".into()
}
fn default_spec_version() -> String {
    "3.00".into()
}
fn default_tries() -> u8 {
    3
}
fn default_psn() -> String {
    "01".into()
}
fn default_country() -> String {
    "0156".into()
}
fn default_service_code() -> String {
    "220".into()
}
fn default_label() -> String {
    "PBOC DEBIT".into()
}

impl PersoFile {
    /// Reads a `.toml` or `.json` file.
    pub fn load(path: &Path) -> Result<Self, PersoError> {
        let text = std::fs::read_to_string(path).map_err(|source| PersoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// Parses TOML. Syntax errors name the position, never echo the offending value.
    pub fn from_toml(text: &str) -> Result<Self, PersoError> {
        toml::from_str(text).map_err(|e| PersoError::Syntax(redact(e.message(), e.span())))
    }

    /// Parses JSON.
    pub fn from_json(text: &str) -> Result<Self, PersoError> {
        serde_json::from_str(text).map_err(|e| {
            PersoError::Syntax(format!(
                "JSON error at line {} column {}",
                e.line(),
                e.column()
            ))
        })
    }
}

fn redact(message: &str, span: Option<std::ops::Range<usize>>) -> String {
    // toml's messages describe the problem ("invalid type", "missing field"); the span locates it.
    match span {
        Some(s) => format!("{message} (at byte {})", s.start),
        None => message.to_owned(),
    }
}

/// The SSSE application's personalised content and per-card keys.
pub struct SsseProfile {
    pub algorithm: CardAlgorithm,
    pub card_identification_code: [u8; 16],
    /// EF05 records: (identifier, fixed-length value).
    pub ef05: Vec<(u8, Vec<u8>)>,
    /// EF06 records.
    pub ef06: Vec<(u8, Vec<u8>)>,
    pub pin: ClearPin,
    pub pin_tries_max: u8,
    pub k_internal_auth: CardKey,
    pub k_external_auth: CardKey,
    pub k_pin_unblock: CardKey,
    /// The line-protection key: EF06 UPDATE RECORD with secure messaging
    /// ([`hsm_sim::card_crypto::ssse_update_record_mac`]).
    pub k_line_protection: CardKey,
}

/// One algorithm's ICC master keys (EMV Book 2 A1.4 / JR/T 0025.17).
pub struct PbocKeys {
    pub mk_ac: CardKey,
    pub mk_smi: CardKey,
    pub mk_smc: CardKey,
}

/// The PBOC application's personalised content and per-card keys.
pub struct PbocProfile {
    pub pan: String,
    pub psn: String,
    pub expiry_date: [u8; 3],
    pub effective_date: [u8; 3],
    pub cardholder_name: String,
    pub issuer_country: [u8; 2],
    pub currency: [u8; 2],
    pub service_code: [u8; 2],
    pub label: String,
    pub pin: ClearPin,
    pub pin_tries_max: u8,
    pub atc: u16,
    pub keys_tdes: Option<PbocKeys>,
    pub keys_sm4: Option<PbocKeys>,
}

/// Everything a virtual card needs.
pub struct CardProfile {
    pub ssse: SsseProfile,
    pub pboc: PbocProfile,
}

impl fmt::Debug for CardProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardProfile")
            .field(
                "card_identification_code",
                &hex::encode_upper(self.ssse.card_identification_code),
            )
            .field("pan", &crate::mask_pan(&self.pboc.pan))
            .finish_non_exhaustive()
    }
}

/// Packs decimal digits as BCD (odd counts get a trailing F).
pub fn bcd(digits: &str) -> Option<Vec<u8>> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nibbles: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    if nibbles.len() % 2 == 1 {
        nibbles.push(0x0F);
    }
    Some(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

fn bcd_exact<const N: usize>(field: &'static str, digits: &str) -> Result<[u8; N], PersoError> {
    let v = bcd(digits).filter(|v| v.len() == N && digits.len() == 2 * N);
    let v = v.ok_or_else(|| bad(field, format!("expected {} digits", 2 * N)))?;
    let mut out = [0u8; N];
    out.copy_from_slice(&v);
    Ok(out)
}

fn ascii_fixed(field: &'static str, s: &str, len: usize) -> Result<Vec<u8>, PersoError> {
    if !s.is_ascii() || s.len() > len {
        return Err(bad(
            field,
            format!("expected at most {len} ASCII characters"),
        ));
    }
    let mut v = s.as_bytes().to_vec();
    v.resize(len, b' ');
    Ok(v)
}

/// The GBK encoding of a name, padded with 00 to the 30 bytes of EF06 record 09.
pub fn gbk_name(name: &str) -> Result<Vec<u8>, PersoError> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(name);
    if unmappable || bytes.len() > 30 {
        return Err(bad("name", "must encode in GBK within 30 bytes"));
    }
    let mut v = bytes.into_owned();
    v.resize(30, 0);
    Ok(v)
}

impl CardProfile {
    /// Builds a card profile, deriving per-card keys with hsm-sim's rules.
    pub fn from_perso(file: &PersoFile) -> Result<Self, PersoError> {
        Ok(Self {
            ssse: ssse_profile(&file.ssse)?,
            pboc: pboc_profile(&file.pboc)?,
        })
    }

    /// Loads and derives in one step.
    pub fn load(path: &Path) -> Result<Self, PersoError> {
        Self::from_perso(&PersoFile::load(path)?)
    }
}

fn ssse_profile(p: &SssePerso) -> Result<SsseProfile, PersoError> {
    let alg = CardAlgorithm::from(p.algorithm);
    let mut cic = [0u8; 16];
    hex::decode_to_slice(&p.card_identification_code, &mut cic)
        .map_err(|_| bad("card_identification_code", "expected 32 hex characters"))?;
    let derive = |province: &Secret, field| -> Result<CardKey, PersoError> {
        Ok(cc::derive_ssse_card_key_from_province(
            alg,
            &province.key(field)?,
            &p.city_code,
            &p.card_identification_code,
        )?)
    };
    let ethnicity = bcd_exact::<1>("ethnicity", &p.ethnicity)?;
    let ef05 = vec![
        (id::CARD_IDENTIFICATION_CODE, cic.to_vec()),
        (id::CARD_TYPE, ascii_fixed("card_type", &p.card_type, 1)?),
        (
            id::SPEC_VERSION,
            ascii_fixed("spec_version", &p.spec_version, 4)?,
        ),
        (id::INIT_ORG, ascii_fixed("init_org", &p.init_org, 12)?),
        (
            id::ISSUE_DATE,
            bcd_exact::<4>("issue_date", &p.issue_date)?.to_vec(),
        ),
        (
            id::EXPIRY_DATE,
            bcd_exact::<4>("expiry_date", &p.expiry_date)?.to_vec(),
        ),
        (
            id::CARD_NUMBER,
            ascii_fixed("card_number", &p.card_number, 9)?,
        ),
    ];
    let ef06 = vec![
        (
            id::SOCIAL_SECURITY_NUMBER,
            ascii_fixed("social_security_number", &p.social_security_number, 18)?,
        ),
        (id::NAME, gbk_name(&p.name)?),
        (id::SEX, ascii_fixed("sex", &p.sex, 1)?),
        (id::ETHNICITY, ethnicity.to_vec()),
        (
            id::BIRTHPLACE,
            bcd_exact::<3>("birthplace", &p.birthplace)?.to_vec(),
        ),
        (
            id::BIRTH_DATE,
            bcd_exact::<4>("birth_date", &p.birth_date)?.to_vec(),
        ),
    ];
    if !(1..=15).contains(&p.pin_tries_max) {
        return Err(bad("ssse.pin_tries_max", "must be 1..=15"));
    }
    Ok(SsseProfile {
        algorithm: alg,
        card_identification_code: cic,
        ef05,
        ef06,
        pin: p.pin.pin("ssse.pin")?,
        pin_tries_max: p.pin_tries_max,
        k_internal_auth: derive(&p.province_keys.internal_auth, "internal_auth")?,
        k_external_auth: derive(&p.province_keys.external_auth, "external_auth")?,
        k_pin_unblock: derive(&p.province_keys.pin_unblock, "pin_unblock")?,
        k_line_protection: derive(&p.province_keys.line_protection, "line_protection")?,
    })
}

fn pboc_keys(
    alg: CardAlgorithm,
    imk: &ImkPerso,
    pan: &str,
    psn: &str,
) -> Result<PbocKeys, PersoError> {
    let d = |s: &Secret, f| -> Result<CardKey, PersoError> {
        Ok(cc::derive_icc_master_key(alg, &s.key(f)?, pan, psn)?)
    };
    Ok(PbocKeys {
        mk_ac: d(&imk.ac, "imk.ac")?,
        mk_smi: d(&imk.smi, "imk.smi")?,
        mk_smc: d(&imk.smc, "imk.smc")?,
    })
}

fn pboc_profile(p: &PbocPerso) -> Result<PbocProfile, PersoError> {
    if !(12..=19).contains(&p.pan.len()) || !p.pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("pan", "expected 12 to 19 digits"));
    }
    if p.imk_tdes.is_none() && p.imk_sm4.is_none() {
        return Err(bad(
            "pboc",
            "at least one of imk_tdes / imk_sm4 is required",
        ));
    }
    if !(1..=15).contains(&p.pin_tries_max) {
        return Err(bad("pboc.pin_tries_max", "must be 1..=15"));
    }
    let keys = |alg, imk: &Option<ImkPerso>| {
        imk.as_ref()
            .map(|k| pboc_keys(alg, k, &p.pan, &p.psn))
            .transpose()
    };
    let service = bcd(&format!("0{}", p.service_code))
        .filter(|v| v.len() == 2)
        .ok_or_else(|| bad("service_code", "expected 3 digits"))?;
    Ok(PbocProfile {
        pan: p.pan.clone(),
        psn: p.psn.clone(),
        expiry_date: bcd_exact::<3>("expiry_date", &p.expiry_date)?,
        effective_date: bcd_exact::<3>("effective_date", &p.effective_date)?,
        cardholder_name: p.cardholder_name.clone(),
        issuer_country: bcd_exact::<2>("issuer_country", &p.issuer_country)?,
        currency: bcd_exact::<2>("currency", &p.currency)?,
        service_code: [service[0], service[1]],
        label: p.label.clone(),
        pin: p.pin.pin("pboc.pin")?,
        pin_tries_max: p.pin_tries_max,
        atc: p.atc,
        keys_tdes: keys(CardAlgorithm::Tdes, &p.imk_tdes)?,
        keys_sm4: keys(CardAlgorithm::Sm4, &p.imk_sm4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_name_of_zhang_san() {
        // 张 = D5C5, 三 = C8FD in GBK (GB 2312 row 53/40, 24/93).
        let v = gbk_name("张三").expect("encodes");
        assert_eq!(&v[..4], &[0xD5, 0xC5, 0xC8, 0xFD]);
        assert_eq!(v.len(), 30);
    }

    #[test]
    fn bcd_packs_and_pads_odd() {
        assert_eq!(bcd("20240301"), Some(vec![0x20, 0x24, 0x03, 0x01]));
        assert_eq!(bcd("123"), Some(vec![0x12, 0x3F]));
        assert_eq!(bcd("12a"), None);
    }
}
