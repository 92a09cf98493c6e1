//! Schedule arithmetic for automations and OpenClaw's cron jobs: when a
//! `cron`, `every` or `at` schedule fires next, by which time zone's clock,
//! and what came due while the gateway was down. Pure code; the only I/O is
//! reading a zoneinfo file (`TimeZone::named`, `TimeZone::local`).

pub mod civil;
pub mod cron;
pub mod every;
mod posix;
pub mod tz;

pub use civil::CivilDateTime;
pub use cron::{CronError, CronExpr};
pub use every::{format_duration, format_instant, parse_duration, parse_instant};
pub use tz::{LocalResult, TimeZone, TzError};

use crate::limits::SCHEDULE_MAX_MISSED_COUNT;
use std::fmt;

/// Why an `every` or `at` value was refused (the text reaches users as is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A bad `every` duration.
    #[error("duration {text}: {reason}")]
    Duration {
        /// The input, quoted and shortened.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bad `at` time.
    #[error("time {text}: {reason}")]
    Instant {
        /// The input, quoted and shortened.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Outside text quoted for an error message, cut to 40 characters.
pub(crate) fn shown(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// When a job fires. All instants are unix milliseconds.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// At each matching wall-clock time of `tz` (see `CronExpr::next_after`).
    Cron {
        /// The expression.
        expr: CronExpr,
        /// Whose clock it reads.
        tz: TimeZone,
    },
    /// At `anchor_ms + k * every_ms` for every whole `k` (never if `every_ms` is 0).
    Every {
        /// The interval.
        every_ms: u64,
        /// One instant of the series (OpenClaw: the job's creation by default).
        anchor_ms: i64,
    },
    /// Once.
    At {
        /// The instant.
        at_ms: i64,
    },
}

/// Runs of a schedule that came due in a span (see `Schedule::missed_between`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The first of them.
    pub first_ms: i64,
    /// How many; for cron at most `limits::SCHEDULE_MAX_MISSED_COUNT`.
    pub count: u64,
    /// Counting stopped at the cap: there were more than `count`.
    pub capped: bool,
}

impl Schedule {
    /// The first run strictly after `after_ms`; `None` when there is none
    /// (an `at` in the past, a cron expression that never matches, beyond
    /// the range of `i64` milliseconds). An `every` series runs at its
    /// anchor if `after_ms` is before it.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match *self {
            Self::Cron { ref expr, ref tz } => expr.next_after(after_ms, tz),
            Self::Every {
                every_ms,
                anchor_ms,
            } => {
                if every_ms == 0 {
                    return None;
                }
                if after_ms < anchor_ms {
                    return Some(anchor_ms);
                }
                let every = i128::from(every_ms);
                let steps = (i128::from(after_ms) - i128::from(anchor_ms)) / every + 1;
                i64::try_from(i128::from(anchor_ms) + steps * every).ok()
            }
            Self::At { at_ms } => (at_ms > after_ms).then_some(at_ms),
        }
    }

    /// The runs due in `from_ms < t <= to_ms`, where `from_ms` is when the
    /// schedule was last looked at (its last run, or when the gateway went
    /// down) and `to_ms` is now; `None` if nothing came due. The engine
    /// fires a missed job **once**, at start, and reports `count` (and
    /// `first_ms`) rather than running it `count` times. `every` and `at`
    /// are counted exactly; cron runs one by one up to
    /// `limits::SCHEDULE_MAX_MISSED_COUNT`, then `capped` is set.
    pub fn missed_between(&self, from_ms: i64, to_ms: i64) -> Option<Missed> {
        let first_ms = self.next_after(from_ms).filter(|&t| t <= to_ms)?;
        let (mut count, mut capped) = (1, false);
        match *self {
            Self::Every { every_ms, .. } => {
                let more = (i128::from(to_ms) - i128::from(first_ms)) / i128::from(every_ms);
                count = u64::try_from(more + 1).unwrap_or(u64::MAX);
            }
            Self::At { .. } => {}
            Self::Cron { .. } => {
                let mut t = first_ms;
                while let Some(next) = self.next_after(t).filter(|&n| n <= to_ms) {
                    if count == SCHEDULE_MAX_MISSED_COUNT {
                        capped = true;
                        break;
                    }
                    (t, count) = (next, count + 1);
                }
            }
        }
        Some(Missed {
            first_ms,
            count,
            capped,
        })
    }
}

impl fmt::Display for Schedule {
    /// The schedule as the config's `when` table writes it:
    /// `cron = "0 19 * * *", tz = "Europe/Berlin"`, `every = "15m"` (the
    /// anchor is not shown), `at = "2026-12-24T17:00:00Z"` (in UTC).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cron { expr, tz } => {
                write!(f, "cron = {:?}, tz = {:?}", expr.to_string(), tz.name())
            }
            Self::Every { every_ms, .. } => {
                write!(
                    f,
                    "every = {:?}",
                    format_duration(std::time::Duration::from_millis(*every_ms))
                )
            }
            Self::At { at_ms } => write!(f, "at = {:?}", format_instant(*at_ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tz::tests::{at, zone};

    #[test]
    fn every_and_at() {
        let every = Schedule::Every {
            every_ms: 900_000,
            anchor_ms: 1_000,
        };
        assert_eq!(
            every.next_after(0),
            Some(1_000),
            "before the anchor: the anchor"
        );
        assert_eq!(every.next_after(1_000), Some(901_000));
        assert_eq!(every.next_after(900_999), Some(901_000));
        assert_eq!(every.next_after(901_000), Some(1_801_000));
        assert_eq!(
            Schedule::Every {
                every_ms: 0,
                anchor_ms: 0
            }
            .next_after(0),
            None
        );
        let wide = Schedule::Every {
            every_ms: u64::MAX,
            anchor_ms: i64::MIN,
        };
        assert_eq!(
            [0, i64::MAX].map(|t| wide.next_after(t)),
            [Some(i64::MAX), None]
        );
        let all = Schedule::Every {
            every_ms: 1,
            anchor_ms: i64::MIN,
        };
        let all = all.missed_between(i64::MIN, i64::MAX).unwrap();
        assert_eq!((all.first_ms, all.count), (i64::MIN + 1, u64::MAX));
        // Down from 00:10 to 01:00: the runs at 00:15:01, 00:30:01 and 00:45:01.
        let missed = every.missed_between(600_000, 3_600_000);
        assert_eq!(
            missed,
            Some(Missed {
                first_ms: 901_000,
                count: 3,
                capped: false
            })
        );
        assert_eq!(every.missed_between(600_000, 600_001), None);
        let at = Schedule::At { at_ms: 5_000 };
        assert_eq!(
            [4_999, 5_000].map(|t| at.next_after(t)),
            [Some(5_000), None]
        );
        let once = Missed {
            first_ms: 5_000,
            count: 1,
            capped: false,
        };
        assert_eq!(at.missed_between(0, 5_000), Some(once));
        assert_eq!(at.missed_between(5_000, 9_000), None);
    }

    #[test]
    fn cron_missed_runs_are_counted_up_to_the_cap() {
        let expr = CronExpr::parse("0 19 * * *").unwrap();
        let daily = Schedule::Cron {
            expr,
            tz: zone("Berlin"),
        };
        let (from, to) = (
            at("2026-01-01T00:00Z") * 1000,
            at("2026-01-10T18:00Z") * 1000,
        );
        let missed = daily.missed_between(from, to).unwrap();
        assert_eq!(
            (missed.first_ms, missed.count),
            (at("2026-01-01T18:00Z") * 1000, 10)
        );
        assert_eq!(daily.missed_between(to, to + 1), None);
        let expr = CronExpr::parse("* * * * * *").unwrap();
        let often = Schedule::Cron {
            expr,
            tz: TimeZone::utc(),
        };
        let cap = SCHEDULE_MAX_MISSED_COUNT;
        let m = often.missed_between(0, 86_400_000).unwrap();
        assert_eq!((m.first_ms, m.count, m.capped), (1_000, cap, true));
        let m = often.missed_between(0, cap as i64 * 1000).unwrap();
        assert_eq!((m.count, m.capped), (cap, false));
    }

    #[test]
    fn display_writes_the_config_text() {
        let expr = CronExpr::parse("0  19 * * *").unwrap();
        let cron = Schedule::Cron {
            expr,
            tz: zone("Berlin"),
        };
        assert_eq!(
            cron.to_string(),
            r#"cron = "0 19 * * *", tz = "Europe/Berlin""#
        );
        let every = Schedule::Every {
            every_ms: 5_400_000,
            anchor_ms: 0,
        };
        assert_eq!(every.to_string(), r#"every = "1h30m""#);
        let at_ms = at("2026-12-24T18:00:00+01:00") * 1000;
        assert_eq!(
            Schedule::At { at_ms }.to_string(),
            r#"at = "2026-12-24T17:00:00Z""#
        );
        assert_eq!(shown(&"x".repeat(100)), format!("{:?}…", "x".repeat(40)));
    }
}
