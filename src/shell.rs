//! The admin shell's and `prosodyctl mod_invites`' verbs: their descriptions and argument parsing.

use mlua::{Lua, MultiValue, Table, Value};

use invites_rules::Error;
use invites_rules::cli::{self, GenerateCommand, GenerateMode};

use crate::convert::fail;

/// The admin shell's verbs in the shape of Prosody 13's `shell-command` items (without handlers).
pub(crate) fn shell_commands(lua: &Lua) -> mlua::Result<Table> {
    let commands = lua.create_table()?;
    for command in cli::SHELL_COMMANDS {
        let args = lua.create_table()?;
        for name in command.args {
            args.push(lua.create_table_from([("name", *name), ("type", "string")])?)?;
        }
        let set = |names: &[&str]| lua.create_table_from(names.iter().map(|&name| (name, true)));
        // Verbs without flags have none, so 13's help lists no empty "Flags:".
        let flags = if command.value_flags.is_empty() && command.array_flags.is_empty() && command.switches.is_empty() {
            None
        } else {
            let flags = lua.create_table()?;
            flags.set("value_params", set(command.value_flags)?)?;
            flags.set("array_params", set(command.array_flags)?)?;
            flags.set("kv_params", set(command.switches)?)?;
            Some(flags)
        };
        let item = lua.create_table()?;
        item.set("section", "invite")?;
        item.set("section_desc", cli::SHELL_SECTION_DESC)?;
        item.set("name", command.name)?;
        item.set("desc", command.desc)?;
        item.set("args", args)?;
        item.set("host_selector", command.args.first().copied())?;
        item.set("flags", flags)?;
        commands.push(item)?;
    }
    Ok(commands)
}

/// Prosody 0.12's shell form of a verb's words: the fixed arguments as a list and the flags as a
/// table shaped like Prosody 13's parsed flags; or `nil, "bad-request", text`.
pub(crate) fn parse_shell_args(lua: &Lua, (name, words): (String, Table)) -> mlua::Result<MultiValue> {
    let Some(command) = cli::SHELL_COMMANDS.iter().find(|command| command.name == name) else {
        return fail(lua, &Error::Usage(format!("no such command: {name}")));
    };
    let words: Vec<String> = words.sequence_values::<String>().collect::<mlua::Result<_>>()?;
    let parsed = match cli::parse_shell_args(command, &words) {
        Ok(parsed) => parsed,
        Err(e) => return fail(lua, &e),
    };
    let flags = lua.create_table()?;
    for (name, value) in parsed.flags {
        match value {
            cli::FlagValue::Text(text) => flags.set(name, text)?,
            cli::FlagValue::List(list) => flags.set(name, lua.create_sequence_from(list)?)?,
            cli::FlagValue::Switch(on) => flags.set(name, on)?,
        }
    }
    Ok(MultiValue::from_iter([Value::Table(lua.create_sequence_from(parsed.args)?), Value::Table(flags)]))
}

/// `core.parse_flag(value)` -> boolean | nil, "bad-request", text
pub(crate) fn parse_flag(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    let flag = match &value {
        Value::Nil => Some(false),
        Value::Boolean(b) => Some(*b),
        Value::String(s) => s.to_str().ok().and_then(|s| cli::parse_flag(&s)),
        _ => None,
    };
    match flag {
        Some(flag) => Ok(MultiValue::from_iter([Value::Boolean(flag)])),
        None => fail(lua, &Error::Usage("expected true or false".to_owned())),
    }
}

/// `core.parse_generate(args)` -> { help = true } | { host, expires_after, ... } | nil, "bad-request", text
pub(crate) fn parse_generate(lua: &Lua, args: Table) -> mlua::Result<MultiValue> {
    let args: Vec<String> = args.sequence_values::<String>().collect::<mlua::Result<_>>()?;
    let command = match cli::parse_generate(&args) {
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
