//! `prosodyctl mod_invites generate` and the `--uses N` reader it shares with the shell's
//! `create_account` and the ad-hoc form, from `invites_rules::generate`.

use mlua::{Lua, MultiValue, Table, Value};

use invites_rules::generate::{self, GenerateCommand, GenerateMode};

use crate::convert::fail;

/// `core.parse_generate(args)` -> { help = true } | { host, expires_after, ... } | nil, "bad-request", text
pub(crate) fn parse_generate(lua: &Lua, args: Table) -> mlua::Result<MultiValue> {
    let args: Vec<String> = args.sequence_values::<String>().collect::<mlua::Result<_>>()?;
    let command = match generate::parse_generate(&args) {
        Ok(command) => command,
        Err(e) => return fail(lua, &e),
    };
    let table = lua.create_table()?;
    match command {
        GenerateCommand::Help => table.set("help", true)?,
        GenerateCommand::Generate(request) => {
            table.set("host", request.host)?;
            table.set("expires_after", request.expires_after)?;
            match request.mode {
                GenerateMode::Account { roles, groups, uses, rooms } => {
                    table.set("roles", lua.create_sequence_from(roles)?)?;
                    table.set("groups", lua.create_sequence_from(groups)?)?;
                    table.set("uses", uses)?;
                    table.set("rooms", lua.create_sequence_from(rooms)?)?;
                }
                GenerateMode::Reset { username } => table.set("reset", username)?,
            }
        }
    }
    Ok(MultiValue::from_iter([Value::Table(table)]))
}

/// `core.parse_uses(text)` -> n | nil, "bad-request", text
pub(crate) fn parse_uses(lua: &Lua, text: String) -> mlua::Result<MultiValue> {
    match generate::parse_uses(&text) {
        Ok(n) => Ok(MultiValue::from_iter([Value::Integer(i64::from(n))])),
        Err(e) => fail(lua, &e),
    }
}
