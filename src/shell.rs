//! The admin shell's `invite` verbs (also `prosodyctl mod_invites VERB`): their descriptions,
//! usage lines and the reading of 0.12's words, from `invites_rules::shell::SHELL_COMMANDS`.

use mlua::{Lua, MultiValue, Table, Value};

use invites_rules::Error;
use invites_rules::shell as verbs;

use crate::convert::fail;

/// `core.shell_commands`: the verbs in the shape of Prosody 13's `shell-command` items (without
/// handlers), each with its usage lines.
pub(crate) fn shell_commands(lua: &Lua) -> mlua::Result<Table> {
    let commands = lua.create_table()?;
    for command in verbs::SHELL_COMMANDS {
        let args = lua.create_table()?;
        for (name, _) in command.args {
            args.push(lua.create_table_from([("name", *name), ("type", "string")])?)?;
        }
        let set = |names: &mut dyn Iterator<Item = &str>| lua.create_table_from(names.map(|name| (name, true)));
        // Verbs without flags have none, so 13's help lists no empty "Flags:".
        let flags = if command.value_flags.is_empty() && command.array_flags.is_empty() && command.switches.is_empty() {
            None
        } else {
            let flags = lua.create_table()?;
            flags.set("value_params", set(&mut command.value_flags.iter().map(|(name, _)| *name))?)?;
            flags.set("array_params", set(&mut command.array_flags.iter().map(|(name, _)| *name))?)?;
            flags.set("kv_params", set(&mut command.switches.iter().copied())?)?;
            Some(flags)
        };
        let item = lua.create_table()?;
        item.set("section", "invite")?;
        item.set("section_desc", verbs::SHELL_SECTION_DESC)?;
        item.set("name", command.name)?;
        item.set("desc", command.desc)?;
        item.set("args", args)?;
        item.set("host_selector", command.args.first().map(|(name, _)| *name))?;
        item.set("flags", flags)?;
        // Ours, beside 13's fields: the one-line usage in the shell and as `prosodyctl mod_invites
        // VERB` (nil: the shell's only).
        item.set("usage", command.usage())?;
        item.set("prosodyctl_usage", command.prosodyctl_usage())?;
        commands.push(item)?;
    }
    Ok(commands)
}

/// `core.parse_shell_args(verb, words)` -> args, flags: 0.12's shell form of a verb's words: the fixed arguments as a list and the flags as a
/// table shaped like Prosody 13's parsed flags; or `nil, "bad-request", text`.
pub(crate) fn parse_shell_args(lua: &Lua, (name, words): (String, Table)) -> mlua::Result<MultiValue> {
    let Some(command) = verbs::SHELL_COMMANDS.iter().find(|command| command.name == name) else {
        return fail(lua, &Error::Usage(format!("no such command: {name}")));
    };
    let words: Vec<String> = words.sequence_values::<String>().collect::<mlua::Result<_>>()?;
    let parsed = match verbs::parse_shell_args(command, &words) {
        Ok(parsed) => parsed,
        Err(e) => return fail(lua, &e),
    };
    let flags = lua.create_table()?;
    for (name, value) in parsed.flags {
        match value {
            verbs::FlagValue::Text(text) => flags.set(name, text)?,
            verbs::FlagValue::List(list) => flags.set(name, lua.create_sequence_from(list)?)?,
            verbs::FlagValue::Switch(on) => flags.set(name, on)?,
        }
    }
    Ok(MultiValue::from_iter([Value::Table(lua.create_sequence_from(parsed.args)?), Value::Table(flags)]))
}

/// `core.parse_flag(value)` -> boolean | nil, "bad-request", text
pub(crate) fn parse_flag(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    let flag = match &value {
        Value::Nil => Some(false),
        Value::Boolean(b) => Some(*b),
        Value::String(s) => s.to_str().ok().and_then(|s| verbs::parse_flag(&s)),
        _ => None,
    };
    match flag {
        Some(flag) => Ok(MultiValue::from_iter([Value::Boolean(flag)])),
        None => fail(lua, &Error::Usage("expected true or false".to_owned())),
    }
}
