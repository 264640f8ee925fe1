//! The personalisation file the card bureau receives: one header line, then one record per
//! card, each a JSON object on its own line (JSON Lines, UTF-8).
//!
//! # Format `ssc-perso/1`
//! Line 1, the header:
//! ```json
//! {"format":"ssc-perso/1","file_id":"0193…","created_at_us":1765000000000000,
//!  "bureau_zmk_kcv":"A1B2C3",
//!  "transport_zek":"U8F3E…","transport_zek_kcv":"1A2B3C",
//!  "transport_zpk":"U77A1…","transport_zpk_kcv":"4D5E6F"}
//! ```
//! `transport_zek` and `transport_zpk` are two keys the issuer's HSM generated for this file and
//! exported under the bureau's ZMK (payShield A0 mode 1): the bureau imports them once (A6) and
//! never sees the issuer's master keys.
//!
//! Every further line, a card:
//! ```json
//! {"card_id":17,"application_id":3,"algorithm":"sm4",
//!  "pan":"6288660100000017","psn":"00","pboc_expiry":"361231","pboc_effective":"261207",
//!  "ssse":{"city_code":"410100","card_identification_code":"410100D156000005…",
//!          "issue_date":"20261207","expiry_date":"20361207","card_number":"A00000017",
//!          "social_security_number":"11010519491231002X","name":"张三","sex":"2",
//!          "ethnicity":"00","birthplace":"110105","birth_date":"19491231"},
//!  "keys":{"mk_ac":{"under_zek":"G…","kcv":"…"},"mk_smi":{…},"mk_smc":{…},
//!          "ssse_internal_auth":{…},"ssse_external_auth":{…},"ssse_pin_unblock":{…},
//!          "ssse_line_protection":{…}},
//!  "pin_block":"…16 hex…","pin_block_format":"05","pin_tries_max":3,
//!  "photo_jpeg_hex":"FFD8…FFD9"}
//! ```
//! - keys: the per-card keys (EMV MK-AC/SMI/SMC from the IMKs with PAN and PSN, EMV Book 2
//!   A1.4 / JR/T 0025.17; SSSE keys dispersed province → city → card) derived inside the HSM
//!   and encrypted under `transport_zek` (scheme `U` 3DES, `G` SM4; project command XT), each
//!   with its check value so the bureau checks what it loads;
//! - pin_block: the cardholder's initial PIN (typed on the counter's PIN pad) as an ISO 9564-1
//!   format 1 block under `transport_zpk` (payShield CA), for the chip's offline PIN;
//! - ethnicity `00` (not supplied by the bureau's batch);
//! - photo: the card-face photo, when the application has one.
//!
//! PAN, names and the citizen ID are in clear: the file must travel over an encrypted,
//! authenticated channel to the bureau (a real deployment uses the bureau's SFTP with
//! per-file signatures) and be deleted after production. A real card bureau's format (CPS,
//! EMV Card Personalisation Specification, or the bureau's own) replaces this one.

use serde::{Deserialize, Serialize};

/// The format name of the header.
pub const PERSO_FORMAT: &str = "ssc-perso/1";

/// The file's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersoHeader {
    /// Always [`PERSO_FORMAT`].
    pub format: String,
    /// This file.
    pub file_id: String,
    /// When written.
    pub created_at_us: i64,
    /// Check value of the bureau ZMK the transport keys are under.
    pub bureau_zmk_kcv: String,
    /// The transport ZEK under the bureau ZMK.
    pub transport_zek: String,
    /// Its check value.
    pub transport_zek_kcv: String,
    /// The transport ZPK under the bureau ZMK.
    pub transport_zpk: String,
    /// Its check value.
    pub transport_zpk_kcv: String,
}

/// A per-card key under the transport ZEK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedKey {
    /// Scheme letter + hex.
    pub under_zek: String,
    /// Check value, 6 hex.
    pub kcv: String,
}

/// The card's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersoKeys {
    /// EMV MK-AC.
    pub mk_ac: EncryptedKey,
    /// EMV MK-SMI.
    pub mk_smi: EncryptedKey,
    /// EMV MK-SMC.
    pub mk_smc: EncryptedKey,
    /// SSSE internal authentication.
    pub ssse_internal_auth: EncryptedKey,
    /// SSSE external authentication.
    pub ssse_external_auth: EncryptedKey,
    /// SSSE PIN unblock.
    pub ssse_pin_unblock: EncryptedKey,
    /// SSSE line protection (EF06 UPDATE RECORD MAC); absent in the files of a switch that
    /// did not derive it yet (their cards take no EF06 update from the card relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssse_line_protection: Option<EncryptedKey>,
}

/// The SSSE application's data (EF05, EF06).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersoSsse {
    /// GB/T 2260 code of the issuing city.
    pub city_code: String,
    /// 卡识别码, 32 hex.
    pub card_identification_code: String,
    /// `YYYYMMDD`.
    pub issue_date: String,
    /// `YYYYMMDD`.
    pub expiry_date: String,
    /// Card number printed on the face (9 characters).
    pub card_number: String,
    /// The citizen ID.
    pub social_security_number: String,
    /// Name (UTF-8; the chip holds it in GBK).
    pub name: String,
    /// `1`/`2`.
    pub sex: String,
    /// GB 3304 code, two digits.
    pub ethnicity: String,
    /// GB/T 2260 code of the birthplace.
    pub birthplace: String,
    /// `YYYYMMDD`.
    pub birth_date: String,
}

/// One card of the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersoRecord {
    /// The switch's card id.
    pub card_id: i64,
    /// The application (None for a replacement without one).
    pub application_id: Option<i64>,
    /// `sm4` or `tdes`.
    pub algorithm: String,
    /// The debit application's PAN.
    pub pan: String,
    /// PAN sequence number.
    pub psn: String,
    /// `YYMMDD`.
    pub pboc_expiry: String,
    /// `YYMMDD`.
    pub pboc_effective: String,
    /// SSSE data.
    pub ssse: PersoSsse,
    /// Keys under the transport ZEK.
    pub keys: PersoKeys,
    /// Initial PIN, ISO 9564-1 format 1 under the transport ZPK, hex.
    pub pin_block: String,
    /// payShield format code of `pin_block` (`05`).
    pub pin_block_format: String,
    /// Offline PIN tries.
    pub pin_tries_max: u8,
    /// The card-face photo, hex.
    pub photo_jpeg_hex: Option<String>,
}

impl std::fmt::Debug for PersoRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersoRecord")
            .field("card_id", &self.card_id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A file: its header and records, written as JSON Lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersoFileContent {
    /// Line 1.
    pub header: PersoHeader,
    /// One per card.
    pub records: Vec<PersoRecord>,
}

/// Why a personalisation file does not read.
#[derive(Debug, thiserror::Error)]
pub enum PersoFileError {
    /// No header line.
    #[error("empty file")]
    Empty,
    /// Line `line` is not what the format says.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based.
        line: usize,
        /// Why.
        reason: String,
    },
}

impl PersoFileContent {
    /// The JSON Lines text.
    pub fn to_json_lines(&self) -> String {
        let mut out = serde_json::to_string(&self.header).unwrap_or_default();
        out.push('\n');
        for r in &self.records {
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Parses JSON Lines text.
    pub fn parse(text: &str) -> Result<Self, PersoFileError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, first) = lines.next().ok_or(PersoFileError::Empty)?;
        let bad = |line: usize, e: String| PersoFileError::Line {
            line: line + 1,
            reason: e,
        };
        let header: PersoHeader =
            serde_json::from_str(first).map_err(|e| bad(0, json_reason(&e)))?;
        if header.format != PERSO_FORMAT {
            return Err(bad(0, format!("format is not {PERSO_FORMAT}")));
        }
        let records = lines
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(i, json_reason(&e))))
            .collect::<Result<_, _>>()?;
        Ok(Self { header, records })
    }
}

/// A JSON error without the text it failed on (a record holds PANs and names).
fn json_reason(e: &serde_json::Error) -> String {
    format!("{:?} error at column {}", e.classify(), e.column())
}
