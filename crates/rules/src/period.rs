//! Periods of time in seconds, written the way Prosody 13 accepts them ("604800", "1 week",
//! "12h"): strictly for flags such as `--expires-after` ([`parse_period`]), and for options such
//! as `invite_expiry` exactly as Prosody 13's `module:get_option_period` reads them
//! ([`option_period`]), on 0.12 as well, so one configuration means the same on both.

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
    (&["mon", "month", "months"], MONTH),
    (&["y", "year", "years"], YEAR),
];

/// Prosody 13's month and year (`util.human.io`): 31 days, and 365.2425 days (a whole number
/// of seconds).
const MONTH: u64 = 31 * DAY;
const YEAR: u64 = 31_556_952;

/// What an option set to "never" (or `false`) means: Prosody 13 returns `math.huge`; an invite
/// created with it expires at the last second [`crate::invite::create`] can write.
pub const NEVER: u64 = u64::MAX;

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
/// `d`/`day(s)`, `w`/`week(s)`, `mon`/`month(s)` (31 days) or `y`/`year(s)` (365.2425 days), in any
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

/// A period read from the configuration: its seconds, and whether Prosody 13 would log it as
/// ambiguous (it then still uses the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionPeriod {
    /// The period in seconds.
    pub seconds: u64,
    /// Whether Prosody 13 would log it as ambiguous.
    pub ambiguous: bool,
}

/// Reads a period option written as a string the way Prosody 13's `get_option_period` does:
/// "never" is [`NEVER`]; a well-formed period as [`parse_period`] reads it; otherwise
/// Prosody 13's own matching, which takes the first number anywhere in the text and the unit
/// letters after it (`util.human.io.parse_duration`), then, failing that, its lax variant that
/// also reads "m"/"mo" as months and "mi" as minutes and a missing unit as seconds (flagged
/// ambiguous, as Prosody logs it). Zero is refused rather than creating invites that are
/// expired at birth. Errors: [`Error::InvalidPeriod`], [`Error::TimeOverflow`].
pub fn option_period(s: &str) -> Result<OptionPeriod> {
    if s == "never" {
        return Ok(OptionPeriod { seconds: NEVER, ambiguous: false });
    }
    match parse_period(s) {
        Ok(seconds) => return Ok(OptionPeriod { seconds, ambiguous: false }),
        Err(Error::TimeOverflow) => return Err(Error::TimeOverflow),
        Err(_) => {}
    }
    let invalid = || Error::InvalidPeriod(s.to_owned());
    let lower = s.to_ascii_lowercase();
    let start = lower.find(|c: char| c.is_ascii_digit()).ok_or_else(invalid)?;
    let digits = &lower[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    let (number, after) = digits.split_at(end);
    let unit: Vec<char> = after.trim_start_matches(is_lua_space).chars().take(3).collect();
    let (strict_unit, lax_unit) = prosody_units(&unit);
    let (scale, ambiguous) = match strict_unit.as_str() {
        "s" => (1, false),
        "min" => (MINUTE, false),
        "h" | "ho" => (HOUR, false),
        "d" => (DAY, false),
        "w" => (7 * DAY, false),
        "mon" => (MONTH, false),
        "y" => (YEAR, false),
        _ => match lax_unit.as_str() {
            "s" => (1, true),
            "mi" => (MINUTE, true),
            "h" | "ho" => (HOUR, true),
            "d" => (DAY, true),
            "w" => (7 * DAY, true),
            "m" | "mo" => (MONTH, true),
            "y" => (YEAR, true),
            _ => (1, true),
        },
    };
    let count: u64 = number.parse().map_err(|_| Error::TimeOverflow)?;
    let seconds = count.checked_mul(scale).filter(|&seconds| seconds <= MAX_PERIOD).ok_or(Error::TimeOverflow)?;
    if seconds == 0 {
        return Err(invalid());
    }
    Ok(OptionPeriod { seconds, ambiguous })
}

/// Lua's `%s`.
fn is_lua_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The unit letters Prosody 13 reads after the number: `[smhdwy]?[io]?n?` (strict) and
/// `[smhdwy]?[io]?` (lax), from the (lower-cased) characters that follow it.
fn prosody_units(next: &[char]) -> (String, String) {
    let mut unit = String::new();
    let mut rest = next.iter().copied().peekable();
    if let Some(c) = rest.next_if(|c| "smhdwy".contains(*c)) {
        unit.push(c);
    }
    if let Some(c) = rest.next_if(|c| "io".contains(*c)) {
        unit.push(c);
    }
    let lax = unit.clone();
    if let Some(c) = rest.next_if(|&c| c == 'n') {
        unit.push(c);
    }
    (unit, lax)
}

/// A period as a caller holds it: the Lua value of an option or an argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PeriodValue<'a> {
    /// `false`.
    False,
    /// A number (Lua integer or float).
    Number(f64),
    /// A string.
    Text(&'a str),
    /// Anything else, named by its type.
    Other(&'a str),
}

/// A period given to an API call or on the command line: a number of seconds or a string
/// [`parse_period`] reads. Errors: [`Error::InvalidPeriod`], [`Error::TimeOverflow`].
pub fn period_of(value: PeriodValue<'_>) -> Result<u64> {
    match value {
        PeriodValue::Number(n) => period_from_number(n),
        PeriodValue::Text(s) => parse_period(s),
        PeriodValue::False => Err(Error::InvalidPeriod("false".to_owned())),
        PeriodValue::Other(kind) => Err(Error::InvalidPeriod(kind.to_owned())),
    }
}

/// A period option as Prosody 13's `get_option_period` reads any value: `false` and negative
/// numbers mean [`NEVER`], other numbers are seconds, strings go to [`option_period`].
pub fn option_period_of(value: PeriodValue<'_>) -> Result<OptionPeriod> {
    let exact = |seconds| OptionPeriod { seconds, ambiguous: false };
    match value {
        PeriodValue::False => Ok(exact(NEVER)),
        PeriodValue::Number(n) if n < 0.0 => Ok(exact(NEVER)),
        PeriodValue::Number(n) => period_from_number(n).map(exact),
        PeriodValue::Text(s) => option_period(s),
        PeriodValue::Other(kind) => Err(Error::InvalidPeriod(kind.to_owned())),
    }
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
    fn periods_from_any_value() {
        assert_eq!(period_of(PeriodValue::Number(90.9)), Ok(90));
        assert_eq!(period_of(PeriodValue::Text("1h")), Ok(3600));
        assert!(period_of(PeriodValue::False).is_err());
        assert!(period_of(PeriodValue::Number(-1.0)).is_err());
        assert_eq!(period_of(PeriodValue::Other("table")), Err(Error::InvalidPeriod("table".into())));
        let never = Ok(OptionPeriod { seconds: NEVER, ambiguous: false });
        assert_eq!(option_period_of(PeriodValue::False), never);
        assert_eq!(option_period_of(PeriodValue::Number(-5.0)), never);
        assert_eq!(option_period_of(PeriodValue::Text("never")), never);
        assert_eq!(option_period_of(PeriodValue::Number(60.0)), Ok(OptionPeriod { seconds: 60, ambiguous: false }));
        assert!(option_period_of(PeriodValue::Other("boolean")).is_err());
    }

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
            ("1 mon", 2_678_400),
            ("1 month", 2_678_400),
            ("2 months", 5_356_800),
            ("1y", 31_556_952),
            ("1 year", 31_556_952),
            ("10 years", 315_569_520),
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

    /// What Prosody 13.0.1's `get_option_period` returns for these strings (worked out from
    /// `util.human.io` and `core.moduleapi`), and whether it logs them as ambiguous.
    #[test]
    fn options_read_as_prosody_13_reads_them() {
        let cases = [
            ("1 week", 604_800, false),
            ("2 weeks", 1_209_600, false),
            ("12h", 43_200, false),
            ("1 hour", 3_600, false),
            ("3 seconds", 3, false),
            ("1 month", 2_678_400, false),
            ("1 year", 31_556_952, false),
            ("604800", 604_800, false),
            ("about 3 days", 259_200, false),
            ("3 dogs", 3, true),
            ("-1 day", 86_400, false),
            ("2 DAYS ago", 172_800, false),
            ("1 hr", 3_600, false),
            ("30 m", 2_678_400 * 30, true),
            ("1 mo", 2_678_400, true),
            ("5 mi", 300, true),
            ("1.5 days", 1, true),
            ("7 fortnights", 7, true),
        ];
        for (text, seconds, ambiguous) in cases {
            assert_eq!(option_period(text), Ok(OptionPeriod { seconds, ambiguous }), "{text}");
        }
        assert_eq!(option_period("never"), Ok(OptionPeriod { seconds: NEVER, ambiguous: false }));
        for text in ["", "week", "a week", "0", "0 days"] {
            assert_eq!(option_period(text), Err(Error::InvalidPeriod(text.to_owned())), "{text}");
        }
        assert_eq!(option_period("99999999999999999999 days"), Err(Error::TimeOverflow));
    }
}
