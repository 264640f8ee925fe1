//! The settlement day: a calendar day in China Standard Time (UTC+8, no daylight saving), the
//! unit of every 0500/0510 reconciliation. Field 15 of a 0500 names it as `MMDD`, meaning the
//! latest such date not after today (schemas/iso8583/ssc87.md, "Acquirer reconciliation").
//!
//! Why one module: the acquirer's 0500 (`pipeline::services::reconciliation`), the bank
//! cut-over (`issuer::cutover`) and the simulated bank (`sim::banksim`) must agree to the
//! microsecond on where a day starts and which date an `MMDD` means.

use chrono::{Datelike, NaiveDate};

/// China Standard Time's offset from UTC, µs.
pub const CST_OFFSET_US: i64 = 8 * 3_600 * 1_000_000;
/// One day, µs.
pub const DAY_US: i64 = 86_400 * 1_000_000;

/// The settlement day `at_us` (µs since the epoch) falls in.
pub fn day_of(at_us: i64) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp_micros(at_us.checked_add(CST_OFFSET_US)?)
        .map(|t| t.date_naive())
}

/// Where `day` starts and ends, `[from, to)` in µs since the epoch.
pub fn window_us(day: NaiveDate) -> Option<(i64, i64)> {
    let from = day
        .and_hms_opt(0, 0, 0)?
        .and_utc()
        .timestamp_micros()
        .checked_sub(CST_OFFSET_US)?;
    Some((from, from.checked_add(DAY_US)?))
}

/// Field 15 of `day`: `MMDD`.
pub fn mmdd(day: NaiveDate) -> String {
    day.format("%m%d").to_string()
}

/// The day field 15 (`MMDD`) names at `now_us`: the latest such date, China Standard Time,
/// not after today (29 February: the last leap day). None when it is no date.
pub fn from_mmdd(mmdd: &str, now_us: i64) -> Option<NaiveDate> {
    if mmdd.len() != 4 || !mmdd.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (mm, dd) = (mmdd.get(..2)?.parse().ok()?, mmdd.get(2..4)?.parse().ok()?);
    let today = day_of(now_us)?;
    match NaiveDate::from_ymd_opt(today.year(), mm, dd) {
        Some(d) if d <= today => Some(d),
        // Not yet this year (or 29 February of a common year): the latest earlier one.
        _ => (1..=8).find_map(|back| NaiveDate::from_ymd_opt(today.year() - back, mm, dd)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23 12:00 CST.
    const NOON: i64 = 1_795_406_400_000_000;

    #[test]
    fn a_day_starts_at_midnight_china_standard_time() {
        let day = day_of(NOON).unwrap();
        assert_eq!(day, NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
        let (from, to) = window_us(day).unwrap();
        assert_eq!(from, NOON - 12 * 3_600 * 1_000_000);
        assert_eq!(to - from, DAY_US);
        assert_eq!(day_of(from - 1).unwrap(), day.pred_opt().unwrap());
        assert_eq!(mmdd(day), "1123");
    }

    #[test]
    fn field_15_names_the_latest_such_day_not_after_today() {
        let today = day_of(NOON).unwrap();
        assert_eq!(from_mmdd("1123", NOON), Some(today));
        assert_eq!(
            from_mmdd("1124", NOON),
            NaiveDate::from_ymd_opt(2025, 11, 24)
        );
        assert_eq!(
            from_mmdd("0229", NOON),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in ["1332", "11", "11234", "+123", "1a23"] {
            assert_eq!(from_mmdd(bad, NOON), None, "{bad}");
        }
    }
}
