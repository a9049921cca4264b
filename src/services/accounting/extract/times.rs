//! OpenStack timestamps: parsed to microseconds since the epoch in UTC
//! (a timestamp without a zone is UTC, as every OpenStack service writes
//! them), written as RFC 3339 `...Z` in queries.

/// Microseconds per second.
pub const US: i64 = 1_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month)` of a Unix time in seconds (UTC).
pub fn year_month(secs: i64) -> (i64, u8) {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u8)
}

/// Unix seconds of the first instant of a month.
pub fn month_start(year: i64, month: u8) -> i64 {
    days_from_civil(year, i64::from(month), 1) * 86_400
}

/// The month after `(year, month)`.
pub fn next_month(year: i64, month: u8) -> (i64, u8) {
    if month >= 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `2026-12-03T07:01:28Z`, `2026-12-03T07:01:31.000000`,
/// `2026-12-03 07:01:31.5+01:00`, ... → microseconds since the epoch (UTC).
pub fn parse(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() < 19 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let sep = rest.as_bytes()[0];
    if sep != b'T' && sep != b't' && sep != b' ' {
        return None;
    }
    let (clock, mut tail) = rest[1..].split_at(8);
    let d: Vec<&str> = date.split('-').collect();
    let c: Vec<&str> = clock.split(':').collect();
    if d.len() != 3 || c.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return None;
    }
    let (y, mo, da) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (h, mi, se) = (num(c[0])?, num(c[1])?, num(c[2])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut micros = 0i64;
    if let Some(f) = tail.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &f[..n];
        let mut v = 0i64;
        for (i, b) in digits.bytes().take(6).enumerate() {
            v += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
        }
        micros = v;
        tail = &f[n..];
    }
    let offset = match tail {
        "" | "Z" | "z" => 0,
        t => {
            let sign = match t.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = t[1..].replace(':', "");
            if t.len() != 4 {
                return None;
            }
            let (oh, om) = (num(&t[..2])?, num(&t[2..])?);
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs * US + micros)
}

/// RFC 3339 in UTC with `Z`, to the second: `2026-12-03T07:01:28Z`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m) = year_month(secs);
    let d = days - days_from_civil(y, i64::from(m), 1) + 1;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The current time, microseconds since the epoch.
pub fn now_us() -> i64 {
    let t = time::OffsetDateTime::now_utc();
    t.unix_timestamp() * US + i64::from(t.microsecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openstack_forms_parse_as_utc() {
        let z = parse("2026-12-03T07:01:28Z").unwrap();
        assert_eq!(z, 1_796_281_288 * US);
        assert_eq!(parse("2026-12-03T07:01:28").unwrap(), z);
        assert_eq!(parse("2026-12-03 07:01:28").unwrap(), z);
        assert_eq!(parse("2026-12-03T07:01:28.000000").unwrap(), z);
        assert_eq!(parse("2026-12-03T07:01:28.5").unwrap(), z + 500_000);
        assert_eq!(parse("2026-12-03T07:01:28.123456789").unwrap(), z + 123_456);
        assert_eq!(parse("2026-12-03T08:01:28+01:00").unwrap(), z);
        assert_eq!(parse("2026-12-03T06:01:28-0100").unwrap(), z);
        for bad in [
            "",
            "yesterday",
            "2026-13-03T07:01:28Z",
            "2026-12-03X07:01:28",
            "2026-12-03T07:01:28.",
            "2026-12-03T07:01:28+1",
            "2026-12-03T07:01:28 junk",
            "2026-12-ééT07:01:28",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_and_months() {
        assert_eq!(rfc3339(1_796_281_288), "2026-12-03T07:01:28Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(year_month(1_796_281_288), (2026, 12));
        assert_eq!(month_start(2026, 12), 1_796_083_200);
        assert_eq!(next_month(2026, 12), (2027, 1));
        assert_eq!(
            year_month(month_start(2024, 2) + 29 * 86_400 - 1),
            (2024, 2)
        );
        assert_eq!(year_month(month_start(2024, 3)), (2024, 3));
    }
}
