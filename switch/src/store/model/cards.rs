//! Cards as the store keeps them: issuance data, life-cycle status (and with it the hot list),
//! and the highest ATC the switch has verified. A clear PAN never leaves the store except
//! through [`DirectoryCard`] and `Store::card_pan`.

use super::{Account, CardId};
use schemas::domain::{CardIdentificationCode, InstitutionId, ResponseCode};

sql_enum!(
    /// Life-cycle status of a card. Lost, stolen and blocked cards form the hot list.
    CardStatus {
        /// Personalised, not yet activated.
        Issued = "issued",
        /// In use.
        Active = "active",
        /// Reported lost.
        Lost = "lost",
        /// Reported stolen.
        Stolen = "stolen",
        /// Blocked by the issuer (e.g. PIN tries, fraud).
        Blocked = "blocked",
        /// Replaced or cancelled.
        Closed = "closed",
    }
);

impl CardStatus {
    /// True for the statuses on the hot list.
    pub fn is_hot_listed(self) -> bool {
        matches!(
            self,
            CardStatus::Lost | CardStatus::Stolen | CardStatus::Blocked
        )
    }

    /// The ISO 8583 response code to decline with, or `None` if the card may transact.
    pub fn decline_code(self) -> Option<ResponseCode> {
        match self {
            CardStatus::Active => None,
            CardStatus::Lost => Some(ResponseCode::LostCard),
            CardStatus::Stolen => Some(ResponseCode::StolenCard),
            CardStatus::Blocked | CardStatus::Issued => Some(ResponseCode::RestrictedCard),
            CardStatus::Closed => Some(ResponseCode::InvalidCardNumber),
        }
    }
}

/// A card to issue. The PAN is hashed and sealed by the store's `PanProtector`.
#[derive(Debug, Clone)]
pub struct NewCard {
    /// The card's PAN (debit application).
    pub pan: schemas::domain::Pan,
    /// The SSSE card identification code, when known.
    pub card_identification_code: Option<CardIdentificationCode>,
    /// The issuing bank.
    pub issuer: InstitutionId,
    /// Expiry as `YYMM` (field 14).
    pub expiry_yymm: String,
    /// Initial status.
    pub status: CardStatus,
    /// What the switch verifies the card against.
    pub issuance: CardIssuance,
}

sql_enum!(
    /// Cryptography of the card's debit application.
    IccAlgorithm {
        /// EMV option A, 3DES (EMV Book 2 A1.4).
        Tdes = "tdes",
        /// PBOC 3.0 SM4.
        Sm4 = "sm4",
    }
);

/// Issuance data of a card: no secret, but what online PIN and ARQC checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardIssuance {
    /// PAN sequence number (EMV tag 5F34), two digits.
    pub pan_sequence_number: String,
    /// The debit application's algorithm, `None` for a card without a chip application.
    pub icc_algorithm: Option<IccAlgorithm>,
    /// IBM 3624 PIN offset, `None` when the issuing bank verifies the PIN.
    pub pin_offset: Option<String>,
    /// The cardholder's medical-insurance scheme, `None` when not insured.
    pub insurance_category: Option<InsuranceCategory>,
}

sql_enum!(
    /// A cardholder's basic medical-insurance scheme (the policy table's first key).
    InsuranceCategory {
        /// Urban employees' basic medical insurance (城镇职工).
        Employee = "employee",
        /// Urban and rural residents' basic medical insurance (城乡居民).
        Resident = "resident",
    }
);

impl Default for CardIssuance {
    fn default() -> Self {
        Self {
            pan_sequence_number: "00".to_owned(),
            icc_algorithm: None,
            pin_offset: None,
            insurance_category: None,
        }
    }
}

/// A stored card (never with its clear PAN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// Store key.
    pub card_id: CardId,
    /// First six and last four digits.
    pub pan_masked: String,
    /// The SSSE card identification code.
    pub card_identification_code: Option<CardIdentificationCode>,
    /// The issuing bank.
    pub issuer: InstitutionId,
    /// Expiry `YYMM`.
    pub expiry_yymm: String,
    /// Life-cycle status.
    pub status: CardStatus,
    /// Why the status was last changed.
    pub status_reason: Option<String>,
    /// Issuance data.
    pub issuance: CardIssuance,
    /// Highest ATC (EMV tag 9F36) of a cryptogram the switch verified, `None` before the first.
    pub atc_max: Option<u16>,
}

/// A card as the pipeline's directory keeps it (see [`crate::store::Store::card_directory_page`]).
/// `Debug` shows the PAN masked, as [`schemas::domain::Pan`] always does.
#[derive(Debug, Clone)]
pub struct DirectoryCard {
    /// The card row.
    pub card: Card,
    /// Its PAN, opened from `card.pan_ciphertext`.
    pub pan: schemas::domain::Pan,
    /// Its accounts, by id.
    pub accounts: Vec<Account>,
}

/// An application transaction counter (EMV Book 3 Annex A, tag 9F36) of a verified cryptogram.
///
/// The card increments its ATC for every transaction and covers it with the cryptogram, so a
/// genuine cryptogram never repeats an ATC: one whose ATC is not above the highest already seen
/// for the card is a replay of recorded field 55 data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardAtc {
    /// The card.
    pub card_id: CardId,
    /// Its ATC.
    pub atc: u16,
}
