//! The moves between the storage layouts (`invites_rules::migrate`), as methods of the per-host
//! `Invites`: the shim passes what it read of a batch, the core answers the batch's plan in one
//! table, one step per invite (see lua/invites_storage.lib.lua).

use std::collections::HashSet;

use mlua::{Lua, LuaString, Table, Value};

use invites_rules::migrate::{self, Entry, EntryFrom, HostRecord, IntoStock, StockAudit, StockHolding};

use crate::convert::{FieldNames, expiry_of, read_record};

/// The name the per-invite layout indexes a record under (Record::name_key); none for a record
/// that cannot be read.
pub(crate) fn name_key(names: &FieldNames, token: &str, record: &Value) -> Option<String> {
    read_record(names, token, record).ok().flatten().and_then(|record| record.name_key().map(str::to_owned))
}

/// A host-level record as a move at `now` judges it (`now = None`: on a miss).
fn judged(record: &Value, now: Option<i64>) -> mlua::Result<HostRecord> {
    Ok(match record {
        Value::Nil => HostRecord::Absent,
        stored => HostRecord::stored(expiry_of(stored)?, now),
    })
}

/// `migrate_in(batch, entries, host_map, audits, now?) -> { step, ... }`: the plan of a move into
/// the per-invite layout for the tokens of `batch`, given the entries read of them (`entries`,
/// by token) and the stock layout's host-level records and audit records (by token); `now` nil
/// for a move on a miss. One step per token, in order: `{ token, entry = "stored" | "made_up" |
/// nil, record = true | nil, drop_audit = true | nil, count, name_key? }` (see
/// `migrate::IntoEntry`; `name_key` when the entry holds the record and it indexes a name).
pub(crate) fn migrate_in(
    lua: &Lua,
    names: &FieldNames,
    (batch, entries, host_map, audits, now): (Table, Table, Table, Table, Option<i64>),
) -> mlua::Result<Table> {
    let steps = lua.create_table_with_capacity(batch.raw_len(), 0)?;
    for token in batch.sequence_values::<LuaString>() {
        let token = token?;
        let record: Value = host_map.raw_get(&token)?;
        let audit = match audits.raw_get::<Value>(&token)? {
            Value::Nil => StockAudit::Absent,
            Value::Table(_) => StockAudit::Stored,
            _ => StockAudit::Junk,
        };
        let holding = StockHolding { entry: !entries.raw_get::<Value>(&token)?.is_nil(), record: judged(&record, now)?, audit };
        let plan = migrate::into_entry(holding);
        let step = lua.create_table_with_capacity(0, 6)?;
        step.raw_set("count", plan.count.as_str())?;
        match plan.entry {
            Some(EntryFrom::StoredAudit) => step.raw_set("entry", "stored")?,
            Some(EntryFrom::MadeUp) => step.raw_set("entry", "made_up")?,
            None => {}
        }
        if plan.with_record {
            step.raw_set("record", true)?;
            step.raw_set("name_key", name_key(names, &token.to_str()?, &record))?;
        }
        if plan.drop_audit {
            step.raw_set("drop_audit", true)?;
        }
        step.raw_set(&names.token, token)?;
        steps.raw_push(step)?;
    }
    Ok(steps)
}

/// `migrate_out(batch, entries, now) -> { step, ... }`: the plan of a move into the stock layout
/// for the tokens of `batch`, given the entries read of them (`entries`, by token; none for an
/// empty record). A step per token that is not left alone, in order: `{ token, remove = true }`
/// for an empty record, else `{ token, record = true | nil, count, name_key? }` (see
/// `migrate::IntoStock`; `name_key` when the entry holds a record that indexes a name).
pub(crate) fn migrate_out(lua: &Lua, names: &FieldNames, (batch, entries, now): (Table, Table, i64)) -> mlua::Result<Table> {
    let steps = lua.create_table()?;
    for token in batch.sequence_values::<LuaString>() {
        let token = token?;
        let (entry, record) = match entries.raw_get::<Value>(&token)? {
            Value::Nil => (Entry::Empty, Value::Nil),
            Value::Table(entry) => {
                let record: Value = entry.raw_get("record")?;
                (Entry::Invite(judged(&record, Some(now))?), record)
            }
            _ => (Entry::Junk, Value::Nil),
        };
        let step = match migrate::into_stock(entry) {
            IntoStock::Leave => continue,
            IntoStock::RemoveEmpty => lua.create_table_from([("remove", true)])?,
            IntoStock::Move { write_record, count } => {
                let step = lua.create_table_with_capacity(0, 4)?;
                step.raw_set("count", count.as_str())?;
                if write_record {
                    step.raw_set("record", true)?;
                }
                step.raw_set("name_key", name_key(names, &token.to_str()?, &record))?;
                step
            }
        };
        step.raw_set(&names.token, token)?;
        steps.raw_push(step)?;
    }
    Ok(steps)
}

/// `migrate_already(host_map, moved) -> n`: how many of the stock layout's host-level records
/// (`host_map`, as read before a move into it) were there already: not moved from an entry
/// (`moved`, a set of tokens).
pub(crate) fn migrate_already(host_map: &Table, moved: &Table) -> mlua::Result<usize> {
    let tokens = |table: &Table| {
        table.pairs::<LuaString, Value>().map(|pair| Ok(pair?.0.to_string_lossy())).collect::<mlua::Result<Vec<String>>>()
    };
    let (stock, moved) = (tokens(host_map)?, tokens(moved)?);
    let moved: HashSet<&str> = moved.iter().map(String::as_str).collect();
    Ok(migrate::already_in_stock(stock.iter().map(String::as_str), &moved))
}
