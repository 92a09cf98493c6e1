//! `automation::schedule::TimeZone::from_tzif` on any bytes and
//! `TimeZone::from_posix` on any (lossy UTF-8) text. Neither may panic; for
//! an accepted zone `offset_at` stays under 26 h either way over 1900–2100
//! and at the extremes, and every instant `local_to_utc` returns shows the
//! wall time asked for (two of them in order).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::automation::schedule::{CivilDateTime, LocalResult, TimeZone};

fuzz_target!(|data: &[u8]| {
    let zones = [
        TimeZone::from_tzif("fuzz", data).ok(),
        TimeZone::from_posix(&String::from_utf8_lossy(data)).ok(),
    ];
    for tz in zones.into_iter().flatten() {
        let shows = |t: i64| t + i64::from(tz.offset_at(t));
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            assert!(tz.offset_at(t).unsigned_abs() < 26 * 3600);
        }
        // 1900 to 2100 in steps of about 3 weeks, each at an hour's turn.
        for t in (-2_208_988_800_i64..4_102_444_800).step_by(1_814_400 + 3600) {
            assert!(tz.offset_at(t).unsigned_abs() < 26 * 3600);
            let wall = CivilDateTime::from_seconds(t);
            match tz.local_to_utc(wall) {
                LocalResult::Unique(u) => assert_eq!(shows(u), t),
                LocalResult::Ambiguous(a, b) => assert!(a < b && shows(a) == t && shows(b) == t),
                LocalResult::Gap { .. } => {}
            }
        }
    }
});
