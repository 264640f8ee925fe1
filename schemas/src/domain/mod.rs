//! Shared domain types of the social-security card network.
//!
//! Every crate that talks about a card, an amount, an institution or a message reference uses
//! these types, so a value validated once at the edge (codec, HTTP API, store) stays valid
//! everywhere and sensitive values (PAN, social-security number) are masked wherever they are
//! printed.

mod ids;
mod money;
mod pan;
mod processing_code;
mod response_code;

pub use ids::{
    CardIdentificationCode, IdError, InstitutionId, Rrn, SocialSecurityNumber, Stan, TerminalId,
    TransmissionDateTime,
};
pub use money::{AmountFen, Currency, Money, MoneyError};
pub use pan::{Pan, PanError};
pub use processing_code::ProcessingCode;
pub use response_code::{ResponseCode, ResponseCodeError};
