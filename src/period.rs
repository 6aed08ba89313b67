//! Periods of time in seconds, written the way Prosody 13 accepts them ("604800", "1 week",
//! "12h"), for the `invite_expiry` option and the `--expires-after` flag.

use crate::{Error, Result};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Unit names (compared ignoring ASCII case) and their length in seconds. A bare "m" is
/// deliberately absent: it could mean minutes or months.
const UNITS: &[(&[&str], u64)] = &[
    (&["s", "sec", "secs", "second", "seconds"], 1),
    (&["min", "mins", "minute", "minutes"], MINUTE),
    (&["h", "hour", "hours"], HOUR),
    (&["d", "day", "days"], DAY),
    (&["w", "week", "weeks"], 7 * DAY),
    (&["mon", "month", "months"], 30 * DAY),
    (&["y", "year", "years"], 365 * DAY),
];

/// Longest period accepted: anything longer could not be added to a Unix time held in an
/// `i64`, which is how Lua and the invite records hold times.
const MAX_PERIOD: u64 = i64::MAX.unsigned_abs();

fn unit_seconds(unit: &str) -> Option<u64> {
    UNITS.iter().find(|(names, _)| names.iter().any(|name| name.eq_ignore_ascii_case(unit))).map(|&(_, seconds)| seconds)
}

/// Parses a period into seconds.
///
/// Accepted: a bare integer of seconds ("604800"), or an integer followed, optionally after
/// whitespace, by a unit: `s`/`sec`/`second(s)`, `min`/`minute(s)`, `h`/`hour(s)`,
/// `d`/`day(s)`, `w`/`week(s)`, `mon`/`month(s)` (30 days) or `y`/`year(s)` (365 days), in any
/// ASCII case. Surrounding whitespace is ignored.
///
/// Errors: [`Error::InvalidPeriod`] for anything else, including signs, fractions, the
/// ambiguous unit `m` and a period of zero (an invite that is expired at birth);
/// [`Error::TimeOverflow`] for a period longer than `i64::MAX` seconds.
pub fn parse_period(s: &str) -> Result<u64> {
    let invalid = || Error::InvalidPeriod(s.to_owned());
    let text = s.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at_checked(digits).ok_or_else(invalid)?;
    if number.is_empty() {
        return Err(invalid());
    }
    let unit = unit.trim_start();
    let scale = if unit.is_empty() { 1 } else { unit_seconds(unit).ok_or_else(invalid)? };
    // `number` is all ASCII digits, so the only way parsing fails is overflow.
    let count: u64 = number.parse().map_err(|_| Error::TimeOverflow)?;
    let seconds = count.checked_mul(scale).filter(|&seconds| seconds <= MAX_PERIOD).ok_or(Error::TimeOverflow)?;
    if seconds == 0 {
        return Err(invalid());
    }
    Ok(seconds)
}

/// Converts a period given as a Lua number (e.g. `invite_expiry = 86400 * 1.5`) into seconds.
///
/// The number must be finite and at least 1. A fractional part is rounded down, as stored
/// times are whole seconds; this is why anything below one second is rejected rather than
/// turned into zero. Errors: [`Error::InvalidPeriod`] for NaN, infinities and values below 1;
/// [`Error::TimeOverflow`] above `i64::MAX` seconds.
pub fn period_from_number(n: f64) -> Result<u64> {
    if !n.is_finite() || n < 1.0 {
        return Err(Error::InvalidPeriod(n.to_string()));
    }
    // 2^63 is the smallest f64 above i64::MAX; every f64 below it floors to at most i64::MAX.
    if n >= 9_223_372_036_854_775_808.0 {
        return Err(Error::TimeOverflow);
    }
    // In range and non-negative, so the conversion is exact.
    Ok(n.floor() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_periods() {
        let cases = [
            ("604800", 604_800),
            ("1", 1),
            ("007", 7),
            ("  42  ", 42),
            ("1 week", 604_800),
            ("2 days", 172_800),
            ("12h", 43_200),
            ("30min", 1_800),
            ("1s", 1),
            ("5 sec", 5),
            ("5 secs", 5),
            ("1 second", 1),
            ("90 seconds", 90),
            ("1 min", 60),
            ("2 mins", 120),
            ("1 minute", 60),
            ("3 minutes", 180),
            ("1 hour", 3_600),
            ("2 hours", 7_200),
            ("1d", 86_400),
            ("1 day", 86_400),
            ("1w", 604_800),
            ("3 weeks", 1_814_400),
            ("1 mon", 2_592_000),
            ("1 month", 2_592_000),
            ("2 months", 5_184_000),
            ("1y", 31_536_000),
            ("1 year", 31_536_000),
            ("10 years", 315_360_000),
            ("1 WEEK", 604_800),
            ("12H", 43_200),
            ("2 Days", 172_800),
            ("1\tday", 86_400),
            ("1   day", 86_400),
            ("9223372036854775807", 9_223_372_036_854_775_807),
            ("9223372036854775807s", 9_223_372_036_854_775_807),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_period(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn rejects_invalid_periods() {
        let cases = [
            "",
            "   ",
            "0",
            "0 days",
            "000s",
            "1m",
            "5 m",
            "-1",
            "-1 day",
            "+1 day",
            "1.5 days",
            "1,5",
            "day",
            "a week",
            "1 fortnight",
            "1 d ay",
            "1 days ago",
            "1 week 2 days",
            "1d2h",
            "1 mo",
            "1 hr",
            "１ day",
            "1 dayé",
        ];
        for text in cases {
            assert_eq!(parse_period(text), Err(Error::InvalidPeriod(text.to_owned())), "{text}");
        }
    }

    #[test]
    fn rejects_overflow() {
        let cases = [
            "9223372036854775808",
            "18446744073709551616",
            "99999999999999999999999 days",
            "300000000000 years",
            "106751991167301 days",
        ];
        for text in cases {
            assert_eq!(parse_period(text), Err(Error::TimeOverflow), "{text}");
        }
        // The largest whole number of days that still fits.
        assert_eq!(parse_period("106751991167300 days").unwrap(), 9_223_372_036_854_720_000);
    }

    #[test]
    fn from_number() {
        let ok = [
            (1.0, 1),
            (604_800.0, 604_800),
            (129_600.0, 129_600),
            (1.9, 1),
            (3_600.5, 3_600),
            (9_223_372_036_854_774_784.0, 9_223_372_036_854_774_784),
        ];
        for (n, expected) in ok {
            assert_eq!(period_from_number(n).unwrap(), expected, "{n}");
        }
        for n in [0.0, -0.0, 0.5, 0.999, -1.0, -604_800.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(period_from_number(n), Err(Error::InvalidPeriod(_))), "{n}");
        }
        for n in [9_223_372_036_854_775_808.0, 1e19, f64::MAX] {
            assert_eq!(period_from_number(n), Err(Error::TimeOverflow), "{n}");
        }
    }
}
