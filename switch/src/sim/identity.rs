//! The demo's identity side: the cardholders on record for the demo cards (so a job-centre
//! kiosk's identity session can check field 61 against the card management system) and the
//! SSSE province keys the switch checks the cards' INTERNAL AUTHENTICATE with (and MACs a PIN
//! unblock or an EF06 update over the card relay with).
//!
//! Why apart from `world`: the identity session (issue 29) needs a person behind each card;
//! the payment traffic does not, and `world` stays about money.

use super::world::{clear_keys, with_odd_parity, DemoCard, DemoError};
use crate::cms::citizen_id::{check_character, CitizenId};
use crate::cms::model::NewApplication;
use crate::cms::region::RegionCode;
use crate::cms::CmsStore;
use crate::pipeline::SsseKeys;
use crate::store::{CardId, InsuranceCategory};
use hsm_sim::keys::{
    KeyScheme, KeyType, SsseExternalAuthKey, SsseInternalAuthKey, SsseLineProtectionKey,
    SssePinUnblockKey, TypedKey,
};
use hsm_sim::SoftHsm;
use schemas::domain::InstitutionId;

/// The citizen ID of demo card `n`'s cardholder: GB 11643-1999, Zhengzhou's Jinshui district
/// (410105), born 1 January 1980 plus `n / 1000` days, sequence `n % 1000`, with its MOD 11-2
/// check character. Distinct from the test fixtures' (410102…).
pub fn demo_citizen_id(n: usize) -> String {
    let born = chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap_or_default()
        + chrono::Duration::days((n / 1000) as i64);
    let body = format!("410105{}{:03}", born.format("%Y%m%d"), n % 1000);
    let mut digits = [0u8; 17];
    digits.copy_from_slice(&body.as_bytes()[..17]);
    format!("{body}{}", check_character(&digits))
}

/// Records the cardholder of demo card `c` (issued as `card_id`) in the card management
/// system's tables (`bank` is the card's bank, as on an application).
pub(crate) async fn enrol_cardholder<S: CmsStore>(
    store: &S,
    card_id: CardId,
    c: &DemoCard,
    bank: &InstitutionId,
    now_us: i64,
) -> Result<(), DemoError> {
    let today = chrono::Utc::now().date_naive();
    let citizen_id =
        CitizenId::parse(&c.citizen_id, today).map_err(|_| DemoError::Data("citizen id"))?;
    let holder = NewApplication {
        name: "张三".into(),
        sex: citizen_id.sex(),
        citizen_id,
        // The cardholder table needs a scheme; an uninsured demo card's holder is a resident
        // whose insurance has lapsed.
        insurance: c.insurance.unwrap_or(InsuranceCategory::Resident),
        region: RegionCode::parse("410105").map_err(|_| DemoError::Data("region"))?,
        bank: bank.clone(),
    };
    store
        .enrol_cardholder_of_card(card_id, &holder, now_us)
        .await?;
    Ok(())
}

/// The SSSE province keys of both algorithms (the demo's cards share one key tree).
pub(crate) fn ssse_keys(hsm: &SoftHsm) -> Result<SsseKeys, DemoError> {
    let internal = |scheme, hex: &str| -> Result<SsseInternalAuthKey, DemoError> {
        let token = hsm.import_clear_key(KeyType::SsseInternalAuth, scheme, hex)?;
        Ok(SsseInternalAuthKey::from_token(token))
    };
    let external = |scheme, hex: &str| -> Result<SsseExternalAuthKey, DemoError> {
        let token = hsm.import_clear_key(KeyType::SsseExternalAuth, scheme, hex)?;
        Ok(SsseExternalAuthKey::from_token(token))
    };
    let pin_unblock = |scheme, hex: &str| -> Result<SssePinUnblockKey, DemoError> {
        let token = hsm.import_clear_key(KeyType::SssePinUnblock, scheme, hex)?;
        Ok(SssePinUnblockKey::from_token(token))
    };
    let line_protection = |scheme, hex: &str| -> Result<SsseLineProtectionKey, DemoError> {
        let token = hsm.import_clear_key(KeyType::SsseLineProtection, scheme, hex)?;
        Ok(SsseLineProtectionKey::from_token(token))
    };
    Ok(SsseKeys {
        internal_auth_tdes: Some(internal(
            KeyScheme::U,
            &with_odd_parity(clear_keys::SSSE_INTERNAL_AUTH),
        )?),
        internal_auth_sm4: Some(internal(KeyScheme::G, clear_keys::SSSE_INTERNAL_AUTH)?),
        external_auth_tdes: Some(external(
            KeyScheme::U,
            &with_odd_parity(clear_keys::SSSE_EXTERNAL_AUTH),
        )?),
        external_auth_sm4: Some(external(KeyScheme::G, clear_keys::SSSE_EXTERNAL_AUTH)?),
        pin_unblock_tdes: Some(pin_unblock(
            KeyScheme::U,
            &with_odd_parity(clear_keys::SSSE_PIN_UNBLOCK),
        )?),
        pin_unblock_sm4: Some(pin_unblock(KeyScheme::G, clear_keys::SSSE_PIN_UNBLOCK)?),
        line_protection_tdes: Some(line_protection(
            KeyScheme::U,
            &with_odd_parity(clear_keys::SSSE_LINE_PROTECTION),
        )?),
        line_protection_sm4: Some(line_protection(
            KeyScheme::G,
            clear_keys::SSSE_LINE_PROTECTION,
        )?),
    })
}
