//! Exports on plain values: tokens, periods, `xmpp:` URIs and XEP-0082 times.

use mlua::{Lua, MultiValue, Value};

use invites_rules::{Error, period, token};

use crate::convert::fail;

/// `core.check_token(token)` -> true | nil, code, text
pub(crate) fn check_token(lua: &Lua, token: Value) -> mlua::Result<MultiValue> {
    match token {
        Value::Nil => fail(lua, &Error::NoToken),
        Value::String(s) if s.to_str().is_ok_and(|s| token::check_token(&s).is_ok()) => {
            Ok(MultiValue::from_iter([Value::Boolean(true)]))
        }
        _ => fail(lua, &Error::TokenInvalid),
    }
}

/// `core.redact(token)`: what a log line may show of a token (a short prefix); any other value
/// is shown as its type.
pub(crate) fn redact(_lua: &Lua, value: Value) -> mlua::Result<String> {
    Ok(match &value {
        Value::String(s) => token::redact(&s.to_string_lossy()),
        other => format!("<{}>", other.type_name()),
    })
}

/// `core.parse_period(value)` -> seconds | nil, "bad-request", text
pub(crate) fn parse_period(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    let parsed = match &value {
        Value::Integer(n) => period::period_from_number(*n as f64),
        Value::Number(n) => period::period_from_number(*n),
        Value::String(s) => period::parse_period(&s.to_str()?),
        other => Err(Error::InvalidPeriod(other.type_name().to_owned())),
    };
    match parsed {
        Ok(seconds) => Ok(MultiValue::from_iter([Value::Integer(i64::try_from(seconds).unwrap_or(i64::MAX))])),
        Err(e) => fail(lua, &e),
    }
}

/// A period option as Prosody 13's `get_option_period` reads it: seconds and, when Prosody would
/// log it as ambiguous, `true`; or `nil, "bad-request", text`.
pub(crate) fn option_period(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    let parsed = match &value {
        Value::Boolean(false) => Ok(period::OptionPeriod { seconds: period::NEVER, ambiguous: false }),
        // Prosody 13 treats a negative period as "never".
        Value::Integer(n) if *n < 0 => Ok(period::OptionPeriod { seconds: period::NEVER, ambiguous: false }),
        Value::Number(n) if *n < 0.0 => Ok(period::OptionPeriod { seconds: period::NEVER, ambiguous: false }),
        Value::Integer(n) => {
            period::period_from_number(*n as f64).map(|seconds| period::OptionPeriod { seconds, ambiguous: false })
        }
        Value::Number(n) => period::period_from_number(*n).map(|seconds| period::OptionPeriod { seconds, ambiguous: false }),
        Value::String(s) => period::option_period(&s.to_str()?),
        other => Err(Error::InvalidPeriod(other.type_name().to_owned())),
    };
    match parsed {
        Ok(period) => Ok(MultiValue::from_iter([
            Value::Integer(i64::try_from(period.seconds).unwrap_or(i64::MAX)),
            Value::Boolean(period.ambiguous),
        ])),
        Err(e) => fail(lua, &e),
    }
}
