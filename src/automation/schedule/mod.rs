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
