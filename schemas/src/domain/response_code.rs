//! ISO 8583 response codes (field 39), as the switch returns and records them.
//!
//! The named variants are the codes of ISO 8583:1987 Annex A that this switch produces or acts
//! upon; a bank host may answer with any other two-character code, which is kept verbatim in
//! [`ResponseCode::Other`] so nothing received is lost.

use std::fmt;

/// Why two characters are not a response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("response code must be two alphanumeric characters")]
pub struct ResponseCodeError;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// ISO 8583 field 39 (an 2).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum ResponseCode {
            $($(#[$doc])* $variant,)*
            /// Any other code received from a peer, kept as its two ASCII characters.
            Other([u8; 2]),
        }

        impl ResponseCode {
            /// Every named code, for tables and tests.
            pub const NAMED: &'static [ResponseCode] = &[$(ResponseCode::$variant,)*];

            /// The two-character wire form.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ResponseCode::$variant => $code,)*
                    // Constructed only from ASCII alphanumerics, so always valid UTF-8.
                    ResponseCode::Other(b) => std::str::from_utf8(b).unwrap_or("??"),
                }
            }

            /// Parses the two-character wire form.
            pub fn parse(s: &str) -> Result<Self, ResponseCodeError> {
                match s {
                    $($code => Ok(ResponseCode::$variant),)*
                    _ => {
                        let b = s.as_bytes();
                        if b.len() == 2 && b.iter().all(u8::is_ascii_alphanumeric) {
                            Ok(ResponseCode::Other([b[0], b[1]]))
                        } else {
                            Err(ResponseCodeError)
                        }
                    }
                }
            }
        }
    };
}

codes! {
    /// 00 Approved or completed successfully.
    Approved = "00",
    /// 01 Refer to card issuer.
    ReferToIssuer = "01",
    /// 03 Invalid merchant (or acceptor not allowed on this network).
    InvalidMerchant = "03",
    /// 05 Do not honour.
    DoNotHonour = "05",
    /// 12 Invalid transaction.
    InvalidTransaction = "12",
    /// 13 Invalid amount.
    InvalidAmount = "13",
    /// 14 Invalid card number (no such card).
    InvalidCardNumber = "14",
    /// 15 No such issuer.
    NoSuchIssuer = "15",
    /// 25 Unable to locate record (e.g. original of a reversal).
    UnableToLocateRecord = "25",
    /// 30 Format error.
    FormatError = "30",
    /// 41 Lost card, pick up.
    LostCard = "41",
    /// 43 Stolen card, pick up.
    StolenCard = "43",
    /// 51 Not sufficient funds.
    InsufficientFunds = "51",
    /// 54 Expired card.
    ExpiredCard = "54",
    /// 55 Incorrect PIN.
    IncorrectPin = "55",
    /// 56 No card record (ISO 8583:1987): here, the social security number (field 61) is
    /// not that of the card's cardholder on record, or the card has no cardholder on record.
    NoCardRecord = "56",
    /// 57 Transaction not permitted to cardholder.
    NotPermittedToCardholder = "57",
    /// 58 Transaction not permitted to terminal.
    NotPermittedToTerminal = "58",
    /// 59 Suspected fraud (no pick-up). Also 59 in the CUP/PBOC table (有作弊嫌疑).
    SuspectedFraud = "59",
    /// 61 Exceeds withdrawal amount limit.
    ExceedsAmountLimit = "61",
    /// 62 Restricted card.
    RestrictedCard = "62",
    /// 63 Security violation (ISO 8583:1987): here, a field 7 outside the switch's
    /// transmission window (a stale or replayed request).
    SecurityViolation = "63",
    /// 65 Exceeds withdrawal frequency limit.
    ExceedsFrequencyLimit = "65",
    /// 75 Allowable number of PIN tries exceeded.
    PinTriesExceeded = "75",
    /// 91 Issuer or switch inoperative (also: issuer timeout).
    IssuerUnavailable = "91",
    /// 94 Duplicate transmission.
    DuplicateTransmission = "94",
    /// 96 System malfunction.
    SystemMalfunction = "96",
    /// A0 MAC verification failed (CUP/PBOC private use of the A-range).
    MacFailure = "A0",
}

impl ResponseCode {
    /// True for the approval code 00 only: everything else declines.
    pub fn is_approved(&self) -> bool {
        matches!(self, ResponseCode::Approved)
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for ResponseCode {
    type Error = ResponseCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ResponseCode> for String {
    fn from(c: ResponseCode) -> String {
        c.as_str().to_owned()
    }
}

impl std::str::FromStr for ResponseCode {
    type Err = ResponseCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_code_round_trips_through_its_wire_form() {
        for code in ResponseCode::NAMED {
            assert_eq!(ResponseCode::parse(code.as_str()), Ok(*code));
            assert_eq!(code.as_str().len(), 2);
        }
    }

    #[test]
    fn switch_codes_have_their_iso_values() {
        assert_eq!(ResponseCode::InsufficientFunds.as_str(), "51");
        assert_eq!(ResponseCode::IncorrectPin.as_str(), "55");
        assert_eq!(ResponseCode::IssuerUnavailable.as_str(), "91");
        assert_eq!(ResponseCode::DuplicateTransmission.as_str(), "94");
        assert!(ResponseCode::Approved.is_approved());
        assert!(!ResponseCode::DoNotHonour.is_approved());
    }

    #[test]
    fn unknown_codes_from_peers_are_kept_verbatim() {
        let code = ResponseCode::parse("Z9").unwrap();
        assert_eq!(code, ResponseCode::Other(*b"Z9"));
        assert_eq!(code.as_str(), "Z9");
        assert!(ResponseCode::parse("0").is_err());
        assert!(ResponseCode::parse("0 ").is_err());
        assert!(ResponseCode::parse("é").is_err());
    }
}
