//! The demo's card bureau and issuance counter: the issuance keys of the demo world as the CMS
//! needs them ([`demo_issuance`]), a counter PIN pad ([`counter_pin`]), and the bureau's
//! personalisation machine, which loads one record of a personalisation file into a virtual
//! card ([`load_record`]).
//!
//! Demo only: the bureau here holds its ZMK in clear ([`clear_keys::BUREAU_ZMK`]) to open the
//! transport keys and the card keys; a real bureau does this inside its own HSM and writes the
//! keys into the chip over a secure channel.

use super::world::{
    clear_keys as world_keys, with_odd_parity, DemoError, DemoWorld, CARD_TEMPLATE,
};
use crate::cms::perso_file::{EncryptedKey, PersoHeader, PersoRecord};
use crate::cms::{BinRange, CounterPin, EmvMasterKeys, IssuanceConfig, SsseMasterKeys};
use crate::store::IccAlgorithm;
use card_apdu::perso::{AlgorithmName, CardProfile, PbocKeys, PersoFile};
use card_apdu::vcard::VirtualCard;
use hsm_sim::card_crypto::{CardAlgorithm, CardKey, ClearPin};
use hsm_sim::crypto::WorkingCipher;
use hsm_sim::keys::{
    ClearKey, ImkSmc, KeyScheme, KeyType, SsseExternalAuthKey, SsseInternalAuthKey,
    SsseLineProtectionKey, SssePinUnblockKey, Tpk, TypedKey, Zmk,
};
use hsm_sim::pin::{decrypt_pin_block, encrypt_pin_block, EncryptedPinBlock, PinBlockFormat};
use hsm_sim::SoftHsm;

/// Clear demo keys of the issuance side (never outside a demo).
pub mod clear_keys {
    /// The card bureau's zone master key (odd parity applied when used).
    pub const BUREAU_ZMK: &str = "7C7C7C7C7C7C7C7C0123456789ABCDEF";
    /// IMK-SMC of SM4 cards (as in card-apdu/testdata/demo-card.toml).
    pub const IMK_SMC_SM4: &str = "C1C2C3C4C5C6C7C8D1D2D3D4D5D6D7D8";
    /// SSSE province keys (as in demo-card.toml).
    pub const SSSE_INTERNAL_AUTH: &str = "11111111111111112222222222222222";
    /// SSSE external authentication province key.
    pub const SSSE_EXTERNAL_AUTH: &str = "33333333333333334444444444444444";
    /// SSSE PIN-unblock province key.
    pub const SSSE_PIN_UNBLOCK: &str = "55555555555555556666666666666666";
    /// SSSE line-protection province key.
    pub const SSSE_LINE_PROTECTION: &str = "77777777777777778888888888888888";
}

/// The digit added to a demo bank's BIN for the CMS's range (the seeded demo cards use the
/// 8-digit BIN with serials from 1, so the CMS's cards never collide with them).
pub const CMS_RANGE_DIGIT: char = '9';

fn data(what: &'static str) -> impl Fn(hsm_sim::HsmError) -> DemoError {
    move |_| DemoError::Data(what)
}

/// The CMS issuance configuration of the demo world: SM4 cards, the world's IMKs and PVK (as
/// LMK tokens in its HSM), the template's SSSE province keys, one range per bank.
pub fn demo_issuance(world: &DemoWorld) -> Result<IssuanceConfig, DemoError> {
    let hsm = &world.hsm;
    let import = |t: KeyType, s: KeyScheme, hex: &str| hsm.import_clear_key(t, s, hex);
    let issuer = &world.keys.issuer;
    let ranges = world
        .banks
        .iter()
        .map(|b| BinRange::new(&format!("{}{CMS_RANGE_DIGIT}", b.bin), b.id.clone(), 16))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| DemoError::Data("bin range"))?;
    Ok(IssuanceConfig {
        hsm: world.hsm.clone(),
        ranges,
        algorithm: IccAlgorithm::Sm4,
        emv: EmvMasterKeys {
            ac: issuer.imk_ac_sm4.clone().ok_or(DemoError::Data("imk ac"))?,
            smi: issuer
                .imk_smi_sm4
                .clone()
                .ok_or(DemoError::Data("imk smi"))?,
            smc: ImkSmc::from_token(import(
                KeyType::ImkSmc,
                KeyScheme::G,
                clear_keys::IMK_SMC_SM4,
            )?),
        },
        ssse: SsseMasterKeys {
            internal_auth: SsseInternalAuthKey::from_token(import(
                KeyType::SsseInternalAuth,
                KeyScheme::G,
                clear_keys::SSSE_INTERNAL_AUTH,
            )?),
            external_auth: SsseExternalAuthKey::from_token(import(
                KeyType::SsseExternalAuth,
                KeyScheme::G,
                clear_keys::SSSE_EXTERNAL_AUTH,
            )?),
            pin_unblock: SssePinUnblockKey::from_token(import(
                KeyType::SssePinUnblock,
                KeyScheme::G,
                clear_keys::SSSE_PIN_UNBLOCK,
            )?),
            line_protection: SsseLineProtectionKey::from_token(import(
                KeyType::SsseLineProtection,
                KeyScheme::G,
                clear_keys::SSSE_LINE_PROTECTION,
            )?),
        },
        city_code: "410100".into(),
        pvk: issuer.pvk.clone(),
        decimalisation_table: issuer.decimalisation_table.clone(),
        bureau_zmk: Zmk::from_token(import(
            KeyType::Zmk,
            KeyScheme::U,
            &with_odd_parity(clear_keys::BUREAU_ZMK),
        )?),
        validity_years: 10,
    })
}

/// The demo's photo data key (public, demo only; a node's comes from its HSM).
pub(crate) const DEMO_PHOTO_KEY: [u8; 32] = [0x5A; 32];

/// The card management system of the demo node: [`demo_issuance`], the social-security fund as
/// the bureau of the demo city (GB/T 2260 prefix `4101`, 郑州), the counters' TPK, and a photo
/// key. DEMO ONLY: every key here is public.
pub fn demo_cms(world: &DemoWorld) -> Result<crate::node::CmsParts, DemoError> {
    let counter_tpk = Tpk::from_token(world.hsm.import_clear_key(
        KeyType::Tpk,
        KeyScheme::U,
        world_keys::TPK,
    )?);
    let photos = hsm_sim::datakey::DataKey::from_bytes(DEMO_PHOTO_KEY)
        .map(crate::cms::photo::PhotoSealer::new)
        .map_err(|_| DemoError::Data("photo key"))?;
    Ok(crate::node::CmsParts {
        issuance: demo_issuance(world)?,
        photos: Some(photos),
        bureaus: vec![crate::operator::scope::Bureau {
            institution: world.cfg.social_security_fund.clone(),
            region_prefix: DEMO_REGION_PREFIX.into(),
        }],
        counter_tpk,
        counters: Vec::new(),
        kiosks: Vec::new(),
    })
}

/// The GB/T 2260 prefix of the demo bureau's region (the city 410100).
pub const DEMO_REGION_PREFIX: &str = "4101";

/// The block a counter's PIN pad makes of `pin` (ISO 9564-1 format 1, which needs no PAN,
/// or format 0 with `pan`) under the demo TPK, and that TPK as an LMK token.
pub fn counter_pin(
    world: &DemoWorld,
    pin: &str,
    format: PinBlockFormat,
    pan: &str,
) -> Result<CounterPin, DemoError> {
    counter_pin_under(world, world_keys::TPK, pin, format, pan)
}

/// [`counter_pin`] at a PIN pad whose TPK is the clear key `tpk_hex` (a counter with its own
/// TPK; tests and the demo only).
pub fn counter_pin_under(
    world: &DemoWorld,
    tpk_hex: &str,
    pin: &str,
    format: PinBlockFormat,
    pan: &str,
) -> Result<CounterPin, DemoError> {
    let key = ClearKey::new(
        KeyScheme::U,
        hex::decode(tpk_hex).map_err(|_| DemoError::Data("tpk"))?,
    )?;
    let cipher = WorkingCipher::new(&key)?;
    let clear = ClearPin::new(pin).map_err(|_| DemoError::Data("pin"))?;
    let block = encrypt_pin_block(&cipher, format, &clear, pan)?;
    let tpk = Tpk::from_token(
        world
            .hsm
            .import_clear_key(KeyType::Tpk, KeyScheme::U, tpk_hex)?,
    );
    Ok(CounterPin {
        key: hsm_sim::keys::PinKey::Tpk(tpk),
        block,
        format,
    })
}

/// A key of the record, opened under the clear transport key and checked against its KCV.
fn open_key(zek: &ClearKey, alg: CardAlgorithm, k: &EncryptedKey) -> Result<CardKey, DemoError> {
    let clear = SoftHsm::open_key_under_clear_kek(zek, &k.under_zek).map_err(data("card key"))?;
    let key = clear.as_card_key(alg).map_err(data("card key"))?;
    if hex::encode_upper(key.check_value(alg)) != k.kcv {
        return Err(DemoError::Card("card key check value mismatch".into()));
    }
    Ok(key)
}

/// A random card key that no one else holds.
fn unknown_key() -> Result<CardKey, DemoError> {
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
    let key = CardKey::from_hex(&hex::encode(raw)).map_err(|_| DemoError::Data("card key"));
    zeroize::Zeroize::zeroize(&mut raw);
    key
}

/// A transport key of the header, opened under the bureau's ZMK and checked.
fn open_transport(zmk: &ClearKey, under: &str, kcv: &str) -> Result<ClearKey, DemoError> {
    let key = SoftHsm::open_key_under_clear_kek(zmk, under).map_err(data("transport key"))?;
    if hex::encode_upper(key.check_value()) != kcv {
        return Err(DemoError::Card("transport key check value mismatch".into()));
    }
    Ok(key)
}

/// The bureau's personalisation machine: a virtual card made from one record of a file.
pub fn load_record(header: &PersoHeader, record: &PersoRecord) -> Result<VirtualCard, DemoError> {
    let zmk = ClearKey::new(
        KeyScheme::U,
        hex::decode(with_odd_parity(clear_keys::BUREAU_ZMK)).map_err(|_| DemoError::Data("zmk"))?,
    )?;
    if hex::encode_upper(zmk.check_value()) != header.bureau_zmk_kcv {
        return Err(DemoError::Card("file is for another bureau's ZMK".into()));
    }
    let zek = open_transport(&zmk, &header.transport_zek, &header.transport_zek_kcv)?;
    let zpk = open_transport(&zmk, &header.transport_zpk, &header.transport_zpk_kcv)?;
    let (alg, name) = match record.algorithm.as_str() {
        "sm4" => (CardAlgorithm::Sm4, AlgorithmName::Sm4),
        "tdes" => (CardAlgorithm::Tdes, AlgorithmName::Tdes),
        _ => return Err(DemoError::Card("unknown algorithm".into())),
    };
    let mut file =
        PersoFile::from_toml(CARD_TEMPLATE).map_err(|e| DemoError::Card(e.to_string()))?;
    let s = &record.ssse;
    file.ssse.algorithm = name;
    file.ssse.city_code = s.city_code.clone();
    file.ssse.card_identification_code = s.card_identification_code.clone();
    file.ssse.issue_date = s.issue_date.clone();
    file.ssse.expiry_date = s.expiry_date.clone();
    file.ssse.card_number = s.card_number.clone();
    file.ssse.social_security_number = s.social_security_number.clone();
    file.ssse.name = s.name.clone();
    file.ssse.sex = s.sex.clone();
    file.ssse.ethnicity = s.ethnicity.clone();
    file.ssse.birthplace = s.birthplace.clone();
    file.ssse.birth_date = s.birth_date.clone();
    file.pboc.pan = record.pan.clone();
    file.pboc.psn = record.psn.clone();
    file.pboc.expiry_date = record.pboc_expiry.clone();
    file.pboc.effective_date = record.pboc_effective.clone();
    file.pboc.pin_tries_max = record.pin_tries_max;
    file.ssse.pin_tries_max = record.pin_tries_max;
    // The template's master keys only fill the profile's shape; every key is replaced below.
    let mut profile = CardProfile::from_perso(&file).map_err(|e| DemoError::Card(e.to_string()))?;
    let k = &record.keys;
    profile.ssse.k_internal_auth = open_key(&zek, alg, &k.ssse_internal_auth)?;
    profile.ssse.k_external_auth = open_key(&zek, alg, &k.ssse_external_auth)?;
    profile.ssse.k_pin_unblock = open_key(&zek, alg, &k.ssse_pin_unblock)?;
    profile.ssse.k_line_protection = match &k.ssse_line_protection {
        Some(key) => open_key(&zek, alg, key)?,
        // A file without it: a key nobody holds, so the card refuses every EF06 update.
        None => unknown_key()?,
    };
    let keys = PbocKeys {
        mk_ac: open_key(&zek, alg, &k.mk_ac)?,
        mk_smi: open_key(&zek, alg, &k.mk_smi)?,
        mk_smc: open_key(&zek, alg, &k.mk_smc)?,
    };
    (profile.pboc.keys_sm4, profile.pboc.keys_tdes) = match alg {
        CardAlgorithm::Sm4 => (Some(keys), None),
        CardAlgorithm::Tdes => (None, Some(keys)),
    };
    let format = PinBlockFormat::from_code(&record.pin_block_format).map_err(data("pin format"))?;
    let block = EncryptedPinBlock::from_hex(&record.pin_block).map_err(data("pin block"))?;
    let pin = decrypt_pin_block(&WorkingCipher::new(&zpk)?, format, &block, &record.pan)
        .map_err(data("pin block"))?;
    profile.ssse.pin = pin.clone();
    profile.pboc.pin = pin;
    Ok(VirtualCard::new(profile))
}
