//! ISO 8583 field 3, the processing code: what a message asks for.
//!
//! Why a type: six digits in three pairs (ISO 8583:1987 §4.3.3: transaction type, then the
//! "from" and "to" account types), which a `&str` parameter lets any caller get wrong. The codes
//! the switch itself sends to banks are named constants (ssc87, "Bank legs and processing
//! codes"); the value is `Copy` and allocation-free, so it costs nothing on the hot path.

use super::IdError;
use std::fmt;

/// ISO 8583 field 3: six digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessingCode([u8; 6]);

impl ProcessingCode {
    /// `000000`: goods and services, a purchase (ISO 8583:1987 transaction type 00); the bank
    /// debits the account.
    pub const PURCHASE: ProcessingCode = ProcessingCode(*b"000000");
    /// `200000`: returns, a refund (type 20); the bank credits the account.
    pub const REFUND: ProcessingCode = ProcessingCode(*b"200000");
    /// `210000`: deposits (type 21), the social-security fund's benefit credit to the card's
    /// bank account in ssc87.
    pub const DEPOSIT: ProcessingCode = ProcessingCode(*b"210000");
    /// `310000`: balance inquiry (type 31); nothing moves.
    pub const BALANCE_INQUIRY: ProcessingCode = ProcessingCode(*b"310000");

    /// Validates six ASCII digits.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "processing code";
        let bytes: [u8; 6] = s
            .as_bytes()
            .try_into()
            .map_err(|_| IdError::Length { kind: KIND })?;
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(IdError::Character { kind: KIND });
        }
        Ok(Self(bytes))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored (constants and `parse`), so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Positions 1-2, the transaction type (`00` purchase, `31` balance inquiry, ...).
    pub fn transaction_type(&self) -> &str {
        self.as_str().get(..2).unwrap_or_default()
    }
}

impl fmt::Display for ProcessingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_processing_code_is_six_digits() {
        assert_eq!(
            ProcessingCode::parse("310000"),
            Ok(ProcessingCode::BALANCE_INQUIRY)
        );
        assert_eq!(ProcessingCode::PURCHASE.as_str(), "000000");
        assert_eq!(ProcessingCode::DEPOSIT.transaction_type(), "21");
        assert!(matches!(
            ProcessingCode::parse("31000"),
            Err(IdError::Length { .. })
        ));
        assert!(matches!(
            ProcessingCode::parse("31000a"),
            Err(IdError::Character { .. })
        ));
    }
}
