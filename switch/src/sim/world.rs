//! The demo world: institutions, keys, cards and accounts of a small province network, the same
//! for `switch demo`, the tests and the load generator, so an outside ISO 8583 client can be
//! pointed at a running demo with the values `switch demo --describe` prints.
//!
//! Every key here is a **demo key, printed in clear on purpose**. A production switch loads
//! LMK-encrypted tokens from its configuration and never sees a clear key.

use crate::cms::CmsStore;
use crate::pipeline::security::{pin_validation_data, AcquirerKeys, IssuerKeys};
use crate::pipeline::split::{HospitalLevel, PolicyTable};
use crate::pipeline::velocity::CardLimits;
use crate::pipeline::{Hospital, PipelineConfig, PipelineKeys, StandIn};
use crate::store::{
    AccountKind, BinRoute, CardIssuance, CardStatus, IccAlgorithm, Institution, InstitutionKind,
    InsuranceCategory, NewAccount, NewCard, Store, StoreError,
};
use card_apdu::perso::{AlgorithmName, CardProfile, PersoFile};
use card_apdu::vcard::VirtualCard;
use hsm_sim::card_crypto::ClearPin;
use hsm_sim::crypto::WorkingCipher;
use hsm_sim::keys::{
    ClearKey, ImkAc, ImkSmi, KeyScheme, KeyType, Pvk, Tak, Tpk, TypedKey, Zmk, Zpk,
};
use hsm_sim::pin::{encrypt_pin_block, PinBlockFormat};
use hsm_sim::{HsmError, SoftHsm};
use schemas::domain::{AmountFen, InstitutionId, Pan};
use std::collections::HashMap;
use std::sync::Arc;

/// The personalisation every demo card starts from (then gets its own PAN and identity).
pub(crate) const CARD_TEMPLATE: &str = include_str!("../../../card-apdu/testdata/demo-card.toml");

/// The switch's institution id.
pub const SWITCH_ID: &str = "4101000";
/// The medical-insurance fund of the demo city (Zhengzhou, 410100).
pub const INSURANCE_FUND_ID: &str = "4101009";
/// The social-security fund paying benefits.
pub const SOCIAL_SECURITY_FUND_ID: &str = "4101008";
/// The job centre.
pub const JOB_CENTRE_ID: &str = "4101005";
/// Every demo cardholder's PIN (both applications).
pub const DEMO_PIN: &str = "123456";
/// Decimalisation table of the demo PVK.
pub const DECIMALISATION_TABLE: &str = "0123456789012345";
/// The MAC algorithm of the demo's kiosk and bank links (issue 27, decision 3): the SM4
/// CBC-MAC, so every acquirer TAK is an SM4 key (scheme `G`) and so is every TAK the bank
/// links exchange.
pub const DEMO_MAC_ALGORITHM: crate::wire::mac::LinkMacAlgorithm =
    crate::wire::mac::LinkMacAlgorithm::Sm4;

/// Clear demo keys (hex). Never use outside a demo.
pub mod clear_keys {
    /// Terminal PIN key shared by every demo acquirer.
    pub const TPK: &str = "0123456789ABCDEFFEDCBA9876543210";
    /// PIN verification key of the IBM 3624 offsets.
    pub const PVK: &str = "89ABCDEF01234567FEDCBA9876543210";
    /// Issuer master key for AC, 3DES cards (as in card-apdu/testdata/demo-card.toml).
    pub const IMK_AC_TDES: &str = "0123456789ABCDEFFEDCBA9876543210";
    /// Issuer master key for AC, SM4 cards (as in demo-card.toml; the PBOC 3.0 example).
    pub const IMK_AC_SM4: &str = "F23BF4AE92B554C116139D4F67322667";
    /// Issuer master key for script integrity, 3DES cards (as in demo-card.toml).
    pub const IMK_SMI_TDES: &str = "0123456789ABCDEF0123456789ABCDEF";
    /// Issuer master key for script integrity, SM4 cards (as in demo-card.toml).
    pub const IMK_SMI_SM4: &str = "A1A2A3A4A5A6A7A8B1B2B3B4B5B6B7B8";
    /// SSSE province key for INTERNAL AUTHENTICATE (as in demo-card.toml; imported with odd
    /// parity for 3DES cards, which DES ignores).
    pub const SSSE_INTERNAL_AUTH: &str = "11111111111111112222222222222222";
    /// SSSE province key for EXTERNAL AUTHENTICATE (as in demo-card.toml).
    pub const SSSE_EXTERNAL_AUTH: &str = "33333333333333334444444444444444";
    /// SSSE province key for the PIN UNBLOCK MAC (as in demo-card.toml).
    pub const SSSE_PIN_UNBLOCK: &str = "55555555555555556666666666666666";
    /// SSSE province line-protection key, the MAC of an EF06 UPDATE RECORD (as in
    /// demo-card.toml).
    pub const SSSE_LINE_PROTECTION: &str = "77777777777777778888888888888888";
    /// What every acquirer's terminal authentication key is built from ([`acquirer_tak`]).
    pub const TAK_BASE: &str = "4D3C2B1A0F9E8D7C6B5A49382716F5E4";

    /// The terminal authentication (MAC) key of one demo acquirer's kiosks (an SM4 key, see
    /// [`super::DEMO_MAC_ALGORITHM`]): the 16 digits of its institution id (zero-padded), each
    /// times 0x12, XORed into [`TAK_BASE`], odd parity (kept from its 3DES days; harmless).
    /// Every acquirer has its own (the digits survive the parity bit), so a kiosk of one
    /// hospital cannot MAC as another or as the fund.
    pub fn acquirer_tak(id: &schemas::domain::InstitutionId) -> [u8; 16] {
        let digits = format!("{:0>16}", id.as_str());
        let mut key = [0u8; 16];
        let base = hex::decode(TAK_BASE).unwrap_or_default();
        for ((k, b), d) in key.iter_mut().zip(base).zip(digits.bytes()) {
            let x = b ^ d.wrapping_sub(b'0').wrapping_mul(0x12);
            *k = if x.count_ones() % 2 == 1 { x } else { x ^ 1 };
        }
        key
    }
}

/// A bank of the demo network.
#[derive(Debug, Clone)]
pub struct DemoBank {
    /// Institution id.
    pub id: InstitutionId,
    /// Name.
    pub name: &'static str,
    /// Card range (8-digit BIN).
    pub bin: String,
    /// Zone master key shared with the switch, clear hex (demo).
    pub zmk_clear: String,
    /// The first zone PIN key, clear hex (demo; replaced at the first key exchange).
    pub zpk_clear: String,
}

/// A hospital of the demo network.
#[derive(Debug, Clone)]
pub struct DemoHospital {
    /// Institution id (field 32).
    pub id: InstitutionId,
    /// Hospital code (field 62.2).
    pub code: String,
    /// Name.
    pub name: &'static str,
    /// Level 1–3.
    pub level: u8,
}

/// A demo card.
#[derive(Clone)]
pub struct DemoCard {
    /// PAN (bank application).
    pub pan: Pan,
    /// Index into [`DemoWorld::banks`].
    pub bank: usize,
    /// Debit application algorithm.
    pub algorithm: IccAlgorithm,
    /// Insurance scheme.
    pub insurance: Option<InsuranceCategory>,
    /// Opening balance of the personal account, fen.
    pub personal_fen: i64,
    /// Balance at the bank, fen.
    pub bank_balance_fen: i64,
    /// SSSE card identification code.
    pub card_identification_code: String,
    /// The cardholder's social security number (citizen ID, GB 11643), on record in the
    /// card management system and in the card's EF06.
    pub citizen_id: String,
    /// IBM 3624 offset of [`DEMO_PIN`].
    pub pin_offset: String,
    /// Expiry `YYMM` on record (field 14 of the kiosk's requests).
    pub expiry_yymm: String,
}

impl std::fmt::Debug for DemoCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoCard")
            .field("pan", &self.pan)
            .field("bank", &self.bank)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why the demo world could not be built or seeded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A key or PIN operation failed.
    #[error("hsm: {0}")]
    Hsm(#[from] HsmError),
    /// The store refused the seed data.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A demo card could not be personalised.
    #[error("card: {0}")]
    Card(String),
    /// A demo value is malformed (a bug in this module).
    #[error("demo data: {0}")]
    Data(&'static str),
}

/// The whole demo world.
pub struct DemoWorld {
    /// The software HSM holding the demo keys (under the published test LMK).
    pub hsm: Arc<SoftHsm>,
    /// Banks.
    pub banks: Vec<DemoBank>,
    /// Hospitals.
    pub hospitals: Vec<DemoHospital>,
    /// Cards.
    pub cards: Vec<DemoCard>,
    /// Keys as LMK tokens, for the pipeline.
    pub keys: PipelineKeys,
    /// The pipeline configuration (institutions, hospitals, policy, stand-in).
    pub cfg: PipelineConfig,
}

fn inst(id: &str) -> Result<InstitutionId, DemoError> {
    InstitutionId::parse(id).map_err(|_| DemoError::Data("institution id"))
}

/// Sets odd parity on every byte of a DES key given in hex (demo key construction).
pub fn with_odd_parity(hex_key: &str) -> String {
    let bytes = hex::decode(hex_key).unwrap_or_default();
    let fixed: Vec<u8> = bytes
        .iter()
        .map(|b| if b.count_ones() % 2 == 1 { *b } else { b ^ 1 })
        .collect();
    hex::encode_upper(fixed)
}

fn fen(v: i64) -> Result<AmountFen, DemoError> {
    AmountFen::new(v).map_err(|_| DemoError::Data("amount"))
}

fn luhn_complete(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
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
    format!("{body}{}", (10 - sum % 10) % 10)
}

impl DemoWorld {
    /// Builds the world with `cards_per_bank` cards at each of the six banks.
    pub fn new(cards_per_bank: usize) -> Result<Self, DemoError> {
        let hsm = Arc::new(SoftHsm::with_test_lmk());
        let banks = demo_banks()?;
        let hospitals = demo_hospitals()?;
        let pvk =
            Pvk::from_token(hsm.import_clear_key(KeyType::Pvk, KeyScheme::U, clear_keys::PVK)?);
        let cards = demo_cards(&hsm, &pvk, &banks, cards_per_bank)?;
        let mut acquirers: Vec<InstitutionId> = hospitals.iter().map(|h| h.id.clone()).collect();
        acquirers.push(inst(JOB_CENTRE_ID)?);
        acquirers.push(inst(SOCIAL_SECURITY_FUND_ID)?);
        acquirers.extend(banks.iter().map(|b| b.id.clone()));
        let keys = pipeline_keys(&hsm, pvk, acquirers)?;
        let cfg = pipeline_config(&hospitals, &banks)?;
        Ok(Self {
            hsm,
            banks,
            hospitals,
            cards,
            keys,
            cfg,
        })
    }

    /// The zone keys of bank `i` as LMK tokens.
    pub fn bank_keys(&self, i: usize) -> Result<(Zmk, Zpk), DemoError> {
        let b = self.banks.get(i).ok_or(DemoError::Data("bank index"))?;
        let zmk = Zmk::from_token(self.hsm.import_clear_key(
            KeyType::Zmk,
            KeyScheme::U,
            &b.zmk_clear,
        )?);
        let zpk = Zpk::from_token(self.hsm.import_clear_key(
            KeyType::Zpk,
            KeyScheme::U,
            &b.zpk_clear,
        )?);
        Ok((zmk, zpk))
    }

    /// Writes institutions, card ranges, cards and accounts into `store`, and sets the
    /// benefit account in [`DemoWorld::cfg`]. Run once on an empty store.
    pub async fn seed<S: CmsStore>(&mut self, store: &S) -> Result<(), DemoError> {
        self.seed_institutions(store).await?;
        let now = crate::store::now_us();
        for c in &self.cards {
            self.seed_card(store, c, now).await?;
        }
        let ssf = store
            .open_account(
                &NewAccount {
                    institution: inst(SOCIAL_SECURITY_FUND_ID)?,
                    card_id: None,
                    kind: AccountKind::SocialSecurityFund,
                    opening_balance: fen(1_000_000_000_000)?,
                },
                now,
            )
            .await?;
        self.cfg.social_security_fund_account = Some(ssf);
        Ok(())
    }

    /// The switch, the funds, the job centre, the hospitals and the banks, with the banks'
    /// card ranges.
    async fn seed_institutions<S: Store>(&self, store: &S) -> Result<(), DemoError> {
        let mut institutions = vec![
            (
                inst(SWITCH_ID)?,
                "Provincial social-security card switch",
                InstitutionKind::Switch,
            ),
            (
                inst(INSURANCE_FUND_ID)?,
                "Zhengzhou medical-insurance fund",
                InstitutionKind::InsuranceFund,
            ),
            (
                inst(SOCIAL_SECURITY_FUND_ID)?,
                "Zhengzhou social-security fund",
                InstitutionKind::SocialSecurityFund,
            ),
            (
                inst(JOB_CENTRE_ID)?,
                "Zhengzhou job centre",
                InstitutionKind::JobCentre,
            ),
        ];
        for h in &self.hospitals {
            institutions.push((h.id.clone(), h.name, InstitutionKind::Hospital));
        }
        for b in &self.banks {
            institutions.push((b.id.clone(), b.name, InstitutionKind::Bank));
        }
        for (id, name, kind) in institutions {
            store
                .upsert_institution(&Institution {
                    institution_id: id,
                    name: name.into(),
                    kind,
                })
                .await?;
        }
        for (id, name_zh) in DEMO_NAMES_ZH {
            store
                .set_institution_name_zh(&inst(id)?, Some(name_zh))
                .await?;
        }
        for b in &self.banks {
            store
                .put_bin_route(&BinRoute {
                    bin_prefix: b.bin.clone(),
                    issuer: b.id.clone(),
                })
                .await?;
        }
        Ok(())
    }

    /// Issues card `c`, records its cardholder and, when insured, opens its personal account and its pooled-fund
    /// account (the year's cap) at the insurance fund.
    async fn seed_card<S: CmsStore>(
        &self,
        store: &S,
        c: &DemoCard,
        now: i64,
    ) -> Result<(), DemoError> {
        let card_id = store
            .issue_card(&NewCard {
                pan: c.pan.clone(),
                card_identification_code: schemas::domain::CardIdentificationCode::parse(
                    &c.card_identification_code,
                )
                .ok(),
                issuer: self.banks[c.bank].id.clone(),
                expiry_yymm: c.expiry_yymm.clone(),
                status: CardStatus::Active,
                issuance: CardIssuance {
                    pan_sequence_number: "00".into(),
                    icc_algorithm: Some(c.algorithm),
                    pin_offset: Some(c.pin_offset.clone()),
                    insurance_category: c.insurance,
                },
            })
            .await?;
        let bank = &self.banks[c.bank].id;
        super::identity::enrol_cardholder(store, card_id, c, bank, now).await?;
        let Some(ins) = c.insurance else {
            return Ok(());
        };
        let fund = inst(INSURANCE_FUND_ID)?;
        for (kind, opening_fen) in [
            (AccountKind::PersonalMedical, c.personal_fen),
            (AccountKind::PooledFund, self.cfg.policy.annual_cap_fen(ins)),
        ] {
            store
                .open_account(
                    &NewAccount {
                        institution: fund.clone(),
                        card_id: Some(card_id),
                        kind,
                        opening_balance: fen(opening_fen)?,
                    },
                    now,
                )
                .await?;
        }
        Ok(())
    }

    /// Sets what [`DemoWorld::seed`] would have set, for a store seeded by an earlier run with
    /// the same number of cards (seeding is deterministic: two accounts per insured card, then
    /// the social-security fund's).
    pub fn resume(&mut self) {
        let insured = self.cards.iter().filter(|c| c.insurance.is_some()).count() as i64;
        self.cfg.social_security_fund_account = Some(crate::store::AccountId(2 * insured + 1));
    }

    /// A virtual card (SSSE + PBOC) personalised for `card`.
    pub fn virtual_card(&self, card: &DemoCard) -> Result<VirtualCard, DemoError> {
        self.virtual_card_after(card, 0)
    }

    /// [`DemoWorld::virtual_card`] whose ATC continues after `atc` (a demo resumed on a store
    /// that already saw the card's cryptograms: the switch declines an ATC it has seen).
    pub fn virtual_card_after(&self, card: &DemoCard, atc: u16) -> Result<VirtualCard, DemoError> {
        let profile = CardProfile::from_perso(&self.perso_file(card, atc)?)
            .map_err(|e| DemoError::Card(e.to_string()))?;
        Ok(VirtualCard::new(profile))
    }

    /// The personalisation file of `card`'s virtual card (ATC after `atc`): what
    /// [`DemoWorld::virtual_card_after`] builds the card from, for a test that personalises a
    /// card differently (another city's keys, a card identification code nobody issued).
    pub fn perso_file(&self, card: &DemoCard, atc: u16) -> Result<PersoFile, DemoError> {
        let mut file =
            PersoFile::from_toml(CARD_TEMPLATE).map_err(|e| DemoError::Card(e.to_string()))?;
        file.pboc.atc = atc;
        file.pboc.pan = card.pan.expose_digits().to_owned();
        file.pboc.psn = "00".into();
        file.pboc.expiry_date = "341231".into();
        file.ssse.card_identification_code = card.card_identification_code.clone();
        file.ssse.social_security_number = card.citizen_id.clone();
        file.ssse.algorithm = match card.algorithm {
            IccAlgorithm::Sm4 => AlgorithmName::Sm4,
            IccAlgorithm::Tdes => AlgorithmName::Tdes,
        };
        if card.algorithm == IccAlgorithm::Tdes {
            file.pboc.imk_sm4 = None;
        }
        Ok(file)
    }

    /// The PIN block (ISO 9564-1 format 0) a kiosk's PIN pad makes under the demo TPK.
    pub fn pin_block(pan: &Pan, pin: &str) -> Result<[u8; 8], DemoError> {
        let key = ClearKey::new(
            KeyScheme::U,
            hex::decode(clear_keys::TPK).map_err(|_| DemoError::Data("tpk"))?,
        )?;
        let cipher = WorkingCipher::new(&key)?;
        let pin = ClearPin::new(pin).map_err(|_| DemoError::Data("pin"))?;
        let block = encrypt_pin_block(&cipher, PinBlockFormat::Iso0, &pin, pan.expose_digits())?;
        block
            .as_bytes()
            .try_into()
            .map_err(|_| DemoError::Data("pin block"))
    }
}

/// The demo institutions' Chinese names (the console shows them on Chinese pages).
const DEMO_NAMES_ZH: [(&str, &str); 13] = [
    (SWITCH_ID, "省社会保障卡交换中心"),
    (INSURANCE_FUND_ID, "郑州市医疗保险基金"),
    (SOCIAL_SECURITY_FUND_ID, "郑州市社会保障基金"),
    (JOB_CENTRE_ID, "郑州市就业服务中心"),
    ("4101001", "省人民医院（演示）"),
    ("4101002", "市第二人民医院（演示）"),
    ("4101003", "社区卫生服务中心（演示）"),
    ("01020000", "工商银行（演示）"),
    ("01030000", "农业银行（演示）"),
    ("01040000", "中国银行（演示）"),
    ("01050000", "建设银行（演示）"),
    ("03010000", "交通银行（演示）"),
    ("04030000", "邮政储蓄银行（演示）"),
];

/// The six banks: ids, names, BINs `6288660k` and zone keys built from the bank's number.
fn demo_banks() -> Result<Vec<DemoBank>, DemoError> {
    let names = [
        ("01020000", "Industrial and Commercial Bank (demo)"),
        ("01030000", "Agricultural Bank (demo)"),
        ("01040000", "Bank of China (demo)"),
        ("01050000", "Construction Bank (demo)"),
        ("03010000", "Bank of Communications (demo)"),
        ("04030000", "Postal Savings Bank (demo)"),
    ];
    let mut banks = Vec::new();
    for (k, (id, name)) in names.iter().enumerate() {
        let k = k + 1;
        banks.push(DemoBank {
            id: inst(id)?,
            name,
            bin: format!("6288660{k}"),
            zmk_clear: with_odd_parity(&format!(
                "{k}{k}{k}{k}{k}{k}{k}{k}0123456789ABCDEFFEDCBA98"
            )),
            zpk_clear: with_odd_parity(
                &format!("{k}{k}{k}{k}{k}{k}{k}{k}FEDCBA98765432100123456789ABCDEF")[..32],
            ),
        });
    }
    Ok(banks)
}

/// The three hospitals, one of each level.
fn demo_hospitals() -> Result<Vec<DemoHospital>, DemoError> {
    Ok(vec![
        DemoHospital {
            id: inst("4101001")?,
            code: "H41010000001".into(),
            name: "Provincial People's Hospital (demo)",
            level: 3,
        },
        DemoHospital {
            id: inst("4101002")?,
            code: "H41010000002".into(),
            name: "City Second Hospital (demo)",
            level: 2,
        },
        DemoHospital {
            id: inst("4101003")?,
            code: "H41010000003".into(),
            name: "Community Health Centre (demo)",
            level: 1,
        },
    ])
}

/// `cards_per_bank` cards at each bank: PAN = BIN + serial + Luhn digit, the PIN offset of
/// [`DEMO_PIN`] under `pvk`, and a mix of algorithms (one in four 3DES) and insurance schemes
/// (one in ten uninsured).
fn demo_cards(
    hsm: &SoftHsm,
    pvk: &Pvk,
    banks: &[DemoBank],
    cards_per_bank: usize,
) -> Result<Vec<DemoCard>, DemoError> {
    let mut cards = Vec::new();
    for (b, bank) in banks.iter().enumerate() {
        for i in 0..cards_per_bank {
            let pan = Pan::parse(&luhn_complete(&format!("{}{:07}", bank.bin, i + 1)))
                .map_err(|_| DemoError::Data("pan"))?;
            let lmk_pin = hsm.encrypt_clear_pin_under_lmk(DEMO_PIN, pan.expose_digits())?;
            let validation = pin_validation_data(&pan).map_err(|_| DemoError::Data("pan"))?;
            let pin_offset = hsm.generate_ibm_offset_lmk(
                pvk,
                &lmk_pin,
                pan.expose_digits(),
                DECIMALISATION_TABLE,
                &validation,
            )?;
            let n = b * cards_per_bank + i;
            cards.push(DemoCard {
                algorithm: if n % 4 == 3 {
                    IccAlgorithm::Tdes
                } else {
                    IccAlgorithm::Sm4
                },
                insurance: match n % 10 {
                    9 => None,
                    x if x % 2 == 0 => Some(InsuranceCategory::Employee),
                    _ => Some(InsuranceCategory::Resident),
                },
                personal_fen: 50_000 + (n as i64 % 7) * 25_000,
                bank_balance_fen: 2_000_000,
                card_identification_code: format!("410100D156000005{:016X}", n as u64 + 1),
                citizen_id: super::identity::demo_citizen_id(n),
                pin_offset: pin_offset.chars().take(6).collect(),
                expiry_yymm: "3412".into(),
                pan,
                bank: b,
            });
        }
    }
    Ok(cards)
}

/// The pipeline's keys as tokens of `hsm`: the demo TPK and its own TAK for every acquirer,
/// the issuer master keys of both algorithms and `pvk`.
fn pipeline_keys(
    hsm: &SoftHsm,
    pvk: Pvk,
    acquirers: Vec<InstitutionId>,
) -> Result<PipelineKeys, DemoError> {
    let import = |t: KeyType, scheme: KeyScheme, hex: &str| hsm.import_clear_key(t, scheme, hex);
    let tpk: Tpk = Tpk::from_token(import(KeyType::Tpk, KeyScheme::U, clear_keys::TPK)?);
    let acquirers = acquirers
        .into_iter()
        .map(|id| {
            let tak = hex::encode_upper(clear_keys::acquirer_tak(&id));
            let keys = AcquirerKeys {
                tpk: tpk.clone(),
                tak: Some(Tak::from_token(import(
                    KeyType::Tak,
                    DEMO_MAC_ALGORITHM.key_scheme(),
                    &tak,
                )?)),
            };
            Ok((id, keys))
        })
        .collect::<Result<HashMap<_, _>, DemoError>>()?;
    Ok(PipelineKeys {
        acquirers,
        issuer: IssuerKeys {
            imk_ac_tdes: Some(ImkAc::from_token(import(
                KeyType::ImkAc,
                KeyScheme::U,
                clear_keys::IMK_AC_TDES,
            )?)),
            imk_ac_sm4: Some(ImkAc::from_token(import(
                KeyType::ImkAc,
                KeyScheme::G,
                clear_keys::IMK_AC_SM4,
            )?)),
            imk_smi_tdes: Some(ImkSmi::from_token(import(
                KeyType::ImkSmi,
                KeyScheme::U,
                clear_keys::IMK_SMI_TDES,
            )?)),
            imk_smi_sm4: Some(ImkSmi::from_token(import(
                KeyType::ImkSmi,
                KeyScheme::G,
                clear_keys::IMK_SMI_SM4,
            )?)),
            pvk,
            decimalisation_table: DECIMALISATION_TABLE.into(),
            pin_check_length: 6,
        },
        ssse: super::identity::ssse_keys(hsm)?,
    })
}

/// The pipeline's settings: the demo's institutions, policy table, hospitals, limits (daily
/// ones lifted) and stand-in at every bank.
fn pipeline_config(
    hospitals: &[DemoHospital],
    banks: &[DemoBank],
) -> Result<PipelineConfig, DemoError> {
    let mut cfg = PipelineConfig::new(
        inst(SWITCH_ID)?,
        inst(INSURANCE_FUND_ID)?,
        inst(SOCIAL_SECURITY_FUND_ID)?,
    );
    cfg.policy = PolicyTable::demo();
    // The demo's kiosks put a city's day of traffic on a few hundred cards, each paying a
    // bill every second or two: a cardholder's daily limits (100,000 CNY, 200
    // transactions) would decline most of it after a few minutes. The demo keeps the
    // per-transaction limit and lifts the daily ones; `switch serve` takes its limits
    // from the configuration.
    cfg.limits = CardLimits {
        daily_fen_max: i64::MAX,
        daily_count_max: u32::MAX,
        ..CardLimits::default()
    };
    for h in hospitals {
        cfg.hospitals.insert(
            h.code.clone(),
            Hospital {
                institution: h.id.clone(),
                level: HospitalLevel(h.level),
            },
        );
    }
    for b in banks {
        cfg.stand_in.insert(
            b.id.clone(),
            StandIn {
                per_transaction_fen_max: 20_000,
                per_card_daily_fen_max: 50_000,
            },
        );
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_pans_pass_the_luhn_check_and_keys_have_odd_parity() {
        let w = DemoWorld::new(3).unwrap();
        assert_eq!(w.cards.len(), 18);
        assert!(w.cards.iter().all(|c| c.pan.has_valid_check_digit()));
        assert_eq!(luhn_complete("7992739871"), "79927398713");
        for b in &w.banks {
            assert!(hex::decode(&b.zmk_clear)
                .unwrap()
                .iter()
                .all(|x| x.count_ones() % 2 == 1));
        }
        assert!(w.bank_keys(5).is_ok());
    }
}
