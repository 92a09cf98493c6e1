//! `automation::schedule::CronExpr::parse` on any (lossy UTF-8) text. An
//! accepted expression prints text that parses back the same, and its
//! `next_after` from a few instants (fixed ones around DST changes, the
//! extremes, one from the input), in UTC and in a POSIX-rule zone, is a
//! whole second later than the instant at which the expression matches the
//! wall clock (or the end of a gap that swallowed a match), and asking again
//! from just before it gives it again (nothing fires in between).
//!
//! The same text also goes through the other schedule parsers: an `every`
//! duration is positive, within its cap, and formats to text that parses
//! back to it; an `at` instant (in UTC and in the zone) formats to RFC 3339
//! that parses back to it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::automation::schedule::{
    CivilDateTime, CronExpr, TimeZone, format_duration, format_instant, parse_duration,
    parse_instant,
};
use pinclaw::limits::SCHEDULE_MAX_EVERY;

fn other_parsers(text: &str, zones: &[TimeZone]) {
    if let Ok(d) = parse_duration(text) {
        assert!(!d.is_zero() && d <= SCHEDULE_MAX_EVERY, "{text:?}: {d:?}");
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text:?}");
    }
    for tz in zones {
        if let Ok(ms) = parse_instant(text, tz) {
            assert_eq!(parse_instant(&format_instant(ms), tz), Ok(ms), "{text:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let zones = [
        TimeZone::utc(),
        TimeZone::from_posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap(),
    ];
    other_parsers(&text, &zones);
    let Ok(expr) = CronExpr::parse(&text) else {
        return;
    };
    assert_eq!(CronExpr::parse(&expr.to_string()).as_ref(), Ok(&expr));
    let hash = data
        .iter()
        .fold(0_i64, |h, &b| h.wrapping_mul(31).wrapping_add(i64::from(b)));
    let instants = [
        0,
        1_774_745_999_999, // 2026-03-29 00:59:59.999 UTC, before Berlin springs forward
        1_792_886_400_000, // 2026-10-25 00:00 UTC, before Berlin falls back
        hash % 6_000_000_000_000,
        -1,
        i64::MIN,
        i64::MAX,
    ];
    for tz in &zones {
        for after in instants {
            let Some(next) = expr.next_after(after, tz) else {
                continue;
            };
            assert!(
                next > after && next % 1000 == 0,
                "{expr} after {after}: {next}"
            );
            let s = next / 1000;
            let wall = CivilDateTime::from_seconds(s + i64::from(tz.offset_at(s)));
            let gap_end = tz.offset_at(s - 1) < tz.offset_at(s);
            assert!(
                expr.matches(wall) || gap_end,
                "{expr} after {after}: {next} does not match"
            );
            assert_eq!(
                expr.next_after(next - 1, tz),
                Some(next),
                "{expr} after {after}"
            );
        }
    }
});
