//! The core's errors as Lua sees them beside `nil, code, text`: the XMPP error a client gets and
//! the reason in words.

use mlua::{Lua, Table, Value};

use crate::convert::error_of;

/// `core.stanza_error(code, text?, host?)` -> { type, condition, text }: the XMPP error for a
/// failure (`nil, code, text` of this library or of mod_invites' API) as the client sees it.
pub(crate) fn stanza_error(lua: &Lua, (code, text, host): (Value, Value, Option<String>)) -> mlua::Result<Table> {
    let error = error_of(&code, &text).stanza_error(host.as_deref().unwrap_or("this server"));
    let table = lua.create_table_with_capacity(0, 3)?;
    table.set("type", error.kind)?;
    table.set("condition", error.condition)?;
    table.set("text", error.text)?;
    Ok(table)
}

/// `core.error_text(code, text?)` -> the reason an error's code (and text) stands for, in words
pub(crate) fn error_text(_lua: &Lua, (code, text): (Value, Value)) -> mlua::Result<String> {
    Ok(error_of(&code, &text).to_string())
}
