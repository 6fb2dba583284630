//! Calendar helpers. Time is always an input (Unix milliseconds); nothing
//! here reads a clock.

/// Offices keep China Standard Time (UTC+8): "today" turns over at local
/// midnight, not at UTC midnight.
pub const LOCAL_OFFSET_MS: i64 = 8 * 3600 * 1000;

/// The local day number (days since 1970-01-01, UTC+8) of a Unix time in ms.
pub fn local_day(unix_ms: u64) -> i32 {
    ((unix_ms as i64 + LOCAL_OFFSET_MS).div_euclid(86_400_000)) as i32
}

/// `YYYY-MM-DD` of a day number (proleptic Gregorian, Howard Hinnant's
/// civil-from-days).
pub fn day_to_iso(day: i32) -> String {
    let (y, m, d) = civil_from_days(day as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Day number of `YYYY-MM-DD`, if it is a real date.
pub fn iso_to_day(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) as i32)
}

/// Is `s` a valid ISO date `YYYY-MM-DD`?
pub fn is_iso_date(s: &str) -> bool {
    iso_to_day(s).is_some()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(day_to_iso(0), "1970-01-01");
        assert_eq!(iso_to_day("2026-11-29").map(day_to_iso).as_deref(), Some("2026-11-29"));
        assert_eq!(iso_to_day("2024-02-29").map(day_to_iso).as_deref(), Some("2024-02-29"));
        assert!(iso_to_day("2025-02-29").is_none());
        assert!(iso_to_day("2025-13-01").is_none());
        assert!(iso_to_day("25-01-01").is_none());
        // 2026-11-29 16:30 UTC is already 11-30 in Guizhou.
        let ms = (iso_to_day("2026-11-29").unwrap() as u64) * 86_400_000 + 16 * 3_600_000 + 1_800_000;
        assert_eq!(day_to_iso(local_day(ms)), "2026-11-30");
    }
}
