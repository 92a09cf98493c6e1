//! `every` durations (`15m`, `1h30m`) and `at` instants (RFC 3339 / ISO 8601),
//! parsed from and formatted back to text.

use super::civil::{CivilDateTime, days_in_month};
use super::tz::{LocalResult, TimeZone};
use super::{ScheduleError, shown};
use crate::limits::SCHEDULE_MAX_EVERY;
use std::time::Duration;

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Parse a duration: numbers with units `d`, `h`, `m`, `s`, `ms`, largest
/// first (`45s`, `15m`, `1h30m`, `1d`, `500ms`). Zero, and anything over
/// `limits::SCHEDULE_MAX_EVERY`, are refused.
pub fn parse_duration(s: &str) -> Result<Duration, ScheduleError> {
    let fail = |reason: &str| ScheduleError::Duration {
        text: shown(s),
        reason: reason.into(),
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(fail("empty"));
    }
    let (mut total, mut previous) = (0_u64, None);
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let letters = rest[digits..]
            .find(|c: char| !c.is_ascii_alphabetic())
            .map_or(rest.len(), |n| n + digits);
        let (number, unit) = (&rest[..digits], &rest[digits..letters]);
        if number.is_empty() {
            return Err(fail("expected a number"));
        }
        let Some(u) = UNITS.iter().position(|u| u.0 == unit) else {
            return Err(fail("each number needs a unit: d, h, m, s or ms"));
        };
        if previous.is_some_and(|p| u <= p) {
            return Err(fail("units go from largest to smallest, each once"));
        }
        previous = Some(u);
        let ms = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[u].1));
        total = ms
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| fail("too long"))?;
        rest = &rest[letters..];
    }
    match Duration::from_millis(total) {
        Duration::ZERO => Err(fail("must be longer than zero")),
        d if d > SCHEDULE_MAX_EVERY => Err(fail("longer than 366 days")),
        d => Ok(d),
    }
}

/// The text `parse_duration` reads back to the same duration (`1h30m`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    let mut out = String::new();
    for (unit, size) in UNITS {
        let n = ms / u128::from(size);
        if n > 0 {
            out += &format!("{n}{unit}");
            ms -= n * u128::from(size);
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn eat(&mut self, set: &[u8]) -> Option<u8> {
        let c = *self.b.get(self.i).filter(|c| set.contains(c))?;
        self.i += 1;
        Some(c)
    }

    /// Exactly `n` digits.
    fn num(&mut self, n: usize) -> Option<i64> {
        let digits = self.b.get(self.i..self.i + n)?;
        self.i += n;
        digits.iter().try_fold(0, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    }
}

/// Wall time, milliseconds and the UTC offset if one was written.
fn scan(text: &str) -> Option<(CivilDateTime, i64, Option<i64>)> {
    let mut p = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    let year = p.num(4)?;
    p.eat(b"-")?;
    let month = p.num(2)? as u8;
    p.eat(b"-")?;
    let day = p.num(2)? as u8;
    let (mut hour, mut minute, mut second, mut ms) = (0, 0, 0, 0);
    if p.eat(b"Tt ").is_some() {
        hour = p.num(2)?;
        p.eat(b":")?;
        minute = p.num(2)?;
        if p.eat(b":").is_some() {
            second = p.num(2)?;
            if p.eat(b".,").is_some() {
                let start = p.i;
                while p.i - start < 9 && p.b.get(p.i).is_some_and(u8::is_ascii_digit) {
                    p.i += 1;
                }
                let frac = format!("{:0<3}", std::str::from_utf8(&p.b[start..p.i]).ok()?);
                ms = frac.get(..3).filter(|_| p.i > start)?.parse().ok()?;
            }
        }
    }
    let offset = match p.eat(b"Zz+-") {
        None => None,
        Some(b'Z' | b'z') => Some(0),
        Some(sign) => {
            let h = p.num(2)?;
            let colon = p.eat(b":").is_some();
            let m = if colon || p.i < p.b.len() {
                p.num(2)?
            } else {
                0
            };
            (h <= 23 && m <= 59).then_some(())?;
            Some(if sign == b'-' {
                -(h * 3600 + m * 60)
            } else {
                h * 3600 + m * 60
            })
        }
    };
    let in_range = (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
    (p.i == p.b.len() && in_range && hour <= 23 && minute <= 59 && second <= 60).then_some(())?;
    let (hour, minute, second) = (hour as u8, minute as u8, second as u8);
    Some((
        CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        },
        ms,
        offset,
    ))
}

/// Parse an `at` time to unix ms: `2026-12-24T18:00:00+01:00`, `…Z`,
/// fractional seconds, `+0100`/`+01` offsets, a space for `T`, a date alone
/// (midnight). Without an offset the time is a wall time in `tz` (OpenClaw
/// passes UTC unless the job names a zone): one that occurs twice means the
/// first, one skipped by a jump forward means the instant the jump lands.
/// The instant must lie in the years 0000–9999 UTC, so that
/// `format_instant` can write it back.
pub fn parse_instant(s: &str, tz: &TimeZone) -> Result<i64, ScheduleError> {
    let fail = |reason: &str| ScheduleError::Instant {
        text: shown(s),
        reason: reason.into(),
    };
    let (wall, ms, offset) =
        scan(s.trim()).ok_or_else(|| fail("expected a time like 2026-12-24T18:00:00+01:00"))?;
    let secs = match offset {
        Some(off) => wall.to_seconds() - off,
        None => match tz.local_to_utc(wall) {
            LocalResult::Unique(t)
            | LocalResult::Ambiguous(t, _)
            | LocalResult::Gap { ends_at: t } => t,
        },
    };
    const YEARS_0000_TO_9999_MS: std::ops::Range<i64> = -62_167_219_200_000..253_402_300_800_000;
    Some(secs * 1000 + ms)
        .filter(|ms| YEARS_0000_TO_9999_MS.contains(ms))
        .ok_or_else(|| fail("outside the years 0000 to 9999 in UTC"))
}

/// RFC 3339 text in UTC of unix ms (`2026-12-24T17:00:00Z`, with `.250` when
/// there are milliseconds); `parse_instant` reads it back.
pub fn format_instant(ms: i64) -> String {
    let t = CivilDateTime::from_seconds(ms.div_euclid(1000));
    let frac = ms.rem_euclid(1000);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:03}")
    };
    let (y, mo, d, h, mi, s) = (t.year, t.month, t.day, t.hour, t.minute, t.second);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::schedule::tz::tests::zone;

    #[test]
    fn durations() {
        let ms = |s| parse_duration(s).map(|d| d.as_millis() as u64);
        for (text, want) in [
            ("45s", 45_000),
            (" 15m ", 900_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
        ] {
            assert_eq!(ms(text), Ok(want));
        }
        for (text, want) in [("1h30m", 5_400_000), ("500ms", 500), ("1m500ms", 60_500)] {
            assert_eq!(ms(text), Ok(want));
        }
        assert_eq!(ms("366d"), Ok(366 * 86_400_000));
        let bad = "|0s|0h0m|15|m|15x|1.5h|-5m|30m1h|1h1h|367d|99999999999999999999s|1h 30m|\
            18446744073709551615d|5 m";
        for text in bad.split('|') {
            assert!(parse_duration(text).is_err(), "{text:?}");
        }
        let e = parse_duration("15x").unwrap_err().to_string();
        assert_eq!(
            e,
            "duration \"15x\": each number needs a unit: d, h, m, s or ms"
        );
        for text in ["45s", "1h30m", "1d2h3m4s5ms", "500ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    /// input | zone | the instant in UTC, or `error`
    const INSTANTS: &str = "
        2026-12-24T18:00:00+01:00       | UTC    | 2026-12-24T17:00:00Z
        2026-12-24t17:00:00z            | UTC    | 2026-12-24T17:00:00Z
        2026-12-24 12:00:00-0500        | UTC    | 2026-12-24T17:00:00Z
        2026-12-24T18:00+01             | UTC    | 2026-12-24T17:00:00Z
        2026-12-24T17:00:00.25Z         | UTC    | 2026-12-24T17:00:00.250Z
        2026-12-24T17:00:00,123456789Z  | UTC    | 2026-12-24T17:00:00.123Z
        2026-12-24T17:00:00             | UTC    | 2026-12-24T17:00:00Z
        2026-12-24                      | UTC    | 2026-12-24T00:00:00Z
        1969-12-31T23:59:59.999Z        | UTC    | 1969-12-31T23:59:59.999Z
        2026-12-24T18:00:00             | Berlin | 2026-12-24T17:00:00Z
        2026-03-29T02:30:00             | Berlin | 2026-03-29T01:00:00Z
        2026-10-25T02:30:00             | Berlin | 2026-10-25T00:30:00Z
        2026-13-01T00:00:00Z            | UTC    | error
        2026-02-29T00:00:00Z            | UTC    | error
        2026-12-24T24:00:00Z            | UTC    | error
        2026-12-24T18:60:00Z            | UTC    | error
        2026-12-24T18:00:00+24:00       | UTC    | error
        2026-12-24T18:00:00.Z           | UTC    | error
        2026-12-24T18:00:00.1234567890Z | UTC    | error
        26-12-24                        | UTC    | error
        2026-12-24T18                   | UTC    | error
        2026-12-24T18:00:00+1           | UTC    | error
        2026-12-24T18:00:00Zx           | UTC    | error
        ２０２６-12-24                  | UTC    | error
        tomorrow                        | UTC    | error
        0000-01-01T00:00:00Z            | UTC    | 0000-01-01T00:00:00Z
        0000-01-01T00:30:00+01:00       | UTC    | error
        9999-12-31T23:59:59.999Z        | UTC    | 9999-12-31T23:59:59.999Z
        9999-12-31T23:30:00-01:00       | UTC    | error";

    /// Offsets in all forms; no offset: the zone's wall time (a skipped
    /// time: the end of the gap; a repeated one: the first).
    #[test]
    fn instants() {
        for row in INSTANTS
            .lines()
            .skip(1)
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        {
            let got = parse_instant(row[0], &zone(row[1])).map(format_instant);
            assert_eq!(got.as_deref().unwrap_or("error"), row[2], "{row:?}");
        }
        assert!(parse_instant("", &TimeZone::utc()).is_err());
        for ms in [1_798_131_600_000, 7, -1, 0] {
            assert_eq!(parse_instant(&format_instant(ms), &TimeZone::utc()), Ok(ms));
        }
    }
}
