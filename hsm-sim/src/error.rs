//! HSM errors as payShield-style two-character codes.
//!
//! Why this exists: the switch, the TCP codec and the tests all need the same vocabulary for
//! refusals. Every variant maps to the documented payShield host-command error code
//! (`shared/vectors/payshield/errors.json`), so a response from a real payShield, from our
//! server or from the in-process software HSM reads the same. No variant carries key, PIN or
//! PAN material.

/// A refusal by the HSM. [`HsmError::code`] gives the payShield error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HsmError {
    /// 01: verification failed (PIN, CVV, MAC, ARQC, SSSE cryptogram).
    #[error("verification failure")]
    VerificationFailed,
    /// 04: invalid key type code.
    #[error("invalid key type code")]
    InvalidKeyTypeCode,
    /// 05: invalid key length flag.
    #[error("invalid key length flag")]
    InvalidKeyLengthFlag,
    /// 10: source key parity error (or the only key of the command).
    #[error("source key parity error")]
    SourceKeyParity,
    /// 11: destination key parity error or key all zeros.
    #[error("destination key parity error")]
    DestinationKeyParity,
    /// 15: invalid input data (format, characters, not enough data).
    #[error("invalid input data")]
    InvalidInput,
    /// 17: not authorised: the HSM does not output this (clear keys on a link that is neither
    /// loopback nor TLS).
    #[error("not authorised for this output")]
    NotAuthorised,
    /// 20: PIN block does not contain valid values.
    #[error("PIN block does not contain valid values")]
    InvalidPinBlock,
    /// 22: invalid account number.
    #[error("invalid account number")]
    InvalidAccount,
    /// 23: invalid PIN block format code.
    #[error("invalid PIN block format code")]
    InvalidPinBlockFormat,
    /// 24: PIN is fewer than 4 or more than 12 digits.
    #[error("PIN length out of range")]
    PinLength,
    /// 25: decimalisation table error.
    #[error("decimalisation table error")]
    DecimalisationTable,
    /// 26: invalid key scheme.
    #[error("invalid key scheme")]
    InvalidKeyScheme,
    /// 27: incompatible key length.
    #[error("incompatible key length")]
    IncompatibleKeyLength,
    /// 28: invalid key type.
    #[error("invalid key type")]
    InvalidKeyType,
    /// 29: key function not permitted.
    #[error("key function not permitted")]
    FunctionNotPermitted,
    /// 41: internal error (never caused by input; a bug or resource failure).
    #[error("internal error")]
    Internal,
    /// 51: invalid message header.
    #[error("invalid message header")]
    InvalidHeader,
    /// 68: command disabled / unknown command code.
    #[error("command disabled or unknown")]
    UnknownCommand,
    /// 80: data length error.
    #[error("data length error")]
    DataLength,
    /// Transport failure of a remote HSM (not a payShield code; the client reports it).
    #[error("HSM unavailable: {0}")]
    Unavailable(String),
    /// A reply whose response code does not answer the command sent (not a payShield code; the
    /// client reports it and stops using that connection).
    #[error("HSM reply {reply} does not answer command {command}")]
    UnexpectedReply {
        /// The command code sent.
        command: String,
        /// The response code received.
        reply: String,
    },
    /// Any other code returned by a remote HSM.
    #[error("HSM error code {0}")]
    Other(String),
}

impl HsmError {
    /// The two-character payShield error code.
    pub fn code(&self) -> &str {
        match self {
            HsmError::VerificationFailed => "01",
            HsmError::InvalidKeyTypeCode => "04",
            HsmError::InvalidKeyLengthFlag => "05",
            HsmError::SourceKeyParity => "10",
            HsmError::DestinationKeyParity => "11",
            HsmError::InvalidInput => "15",
            HsmError::NotAuthorised => "17",
            HsmError::InvalidPinBlock => "20",
            HsmError::InvalidAccount => "22",
            HsmError::InvalidPinBlockFormat => "23",
            HsmError::PinLength => "24",
            HsmError::DecimalisationTable => "25",
            HsmError::InvalidKeyScheme => "26",
            HsmError::IncompatibleKeyLength => "27",
            HsmError::InvalidKeyType => "28",
            HsmError::FunctionNotPermitted => "29",
            HsmError::Internal => "41",
            HsmError::InvalidHeader => "51",
            HsmError::UnknownCommand => "68",
            HsmError::DataLength => "80",
            HsmError::Unavailable(_) | HsmError::UnexpectedReply { .. } => "41",
            HsmError::Other(code) => code.as_str(),
        }
    }

    /// Map a received error code back to a variant (client side).
    pub fn from_code(code: &str) -> HsmError {
        match code {
            "01" => HsmError::VerificationFailed,
            "04" => HsmError::InvalidKeyTypeCode,
            "05" => HsmError::InvalidKeyLengthFlag,
            "10" => HsmError::SourceKeyParity,
            "11" => HsmError::DestinationKeyParity,
            "15" => HsmError::InvalidInput,
            "17" => HsmError::NotAuthorised,
            "20" => HsmError::InvalidPinBlock,
            "22" => HsmError::InvalidAccount,
            "23" => HsmError::InvalidPinBlockFormat,
            "24" => HsmError::PinLength,
            "25" => HsmError::DecimalisationTable,
            "26" => HsmError::InvalidKeyScheme,
            "27" => HsmError::IncompatibleKeyLength,
            "28" => HsmError::InvalidKeyType,
            "29" => HsmError::FunctionNotPermitted,
            "41" => HsmError::Internal,
            "51" => HsmError::InvalidHeader,
            "68" => HsmError::UnknownCommand,
            "80" => HsmError::DataLength,
            other => HsmError::Other(other.to_string()),
        }
    }

    /// The same failure reported against the destination key of a two-key command.
    pub(crate) fn into_destination(self) -> HsmError {
        match self {
            HsmError::SourceKeyParity => HsmError::DestinationKeyParity,
            other => other,
        }
    }
}

impl From<crate::card_crypto::CardCryptoError> for HsmError {
    fn from(e: crate::card_crypto::CardCryptoError) -> Self {
        use crate::card_crypto::CardCryptoError as C;
        match e {
            C::InvalidPan => HsmError::InvalidAccount,
            C::InvalidPin => HsmError::PinLength,
            C::InvalidPinBlock => HsmError::InvalidPinBlock,
            C::InvalidLength { .. } => HsmError::DataLength,
            C::InvalidPsn | C::InvalidHex { .. } | C::InvalidCityCode => HsmError::InvalidInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for e in [
            HsmError::VerificationFailed,
            HsmError::SourceKeyParity,
            HsmError::InvalidKeyType,
            HsmError::FunctionNotPermitted,
            HsmError::UnknownCommand,
            HsmError::InvalidPinBlock,
            HsmError::NotAuthorised,
        ] {
            assert_eq!(HsmError::from_code(e.code()), e);
        }
        assert_eq!(HsmError::from_code("A6").code(), "A6");
    }
}
