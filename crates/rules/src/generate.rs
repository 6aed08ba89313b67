//! Arguments of `prosodyctl mod_invites generate`: Prosody 0.12.3's verb, parsed strictly; and
//! [`parse_uses`], its reader of `--uses N`, which the shell's `create_account` and the ad-hoc
//! form share. (The other `prosodyctl mod_invites` verbs are the admin shell's: [`crate::shell`].)
//!
//! Where 0.12.3 printed a warning and carried on (unknown arguments, `--reset` with account
//! flags), every mistake here is an [`Error::Usage`] with a one-line reason.

use std::slice;

use crate::period::parse_period;
use crate::{Error, Result};

/// The role `--admin` grants.
const ADMIN_ROLE: &str = "prosody:admin";

/// Help text for `prosodyctl mod_invites generate`.
pub const GENERATE_USAGE: &str = "\
usage: prosodyctl mod_invites generate HOST [--admin] [--role ROLE]... [--group ID]...
                                            [--room JID]... [--expires-after PERIOD] [--uses N]
       prosodyctl mod_invites generate HOST --reset USER [--expires-after PERIOD]

Create an invite on HOST and print its link: the landing page if one is configured,
otherwise the xmpp: URI.

Options:
  --reset USER            make a password reset link for the existing account USER
                          instead of an invite to create a new account; cannot be
                          combined with --admin, --role, --group or --room
  --admin                 give the new account the role prosody:admin
  --role ROLE             give the new account the role ROLE; may be repeated
  -g ID, --group ID       add the new account to the group ID; may be repeated
  --room JID              make the new account a member of the group chat JID, with
                          a bookmark and an invitation; may be repeated (the room is
                          checked when the invite is used: prosodyctl cannot see rooms)
  --uses N                how many accounts the link may create (default: one)
  --expires-after PERIOD  how long the link stays valid: seconds, or a number and a
                          unit such as \"12h\", \"2 days\", \"1 week\" (default: the
                          host's invite_expiry, or one day for --reset)
  --help                  show this text

Options may come before or after HOST. Long options taking a value also accept
--option=VALUE.";

/// What `generate` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerateCommand {
    /// `--help` was given: print [`GENERATE_USAGE`] and do nothing else.
    Help,
    /// Create an invite.
    Generate(GenerateRequest),
}

/// An invite to create from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateRequest {
    /// The virtual host the invite is for, as typed.
    pub host: String,
    /// Account invite or password reset.
    pub mode: GenerateMode,
    /// `--expires-after` in seconds; `None` means the default lifetime.
    pub expires_after: Option<u64>,
}

/// The kind of invite to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerateMode {
    /// An invite to create a new account.
    Account {
        /// Roles for the new account in the order given, without duplicates (`--admin` adds
        /// "prosody:admin"). Unlike 0.12.3, where the last `--role`/`--admin` silently
        /// replaced the earlier ones, every role given is kept.
        roles: Vec<String>,
        /// Group ids to add the new account to, in the order given, without duplicates.
        groups: Vec<String>,
        /// `--uses N`: how many accounts it may create (`None`: one).
        uses: Option<u32>,
        /// `--room JID`: group chats for the new account, in the order given, without
        /// duplicates (as typed; mod_invites normalises and checks them).
        rooms: Vec<String>,
    },
    /// A password reset link for an existing account.
    Reset {
        /// The account's username, as typed; the caller validates it.
        username: String,
    },
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|existing| existing == value) {
        list.push(value.to_owned());
    }
}

/// The value of flag `name`: the text after `=` if it was written `--name=VALUE`, else the
/// next argument, which must not look like a flag (so a forgotten value is not confused with
/// the next option).
fn take_value<'a>(name: &str, inline: Option<&'a str>, rest: &mut slice::Iter<'a, String>) -> Result<&'a str> {
    let value = match inline {
        Some(value) => value,
        None => match rest.next() {
            Some(next) if !next.starts_with('-') => next.as_str(),
            _ => return Err(Error::usage(format!("{name} needs a value"))),
        },
    };
    if value.is_empty() {
        return Err(Error::usage(format!("{name} needs a non-empty value")));
    }
    Ok(value)
}

/// Parses the arguments that follow `generate`.
///
/// `--help` anywhere wins over everything else, errors included. Options may come before or
/// after HOST; an argument starting with `-` is always taken as an option, so a HOST starting
/// with `-` is reported as an unknown argument. Errors are [`Error::Usage`] naming the
/// problem: a missing, empty or second HOST, an unknown option, a value option without a
/// value (or followed by another option) or with an empty one, `--admin=VALUE`, `--reset` or
/// `--expires-after` given twice, an invalid period, and `--reset` combined with `--admin`,
/// `--role` or `--group`.
pub fn parse_generate(args: &[String]) -> Result<GenerateCommand> {
    if args.iter().any(|arg| arg == "--help") {
        return Ok(GenerateCommand::Help);
    }

    let mut host: Option<&str> = None;
    let mut reset: Option<&str> = None;
    // The first flag only an account invite can use, to name it if `--reset` is also given.
    let mut account_flag: Option<&str> = None;
    let mut roles = Vec::new();
    let mut groups = Vec::new();
    let mut expires_after = None;
    let mut uses = None;
    let mut rooms = Vec::new();

    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if !arg.starts_with('-') {
            if let Some(host) = host {
                return Err(Error::usage(format!("unexpected argument: {arg} (HOST is already {host})")));
            }
            if arg.is_empty() {
                return Err(Error::usage("HOST is empty"));
            }
            host = Some(arg.as_str());
            continue;
        }

        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if arg.starts_with("--") => (name, Some(value)),
            _ => (arg.as_str(), None),
        };
        match name {
            "--admin" => {
                if inline.is_some() {
                    return Err(Error::usage("--admin does not take a value"));
                }
                account_flag.get_or_insert(name);
                push_unique(&mut roles, ADMIN_ROLE);
            }
            "--role" | "--group" | "-g" | "--room" => {
                let value = take_value(name, inline, &mut rest)?;
                account_flag.get_or_insert(name);
                let list = match name {
                    "--role" => &mut roles,
                    "--room" => &mut rooms,
                    _ => &mut groups,
                };
                push_unique(list, value);
            }
            "--reset" => {
                let username = take_value(name, inline, &mut rest)?;
                if reset.is_some() {
                    return Err(Error::usage("--reset given twice"));
                }
                reset = Some(username);
            }
            "--uses" => {
                let value = take_value(name, inline, &mut rest)?;
                account_flag.get_or_insert(name);
                uses = Some(parse_uses(value)?);
            }
            "--expires-after" => {
                let period = take_value(name, inline, &mut rest)?;
                if expires_after.is_some() {
                    return Err(Error::usage("--expires-after given twice"));
                }
                let seconds = parse_period(period).map_err(|e| Error::usage(format!("--expires-after: {e}")))?;
                expires_after = Some(seconds);
            }
            _ => return Err(Error::usage(format!("unknown argument: {name}"))),
        }
    }

    let host = host.ok_or_else(|| Error::usage("missing HOST"))?.to_owned();
    let mode = match (reset, account_flag) {
        (Some(_), Some(flag)) => {
            return Err(Error::usage(format!("--reset cannot be combined with {flag}")));
        }
        (Some(username), None) => GenerateMode::Reset { username: username.to_owned() },
        (None, _) => GenerateMode::Account { roles, groups, uses, rooms },
    };
    Ok(GenerateCommand::Generate(GenerateRequest { host, mode, expires_after }))
}

/// Reads `--uses N`: a whole number of registrations from 1.
pub fn parse_uses(s: &str) -> Result<u32> {
    s.trim()
        .parse::<u32>()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| Error::usage(format!("--uses: expected a whole number from 1, not {s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<GenerateCommand> {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        parse_generate(&args)
    }

    fn account(host: &str, roles: &[&str], groups: &[&str], expires: Option<u64>) -> GenerateCommand {
        GenerateCommand::Generate(GenerateRequest {
            host: host.to_owned(),
            mode: GenerateMode::Account {
                roles: roles.iter().map(|&r| r.to_owned()).collect(),
                groups: groups.iter().map(|&g| g.to_owned()).collect(),
                uses: None,
                rooms: vec![],
            },
            expires_after: expires,
        })
    }

    fn reset(host: &str, username: &str, expires: Option<u64>) -> GenerateCommand {
        GenerateCommand::Generate(GenerateRequest {
            host: host.to_owned(),
            mode: GenerateMode::Reset { username: username.to_owned() },
            expires_after: expires,
        })
    }

    const HOST: &str = "example.com";
    const ADMIN: &str = "prosody:admin";

    #[test]
    fn accepted() {
        let cases: Vec<(&[&str], GenerateCommand)> = vec![
            (&[HOST], account(HOST, &[], &[], None)),
            (&[HOST, "--admin"], account(HOST, &[ADMIN], &[], None)),
            (&[HOST, "--admin", "--admin"], account(HOST, &[ADMIN], &[], None)),
            (&[HOST, "--role", "prosody:member"], account(HOST, &["prosody:member"], &[], None)),
            (&[HOST, "--role=prosody:member"], account(HOST, &["prosody:member"], &[], None)),
            (&[HOST, "--role", "a", "--role", "b", "--role", "a"], account(HOST, &["a", "b"], &[], None)),
            (&[HOST, "--role", "r", "--admin", "--role", ADMIN], account(HOST, &["r", ADMIN], &[], None)),
            (&[HOST, "--group", "friends"], account(HOST, &[], &["friends"], None)),
            (&[HOST, "--group=friends"], account(HOST, &[], &["friends"], None)),
            (&[HOST, "-g", "friends"], account(HOST, &[], &["friends"], None)),
            (&[HOST, "-g", "a", "--group", "b", "--group=a"], account(HOST, &[], &["a", "b"], None)),
            (&[HOST, "--expires-after", "1 week"], account(HOST, &[], &[], Some(604_800))),
            (&[HOST, "--expires-after=12h"], account(HOST, &[], &[], Some(43_200))),
            (&[HOST, "--expires-after", "3600"], account(HOST, &[], &[], Some(3_600))),
            (&[HOST, "--reset", "bob"], reset(HOST, "bob", None)),
            (&[HOST, "--reset=bob"], reset(HOST, "bob", None)),
            (&[HOST, "--reset", "bob", "--expires-after", "2 days"], reset(HOST, "bob", Some(172_800))),
            // Options before HOST.
            (&["--admin", HOST], account(HOST, &[ADMIN], &[], None)),
            (&["--reset", "bob", HOST], reset(HOST, "bob", None)),
            // A value after `=` may start with '-'; only separate values may not.
            (&[HOST, "--role=-odd"], account(HOST, &["-odd"], &[], None)),
            (&[HOST, "--role=a=b"], account(HOST, &["a=b"], &[], None)),
            (
                &[HOST, "--admin", "--role", "r", "-g", "g1", "--group", "g2", "--expires-after", "30min"],
                account(HOST, &[ADMIN, "r"], &["g1", "g2"], Some(1_800)),
            ),
            // --help anywhere, even next to mistakes.
            (&["--help"], GenerateCommand::Help),
            (&[HOST, "--help"], GenerateCommand::Help),
            (&[HOST, "--frob", "--help"], GenerateCommand::Help),
            (&["--role", "--help"], GenerateCommand::Help),
            (&[HOST, "--reset", "bob", "--admin", "--help"], GenerateCommand::Help),
        ];
        for (args, expected) in cases {
            assert_eq!(run(args).unwrap(), expected, "{args:?}");
        }
    }

    #[test]
    fn rejected() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "missing HOST"),
            (&["--admin"], "missing HOST"),
            (&["--role", "r", "-g", "g"], "missing HOST"),
            (&[""], "HOST is empty"),
            (&["-example.com"], "unknown argument: -example.com"),
            (&["-"], "unknown argument: -"),
            (&[HOST, "--frob"], "unknown argument: --frob"),
            (&[HOST, "--frob=1"], "unknown argument: --frob"),
            (&[HOST, "--"], "unknown argument: --"),
            (&[HOST, "-h"], "unknown argument: -h"),
            (&[HOST, "-g=x"], "unknown argument: -g=x"),
            (&[HOST, "--Admin"], "unknown argument: --Admin"),
            (&[HOST, "other.example"], "unexpected argument: other.example (HOST is already example.com)"),
            (&[HOST, "--admin", "x"], "unexpected argument: x (HOST is already example.com)"),
            (&[HOST, "--admin=yes"], "--admin does not take a value"),
            (&[HOST, "--role"], "--role needs a value"),
            (&[HOST, "--role", "--admin"], "--role needs a value"),
            (&[HOST, "--role", "-g", "x"], "--role needs a value"),
            (&[HOST, "--role="], "--role needs a non-empty value"),
            (&[HOST, "--role", ""], "--role needs a non-empty value"),
            (&[HOST, "--group"], "--group needs a value"),
            (&[HOST, "-g"], "-g needs a value"),
            (&[HOST, "-g", "--admin"], "-g needs a value"),
            (&[HOST, "--group="], "--group needs a non-empty value"),
            (&[HOST, "--reset"], "--reset needs a value"),
            (&[HOST, "--reset", "--admin"], "--reset needs a value"),
            (&[HOST, "--reset="], "--reset needs a non-empty value"),
            (&[HOST, "--expires-after"], "--expires-after needs a value"),
            (&[HOST, "--expires-after", ""], "--expires-after needs a non-empty value"),
            (&[HOST, "--reset", "a", "--reset", "b"], "--reset given twice"),
            (&[HOST, "--reset", "a", "--reset=a"], "--reset given twice"),
            (&[HOST, "--expires-after", "1d", "--expires-after", "2d"], "--expires-after given twice"),
            (&[HOST, "--reset", "bob", "--admin"], "--reset cannot be combined with --admin"),
            (&[HOST, "--reset", "bob", "--role", "r"], "--reset cannot be combined with --role"),
            (&[HOST, "--role=r", "--reset", "bob"], "--reset cannot be combined with --role"),
            (&[HOST, "--reset", "bob", "--group", "g"], "--reset cannot be combined with --group"),
            (&[HOST, "-g", "g", "--admin", "--reset", "bob"], "--reset cannot be combined with -g"),
            (&[HOST, "--expires-after", "1m"], "--expires-after: invalid period '1m' (use seconds or e.g. \"1 week\", \"12h\")"),
            (&[HOST, "--expires-after=0"], "--expires-after: invalid period '0' (use seconds or e.g. \"1 week\", \"12h\")"),
            (&[HOST, "--expires-after", "999999999999 years"], "--expires-after: time value out of range"),
        ];
        for (args, reason) in cases {
            assert_eq!(run(args), Err(Error::Usage((*reason).to_owned())), "{args:?}");
        }
    }

    #[test]
    fn uses() {
        let parsed = run(&[HOST, "--uses", "20"]).unwrap();
        let GenerateCommand::Generate(GenerateRequest { mode: GenerateMode::Account { uses, .. }, .. }) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(uses, Some(20));
        for bad in ["0", "-1", "x", "1.5"] {
            assert!(matches!(run(&[HOST, "--uses", bad]), Err(Error::Usage(_))), "{bad}");
        }
        assert_eq!(
            run(&[HOST, "--reset", "bob", "--uses", "2"]),
            Err(Error::Usage("--reset cannot be combined with --uses".into()))
        );
    }

    #[test]
    fn rooms() {
        let parsed = run(&[HOST, "--room", "a@muc", "--room=b@muc", "--room", "a@muc"]).unwrap();
        let GenerateCommand::Generate(GenerateRequest { mode: GenerateMode::Account { rooms, .. }, .. }) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(rooms, ["a@muc", "b@muc"]);
        assert_eq!(run(&[HOST, "--room"]), Err(Error::Usage("--room needs a value".into())));
        assert_eq!(
            run(&[HOST, "--reset", "bob", "--room", "a@muc"]),
            Err(Error::Usage("--reset cannot be combined with --room".into()))
        );
    }

    #[test]
    fn usage_mentions_every_flag() {
        for flag in ["HOST", "--reset", "--admin", "--role", "--group", "-g", "--room", "--expires-after", "--uses", "--help"] {
            assert!(GENERATE_USAGE.contains(flag), "{flag}");
        }
    }
}
