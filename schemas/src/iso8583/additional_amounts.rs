//! ISO 8583:1987 field 54, additional amounts: the balance format, with its sign.
//!
//! Why this exists: the switch answers a medical-insurance balance with it, a bank answers its
//! balance with it, and a kiosk reads it back; one layout means one reader and one writer. Field
//! 54 (`ans...120`) is a run of up to six 20-character amounts, each:
//!
//! | positions | content | example |
//! |---|---|---|
//! | 1-2 | account type, n 2 (the codes of field 3: `10` savings; `96` the ssc87 personal medical-insurance account) | `10` |
//! | 3-4 | amount type, n 2 (`01` ledger balance, `02` available balance) | `02` |
//! | 5-7 | currency, ISO 4217 numeric | `156` |
//! | 8 | `C` (credit: the account holds the amount) or `D` (debit: it owes it) | `C` |
//! | 9-20 | amount in minor units, n 12 | `000000050000` |
//!
//! `1002156C000000050000` is 500.00 CNY available in a savings account
//! (schemas/iso8583/ssc87.md, "Issuer links").
//!
//! ```
//! use schemas::domain::Currency;
//! use schemas::iso8583::{AccountType, AdditionalAmount, AdditionalAmounts, AmountType};
//!
//! let available = AdditionalAmount::new(
//!     AccountType::SAVINGS,
//!     AmountType::AVAILABLE_BALANCE,
//!     Currency::Cny,
//!     50_000,
//! )?;
//! assert_eq!(available.to_string(), "1002156C000000050000");
//! let field54 = AdditionalAmounts::parse("1001156D0000000001001002156C000000050000")?;
//! assert_eq!(field54.balance_minor(), Some(50_000)); // available first, else ledger
//! # Ok::<(), schemas::iso8583::AdditionalAmountError>(())
//! ```

use std::fmt;

use crate::domain::Currency;

/// Why a field-54 value cannot be read or built. Never carries the value (a balance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdditionalAmountError {
    /// The field is not a whole number of 20-character amounts.
    #[error("field 54: {len} characters is not a run of 20-character amounts")]
    Length { len: usize },
    /// More amounts than the field holds.
    #[error("field 54: more than {} amounts", AdditionalAmounts::COUNT_MAX)]
    TooMany,
    /// A character that must be a digit is not (position counts from 0 within the field).
    #[error("field 54: position {position} is not a digit")]
    NotDigit { position: usize },
    /// The sign is neither `C` nor `D`.
    #[error("field 54: position {position} is not C or D")]
    BadSign { position: usize },
    /// The currency is not one the network settles in.
    #[error("field 54: unsupported currency")]
    Currency,
    /// The amount needs more than 12 digits.
    #[error("field 54: amount exceeds 12 digits")]
    TooLarge,
}

/// An account type: two digits, as in positions 3-4 and 5-6 of field 3 (ISO 8583:1987).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountType(u8);

impl AccountType {
    /// `00`: default, unspecified.
    pub const DEFAULT: AccountType = AccountType(0);
    /// `10`: savings account (the bank account behind a card, on the bank links).
    pub const SAVINGS: AccountType = AccountType(10);
    /// `96`: the cardholder's personal medical-insurance account (ssc87 private code).
    pub const MEDICAL_INSURANCE: AccountType = AccountType(96);

    /// The account type with code `code` (0-99).
    pub const fn new(code: u8) -> Option<AccountType> {
        if code <= 99 {
            Some(AccountType(code))
        } else {
            None
        }
    }

    /// The two-digit code.
    pub const fn code(self) -> u8 {
        self.0
    }
}

/// An amount type of field 54 (ISO 8583:1987 additional amounts): two digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AmountType(u8);

impl AmountType {
    /// `01`: ledger balance.
    pub const LEDGER_BALANCE: AmountType = AmountType(1);
    /// `02`: available balance.
    pub const AVAILABLE_BALANCE: AmountType = AmountType(2);

    /// The amount type with code `code` (0-99).
    pub const fn new(code: u8) -> Option<AmountType> {
        if code <= 99 {
            Some(AmountType(code))
        } else {
            None
        }
    }

    /// The two-digit code.
    pub const fn code(self) -> u8 {
        self.0
    }
}

/// One 20-character amount of field 54.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdditionalAmount {
    /// Positions 1-2.
    pub account_type: AccountType,
    /// Positions 3-4.
    pub amount_type: AmountType,
    /// Positions 5-7.
    pub currency: Currency,
    /// Positions 8-20: `C` positive, `D` negative; at most 12 digits.
    amount_minor: i64,
}

impl AdditionalAmount {
    /// Characters of one amount.
    pub const LEN: usize = 20;
    /// The largest magnitude 12 digits hold, in minor units.
    pub const MAGNITUDE_MAX: u64 = 999_999_999_999;

    /// An amount of `amount_minor` minor units (negative: a debit balance, sign `D`).
    pub fn new(
        account_type: AccountType,
        amount_type: AmountType,
        currency: Currency,
        amount_minor: i64,
    ) -> Result<AdditionalAmount, AdditionalAmountError> {
        if amount_minor.unsigned_abs() > Self::MAGNITUDE_MAX {
            return Err(AdditionalAmountError::TooLarge);
        }
        Ok(AdditionalAmount {
            account_type,
            amount_type,
            currency,
            amount_minor,
        })
    }

    /// The signed amount in minor units (fen for CNY).
    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// Reads exactly one 20-character amount.
    pub fn parse(s: &str) -> Result<AdditionalAmount, AdditionalAmountError> {
        parse_at(s.as_bytes(), 0)
    }
}

/// Reads the amount in `b` (20 bytes) found at `at` within the field (for error positions).
fn parse_at(b: &[u8], at: usize) -> Result<AdditionalAmount, AdditionalAmountError> {
    if b.len() != AdditionalAmount::LEN {
        return Err(AdditionalAmountError::Length { len: b.len() });
    }
    let digits = |range: std::ops::Range<usize>| -> Result<u64, AdditionalAmountError> {
        let start = range.start;
        b[range].iter().enumerate().try_fold(0u64, |acc, (i, c)| {
            if c.is_ascii_digit() {
                Ok(acc * 10 + u64::from(c - b'0'))
            } else {
                Err(AdditionalAmountError::NotDigit {
                    position: at + start + i,
                })
            }
        })
    };
    // Two digits are at most 99 and three at most 999, so the narrowing never truncates.
    let account_type = AccountType(digits(0..2)? as u8);
    let amount_type = AmountType(digits(2..4)? as u8);
    let currency =
        Currency::from_numeric_code(digits(4..7)? as u16).ok_or(AdditionalAmountError::Currency)?;
    // 12 digits are below 10^12, well inside i64.
    let magnitude = digits(8..20)? as i64;
    let amount_minor = match b[7] {
        b'C' => magnitude,
        b'D' => -magnitude,
        _ => return Err(AdditionalAmountError::BadSign { position: at + 7 }),
    };
    Ok(AdditionalAmount {
        account_type,
        amount_type,
        currency,
        amount_minor,
    })
}

impl fmt::Display for AdditionalAmount {
    /// The 20 characters of the wire form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount_minor < 0 { 'D' } else { 'C' };
        write!(
            f,
            "{:02}{:02}{:03}{sign}{:012}",
            self.account_type.0,
            self.amount_type.0,
            self.currency.numeric_code(),
            self.amount_minor.unsigned_abs()
        )
    }
}

/// The whole of field 54: one to six amounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdditionalAmounts(Vec<AdditionalAmount>);

impl AdditionalAmounts {
    /// Most amounts in the field (`ans...120`, ISO 8583:1987).
    pub const COUNT_MAX: usize = 6;

    /// The field holding `amounts`, in order.
    pub fn new(amounts: Vec<AdditionalAmount>) -> Result<Self, AdditionalAmountError> {
        if amounts.len() > Self::COUNT_MAX {
            return Err(AdditionalAmountError::TooMany);
        }
        Ok(AdditionalAmounts(amounts))
    }

    /// Reads the field; every amount must be well formed.
    pub fn parse(field: &str) -> Result<Self, AdditionalAmountError> {
        let b = field.as_bytes();
        if b.is_empty() || !b.len().is_multiple_of(AdditionalAmount::LEN) {
            return Err(AdditionalAmountError::Length { len: b.len() });
        }
        let amounts = b
            .chunks(AdditionalAmount::LEN)
            .enumerate()
            .map(|(i, chunk)| parse_at(chunk, i * AdditionalAmount::LEN))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(amounts)
    }

    /// The amounts, in field order.
    pub fn amounts(&self) -> &[AdditionalAmount] {
        &self.0
    }

    /// The first amount of `amount_type`.
    pub fn find(&self, amount_type: AmountType) -> Option<&AdditionalAmount> {
        self.0.iter().find(|a| a.amount_type == amount_type)
    }

    /// The balance a cardholder is shown, in minor units: the available balance (`02`), else
    /// the ledger balance (`01`).
    pub fn balance_minor(&self) -> Option<i64> {
        self.find(AmountType::AVAILABLE_BALANCE)
            .or_else(|| self.find(AmountType::LEDGER_BALANCE))
            .map(AdditionalAmount::amount_minor)
    }
}

impl fmt::Display for AdditionalAmounts {
    /// The wire form: the amounts one after the other.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|a| write!(f, "{a}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(account: AccountType, kind: AmountType, fen: i64) -> AdditionalAmount {
        AdditionalAmount::new(account, kind, Currency::Cny, fen).unwrap()
    }

    #[test]
    fn an_amount_round_trips_with_its_sign() {
        for (fen, wire) in [
            (123_456, "1002156C000000123456"),
            (-100, "1002156D000000000100"),
            (0, "1002156C000000000000"),
            (999_999_999_999, "1002156C999999999999"),
        ] {
            let a = amount(AccountType::SAVINGS, AmountType::AVAILABLE_BALANCE, fen);
            assert_eq!(a.to_string(), wire);
            assert_eq!(AdditionalAmount::parse(wire), Ok(a));
        }
    }

    #[test]
    fn the_medical_insurance_balance_carries_ledger_then_available() {
        let field = AdditionalAmounts::new(vec![
            amount(
                AccountType::MEDICAL_INSURANCE,
                AmountType::LEDGER_BALANCE,
                500,
            ),
            amount(
                AccountType::MEDICAL_INSURANCE,
                AmountType::AVAILABLE_BALANCE,
                -7,
            ),
        ])
        .unwrap();
        let wire = field.to_string();
        assert_eq!(wire, "9601156C0000000005009602156D000000000007");
        assert_eq!(AdditionalAmounts::parse(&wire), Ok(field));
    }

    #[test]
    fn the_balance_shown_is_the_available_one_first_then_the_ledger_one() {
        let cases = [
            ("1002156C000000123456", Some(123_456)),
            ("1002156D000000000100", Some(-100)),
            ("1001156C000000000500", Some(500)),
            ("1001156C0000000005001002156C000000000700", Some(700)),
            ("1003156C000000000500", None),
        ];
        for (field, want) in cases {
            let parsed = AdditionalAmounts::parse(field).unwrap();
            assert_eq!(parsed.balance_minor(), want, "{field}");
        }
    }

    #[test]
    fn malformed_fields_are_errors_that_say_where() {
        use AdditionalAmountError as E;
        let cases = [
            ("1002156X000000000500", E::BadSign { position: 7 }),
            ("1002156C00000000050", E::Length { len: 19 }),
            ("1002156C00000000050A", E::NotDigit { position: 19 }),
            ("", E::Length { len: 0 }),
            ("1002840C000000000500", E::Currency),
            (
                "1002156C0000000005001002156+000000000500",
                E::BadSign { position: 27 },
            ),
        ];
        for (field, want) in cases {
            assert_eq!(AdditionalAmounts::parse(field), Err(want), "{field}");
        }
        let seven = "1002156C000000000500".repeat(7);
        assert_eq!(AdditionalAmounts::parse(&seven), Err(E::TooMany));
    }

    #[test]
    fn an_amount_beyond_twelve_digits_is_refused_not_widened() {
        let too_big = AdditionalAmount::new(
            AccountType::SAVINGS,
            AmountType::AVAILABLE_BALANCE,
            Currency::Cny,
            -1_000_000_000_000,
        );
        assert_eq!(too_big, Err(AdditionalAmountError::TooLarge));
        assert_eq!(AccountType::new(100), None);
        assert_eq!(AmountType::new(2), Some(AmountType::AVAILABLE_BALANCE));
    }
}
