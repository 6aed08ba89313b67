//! The admin shell's `invite` verbs (`prosodyctl shell invite VERB ...` on 0.12 and 13) and the
//! `prosodyctl mod_invites VERB ...` commands that run the same verbs with the server stopped.
//!
//! [`SHELL_COMMANDS`] is the one description of a verb: its name, fixed arguments, flags and
//! one line of help. Prosody 13's `help invite`, the usage lines both front ends print
//! ([`ShellCommand::usage`], [`ShellCommand::prosodyctl_usage`], [`prosodyctl_usage`]) and the
//! reading of 0.12's words ([`parse_shell_args`]) all come from it; a test holds the README's
//! table of verbs to it.

use crate::{Error, Result};

/// Description of the admin shell's `invite` section.
pub const SHELL_SECTION_DESC: &str = "Create and manage invitations";

/// Whether `prosodyctl mod_invites VERB` runs a shell verb too (with the server running or
/// stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prosodyctl {
    /// Only in the shell (creating invites there is `generate`'s job).
    No,
    /// `prosodyctl mod_invites VERB` takes the verb's arguments.
    Yes,
    /// As [`Prosodyctl::Yes`], and without HOST (the first argument) it runs for every host
    /// with mod_invites.
    EveryHost,
}

/// One verb of the admin shell's `invite` section, with Prosody 13's names, arguments and flags
/// (flag names are written with `_`, as Prosody's argument parser stores them).
#[derive(Debug)]
pub struct ShellCommand {
    /// The verb (`invite NAME`).
    pub name: &'static str,
    /// One line for `help invite`.
    pub desc: &'static str,
    /// Fixed arguments, in order, as (name, how usage lines show it): the name is what 13's
    /// help shows; the first names the host (a host or a JID).
    pub args: &'static [(&'static str, &'static str)],
    /// Flags taking one value (`--expires-after 1d`), as (name, how usage lines show the value).
    pub value_flags: &'static [(&'static str, &'static str)],
    /// Flags that may be repeated, collecting their values (`--role a --role b`), as (name, how
    /// usage lines show a value).
    pub array_flags: &'static [(&'static str, &'static str)],
    /// Yes/no flags (`--admin`, `--no-admin`, `--allow-registration=yes`).
    pub switches: &'static [&'static str],
    /// 0.12's positional form: switches given as extra arguments, in this order
    /// (`invite:create_contact("user@host", true)`).
    pub positional_switches: &'static [&'static str],
    /// Whether `prosodyctl mod_invites` runs it too.
    pub prosodyctl: Prosodyctl,
}

impl ShellCommand {
    /// A shell-only verb with its fixed arguments and no flags; the builders below add them.
    const fn verb(name: &'static str, desc: &'static str, args: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            name,
            desc,
            args,
            value_flags: &[],
            array_flags: &[],
            switches: &[],
            positional_switches: &[],
            prosodyctl: Prosodyctl::No,
        }
    }

    const fn values(self, value_flags: &'static [(&'static str, &'static str)]) -> Self {
        Self { value_flags, ..self }
    }

    const fn arrays(self, array_flags: &'static [(&'static str, &'static str)]) -> Self {
        Self { array_flags, ..self }
    }

    const fn switches(self, switches: &'static [&'static str]) -> Self {
        Self { switches, ..self }
    }

    const fn positional(self, positional_switches: &'static [&'static str]) -> Self {
        Self { positional_switches, ..self }
    }

    const fn prosodyctl(self, prosodyctl: Prosodyctl) -> Self {
        Self { prosodyctl, ..self }
    }

    fn takes_value(&self, flag: &str) -> bool {
        self.value_flags.iter().any(|(name, _)| *name == flag)
    }

    fn takes_values(&self, flag: &str) -> bool {
        self.array_flags.iter().any(|(name, _)| *name == flag)
    }

    /// The verb's flags as a usage line shows them: repeatable ones, switches, then those with one
    /// value (`[--role ROLE]... [--admin] [--uses N]`).
    fn flags_usage(&self) -> impl Iterator<Item = String> {
        let arrays = self.array_flags.iter().map(|(name, value)| format!("[--{} {value}]...", name.replace('_', "-")));
        let switches = self.switches.iter().map(|name| format!("[--{}]", name.replace('_', "-")));
        let values = self.value_flags.iter().map(|(name, value)| format!("[--{} {value}]", name.replace('_', "-")));
        arrays.chain(switches).chain(values)
    }

    /// The verb's one-line usage in the admin shell: `invite show HOST TOKEN`.
    pub fn usage(&self) -> String {
        self.usage_after("invite", false)
    }

    /// The verb's one-line usage as `prosodyctl mod_invites VERB ...`, if prosodyctl runs it.
    pub fn prosodyctl_usage(&self) -> Option<String> {
        match self.prosodyctl {
            Prosodyctl::No => None,
            Prosodyctl::Yes => Some(self.usage_after("prosodyctl mod_invites", false)),
            Prosodyctl::EveryHost => Some(self.usage_after("prosodyctl mod_invites", true)),
        }
    }

    /// `command`, the verb, its arguments (the first in brackets if `optional_host`), its flags.
    fn usage_after(&self, command: &str, optional_host: bool) -> String {
        let args = self.args.iter().enumerate().map(|(i, (_, shown))| match i {
            0 if optional_host => format!("[{shown}]"),
            _ => (*shown).to_owned(),
        });
        let words = [command.to_owned(), self.name.to_owned()].into_iter().chain(args).chain(self.flags_usage());
        words.collect::<Vec<_>>().join(" ")
    }
}

/// The verbs, as `prosodyctl shell invite VERB ARGS --flags` and `help invite` show them.
pub const SHELL_COMMANDS: &[ShellCommand] = &[
    ShellCommand::verb("create_account", "Create an invitation to make an account on this server with the specified JID (supply only a hostname to allow any username)", &[("user_jid", "HOST|USER@HOST")])
        .values(&[("uses", "N"), ("expires_after", "PERIOD")])
        .arrays(&[("role", "ROLE"), ("group", "ID"), ("room", "JID")])
        .switches(&["admin"]),
    ShellCommand::verb("create_reset", "Create a password reset link for the specified user", &[("user_jid", "USER@HOST")])
        .values(&[("expires_after", "PERIOD")]),
    ShellCommand::verb("create_contact", "Create an invitation to become contacts with the specified user", &[("user_jid", "USER@HOST")])
        .values(&[("expires_after", "PERIOD")])
        .arrays(&[("room", "JID")])
        .switches(&["allow_registration"])
        .positional(&["allow_registration"]),
    ShellCommand::verb("list", "List pending invitations of every kind (--kind account|reset|contact|account-and-contact, --creator JID)", &[("host", "HOST")])
        .values(&[("kind", "KIND"), ("creator", "JID")])
        .prosodyctl(Prosodyctl::Yes),
    ShellCommand::verb("show", "Show details of an invitation token: kind, creator, state, who used it", &[("host", "HOST"), ("token", "TOKEN")])
        .prosodyctl(Prosodyctl::Yes),
    ShellCommand::verb("delete", "Delete/revoke an invitation token", &[("host", "HOST"), ("token", "TOKEN")])
        .prosodyctl(Prosodyctl::Yes),
    ShellCommand::verb("revoke_by", "Revoke every pending invitation the specified account (or source, e.g. prosodyctl) created (--tree: and every account that came from its invites, recursively)", &[("host", "HOST"), ("creator", "CREATOR")])
        .switches(&["tree"])
        .prosodyctl(Prosodyctl::Yes),
    ShellCommand::verb("tree", "Show the accounts that came from the specified account's invites, recursively, with dates and the invite each used", &[("host", "HOST"), ("user_jid", "JID")])
        .prosodyctl(Prosodyctl::Yes),
    ShellCommand::verb("check", "Check the configuration of a host for invites: one line per problem, with what to change", &[("host", "HOST")])
        .prosodyctl(Prosodyctl::EveryHost),
    ShellCommand::verb("migrate", "Move every invitation into a storage layout: --to records (one record per invite, the default) or --to stock (what the stock modules read)", &[("host", "HOST")])
        .values(&[("to", "records|stock")])
        .prosodyctl(Prosodyctl::Yes),
];

/// What `prosodyctl mod_invites` alone (or with an unknown verb) prints: its verbs in one line.
pub fn prosodyctl_usage() -> String {
    let verbs = SHELL_COMMANDS.iter().filter(|command| command.prosodyctl != Prosodyctl::No).map(|command| command.name);
    let verbs = ["generate"].into_iter().chain(verbs).collect::<Vec<_>>().join("|");
    format!("usage: prosodyctl mod_invites {verbs} HOST [options] (see generate --help)")
}

/// A flag's value as the shell verbs receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagValue {
    /// A value flag's value.
    Text(String),
    /// An array flag's values, in order.
    List(Vec<String>),
    /// A switch, on or off.
    Switch(bool),
}

/// A shell verb's arguments: the fixed ones in order, and the flags by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellArgs {
    /// The fixed arguments, in order.
    pub args: Vec<String>,
    /// The flags given, by name (as `_`-names).
    pub flags: Vec<(String, FlagValue)>,
}

impl ShellArgs {
    fn set(&mut self, name: &str, value: FlagValue) {
        match (self.flags.iter_mut().find(|(existing, _)| existing == name), value) {
            (Some((_, FlagValue::List(list))), FlagValue::List(more)) => list.extend(more),
            (Some((_, slot)), value) => *slot = value,
            (None, value) => self.flags.push((name.to_owned(), value)),
        }
    }
}

/// Parses a verb's arguments as Prosody 0.12's shell passes them: every word after the verb as
/// a string (`prosodyctl shell invite create_account example.com --role r` arrives as
/// `invite:create_account("example.com", "--role", "r")`). Flags are read as Prosody 13 reads
/// them for the same verb, so the same command line works on both; extra words fill the
/// verb's positional switches. Errors: [`Error::Usage`] with the reason.
pub fn parse_shell_args(command: &ShellCommand, words: &[String]) -> Result<ShellArgs> {
    let mut parsed = ShellArgs::default();
    let mut extra = Vec::new();
    let mut rest = words.iter();
    while let Some(word) = rest.next() {
        let Some(flag) = word.strip_prefix("--").filter(|flag| !flag.is_empty()) else {
            if parsed.args.len() < command.args.len() {
                parsed.args.push(word.clone());
            } else {
                extra.push(word.as_str());
            }
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.replace('-', "_"), Some(value)),
            None => (flag.replace('-', "_"), None),
        };
        let is_value = command.takes_value(&name);
        if is_value || command.takes_values(&name) {
            let value = match inline {
                Some(value) => value,
                None => rest.next().map(String::as_str).ok_or_else(|| Error::usage(format!("Expected value after {word}")))?,
            };
            let value = if is_value { FlagValue::Text(value.to_owned()) } else { FlagValue::List(vec![value.to_owned()]) };
            parsed.set(&name, value);
            continue;
        }
        let (name, on) = match name.strip_prefix("no_") {
            Some(name) if inline.is_none() => (name.to_owned(), false),
            _ => (name, true),
        };
        if !command.switches.contains(&name.as_str()) {
            return Err(Error::usage(format!("Unknown parameter: {word}")));
        }
        let on = match inline {
            Some(value) => parse_flag(value).ok_or_else(|| Error::usage(format!("{word}: expected yes or no")))?,
            None => on,
        };
        parsed.set(&name, FlagValue::Switch(on));
    }
    if extra.len() > command.positional_switches.len() {
        return Err(Error::usage(format!("Unexpected argument: {}", extra[command.positional_switches.len()])));
    }
    for (name, word) in command.positional_switches.iter().zip(extra) {
        let on = parse_flag(word).ok_or_else(|| Error::usage(format!("{name}: expected true or false, not {word}")))?;
        parsed.set(name, FlagValue::Switch(on));
    }
    Ok(parsed)
}

/// Reads a yes/no argument. The admin shell passes everything as a string, and stock Prosody
/// took the string "false" as true; here "false", "no", "off" and "0" mean false.
pub fn parse_flag(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "y" => Some(true),
        "false" | "no" | "off" | "0" | "n" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_like_a_person_means_them() {
        let cases = [
            ("true", Some(true)),
            ("YES", Some(true)),
            ("1", Some(true)),
            ("false", Some(false)),
            ("no", Some(false)),
            ("0", Some(false)),
            (" off ", Some(false)),
            ("", Some(false)),
            ("maybe", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_flag(input), expected, "{input:?}");
        }
    }

    fn shell(name: &str, words: &[&str]) -> Result<ShellArgs> {
        let command = SHELL_COMMANDS.iter().find(|c| c.name == name).unwrap();
        parse_shell_args(command, &words.iter().map(|&w| w.to_owned()).collect::<Vec<_>>())
    }

    fn text(s: &str) -> FlagValue {
        FlagValue::Text(s.to_owned())
    }

    fn list(items: &[&str]) -> FlagValue {
        FlagValue::List(items.iter().map(|&i| i.to_owned()).collect())
    }

    #[test]
    fn shell_words_parse_as_prosody_13_parses_them() {
        let parsed =
            shell("create_account", &["example.com", "--role", "a", "--admin", "--role=b", "--expires-after", "1d"]).unwrap();
        assert_eq!(parsed.args, ["example.com"]);
        assert_eq!(
            parsed.flags,
            [
                ("role".to_owned(), list(&["a", "b"])),
                ("admin".to_owned(), FlagValue::Switch(true)),
                ("expires_after".to_owned(), text("1d"))
            ]
        );
        let parsed = shell("create_contact", &["alice@example.com", "--no-allow-registration"]).unwrap();
        assert_eq!(parsed.flags, [("allow_registration".to_owned(), FlagValue::Switch(false))]);
        let parsed = shell("create_contact", &["alice@example.com", "--allow-registration=yes"]).unwrap();
        assert_eq!(parsed.flags, [("allow_registration".to_owned(), FlagValue::Switch(true))]);
        // 0.12's own form: allow_registration as a second argument.
        let parsed = shell("create_contact", &["alice@example.com", "true"]).unwrap();
        assert_eq!(parsed.flags, [("allow_registration".to_owned(), FlagValue::Switch(true))]);
        assert_eq!(shell("show", &["example.com", "T0KEN"]).unwrap().args, ["example.com", "T0KEN"]);
        assert_eq!(shell("list", &[]).unwrap(), ShellArgs::default());
    }

    #[test]
    fn rooms_collect() {
        let parsed = shell("create_contact", &["alice@example.com", "--room", "a@muc", "--room", "b@muc"]).unwrap();
        assert_eq!(parsed.flags, [("room".to_owned(), list(&["a@muc", "b@muc"]))]);
        let parsed = shell("create_account", &["example.com", "--room=a@muc"]).unwrap();
        assert_eq!(parsed.flags, [("room".to_owned(), list(&["a@muc"]))]);
    }

    #[test]
    fn shell_mistakes_are_usage_errors() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("create_account", &["example.com", "--frob"], "Unknown parameter: --frob"),
            ("create_account", &["example.com", "--role"], "Expected value after --role"),
            ("create_reset", &["bob@example.com", "--admin"], "Unknown parameter: --admin"),
            ("create_account", &["example.com", "other"], "Unexpected argument: other"),
            ("create_contact", &["alice@example.com", "maybe"], "allow_registration: expected true or false, not maybe"),
            (
                "create_contact",
                &["alice@example.com", "--allow-registration=perhaps"],
                "--allow-registration=perhaps: expected yes or no",
            ),
            ("list", &["example.com", "more"], "Unexpected argument: more"),
        ];
        for (name, words, reason) in cases {
            assert_eq!(shell(name, words), Err(Error::Usage((*reason).to_owned())), "{name} {words:?}");
        }
    }

    #[test]
    fn usage_lines_come_from_the_table() {
        let line = |name: &str| SHELL_COMMANDS.iter().find(|c| c.name == name).unwrap();
        assert_eq!(
            line("create_account").usage(),
            "invite create_account HOST|USER@HOST [--role ROLE]... [--group ID]... [--room JID]... [--admin] [--uses N] [--expires-after PERIOD]"
        );
        assert_eq!(line("show").usage(), "invite show HOST TOKEN");
        assert_eq!(line("show").prosodyctl_usage().as_deref(), Some("prosodyctl mod_invites show HOST TOKEN"));
        assert_eq!(line("check").prosodyctl_usage().as_deref(), Some("prosodyctl mod_invites check [HOST]"));
        assert_eq!(line("create_reset").prosodyctl_usage(), None);
        assert_eq!(
            prosodyctl_usage(),
            "usage: prosodyctl mod_invites generate|list|show|delete|revoke_by|tree|check|migrate HOST [options] (see generate --help)"
        );
    }

    /// The README's tables of verbs (the first two code blocks under "## Command line and admin
    /// shell"), one line per verb: a usage line, then optionally two spaces and a remark.
    fn readme_tables() -> (Vec<String>, Vec<String>) {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let section = readme.split("\n## Command line and admin shell\n").nth(1).unwrap();
        let mut blocks = section.split("```").skip(1).step_by(2).map(|block| {
            block
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| line.split("  ").next().unwrap_or("").trim().to_owned())
                .collect()
        });
        (blocks.next().unwrap(), blocks.next().unwrap())
    }

    #[test]
    fn readme_tables_show_every_verb_as_the_table_does() {
        let (shell_table, prosodyctl_table) = readme_tables();
        let shell_lines: Vec<String> = SHELL_COMMANDS.iter().map(|c| format!("prosodyctl shell {}", c.usage())).collect();
        for line in &shell_lines {
            assert!(shell_table.contains(line), "README lacks the line\n{line}\nin\n{}", shell_table.join("\n"));
        }
        for line in shell_table.iter().filter(|line| line.starts_with("prosodyctl shell invite ")) {
            assert!(shell_lines.contains(line), "README shows a verb the shell does not have, or not as it has it:\n{line}");
        }
        let ctl_lines: Vec<String> = SHELL_COMMANDS.iter().filter_map(ShellCommand::prosodyctl_usage).collect();
        for line in &ctl_lines {
            assert!(prosodyctl_table.contains(line), "README lacks the line\n{line}\nin\n{}", prosodyctl_table.join("\n"));
        }
        for line in prosodyctl_table.iter().filter(|line| !line.starts_with("prosodyctl mod_invites generate ")) {
            assert!(ctl_lines.contains(line), "README shows a verb prosodyctl does not have, or not as it has it:\n{line}");
        }
    }

    #[test]
    fn readme_names_no_verb_that_does_not_exist() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let verbs: Vec<&str> = SHELL_COMMANDS.iter().map(|c| c.name).collect();
        let ctl_verbs: Vec<&str> =
            SHELL_COMMANDS.iter().filter(|c| c.prosodyctl != Prosodyctl::No).map(|c| c.name).chain(["generate"]).collect();
        // What follows each marker; 0.12's Lua form (`invite:tree("HOST", "JID")`) has arguments
        // in quotes, an invite object's methods (`invite:use()`) do not.
        let named = |marker: &str| -> Vec<String> {
            let names = readme.split(marker).skip(1).filter_map(|rest| {
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                (!name.is_empty() && (marker != "invite:" || rest[name.len()..].starts_with("(\""))).then_some(name)
            });
            names.collect()
        };
        for (marker, known) in
            [("shell invite ", &verbs), ("`invite ", &verbs), ("invite:", &verbs), ("prosodyctl mod_invites ", &ctl_verbs)]
        {
            for name in named(marker) {
                assert!(known.contains(&name.as_str()), "README names {marker}{name}, which is no verb");
            }
        }
    }
}
