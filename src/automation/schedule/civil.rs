//! The proleptic Gregorian calendar on day numbers (days since 1970-01-01).

/// A wall-clock date and time without a zone: what a clock on the wall shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDateTime {
    /// Year (astronomical: 0 is 1 BC).
    pub year: i64,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59.
    pub second: u8,
}

impl CivilDateTime {
    /// The wall time `s` seconds after 1970-01-01 00:00:00 of the same clock.
    pub fn from_seconds(s: i64) -> Self {
        let (year, month, day) = civil_from_days(s.div_euclid(86_400));
        let sod = s.rem_euclid(86_400);
        let part = |div: i64, modulo: i64| (sod / div % modulo) as u8;
        Self {
            year,
            month,
            day,
            hour: part(3600, 24),
            minute: part(60, 60),
            second: part(1, 60),
        }
    }

    /// Seconds from 1970-01-01 00:00:00 to this wall time. Out-of-range
    /// fields roll over (second 60 is the next minute); saturates at the
    /// ends of `i64`.
    pub fn to_seconds(&self) -> i64 {
        let tod =
            i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second);
        days_from_civil(self.year, self.month, self.day)
            .saturating_mul(86_400)
            .saturating_add(tod)
    }
}

/// Largest year the day arithmetic accepts (larger ones are clamped).
const MAX_YEAR: i64 = 1 << 40;

/// Day number of a date (1970-01-01 is 0). `year` is clamped to ±2^40.
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = year.clamp(-MAX_YEAR, MAX_YEAR) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * if m > 2 { m - 3 } else { m + 9 } + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// Date `(year, month, day)` of a day number (clamped to ±2^62).
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days.clamp(-(1 << 62), 1 << 62) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Day of the week of a day number: 0 = Sunday … 6 = Saturday.
pub fn weekday(days: i64) -> u8 {
    (days + 4).rem_euclid(7) as u8
}

/// Whether `year` has a February 29.
pub fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1–12) of `year`.
pub fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip_and_known_dates() {
        for days in (-1_000_000..1_000_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((1..=days_in_month(y, m)).contains(&d));
        }
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(weekday(10_957), 6, "2000-01-01 was a Saturday");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let t = CivilDateTime {
            year: 2026,
            month: 12,
            day: 24,
            hour: 17,
            minute: 0,
            second: 5,
        };
        assert_eq!(t.to_seconds(), 1_798_131_605);
        assert_eq!(CivilDateTime::from_seconds(t.to_seconds()), t);
        assert!(is_leap(2000) && is_leap(2024) && !is_leap(1900) && !is_leap(2100));
        assert_eq!((days_in_month(2028, 2), days_in_month(2027, 2)), (29, 28));
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        for s in [i64::MIN, i64::MAX, 0] {
            let c = CivilDateTime::from_seconds(s);
            let _ = c.to_seconds();
        }
        let _ = days_from_civil(i64::MAX, 0, 255);
        let _ = civil_from_days(i64::MIN);
    }
}
