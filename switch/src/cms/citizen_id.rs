//! The citizen identity number (公民身份号码) of GB 11643-1999, the key of a cardholder: 6 digits
//! of address code (GB/T 2260), 8 of birth date, 3 of sequence (odd for men, even for women)
//! and a check character computed with ISO 7064:1983 MOD 11-2.
//!
//! Why here: the social-security bureau's batches name people by this number, and a wrong
//! digit must be caught at import (the check character catches every single-digit error and
//! every transposition of adjacent digits), not when the card bureau prints the card.

use super::region::RegionCode;
use chrono::{Datelike, NaiveDate};

/// Length of a GB 11643-1999 number in characters.
pub const CITIZEN_ID_LEN_CHARS: usize = 18;
/// Earliest birth year accepted.
const BIRTH_YEAR_MIN: i32 = 1900;

/// Why a citizen ID was refused. Errors never repeat the number (it identifies a person).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CitizenIdError {
    /// Not 18 characters.
    #[error("must be 18 characters")]
    Length,
    /// One of the first 17 characters is not a digit, or the last is not a digit or `X`.
    #[error("must be 17 digits and a digit or X")]
    Characters,
    /// The ISO 7064 MOD 11-2 check character does not match.
    #[error("check character does not match (GB 11643-1999, ISO 7064 MOD 11-2)")]
    CheckCharacter,
    /// The address code's province is not in GB/T 2260.
    #[error("address code: province not in GB/T 2260")]
    Province,
    /// Digits 7-14 are not a date, or a date before 1900 or in the future.
    #[error("birth date is not a valid date between 1900 and today")]
    BirthDate,
}

/// Sex as the sequence code says (GB 11643-1999 §4.3), also the EF06 sex field (1/2, GB/T 2261.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// Odd sequence code.
    Male,
    /// Even sequence code.
    Female,
}

impl Sex {
    /// GB/T 2261.1 code: `1` male, `2` female.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "1",
            Sex::Female => "2",
        }
    }
}

/// A verified citizen ID. `Debug` shows only the address code and the check character.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CitizenId(String);

impl std::fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CitizenId({}***********{})", &self.0[..6], &self.0[17..])
    }
}

/// The MOD 11-2 check character of 17 digits (ISO 7064:1983 §7.1, the weights 2^(17-i) mod 11
/// of GB 11643-1999 §8.2: 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2).
pub fn check_character(digits17: &[u8; 17]) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = digits17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    match (12 - sum % 11) % 11 {
        10 => 'X',
        v => char::from(b'0' + v as u8),
    }
}

impl CitizenId {
    /// Parses and verifies `s` against `today` (a lower-case `x` is accepted as `X`).
    pub fn parse(s: &str, today: NaiveDate) -> Result<Self, CitizenIdError> {
        let s = s.trim();
        if s.len() != CITIZEN_ID_LEN_CHARS {
            return Err(CitizenIdError::Length);
        }
        let upper = s.to_ascii_uppercase();
        let b = upper.as_bytes();
        let mut body = [0u8; 17];
        body.copy_from_slice(&b[..17]);
        if !body.iter().all(u8::is_ascii_digit) || !(b[17].is_ascii_digit() || b[17] == b'X') {
            return Err(CitizenIdError::Characters);
        }
        if check_character(&body) != char::from(b[17]) {
            return Err(CitizenIdError::CheckCharacter);
        }
        RegionCode::parse(&upper[..6]).map_err(|_| CitizenIdError::Province)?;
        let id = CitizenId(upper);
        let birth = id.birth_date_unchecked().ok_or(CitizenIdError::BirthDate)?;
        if birth.year() < BIRTH_YEAR_MIN || birth > today {
            return Err(CitizenIdError::BirthDate);
        }
        Ok(id)
    }

    fn birth_date_unchecked(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(&self.0[6..14], "%Y%m%d").ok()
    }

    /// The birth date (digits 7-14).
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date_unchecked().unwrap_or_default()
    }

    /// The birth date as `YYYYMMDD` (EF06 birth date).
    pub fn birth_yyyymmdd(&self) -> &str {
        &self.0[6..14]
    }

    /// The address code (digits 1-6), the birthplace of EF06.
    pub fn address_code(&self) -> &str {
        &self.0[..6]
    }

    /// Sex from the sequence code's last digit (digit 17).
    pub fn sex(&self) -> Sex {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The 18 characters (the social-security number of EF06). Handle as personal data.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 7).unwrap_or_default()
    }

    #[test]
    fn the_published_examples_of_gb_11643_verify() {
        // GB 11643-1999 Annex A example and the usual ones of its MOD 11-2 check.
        for id in ["11010519491231002X", "11010519491231002x"] {
            assert!(CitizenId::parse(id, today()).is_ok(), "{id}");
        }
        let id = CitizenId::parse("11010519491231002X", today()).unwrap();
        assert_eq!(id.birth_yyyymmdd(), "19491231");
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.address_code(), "110105");
        // 1880 is before the accepted range, though its check character is right.
        assert_eq!(
            CitizenId::parse("440524188001010014", today()),
            Err(CitizenIdError::BirthDate)
        );
        assert_eq!(check_character(b"44052418800101001"), '4');
    }

    #[test]
    fn a_wrong_check_character_is_refused() {
        for id in [
            "110105194912310021",
            "110105194912310020",
            "440524188001010015",
        ] {
            assert_eq!(
                CitizenId::parse(id, today()),
                Err(CitizenIdError::CheckCharacter),
                "{id}"
            );
        }
    }

    #[test]
    fn adjacent_transpositions_and_single_digit_errors_are_caught() {
        let good = "11010519491231002X";
        let b = good.as_bytes();
        for i in 0..16 {
            if b[i] == b[i + 1] {
                continue;
            }
            let mut t = b.to_vec();
            t.swap(i, i + 1);
            let t = String::from_utf8(t).unwrap();
            assert!(CitizenId::parse(&t, today()).is_err(), "{t}");
        }
        for i in 0..17 {
            let mut t = b.to_vec();
            t[i] = if t[i] == b'9' { b'0' } else { t[i] + 1 };
            let t = String::from_utf8(t).unwrap();
            assert!(CitizenId::parse(&t, today()).is_err(), "{t}");
        }
    }

    #[test]
    fn malformed_numbers_get_their_own_reason() {
        assert_eq!(
            CitizenId::parse("1101051949123100", today()),
            Err(CitizenIdError::Length)
        );
        assert_eq!(
            CitizenId::parse("1101051949123100AX", today()),
            Err(CitizenIdError::Characters)
        );
        // Province 99 does not exist (check character recomputed so only the province is wrong).
        let mut body = *b"99010519491231002";
        let c = check_character(&body);
        let id = format!("{}{c}", std::str::from_utf8(&body).unwrap());
        assert_eq!(
            CitizenId::parse(&id, today()),
            Err(CitizenIdError::Province)
        );
        // 31 February.
        body = *b"11010519490231002";
        let c = check_character(&body);
        let id = format!("{}{c}", std::str::from_utf8(&body).unwrap());
        assert_eq!(
            CitizenId::parse(&id, today()),
            Err(CitizenIdError::BirthDate)
        );
        // Born tomorrow.
        body = *b"11010520261208002";
        let c = check_character(&body);
        let id = format!("{}{c}", std::str::from_utf8(&body).unwrap());
        assert_eq!(
            CitizenId::parse(&id, today()),
            Err(CitizenIdError::BirthDate)
        );
    }

    #[test]
    fn debug_hides_the_birth_date_and_sequence() {
        let id = CitizenId::parse("11010519491231002X", today()).unwrap();
        let shown = format!("{id:?}");
        assert!(!shown.contains("19491231"), "{shown}");
    }
}
