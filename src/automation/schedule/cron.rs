//! Cron expressions (5 fields, or 6 with seconds first, and the `@daily`
//! nicknames) and the next instant one fires at in a time zone.

use super::civil::{CivilDateTime, civil_from_days, days_from_civil, days_in_month, weekday};
use super::shown;
use super::tz::TimeZone;

/// How far `next_after` looks ahead: a Gregorian cycle of 400 years (weekdays
/// included) and a day. An expression that does not fire by then never does.
const HORIZON_SECONDS: i64 = (146_097 + 1) * 86_400;

/// Longest expression parsed (real ones are under 100 bytes): a longer one
/// is refused before parsing, so a `cron.add` cannot make parsing slow.
const MAX_EXPR_BYTES: usize = 1024;

/// Why a cron expression was refused (the text reaches users as is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Not 5 or 6 fields.
    #[error("expected 5 or 6 fields, found {0}")]
    FieldCount(usize),
    /// Longer than any real expression.
    #[error("longer than {MAX_EXPR_BYTES} bytes")]
    TooLong,
    /// An `@word` that is not a known nickname.
    #[error(
        "unknown nickname {0} (use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)"
    )]
    Nickname(String),
    /// One field is wrong.
    #[error("{field} field: {reason}")]
    Field {
        /// `second`, `minute`, `hour`, `day-of-month`, `month` or `day-of-week`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed cron expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: Box<str>,
    /// second, minute, hour, day of month (1–31), month (1–12), weekday (0–6, 0 = Sunday).
    fields: [u64; 6],
    /// Vixie cron: both day fields restricted (neither starts with `*`), so
    /// a day matches if either matches.
    either_day: bool,
    /// Some month has a day that the day-of-month field allows.
    can_match: bool,
}

const SECOND: usize = 0;
const MINUTE: usize = 1;
const HOUR: usize = 2;
const DAY: usize = 3;
const MONTH: usize = 4;
const WEEKDAY: usize = 5;

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Name, range and value names (the first name is the lowest value).
type Field = (&'static str, u32, u32, &'static [&'static str]);
const FIELDS: [Field; 6] = [
    ("second", 0, 59, &[]),
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day-of-month", 1, 31, &[]),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 0, 7, DAYS),
];

const NICKNAMES: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

const ALL_HOURS: u64 = (1 << 24) - 1;

fn has(bits: u64, v: u32) -> bool {
    v < 64 && bits >> v & 1 == 1
}

/// The smallest value `>= from` in `bits`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    let rest = bits.checked_shr(from)? << from;
    (rest != 0).then(|| rest.trailing_zeros())
}

/// Digits only (`str::parse` also takes a `+`); `Err` if too large.
fn number(text: &str) -> Option<Result<u32, ()>> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().map_err(drop))
}

fn parse_field(text: &str, (field, lo, hi, names): Field) -> Result<u64, CronError> {
    let fail = |reason: String| CronError::Field { field, reason };
    let value = |t: &str| {
        let v = match (
            number(t),
            names.iter().position(|n| n.eq_ignore_ascii_case(t)),
        ) {
            (Some(n), _) => n.unwrap_or(u32::MAX),
            (None, Some(i)) => i as u32 + lo,
            (None, None) if names.is_empty() => {
                return Err(fail(format!("{} is not a number", shown(t))));
            }
            (None, None) => return Err(fail(format!("{} is not a number or a name", shown(t)))),
        };
        let out_of_range = || fail(format!("{t:.12} is out of range {lo}–{hi}"));
        (lo..=hi).contains(&v).then_some(v).ok_or_else(out_of_range)
    };
    let mut bits = 0;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            None => (item, None),
            Some((range, step)) => match number(step) {
                Some(Ok(n)) if (1..=hi).contains(&n) => (range, Some(n)),
                _ => {
                    return Err(fail(format!(
                        "step {} is not a number from 1 to {hi}",
                        shown(step)
                    )));
                }
            },
        };
        let (a, b) = match range.split_once('-') {
            _ if range == "*" => (lo, hi),
            Some((a, b)) => (value(a)?, value(b)?),
            None => value(range).map(|a| (a, if step.is_some() { hi } else { a }))?,
        };
        if a > b {
            return Err(fail(format!("range {range} goes backwards")));
        }
        for v in (a..=b).step_by(step.unwrap_or(1) as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

impl CronExpr {
    /// Parse `minute hour day-of-month month day-of-week`, optionally with
    /// `second` first, or a nickname (`@hourly`, `@daily`/`@midnight`,
    /// `@weekly`, `@monthly`, `@yearly`/`@annually`). Each field is a list of
    /// `*`, `a`, `a-b`, `*/n`, `a-b/n` or `a/n` (from `a` to the end); months
    /// and weekdays may be names (`jan`, `mon`); weekday 7 is Sunday.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        if expr.len() > MAX_EXPR_BYTES {
            return Err(CronError::TooLong);
        }
        let mut words: Vec<&str> = expr.split_whitespace().collect();
        let nickname = match words[..] {
            [word] if word.starts_with('@') => Some(word),
            _ => None,
        };
        let text = match nickname {
            Some(word) => {
                let found = NICKNAMES.iter().find(|n| n.0.eq_ignore_ascii_case(word));
                let (name, five) = found.ok_or_else(|| CronError::Nickname(shown(word)))?;
                words = five.split(' ').collect();
                name.to_string()
            }
            None => words.join(" "),
        };
        let skip = match words.len() {
            5 => 1,
            6 => 0,
            n => return Err(CronError::FieldCount(n)),
        };
        let mut fields = [1; 6]; // second 0 when there are 5 fields
        for (i, word) in words.iter().enumerate() {
            fields[i + skip] = parse_field(word, FIELDS[i + skip])?;
        }
        if has(fields[WEEKDAY], 7) {
            fields[WEEKDAY] = (fields[WEEKDAY] & 0x7f) | 1;
        }
        let either_day = !words[3 - skip].starts_with('*') && !words[5 - skip].starts_with('*');
        let fits =
            |m: u8| next_bit(fields[DAY], 1).is_some_and(|d| d <= days_in_month(2000, m).into());
        let can_match = either_day || (1..=12).any(|m| has(fields[MONTH], m.into()) && fits(m));
        Ok(Self {
            text: text.into(),
            fields,
            either_day,
            can_match,
        })
    }

    fn day_matches(&self, days: i64, day: u8) -> bool {
        let dom = has(self.fields[DAY], day.into());
        let dow = has(self.fields[WEEKDAY], weekday(days).into());
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// Whether the expression matches a wall-clock time.
    pub fn matches(&self, t: CivilDateTime) -> bool {
        let f = &self.fields;
        let time = has(f[HOUR], t.hour.into())
            && has(f[MINUTE], t.minute.into())
            && has(f[SECOND], t.second.into());
        time && has(f[MONTH], t.month.into())
            && self.day_matches(days_from_civil(t.year, t.month, t.day), t.day)
    }

    /// The first matching wall-clock second in `from..limit`: skips whole
    /// months, then days, then hours and minutes, never second by second.
    fn next_wall(&self, from: i64, limit: i64) -> Option<i64> {
        let f = &self.fields;
        let first = |i: usize| f[i].trailing_zeros();
        let mut t = from;
        while t < limit {
            let days = t.div_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            if !has(f[MONTH], m.into()) {
                let (y, m) =
                    next_bit(f[MONTH], u32::from(m) + 1).map_or((y + 1, first(MONTH)), |m| (y, m));
                t = days_from_civil(y, m as u8, 1) * 86_400;
                continue;
            }
            let sod = t.rem_euclid(86_400) as u32;
            let (h, min, s) = (sod / 3600, sod / 60 % 60, sod % 60);
            let same_hour = has(f[HOUR], h);
            let time = if !self.day_matches(days, d) {
                None
            } else if same_hour
                && has(f[MINUTE], min)
                && let Some(s) = next_bit(f[SECOND], s)
            {
                Some((h, min, s))
            } else if same_hour && let Some(min) = next_bit(f[MINUTE], min + 1) {
                Some((h, min, first(SECOND)))
            } else {
                next_bit(f[HOUR], h + 1).map(|h| (h, first(MINUTE), first(SECOND)))
            };
            let Some((h, min, s)) = time else {
                t = (days + 1) * 86_400;
                continue;
            };
            let found = days * 86_400 + i64::from(h * 3600 + min * 60 + s);
            return (found < limit).then_some(found);
        }
        None
    }

    /// The first instant strictly after `after_ms` (unix ms) at which the
    /// expression fires, by the wall clock of `tz`; `None` if it never does
    /// (`0 0 30 2 *`) or not within 400 years.
    ///
    /// Daylight saving time. An expression whose hour field allows every
    /// hour (`0 * * * *`, `*/15 * * * *`) is an *interval* job: it fires at
    /// every instant whose wall time matches, so across both transitions it
    /// keeps its rhythm in real time — a skipped hour is not made up (that
    /// would fire twice within one wall-clock hour) and the repeated hour
    /// fires again (otherwise a whole real hour would pass without a run).
    /// Any other expression is a *fixed-time* job (`30 2 * * *`): each
    /// matching wall time fires exactly once — a time that does not exist
    /// (spring forward) fires at the instant the gap ends, once however many
    /// matching times the gap swallowed, and a time that occurs twice (fall
    /// back) fires only at its first occurrence. This is what Vixie/ISC cron
    /// does for wildcard and fixed jobs.
    pub fn next_after(&self, after_ms: i64, tz: &TimeZone) -> Option<i64> {
        if !self.can_match {
            return None;
        }
        let first = after_ms.div_euclid(1000).checked_add(1)?;
        let limit = first.checked_add(HORIZON_SECONDS)?;
        let interval = self.fields[HOUR] == ALL_HOURS;
        let mut p = tz.period_at(first);
        let mut prev_off = if p.start == i64::MIN {
            p.off
        } else {
            tz.offset_at(p.start - 1)
        };
        loop {
            let (off, prev) = (i64::from(p.off), i64::from(prev_off));
            // A jump forward at or after `first` fires if it skipped a match.
            let jump = !interval && p.start >= first && off > prev;
            if jump && self.next_wall(p.start + prev, p.start + off).is_some() {
                return p.start.checked_mul(1000);
            }
            let mut from = p.start.max(first) + off;
            if !interval && p.start != i64::MIN {
                from = from.max(p.start.saturating_add(prev)); // repeats fired the first time
            }
            let end = p.end.min(limit);
            if let Some(wall) = self.next_wall(from, end + off) {
                return (wall - off).checked_mul(1000);
            }
            if end == limit {
                return None;
            }
            prev_off = p.off;
            p = tz.period_at(p.end);
        }
    }
}

impl std::fmt::Display for CronExpr {
    /// The expression as written (fields joined by one space).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::schedule::format_instant;
    use crate::automation::schedule::tz::tests::{at, zone};

    fn cron(text: &str) -> CronExpr {
        CronExpr::parse(text).unwrap()
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        let e = cron("*/15 9-17/4 1,15 jan-MAR Mon-fri");
        let [minutes, hours] = [1 | 1 << 15 | 1 << 30 | 1 << 45, 1 << 9 | 1 << 13 | 1 << 17];
        assert_eq!(
            e.fields,
            [1, minutes, hours, 1 << 1 | 1 << 15, 0b1110, 0b11_1110]
        );
        assert!(e.either_day && !cron("0 0 */2 * 1").either_day && !cron("0 0 1 * *").either_day);
        let weekdays = ["0 0 * * 7", "0 0 * * 5-7", "0 0 * * */2"].map(|t| cron(t).fields[WEEKDAY]);
        assert_eq!(weekdays, [1, 0b110_0001, 0b101_0101]);
        assert_eq!(
            cron("0 30/10 * * * *").fields[MINUTE],
            1 << 30 | 1 << 40 | 1 << 50
        );
        assert_eq!(cron("5 0 0 * * *").fields[SECOND], 1 << 5);
        assert_eq!(cron("  0   12 * *  *\t").to_string(), "0 12 * * *");
        assert_eq!(cron("@Daily").to_string(), "@daily");
        for (nick, five) in NICKNAMES {
            assert_eq!(cron(nick).fields, cron(five).fields);
        }
    }

    /// expression | error message
    const ERRORS: &str = r#"
        61 * * * *          | minute field: 61 is out of range 0–59
        * * *               | expected 5 or 6 fields, found 3
                            | expected 5 or 6 fields, found 0
        * * * * * * *       | expected 5 or 6 fields, found 7
        0 24 * * *          | hour field: 24 is out of range 0–23
        0 0 0 * *           | day-of-month field: 0 is out of range 1–31
        0 0 * foo *         | month field: "foo" is not a number or a name
        0 0 * * 8           | day-of-week field: 8 is out of range 0–7
        */0 * * * *         | minute field: step "0" is not a number from 1 to 59
        0 5-2 * * *         | hour field: range 5-2 goes backwards
        1,,2 * * * *        | minute field: "" is not a number
        +5 * * * *          | minute field: "+5" is not a number
        99999999999 * * * * | minute field: 99999999999 is out of range 0–59
        60 * * * * *        | second field: 60 is out of range 0–59
        @reboot             | unknown nickname "@reboot" (use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)"#;

    #[test]
    fn errors_name_the_field_and_the_problem() {
        for (text, message) in ERRORS.lines().skip(1).filter_map(|l| l.split_once(" | ")) {
            assert_eq!(
                CronExpr::parse(text).unwrap_err().to_string(),
                message.trim()
            );
        }
        assert_eq!(CronExpr::parse(&"*,".repeat(600)), Err(CronError::TooLong));
    }

    /// expression | zone | after (UTC) | the next runs (UTC)
    const RUNS: &str = "
        0 19 * * *     | UTC    | 2026-01-01T00:00Z | 2026-01-01T19:00Z 2026-01-02T19:00Z
        0 19 * * *     | UTC    | 2026-01-01T19:00Z | 2026-01-02T19:00Z
        */20 * * * * * | UTC    | 2026-01-01T00:00Z | 2026-01-01T00:00:20Z 2026-01-01T00:00:40Z 2026-01-01T00:01Z
        @monthly       | UTC    | 2026-01-01T00:00Z | 2026-02-01T00:00Z 2026-03-01T00:00Z
        0 0 31 * *     | UTC    | 2026-01-01T00:00Z | 2026-01-31T00:00Z 2026-03-31T00:00Z 2026-05-31T00:00Z
        59 23 31 12 *  | UTC    | 2026-01-01T00:00Z | 2026-12-31T23:59Z
        0 0 29 2 *     | UTC    | 2026-01-01T00:00Z | 2028-02-29T00:00Z 2032-02-29T00:00Z
        0 0 29 2 *     | UTC    | 2097-01-01T00:00Z | 2104-02-29T00:00Z
        0 0 13 * 5     | UTC    | 2026-01-01T00:00Z | 2026-01-02T00:00Z 2026-01-09T00:00Z 2026-01-13T00:00Z
        0 0 */13 * 5   | UTC    | 2026-01-01T00:00Z | 2026-02-27T00:00Z
        0 0 13 * *     | UTC    | 2026-01-01T00:00Z | 2026-01-13T00:00Z
        0 0 * * fri    | UTC    | 2026-01-01T00:00Z | 2026-01-02T00:00Z
        0 0 29 2 */7   | Berlin | 1970-01-01T00:00Z | 1976-02-28T23:00Z
        30 2 * * *     | Berlin | 2026-03-28T23:00Z | 2026-03-29T01:00Z 2026-03-30T00:30Z
        */15 2 * * *   | Berlin | 2026-03-28T23:00Z | 2026-03-29T01:00Z 2026-03-30T00:00Z
        0 2,3 * * *    | Berlin | 2026-03-28T23:00Z | 2026-03-29T01:00Z 2026-03-30T00:00Z
        0 * * * *      | Berlin | 2026-03-28T23:00Z | 2026-03-29T00:00Z 2026-03-29T01:00Z 2026-03-29T02:00Z
        30 * * * *     | Berlin | 2026-03-28T23:00Z | 2026-03-28T23:30Z 2026-03-29T00:30Z 2026-03-29T01:30Z
        30 2 * * *     | Berlin | 2026-10-24T23:00Z | 2026-10-25T00:30Z 2026-10-26T01:30Z
        30 2 * * *     | Berlin | 2026-10-25T01:01Z | 2026-10-26T01:30Z
        0 * * * *      | Berlin | 2026-10-24T23:00Z | 2026-10-25T00:00Z 2026-10-25T01:00Z 2026-10-25T02:00Z
        0 3 * * *      | Berlin | 2026-10-24T23:00Z | 2026-10-25T02:00Z
        0 2 * * *      | EST5EDT,M3.2.0,M11.1.0 | 2026-03-08T05:00Z | 2026-03-08T07:00Z 2026-03-09T06:00Z
        0 * * * *      | EST5EDT,M3.2.0,M11.1.0 | 2026-03-08T05:00Z | 2026-03-08T06:00Z 2026-03-08T07:00Z
        30 1 * * *     | EST5EDT,M3.2.0,M11.1.0 | 2026-11-01T04:00Z | 2026-11-01T05:30Z 2026-11-02T06:30Z
        0 * * * *      | EST5EDT,M3.2.0,M11.1.0 | 2026-11-01T04:00Z | 2026-11-01T05:00Z 2026-11-01T06:00Z 2026-11-01T07:00Z";

    /// UTC: strictly after; months without a 31st; leap days (2100 is no
    /// leap year); Vixie's OR of two restricted day fields, AND with a `*`
    /// one (a Friday the 1st, 14th or 27th; February 29 on a Sunday).
    /// Berlin (02:00 CET → 03:00 CEST on 2026-03-29, 03:00 CEST → 02:00 CET
    /// on 2026-10-25, both at 01:00 UTC) and New York (2026-03-08 07:00 UTC,
    /// 2026-11-01 06:00 UTC): a skipped fixed time fires once when the gap
    /// ends, a repeated one only the first time; hourly jobs every real hour.
    #[test]
    fn next_runs() {
        for row in RUNS
            .lines()
            .skip(1)
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        {
            let (e, tz, mut t) = (cron(row[0]), zone(row[1]), at(row[2]) * 1000);
            let runs = row[3].split(' ').map(|_| {
                t = e.next_after(t, &tz).unwrap();
                format_instant(t)
            });
            let want = row[3].split(' ').map(|w| format_instant(at(w) * 1000));
            assert_eq!(
                runs.collect::<Vec<_>>(),
                want.collect::<Vec<_>>(),
                "{row:?}"
            );
        }
        let (e, utc) = (cron("0 19 * * *"), zone("UTC"));
        let seven = at("2026-01-01T19:00Z") * 1000;
        assert_eq!(e.next_after(seven - 1, &utc), Some(seven));
    }

    #[test]
    fn never_matching_expressions_give_none_quickly() {
        for never in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 2 *"] {
            assert_eq!(cron(never).next_after(0, &zone("Berlin")), None, "{never}");
        }
        assert!(
            cron("0 0 30 2 1").next_after(0, &zone("UTC")).is_some(),
            "any Monday in February"
        );
        assert_eq!(
            cron("* * * * *").next_after(i64::MAX - 1, &zone("UTC")),
            None
        );
        assert!(
            cron("* * * * *")
                .next_after(i64::MIN, &zone("Berlin"))
                .is_some()
        );
    }

    /// The rules spelled out minute by minute: a wall time fires at each
    /// instant that shows it (interval) or the first one (fixed), and a
    /// fixed job fires at a jump forward if it skipped a matching time.
    fn slow_next(e: &CronExpr, tz: &TimeZone, after: i64, window: i64) -> Option<i64> {
        let interval = e.fields[HOUR] == ALL_HOURS;
        let matches = |wall: i64| e.matches(CivilDateTime::from_seconds(wall));
        let mut max_wall = i64::MIN;
        let start = (after - 3 * 3600).div_euclid(60) * 60;
        (start..=after + window).step_by(60).find(|&t| {
            let (off, prev) = (i64::from(tz.offset_at(t)), i64::from(tz.offset_at(t - 1)));
            let fresh = t + off > max_wall;
            max_wall = max_wall.max(t + off);
            let skipped = !interval && off > prev && (t + prev..t + off).step_by(60).any(matches);
            t > after && (matches(t + off) && (interval || fresh) || skipped)
        })
    }

    #[test]
    fn next_after_agrees_with_a_minute_by_minute_search() {
        let zones = "Berlin|EST5EDT,M3.2.0,M11.1.0|AEST-10AEDT,M10.1.0,M4.1.0/3|IST-1GMT0,M10.5.0,M3.5.0/1|\
            <+1030>-10:30<+11>-11,M10.1.0,M4.1.0|UTC";
        let changes = "2026-03-29T01:00Z 2026-10-25T01:00Z 2026-04-04T16:00Z 2026-10-03T16:00Z \
            2026-03-08T07:00Z 2026-11-01T06:00Z";
        let exprs = "0 * * * *|30 2 * * *|*/15 * * * *|*/15 2 * * *|0 3 * * *|0 2 * * 0|15 1-3 * * *|\
            0 0 * * *|59 1 * * *|* 2 * * *|0 */2 * * *|0 0 1 * *|*/7 1,2 * * *|0 0 29 * *";
        let mut seed = 0x2545_f491_u64;
        let mut random = |n: i64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as i64 % n
        };
        for tz in zones.split('|').map(zone) {
            for e in exprs.split('|').map(cron) {
                for change in changes.split(' ').map(at) {
                    let after = change + random(8 * 3600) - 4 * 3600;
                    let got = e
                        .next_after(after * 1000 + random(1000), &tz)
                        .map(|ms| ms / 1000);
                    let want = slow_next(&e, &tz, after, 26 * 3600);
                    let ok = want.map_or(got > Some(after + 26 * 3600), |w| got == Some(w));
                    assert!(ok, "{e} in {tz:?} after {after}: {got:?}, not {want:?}");
                }
            }
        }
    }
}
