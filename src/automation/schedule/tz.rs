//! Time zones: a zoneinfo file (TZif, RFC 8536, versions 1–4) with its POSIX
//! footer, or a POSIX rule alone; the UTC offset at an instant and the
//! instants a wall-clock time names.

use super::civil::CivilDateTime;
use super::posix::PosixTz;
use super::shown;
use crate::limits::MAX_TZIF_BYTES;
use std::path::Path;
use std::sync::Arc;

/// Largest UTC offset taken from a file, either way (RFC 8536 §3.2: under 26 h).
const MAX_OFFSET: i32 = 26 * 3600 - 1;

/// Longest zone name or POSIX rule accepted.
const MAX_NAME: usize = 255;

/// Why a time zone could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TzError {
    /// The name is not a plain zoneinfo name.
    #[error("time zone name {0} is not allowed (letters, digits and _ + - /; no leading / or ..)")]
    BadName(String),
    /// No such file in the zoneinfo directory.
    #[error("unknown time zone {0}")]
    NotFound(String),
    /// The file exists but could not be read.
    #[error("time zone {0}: {1}")]
    Io(String, String),
    /// The file is over `limits::MAX_TZIF_BYTES`.
    #[error("time zone file is over {MAX_TZIF_BYTES} bytes")]
    TooLarge,
    /// The bytes are not a valid TZif file.
    #[error("invalid time zone file: {0}")]
    Tzif(&'static str),
    /// The text is not a valid POSIX TZ rule.
    #[error("invalid POSIX TZ rule: {0}")]
    Posix(&'static str),
}

/// The instants that a wall-clock time names in a zone (unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalResult {
    /// Exactly one instant.
    Unique(i64),
    /// Two instants (the clock was set back over it): the earlier, the later.
    Ambiguous(i64, i64),
    /// None (the clock jumped over it); `ends_at` is the instant of the jump.
    Gap {
        /// The first instant after the gap.
        ends_at: i64,
    },
}

/// Instants `start..end` with one UTC offset (`i64::MIN`/`i64::MAX`: unbounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Period {
    pub start: i64,
    pub end: i64,
    pub off: i32,
}

impl Period {
    /// All instants.
    pub(crate) fn always(off: i32) -> Self {
        Self {
            start: i64::MIN,
            end: i64::MAX,
            off,
        }
    }
}

struct Zone {
    name: Box<str>,
    /// Offset before the first transition (or always, without transitions or rule).
    initial: i32,
    /// `(instant, offset from then on)`, strictly ascending.
    transitions: Box<[(i64, i32)]>,
    /// Governs from the last transition on (all instants without transitions).
    rule: Option<PosixTz>,
    min_off: i32,
    max_off: i32,
}

/// A time zone. Cloning shares the data.
#[derive(Clone)]
pub struct TimeZone(Arc<Zone>);

impl TimeZone {
    fn new(name: &str, initial: i32, transitions: Vec<(i64, i32)>, rule: Option<PosixTz>) -> Self {
        let offsets = transitions
            .iter()
            .map(|t| t.1)
            .chain(rule.iter().flat_map(|r| r.offsets()));
        let (min_off, max_off) =
            offsets.fold((initial, initial), |(lo, hi), o| (lo.min(o), hi.max(o)));
        let (name, transitions) = (name.into(), transitions.into());
        Self(Arc::new(Zone {
            name,
            initial,
            transitions,
            rule,
            min_off,
            max_off,
        }))
    }

    /// Coordinated Universal Time.
    pub fn utc() -> Self {
        Self::new("UTC", 0, Vec::new(), None)
    }

    /// A POSIX TZ rule such as `CET-1CEST,M3.5.0,M10.5.0/3`; it is also the name.
    pub fn from_posix(spec: &str) -> Result<Self, TzError> {
        if spec.len() > MAX_NAME {
            return Err(TzError::Posix("longer than 255 bytes"));
        }
        let rule = PosixTz::parse(spec)?;
        Ok(Self::new(spec, rule.offsets()[0], Vec::new(), Some(rule)))
    }

    /// An IANA zone (`Europe/Berlin`) from `$TZDIR`, else `/usr/share/zoneinfo`.
    /// The name is outside input: only `[A-Za-z0-9_+-/]`, no leading `/`, no
    /// `..`. `UTC` and `Etc/UTC` work without a zoneinfo directory.
    pub fn named(name: &str) -> Result<Self, TzError> {
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-/".contains(&b));
        if !plain
            || name.is_empty()
            || name.len() > MAX_NAME
            || name.starts_with('/')
            || name.split('/').any(|p| p == "..")
        {
            return Err(TzError::BadName(shown(name)));
        }
        let dir = std::env::var_os("TZDIR").filter(|d| !d.is_empty());
        let dir = dir.unwrap_or_else(|| "/usr/share/zoneinfo".into());
        match read_capped(&Path::new(&dir).join(name), name) {
            Ok(bytes) => Self::from_tzif(name, &bytes),
            Err(TzError::NotFound(_)) if name == "UTC" || name == "Etc/UTC" => Ok(Self::utc()),
            Err(e) => Err(e),
        }
    }

    /// The system's zone: `TZ` (a zone name, a file path after `:`, or a
    /// POSIX rule; set but empty means UTC), else `/etc/localtime`, else UTC.
    pub fn local() -> Self {
        if let Some(tz) = std::env::var_os("TZ") {
            let tz = tz.to_string_lossy();
            let name = tz.strip_prefix(':').unwrap_or(&tz);
            let zone = if name.is_empty() {
                Ok(Self::utc())
            } else if name.starts_with('/') {
                read_capped(Path::new(name), name).and_then(|b| Self::from_tzif(name, &b))
            } else {
                Self::named(name).or_else(|_| Self::from_posix(name))
            };
            if let Ok(zone) = zone {
                return zone;
            }
        }
        let link = std::fs::read_link("/etc/localtime").ok();
        let name = link
            .as_ref()
            .and_then(|p| p.to_str()?.split_once("zoneinfo/"))
            .map_or("localtime", |s| s.1);
        read_capped(Path::new("/etc/localtime"), name)
            .and_then(|b| Self::from_tzif(name, &b))
            .unwrap_or_else(|_| Self::utc())
    }

    /// Parse TZif data (RFC 8536). Version 1 uses its 32-bit block; 2–4 use
    /// the 64-bit block and the POSIX footer. Every count is checked against
    /// the bytes present, and the data may not exceed `MAX_TZIF_BYTES`.
    /// Files with leap-second records (`right/…`) are refused.
    pub fn from_tzif(name: &str, bytes: &[u8]) -> Result<Self, TzError> {
        if bytes.len() > MAX_TZIF_BYTES {
            return Err(TzError::TooLarge);
        }
        let mut data = Bytes(bytes);
        let (version, counts) = data.header()?;
        if version == 0 {
            let (initial, transitions) = data.block(counts, 4)?;
            return Ok(Self::new(name, initial, transitions, None));
        }
        let [isut, isstd, leap, time, types, chars] = counts; // each below 2^32
        data.take(5 * time + 8 * leap + 6 * types + chars + isstd + isut)?; // the v1 block
        let (_, counts) = data.header()?;
        let (initial, transitions) = data.block(counts, 8)?;
        let mut lines = data.0.split(|&b| b == b'\n'); // "\n<footer>\n"
        let footer = match (lines.next(), lines.next(), lines.next()) {
            (Some([]), Some(footer), Some(_)) => std::str::from_utf8(footer).ok(),
            _ => None,
        };
        let footer = footer.ok_or(TzError::Tzif("no footer line"))?;
        let rule = (!footer.is_empty())
            .then(|| PosixTz::parse(footer))
            .transpose()?;
        Ok(Self::new(name, initial, transitions, rule))
    }

    /// The zone's name (or its POSIX rule).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Seconds east of UTC at the instant `unix_s`.
    pub fn offset_at(&self, unix_s: i64) -> i32 {
        self.period_at(unix_s).off
    }

    /// The instants at which the zone's clocks show `local`.
    pub fn local_to_utc(&self, local: CivilDateTime) -> LocalResult {
        self.resolve(local.to_seconds())
    }

    /// `local_to_utc` on wall-clock seconds (see `CivilDateTime::to_seconds`).
    pub(crate) fn resolve(&self, wall: i64) -> LocalResult {
        let zone = &*self.0;
        // Any instant showing `wall` lies in wall - max_off ..= wall - min_off.
        let last_possible = wall.saturating_sub(i64::from(zone.min_off));
        let mut p = self.period_at(wall.saturating_sub(i64::from(zone.max_off)));
        let (mut first, mut last, mut gap_end) = (None, None, None);
        loop {
            let t = wall.saturating_sub(i64::from(p.off));
            if p.start <= t && (t < p.end || p.end == i64::MAX) {
                first.get_or_insert(t);
                last = Some(t);
            } else if gap_end.is_none()
                && p.start != i64::MIN
                && p.start.saturating_add(i64::from(p.off)) > wall
            {
                gap_end = Some(p.start);
            }
            if p.end == i64::MAX || p.end > last_possible {
                break;
            }
            p = self.period_at(p.end);
        }
        match (first, last) {
            (Some(a), Some(b)) if a != b => LocalResult::Ambiguous(a, b),
            (Some(a), _) => LocalResult::Unique(a),
            _ => LocalResult::Gap {
                ends_at: gap_end.unwrap_or(last_possible),
            },
        }
    }

    /// The period of one offset that contains the instant `t`.
    pub(crate) fn period_at(&self, t: i64) -> Period {
        let zone = &*self.0;
        let all = &zone.transitions;
        let i = all.partition_point(|&(at, _)| at <= t);
        match &zone.rule {
            Some(rule) if i == all.len() => {
                let mut p = rule.period_at(t);
                p.start = p.start.max(all.last().map_or(i64::MIN, |l| l.0));
                p
            }
            _ => {
                let (start, off) = i
                    .checked_sub(1)
                    .map_or((i64::MIN, zone.initial), |k| all[k]);
                Period {
                    start,
                    end: all.get(i).map_or(i64::MAX, |n| n.0),
                    off,
                }
            }
        }
    }
}

impl std::fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TimeZone").field(&self.name()).finish()
    }
}

/// Read a zone file of at most `MAX_TZIF_BYTES`.
fn read_capped(path: &Path, name: &str) -> Result<Vec<u8>, TzError> {
    use std::io::Read;
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => TzError::NotFound(shown(name)),
        _ => TzError::Io(shown(name), e.to_string()),
    };
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).map_err(io)?;
    file.take(MAX_TZIF_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

/// The unread rest of a TZif file.
struct Bytes<'a>(&'a [u8]);

/// A big-endian two's-complement integer of 1–8 bytes.
fn signed_be(bytes: &[u8]) -> i64 {
    let sign = bytes.first().map_or(0, |b| -i64::from(b >> 7));
    bytes.iter().fold(sign, |acc, &b| (acc << 8) | i64::from(b))
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], TzError> {
        let split = usize::try_from(n)
            .ok()
            .and_then(|n| self.0.split_at_checked(n));
        let (head, rest) = split.ok_or(TzError::Tzif("truncated"))?;
        self.0 = rest;
        Ok(head)
    }

    /// The version byte and the six counts (isut, isstd, leap, time, type, char).
    fn header(&mut self) -> Result<(u8, [u64; 6]), TzError> {
        let h = self.take(44)?;
        if !h.starts_with(b"TZif") || !matches!(h[4], 0 | b'2'..=b'4') {
            return Err(TzError::Tzif("not a TZif file of version 1 to 4"));
        }
        let mut counts = [0; 6];
        for (count, bytes) in counts.iter_mut().zip(h[20..].chunks_exact(4)) {
            *count = bytes.iter().fold(0, |n, &b| n << 8 | u64::from(b));
        }
        Ok((h[4], counts))
    }

    /// A data block: the offset of type 0 and the transitions.
    fn block(&mut self, counts: [u64; 6], size: u64) -> Result<(i32, Vec<(i64, i32)>), TzError> {
        let [isut, isstd, leap, time, types, chars] = counts;
        if types == 0 || types > 256 {
            return Err(TzError::Tzif("the type count is not 1 to 256"));
        }
        if leap != 0 {
            return Err(TzError::Tzif(
                "leap-second (right/) zones are not supported",
            ));
        }
        let times = self.take(time * size)?;
        let indices = self.take(time)?;
        let types = self.take(types * 6)?;
        self.take(chars + isstd + isut)?;
        let mut offsets = [0; 256];
        for (off, t) in offsets.iter_mut().zip(types.chunks_exact(6)) {
            *off = signed_be(&t[..4]) as i32; // four bytes: lossless
            if off.unsigned_abs() > MAX_OFFSET as u32 {
                return Err(TzError::Tzif("a UTC offset of 26 hours or more"));
            }
        }
        // As many as the bytes present hold (at most MAX_TZIF_BYTES / 9).
        let mut transitions: Vec<(i64, i32)> = Vec::with_capacity(indices.len());
        for (at, &idx) in times
            .chunks_exact(size as usize)
            .map(signed_be)
            .zip(indices)
        {
            if usize::from(idx) >= types.len() / 6 {
                return Err(TzError::Tzif("a transition to an unknown type"));
            }
            if transitions.last().is_some_and(|l| l.0 >= at) {
                return Err(TzError::Tzif("transitions out of order"));
            }
            transitions.push((at, offsets[usize::from(idx)]));
        }
        Ok((offsets[0], transitions))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::automation::schedule::parse_instant;

    /// Unix seconds of an RFC 3339 time (`2026-03-29T01:00Z`).
    pub(crate) fn at(text: &str) -> i64 {
        parse_instant(text, &TimeZone::utc())
            .unwrap()
            .div_euclid(1000)
    }

    /// A TZif file: `version` 0 (v1) or b'2'..=b'4' (v1 block empty, then 64-bit).
    pub(crate) fn tzif(
        version: u8,
        changes: &[(i64, u8)],
        offsets: &[i32],
        footer: &str,
    ) -> Vec<u8> {
        let header = |counts: [usize; 6]| {
            let mut h = b"TZif".to_vec();
            h.push(version);
            h.extend([0; 15]);
            counts
                .iter()
                .for_each(|&c| h.extend((c as u32).to_be_bytes()));
            h
        };
        let block = |size: usize| {
            let mut b = header([0, 0, 0, changes.len(), offsets.len(), 4]);
            changes
                .iter()
                .for_each(|c| b.extend(&c.0.to_be_bytes()[8 - size..]));
            b.extend(changes.iter().map(|c| c.1));
            offsets
                .iter()
                .for_each(|o| b.extend(o.to_be_bytes().into_iter().chain([0, 0])));
            b.extend(b"ZZZ\0");
            b
        };
        if version == 0 {
            return block(4);
        }
        let mut file = header([0, 0, 0, 0, 1, 1]);
        file.extend([0; 7]);
        file.extend(block(8));
        file.extend(format!("\n{footer}\n").bytes());
        file
    }

    /// A test zone: `Berlin` (a slim TZif file: 2020's changes, then the
    /// footer), `UTC`, or a POSIX rule.
    pub(crate) fn zone(name: &str) -> TimeZone {
        let changes = [(at("2020-03-29T01:00Z"), 1), (at("2020-10-25T01:00Z"), 0)];
        let berlin = tzif(b'2', &changes, &[3600, 7200], "CET-1CEST,M3.5.0,M10.5.0/3");
        match name {
            "Berlin" => TimeZone::from_tzif("Europe/Berlin", &berlin).unwrap(),
            "UTC" => TimeZone::utc(),
            rule => TimeZone::from_posix(rule).unwrap(),
        }
    }

    #[test]
    fn tzif_table_then_footer() {
        let berlin = zone("Berlin");
        assert_eq!(berlin.name(), "Europe/Berlin");
        for (t, off) in [
            ("2019-07-01T00:00Z", 3600), // before the first transition: type 0
            ("2020-07-01T00:00Z", 7200),
            ("2020-10-25T00:59:59Z", 7200),
            ("2020-10-25T01:00Z", 3600),
            ("2026-03-29T00:59:59Z", 3600), // the footer
            ("2026-03-29T01:00Z", 7200),
            ("2100-07-01T00:00Z", 7200),
        ] {
            assert_eq!(berlin.offset_at(at(t)), off, "{t}");
        }
        // Version 1: 32-bit times, no footer: the last type stays.
        let v1 = TimeZone::from_tzif("v1", &tzif(0, &[(-100, 1), (1000, 0)], &[0, -3600], ""));
        let v1 = v1.unwrap();
        assert_eq!([-101, -100, 5000].map(|t| v1.offset_at(t)), [0, -3600, 0]);
        // Versions 3 and 4 read as 2; an empty footer keeps the last type.
        let v4 = TimeZone::from_tzif("v4", &tzif(b'4', &[(0, 1)], &[0, 3600], "")).unwrap();
        assert_eq!(v4.offset_at(i64::MAX), 3600);
        // No transitions: the footer governs every instant.
        let tehran = TimeZone::from_tzif("Asia/Tehran", &tzif(b'3', &[], &[0], "<+0330>-3:30"));
        assert_eq!(tehran.unwrap().offset_at(at("2030-01-01T00:00Z")), 12_600);
    }

    #[test]
    fn malformed_tzif_is_an_error_not_a_panic() {
        let good = tzif(b'2', &[(0, 1)], &[3600, 7200], "CET-1CEST,M3.5.0,M10.5.0/3");
        for len in 0..good.len() - 1 {
            assert!(
                TimeZone::from_tzif("cut", &good[..len]).is_err(),
                "cut at {len}"
            );
        }
        let unknown_type = tzif(b'2', &[(0, 2)], &[0, 3600], "");
        let unordered = tzif(b'2', &[(5, 0), (5, 1)], &[0, 3600], "");
        let huge_offset = tzif(b'2', &[], &[26 * 3600], "");
        let min_offset = tzif(b'2', &[], &[i32::MIN], "");
        let bad_footer = tzif(b'2', &[], &[0], "CET-1CEST,M3.5.0");
        for bad in [unknown_type, unordered, huge_offset, min_offset, bad_footer] {
            assert!(TimeZone::from_tzif("bad", &bad).is_err());
        }
        let mut huge_count = good.clone(); // the v2 header's transition count
        huge_count[83..87].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = TimeZone::from_tzif("x", &huge_count).unwrap_err();
        assert_eq!(e, TzError::Tzif("truncated"));
        let e = TimeZone::from_tzif("x", &vec![0; MAX_TZIF_BYTES + 1]).unwrap_err();
        assert_eq!(e, TzError::TooLarge);
    }

    /// zone | wall time | the instants (UTC), or `gap` and where it ends
    const WALL_TIMES: &str = "
        Berlin                 | 2026-07-01T12:00 | 2026-07-01T10:00Z
        Berlin                 | 2026-03-29T02:30 | gap 2026-03-29T01:00Z
        Berlin                 | 2026-10-25T02:30 | 2026-10-25T00:30Z 2026-10-25T01:30Z
        Berlin                 | 2026-10-25T03:00 | 2026-10-25T02:00Z
        EST5EDT,M3.2.0,M11.1.0 | 2026-03-08T02:00 | gap 2026-03-08T07:00Z
        EST5EDT,M3.2.0,M11.1.0 | 2026-03-08T03:00 | 2026-03-08T07:00Z
        EST5EDT,M3.2.0,M11.1.0 | 2026-11-01T01:00 | 2026-11-01T05:00Z 2026-11-01T06:00Z
        UTC                    | 1969-12-31T23:59 | 1969-12-31T23:59Z";

    #[test]
    fn wall_clock_gaps_and_folds() {
        for row in WALL_TIMES
            .lines()
            .skip(1)
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        {
            let wall = CivilDateTime::from_seconds(at(row[1]));
            let times: Vec<i64> = row[2]
                .trim_start_matches("gap ")
                .split(' ')
                .map(at)
                .collect();
            let want = match times[..] {
                [t] if row[2].starts_with("gap") => LocalResult::Gap { ends_at: t },
                [t] => LocalResult::Unique(t),
                [a, b] => LocalResult::Ambiguous(a, b),
                _ => panic!("bad row {row:?}"),
            };
            assert_eq!(zone(row[0]).local_to_utc(wall), want, "{row:?}");
        }
    }

    #[test]
    fn names_are_checked_before_any_file_is_opened() {
        for bad in [
            "",
            "/etc/passwd",
            "../etc",
            "Europe/../../etc",
            "Europe/Berlin\0",
            "a b",
            "Ωmega",
        ] {
            assert!(
                matches!(TimeZone::named(bad), Err(TzError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            TimeZone::named("No/Such_Zone"),
            Err(TzError::NotFound(_))
        ));
        assert_eq!(TimeZone::named("UTC").unwrap().offset_at(0), 0);
        let _ = TimeZone::local();
    }

    #[test]
    fn host_zoneinfo_matches_known_offsets() {
        if !Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            println!("SKIPPED host_zoneinfo_matches_known_offsets: no /usr/share/zoneinfo");
            return;
        }
        for (name, t, off) in [
            ("Europe/Berlin", "1990-01-01T00:00Z", 3600),
            ("Europe/Berlin", "2026-03-29T00:59:59Z", 3600),
            ("Europe/Berlin", "2026-03-29T01:00Z", 7200),
            ("Europe/Berlin", "2026-10-25T00:59:59Z", 7200),
            ("Europe/Berlin", "2026-10-25T01:00Z", 3600),
            ("Europe/Berlin", "2090-07-01T00:00Z", 7200),
            ("America/New_York", "2026-03-08T06:59:59Z", -18_000),
            ("America/New_York", "2026-03-08T07:00Z", -14_400),
            ("America/New_York", "2026-11-01T06:00Z", -18_000),
            ("America/New_York", "2090-07-01T00:00Z", -14_400),
        ] {
            assert_eq!(
                TimeZone::named(name).unwrap().offset_at(at(t)),
                off,
                "{name} at {t}"
            );
        }
    }

    #[test]
    fn every_instant_lies_in_its_period() {
        for z in ["Berlin", "EST5EDT,M3.2.0,M11.1.0", "UTC"].map(zone) {
            for t in [
                i64::MIN,
                i64::MIN + 1,
                -1,
                0,
                at("2026-03-29T01:00Z"),
                i64::MAX - 1,
                i64::MAX,
            ] {
                let p = z.period_at(t);
                assert!(p.start <= t && (t < p.end || p.end == i64::MAX));
                let _ = z.resolve(t);
            }
        }
    }
}
