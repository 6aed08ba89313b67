//! XEP-0082 date-times (`2026-11-22T04:15:10Z`) to and from Unix seconds.
//!
//! Calendar arithmetic is done here on the proleptic Gregorian calendar, so the core needs no
//! date library and never reads the clock.

const SECS_PER_DAY: i64 = 86_400;

/// Days from 0000-03-01 to 1970-01-01. Counting from a March 1st puts each leap day at the
/// end of its year, which keeps the month arithmetic below free of special cases.
const EPOCH_SHIFT: i64 = 719_468;
/// Days in a 400-year Gregorian cycle.
const DAYS_PER_ERA: i64 = 146_097;

#[cfg(test)]
fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

#[cfg(test)]
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a valid (year, month, day).
#[cfg(test)]
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Years start in March, so January and February belong to the previous one.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT
}

/// (year, month, day) of the day that is `days` after 1970-01-01; inverse of
/// [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + EPOCH_SHIFT;
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted.rem_euclid(DAYS_PER_ERA);
    // Remove the leap days of the era so far, then whole 365-day years remain.
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

/// Formats Unix seconds as an XEP-0082 date-time in UTC without fractions, e.g.
/// `1795320910` → `"2026-11-22T04:15:10Z"`.
///
/// Exact for years 0000 to 9999. Times outside that range are not valid XEP-0082 and come out
/// with a sign or more than four year digits.
pub fn format_datetime(unix_seconds: i64) -> String {
    let (year, month, day) = civil_from_days(unix_seconds.div_euclid(SECS_PER_DAY));
    let secs = unix_seconds.rem_euclid(SECS_PER_DAY);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Takes exactly `n` ASCII digits from the front of `input`.
#[cfg(test)]
fn take_digits(input: &mut &[u8], n: usize) -> Option<i64> {
    let (head, tail) = input.split_at_checked(n)?;
    if !head.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *input = tail;
    Some(head.iter().fold(0, |acc, &digit| acc * 10 + i64::from(digit - b'0')))
}

/// Takes `byte` from the front of `input` if it is there.
#[cfg(test)]
fn take_byte(input: &mut &[u8], byte: u8) -> bool {
    match input.split_first() {
        Some((&first, tail)) if first == byte => {
            *input = tail;
            true
        }
        _ => false,
    }
}

/// Like [`take_byte`], but for bytes that must be there.
#[cfg(test)]
fn expect_byte(input: &mut &[u8], byte: u8) -> Option<()> {
    take_byte(input, byte).then_some(())
}

/// The fields of `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`, unchecked: year, month, day,
/// hour, minute, second, offset hours, offset minutes (the offset signed).
#[cfg(test)]
fn split_fields(mut input: &[u8]) -> Option<[i64; 8]> {
    let p = &mut input;
    let year = take_digits(p, 4)?;
    expect_byte(p, b'-')?;
    let month = take_digits(p, 2)?;
    expect_byte(p, b'-')?;
    let day = take_digits(p, 2)?;
    expect_byte(p, b'T')?;
    let hour = take_digits(p, 2)?;
    expect_byte(p, b':')?;
    let minute = take_digits(p, 2)?;
    expect_byte(p, b':')?;
    let second = take_digits(p, 2)?;
    if take_byte(p, b'.') {
        // Fractions are allowed but below our one-second resolution, so they are dropped.
        take_digits(p, 1)?;
        while take_digits(p, 1).is_some() {}
    }
    let (offset_hours, offset_minutes) = if take_byte(p, b'Z') {
        (0, 0)
    } else {
        let sign = if take_byte(p, b'+') {
            1
        } else if take_byte(p, b'-') {
            -1
        } else {
            return None;
        };
        let hours = take_digits(p, 2)?;
        expect_byte(p, b':')?;
        let minutes = take_digits(p, 2)?;
        (sign * hours, sign * minutes)
    };
    p.is_empty().then_some([year, month, day, hour, minute, second, offset_hours, offset_minutes])
}

/// Parses an XEP-0082 date-time `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)` into Unix seconds.
///
/// Fractions of a second are dropped (rounding towards the past). Every field must be in
/// range: month 1–12, a day that exists in that month, hour 0–23, minute and second 0–59
/// (no leap second), offset up to ±23:59. `T` and `Z` must be upper case, as XEP-0082 writes
/// them.
/// The formatter's test oracle (round trips in the property tests): nothing else reads a
/// date-time.
#[cfg(test)]
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("invalid XEP-0082 date-time: '{s}': {why}");
    let [year, month, day, hour, minute, second, offset_hours, offset_minutes] =
        split_fields(s.as_bytes()).ok_or_else(|| bad("expected YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)"))?;
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if !(1..=days_in_month(year, month)).contains(&day) {
        return Err(bad("day out of range"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("time of day out of range"));
    }
    if offset_hours.abs() > 23 || offset_minutes.abs() > 59 {
        return Err(bad("time zone offset out of range"));
    }
    let local = days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    Ok(local - (offset_hours * 3600 + offset_minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known instants, checked against an independent implementation.
    const KNOWN: &[(i64, &str)] = &[
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:01Z"),
        (86_399, "1970-01-01T23:59:59Z"),
        (86_400, "1970-01-02T00:00:00Z"),
        (78_796_799, "1972-06-30T23:59:59Z"),
        (946_684_799, "1999-12-31T23:59:59Z"),
        (946_684_800, "2000-01-01T00:00:00Z"),
        (951_825_600, "2000-02-29T12:00:00Z"),
        (1_709_164_800, "2024-02-29T00:00:00Z"),
        (1_709_251_199, "2024-02-29T23:59:59Z"),
        (1_795_320_910, "2026-11-22T04:15:10Z"),
        (2_147_483_648, "2038-01-19T03:14:08Z"),
        (4_107_542_400, "2100-03-01T00:00:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
    ];

    #[test]
    fn format_known() {
        for &(secs, text) in KNOWN {
            assert_eq!(format_datetime(secs), text, "{secs}");
        }
    }

    #[test]
    fn parse_known() {
        for &(secs, text) in KNOWN {
            assert_eq!(parse_datetime(text).unwrap(), secs, "{text}");
        }
    }

    #[test]
    fn format_before_epoch_and_year_zero() {
        assert_eq!(format_datetime(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_datetime(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(parse_datetime("0000-01-01T00:00:00Z").unwrap(), -62_167_219_200);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        assert!(format_datetime(i64::MAX).ends_with('Z'));
        assert!(format_datetime(i64::MIN).starts_with('-'));
        assert_eq!(parse_datetime("9999-12-31T23:59:59-23:59").unwrap(), 253_402_300_799 + 86_340);
    }

    /// Walks every day from 1970 to 2400 with a naive calendar and checks both directions.
    #[test]
    fn every_day_matches_naive_calendar() {
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..days_from_civil(2401, 1, 1) {
            let secs = days * SECS_PER_DAY + 43_210;
            let expected = format!("{year:04}-{month:02}-{day:02}T12:00:10Z");
            assert_eq!(format_datetime(secs), expected);
            assert_eq!(parse_datetime(&expected).unwrap(), secs);
            day += 1;
            if day > days_in_month(year, month) {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn round_trip_spread() {
        let mut secs = 0_i64;
        while secs <= 253_402_300_799 {
            assert_eq!(parse_datetime(&format_datetime(secs)).unwrap(), secs);
            secs += 7_919_993; // a prime, so every time of day gets visited
        }
    }

    #[test]
    fn offsets_and_fractions() {
        let base = 1_795_320_910; // 2026-11-22T04:15:10Z
        let cases = [
            ("2026-11-22T04:15:10.5Z", base),
            ("2026-11-22T04:15:10.999999Z", base),
            ("2026-11-22T04:15:10+00:00", base),
            ("2026-11-22T04:15:10-00:00", base),
            ("2026-11-22T06:15:10+02:00", base),
            ("2026-11-22T09:45:10+05:30", base),
            ("2026-11-21T23:15:10-05:00", base),
            ("2026-11-21T23:00:10-05:15", base),
            ("2026-11-22T04:15:10.123-00:00", base),
            ("2026-11-23T03:59:10+23:44", base),
            ("1970-01-01T00:00:00+01:00", -3600),
            ("1970-01-01T00:00:00.7Z", 0),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_datetime(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn rejects_invalid() {
        let cases = [
            "",
            "2026-11-22",
            "2026-11-22T04:15Z",
            "2026-11-22T04:15:10",
            "2026-11-22 04:15:10Z",
            "2026-11-22t04:15:10Z",
            "2026-11-22T04:15:10z",
            "26-11-22T04:15:10Z",
            "+2026-11-22T04:15:10Z",
            "2026-1-22T04:15:10Z",
            "2026/11/22T04:15:10Z",
            "2026-11-22T04:15:10.Z",
            "2026-11-22T04:15:10,5Z",
            "2026-11-22T04:15:10+0200",
            "2026-11-22T04:15:10+02",
            "2026-11-22T04:15:10Z ",
            " 2026-11-22T04:15:10Z",
            "2026-11-22T04:15:10ZZ",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T23:60:00Z",
            "2026-11-22T23:59:60Z",
            "2026-11-22T04:15:10+24:00",
            "2026-11-22T04:15:10+01:60",
            "２026-11-22T04:15:10Z",
        ];
        for text in cases {
            let err = parse_datetime(text).unwrap_err();
            assert!(err.starts_with("invalid XEP-0082 date-time: "), "{text}: {err:?}");
        }
    }

    #[test]
    fn accepts_leap_days() {
        for text in ["2000-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2400-02-29T00:00:00Z"] {
            assert!(parse_datetime(text).is_ok(), "{text}");
        }
    }
}
