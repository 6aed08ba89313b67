//! invites_core: the Lua module (`require "invites_core"`), the binding of the rules in
//! `invites_rules` (crates/rules) to Lua; the package is `invites-lua`.
//!
//! It converts Lua values to core types and back, draws token bytes from the OS random source,
//! hands the core's [`invites_rules::Error`] to Lua as `nil, code, text` (reading codes that come
//! back once, with `Error::from_code`) and forwards the core's `tracing` diagnostics to the
//! logger the shim passes in. Misuse (a wrong argument type) raises a Lua error; expected
//! failures never do.
//!
//! # Exports
//!
//! [`invites_core`] builds the module's table in one place: one line per export, grouped by
//! feature, each under a comment giving its Lua signature. One naming rule: an export's Lua name
//! is the name of the Rust item behind it — a function in the module of its feature
//! (`src/FEATURE.rs`), or a constant in lower case. What only one feature's Lua lib uses sits in
//! a sub-table named after the feature (`adhoc`, `rooms`, `roles`, `notify`, `tree`), built by
//! that module's `FEATURE_exports`, which gives each entry's signature. `spec/binding_exports_spec.lua`
//! pins the names, so a new export is added here, documented, or the spec fails.

mod adhoc;
mod convert;
mod errors;
mod generate;
mod invites;
mod lifecycle;
mod log;
mod registration;
mod roles;
mod rooms;
mod shell;
mod telling;
mod values;
mod web;

use mlua::{Lua, Table};

use invites_rules::{invite, ns};

/// The binding's version (the package's).
const VERSION: &str = env!("CARGO_PKG_VERSION");

// skip_memory_check: Prosody gives Lua no memory limit, so an allocation fails only when the whole
// process is out of memory. mlua then pushes strings and stores table fields directly instead of
// wrapping each in a protected call, which halves the cost of every call into this library
// (`make bench`, figure 1).
#[mlua::lua_module(skip_memory_check)]
fn invites_core(lua: &Lua) -> mlua::Result<Table> {
    let exports = lua.create_table()?;
    // version: "x.y.z"
    exports.set("version", VERSION)?;

    // The invite store (mod_invites)
    // new(host, log, now) -> the store of one host (its methods: src/invites.rs)
    exports.set("new", lua.create_function(invites::new)?)?;
    // default_ttl, default_reset_ttl: seconds an invite, a reset link lives by default
    exports.set("default_ttl", invite::DEFAULT_TTL)?;
    exports.set("default_reset_ttl", invite::DEFAULT_RESET_TTL)?;
    // lifecycle(facts, now, retention) -> { state, uses_left?, purge_audit } | nil, code, text
    exports.set("lifecycle", lua.create_function(lifecycle::lifecycle)?)?;
    // quota_check(created_at_list, pending, quota?, max_pending?, now) -> true | nil, "quota-exceeded", text
    exports.set("quota_check", lua.create_function(lifecycle::quota_check)?)?;

    // Plain values, shared by the shims
    // check_token(token) -> true | nil, code, text
    exports.set("check_token", lua.create_function(values::check_token)?)?;
    // redact(token) -> what a log line may show of it (a short prefix)
    exports.set("redact", lua.create_function(values::redact)?)?;
    // parse_period(text | seconds) -> seconds | nil, code, text
    exports.set("parse_period", lua.create_function(values::parse_period)?)?;
    // option_period(value) -> seconds, ambiguous | nil, "bad-request", text: a period option
    exports.set("option_period", lua.create_function(values::option_period)?)?;
    // parse_uses(text) -> n | nil, "bad-request", text: `--uses N` and the ad-hoc form's limit
    exports.set("parse_uses", lua.create_function(generate::parse_uses)?)?;
    // ns: { name = namespace, ... } (invites_rules::ns)
    exports.set("ns", lua.create_table_from(ns::ALL.iter().copied())?)?;

    // Errors
    // stanza_error(code, text?, host?) -> { type, condition, text }
    exports.set("stanza_error", lua.create_function(errors::stanza_error)?)?;
    // error_text(code, text?) -> the reason in words
    exports.set("error_text", lua.create_function(errors::error_text)?)?;

    // Registration (mod_invites_register, mod_invites)
    // new_registration(host, log, options?) -> the registration gate (its methods: src/registration.rs)
    exports.set("new_registration", lua.create_function(registration::new_registration)?)?;
    // advertise_features(session_type, secure, require_encryption) -> boolean
    exports.set("advertise_features", lua.create_function(registration::advertise_features)?)?;
    // contact_token(presence_type?, token?, from_bare, to_bare) -> token | nil
    exports.set("contact_token", lua.create_function(registration::contact_token)?)?;
    // registration_possible(invites_register_loaded, register_ibr_loaded, register_web_loaded) -> boolean
    exports.set("registration_possible", lua.create_function(registration::registration_possible)?)?;

    // The admin shell and prosodyctl (invites_admin.lib)
    // shell_commands: { { name, desc, args, flags, usage, prosodyctl_usage?, ... }, ... }
    exports.set("shell_commands", shell::shell_commands(lua)?)?;
    // prosodyctl_usage: "usage: prosodyctl mod_invites generate|list|... HOST [options] ..."
    exports.set("prosodyctl_usage", invites_rules::shell::prosodyctl_usage())?;
    // parse_shell_args(verb, words) -> args, flags | nil, "bad-request", text
    exports.set("parse_shell_args", lua.create_function(shell::parse_shell_args)?)?;
    // parse_flag(value?) -> boolean | nil, "bad-request", text
    exports.set("parse_flag", lua.create_function(shell::parse_flag)?)?;
    // parse_generate(args) -> { help = true } | { host, expires_after?, ... } | nil, "bad-request", text
    exports.set("parse_generate", lua.create_function(generate::parse_generate)?)?;
    // generate_usage: the text of `prosodyctl mod_invites generate --help`
    exports.set("generate_usage", invites_rules::generate::GENERATE_USAGE)?;

    // mod_invites_web
    // qr_svg(text, title) -> inline <svg> markup | nil, code, text
    exports.set("qr_svg", lua.create_function(web::qr_svg)?)?;

    // Features, one sub-table each (signatures in their modules)
    exports.set("adhoc", adhoc::adhoc_exports(lua)?)?;
    exports.set("rooms", rooms::rooms_exports(lua)?)?;
    exports.set("roles", roles::roles_exports(lua)?)?;
    exports.set("notify", telling::notify_exports(lua)?)?;
    exports.set("tree", telling::tree_exports(lua)?)?;
    // check(facts) -> { { code, text }, ... }: the configuration check's findings
    exports.set("check", lua.create_function(telling::check)?)?;
    Ok(exports)
}
