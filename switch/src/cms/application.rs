//! One application row checked on its own: citizen ID (GB 11643-1999, check character),
//! name (UTF-8, printable on the card face in GBK), insurance scheme, insuring region
//! (GB/T 2260) and the card's bank. A bad field gives a [`RowError`] naming the row, the field
//! and the reason, never the value (it is personal data).

use super::citizen_id::CitizenId;
use super::model::{NewApplication, RowError};
use super::region::RegionCode;
use crate::store::InsuranceCategory;
use chrono::NaiveDate;
use schemas::domain::InstitutionId;
use std::collections::HashSet;

/// Longest name accepted, in characters (EF06 holds 30 bytes of GBK: 15 Chinese characters).
pub const NAME_LEN_MAX_CHARS: usize = 15;

/// The fields of one row, as text.
#[derive(Clone, Copy)]
pub struct ApplicationFields<'a> {
    /// GB 11643-1999 number.
    pub citizen_id: &'a str,
    /// Name.
    pub name: &'a str,
    /// `employee`/`resident` or 城镇职工/城乡居民 (职工/居民).
    pub insurance_scheme: &'a str,
    /// Six-digit GB/T 2260 code.
    pub region_code: &'a str,
    /// The bank's institution id.
    pub bank_id: &'a str,
}

fn err(row: u64, field: &str, reason: impl Into<String>) -> RowError {
    RowError {
        row,
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The insurance scheme named by `s`.
pub fn insurance_scheme(s: &str) -> Option<InsuranceCategory> {
    match s.trim() {
        "employee" | "城镇职工" | "职工" => Some(InsuranceCategory::Employee),
        "resident" | "城乡居民" | "居民" => Some(InsuranceCategory::Resident),
        _ => None,
    }
}

/// Checks a name for the card face.
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > NAME_LEN_MAX_CHARS {
        return Err(format!("longer than {NAME_LEN_MAX_CHARS} characters"));
    }
    if name.chars().any(|c| c.is_control() || c.is_ascii_digit()) {
        return Err("contains digits or control characters".into());
    }
    card_apdu::perso::gbk_name(name).map_err(|_| "not printable in GBK within 30 bytes")?;
    Ok(name.to_owned())
}

/// Validates row `row` against the known `banks` and `today` (China Standard Time).
pub fn validate(
    row: u64,
    f: ApplicationFields<'_>,
    banks: &HashSet<InstitutionId>,
    today: NaiveDate,
) -> Result<NewApplication, RowError> {
    let citizen_id =
        CitizenId::parse(f.citizen_id, today).map_err(|e| err(row, "citizen_id", e.to_string()))?;
    let name = check_name(f.name).map_err(|e| err(row, "name", e))?;
    let insurance = insurance_scheme(f.insurance_scheme).ok_or_else(|| {
        err(
            row,
            "insurance_scheme",
            "must be employee/resident (城镇职工/城乡居民)",
        )
    })?;
    let region =
        RegionCode::parse(f.region_code).map_err(|e| err(row, "region_code", e.to_string()))?;
    let bank = InstitutionId::parse(f.bank_id.trim())
        .ok()
        .filter(|b| banks.contains(b))
        .ok_or_else(|| err(row, "bank_id", "not a bank known to the switch"))?;
    Ok(NewApplication {
        sex: citizen_id.sex(),
        citizen_id,
        name,
        insurance,
        region,
        bank,
    })
}

/// Today in China Standard Time (UTC+8), for birth-date checks.
pub fn today_cst(now_us: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_micros(now_us + 8 * 3_600 * 1_000_000)
        .unwrap_or_default()
        .date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn banks() -> HashSet<InstitutionId> {
        [InstitutionId::parse("01020000").unwrap()].into()
    }

    fn fields() -> ApplicationFields<'static> {
        ApplicationFields {
            citizen_id: "11010519491231002X",
            name: "张三",
            insurance_scheme: "城镇职工",
            region_code: "410100",
            bank_id: "01020000",
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
    }

    #[test]
    fn a_good_row_validates_with_the_sex_from_the_citizen_id() {
        let a = validate(1, fields(), &banks(), today()).unwrap();
        assert_eq!(a.name, "张三");
        assert_eq!(a.insurance, InsuranceCategory::Employee);
        assert_eq!(a.sex.code(), "2");
        assert_eq!(a.region.as_str(), "410100");
    }

    #[test]
    fn each_bad_field_is_named_with_its_row() {
        let cases: [(&str, ApplicationFields<'static>); 6] = [
            (
                "citizen_id",
                ApplicationFields {
                    citizen_id: "110105194912310021",
                    ..fields()
                },
            ),
            (
                "name",
                ApplicationFields {
                    name: "",
                    ..fields()
                },
            ),
            (
                "name",
                ApplicationFields {
                    name: "张三1",
                    ..fields()
                },
            ),
            (
                "insurance_scheme",
                ApplicationFields {
                    insurance_scheme: "商业",
                    ..fields()
                },
            ),
            (
                "region_code",
                ApplicationFields {
                    region_code: "990100",
                    ..fields()
                },
            ),
            (
                "bank_id",
                ApplicationFields {
                    bank_id: "09990000",
                    ..fields()
                },
            ),
        ];
        for (field, f) in cases {
            let e = validate(7, f, &banks(), today()).unwrap_err();
            assert_eq!((e.row, e.field.as_str()), (7, field), "{e:?}");
            assert!(!e.reason.contains("110105"), "reason repeats the value");
        }
    }

    #[test]
    fn names_with_a_middle_dot_pass_and_unprintable_ones_do_not() {
        assert_eq!(check_name(" 买买提·艾力 ").unwrap(), "买买提·艾力");
        assert!(check_name("😀").is_err());
        assert!(check_name("阿").is_ok());
        assert!(check_name(&"阿".repeat(16)).is_err());
    }
}
