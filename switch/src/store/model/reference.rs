//! Reference data of the network: the institutions and the BIN routes that name a card's
//! issuing bank (control plane, rarely written).

use schemas::domain::InstitutionId;

sql_enum!(
    /// What an institution is.
    InstitutionKind {
        /// A bank: card issuer, acquirer at its own devices.
        Bank = "bank",
        /// A hospital (acquirer of medical payments).
        Hospital = "hospital",
        /// The medical-insurance fund (pooled fund and personal accounts).
        InsuranceFund = "insurance_fund",
        /// The social-security fund (benefits).
        SocialSecurityFund = "social_security_fund",
        /// A job centre (acquirer of job-centre kiosks).
        JobCentre = "job_centre",
        /// The switch itself.
        Switch = "switch",
    }
);

/// An institution of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    /// ISO 8583 institution id.
    pub institution_id: InstitutionId,
    /// Display name.
    pub name: String,
    /// What it is.
    pub kind: InstitutionKind,
}

/// A card range routed to its issuing bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinRoute {
    /// Leading PAN digits (1..=12).
    pub bin_prefix: String,
    /// The bank that issues cards in the range.
    pub issuer: InstitutionId,
}
