//! Primary account number (ISO 8583 field 2, ISO/IEC 7812-1).
//!
//! A `Pan` can only be built from 12 to 19 decimal digits. It never prints in full: `Display`
//! and `Debug` show the first six and last four digits (PCI DSS masking), so a PAN that reaches
//! a log line is already masked. The clear digits are reachable only through
//! [`Pan::expose_digits`], whose name makes every use easy to find in review.

use std::fmt;

/// Shortest PAN accepted (ISO/IEC 7812-1 allows up to 19 digits; issuers here use 16–19).
pub const PAN_LEN_MIN: usize = 12;
/// Longest PAN accepted (ISO/IEC 7812-1, ISO 8583 field 2 is LLVAR n..19).
pub const PAN_LEN_MAX: usize = 19;

/// Why a string is not a PAN. Carries no digits, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PanError {
    /// Length outside 12..=19.
    #[error("PAN length {0} outside {PAN_LEN_MIN}..={PAN_LEN_MAX}")]
    Length(usize),
    /// A character that is not an ASCII decimal digit.
    #[error("PAN contains a non-digit character")]
    NonDigit,
    /// The ISO/IEC 7812-1 Annex B (Luhn) check digit does not match.
    #[error("PAN check digit (Luhn) is wrong")]
    CheckDigit,
}

/// A validated primary account number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan {
    /// ASCII digits, 12..=19 of them.
    digits: String,
}

impl Pan {
    /// Parses 12–19 ASCII digits. Does not check the Luhn digit: some test and private-label
    /// ranges do not carry one; use [`Pan::parse_checked`] where the issuer guarantees it.
    pub fn parse(digits: &str) -> Result<Self, PanError> {
        if !(PAN_LEN_MIN..=PAN_LEN_MAX).contains(&digits.len()) {
            return Err(PanError::Length(digits.len()));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PanError::NonDigit);
        }
        Ok(Self {
            digits: digits.to_owned(),
        })
    }

    /// Parses like [`Pan::parse`] and also requires a correct Luhn check digit.
    pub fn parse_checked(digits: &str) -> Result<Self, PanError> {
        let pan = Self::parse(digits)?;
        if pan.has_valid_check_digit() {
            Ok(pan)
        } else {
            Err(PanError::CheckDigit)
        }
    }

    /// ISO/IEC 7812-1 Annex B: doubling every second digit from the right, the digit sum is a
    /// multiple of ten.
    pub fn has_valid_check_digit(&self) -> bool {
        luhn_valid(&self.digits)
    }

    /// The clear digits. Use only to hash, encrypt or send the PAN on a link; never to log.
    pub fn expose_digits(&self) -> &str {
        &self.digits
    }

    /// Issuer identification number / BIN prefix (first six digits), safe to log and route on.
    pub fn bin(&self) -> &str {
        &self.digits[..6]
    }

    /// Last four digits, safe to show to a cardholder or an operator.
    pub fn last4(&self) -> &str {
        &self.digits[self.digits.len() - 4..]
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.digits.len()
    }

    /// Always false: a PAN has at least 12 digits. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The masked form: first six, `*` for the middle, last four (`622848******1234`).
    pub fn masked(&self) -> String {
        let hidden = self.digits.len() - 10;
        format!("{}{}{}", self.bin(), "*".repeat(hidden), self.last4())
    }
}

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

impl std::str::FromStr for Pan {
    type Err = PanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Published Luhn-valid test numbers (card-scheme test ranges, ISO/IEC 7812-1 Annex B).
    const LUHN_VALID: &[&str] = &["4111111111111111", "5500000000000004", "378282246310005"];

    #[test]
    fn published_test_numbers_pass_the_check_digit() {
        for digits in LUHN_VALID {
            let pan = Pan::parse_checked(digits);
            assert!(pan.is_ok(), "{digits} should be Luhn-valid");
        }
    }

    #[test]
    fn a_changed_digit_fails_the_check_digit() {
        assert_eq!(
            Pan::parse_checked("4111111111111112"),
            Err(PanError::CheckDigit)
        );
        assert!(Pan::parse("4111111111111112").is_ok());
    }

    #[test]
    fn length_and_characters_are_validated() {
        assert_eq!(Pan::parse("12345678901"), Err(PanError::Length(11)));
        assert_eq!(
            Pan::parse("12345678901234567890"),
            Err(PanError::Length(20))
        );
        assert_eq!(Pan::parse("41111111111a1111"), Err(PanError::NonDigit));
        assert_eq!(
            Pan::parse("４１１１１１１１１１１１"),
            Err(PanError::Length(36))
        );
    }

    #[test]
    fn display_and_debug_show_only_first_six_and_last_four() {
        let pan = Pan::parse("6228480012345678901").unwrap();
        assert_eq!(pan.to_string(), "622848*********8901");
        assert_eq!(format!("{pan:?}"), "Pan(622848*********8901)");
        assert!(!format!("{pan:?}").contains("0012345678"));
    }

    proptest! {
        #[test]
        fn parsing_any_string_never_panics(s in ".{0,40}") {
            let _ = Pan::parse_checked(&s);
        }

        #[test]
        fn any_digit_string_of_valid_length_parses_and_masks(s in "[0-9]{12,19}") {
            let pan = Pan::parse(&s).unwrap();
            prop_assert_eq!(pan.masked().len(), s.len());
            prop_assert!(pan.masked().starts_with(&s[..6]));
        }
    }
}
