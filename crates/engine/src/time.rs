//! Wall time and the clock it comes from.
//!
//! Owns [`WallTime`] (UTC, microseconds since the Unix epoch), [`Clock`] and its two
//! implementations: [`SystemClock`] for production and [`ManualClock`] that tests move
//! by hand, so no test ever sleeps. Media time (ticks in a track's timescale) never
//! lives here; [`micros_from_ticks`] is the one place the two meet.
//!
//! Formatting and parsing follow RFC 3339 plus the ISO 8601 basic offset (`+0000`)
//! that ffmpeg writes in `EXT-X-PROGRAM-DATE-TIME` (RFC 8216 §4.3.2.6).

use std::sync::atomic::{AtomicI64, Ordering};

/// A point in UTC: microseconds since 1970-01-01T00:00:00Z (leap seconds ignored, as
/// in Unix time). Plain `i64` inside; ordering is chronological.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallTime(i64);

/// Microseconds in one second.
pub const MICROS_PER_SEC: i64 = 1_000_000;

impl WallTime {
    /// The Unix epoch.
    pub const EPOCH: WallTime = WallTime(0);

    /// From microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        WallTime(micros)
    }

    /// From whole seconds since the Unix epoch (saturating).
    pub const fn from_unix_secs(secs: i64) -> Self {
        WallTime(secs.saturating_mul(MICROS_PER_SEC))
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down.
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(MICROS_PER_SEC)
    }

    /// Seconds since the Unix epoch, with the fraction.
    pub fn unix_secs_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_SEC as f64
    }

    /// This time moved by `micros` (saturating).
    pub const fn add_micros(self, micros: i64) -> Self {
        WallTime(self.0.saturating_add(micros))
    }

    /// `self - earlier`, microseconds (saturating).
    pub const fn micros_since(self, earlier: WallTime) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// ISO 8601 / RFC 3339 in UTC with milliseconds, e.g. `2024-01-05T20:15:00.000Z`
    /// (the Clip object's `created_at`).
    pub fn to_rfc3339_millis(self) -> String {
        let secs = self.unix_secs();
        let millis = self.0.rem_euclid(MICROS_PER_SEC) / 1000;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )
    }

    /// Parses an `EXT-X-PROGRAM-DATE-TIME` value: `YYYY-MM-DDThh:mm:ss[.fff…]` followed
    /// by `Z`, `±hh:mm`, `±hhmm` or `±hh`. ffmpeg writes `2026-11-25T04:16:24.534+0000`,
    /// which is ISO 8601 but not RFC 3339, so generic parsers refuse it.
    pub fn parse_program_date_time(s: &str) -> Option<WallTime> {
        let b = s.trim().as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = b.get(r)?;
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(part).ok()?.parse().ok()
        };
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let mut i = 19;
        let mut frac_micros = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                if i - start < 6 {
                    frac_micros = frac_micros * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..6 {
                frac_micros *= 10;
            }
        }
        let offset_secs = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) => {
                let rest = &b[i + 1..];
                let (oh, om) = match rest.len() {
                    2 => (num(i + 1..i + 3)?, 0),
                    4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                    5 if rest[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                    _ => return None,
                };
                let off = oh * 3600 + om * 60;
                if sign == b'-' { -off } else { off }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
        Some(WallTime(secs * MICROS_PER_SEC + frac_micros))
    }
}

impl std::fmt::Debug for WallTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.rem_euclid(1000);
        write!(f, "{}", self.to_rfc3339_millis().trim_end_matches('Z'))?;
        write!(f, "{micros:03}Z")
    }
}

impl std::fmt::Display for WallTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339_millis())
    }
}

// Howard Hinnant's civil calendar algorithms (public domain), proleptic Gregorian.
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
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Media ticks to microseconds, rounding down; `timescale` 0 reads as 1 (the parser
/// refuses 0, this keeps the function total).
pub fn micros_from_ticks(ticks: u64, timescale: u32) -> i64 {
    let v = u128::from(ticks) * 1_000_000 / u128::from(timescale.max(1));
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Signed variant of [`micros_from_ticks`].
pub(crate) fn micros_from_ticks_signed(ticks: i128, timescale: u32) -> i64 {
    let v = ticks * 1_000_000 / i128::from(timescale.max(1));
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Where the engine learns the time. Tests use [`ManualClock`] and never sleep.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> WallTime;
}

/// The operating system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> WallTime {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        // A clock set before 1970 is a broken host; the epoch is as good as any answer.
        let micros = since.map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        WallTime(micros)
    }
}

/// A clock that moves only when told to. Shared by `Arc` between a test and the
/// engine it drives.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: WallTime) -> Self {
        ManualClock(AtomicI64::new(start.0))
    }

    /// Jumps to `t` (backwards too: the engine must survive a clock step).
    pub fn set(&self, t: WallTime) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    /// Moves forward by `micros`.
    pub fn advance_micros(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }

    /// Moves forward by whole seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.advance_micros(secs * MICROS_PER_SEC);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> WallTime {
        WallTime(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_created_at_like_gcore() {
        let t = WallTime::from_unix_secs(1_704_485_700);
        assert_eq!(t.to_rfc3339_millis(), "2024-01-05T20:15:00.000Z");
    }

    #[test]
    fn parses_ffmpeg_program_date_time() {
        // RFC 8216 §4.3.2.6: "EXT-X-PROGRAM-DATE-TIME:<date-time-msec>" (ISO 8601);
        // ffmpeg writes the basic-format offset.
        let t = WallTime::parse_program_date_time("2026-11-25T04:16:24.534+0000");
        let z = WallTime::parse_program_date_time("2026-11-25T04:16:24.534Z");
        assert!(t.is_some());
        assert_eq!(t, z);
        let plus1 = WallTime::parse_program_date_time("2026-11-25T05:16:24.534+01:00");
        assert_eq!(plus1, z);
        let back = z.map(|t| t.to_rfc3339_millis());
        assert_eq!(back.as_deref(), Some("2026-11-25T04:16:24.534Z"));
        assert_eq!(
            WallTime::parse_program_date_time("2026-13-25T04:16:24Z"),
            None
        );
        assert_eq!(WallTime::parse_program_date_time("garbage"), None);
        assert_eq!(
            WallTime::parse_program_date_time("2026-11-25T04:16:24.Z"),
            None
        );
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-800_000, -1, 0, 1, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(WallTime::from_unix_secs(10));
        assert_eq!(c.now(), WallTime::from_unix_secs(10));
        c.advance_secs(5);
        assert_eq!(c.now().unix_secs(), 15);
    }
}
