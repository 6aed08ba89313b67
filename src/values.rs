//! Exports on plain values: tokens, periods, `xmpp:` URIs and XEP-0082 times.

use mlua::{Lua, MultiValue, Table, Value};

use invites_rules::period::{self, PeriodValue};
use invites_rules::{Error, token};

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

/// Hands a Lua value to `rule` as the core's period rules take it (a string that is not UTF-8
/// is refused).
fn with_period_value<T>(value: &Value, rule: impl FnOnce(PeriodValue<'_>) -> T) -> mlua::Result<T> {
    Ok(match value {
        Value::Boolean(false) => rule(PeriodValue::False),
        Value::Integer(n) => rule(PeriodValue::Number(*n as f64)),
        Value::Number(n) => rule(PeriodValue::Number(*n)),
        Value::String(s) => rule(PeriodValue::Text(&s.to_str()?)),
        other => rule(PeriodValue::Other(other.type_name())),
    })
}

/// `core.parse_period(value)` -> seconds | nil, "bad-request", text
pub(crate) fn parse_period(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    match with_period_value(&value, period::period_of)? {
        Ok(seconds) => Ok(MultiValue::from_iter([Value::Integer(i64::try_from(seconds).unwrap_or(i64::MAX))])),
        Err(e) => fail(lua, &e),
    }
}

/// `core.option_period(value)` -> seconds, ambiguous | nil, "bad-request", text: a period option
/// as Prosody 13's `get_option_period` reads it (ambiguous: Prosody would log it as such).
pub(crate) fn option_period(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    match with_period_value(&value, period::option_period_of)? {
        Ok(period) => Ok(MultiValue::from_iter([
            Value::Integer(i64::try_from(period.seconds).unwrap_or(i64::MAX)),
            Value::Boolean(period.ambiguous),
        ])),
        Err(e) => fail(lua, &e),
    }
}

/// `core.ns`: `{ name = namespace, ... }`, the XML namespaces the shims use (`invites_rules::ns`).
pub(crate) fn ns(lua: &Lua) -> mlua::Result<Table> {
    lua.create_table_from(invites_rules::ns::ALL.iter().copied())
}
