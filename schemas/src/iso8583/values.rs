//! Typed views of a field's logical value: text, unsigned numbers, decimal amounts.
//!
//! Shared by the borrowed [`super::Message`] and the owned [`super::OwnedMessage`] so both
//! answer `get_str`/`get_u64`/`get_amount` the same way.

use std::borrow::Cow;

use rust_decimal::Decimal;

use super::content::Content;
use super::error::{Error, FieldRef};

/// Latin-1 bytes as text; borrows when the bytes are ASCII.
pub(crate) fn to_str<'a>(
    at: FieldRef,
    content: Content,
    v: Cow<'a, [u8]>,
) -> Result<Cow<'a, str>, Error> {
    if content == Content::Binary {
        return Err(Error::WrongType {
            at,
            reason: "binary field (read it with get_bytes)",
        });
    }
    Ok(latin1(v))
}

/// Latin-1 bytes as a string (borrowed when ASCII).
pub(crate) fn latin1(v: Cow<'_, [u8]>) -> Cow<'_, str> {
    match v {
        Cow::Borrowed(b) => match std::str::from_utf8(b) {
            Ok(s) if b.is_ascii() => Cow::Borrowed(s),
            _ => Cow::Owned(b.iter().map(|&c| char::from(c)).collect()),
        },
        Cow::Owned(b) => Cow::Owned(b.iter().map(|&c| char::from(c)).collect()),
    }
}

/// Parses an `n` field as an unsigned integer.
pub(crate) fn to_u64(at: FieldRef, content: Content, v: &[u8]) -> Result<u64, Error> {
    if content != Content::Numeric {
        return Err(Error::WrongType {
            at,
            reason: "not a numeric (n) field",
        });
    }
    digits_u64(at, v)
}

fn digits_u64(at: FieldRef, v: &[u8]) -> Result<u64, Error> {
    if v.is_empty() {
        return Err(Error::WrongType {
            at,
            reason: "empty numeric value",
        });
    }
    let mut n: u64 = 0;
    for (position, &c) in v.iter().enumerate() {
        if !c.is_ascii_digit() {
            return Err(Error::InvalidContent {
                at,
                content: Content::Numeric,
                position,
            });
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(c - b'0')))
            .ok_or(Error::OutOfRange { at })?;
    }
    Ok(n)
}

/// Reads an amount in minor units (`n` or `x+n`) as a `Decimal` with `scale` decimals
/// (the currency exponent, 2 for CNY). `x+n` amounts with `D` (debit) are negative.
pub(crate) fn to_amount(
    at: FieldRef,
    content: Content,
    v: &[u8],
    scale: u32,
) -> Result<Decimal, Error> {
    let (negative, digits) = match content {
        Content::Numeric => (false, v),
        Content::SignedAmount if !v.is_empty() => (v[0] == b'D', &v[1..]),
        _ => {
            return Err(Error::WrongType {
                at,
                reason: "not an amount (n or x+n) field",
            })
        }
    };
    let minor = i128::from(digits_u64(at, digits)?);
    let minor = if negative { -minor } else { minor };
    Decimal::try_from_i128_with_scale(minor, scale).map_err(|_| Error::OutOfRange { at })
}

/// Minor units of a `Decimal` amount, as digits (and sign for `x+n`).
pub(crate) fn amount_digits(
    at: FieldRef,
    content: Content,
    amount: Decimal,
    scale: u32,
) -> Result<Vec<u8>, Error> {
    let scaled = amount * Decimal::from(10u64.pow(scale.min(18)));
    if scaled.fract() != Decimal::ZERO {
        return Err(Error::OutOfRange { at });
    }
    let minor: i128 = scaled.mantissa() / 10i128.pow(scaled.scale());
    let mut out = Vec::new();
    match content {
        Content::Numeric if minor >= 0 => {}
        Content::SignedAmount => out.push(if minor < 0 { b'D' } else { b'C' }),
        Content::Numeric => return Err(Error::OutOfRange { at }),
        _ => {
            return Err(Error::WrongType {
                at,
                reason: "not an amount (n or x+n) field",
            })
        }
    }
    out.extend_from_slice(minor.unsigned_abs().to_string().as_bytes());
    Ok(out)
}

/// Latin-1 bytes of a string; characters above U+00FF cannot be carried.
pub(crate) fn from_str(at: FieldRef, s: &str) -> Result<Cow<'_, [u8]>, Error> {
    if s.is_ascii() {
        return Ok(Cow::Borrowed(s.as_bytes()));
    }
    s.chars()
        .enumerate()
        .map(|(position, c)| {
            u8::try_from(u32::from(c)).map_err(|_| Error::InvalidContent {
                at,
                content: Content::AlphaNumericSpecial,
                position,
            })
        })
        .collect::<Result<Vec<u8>, Error>>()
        .map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: FieldRef = FieldRef::field(4);

    #[test]
    fn amounts_use_minor_units_and_sign() {
        assert_eq!(
            to_amount(AT, Content::Numeric, b"000000012345", 2).unwrap(),
            Decimal::new(12345, 2)
        );
        assert_eq!(
            to_amount(AT, Content::SignedAmount, b"D00000100", 2).unwrap(),
            Decimal::new(-100, 2)
        );
        assert_eq!(
            amount_digits(AT, Content::Numeric, Decimal::new(12345, 2), 2).unwrap(),
            b"12345"
        );
        assert_eq!(
            amount_digits(AT, Content::SignedAmount, Decimal::new(-5, 1), 2).unwrap(),
            b"D50"
        );
        assert!(amount_digits(AT, Content::Numeric, Decimal::new(1, 3), 2).is_err());
        assert!(amount_digits(AT, Content::Numeric, Decimal::new(-1, 0), 2).is_err());
    }

    #[test]
    fn u64_overflow_is_out_of_range() {
        assert_eq!(to_u64(AT, Content::Numeric, b"000042").unwrap(), 42);
        assert_eq!(
            to_u64(AT, Content::Numeric, b"99999999999999999999"),
            Err(Error::OutOfRange { at: AT })
        );
    }
}
