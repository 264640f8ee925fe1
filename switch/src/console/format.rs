//! How the console writes money, time and card numbers: yuan with two decimals (from integer
//! fen, never a float), China Standard Time (UTC+8, GB/T 7408 date and time), and PANs masked
//! to their first six and last four digits (PCI DSS 3.4), whatever a page is handed.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};

/// China Standard Time.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| unreachable!("UTC+8 is a valid offset"))
}

/// Fen as yuan with two decimals and thousands separators: `123456` → `1,234.56`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    let whole = (abs / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02}", abs % 100)
}

/// Microseconds since the epoch as China Standard Time, `2026-12-07 13:45:02`.
pub fn cst_time(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| {
            t.with_timezone(&cst())
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// The microseconds of midnight (CST) starting `date` (`YYYY-MM-DD`), and of the midnight
/// after it: the bounds of a search by day.
pub fn cst_day_bounds(date: &str) -> Option<(i64, i64)> {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let start = cst()
        .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
        .single()?
        .timestamp_micros();
    Some((start, start + 86_400_000_000))
}

/// A PAN masked to its first six and last four digits; anything shorter than 11 characters
/// is masked whole. Already-masked PANs pass unchanged.
pub fn mask_pan(pan: &str) -> String {
    let n = pan.chars().count();
    if n < 11 {
        return "*".repeat(n);
    }
    pan.chars()
        .enumerate()
        .map(|(i, c)| if i < 6 || i + 4 >= n { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_has_two_decimals_and_groups_thousands() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(123_456), "1,234.56");
        assert_eq!(yuan(100_000_000), "1,000,000.00");
        assert_eq!(yuan(-2_050), "-20.50");
    }

    #[test]
    fn times_are_china_standard_time() {
        // 2026-01-01T00:00:00Z is 08:00 in Beijing.
        assert_eq!(cst_time(1_767_225_600_000_000), "2026-01-01 08:00:00");
        let (from, to) = cst_day_bounds("2026-01-01").unwrap();
        assert_eq!(from, 1_767_225_600_000_000 - 8 * 3_600_000_000);
        assert_eq!(to - from, 86_400_000_000);
        assert_eq!(cst_day_bounds("2026-13-01"), None);
    }

    #[test]
    fn pans_show_first_six_and_last_four() {
        assert_eq!(mask_pan("6228480012345678"), "622848******5678");
        assert_eq!(mask_pan("622848******5678"), "622848******5678");
        assert_eq!(mask_pan("1234"), "****");
    }
}
