//! POSIX TZ rules such as `CET-1CEST,M3.5.0,M10.5.0/3`, with the RFC 8536
//! §3.3.1 extensions (rule times from −167 h to 167 h). They are the footer of
//! a TZif file, which governs every instant after its last transition, and a
//! possible value of the `TZ` variable.

use super::civil::{civil_from_days, days_from_civil, days_in_month, is_leap, weekday};
use super::tz::{Period, TzError};

/// A parsed rule: standard offset and, if the zone has one, daylight time.
/// Offsets are seconds east of UTC (POSIX writes them west, with the sign flipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PosixTz {
    std: i32,
    dst: Option<Dst>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dst {
    off: i32,
    start: Rule,
    end: Rule,
}

/// A change: a day of the year and the local time of day it happens at
/// (seconds, possibly negative or past 24 h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    day: Day,
    time: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Day {
    /// `Jn`: 1–365, February 29 never counted.
    Julian(u16),
    /// `n`: 0–365, February 29 counted.
    Zero(u16),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
    Month(u8, u8, u8),
}

fn bad(what: &'static str) -> TzError {
    TzError::Posix(what)
}

/// The unread rest of the rule.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.0 = &self.0[1..];
        }
        hit
    }

    fn need(&mut self, c: u8) -> Result<(), TzError> {
        self.eat(c)
            .then_some(())
            .ok_or(bad("a rule is Mm.w.d, Jn or n, twice, after a comma"))
    }

    /// Bytes up to the first one not matching `keep`.
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &[u8] {
        let (taken, rest) = self.0.split_at(
            self.0
                .iter()
                .position(|&c| !keep(c))
                .unwrap_or(self.0.len()),
        );
        self.0 = rest;
        taken
    }

    /// An abbreviation: 3+ letters, or `<…>` of 3+ letters, digits, `+`, `-`.
    fn name(&mut self) -> Result<(), TzError> {
        let quoted = self.eat(b'<');
        let other = |c: u8| quoted && (c.is_ascii_digit() || c == b'+' || c == b'-');
        let len = self
            .take_while(|c| c.is_ascii_alphabetic() || other(c))
            .len();
        if len < 3 || quoted && !self.eat(b'>') {
            return Err(bad("a zone abbreviation needs 3 or more letters (or <…>)"));
        }
        Ok(())
    }

    fn num(&mut self, lo: u32, hi: u32) -> Result<u32, TzError> {
        let digits = self.take_while(|c| c.is_ascii_digit());
        let n = digits.iter().fold(0_u32, |n, &d| {
            n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        });
        if digits.is_empty() || !(lo..=hi).contains(&n) {
            return Err(bad("a number is missing or out of range"));
        }
        Ok(n)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, with hours up to `max_h`.
    fn hms(&mut self, max_h: u32) -> Result<i32, TzError> {
        let negative = self.eat(b'-');
        if !negative {
            self.eat(b'+');
        }
        let mut secs = self.num(0, max_h)? * 3600;
        if self.eat(b':') {
            secs += self.num(0, 59)? * 60;
            if self.eat(b':') {
                secs += self.num(0, 59)?;
            }
        }
        let secs = secs as i32; // at most 167 h 59 min 59 s
        Ok(if negative { -secs } else { secs })
    }

    fn rule(&mut self) -> Result<Rule, TzError> {
        let day = if self.eat(b'J') {
            Day::Julian(self.num(1, 365)? as u16)
        } else if self.eat(b'M') {
            let m = self.num(1, 12)? as u8;
            self.need(b'.')?;
            let w = self.num(1, 5)? as u8;
            self.need(b'.')?;
            Day::Month(m, w, self.num(0, 6)? as u8)
        } else {
            Day::Zero(self.num(0, 365)? as u16)
        };
        let time = if self.eat(b'/') { self.hms(167)? } else { 7200 };
        Ok(Rule { day, time })
    }
}

impl Rule {
    /// Seconds from January 1 00:00 (local) of `year` to this change.
    fn seconds_in_year(&self, year: i64) -> i64 {
        let day = match self.day {
            Day::Julian(n) => i64::from(n) - 1 + i64::from(is_leap(year) && n >= 60),
            Day::Zero(n) => i64::from(n),
            Day::Month(m, w, d) => {
                let first = days_from_civil(year, m, 1);
                let mut dd = (i64::from(d) - i64::from(weekday(first))).rem_euclid(7);
                for _ in 1..w {
                    if dd + 7 >= i64::from(days_in_month(year, m)) {
                        break;
                    }
                    dd += 7;
                }
                first - days_from_civil(year, 1, 1) + dd
            }
        };
        day * 86_400 + i64::from(self.time)
    }
}

impl PosixTz {
    /// Parse a rule. Without a `,start,end` part a zone with daylight time
    /// uses the US rule `M3.2.0,M11.1.0`, as the reference tzcode does.
    pub(crate) fn parse(spec: &str) -> Result<Self, TzError> {
        let mut c = Cursor(spec.as_bytes());
        c.name()?;
        let std = -c.hms(24)?;
        let dst = if c.peek().is_none() {
            None
        } else {
            c.name()?;
            let off = match c.peek() {
                Some(b'0'..=b'9' | b'+' | b'-') => -c.hms(24)?,
                _ => std + 3600,
            };
            let us = |month, week| Rule {
                day: Day::Month(month, week, 0),
                time: 7200,
            };
            let (mut start, mut end) = (us(3, 2), us(11, 1));
            if c.eat(b',') {
                start = c.rule()?;
                c.need(b',')?;
                end = c.rule()?;
            }
            Some(Dst { off, start, end })
        };
        if c.peek().is_some() {
            return Err(bad("unexpected text after the rule"));
        }
        let zone = Self { std, dst };
        // The calendar repeats every 400 years: a rule without a change in
        // them has none at all and is daylight time all year (tzcode).
        match dst {
            Some(d) if (2000..2400).all(|y| zone.changes(&d, y) == [None, None]) => Ok(Self {
                std: d.off,
                dst: None,
            }),
            _ => Ok(zone),
        }
    }

    /// The standard and the daylight offset (the same twice without daylight time).
    pub(crate) fn offsets(&self) -> [i32; 2] {
        [self.std, self.dst.map_or(self.std, |d| d.off)]
    }

    /// A year's changes `(instant, to daylight time)`, as the reference
    /// tzcode computes them: none when daylight time would last a whole year
    /// or more (or not at all).
    fn changes(&self, dst: &Dst, year: i64) -> [Option<(i64, bool)>; 2] {
        let jan1 = days_from_civil(year, 1, 1).saturating_mul(86_400);
        let mut start = dst.start.seconds_in_year(year) - i64::from(self.std);
        let mut end = dst.end.seconds_in_year(year) - i64::from(dst.off);
        let reversed = end < start;
        if reversed {
            std::mem::swap(&mut start, &mut end);
        }
        let year_secs = (365 + i64::from(is_leap(year))) * 86_400;
        if !reversed && (start == end || end - start >= year_secs) {
            return [None, None];
        }
        [
            Some((jan1.saturating_add(start), !reversed)),
            Some((jan1.saturating_add(end), reversed)),
        ]
    }

    /// The period containing `t`: from the last change at or before it to
    /// the next one. A change may land in a neighbouring year, and some
    /// years have none (but one in any 400 years: see `parse`).
    pub(crate) fn period_at(&self, t: i64) -> Period {
        let Some(dst) = self.dst else {
            return Period::always(self.std);
        };
        let year = civil_from_days(t.div_euclid(86_400)).0;
        // The latest change at or before `t` (`before`), or the earliest after
        // it, searching until the year beyond the first year with one.
        let search = |years: &mut dyn Iterator<Item = i64>, before: bool| {
            let wanted = |at: i64| if before { at <= t } else { at > t };
            let closer = |at: i64, than: i64| if before { at > than } else { at < than };
            let (mut best, mut hit_year): (Option<(i64, bool)>, Option<i64>) = (None, None);
            for y in years {
                if hit_year.is_some_and(|h: i64| h.abs_diff(y) > 1) {
                    break;
                }
                for (at, to_dst) in self.changes(&dst, y).into_iter().flatten() {
                    if wanted(at) && best.is_none_or(|b| closer(at, b.0)) {
                        (best, hit_year) = (Some((at, to_dst)), hit_year.or(Some(y)));
                    }
                }
            }
            best
        };
        let last = search(&mut (year - 401..=year + 1).rev(), true);
        let next = search(&mut (year - 1..=year + 401), false);
        let off = last.is_some_and(|c| c.1); // none: before all changes
        let start = last.map_or(i64::MIN, |c| c.0);
        let end = next.map_or(i64::MAX, |c| c.0);
        Period {
            start,
            end,
            off: if off { dst.off } else { self.std },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::schedule::tz::tests::at;

    /// rule | a change (UTC) | offset before it | from it on
    const CHANGES: &str = "
        CET-1CEST,M3.5.0,M10.5.0/3      | 2026-03-29T01:00Z | 3600   | 7200
        CET-1CEST,M3.5.0,M10.5.0/3      | 2026-10-25T01:00Z | 7200   | 3600
        EST5EDT,M3.2.0,M11.1.0          | 2026-03-08T07:00Z | -18000 | -14400
        EST5EDT,M3.2.0,M11.1.0          | 2026-11-01T06:00Z | -14400 | -18000
        EST5EDT                         | 2026-03-08T07:00Z | -18000 | -14400
        AEST-10AEDT,M10.1.0,M4.1.0/3    | 2026-04-04T16:00Z | 39600  | 36000
        AEST-10AEDT,M10.1.0,M4.1.0/3    | 2026-10-03T16:00Z | 36000  | 39600
        IST-1GMT0,M10.5.0,M3.5.0/1      | 2026-03-29T01:00Z | 0      | 3600
        IST-1GMT0,M10.5.0,M3.5.0/1      | 2026-10-25T01:00Z | 3600   | 0
        <-02>2<-01>,M3.5.0/-1,M10.5.0/0 | 2026-03-29T01:00Z | -7200  | -3600
        EST5EDT,M3.2.0/25,M11.1.0       | 2026-03-09T06:00Z | -18000 | -14400
        AAA0BBB,J60/0,J300/0            | 2028-03-01T00:00Z | 0      | 3600
        AAA0BBB,59/0,300/0              | 2028-02-29T00:00Z | 0      | 3600
        AAA0BBB,59/0,300/0              | 2027-03-01T00:00Z | 0      | 3600
        <+0330>-3:30                    | 2026-06-01T00:00Z | 12600  | 12600
        <-03>3                          | 1970-01-01T00:00Z | -10800 | -10800
        EST5EDT,0/0,J365/25             | 2028-12-31T23:00Z | -14400 | -14400
        EST5EDT,0/0,J365/25             | 2029-01-01T05:00Z | -14400 | -14400";

    /// The default US rule; `/-1` and `/25` (RFC 8536); `Jn` never counts
    /// February 29, zero-based `n` does; daylight time all year.
    #[test]
    fn changes_of_real_and_edge_rules() {
        for row in CHANGES
            .lines()
            .skip(1)
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        {
            let rule = PosixTz::parse(row[0]).unwrap();
            let t = at(row[1]);
            let offsets = [rule.period_at(t - 1).off, rule.period_at(t).off];
            assert_eq!(offsets.map(|o| o.to_string()), [row[2], row[3]], "{row:?}");
        }
        let summer = PosixTz::parse("CET-1CEST,M3.5.0,M10.5.0/3")
            .unwrap()
            .period_at(at("2026-06-01T00:00Z"));
        assert_eq!(
            (summer.start, summer.end),
            (at("2026-03-29T01:00Z"), at("2026-10-25T01:00Z"))
        );
    }

    /// Found by the `tzif` fuzz target: in years where the 4th Sunday of
    /// March is the last one, this rule has no change, and periods computed
    /// from neighbouring years disagreed about the offset in between.
    #[test]
    fn every_instant_of_a_period_has_its_offset() {
        let rules = [
            "ICT-1GMT0,M03.4.0,M3.5.0/1",
            "AAA0BBB,0/0,365/0",
            "CET-1CEST,M3.5.0,M10.5.0/3",
        ];
        for rule in rules.map(|r| PosixTz::parse(r).unwrap()) {
            for t in (at("1899-01-01T00:00Z")..at("1910-01-01T00:00Z")).step_by(86_400 * 5 + 3607) {
                let p = rule.period_at(t);
                assert!(p.start <= t && t < p.end, "{rule:?} at {t}");
                for u in [p.start, t - 1, t + 1, p.end - 1]
                    .into_iter()
                    .filter(|u| (p.start..p.end).contains(u))
                {
                    assert_eq!(rule.period_at(u).off, p.off, "{rule:?} at {u}, in {p:?}");
                }
            }
        }
    }

    #[test]
    fn malformed_rules_are_refused() {
        let bad = "|CET|CE-1|CET-1CEST,M3.5.0|CET-1CEST,M13.5.0,M10.5.0|CET-1CEST,M3.6.0,M10.5.0|\
            CET-1CEST,M3.5.7,M10.5.0|CET-1CEST,J0,J365|CET-1CEST,366,1|CET25|<+03-3|<ab>1|\
            CET-1CEST,M3.5.0/168,M10.5.0|CET-1 x|CET-1CEST,M3,M10.5.0|CET-1CEST,M3.5,M10.5.0";
        for rule in bad.split('|') {
            assert!(PosixTz::parse(rule).is_err(), "{rule:?}");
        }
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let z = PosixTz::parse("<-24>24<+24>-24,J1/-167,J365/167").unwrap();
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let p = z.period_at(t);
            assert!(
                p.start <= t && (t < p.end || p.end == i64::MAX),
                "{t}: {p:?}"
            );
        }
    }
}
