//! Money: `rust_decimal::Decimal` in the domain, integer fen (minor units) in storage and on
//! the wire.
//!
//! ISO 8583 field 4 and every table and event carry amounts as integer minor units. The domain
//! computes with `Decimal` (bill split ratios, caps). The conversion between the two is the one
//! place where precision could silently be lost, so it is checked: an amount with a fraction of
//! a fen, or one that does not fit in `i64`, is an error, never rounded or wrapped.

use rust_decimal::Decimal;
use std::fmt;

/// Why an amount cannot be represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The amount has a fraction of the currency's minor unit (e.g. 1.005 CNY).
    #[error("amount has precision below the minor unit")]
    SubMinorUnit,
    /// The amount in minor units does not fit in a signed 64-bit integer.
    #[error("amount overflows 64-bit minor units")]
    Overflow,
    /// A non-negative amount was required.
    #[error("amount is negative")]
    Negative,
    /// The two amounts are in different currencies.
    #[error("currency mismatch")]
    CurrencyMismatch,
}

/// ISO 4217 currency. The network settles in renminbi only; the type exists so that an amount
/// read from field 49 is checked rather than assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Currency {
    /// Chinese yuan renminbi, ISO 4217 numeric 156, two minor-unit digits (fen).
    #[serde(rename = "156")]
    Cny,
}

impl Currency {
    /// ISO 4217 numeric code as carried in ISO 8583 field 49.
    pub const fn numeric_code(self) -> u16 {
        match self {
            Currency::Cny => 156,
        }
    }

    /// ISO 4217 alphabetic code.
    pub const fn alpha_code(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
        }
    }

    /// Number of minor-unit digits (2 for CNY: 1 yuan = 100 fen).
    pub const fn minor_unit_digits(self) -> u32 {
        match self {
            Currency::Cny => 2,
        }
    }

    /// The currency for an ISO 4217 numeric code, if the network supports it.
    pub fn from_numeric_code(code: u16) -> Option<Self> {
        (code == 156).then_some(Currency::Cny)
    }
}

/// A non-negative amount in fen, the storage and wire form of money. The default is zero.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct AmountFen(i64);

impl AmountFen {
    /// Zero fen.
    pub const ZERO: AmountFen = AmountFen(0);

    /// A non-negative amount of fen.
    pub fn new(fen: i64) -> Result<Self, MoneyError> {
        if fen < 0 {
            Err(MoneyError::Negative)
        } else {
            Ok(Self(fen))
        }
    }

    /// The amount as an `i64`, the column type of every `*_fen` column.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Sum, failing instead of wrapping.
    pub fn checked_add(self, other: AmountFen) -> Result<AmountFen, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(AmountFen)
            .ok_or(MoneyError::Overflow)
    }

    /// Difference, failing when it would be negative.
    pub fn checked_sub(self, other: AmountFen) -> Result<AmountFen, MoneyError> {
        match self.0.checked_sub(other.0) {
            Some(v) if v >= 0 => Ok(AmountFen(v)),
            Some(_) => Err(MoneyError::Negative),
            None => Err(MoneyError::Overflow),
        }
    }
}

impl TryFrom<i64> for AmountFen {
    type Error = MoneyError;
    fn try_from(fen: i64) -> Result<Self, Self::Error> {
        Self::new(fen)
    }
}

impl From<AmountFen> for i64 {
    fn from(a: AmountFen) -> i64 {
        a.0
    }
}

impl fmt::Display for AmountFen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} fen", self.0)
    }
}

/// An amount of money in the domain: a decimal number of major units (yuan) and a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// An amount in major units (e.g. `dec!(12.34)` yuan). Fails if it has a fraction of fen,
    /// so every `Money` converts to storage exactly.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        let money = Self { amount, currency };
        money.to_minor_units()?;
        Ok(money)
    }

    /// An amount read from storage or the wire, in minor units (fen for CNY).
    pub fn from_minor_units(minor: i64, currency: Currency) -> Self {
        Self {
            amount: Decimal::new(minor, currency.minor_unit_digits()),
            currency,
        }
    }

    /// Shorthand for `from_minor_units(fen, Currency::Cny)`.
    pub fn cny_from_fen(fen: i64) -> Self {
        Self::from_minor_units(fen, Currency::Cny)
    }

    /// The amount in minor units, rejecting sub-fen precision and `i64` overflow.
    pub fn to_minor_units(&self) -> Result<i64, MoneyError> {
        let scale = Decimal::from(10_i64.pow(self.currency.minor_unit_digits()));
        let minor = self.amount.checked_mul(scale).ok_or(MoneyError::Overflow)?;
        if !minor.fract().is_zero() {
            return Err(MoneyError::SubMinorUnit);
        }
        i64::try_from(minor).map_err(|_| MoneyError::Overflow)
    }

    /// The amount as a non-negative [`AmountFen`] (CNY only).
    pub fn to_amount_fen(&self) -> Result<AmountFen, MoneyError> {
        if self.currency != Currency::Cny {
            return Err(MoneyError::CurrencyMismatch);
        }
        AmountFen::new(self.to_minor_units()?)
    }

    /// The decimal amount in major units.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Sum of two amounts of the same currency.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch);
        }
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Money::new(amount, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_unit_digits();
        let mut amount = self.amount;
        amount.rescale(digits);
        write!(f, "{} {}", amount, self.currency.alpha_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn yuan_convert_to_fen_exactly() {
        let m = Money::new(dec("12.34"), Currency::Cny).unwrap();
        assert_eq!(m.to_minor_units(), Ok(1234));
        assert_eq!(
            Money::new(dec("0.1"), Currency::Cny)
                .unwrap()
                .to_minor_units(),
            Ok(10)
        );
        assert_eq!(
            Money::new(dec("7"), Currency::Cny)
                .unwrap()
                .to_minor_units(),
            Ok(700)
        );
    }

    #[test]
    fn trailing_zeros_below_a_fen_are_not_sub_fen_precision() {
        let m = Money::new(dec("1.2300"), Currency::Cny).unwrap();
        assert_eq!(m.to_minor_units(), Ok(123));
    }

    #[test]
    fn a_fraction_of_a_fen_is_rejected() {
        assert_eq!(
            Money::new(dec("1.005"), Currency::Cny),
            Err(MoneyError::SubMinorUnit)
        );
    }

    #[test]
    fn amounts_beyond_i64_fen_are_rejected() {
        let too_big = Decimal::from(i64::MAX);
        assert_eq!(
            Money::new(too_big, Currency::Cny),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn fen_round_trip_through_the_domain() {
        let m = Money::cny_from_fen(-250);
        assert_eq!(m.amount(), dec("-2.50"));
        assert_eq!(m.to_minor_units(), Ok(-250));
        assert_eq!(m.to_amount_fen(), Err(MoneyError::Negative));
        assert_eq!(m.to_string(), "-2.50 CNY");
    }

    #[test]
    fn amount_fen_arithmetic_is_checked() {
        let a = AmountFen::new(100).unwrap();
        let b = AmountFen::new(150).unwrap();
        assert_eq!(a.checked_sub(b), Err(MoneyError::Negative));
        assert_eq!(b.checked_sub(a), Ok(AmountFen::new(50).unwrap()));
        let max = AmountFen::new(i64::MAX).unwrap();
        assert_eq!(max.checked_add(a), Err(MoneyError::Overflow));
        assert!(serde_json::from_str::<AmountFen>("-1").is_err());
    }

    #[test]
    fn currency_is_iso_4217_numeric_156() {
        assert_eq!(Currency::Cny.numeric_code(), 156);
        assert_eq!(Currency::from_numeric_code(156), Some(Currency::Cny));
        assert_eq!(Currency::from_numeric_code(840), None);
        assert_eq!(serde_json::to_string(&Currency::Cny).unwrap(), "\"156\"");
    }

    proptest! {
        #[test]
        fn every_i64_fen_round_trips(fen in any::<i64>()) {
            prop_assert_eq!(Money::cny_from_fen(fen).to_minor_units(), Ok(fen));
        }

        #[test]
        fn conversion_never_panics(mantissa in any::<i64>(), scale in 0u32..=28) {
            let d = Decimal::new(mantissa, scale);
            let _ = Money::new(d, Currency::Cny);
        }
    }
}
