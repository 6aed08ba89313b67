//! Exports of the invite lifecycle: states, uses left, quotas.

use mlua::{Lua, MultiValue, Table, Value};

use invites_rules::lifecycle;

use invites_rules::Error;

use crate::convert::{bool_field, fail, read_max_uses, required_bool, seconds, str_field};

/// lifecycle(facts, now, retention) -> { state, uses_left? (nil: unlimited), purge_audit,
///   revoke_removes, revoke_records (what revoking it does: Revocation) }
///   | nil, code, reason (a fact missing or of the wrong type)
/// facts = { stored, expires, uses, max_uses?, reusable?, revoked_at?, last_use? }
pub(crate) fn lifecycle(lua: &Lua, (facts, now, retention): (Table, i64, i64)) -> mlua::Result<MultiValue> {
    let seconds = |key: &str| -> mlua::Result<Option<i64>> { Ok(seconds(&facts.raw_get::<Value>(key)?)) };
    let uses = match facts.raw_get::<Value>("uses")? {
        Value::Integer(n) => u32::try_from(n).unwrap_or(u32::MAX),
        _ => return fail(lua, &Error::BadField("uses")),
    };
    let (stored, expires) = match (required_bool(&facts, "stored"), seconds("expires")?) {
        (Ok(stored), Some(expires)) => (stored, expires),
        (Err(e), _) => return fail(lua, &e),
        (_, None) => return fail(lua, &Error::BadField("expires")),
    };
    let known = lifecycle::Facts {
        stored,
        expires,
        uses,
        max_uses: read_max_uses(&facts.raw_get("max_uses")?).limit(),
        reusable: bool_field(&facts, "reusable"),
        revoked_at: seconds("revoked_at")?,
    };
    let ended = lifecycle::ended_at(&known, seconds("last_use")?, now);
    let revocation = lifecycle::revocation(&known, now);
    let table = lua.create_table()?;
    table.set("state", lifecycle::state(&known, now).as_str())?;
    table.set("revoke_removes", revocation.removes)?;
    table.set("revoke_records", revocation.records)?;
    table.set("uses_left", lifecycle::uses_left(known.max_uses, known.reusable, uses))?;
    table.set("purge_audit", lifecycle::audit_expired(ended, u64::try_from(retention).unwrap_or(0), now))?;
    Ok(MultiValue::from_iter([Value::Table(table)]))
}

/// quota_check(created_at_list, pending, quota? = { count, period, period_text }, max_pending?, now)
///   -> true | nil, "quota-exceeded", text (the sentence for the user)
pub(crate) fn quota_check(
    lua: &Lua,
    (created, pending, quota, max_pending, now): (Table, u32, Option<Table>, Option<u32>, i64),
) -> mlua::Result<MultiValue> {
    let created: Vec<i64> = created.sequence_values::<i64>().collect::<mlua::Result<_>>()?;
    let quota = match quota {
        Some(quota) => Some(lifecycle::Quota {
            count: quota.raw_get("count")?,
            period: quota.raw_get("period")?,
            period_text: str_field(&quota, "period_text").unwrap_or_default(),
        }),
        None => None,
    };
    match lifecycle::quota_check(&created, pending, quota.as_ref(), max_pending, now) {
        Ok(()) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(refusal) => fail(lua, &refusal),
    }
}
