//! UTC date-times as HLS and the API write them: `EXT-X-PROGRAM-DATE-TIME`
//! (RFC 8216 §4.3.2.6, an ISO 8601 date with time zone) and Gcore's `created_at`
//! (`2024-01-05T20:15:00.000Z`).
//!
//! Times are microseconds since the Unix epoch (`i64`), the engine's wall-clock unit.
//! Parsing is lenient where encoders differ: ffmpeg writes `+0000` (no colon), others
//! `Z` or `+00:00`; a missing zone is read as UTC.

/// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ` (milliseconds, truncated).
pub fn format_utc_millis(unix_micros: i64) -> String {
    let secs = unix_micros.div_euclid(1_000_000);
    let millis = unix_micros.rem_euclid(1_000_000) / 1000;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Parses an ISO 8601 / RFC 3339 date-time into Unix microseconds; `None` if malformed.
pub fn parse_utc(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = b.get(r)?;
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo)).contains(&d) || h > 23 || mi > 59 {
        return None;
    }
    // 60 admits a leap second, folded into the next second as POSIX time does.
    if s > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = &b[start..i];
        if digits.is_empty() {
            return None;
        }
        for (k, &c) in digits.iter().take(6).enumerate() {
            micros += i64::from(c - b'0') * 10i64.pow(5 - k as u32);
        }
    }
    let offset_secs = match &b[i..] {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hh, mm) = match rest {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => ([*h1, *h2], [*m1, *m2]),
                [h1, h2] => ([*h1, *h2], [b'0', b'0']),
                _ => return None,
            };
            let two = |p: [u8; 2]| -> Option<i64> {
                p.iter()
                    .all(u8::is_ascii_digit)
                    .then(|| i64::from(p[0] - b'0') * 10 + i64::from(p[1] - b'0'))
            };
            let (oh, om) = (two(hh)?, two(mm)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    Some(secs * 1_000_000 + micros)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcore_created_at_shape() {
        // 2024-01-05T20:15:00Z, the example in Gcore's API reference.
        assert_eq!(
            format_utc_millis(1_704_485_700_000_000),
            "2024-01-05T20:15:00.000Z"
        );
        assert_eq!(format_utc_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc_millis(-1_000), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn encoder_date_forms() {
        let want = 1_795_580_184_534_000; // 2026-11-25T04:16:24.534Z
        for s in [
            "2026-11-25T04:16:24.534+0000",
            "2026-11-25T04:16:24.534Z",
            "2026-11-25T04:16:24.534+00:00",
            "2026-11-25T05:16:24.534+01:00",
            "2026-11-25T04:16:24.534",
            "2026-11-25T03:16:24.534-01",
        ] {
            assert_eq!(parse_utc(s), Some(want), "{s}");
        }
        assert_eq!(
            parse_utc("2024-02-29T00:00:00.123456789Z"),
            Some(1_709_164_800_123_456)
        );
    }

    #[test]
    fn malformed_dates() {
        for s in [
            "",
            "2026-11-25",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T04:16:24.Z",
            "2026-11-25T04:16:24+2",
            "2026-11-25T04:16:24 junk",
            "２０２６-11-25T04:16:24Z",
        ] {
            assert_eq!(parse_utc(s), None, "{s}");
        }
    }

    #[test]
    fn round_trip() {
        for t in [
            0i64,
            1_704_485_700_123_000,
            4_102_444_800_000_000,
            -86_400_000_000,
        ] {
            assert_eq!(parse_utc(&format_utc_millis(t)), Some(t));
        }
    }
}
