//! Issuance: a card for an application. The service assigns the debit application's PAN from
//! the bank's BIN range (sequential serial, Luhn check digit, ISO/IEC 7812-1 Annex B), the PSN,
//! the expiry and the SSSE card identification code; asks the HSM for the IBM 3624 offset of
//! the PIN the cardholder typed at the counter; derives every per-card key inside the HSM
//! under a transport key of the card bureau; and adds the card's record to a personalisation
//! file ([`super::perso_file`]). No clear master key, card key or PIN is ever in this process.
//!
//! Replacement (a new card for the same person) and PIN reset at a counter are here too: they
//! are issuance work (a new PAN and keys; a new PIN offset from the HSM).

use super::error::CmsError;
use super::lifecycle::{next, CardOperation, Lifecycle};
use super::model::{Actor, Application, ApplicationId, ApplicationStatus, CmsCard};
use super::perso_file::{
    EncryptedKey, PersoFileContent, PersoHeader, PersoKeys, PersoRecord, PersoSsse, PERSO_FORMAT,
};
use super::service::{card_entry_of, CardManagement};
use super::store::{CardChange, CmsStore};
use crate::pipeline::security::pin_validation_data;
use crate::store::{now_us, CardId, CardIssuance, CardStatus, IccAlgorithm, NewCard};
use chrono::{Datelike, NaiveDate};
use hsm_sim::card_crypto::CardAlgorithm;
use hsm_sim::hsm::{CardKeyDerivation, CardMasterKey, PinBlockIn, SsseCardRef};
use hsm_sim::keys::{
    ImkAc, ImkSmc, ImkSmi, KeyScheme, KeyType, PinKey, Pvk, SsseExternalAuthKey,
    SsseInternalAuthKey, SsseLineProtectionKey, SssePinUnblockKey, TypedKey, Zek, Zmk, Zpk,
};
use hsm_sim::pin::{EncryptedPinBlock, PinBlockFormat};
use hsm_sim::Hsm;
use schemas::domain::{CardIdentificationCode, InstitutionId, Pan};
use serde_json::json;
use std::sync::Arc;

/// The row version of a card just issued (migration 0010's default).
const NEW_CARD_VERSION: i64 = 1;
/// PAN sequence number of a new card (EMV tag 5F34): every card gets its own PAN.
const PSN_NEW_CARD: &str = "00";
/// Offline PIN tries the chip allows.
const PIN_TRIES_MAX: u8 = 3;
/// The fixed middle of the card identification code after the city: 'D156' (China, ISO 3166
/// numeric 156) and the card bureau's issuer number.
const CIC_ISSUER_PART: &str = "D156000005";

/// The ISO/IEC 7812-1 Annex B (Luhn) check digit of `body` (decimal digits).
pub fn luhn_check_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.wrapping_sub(b'0'));
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// A bank's card range: PANs `bin` + serial + Luhn digit, serials handed out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinRange {
    /// The BIN (6-11 digits).
    pub bin: String,
    /// The bank.
    pub bank: InstitutionId,
    /// PAN length in digits (16-19).
    pub pan_len_digits: usize,
}

impl BinRange {
    /// Checks the range.
    pub fn new(bin: &str, bank: InstitutionId, pan_len_digits: usize) -> Result<Self, CmsError> {
        let ok = (6..=11).contains(&bin.len())
            && bin.bytes().all(|b| b.is_ascii_digit())
            && (16..=19).contains(&pan_len_digits)
            && pan_len_digits > bin.len() + 1;
        if !ok {
            return Err(CmsError::Invalid {
                field: "bin_range",
                reason: "BIN of 6-11 digits and a PAN of 16-19 digits".into(),
            });
        }
        Ok(Self {
            bin: bin.to_owned(),
            bank,
            pan_len_digits,
        })
    }

    fn serial_digits(&self) -> usize {
        self.pan_len_digits - self.bin.len() - 1
    }

    /// The last serial of the range.
    pub fn serial_max(&self) -> i64 {
        10i64.pow(self.serial_digits() as u32) - 1
    }

    /// The PAN of `serial`.
    pub fn pan(&self, serial: i64) -> Result<Pan, CmsError> {
        let body = format!(
            "{}{:0width$}",
            self.bin,
            serial,
            width = self.serial_digits()
        );
        let digits = format!("{body}{}", luhn_check_digit(&body));
        Pan::parse(&digits).map_err(|_| CmsError::Invalid {
            field: "pan",
            reason: "range produced an invalid PAN".into(),
        })
    }
}

/// The issuer's EMV master keys of one algorithm, as LMK tokens.
#[derive(Debug, Clone)]
pub struct EmvMasterKeys {
    /// IMK-AC.
    pub ac: ImkAc,
    /// IMK-SMI.
    pub smi: ImkSmi,
    /// IMK-SMC.
    pub smc: ImkSmc,
}

/// The province's SSSE master keys, as LMK tokens.
#[derive(Debug, Clone)]
pub struct SsseMasterKeys {
    /// Internal authentication.
    pub internal_auth: SsseInternalAuthKey,
    /// External authentication.
    pub external_auth: SsseExternalAuthKey,
    /// PIN unblock.
    pub pin_unblock: SssePinUnblockKey,
    /// Line protection (the MAC of an EF06 UPDATE RECORD with secure messaging).
    pub line_protection: SsseLineProtectionKey,
}

/// What issuance needs: the HSM, the ranges, the master keys (LMK tokens), the PIN
/// verification key and the card bureau's ZMK.
#[derive(Clone)]
pub struct IssuanceConfig {
    /// The HSM.
    pub hsm: Arc<dyn Hsm>,
    /// One range per bank.
    pub ranges: Vec<BinRange>,
    /// The cards' algorithm.
    pub algorithm: IccAlgorithm,
    /// EMV master keys of that algorithm.
    pub emv: EmvMasterKeys,
    /// SSSE master keys.
    pub ssse: SsseMasterKeys,
    /// GB/T 2260 code of the issuing city (SSSE key dispersal, card identification code).
    pub city_code: String,
    /// IBM 3624 PIN verification key.
    pub pvk: Pvk,
    /// Its decimalisation table (one the HSM allows).
    pub decimalisation_table: String,
    /// The card bureau's ZMK.
    pub bureau_zmk: Zmk,
    /// Years a card is valid.
    pub validity_years: u32,
}

impl std::fmt::Debug for IssuanceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuanceConfig")
            .field("ranges", &self.ranges)
            .field("algorithm", &self.algorithm)
            .field("city_code", &self.city_code)
            .finish_non_exhaustive()
    }
}

/// A PIN typed on a counter's PIN pad: the block under the pad's TPK, or under a ZPK when the
/// counter's system re-encrypted it on the way. For a new card the block must be ISO 9564-1
/// format 1 (it cannot depend on a PAN not yet assigned).
#[derive(Debug, Clone)]
pub struct CounterPin {
    /// The key the block is under.
    pub key: PinKey,
    /// The encrypted block.
    pub block: EncryptedPinBlock,
    /// Its format.
    pub format: PinBlockFormat,
}

/// A personalisation file being written: its transport keys (LMK tokens, and under the
/// bureau's ZMK in the header) and its records.
#[derive(Debug)]
pub struct PersoBatch {
    zek: Zek,
    zpk: Zpk,
    content: PersoFileContent,
}

impl PersoBatch {
    /// The file so far.
    pub fn content(&self) -> &PersoFileContent {
        &self.content
    }
}

fn kcv_hex(kcv: [u8; 3]) -> String {
    hex::encode_upper(kcv)
}

fn card_algorithm(a: IccAlgorithm) -> CardAlgorithm {
    match a {
        IccAlgorithm::Sm4 => CardAlgorithm::Sm4,
        IccAlgorithm::Tdes => CardAlgorithm::Tdes,
    }
}

/// The day `years` after `d` (29 February → 28 February).
fn add_years(d: NaiveDate, years: u32) -> NaiveDate {
    let y = d.year() + years as i32;
    d.with_year(y)
        .or_else(|| NaiveDate::from_ymd_opt(y, d.month(), 28))
        .unwrap_or(d)
}

/// The last day of `d`'s month.
fn month_end(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|n| n.pred_opt())
        .unwrap_or(d)
}

impl<S: CmsStore> CardManagement<S> {
    fn issuance(&self) -> Result<&IssuanceConfig, CmsError> {
        self.issuance.as_ref().ok_or(CmsError::Invalid {
            field: "issuance",
            reason: "this service was built without issuance keys".into(),
        })
    }

    /// Starts a personalisation file: the HSM generates its transport ZEK and ZPK and exports
    /// them under the bureau's ZMK.
    pub async fn open_perso_batch(&self) -> Result<PersoBatch, CmsError> {
        let c = self.issuance()?;
        let zmk_kcv = c
            .hsm
            .key_check_value(KeyType::Zmk, c.bureau_zmk.token())
            .await?;
        let zek = c
            .hsm
            .generate_key(KeyType::Zek, KeyScheme::U, Some(&c.bureau_zmk))
            .await?;
        let zpk = c
            .hsm
            .generate_key(KeyType::Zpk, KeyScheme::U, Some(&c.bureau_zmk))
            .await?;
        let missing = || CmsError::Conflict("HSM did not export the transport key");
        let header = PersoHeader {
            format: PERSO_FORMAT.into(),
            file_id: uuid::Uuid::now_v7().to_string(),
            created_at_us: now_us(),
            bureau_zmk_kcv: kcv_hex(zmk_kcv),
            transport_zek: zek.under_zmk.clone().ok_or_else(missing)?,
            transport_zek_kcv: kcv_hex(zek.check_value),
            transport_zpk: zpk.under_zmk.clone().ok_or_else(missing)?,
            transport_zpk_kcv: kcv_hex(zpk.check_value),
        };
        Ok(PersoBatch {
            zek: Zek::from_token(zek.token),
            zpk: Zpk::from_token(zpk.token),
            content: PersoFileContent {
                header,
                records: Vec::new(),
            },
        })
    }

    /// Personalises the card of an `applied` application: PAN, keys, PIN offset, and the
    /// record in `batch`. The card starts `personalised` (declined 62 until activated).
    pub async fn personalise(
        &self,
        actor: &Actor,
        batch: &mut PersoBatch,
        application_id: ApplicationId,
        pin: &CounterPin,
    ) -> Result<CmsCard, CmsError> {
        let app = self.application(application_id).await?;
        next(
            CardOperation::Personalise,
            match app.status {
                ApplicationStatus::Applied => Lifecycle::Applied,
                ApplicationStatus::Personalised => Lifecycle::Personalised,
            },
        )?;
        let (card, record) = self.make_card(batch, &app, &app.bank, pin).await?;
        let photo = self.photo(application_id).await?.map(hex::encode_upper);
        let (file_id, pan) = (batch.content.header.file_id.clone(), card.pan.masked());
        let entry = |card_id| {
            card_entry_of(
                actor,
                CardOperation::Personalise,
                card_id,
                Lifecycle::Applied,
                Lifecycle::Personalised,
                NEW_CARD_VERSION,
                json!({"application": application_id.0, "file_id": file_id, "pan": pan}),
            )
        };
        let card_id = self
            .store
            .personalise_application(application_id, app.cardholder_id, &card, now_us(), &entry)
            .await?;
        let mut record = record;
        record.card_id = card_id.0;
        record.application_id = Some(application_id.0);
        record.photo_jpeg_hex = photo;
        batch.content.records.push(record);
        self.card(card_id).await
    }

    /// Replaces a card: a new card (new PAN and keys, record in `batch`) for the same
    /// cardholder; the old card becomes `replaced` (declined, on the hot list) and its accounts
    /// move to the new one, in one transaction. Returns (old, new).
    pub async fn replace(
        &self,
        actor: &Actor,
        batch: &mut PersoBatch,
        card_id: CardId,
        if_match: Option<i64>,
        pin: &CounterPin,
    ) -> Result<(CmsCard, CmsCard), CmsError> {
        let old = self.card_at(card_id, if_match).await?;
        let to = next(CardOperation::Replace, old.lifecycle)?;
        let holder_id = old.cardholder_id.ok_or(CmsError::Conflict(
            "card has no cardholder record (seeded outside the CMS)",
        ))?;
        let app = self
            .store
            .latest_application(holder_id)
            .await?
            .ok_or(CmsError::NotFound("application"))?;
        let (card, mut record) = self.make_card(batch, &app, &old.issuer, pin).await?;
        let reason = actor.reason.clone();
        let change = CardChange {
            card_id,
            expected_version: old.version,
            from: old.lifecycle,
            to,
            reason: &reason,
            at_us: now_us(),
            reset_pin_tries: false,
            pin_offset: None,
        };
        let file_id = batch.content.header.file_id.clone();
        let entry = |new_id: CardId| {
            card_entry_of(
                actor,
                CardOperation::Replace,
                card_id,
                old.lifecycle,
                to,
                old.version + 1,
                json!({"new_card": new_id.0, "file_id": file_id, "accounts_moved": true}),
            )
        };
        let photo = self.photo(app.application_id).await?.map(hex::encode_upper);
        let new_id = match self.store.replace_card(&change, &card, &entry).await {
            Ok(id) => id,
            Err(crate::store::StoreError::Conflict("card version")) => {
                return Err(CmsError::VersionMismatch {
                    current: self.card(card_id).await?.version,
                })
            }
            Err(e) => return Err(e.into()),
        };
        record.card_id = new_id.0;
        record.photo_jpeg_hex = photo;
        batch.content.records.push(record);
        Ok((self.card(card_id).await?, self.card(new_id).await?))
    }

    /// Sets a new PIN at a counter: the block from the counter's PIN pad (any format, under its
    /// TPK), the new IBM 3624 offset computed by the HSM; the wrong-PIN count goes back to 0
    /// and a card blocked by wrong PINs becomes active.
    pub async fn reset_pin(
        &self,
        actor: &Actor,
        card_id: CardId,
        if_match: Option<i64>,
        pin: &CounterPin,
    ) -> Result<CmsCard, CmsError> {
        let c = self.issuance()?;
        let card = self.card_at(card_id, if_match).await?;
        let to = next(CardOperation::ResetPin, card.lifecycle)?;
        let pan = self.store.card_pan(card_id).await?;
        let offset = self.pin_offset(c, &pan, pin).await?;
        let change = CardChange {
            card_id,
            expected_version: card.version,
            from: card.lifecycle,
            to,
            reason: &actor.reason,
            at_us: now_us(),
            reset_pin_tries: true,
            pin_offset: Some(&offset),
        };
        self.commit_change(actor, CardOperation::ResetPin, &card, &change)
            .await
    }

    /// The IBM 3624 offset of `pin` for `pan` (digits up to the PIN's length).
    async fn pin_offset(
        &self,
        c: &IssuanceConfig,
        pan: &Pan,
        pin: &CounterPin,
    ) -> Result<String, CmsError> {
        let validation = pin_validation_data(pan).map_err(|_| CmsError::Invalid {
            field: "pan",
            reason: "no account number".into(),
        })?;
        let block = PinBlockIn {
            block: pin.block.clone(),
            format: pin.format,
            pan: pan.expose_digits().to_owned(),
        };
        let offset = c
            .hsm
            .generate_ibm_offset(
                &pin.key,
                &block,
                &c.pvk,
                &c.decimalisation_table,
                &validation,
            )
            .await?;
        Ok(offset.trim_end_matches('F').to_owned())
    }

    /// A new card's row and its personalisation record (card id filled in by the caller).
    async fn make_card(
        &self,
        batch: &PersoBatch,
        app: &Application,
        bank: &InstitutionId,
        pin: &CounterPin,
    ) -> Result<(NewCard, PersoRecord), CmsError> {
        let c = self.issuance()?;
        if pin.format != PinBlockFormat::Iso1 {
            return Err(CmsError::Invalid {
                field: "pin_block",
                reason: "a new card's PIN must be an ISO 9564-1 format 1 block".into(),
            });
        }
        let range = c
            .ranges
            .iter()
            .find(|r| &r.bank == bank)
            .ok_or(CmsError::Invalid {
                field: "bank",
                reason: "no BIN range configured for the bank".into(),
            })?;
        let serial = self
            .store
            .allocate_pan_serial(&range.bin, range.serial_max())
            .await?;
        let pan = range.pan(serial)?;
        let random = c.hsm.random_bytes(8).await?;
        let cic_text = format!(
            "{}{CIC_ISSUER_PART}{}",
            c.city_code,
            hex::encode_upper(random)
        );
        let cic = CardIdentificationCode::parse(&cic_text).map_err(|_| CmsError::Invalid {
            field: "city_code",
            reason: "card identification code not 32 characters".into(),
        })?;
        let today = super::application::today_cst(now_us());
        let expiry = month_end(add_years(today, c.validity_years));
        let offset = self.pin_offset(c, &pan, pin).await?;
        let pin_in = PinBlockIn {
            block: pin.block.clone(),
            format: pin.format,
            pan: pan.expose_digits().to_owned(),
        };
        let pin_for_bureau = match &pin.key {
            PinKey::Tpk(tpk) => {
                c.hsm
                    .translate_pin_tpk_to_zpk(tpk, &batch.zpk, &pin_in, PinBlockFormat::Iso1)
                    .await?
            }
            PinKey::Zpk(zpk) => {
                c.hsm
                    .translate_pin_zpk_to_zpk(zpk, &batch.zpk, &pin_in, PinBlockFormat::Iso1)
                    .await?
            }
        };
        let keys = self.card_keys(c, batch, &pan, &cic_text).await?;
        let record = PersoRecord {
            card_id: 0,
            application_id: None,
            algorithm: c.algorithm.as_sql().into(),
            pan: pan.expose_digits().to_owned(),
            psn: PSN_NEW_CARD.into(),
            pboc_expiry: expiry.format("%y%m%d").to_string(),
            pboc_effective: today.format("%y%m%d").to_string(),
            ssse: PersoSsse {
                city_code: c.city_code.clone(),
                card_identification_code: cic_text.clone(),
                issue_date: today.format("%Y%m%d").to_string(),
                expiry_date: add_years(today, c.validity_years)
                    .format("%Y%m%d")
                    .to_string(),
                card_number: format!("A{serial:08}"),
                social_security_number: app.citizen_id.clone(),
                name: app.name.clone(),
                sex: app.sex.clone(),
                ethnicity: "00".into(),
                birthplace: app.citizen_id.get(..6).unwrap_or_default().to_owned(),
                birth_date: app.birth_date.clone(),
            },
            keys,
            pin_block: pin_for_bureau.block.to_hex(),
            pin_block_format: PinBlockFormat::Iso1.code().into(),
            pin_tries_max: PIN_TRIES_MAX,
            photo_jpeg_hex: None,
        };
        let card = NewCard {
            pan,
            card_identification_code: Some(cic),
            issuer: bank.clone(),
            expiry_yymm: expiry.format("%y%m").to_string(),
            status: CardStatus::Issued,
            issuance: CardIssuance {
                pan_sequence_number: PSN_NEW_CARD.into(),
                icc_algorithm: Some(c.algorithm),
                pin_offset: Some(offset),
                insurance_category: Some(app.insurance),
            },
        };
        Ok((card, record))
    }

    /// The six per-card keys, derived in the HSM and encrypted under the batch's ZEK.
    async fn card_keys(
        &self,
        c: &IssuanceConfig,
        batch: &PersoBatch,
        pan: &Pan,
        cic: &str,
    ) -> Result<PersoKeys, CmsError> {
        let alg = card_algorithm(c.algorithm);
        let emv = CardKeyDerivation::Emv {
            algorithm: alg,
            pan: pan.expose_digits().to_owned(),
            psn: PSN_NEW_CARD.into(),
        };
        let ssse = CardKeyDerivation::Ssse(SsseCardRef {
            algorithm: alg,
            city_code: c.city_code.clone(),
            card_id: cic.to_owned(),
        });
        let derive = |master: CardMasterKey, how: &CardKeyDerivation| {
            let (hsm, zek, how) = (c.hsm.clone(), batch.zek.clone(), how.clone());
            async move {
                let (under_zek, kcv) = hsm.derive_card_key_under_zek(&master, &how, &zek).await?;
                Ok::<_, CmsError>(EncryptedKey {
                    under_zek,
                    kcv: kcv_hex(kcv),
                })
            }
        };
        Ok(PersoKeys {
            mk_ac: derive(CardMasterKey::ImkAc(c.emv.ac.clone()), &emv).await?,
            mk_smi: derive(CardMasterKey::ImkSmi(c.emv.smi.clone()), &emv).await?,
            mk_smc: derive(CardMasterKey::ImkSmc(c.emv.smc.clone()), &emv).await?,
            ssse_internal_auth: derive(
                CardMasterKey::SsseInternalAuth(c.ssse.internal_auth.clone()),
                &ssse,
            )
            .await?,
            ssse_external_auth: derive(
                CardMasterKey::SsseExternalAuth(c.ssse.external_auth.clone()),
                &ssse,
            )
            .await?,
            ssse_pin_unblock: derive(
                CardMasterKey::SssePinUnblock(c.ssse.pin_unblock.clone()),
                &ssse,
            )
            .await?,
            ssse_line_protection: Some(
                derive(
                    CardMasterKey::SsseLineProtection(c.ssse.line_protection.clone()),
                    &ssse,
                )
                .await?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_check_digits_match_published_examples() {
        // ISO/IEC 7812-1 Annex B example 7992739871 → 3; a test Visa PAN 4111 1111 1111 1111.
        assert_eq!(luhn_check_digit("7992739871"), '3');
        assert_eq!(luhn_check_digit("411111111111111"), '1');
    }

    #[test]
    fn a_range_hands_out_luhn_valid_pans_of_its_length() {
        let r = BinRange::new("62886601", InstitutionId::parse("01020000").unwrap(), 16).unwrap();
        assert_eq!(r.serial_max(), 9_999_999);
        let pan = r.pan(17).unwrap();
        assert_eq!(pan.expose_digits(), "6288660100000174");
        assert!(Pan::parse_checked(pan.expose_digits()).is_ok());
        assert!(BinRange::new("6288", InstitutionId::parse("01020000").unwrap(), 16).is_err());
        assert!(BinRange::new("62886601", InstitutionId::parse("01020000").unwrap(), 9).is_err());
    }

    #[test]
    fn expiry_is_the_end_of_the_month_years_later() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(
            add_years(d, 10),
            NaiveDate::from_ymd_opt(2034, 2, 28).unwrap()
        );
        assert_eq!(
            month_end(NaiveDate::from_ymd_opt(2036, 12, 7).unwrap()),
            NaiveDate::from_ymd_opt(2036, 12, 31).unwrap()
        );
    }
}
